"""Converters of released image-text files to mmie's format (:mod:`mmie.imagetext.precomputed`).

VisualPT-MoE (xubodhu/VisualPT-MoE, ``utils/save_caption.py`` and ``utils/save_object_tags.py``)
releases two ``torch.save`` dictionaries keyed by image file name: captions (``caption_mre.pt``:
name -> one string, ViT-GPT2 captions) and object tags (``object_tags_mre.pt``: name -> a list of
COCO labels of Faster R-CNN boxes scoring at least 0.5, repeats kept). They are read with
``weights_only=True`` (no code runs). The authors' script writes the caption "There are nothing in
the image" for an image it could not open: that is no caption of the image, so it is dropped and
counted, never passed on as text.

ITA (Alibaba-NLP/KB-NER, ``ITA/``) releases its preprocessed datasets as a download whose layout
is not in the repository; write its captions, tags and OCR text as mmie's JSON lines directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmie.errors import DataError
from mmie.imagetext.base import ImageText
from mmie.imagetext.precomputed import write_image_text

VISUALPT_NO_CAPTION = "There are nothing in the image"


@dataclass
class ConversionReport:
    images: int
    captions: int
    tag_lists: int
    placeholder_captions: int  # the authors' stand-in for an unreadable image, dropped


def _torch_dict(path: Path, what: str) -> dict:
    import torch  # only the released .pt files need it

    if not path.is_file():
        raise DataError(f"no such {what} file", path=path)
    try:
        mapping = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch/pickle raise many types for files that are not what they claim
        reason = str(error).splitlines()[0][:200] if str(error) else ""
        raise DataError(f"not a torch-saved {what} dictionary ({type(error).__name__}: {reason})", path=path) from None
    if not isinstance(mapping, dict):
        raise DataError(f"expected a dictionary keyed by image name, got {type(mapping).__name__}", path=path)
    return mapping


def convert_visualpt_moe(
    out: str | Path, *, captions: str | Path | None = None, tags: str | Path | None = None
) -> ConversionReport:
    """Write VisualPT-MoE's caption and/or tag dictionaries as one image-text file."""
    if captions is None and tags is None:
        raise DataError("give the caption dictionary, the tag dictionary, or both", field="captions")
    entries: dict[str, ImageText] = {}
    report = ConversionReport(0, 0, 0, 0)
    if captions is not None:
        for name, caption in _torch_dict(Path(captions), "caption").items():
            if not isinstance(caption, str):
                raise DataError(f"caption of {name!r} is not a string", path=captions, field=str(name))
            if caption.strip() == VISUALPT_NO_CAPTION:
                report.placeholder_captions += 1
                continue
            entries.setdefault(str(name), ImageText(str(name))).caption = caption
            report.captions += 1
    if tags is not None:
        for name, labels in _torch_dict(Path(tags), "object-tag").items():
            if not (isinstance(labels, (list, tuple)) and all(isinstance(label, str) for label in labels)):
                raise DataError(f"tags of {name!r} are not a list of strings", path=tags, field=str(name))
            entries.setdefault(str(name), ImageText(str(name))).tags = list(labels)
            report.tag_lists += 1
    report.images = len(entries)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_image_text(sorted(entries.values(), key=lambda entry: entry.image), out)
    return report
