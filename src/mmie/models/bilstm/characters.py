"""Character encoders: one vector per word from the characters it is written with.

Both take ``char_ids [batch, words, characters]`` (0: padding, after each word's last character
and for padding words) and return ``[batch, words, output_dim]``. Padding never changes a word's
vector: the CNN masks the windows that hold none of the word's characters before its max-pooling,
the BiLSTM reads each word packed to its own length. A padding word (no character) gets zeros.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from mmie.features.words import PAD_ID


def uniform_embeddings(count: int, dim: int) -> nn.Embedding:
    """An embedding table drawn from U[-sqrt(3 / dim), +sqrt(3 / dim)] (Ma & Hovy 2016, sec. 3.1),
    its padding row (id 0) zero and kept so (no gradient reaches it)."""
    embeddings = nn.Embedding(count, dim, padding_idx=PAD_ID)
    bound = math.sqrt(3.0 / dim)
    with torch.no_grad():
        embeddings.weight.uniform_(-bound, bound)
        embeddings.weight[PAD_ID].zero_()
    return embeddings


class CharacterCnn(nn.Module):
    """Ma & Hovy (2016), sec. 2.1 and Figure 1: character embeddings -> convolution -> max-pooling.

        e_j = E_c[c_j]                              j = 1..n, the word's characters (dropout on e_j)
        z_t = tanh(W [e_{t-w+1}; ...; e_t] + b)     every window of w characters holding at least one
                                                    of the word's (padding e = 0 at both ends)
        r   = max_t z_t                             elementwise over the windows: [filters]

    The windows are those of a "full" convolution (w - 1 padding positions each side), as the
    authors' code (LasagneNLP's ``Conv1DLayer(pad="full")``) and tanh as its nonlinearity.
    """

    def __init__(self, alphabet_size: int, char_dim: int, filters: int, window: int, dropout: float) -> None:
        super().__init__()
        self.embeddings = uniform_embeddings(alphabet_size, char_dim)
        self.dropout = nn.Dropout(dropout)
        self.window = window
        self.conv = nn.Conv1d(char_dim, filters, kernel_size=window, padding=window - 1)
        self.output_dim = filters

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        batch, words, length = char_ids.shape
        flat = char_ids.reshape(batch * words, length)  # [N, L]
        lengths = (flat != PAD_ID).sum(1)  # characters are left-aligned: the count is the length
        if flat.numel() == 0:
            return flat.new_zeros(batch, words, self.output_dim, dtype=self.conv.weight.dtype)
        embedded = self.dropout(self.embeddings(flat)).transpose(1, 2)  # [N, char_dim, L]
        windows = torch.tanh(self.conv(embedded))  # [N, filters, L + w - 1]; window t ends at character t
        # window t covers characters t-w+1..t: it holds one of the word's iff t < length + w - 1
        positions = torch.arange(windows.size(-1), device=flat.device)
        holds_a_character = positions[None, :] < (lengths + self.window - 1)[:, None]  # [N, L + w - 1]
        windows = windows.masked_fill(~holds_a_character[:, None, :], float("-inf"))
        pooled = windows.max(dim=-1).values  # [N, filters]
        pooled = pooled.masked_fill((lengths == 0)[:, None], 0.0)  # padding words: zeros, not -inf
        return pooled.reshape(batch, words, self.output_dim)


class CharacterBiLstm(nn.Module):
    """Lample et al. (2016), sec. 4.1 and Figure 4: character embeddings -> forward and backward LSTMs.

        e_j = E_c[c_j]                           j = 1..n, the word's characters
        r   = [ ->h_n ; <-h_1 ]                  the forward LSTM's state after the last character
                                                 and the backward LSTM's after the first

    Each word is packed to its own length: the padding after its last character is never read.
    """

    def __init__(self, alphabet_size: int, char_dim: int, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.embeddings = uniform_embeddings(alphabet_size, char_dim)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(char_dim, hidden_size, batch_first=True, bidirectional=True)
        self.output_dim = 2 * hidden_size

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        batch, words, length = char_ids.shape
        flat = char_ids.reshape(batch * words, length)  # [N, L]
        lengths = (flat != PAD_ID).sum(1)
        vectors = flat.new_zeros(batch * words, self.output_dim, dtype=self.embeddings.weight.dtype)
        real = lengths > 0  # padding words have no character: they keep zeros
        if real.any():
            embedded = self.dropout(self.embeddings(flat[real]))  # [N_real, L, char_dim]
            packed = pack_padded_sequence(embedded, lengths[real].cpu(), batch_first=True, enforce_sorted=False)
            _, (final, _) = self.lstm(packed)  # final [2, N_real, hidden]: forward, backward
            vectors = vectors.index_put((real,), torch.cat([final[0], final[1]], dim=-1))
        return vectors.reshape(batch, words, self.output_dim)
