"""Text-conditioned regions from a zero-shot object detector of transformers.

Any checkpoint that ``AutoModelForZeroShotObjectDetection`` loads, by hub name or folder (a name a
saved model folder gives is read from the local Hugging Face cache only; see :mod:`mmie.encoders.hub`):
OWL-ViT (``google/owlvit-base-patch32``), OWLv2, Grounding-DINO (``IDEA-Research/grounding-dino-tiny``), MM-Grounding-DINO. Its processor
(``AutoProcessor``) takes the image and the queries (the head and tail entity names, optionally
other words of the post), and its own ``post_process_grounded_object_detection`` turns the
outputs into boxes with scores; the best ``k`` boxes that do not overlap a better one (IoU above
``iou``) are kept, each with the query it matched.

This is the closest offline stand-in for the one-stage grounding model of Yang et al. (2019) the
papers use; its boxes are not the releases' crops, so scores with them are not the papers' numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mmie.encoders.hub import hub_options, loading_problem, local_source
from mmie.errors import ConfigError
from mmie.regions.base import ImageSource, Region, RegionProvider, clip_box, top_k_distinct


def _choose_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class DetectorRegions(RegionProvider):
    """Top-k boxes of a zero-shot detector (OWL-ViT / Grounding-DINO class) for the entity names."""

    name = "detector"
    reads_text = True

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str | torch.device | None = None,
        threshold: float = 0.0,
        iou: float = 0.5,
    ) -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        options = hub_options()
        try:
            source = local_source(str(name_or_path))
            self.processor = AutoProcessor.from_pretrained(source, **options)
            self.model = AutoModelForZeroShotObjectDetection.from_pretrained(source, **options)
        except Exception as error:  # not found, custom code, refused weights, a damaged file
            raise ConfigError(
                f"detector {name_or_path!r}: not a zero-shot detection model in a local folder or the Hugging Face "
                f"cache (downloads only for a hub id you name, without HF_HUB_OFFLINE): {loading_problem(error)}"
            ) from None
        if not hasattr(self.processor, "post_process_grounded_object_detection"):
            raise ConfigError(f"detector {name_or_path!r}: its processor has no post_process_grounded_object_detection")
        self.name_or_path = str(name_or_path)
        self.device = _choose_device(device)
        self.model.to(self.device).eval()
        self.threshold = threshold
        self.iou = iou
        # OWLv2 pads every picture to a square before predicting: its boxes are relative to that square.
        self.pads_to_square = getattr(self.model.config, "model_type", "") == "owlv2"

    @torch.no_grad()
    def find(self, source: ImageSource, queries: Sequence[str], k: int) -> list[Region]:
        queries = list(dict.fromkeys(q.strip() for q in queries if q and q.strip()))
        if k <= 0 or not queries:
            return []
        image = source.load()
        width, height = image.size
        inputs = self.processor(images=[image], text=[queries], return_tensors="pt", truncation=True).to(self.device)
        outputs = self.model(**inputs)
        side = max(width, height)
        target = [(side, side)] if self.pads_to_square else [(height, width)]
        result = self.processor.post_process_grounded_object_detection(
            outputs, threshold=self.threshold, target_sizes=target, text_labels=[queries]
        )[0]
        names = result.get("text_labels") or [None] * len(result["scores"])
        regions = []
        for box, score, query in zip(result["boxes"].tolist(), result["scores"].tolist(), names):
            clipped = clip_box(box, (width, height))
            if clipped is not None:
                regions.append(Region(box=clipped, score=float(score), query=query))
        return top_k_distinct(regions, k, self.iou)

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "detector": self.name_or_path, "threshold": self.threshold, "iou": self.iou}
