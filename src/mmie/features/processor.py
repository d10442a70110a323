"""A model's input processor: its tokenizer, featurizer and collator in one object.

    processor = create_processor(config, tokenizer, labels, images="data/images")   # mmie.models
    features = processor.featurize(records)          # per-example feature dicts (meta included)
    batch = processor.collate(features)              # padded tensors, the model's keyword arguments

The factories below build one from the settings a config holds (:mod:`mmie.features.settings`);
the model registry binds each model name to one of them. They never see a model class.

What a processor reads text with is the model's :data:`TextVocabulary`: the fast tokenizer of its
pretrained text encoder, or, for the word-level models (:class:`WordInputs`), the
:class:`~mmie.features.words.WordVocabulary` built from the training split
(:func:`mmie.models.create_vocabulary` chooses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import torch

from mmie.errors import ConfigError
from mmie.features.collate import Collator
from mmie.features.focal import FocalFeaturizer
from mmie.features.image_text_words import (
    TEXT_VIEW_PREFIX,
    ImageTextNerFeaturizer,
    ObjectLabelNerFeaturizer,
    image_text_provider,
)
from mmie.features.images import PostImageFeaturizer
from mmie.features.imagetext import ImageTextFeaturizer
from mmie.features.levitated import (
    LevitatedMarkerCollator,
    LevitatedMarkerFeaturizer,
    SubjectMarkerFeaturizer,
    both_sides,
)
from mmie.features.multiscale import MultiScaleRegionFeaturizer
from mmie.features.query_regions import QueryRegionFeaturizer
from mmie.features.regions import RelationImageFeaturizer
from mmie.features.scene_graphs import SceneGraphRelationFeaturizer, scene_graph_provider
from mmie.features.settings import (
    AppendedTextInputs,
    FocalInputs,
    ImageInputs,
    InputSettings,
    LevitatedInputs,
    MarkerInputs,
    Markers,
    ObjectLabelInputs,
    QueryRegionInputs,
    RegionInputs,
    SceneGraphInputs,
    WordInputs,
)
from mmie.features.text import (
    Featurizer,
    NerFeaturizer,
    RelationFeaturizer,
    add_entity_marker_tokens,
    add_marker_tokens,
)
from mmie.features.word_relations import WordRelationFeaturizer
from mmie.features.words import WordNerFeaturizer, WordVocabulary

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from mmie.data.images import ImageDirs, InMemoryImages

# What a model reads its text with: a pretrained encoder's tokenizer, or a word-level model's vocabulary.
TextVocabulary: TypeAlias = "PreTrainedTokenizerBase | WordVocabulary"


@dataclass
class Processor:
    """Records -> feature dicts -> batches, for one model. ``config``: the settings it was built from,
    completed (the entity markers it chose)."""

    config: InputSettings
    tokenizer: TextVocabulary
    featurizer: Featurizer
    collator: Collator
    # The training split's features -> what training reads (more than one view of an instance); None: as is
    training_views: Callable[[list[dict]], list[dict]] | None = None

    @property
    def reads_images(self) -> bool:
        """True when the inputs carry the posts' images."""
        return self.featurizer.reads_images

    @property
    def image_slots(self) -> int:
        return self.featurizer.slots

    @property
    def image_side(self) -> int | None:
        """The longer image side worth decoding for these inputs (None: any size; text inputs)."""
        return self.featurizer.image_side

    @property
    def region_source(self) -> str:
        """Which regions the inputs carry: ``"none"``, ``"grid"``, ``"precomputed"`` or a provider name."""
        return self.featurizer.region_source

    def featurize(
        self, records: Sequence[Any], with_labels: bool = True, images: InMemoryImages | None = None
    ) -> list[dict]:
        """Feature dicts of ``records``. ``images``: uploaded pictures by reference, for this call only
        (a processor made by :meth:`for_uploads`; text-only inputs ignore them)."""
        return self.featurizer.featurize(records, with_labels, images=images)

    def featurize_training(self, records: Sequence[Any]) -> list[dict]:
        """The training split's features: :meth:`featurize`'s, then the model's ``training_views`` of them."""
        features = self.featurize(records)
        return self.training_views(features) if self.training_views is not None else features

    def for_uploads(self, shared_caches: dict | None = None) -> Processor:
        """This processor for uploads: pictures given to each ``featurize`` call, features kept in memory
        (``shared_caches``: one in-memory feature cache per vision encoder, shared between processors)."""
        return dataclasses.replace(self, featurizer=self.featurizer.for_uploads(shared_caches))

    def collate(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        return self.collator(features)

    def __call__(self, records: Sequence[Any], with_labels: bool = True) -> dict[str, torch.Tensor]:
        """One batch of ``records``, ready for the model."""
        return self.collate(self.featurize(records, with_labels))


class ProcessorFactory(Protocol):
    # ``tokenizer``: the TextVocabulary the factory reads with (a sub-word tokenizer or a WordVocabulary)
    def __call__(
        self, config: Any, tokenizer: Any, labels: Sequence[str], images: ImageDirs | None = None
    ) -> Processor: ...


def _collator(tokenizer: PreTrainedTokenizerBase) -> Collator:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Collator(pad_id)


def ner_processor(
    config: InputSettings, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Words -> sub-words and each word's first sub-word position (text NER models)."""
    featurizer = NerFeaturizer(tokenizer, labels, max_length=config.max_length)
    return Processor(config, tokenizer, featurizer, _collator(tokenizer))


def appended_text_ner_processor(
    config: AppendedTextInputs,
    tokenizer: PreTrainedTokenizerBase,
    labels: Sequence[str],
    images: ImageDirs | None = None,
) -> Processor:
    """Each post twice: with the image text of its images appended after a separator, and alone
    (ITA's two views); labels on the post's words only. The image text comes from the provider of
    ``model.image_text`` (a ConfigError naming it when there is none)."""
    featurizer = ImageTextNerFeaturizer(tokenizer, labels, config, image_text_provider(config))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Processor(config, tokenizer, featurizer, Collator(pad_id, {TEXT_VIEW_PREFIX + "input_ids": pad_id}))


def object_label_ner_processor(
    config: ObjectLabelInputs,
    tokenizer: PreTrainedTokenizerBase,
    labels: Sequence[str],
    images: ImageDirs | None = None,
) -> Processor:
    """NER inputs plus the object labels of the post's images, each label tokenized on its own (OCSGA),
    from the provider of ``model.image_text``."""
    featurizer = ObjectLabelNerFeaturizer(tokenizer, labels, config, image_text_provider(config))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    collator = Collator(pad_id, {"object_ids": pad_id}, nested=("object_ids", "object_attention_mask"))
    return Processor(config, tokenizer, featurizer, collator)


def _word_config(config: WordInputs, tokenizer: WordVocabulary) -> WordInputs:
    """The config completed with the sizes of ``tokenizer``, the WordVocabulary built from this config."""
    if not isinstance(tokenizer, WordVocabulary):
        raise TypeError(
            f"{config.name} reads words: it needs the WordVocabulary of its training split "
            f"(mmie.models.create_vocabulary), not a {type(tokenizer).__name__}"
        )
    for rule in ("lowercase", "zero_digits"):  # the vocabulary looks words up by its own rules
        if getattr(config, rule) != getattr(tokenizer, rule):
            raise ConfigError(
                f"model.{rule}: {getattr(config, rule)}, but the vocabulary was built with "
                f"{rule} {getattr(tokenizer, rule)} (build it from this config: create_vocabulary)"
            )
    return config.model_copy(update=tokenizer.sizes)


def _word_ner_parts(
    config: WordInputs, tokenizer: WordVocabulary, labels: Sequence[str]
) -> tuple[WordInputs, WordNerFeaturizer, Collator]:
    """The completed config, the word-and-character featurizer and its collator of a word NER model."""
    config = _word_config(config, tokenizer)
    featurizer = WordNerFeaturizer(tokenizer, labels, config.max_length, config.max_word_length)
    collator = Collator(tokenizer.pad_token_id, length_masks={"word_ids": "word_mask"}, nested=("char_ids",))
    return config, featurizer, collator


def word_ner_processor(
    config: WordInputs, tokenizer: WordVocabulary, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Words -> word ids and each word's character ids, from the vocabulary of the training split
    (the BiLSTM taggers). The config is completed with the vocabulary's sizes."""
    config, featurizer, collator = _word_ner_parts(config, tokenizer, labels)
    return Processor(config, tokenizer, featurizer, collator)


def word_image_ner_processor(
    config: WordInputs, tokenizer: WordVocabulary, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Word ids and character ids (:func:`word_ner_processor`) plus the posts' images, as the config's
    :class:`ImageInputs` say (the BiLSTM taggers with visual attention: GVATT, AdaCAN)."""
    config, text, collator = _word_ner_parts(config, tokenizer, labels)
    assert isinstance(config, ImageInputs), f"{type(config).__name__}: a word-image config reads images"
    return Processor(config, tokenizer, PostImageFeaturizer(text, config, images), collator)


def word_relation_processor(
    config: WordInputs, tokenizer: WordVocabulary, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Relation instances -> word ids, the two position features and the piece of each word (PCNN),
    from the vocabulary of the training split. The config is completed with the vocabulary's sizes."""
    config = _word_config(config, tokenizer)
    max_distance = int(getattr(config, "max_distance", config.max_length))
    featurizer = WordRelationFeaturizer(tokenizer, labels, config.max_length, max_distance)
    return Processor(
        config, tokenizer, featurizer, Collator(tokenizer.pad_token_id, length_masks={"word_ids": "word_mask"})
    )


def image_ner_processor(
    config: ImageInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """NER inputs plus the posts' images (the visual-prefix taggers); the text alone with ``use_images: false``."""
    if not config.use_images:
        return ner_processor(config, tokenizer, labels)
    text = NerFeaturizer(tokenizer, labels, max_length=config.max_length)
    return Processor(config, tokenizer, PostImageFeaturizer(text, config, images), _collator(tokenizer))


def multiscale_ner_processor(
    config: RegionInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """NER inputs plus the multi-scale tokens of the posts' images and of their crops (HVPNeT); the
    text alone with ``use_images: false``."""
    if not config.use_images:
        return ner_processor(config, tokenizer, labels)
    text = NerFeaturizer(tokenizer, labels, max_length=config.max_length)
    return Processor(config, tokenizer, MultiScaleRegionFeaturizer(text, config, images), _collator(tokenizer))


def imagetext_ner_processor(
    config: RegionInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """NER inputs plus the multi-scale tokens of the images and their crops, and the images' object tags
    and caption as sub-word ids (VisualPT-MoE)."""
    text = NerFeaturizer(tokenizer, labels, max_length=config.max_length)
    featurizer = ImageTextFeaturizer(text, config, images, tokenizer)
    return Processor(config, tokenizer, featurizer, _collator(tokenizer))


def query_region_ner_processor(
    config: QueryRegionInputs,
    tokenizer: PreTrainedTokenizerBase,
    labels: Sequence[str],
    images: ImageDirs | None = None,
) -> Processor:
    """NER inputs plus the post's picture and one region per fixed query (UMGF's entity-type crops)."""
    text = NerFeaturizer(tokenizer, labels, max_length=config.max_length)
    return Processor(config, tokenizer, QueryRegionFeaturizer(text, config, images), _collator(tokenizer))


def _marked_text(
    config: MarkerInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str]
) -> tuple[Markers, RelationFeaturizer]:
    """The entity markers (added to the tokenizer first) and the featurizer of the marked text."""
    markers = add_marker_tokens(tokenizer, config.markers)
    return markers, RelationFeaturizer(tokenizer, labels, max_length=config.max_length, markers=markers)


def relation_processor(
    config: MarkerInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Relation instances -> the post's text with entity markers (text RE models)."""
    markers, text = _marked_text(config, tokenizer, labels)
    return Processor(config.model_copy(update={"markers": markers}), tokenizer, text, _collator(tokenizer))


def levitated_relation_processor(
    config: LevitatedInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Relation instances -> the post's plain text, each pair's markers levitated after it, a post's
    instances of a batch in one segment, segments packed into rows of ``pack_length`` tokens (text RE
    models that read a post once for all its pairs)."""
    markers = add_marker_tokens(tokenizer, config.markers)
    entity_markers = add_entity_marker_tokens(tokenizer, config.entity_markers) if config.text_reads_entities else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    marker_ids = tokenizer.convert_tokens_to_ids(list(markers))  # a list in, a list out
    entity_marker_ids = tokenizer.convert_tokens_to_ids(list(entity_markers or ()))
    assert isinstance(marker_ids, list) and isinstance(entity_marker_ids, list)
    collator = LevitatedMarkerCollator(
        pad_id,
        marker_ids,
        "token_type_ids" in tokenizer.model_input_names,
        pack_length=config.pack_length,
        entity_marker_ids=entity_marker_ids or None,
        packing=config.packing,
    )
    featurizer: Featurizer
    if config.packing == "subject":
        featurizer = SubjectMarkerFeaturizer(tokenizer, labels, max_length=config.max_length, markers=markers)
    else:
        featurizer = LevitatedMarkerFeaturizer(
            tokenizer,
            labels,
            max_length=config.max_length,
            entity_spans=config.text_reads_entities,
            sides=config.packing == "cover",
        )
    chosen = config.model_copy(update={"markers": markers, "entity_markers": entity_markers})
    views = both_sides if config.cover_rule in ("both", "probe") else None
    return Processor(chosen, tokenizer, featurizer, collator, training_views=views)


def _marked_image_processor(
    config: ImageInputs,
    tokenizer: PreTrainedTokenizerBase,
    labels: Sequence[str],
    images: ImageDirs | None,
    image_featurizer: Callable[[RelationFeaturizer, Any, ImageDirs | None], Featurizer],
) -> Processor:
    """Marked text wrapped by ``image_featurizer(text, config, images)``; the marked text alone with
    ``use_images: false`` (the configs of models without the switch refuse it before this runs)."""
    assert isinstance(config, MarkerInputs), f"{type(config).__name__}: a relation config has entity markers"
    if not config.use_images:
        return relation_processor(config, tokenizer, labels)
    markers, text = _marked_text(config, tokenizer, labels)
    config = config.model_copy(update={"markers": markers})
    return Processor(config, tokenizer, image_featurizer(text, config, images), _collator(tokenizer))


def image_relation_processor(
    config: RegionInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Marked text plus the post's images and k regions per image (GLRA and its baselines)."""
    return _marked_image_processor(config, tokenizer, labels, images, RelationImageFeaturizer)


def post_image_relation_processor(
    config: ImageInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Marked text plus the post's images as the NER image models read them: global vectors, a pooled
    region grid, or pixels; no crops (UMT and TPM-MI with a relation head)."""
    return _marked_image_processor(config, tokenizer, labels, images, PostImageFeaturizer)


def focal_relation_processor(
    config: FocalInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Marked text plus the patch features of every focal copy of every image (FocalMRE)."""
    return _marked_image_processor(config, tokenizer, labels, images, FocalFeaturizer)


def multiscale_relation_processor(
    config: RegionInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Marked text plus the multi-scale tokens of the post's images and of their crops (HVPNeT RE)."""
    return _marked_image_processor(config, tokenizer, labels, images, MultiScaleRegionFeaturizer)


def query_region_relation_processor(
    config: QueryRegionInputs,
    tokenizer: PreTrainedTokenizerBase,
    labels: Sequence[str],
    images: ImageDirs | None = None,
) -> Processor:
    """Marked text plus the post's picture and one region per fixed query (UMGF for RE)."""
    return _marked_image_processor(config, tokenizer, labels, images, QueryRegionFeaturizer)


def scene_graph_relation_processor(
    config: SceneGraphInputs, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], images: ImageDirs | None = None
) -> Processor:
    """Marked text plus the objects of the first image's scene graph and their structural alignment with
    the words (MEGA, BERT+SG+Att); a ConfigError when no scene-graph file is given."""
    assert isinstance(config, MarkerInputs), f"{type(config).__name__}: a relation config has entity markers"
    provider = scene_graph_provider(config)
    markers = add_marker_tokens(tokenizer, config.markers)
    featurizer = SceneGraphRelationFeaturizer(tokenizer, labels, config, markers, provider)
    return Processor(config.model_copy(update={"markers": markers}), tokenizer, featurizer, _collator(tokenizer))
