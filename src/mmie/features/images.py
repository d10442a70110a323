"""Posts (or relation instances) -> text features plus their images, the inputs of the visual-prefix models.

Which images a model gets is its config's ``image_layout`` (:mod:`mmie.features.settings`): ``"all"`` (up to M slots, in order), ``"first"``
(the single-image baselines) or ``"stitched"`` (all images on one 2 x 2 grid, the "-MI" baselines).
How they get in:

* frozen vision encoder (``freeze_vision: true``): global vectors ``image_features [M, D]`` (and, for
  models reading regions, ``region_features [M, cells^2, D]`` pooled right away to keep memory flat)
  from the feature cache, so each image is encoded once for every run and model;
* fine-tuned (``freeze_vision: false``): ``pixel_values [M, 3, H, W]`` for the model's own encoder,
  decoded and preprocessed when the example's batch is collated (:class:`~mmie.features.collate.Deferred`),
  so memory stays flat however large the split; a missing file is still reported up front.

Every example also gets ``image_mask [M]`` (False = no image in that slot). A post without images
gets an all-False mask: the model reads its text only. The image folder is needed as soon as a post
names an image (a ConfigError otherwise); the vision encoder is loaded on first use. Missing or
broken files follow the image policy (``"error"``: a DataError naming the file; ``"blank"``: a blank
picture, counted in ``report``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from mmie.data.images import ImageDirs, ImageLoader, ImagePolicy, ImageReport, InMemoryImages
from mmie.data.schema import MAX_IMAGES, Post, RelationInstance
from mmie.data.stitch import stitch_images
from mmie.encoders.cache import FeatureCache, default_cache_root
from mmie.encoders.hub import local_files_only, local_only
from mmie.encoders.vision import (
    VisionEncoder,
    flatten_post_images,
    load_vision_encoder,
    pool_regions,
    scatter_to_slots,
)
from mmie.errors import ConfigError
from mmie.features.collate import Deferred
from mmie.features.settings import ImageInputs

if TYPE_CHECKING:
    from typing_extensions import Self

    from mmie.features.text import Featurizer

# Posts whose images are encoded (or read from the cache) together.
_IMAGE_CHUNK = 64


class PostImageFeaturizer:
    """Wraps a text featurizer and adds each post's image inputs, as its :class:`ImageInputs` say."""

    reads_images = True

    def __init__(
        self,
        text: Featurizer,
        config: ImageInputs,
        images: ImageDirs | None,
        policy: ImagePolicy = "error",
    ) -> None:
        self.text = text
        self.config = config
        self.layout = config.image_layout
        self.slots = config.image_slots
        self.cells = config.region_cells
        self.policy = policy
        self.loader: ImageLoader | InMemoryImages | None = ImageLoader(images, policy) if images is not None else None
        self.frozen = config.freeze_vision
        self.local_only = local_only()  # built for a saved model folder: what it names is never downloaded
        self._encoder: VisionEncoder | None = None
        self._cache: FeatureCache | None = None

    @property
    def encoder(self) -> VisionEncoder:
        """A frozen copy of the model's encoder (loaded on first use): the cache's features, or its preprocessing."""
        if self._encoder is None:
            with local_files_only(self.local_only):
                self._encoder = load_vision_encoder(
                    self.config.vision_encoder, frozen=True, multiscale=self.config.multiscale
                )
        return self._encoder

    @property
    def image_side(self) -> int | None:
        """The longer image side worth decoding: twice the encoder's input (headroom for its resampling)."""
        side = self.encoder.input_side
        return 2 * side if side is not None else None

    @property
    def cache(self) -> FeatureCache | None:
        if self.frozen and self._cache is None:
            root = self.config.feature_cache or default_cache_root()
            self._cache = FeatureCache(root, self.encoder, policy=self.policy)
        return self._cache

    @property
    def region_source(self) -> str:
        """Which regions the features carry: none here (a subclass reading regions says which)."""
        return "none"

    @property
    def report(self) -> ImageReport | None:
        """The images that could not be used (missing, broken), with the policy applied."""
        if self._cache is not None:
            return self._cache.report
        return self.loader.report if self.loader is not None else None

    def for_uploads(self, shared: dict[str, FeatureCache] | None = None) -> Self:
        """A copy for uploaded pictures, which each ``featurize`` call brings (``images``) instead of a
        folder; frozen features stay in memory (an LRU), never written to the disk cache. ``shared``:
        in-memory caches by encoder key, so that models with the same vision encoder (NER and RE of one
        Extractor) encode an upload once."""
        uploads = copy.copy(self)
        uploads.loader = None
        if self.frozen:
            cache = FeatureCache(None, self.encoder, policy=self.policy)
            uploads._cache = shared.setdefault(cache.key, cache) if shared is not None else cache
        return uploads

    def featurize(
        self, records: Sequence[Any], with_labels: bool = True, images: InMemoryImages | None = None
    ) -> list[dict]:
        """Feature dicts of ``records``; ``images``: the pictures their references name, for this call only
        (uploads: nothing about them stays in the featurizer, so concurrent calls do not meet)."""
        if images is not None:
            call = copy.copy(self)
            call.loader = images
            return call.featurize(records, with_labels)
        if self.loader is None and any(self._post(record).images for record in records):
            raise ConfigError(
                f"data.images: the model {self.config.name!r} reads the posts' images; give the image folder"
            )
        features = self.text.featurize(records, with_labels)
        for start in range(0, len(records), _IMAGE_CHUNK):
            chunk = records[start : start + _IMAGE_CHUNK]
            for feature, inputs in zip(features[start : start + _IMAGE_CHUNK], self._example_inputs(chunk)):
                feature.update(inputs)
        return features

    @staticmethod
    def _post(record: Any) -> Post:
        """The post a record belongs to: a relation instance's post, or the record itself (NER)."""
        return record.post if isinstance(record, RelationInstance) else record

    def _example_inputs(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        """The image inputs of each record (a subclass reading other image inputs overrides this)."""
        return self._image_inputs([self._post(record) for record in records])

    def _post_images(self, post: Post) -> list[Any]:
        """What to encode for one post: file paths (frozen: the cache hashes the files) or PIL images."""
        if not post.images:
            return []
        assert self.loader is not None  # featurize checked that posts with images have a folder
        if self.layout == "stitched":
            pictures = [self.loader.load(ref, post.id) for ref in post.images[:MAX_IMAGES]]
            return [stitch_images(pictures)] if pictures else []
        refs = post.images[:1] if self.layout == "first" else post.images[: self.slots]
        if self.frozen:
            return [self.loader.item(ref, post.id) for ref in refs]
        return [self.loader.load(ref, post.id) for ref in refs]

    def _image_inputs(self, posts: Sequence[Post]) -> list[dict[str, torch.Tensor]]:
        items = [self._post_images(post) for post in posts]
        if self.cache is not None:
            out = self.cache.get_posts(items, self.slots)
            rows: dict[str, torch.Tensor] = {"image_mask": out.image_mask, "image_features": out.global_features}
            if self.cells:
                rows["region_features"] = pool_regions(out.region_features, self.encoder.grid_size, self.cells)
        else:
            return [self._deferred_pixels(post) for post in posts]
        return [{key: value[row].clone() for key, value in rows.items()} for row in range(len(posts))]

    def _slot_count(self, post: Post) -> int:
        """How many of the model's image slots the post fills."""
        if self.layout == "stitched":
            return min(len(post.images), 1)
        return len(post.images[:1] if self.layout == "first" else post.images[: self.slots])

    def _deferred_pixels(self, post: Post) -> dict[str, Any]:
        """``image_mask`` now, ``pixel_values`` when the batch is collated (fine-tuned vision)."""
        if self.loader is not None and self.policy == "error":
            read = MAX_IMAGES if self.layout == "stitched" else self.slots  # stitching reads every image
            for ref in post.images[:read]:  # fail before training on a missing file, not at step n
                item = self.loader.item(ref, post.id)
                if isinstance(item, Path) and not item.exists():
                    self.loader.load(ref, post.id)  # raises the DataError naming the file

        def pixels() -> torch.Tensor:
            flat, mask = flatten_post_images([self._post_images(post)], self.slots)
            values = self.encoder.preprocess(flat) if flat else self._blank_pixels()[:0]
            return scatter_to_slots(values, mask)[0]

        mask = torch.arange(self.slots) < self._slot_count(post)
        return {"image_mask": mask, "pixel_values": Deferred(pixels)}

    def _blank_pixels(self) -> torch.Tensor:
        """One preprocessed blank picture: gives the pixel shape when a chunk has no image at all."""
        return self.encoder.preprocess([Image.new("RGB", (32, 32))])
