"""The settings the input processors read, one class per kind of input.

A model's config class inherits the settings of the inputs its model takes (GLRA's config is a
:class:`RegionInputs`, TPM-MI's an :class:`ImageInputs`, the BiLSTM taggers' a :class:`WordInputs`),
so a config file stays one flat ``model:`` section while the featurizers depend on these classes
only, never on a model class. Which images a
model reads is said here too: ``image_layout`` (a class attribute of the config) and the properties
``image_slots``, ``region_cells`` and ``region_count`` that config classes override.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mmie.data.schema import MAX_IMAGES
from mmie.encoders.vision import DEFAULT_VISION_ENCODER

# Which images the featurizer hands over: every image (up to image_slots), the first one, or one
# picture with all of them stitched on a 2 x 2 grid.
ImageLayout = Literal["all", "first", "stitched"]
Markers = tuple[str, str, str, str]
EntityMarkers = tuple[str, str]


class InputSettings(BaseModel):
    """What every featurizer reads: the model's name (for messages) and the sub-word budget."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str
    max_length: int = Field(128, ge=16, le=4096, description="sub-word tokens per example, specials included")


class WordInputs(InputSettings):
    """Word-level text (models without a sub-word tokenizer, the BiLSTM taggers): each word's id in a
    vocabulary built from the training split (:class:`mmie.features.words.WordVocabulary`) and its
    characters' ids. A config that inherits this declares that its model reads words, so its
    vocabulary is built from the training split and saved with the model (``vocabulary.json``).

    The three sizes at the end are not for config files: the processor sets them from the vocabulary
    it is given (``processor.config``), and the saved config keeps them, so a saved model is rebuilt
    with its embedding tables' sizes before its weights are read."""

    max_length: int = Field(128, ge=16, le=4096, description="words read per post (the rest are predicted O)")
    lowercase: bool = Field(False, description="look words up lowercased (the characters keep their case)")
    zero_digits: bool = Field(False, description="look words up with every digit replaced by 0")
    max_word_length: int = Field(45, ge=1, le=1000, description="characters read per word (its first ones)")
    vocabulary_size: int | None = Field(
        None, ge=2, description="set by the processor: words in the vocabulary (padding and unknown included)"
    )
    alphabet_size: int | None = Field(
        None, ge=2, description="set by the processor: characters in the vocabulary (padding and unknown included)"
    )
    singletons_from: int | None = Field(
        None, ge=2, description="set by the processor: the first word id of the words seen once in training"
    )


class MarkerInputs(InputSettings):
    """Relation inputs: the text with entity markers around the head and the tail."""

    markers: Markers | None = Field(
        None,
        description="head start, head end, tail start, tail end markers; default <s> </s> <o> </o> "
        "(or [E1] [/E1] [E2] [/E2] when the tokenizer already uses <s>/</s>: RoBERTa, MPNet); a marker may not "
        "be one of the tokenizer's special tokens",
    )


class LevitatedInputs(MarkerInputs):
    """Relation inputs of a model that reads a post once for all its pairs, its markers levitated after it."""

    pack_length: int | None = Field(
        64,
        ge=8,
        description="a batch's posts (each with its pairs' markers) packed into rows of at most this many "
        "tokens (or the batch's longest post's), each post reading only itself, so short posts share a row "
        "instead of being padded to the longest; null: one row per post",
    )
    packing: Literal["post", "subject", "cover"] = Field(
        "post",
        description="post: the text read once for all the post's pairs, every pair's four markers levitated "
        "after it (PURE's batch computation); subject: the text read once per head entity, that head marked "
        "in the text and the two markers of each of its tails levitated (PL-Marker's subject-oriented packing); "
        "cover: as subject, but a pair may be read from its tail's segment by a second classifier, and a post's "
        "marked entities are few that cover its pairs: A->B and B->A share one read (cover_training: how it "
        "trains)",
    )
    cover_training: Literal["cover", "both", "probe"] | None = Field(
        None,
        description="packing cover: each training pair read from both sides, from its head by the first "
        "classifier and from its tail by the second, which the pipeline asks about B->A beside A->B (twice the "
        "training reads), the tail-side reads training the second classifier only (probe, the default: the "
        "encoder learns from head-side reads alone, as under subject packing) or the encoder too (both); or "
        "only from the side the cover of its post's pairs gives it (cover: on MNRE nearly always its head, so "
        "the second classifier learns from a few dozen pairs)",
    )
    text_reads_entities: bool = Field(
        False,
        description="the post also gets two levitated markers per entity of its candidate pairs (its start and "
        "end), which the text reads: the text knows where the entities are, not which pair is meant, and a "
        "post is still read once for all its pairs",
    )
    entity_markers: EntityMarkers | None = Field(
        None,
        description="with text_reads_entities: the entity start and end markers; default <e> </e> (or [E] [/E] "
        "when the tokenizer already has those); not one of the tokenizer's special tokens",
    )

    @model_validator(mode="after")
    def _settings_that_go_together(self) -> LevitatedInputs:
        if self.packing != "post" and self.text_reads_entities:
            raise ValueError(
                f"text_reads_entities goes with packing: post (with {self.packing}, an entity is marked in the text)"
            )
        if self.cover_training is not None and self.packing != "cover":
            raise ValueError(f"cover_training: {self.cover_training} goes with packing: cover (not {self.packing})")
        return self

    @property
    def cover_rule(self) -> Literal["cover", "both", "probe"] | None:
        """How the cover packing trains, its default (probe) filled in; None for the other packings."""
        if self.packing != "cover":
            return None
        return self.cover_training or "probe"


ImageTextField = Literal["caption", "tags", "ocr"]


class ImageTextSource(InputSettings):
    """Where the text of the post's images (captions, object tags, OCR text: :mod:`mmie.imagetext`)
    comes from: a precomputed file, read by the processor, never by the model (ITA, OCSGA)."""

    image_text: Path | None = Field(
        None, description="precomputed image-text file (JSON lines keyed by image name, docs/imagetext.md)"
    )
    image_text_images: Literal["first", "all"] = Field(
        "first",
        description="whose image text is read: the first image's (the single-image rows) or every image's, in order",
    )
    missing_image_text: Literal["error", "text_only"] = Field(
        "error",
        description="an image the file does not cover: error, or text_only (the post is read without image "
        "text: an explicit text-only fallback, never made-up text)",
    )


class AppendedTextInputs(ImageTextSource):
    """The image text appended to the post as words (ITA)."""

    image_text_fields: tuple[ImageTextField, ...] = Field(
        ("caption", "tags", "ocr"), min_length=1, description="which image text is read, in this order"
    )


class ObjectLabelInputs(ImageTextSource):
    """The object tags of the post's images, one label per object, read as text (OCSGA)."""

    max_objects: int = Field(5, ge=1, le=64, description="object labels read per post, most confident first")


class ImageInputs(InputSettings):
    """The post's images, as global vectors from a frozen encoder (feature cache) or as pixels.

    ``use_images: false`` is the text-only switch of the image models whose method has a natural
    reading without images (a config class says so with ``text_only_switch = True``; each model's
    docstring says what the switch turns off): the processor then reads the text alone, like a
    text model's (no image folder, no vision encoder, no feature cache), and the model builds no
    vision encoder and no image layers. Any other image model refuses it by name."""

    image_layout: ClassVar[ImageLayout] = "all"
    # True for the config classes whose model has a text-only reading (``use_images: false``).
    text_only_switch: ClassVar[bool] = False

    use_images: bool = Field(
        True,
        description="false: the text-only switch (no vision encoder, no image inputs, no image folder needed); "
        "only for the models that have one (docs/training.md)",
    )

    vision_encoder: str = Field(DEFAULT_VISION_ENCODER, description="vision encoder: alias, Hugging Face id or folder")
    freeze_vision: bool = Field(
        True, description="true: frozen, features precomputed (feature cache); false: fine-tuned end to end on pixels"
    )
    feature_cache: Path | None = Field(
        None, description="feature cache folder (frozen vision); null: $MMIE_CACHE_DIR or ~/.cache/mmie/vision-features"
    )

    @field_validator("use_images")
    @classmethod
    def _has_text_only_switch(cls, use_images: bool) -> bool:
        if not use_images and not cls.text_only_switch:
            name = cls.model_fields["name"].default
            raise ValueError(f"{name} has no text-only switch: its method needs the images (keep use_images: true)")
        return use_images

    @property
    def image_slots(self) -> int:
        """M: image slots per post in a batch."""
        return MAX_IMAGES if self.image_layout == "all" else 1

    @property
    def region_cells(self) -> int:
        """Side of the pooled grid of region features per image (0: global vectors only)."""
        return 0

    @property
    def multiscale(self) -> tuple[int, int] | None:
        """``(stages, cells)``: the vision encoder's stage outputs pooled to ``cells x cells`` and
        concatenated (HVPNeT, :mod:`mmie.encoders.multiscale`); None: its final features."""
        return None


class RegionInputs(ImageInputs):
    """Images plus up to k regions (crops) per image from a region provider (:mod:`mmie.regions`)."""

    max_images: int = Field(MAX_IMAGES, ge=1, le=MAX_IMAGES, description="m: image slots per post")
    regions_per_image: int = Field(2, ge=0, le=16, description="k: regions per image (MRE-MI ships up to 2)")
    regions: Literal["precomputed", "grid"] = Field(
        "precomputed", description="precomputed: a crop dictionary (images_vg.pth); grid: offline saliency boxes"
    )
    region_dict: Path | None = Field(
        None, description="crop dictionary; null: images_vg.pth beside the image folder (MRE-MI layout)"
    )
    region_dir: Path | None = Field(None, description="crop folder; null: images_vg/ beside the crop dictionary")
    region_key: Literal["image", "record"] = Field(
        "image", description="crop dictionary keys: image names (MRE-MI, Twitter) or record ids (MNRE line index)"
    )

    @property
    def image_slots(self) -> int:
        return 1 if self.image_layout == "first" else self.max_images

    @property
    def region_count(self) -> int:
        """k: region slots per image in a batch."""
        return self.regions_per_image


# The grounding queries of UMGF (Zhang et al., AAAI 2021): one crop per entity type.
ENTITY_TYPE_QUERIES = ("person", "location", "organization", "miscellaneous")


class QueryRegionInputs(RegionInputs):
    """Images plus one region per fixed text query (UMGF: one grounding crop per entity type), whatever the post says.

    A text-reading provider (``regions: detector``) is asked once per query for its best box; a
    text-free one (grid, crop dictionary) gives its top ``regions_per_image`` regions.
    """

    region_queries: tuple[str, ...] = Field(
        ENTITY_TYPE_QUERIES,
        min_length=1,
        max_length=16,
        description="the queries of the region provider, one region each (UMGF: the four entity types)",
    )
    regions_per_image: int = Field(
        len(ENTITY_TYPE_QUERIES), ge=1, le=16, description="k: regions per image, one per query of region_queries"
    )
    regions: Literal["detector", "grid", "precomputed"] = Field(  # type: ignore[assignment]
        "detector",
        description="a zero-shot detector queried with region_queries (grounding), offline grid saliency boxes (text-"
        "free), or a crop dictionary",
    )
    detector: str | None = Field(
        None, description="zero-shot detector (name or folder, local only) for regions: detector"
    )

    @property
    def image_slots(self) -> int:
        """One slot for the first or the stitched picture, max_images for all of them."""
        return self.max_images if self.image_layout == "all" else 1


class FocalInputs(RegionInputs):
    """FocalMRE's inputs: the patch features of framed copies of each image, one per region (VG and OD sets)."""

    regions_per_image: int = Field(4, ge=0, le=16, description="VG regions per image (paper: 4)")
    regions: Literal["precomputed", "grid", "detector"] = Field(  # type: ignore[assignment]
        "precomputed",
        description="VG regions: a crop dictionary (located in the image), the offline grid, or a detector",
    )
    od_regions: Literal["grid", "detector", "precomputed", "none"] = Field(
        "grid", description="OD regions: offline grid saliency, a detector, a crop dictionary, or none (no OD set)"
    )
    od_per_image: int = Field(3, ge=0, le=16, description="OD regions per image (paper: 3)")
    od_region_dict: str | None = Field(None, description="crop dictionary of the OD regions (od_regions: precomputed)")
    od_region_dir: str | None = Field(None, description="crop folder of od_region_dict; null: images_vg/ beside it")
    detector: str | None = Field(
        None, description="zero-shot detector (name or folder, local only) for regions/od_regions: detector"
    )
    image_input: Literal["focal", "cropped", "original"] = Field(
        "focal", description="Table 5: framed copies of the image, the cropped regions, or the original image"
    )
    patch_cells: int = Field(7, ge=1, le=32, description="patches per side the image grid is pooled to (7: 49, paper)")
    frame_width: int | None = Field(None, ge=1, description="frame width in pixels; null: 1.5% of the longer side")

    @property
    def focal_sets(self) -> tuple[int, int]:
        """(VG, OD) augmented images per image slot: the original image once per set with ``image_input: original``."""
        od = 0 if self.od_regions == "none" else self.od_per_image
        if self.image_input == "original":
            return 1, int(od > 0)
        return self.regions_per_image, od


class ImageTextInputs(InputSettings):
    """What an image says in words (object tags, a caption), from an image-text provider
    (:mod:`mmie.imagetext`), read as ``text_tokens`` sub-words of the model's own tokenizer per field."""

    image_text: Path | None = Field(
        None, description="image-text file (JSON lines keyed by image name, docs/imagetext.md); null: none"
    )
    max_tags: int = Field(20, ge=1, le=200, description="object tags read per image, most confident first")

    @property
    def image_text_fields(self) -> tuple[str, ...]:
        """The fields of :class:`~mmie.imagetext.ImageText` the model reads (``tags``, ``caption``)."""
        return ()

    @property
    def text_tokens(self) -> int:
        """Sub-word tokens per field and post (the text is cut or padded to this many)."""
        return 16


class SceneGraphInputs(InputSettings):
    """The scene graph of the post's first image, from a precomputed file (:mod:`mmie.scenegraph`): up to
    ``max_objects`` objects' feature vectors. No scene-graph detector runs in mmie: without
    ``scene_graphs`` the processor refuses to build."""

    scene_graphs: Path | None = Field(
        None, description="scene-graph file (JSON lines, docs/scenegraphs.md); null: there is none (refused)"
    )
    scene_graph_key: Literal["image", "record"] = Field(
        "image", description="scene-graph file keys: the first image's name, or record ids (MNRE line index)"
    )
    max_objects: int = Field(10, ge=1, le=256, description="objects read per image, most confident first (MEGA: 10)")
    object_feature_size: int = Field(4096, ge=1, description="numbers per object feature in the file (MEGA: 4096)")


class StructuralAlignmentInputs(SceneGraphInputs):
    """Scene graphs plus MEGA's structural alignment of the text's graph with each scene graph."""

    text_graph: Literal["file", "chain"] = Field(
        "file",
        description="the text graph of the structural alignment: the parse the file carries (text_heads), or "
        "the approximation linking each word to the next (no parser installs offline)",
    )
    alignment_top: int = Field(5, ge=1, le=512, description="words kept per object in the structural alignment")
