"""Per-example feature dicts -> one batch dict of tensors, padded to the longest example of the batch.

Dynamic padding: each batch is as long as its longest example, never a fixed ``max_length``.
Every key of the feature dicts becomes a batch key (except ``meta``), so inputs that later models
add (``pixel_values`` of 1..4 images, cached image features, ...) pass through: values of equal
shape are stacked, values whose first dimension differs are padded along it. ``length_masks``
names the keys whose padding must be visible to the model and the mask key to create for them
(``word_starts`` -> ``word_mask``; the image featurizers make their ``image_mask`` themselves).
``nested`` names the keys whose examples differ in more than their first dimension and are padded
in every one (a post's character ids: its words x its longest word's characters); any other key
whose examples differ beyond the first dimension is an error.

A value may be :class:`Deferred`: computed here, when its batch is collated, instead of when the
split is featurized (the pixels of a fine-tuned vision encoder: ~2.4 MB a post with 4 images at 224,
which for a whole training split would not fit in memory).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import torch

from mmie.features.text import META_KEY

# The label of positions that carry none (padding, words past max_length): the padding value of
# ``labels``, and what the models' losses ignore and their NER predictions hold past a post's end.
IGNORE_INDEX = -100
DEFAULT_LENGTH_MASKS = {"word_starts": "word_mask"}  # the NER models' word positions


class Deferred:
    """A feature value computed only when its batch is collated (and dropped with the batch)."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[], torch.Tensor]) -> None:
        self.compute = compute

    def __repr__(self) -> str:
        return f"Deferred({self.compute!r})"


def _tensor(value: Any) -> torch.Tensor:
    return value.compute() if isinstance(value, Deferred) else torch.as_tensor(value)


class Collator:
    def __init__(
        self,
        pad_token_id: int,
        pad_values: Mapping[str, float] | None = None,
        length_masks: Mapping[str, str] | None = None,
        nested: Collection[str] = (),
    ) -> None:
        self.pad_values: dict[str, float] = {"input_ids": pad_token_id, "labels": IGNORE_INDEX, **(pad_values or {})}
        self.length_masks = dict(DEFAULT_LENGTH_MASKS if length_masks is None else length_masks)
        self.nested = frozenset(nested)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key in features[0]:
            if key == META_KEY:
                continue
            values = [_tensor(feature[key]) for feature in features]
            batch[key] = self._pad(key, values)
            if key in self.length_masks:
                lengths = torch.tensor([len(value) for value in values])
                longest = int(lengths.max()) if len(lengths) else 0
                batch[self.length_masks[key]] = torch.arange(longest)[None, :] < lengths[:, None]
        return batch

    def _pad(self, key: str, values: list[torch.Tensor]) -> torch.Tensor:
        # An empty list becomes a float tensor: take the dtype of the non-empty ones.
        dtype = next((value.dtype for value in values if value.numel()), values[0].dtype)
        values = [value.to(dtype) for value in values]
        if all(value.shape == values[0].shape for value in values):
            return torch.stack(values)
        if key in self.nested:
            return self._pad_every_dimension(key, values)
        if any(value.dim() == 0 or value.shape[1:] != values[0].shape[1:] for value in values):
            raise ValueError(f"feature {key!r}: examples differ in shape beyond the first dimension")
        longest = max(len(value) for value in values)
        padded = values[0].new_full((len(values), longest, *values[0].shape[1:]), self.pad_values.get(key, 0))
        for row, value in enumerate(values):
            padded[row, : len(value)] = value
        return padded

    def _pad_every_dimension(self, key: str, values: list[torch.Tensor]) -> torch.Tensor:
        if any(value.dim() != values[0].dim() or value.dim() == 0 for value in values):
            raise ValueError(f"feature {key!r}: examples differ in their number of dimensions")
        shape = [max(value.shape[axis] for value in values) for axis in range(values[0].dim())]
        padded = values[0].new_full((len(values), *shape), self.pad_values.get(key, 0))
        for row, value in enumerate(values):
            padded[row][tuple(slice(0, size) for size in value.shape)] = value
        return padded
