"""Configs of the BiLSTM taggers, the text rows "BiLSTM-CRF", "CNN-BiLSTM-CRF" and "HBiLSTM-CRF"
of the MNER-MI paper's Table 3 (shared/papers/001_…, sec. 5.1).

They read words (:class:`~mmie.features.settings.WordInputs`): their vocabulary is built from the
training split, and they have no pretrained text encoder, so ``encoder`` is ``none`` (the only
value); pretrained word vectors come from a text file named by ``word_vectors``. Defaults are the
papers' values: Lample et al. (2016, sec. 4-5; their tagger's defaults, github.com/glample/tagger)
for BiLSTM-CRF and HBiLSTM-CRF, Ma & Hovy (2016, sec. 3, Table 1) for CNN-BiLSTM-CRF.

GVATT-HBiLSTM-CRF and AdaCAN-CNN-BiLSTM-CRF, the BiLSTM rows with images, add the first image read
as a grid of regions (:class:`~mmie.models.umt.configuration.ImageGridConfig`: ``region_grid``, the
vision encoder, frozen or not).

Where a model puts its dropout and whether a tanh layer sits between the BiLSTM and the tag
scores is the paper's architecture, not a setting: ``dropout_sites`` and ``tanh_layer``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from mmie.features.settings import WordInputs
from mmie.models.base import ModelConfig
from mmie.models.umt.configuration import ImageGridConfig

# Where the dropout of ``dropout`` applies: the character embeddings (before the character encoder),
# the BiLSTM's input (word + character vectors), the BiLSTM's output.
DropoutSite = Literal["characters", "input", "output"]


# WordInputs first: its max_length (words per post) must win over the sub-word one of ModelConfig's base.
class BilstmCrfConfig(WordInputs, ModelConfig):
    """BiLSTM-CRF: word embeddings -> BiLSTM -> CRF (Lample et al.'s LSTM-CRF without characters)."""

    dropout_sites: ClassVar[tuple[DropoutSite, ...]] = ("input",)  # Lample et al. sec. 4.3
    tanh_layer: ClassVar[bool] = True  # glample/tagger model.py: tanh(W [h_fwd; h_bwd]) before the tag scores

    name: str = "bilstm_crf"
    encoder: Literal["none"] = Field(
        "none", description="no pretrained text encoder: the words' own embeddings and BiLSTM, trained from scratch"
    )
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout probability (where: the model's dropout_sites)")
    word_dim: int = Field(100, ge=1, description="word embedding size (the word_vectors file must have it)")
    word_vectors: Path | None = Field(
        None, description="GloVe / word2vec text file initializing the word embeddings; null: random initialization"
    )
    hidden_size: int = Field(100, ge=1, description="units of each direction of the word BiLSTM")
    singleton_unknown: float = Field(
        0.5, ge=0.0, le=1.0, description="probability that a word seen once in training reads as unknown, in training"
    )


class CnnBilstmCrfConfig(BilstmCrfConfig):
    """CNN-BiLSTM-CRF (Ma & Hovy, 2016): a character CNN's vector beside each word embedding."""

    dropout_sites: ClassVar[tuple[DropoutSite, ...]] = ("characters", "input", "output")  # Ma & Hovy sec. 3.3
    tanh_layer: ClassVar[bool] = False  # the BiLSTM's output goes straight to the CRF (sec. 2.4)

    name: str = "cnn_bilstm_crf"
    lowercase: bool = Field(True, description="look words up lowercased (GloVe is lowercased; characters keep case)")
    singleton_unknown: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="probability that a word seen once in training reads as unknown (Ma & Hovy: none)",
    )
    hidden_size: int = Field(200, ge=1, description="units of each direction of the word BiLSTM (Table 1: 200)")
    char_dim: int = Field(30, ge=1, description="character embedding size (sec. 3.1: 30)")
    char_filters: int = Field(30, ge=1, description="convolution filters = character vector size (Table 1: 30)")
    char_window: int = Field(3, ge=1, description="convolution window, in characters (Table 1: 3)")


class HbilstmCrfConfig(BilstmCrfConfig):
    """HBiLSTM-CRF (Lample et al., 2016): a character BiLSTM's vector beside each word embedding."""

    name: str = "hbilstm_crf"
    char_dim: int = Field(25, ge=1, description="character embedding size (sec. 4.1: 25)")
    char_hidden_size: int = Field(25, ge=1, description="units of each direction of the character BiLSTM (25)")


# HbilstmCrfConfig / CnnBilstmCrfConfig first: their word settings (max_length in words, dropout 0.5,
# encoder "none") must win over the sub-word ones of the image grid's ModelConfig base.
class GvattHbilstmCrfConfig(HbilstmCrfConfig, ImageGridConfig):
    """GVATT-HBiLSTM-CRF (Lu et al., ACL 2018): HBiLSTM-CRF plus visual attention over the first image's
    region grid, queried by the sentence, and a visual modulation gate per word."""

    name: str = "gvatt_hbilstm_crf"
    attention_dim: int = Field(100, ge=1, description="k: width of the additive attention over the regions")


class AdacanCnnBilstmCrfConfig(CnnBilstmCrfConfig, ImageGridConfig):
    """AdaCAN-CNN-BiLSTM-CRF (Zhang et al., AAAI 2018): CNN-BiLSTM-CRF plus the adaptive co-attention
    network (word-guided visual and image-guided textual attention, gated fusion, filtration gate)."""

    name: str = "adacan_cnn_bilstm_crf"
    attention_dim: int = Field(
        200, ge=1, description="k: width of both attentions and of the fused multimodal vector (authors' code: 200)"
    )
