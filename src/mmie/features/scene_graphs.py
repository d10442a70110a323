"""Relation instances -> marked text + the scene graph of the post's first image: the inputs of MEGA
and BERT+SG+Att (:mod:`mmie.models.mega`), read as their :class:`SceneGraphInputs` say.

Per example (N = ``max_objects`` object slots, T sub-word positions):

* ``object_features [N, D]``: the feature vectors the scene-graph file gives the image's first N
  objects (D = ``object_feature_size``), zeros past them;
* ``object_mask [N]``: False for the empty slots (fewer objects, or a post without an image);
* with :class:`StructuralAlignmentInputs` (MEGA), ``structural_alignment [T, N]``: how much each object is like each word by graph structure
  (:func:`mmie.scenegraph.align.structural_alignment`), on the first sub-word of each of the post's
  words (markers, later sub-words and the tokenizer's specials get 0). Stored position-major so the
  collator pads it along T like the text.

The scene graph comes from the file of ``scene_graphs`` keyed by the first image's name or by the
record id; no file is a ConfigError when the processor is built (no scene-graph detector runs here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from mmie.errors import ConfigError, DataError
from mmie.features.settings import SceneGraphInputs, StructuralAlignmentInputs
from mmie.features.text import MarkedText, RelationFeaturizer
from mmie.scenegraph.align import chain_heads, structural_alignment
from mmie.scenegraph.base import NoSceneGraph, SceneGraph, SceneGraphProvider, SceneGraphUnavailable
from mmie.scenegraph.precomputed import PrecomputedSceneGraphs

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from mmie.data.schema import RelationInstance


def scene_graph_provider(config: SceneGraphInputs) -> SceneGraphProvider:
    """The provider of ``config.scene_graphs``; a ConfigError naming the field when there is none, or when
    its objects' features are not ``object_feature_size`` long."""
    if config.scene_graphs is None:
        raise ConfigError(f"model.scene_graphs: {config.name} reads scene graphs and {NoSceneGraph.reason}")
    if not config.scene_graphs.is_file():
        raise ConfigError(f"model.scene_graphs: no such file {str(config.scene_graphs)!r}")
    provider = PrecomputedSceneGraphs(config.scene_graphs, key=config.scene_graph_key)
    size = provider.feature_size
    if size is not None and size != config.object_feature_size:
        raise ConfigError(
            f"model.object_feature_size: {config.object_feature_size}, but the objects of {provider.path} "
            f"have {size}-number features"
        )
    return provider


class SceneGraphRelationFeaturizer(RelationFeaturizer):
    """Marked text (:class:`RelationFeaturizer`) plus the object slots and the structural alignment."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        labels: Sequence[str],
        config: SceneGraphInputs,
        markers: Sequence[str],
        provider: SceneGraphProvider,
    ) -> None:
        super().__init__(tokenizer, labels, max_length=config.max_length, markers=markers)
        self.config = config
        self.provider = provider

    def _graph(self, instance: RelationInstance) -> SceneGraph:
        """The scene graph of the instance's first image (or of its record); empty without an image."""
        if self.config.scene_graph_key == "image":
            if not instance.post.images:
                return SceneGraph(key="")
            key = instance.post.images[0]
        else:
            key = instance.id
        try:
            return self.provider.graph(key)
        except SceneGraphUnavailable as error:
            raise DataError(str(error), field=f"record {instance.id}: scene graph") from None

    def _word_heads(
        self, instance: RelationInstance, graph: SceneGraph, config: StructuralAlignmentInputs
    ) -> list[int]:
        words = len(instance.post.tokens)
        if config.text_graph == "chain":
            return chain_heads(words)
        if graph.text_heads is None:
            raise DataError(
                f"the scene graph of {graph.key!r} carries no text_heads (the post's parse); give them, or set "
                "model.text_graph: chain (an approximation: each word linked to the next)",
                field=f"record {instance.id}: text_heads",
            )
        if len(graph.text_heads) != words:
            raise DataError(
                f"{len(graph.text_heads)} heads for a post of {words} words",
                field=f"record {instance.id}: text_heads",
            )
        return list(graph.text_heads)

    def _feature(
        self, instance: RelationInstance, text: MarkedText, encoding: Any, index: int, with_labels: bool
    ) -> dict:
        feature = super()._feature(instance, text, encoding, index, with_labels)
        slots, size = self.config.max_objects, self.config.object_feature_size
        graph = self._graph(instance)
        objects = graph.objects[:slots]
        features = torch.zeros(slots, size)
        for slot, item in enumerate(objects):
            if len(item.feature) != size:
                raise DataError(
                    f"{len(item.feature)} numbers, model.object_feature_size is {size}",
                    field=f"record {instance.id}: objects[{slot}].feature",
                )
            features[slot] = torch.tensor(item.feature)
        feature.update(object_features=features, object_mask=torch.arange(slots) < len(objects))
        if isinstance(self.config, StructuralAlignmentInputs):
            feature["structural_alignment"] = self._alignment(instance, text, encoding.word_ids(index), graph)
        return feature

    def _alignment(
        self, instance: RelationInstance, text: MarkedText, word_ids: Sequence[int | None], graph: SceneGraph
    ) -> torch.Tensor:
        """``[T, N]``: the structural alignment of each kept object with each word, on its first sub-word."""
        config = self.config
        assert isinstance(config, StructuralAlignmentInputs)
        objects = graph.objects[: config.max_objects]
        kept = [(a, b) for a, b in graph.edges if a < len(objects) and b < len(objects)]
        heads = self._word_heads(instance, graph, config) if objects else []
        by_word = torch.as_tensor(  # [objects, post words]
            structural_alignment(len(objects), kept, heads, top=config.alignment_top), dtype=torch.float32
        )
        alignment = torch.zeros(len(word_ids), config.max_objects)  # [T, N]
        previous = None
        for position, word in enumerate(word_ids):
            source = text.sources[word] if word is not None else None
            if source is not None and word != previous and objects:
                alignment[position, : len(objects)] = by_word[:, source]
            previous = word
        return alignment
