"""The multi-modal graph fusion of UMGF (Zhang et al., "Multi-modal Graph Fusion for Named Entity
Recognition with Targeted Visual Guidance", AAAI 2021, sec. 3.2-3.3), shared by its NER and RE models.

A post is one graph: its sub-words and its visual objects (the crops of the grounded entity types)
are the nodes; every word is linked to every word, every object to every object, and every word to
every object of its own post (the released code's ``inter_matrix``: all ones over the real words and
objects). Numbers (G1)-(G9) are this file's; the paper's own numbering is not quoted (it is not in
shared/papers). Each of the L layers updates both kinds of node:

    X^0 = W_t H + b_t                                   words to the fusion width d           (G1)
    O^0 = MLP(V) = drop(relu(W_2 drop(relu(W_1 V))))    objects to d (the code: two layers)   (G2)
  Intra-modal fusion:
    X' = LN(X + drop(MHA(X, X, X)))                     text self-attention, 8 heads          (G3)
    O' = LN(O + drop(MHA-o(O, O, O)))                   object self-attention; no value and
                                                        output maps (the code's v=0, output=0) (G4)
  Inter-modal fusion, over the word-object edges A (A_ij = 1: word i and object j of one post):
    g_ij = sigmoid(W_g [X'_i; O'_j] + b_g)              the gate of an edge, in (0, 1)^d      (G5)
    X''_i = LN(X'_i + drop(sum_j A_ij g_ij * O'_j))     words gather their objects            (G6)
    h_ij = sigmoid(W_h [X'_i; O'_j] + b_h)
    O''_j = LN(O'_j + drop(sum_i A_ij h_ij * X'_i))     objects gather their words            (G7)
  Position-wise feed-forward (width 256 in the paper), residual and layer norm:
    X^{l+1} = LN(X'' + drop(FFN(X'')));  O^{l+1} = LN(O'' + drop(FFN(O'')))                  (G8)
  The tagger or classifier reads [H; X^L]                                                    (G9)

The objects' update of the last layer (G7, G8 for O) reaches no output (the code computes it and
never reads it), so the last layer has none. Padded words and objects have no edge: a post without
an image has none at all, and its words go through (G6) unchanged but for the residual's norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmie.errors import ConfigError


def _xavier(module: nn.Module) -> None:
    """The reference's initialisation of its own linear maps: Xavier-uniform weights, zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax over the last axis with masked keys at the dtype's minimum (a row without a key stays finite)."""
    return scores.masked_fill(~mask, torch.finfo(scores.dtype).min).softmax(dim=-1)


class ObjectSelfAttention(nn.Module):
    """(G4): multi-head attention among the objects, the objects themselves as values (no value or output map)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, objects: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, count, dim = objects.shape

        def split(x: torch.Tensor) -> torch.Tensor:  # [B, o, d] -> [B, heads, o, d / heads]
            return x.view(batch, count, self.heads, dim // self.heads).transpose(1, 2)

        queries, keys, values = split(self.query(objects)), split(self.key(objects)), split(objects)
        scores = queries @ keys.transpose(-1, -2) / (dim // self.heads) ** 0.5  # [B, heads, o, o]
        weights = self.dropout(_masked_softmax(scores, mask[:, None, None, :]))
        return (weights @ values).transpose(1, 2).reshape(batch, count, dim)  # [B, heads, o, d/h] -> [B, o, d]


class EdgeGate(nn.Module):
    """(G5) / (G7): sigmoid(W [x_i; o_j] + b) for every word-object pair -> ``[B, n, o, d]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, words: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
        n, o = words.shape[1], objects.shape[1]
        pairs = torch.cat(  # [B, n, o, 2d]: word i beside object j
            [words[:, :, None].expand(-1, -1, o, -1), objects[:, None].expand(-1, n, -1, -1)], dim=-1
        )
        return torch.sigmoid(self.linear(pairs))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))


class GraphFusionLayer(nn.Module):
    """One layer (G3)-(G8); ``update_objects=False`` for the last one (its object update reaches nothing)."""

    def __init__(self, dim: int, heads: int, feedforward: int, dropout: float, update_objects: bool = True) -> None:
        super().__init__()
        self.text_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)  # G3
        self.text_norm = nn.LayerNorm(dim)
        self.object_attention = ObjectSelfAttention(dim, heads, dropout)  # G4
        self.object_norm = nn.LayerNorm(dim)
        self.word_gate = EdgeGate(dim)  # G5
        self.word_fusion_norm = nn.LayerNorm(dim)  # G6
        self.word_feedforward = FeedForward(dim, feedforward)  # G8
        self.word_output_norm = nn.LayerNorm(dim)
        self.update_objects = update_objects
        if update_objects:
            self.object_gate = EdgeGate(dim)  # G7
            self.object_fusion_norm = nn.LayerNorm(dim)
            self.object_feedforward = FeedForward(dim, feedforward)  # G8
            self.object_output_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, words: torch.Tensor, word_mask: torch.Tensor, objects: torch.Tensor, object_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Words ``[B, n, d]``, objects ``[B, o, d]`` and their masks -> both updated and the word-side
        gates g ``[B, n, o, d]`` (zero where there is no edge)."""
        attended, _ = self.text_attention(words, words, words, key_padding_mask=~word_mask, need_weights=False)
        words = self.text_norm(words + self.dropout(attended))  # X', G3
        objects = self.object_norm(objects + self.dropout(self.object_attention(objects, object_mask)))  # O', G4

        edges = (word_mask[:, :, None] & object_mask[:, None, :]).to(words.dtype)[..., None]  # A [B, n, o, 1]
        gates = self.word_gate(words, objects) * edges  # g_ij, G5 (zero off the edges)
        gathered = (gates * objects[:, None]).sum(dim=2)  # sum_j A_ij g_ij O'_j [B, n, d]
        fused_words = self.word_fusion_norm(words + self.dropout(gathered))  # X'', G6
        if self.update_objects:
            object_gates = self.object_gate(words, objects) * edges  # h_ij [B, n, o, d]
            to_objects = (object_gates * words[:, :, None]).sum(dim=1)  # sum_i A_ij h_ij X'_i [B, o, d]
            fused_objects = self.object_fusion_norm(objects + self.dropout(to_objects))  # O'', G7
            objects = self.object_output_norm(
                fused_objects + self.dropout(self.object_feedforward(fused_objects))
            )  # G8
        words = self.word_output_norm(fused_words + self.dropout(self.word_feedforward(fused_words)))  # X^{l+1}, G8
        return words, objects, gates


@dataclass
class GraphFusionOutput:
    """``words [B, n, d]``: X^L; ``gates [B, L, n, o]``: each layer's word-side gate g_ij averaged over its
    d units, zero where a word and an object share no edge (padding, another post, no image)."""

    words: torch.Tensor
    gates: torch.Tensor


class GraphFusion(nn.Module):
    """(G1)-(G8): text vectors and object vectors -> the fused word states X^L."""

    def __init__(
        self, text_dim: int, object_dim: int, dim: int, layers: int, heads: int, feedforward: int, dropout: float
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"model.fusion_heads: {heads} heads do not divide fusion_dim {dim}")
        self.text_projection = nn.Linear(text_dim, dim)  # W_t, G1
        self.object_projection = nn.Sequential(  # MLP, G2
            nn.Linear(object_dim, dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dim, dim),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.layers = nn.ModuleList(
            GraphFusionLayer(dim, heads, feedforward, dropout, update_objects=i < layers - 1) for i in range(layers)
        )
        _xavier(self)

    def forward(
        self, text: torch.Tensor, text_mask: torch.Tensor, objects: torch.Tensor, object_mask: torch.Tensor
    ) -> GraphFusionOutput:
        """``text [B, n, d_t]`` (``text_mask [B, n]``), ``objects [B, o, D]`` (``object_mask [B, o]``)."""
        text_mask, object_mask = text_mask.bool(), object_mask.bool()
        words = self.text_projection(text)  # X^0, G1
        nodes = self.object_projection(objects)  # O^0, G2
        gates = []
        for layer in self.layers:
            words, nodes, gate = layer(words, text_mask, nodes, object_mask)
            gates.append(gate.mean(dim=-1))  # [B, n, o]
        return GraphFusionOutput(words=words, gates=torch.stack(gates, dim=1))  # [B, L, n, o]
