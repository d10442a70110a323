"""A mixture of prefix experts (VisualPT-MoE, Xu et al., DASFAA 2023, sec. 3): several representations
of the image, each mapped to prefix keys and values of every text-encoder layer, mixed per layer by a gate.

The paper's text is not among the shared papers; each step was checked against the authors' code
(xubodhu/VisualPT-MoE, ``model/moe_model.py`` and the ``BertEncoder`` of its modified
``modeling_bert.py``). Numbered in order:

    X_e        = expert e's prompt tokens                          [P, d_e]      (1)  P = prompt length
    [K_e^l|V_e^l] = M_e(X_e) = W_2 tanh(W_1 X_e), split by layer   [P, 2 d] x L  (2)  one MLP per expert
    z^l        = flatten(sum_e (K_e^l + V_e^l))                    [P d]         (3)
    g^l        = softmax(W_g^l z^l + eps), eps ~ N(0, sigma^2)     [E]           (4)  eps in training only
    K^l, V^l   = sum_e g^l_e K_e^l,  sum_e g^l_e V_e^l             [P, d]        (5)  the prefix of layer l
    B          = sum_l sum_b max_e g^l_{b,e}                                     (6)  the balance loss

d = heads x head size of the text encoder. B is least, L x batch / E, when every gate is uniform:
pushing it down keeps the gate from settling on one expert. An expert the model does not use is not
built (no parameters, no gate output). Every one of the P prefix positions is attended to, as in the
reference (its experts pad their tokens with zero vectors or pad-token embeddings, not masks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig

from mmie.models.layers.visual_prefix import AttentionShape, Prefix


@dataclass
class MixedPrefix:
    """The mixed prefix of every layer, each layer's expert weights ``[B, L, E]`` and the balance loss (6)."""

    prefix: Prefix
    weights: torch.Tensor
    balance: torch.Tensor


class PrefixExperts(nn.Module):
    """Eq. 1-6: expert tokens ``{name: [B, P, d_e]}`` -> one gated prefix of P keys and values per layer."""

    def __init__(
        self,
        expert_dims: Mapping[str, int],
        prompt_length: int,
        text_config: PretrainedConfig,
        bottleneck: int,
        gate_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if not expert_dims:
            raise ValueError("a mixture of prefix experts needs at least one expert")
        self.shape = AttentionShape.from_config(text_config)
        self.names = tuple(expert_dims)
        self.prompt_length = prompt_length
        self.gate_noise = gate_noise
        self.width = self.shape.num_heads * self.shape.head_dim  # d: keys (or values) of one layer
        # M_e of eq. 2, one per expert (the reference's Linear(d_e, 1024) -> Tanh -> Linear(1024, L x 2 x 768))
        self.maps = nn.ModuleDict(
            {
                name: nn.Sequential(
                    nn.Linear(dim, bottleneck), nn.Tanh(), nn.Linear(bottleneck, self.shape.num_layers * 2 * self.width)
                )
                for name, dim in expert_dims.items()
            }
        )
        # W_g^l of eq. 4, one per text-encoder layer (the reference's Linear(16 x 768, 5) x 12)
        self.gates = nn.ModuleList(
            nn.Linear(prompt_length * self.width, len(self.names)) for _ in range(self.shape.num_layers)
        )

    def expert_key_values(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 1-2: ``{name: [B, P, d_e]}`` -> ``[E, L, 2, B, P, d]`` (expert, layer, key/value, post, position)."""
        missing = [name for name in self.names if name not in tokens]
        if missing:
            raise ValueError(f"no tokens for the expert(s) {', '.join(missing)}")
        outputs = []
        for name in self.names:
            batch, length, _ = tokens[name].shape
            if length != self.prompt_length:
                raise ValueError(f"expert {name!r} has {length} tokens, the prompt length is {self.prompt_length}")
            mapped = self.maps[name](tokens[name])  # [B, P, L * 2 * d]
            # [B, P, L * 2 * d] -> [B, P, L, 2, d] -> [L, 2, B, P, d]: layer l's keys, then its values
            mapped = mapped.view(batch, length, self.shape.num_layers, 2, self.width).permute(2, 3, 0, 1, 4)
            outputs.append(mapped)
        return torch.stack(outputs)

    def route(self, key_values: torch.Tensor) -> torch.Tensor:
        """Eq. 3-4: ``[E, L, 2, B, P, d]`` -> the gate ``[B, L, E]``, each row summing to 1."""
        summary = key_values.sum(dim=(0, 2))  # sum_e (K_e^l + V_e^l): [L, B, P, d]
        weights = []
        for gate, z in zip(self.gates, summary):
            logits = gate(z.flatten(1))  # z^l: [B, P * d] -> [B, E]
            if self.training and self.gate_noise > 0:
                logits = logits + torch.randn_like(logits) * self.gate_noise
            weights.append(logits.softmax(dim=-1))
        return torch.stack(weights, dim=1)

    def forward(self, tokens: Mapping[str, torch.Tensor]) -> MixedPrefix:
        key_values = self.expert_key_values(tokens)
        weights = self.route(key_values)  # [B, L, E]
        # eq. 5: [B, L, E] x [E, L, 2, B, P, d] -> [L, 2, B, P, d]
        mixed = torch.einsum("ble,elkbpd->lkbpd", weights, key_values)
        batch = weights.shape[0]
        heads = (batch, self.prompt_length, self.shape.num_heads, self.shape.head_dim)
        # [B, P, d] -> [B, heads, P, head_dim], the layout of the encoder's own keys and values
        layers = tuple(
            (keys.reshape(heads).transpose(1, 2), values.reshape(heads).transpose(1, 2)) for keys, values in mixed
        )
        mask = torch.ones(batch, self.prompt_length, dtype=torch.bool, device=weights.device)
        balance = weights.max(dim=-1).values.sum()  # eq. 6
        return MixedPrefix(Prefix(layers, mask), weights, balance)
