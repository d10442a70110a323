"""The BiLSTM taggers: BiLSTM-CRF, CNN-BiLSTM-CRF (Ma & Hovy, 2016), HBiLSTM-CRF (Lample et al., 2016).

The three text-only rows below BERT in the MNER-MI paper's Table 3 (sec. 5.1). One model, three
character encoders (none, a CNN, a BiLSTM: :mod:`mmie.models.bilstm.characters`):

    w_i = E_w[word_i]                    word embedding (random, or a GloVe / word2vec file's vector);
                                         in training a word seen once reads as UNK with probability p
                                         (Lample et al. sec. 4: p = 0.5)
    x_i = [w_i ; r_i]                    r_i: the character encoder's vector of word i (none: x_i = w_i)
    h_i = [->LSTM(x)_i ; <-LSTM(x)_i]    the word BiLSTM (Lample et al. sec. 2.1; Ma & Hovy sec. 2.2)
    u_i = tanh(W_h h_i + b_h)            Lample et al.'s tagger (model.py) only; Ma & Hovy: u_i = h_i
    P_i = W_o u_i + b_o                  the tag scores, the CRF's emissions
    s(x, y) = sum_i A[y_{i-1}, y_i] + sum_i P_i[y_i]      (Lample et al. eq. 1; Ma & Hovy sec. 2.3)
    loss = -log p(y | x);  y* = argmax over valid BIO sequences (layers/crf.py)

Dropout (probability ``dropout``) at the sites the paper names (``config.dropout_sites``): Lample et
al. on the input of the BiLSTM (sec. 4.3); Ma & Hovy on the character embeddings and on the input
and output of the BiLSTM (sec. 3.3). Every word of a post is read at once, packed to the post's
length: padding words never reach the BiLSTM, so a post is tagged the same in any batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmie.errors import ConfigError
from mmie.features.collate import IGNORE_INDEX
from mmie.features.processor import word_ner_processor
from mmie.features.words import UNKNOWN_ID
from mmie.models.base import ExtractionModel, ModelConfig, TokenClassificationOutput
from mmie.models.bilstm.characters import CharacterBiLstm, CharacterCnn, uniform_embeddings
from mmie.models.bilstm.configuration import BilstmCrfConfig, CnnBilstmCrfConfig, HbilstmCrfConfig
from mmie.models.layers.crf import ConstrainedCRF
from mmie.models.layers.word_embeddings import fit_word_embeddings
from mmie.models.registry import register_model

if TYPE_CHECKING:
    from mmie.features.processor import TextVocabulary


@register_model("bilstm_crf", config=BilstmCrfConfig, processor=word_ner_processor)
class BilstmCrfTagger(ExtractionModel):
    """BiLSTM-CRF NER: word embeddings, a word BiLSTM and a BIO-constrained CRF (no characters)."""

    task = "ner"
    output_class = TokenClassificationOutput
    selected_output = "predictions"
    model_config: BilstmCrfConfig

    def __init__(self, config: BilstmCrfConfig, labels: list[str]) -> None:
        super().__init__(config, labels)
        if config.vocabulary_size is None or config.alphabet_size is None or config.singletons_from is None:
            raise ConfigError(
                f"model.vocabulary_size: {config.name} takes its vocabulary's sizes from its processor: "
                "build it from create_processor(...).config (or a saved model's config)"
            )
        self.singletons_from: int = config.singletons_from
        sites = config.dropout_sites
        self.word_embeddings = uniform_embeddings(config.vocabulary_size, config.word_dim)
        self.char_encoder = self.build_char_encoder(config, config.dropout if "characters" in sites else 0.0)
        input_dim = config.word_dim + (self.char_encoder.output_dim if self.char_encoder is not None else 0)
        self.input_dropout = nn.Dropout(config.dropout if "input" in sites else 0.0)
        self.lstm = nn.LSTM(input_dim, config.hidden_size, batch_first=True, bidirectional=True)
        self.output_dropout = nn.Dropout(config.dropout if "output" in sites else 0.0)
        width = 2 * config.hidden_size
        self.tanh_layer = nn.Linear(width, config.hidden_size) if config.tanh_layer else None
        self.classifier = nn.Linear(config.hidden_size if config.tanh_layer else width, len(labels))
        self.crf = ConstrainedCRF(labels)

    def build_char_encoder(self, config: BilstmCrfConfig, dropout: float) -> CharacterCnn | CharacterBiLstm | None:
        """The character encoder of the model (None: words only)."""
        return None

    # ------------------------------------------------------------------ building and saving

    @classmethod
    def build_components(cls, config: ModelConfig, component_configs: dict[str, dict] | None = None) -> dict:
        return {}  # nothing pretrained to load: the config has every size, the saved weights the rest

    def component_configs(self) -> dict[str, dict]:
        return {}

    def fit_vocabulary(self, tokenizer: TextVocabulary) -> None:
        """Check the embeddings cover ``tokenizer`` (the training split's vocabulary), and fill the rows
        of its words that ``model.word_vectors`` has; the others keep their random initialization."""
        config = self.model_config
        fit_word_embeddings(self.word_embeddings, tokenizer, config.word_vectors, config.word_dim, config.name)

    # ------------------------------------------------------------------------- running

    def forward(
        self,
        word_ids: torch.Tensor,
        char_ids: torch.Tensor,
        word_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> TokenClassificationOutput:
        emissions = self.emissions(word_ids.long(), char_ids.long(), word_mask)  # [batch, words, labels]
        return self.crf_output(emissions, word_mask, labels)

    def crf_output(
        self, emissions: torch.Tensor, word_mask: torch.Tensor, labels: torch.Tensor | None
    ) -> TokenClassificationOutput:
        """The CRF's loss (with ``labels``) and, outside training, its Viterbi paths."""
        loss = self.crf(emissions, labels, word_mask) if labels is not None else None
        predictions = None
        if not self.training:  # Viterbi only when the result is used
            predictions = self.crf.decode_padded(emissions, word_mask, IGNORE_INDEX)
        return TokenClassificationOutput(loss=loss, logits=emissions, predictions=predictions)

    def word_inputs(self, word_ids: torch.Tensor, char_ids: torch.Tensor) -> torch.Tensor:
        """``x_i = [w_i ; r_i]``: ``[batch, words, word_dim (+ character vector)]``."""
        if self.training and self.model_config.singleton_unknown > 0:
            # Lample et al. sec. 4: a word seen once in training reads as UNK with probability p, so
            # the UNK embedding (what unseen words read at test time) is learnt.
            seen_once = word_ids >= self.singletons_from
            draws = torch.rand(word_ids.shape, device=word_ids.device) < self.model_config.singleton_unknown
            word_ids = word_ids.masked_fill(seen_once & draws, UNKNOWN_ID)
        vectors = self.word_embeddings(word_ids)
        if self.char_encoder is not None:
            vectors = torch.cat([vectors, self.char_encoder(char_ids)], dim=-1)
        return vectors

    def emissions(self, word_ids: torch.Tensor, char_ids: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """The CRF's emissions ``P [batch, words, labels]``."""
        return self.tag_scores(self.word_states(word_ids, char_ids, word_mask))

    def word_states(self, word_ids: torch.Tensor, char_ids: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """The word BiLSTM's states ``h [batch, words, 2 * hidden_size]`` (after the output dropout)."""
        inputs = self.input_dropout(self.word_inputs(word_ids, char_ids))  # [B, n, input_dim]
        if inputs.size(1) == 0:  # a batch of posts without words
            return inputs.new_zeros(inputs.size(0), 0, 2 * self.lstm.hidden_size)
        lengths = word_mask.sum(1).clamp(min=1).cpu()  # an empty post runs on its one padding word
        packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=inputs.size(1))
        return self.output_dropout(hidden)  # [B, n, 2 * hidden_size]

    def tag_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """``P = W_o u + b_o`` from word vectors ``[batch, words, 2 * hidden_size]`` (through the tanh
        layer when the model has one)."""
        if self.tanh_layer is not None:
            hidden = torch.tanh(self.tanh_layer(hidden))
        return self.classifier(hidden)


@register_model("cnn_bilstm_crf", config=CnnBilstmCrfConfig, processor=word_ner_processor)
class CnnBilstmCrfTagger(BilstmCrfTagger):
    """CNN-BiLSTM-CRF NER (Ma & Hovy, 2016): BiLSTM-CRF over words and a character CNN's vectors."""

    model_config: CnnBilstmCrfConfig

    def __init__(self, config: CnnBilstmCrfConfig, labels: list[str]) -> None:
        super().__init__(config, labels)
        # Ma & Hovy sec. 3.1: biases zero but the LSTM forget gate's, 1.0 (Jozefowicz et al., 2015).
        # PyTorch has two bias vectors per direction (input and hidden): their forget rows sum to 1.
        size = config.hidden_size
        with torch.no_grad():
            for name, bias in self.lstm.named_parameters():
                if name.startswith("bias"):
                    bias.zero_()
                    if name.startswith("bias_ih"):
                        bias[size : 2 * size] = 1.0  # gate order: input, forget, cell, output

    def build_char_encoder(self, config: BilstmCrfConfig, dropout: float) -> CharacterCnn:
        assert isinstance(config, CnnBilstmCrfConfig) and config.alphabet_size is not None
        return CharacterCnn(config.alphabet_size, config.char_dim, config.char_filters, config.char_window, dropout)


@register_model("hbilstm_crf", config=HbilstmCrfConfig, processor=word_ner_processor)
class HbilstmCrfTagger(BilstmCrfTagger):
    """HBiLSTM-CRF NER (Lample et al., 2016): BiLSTM-CRF over words and a character BiLSTM's vectors."""

    model_config: HbilstmCrfConfig

    def build_char_encoder(self, config: BilstmCrfConfig, dropout: float) -> CharacterBiLstm:
        assert isinstance(config, HbilstmCrfConfig) and config.alphabet_size is not None
        return CharacterBiLstm(config.alphabet_size, config.char_dim, config.char_hidden_size, dropout)
