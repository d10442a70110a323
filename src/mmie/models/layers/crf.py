"""A linear-chain CRF over BIO labels whose Viterbi decoding never outputs an invalid sequence.

The CRF itself is pytorch-crf's (``torchcrf.CRF``: log-likelihood, Viterbi). pytorch-crf has no
notion of forbidden transitions, so the BIO constraints are applied *at decode time* as a mask on
its transition scores:

* ``I-X`` may follow only ``B-X`` or ``I-X``: every other ``transitions[prev, I-X]`` is replaced by
  :data:`FORBIDDEN` before Viterbi;
* no sequence starts with ``I-X``: ``start_transitions[I-X]`` is replaced by :data:`FORBIDDEN`.

Training is left unconstrained (the learnt transition scores soon make invalid moves unlikely);
only decoding is constrained, so the decoded path is the best *valid* BIO sequence. The masked
scores go to pytorch-crf through ``torch.func.functional_call``: the module's own parameters are
never modified, so decoding is side-effect free. Labels that are not BIO (``O`` and anything
without a ``B-``/``I-`` prefix) are unconstrained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchcrf import CRF

# A finite "minus infinity": keeps Viterbi's sums finite while no valid path can lose to it.
FORBIDDEN = -1e4


def bio_constraints(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(allowed_start [L], allowed_transitions [L, L])`` for BIO labels (``[prev, next]``)."""
    count = len(labels)
    allowed_start = torch.ones(count, dtype=torch.bool)
    allowed = torch.ones(count, count, dtype=torch.bool)
    for target, label in enumerate(labels):
        if not label.startswith("I-"):
            continue
        kind = label[2:]
        allowed_start[target] = False
        for source, previous in enumerate(labels):
            allowed[source, target] = previous in (f"B-{kind}", f"I-{kind}")
    return allowed_start, allowed


class _Viterbi(nn.Module):
    """``forward`` = the wrapped CRF's Viterbi decoding, so functional_call can swap its scores."""

    def __init__(self, crf: CRF) -> None:
        super().__init__()
        self.crf = crf

    def forward(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        return self.crf.decode(emissions, mask)


class ConstrainedCRF(nn.Module):
    """pytorch-crf's CRF (batch first) with BIO-constrained Viterbi decoding."""

    allowed_start: torch.Tensor  # buffers, registered in __init__
    allowed_transitions: torch.Tensor

    def __init__(self, labels: Sequence[str]) -> None:
        super().__init__()
        self.crf = CRF(len(labels), batch_first=True)
        allowed_start, allowed = bio_constraints(labels)
        # Buffers (not parameters): they follow .to(device) but are not learnt; not persistent since
        # they derive from the label set, which the model folder saves anyway.
        self.register_buffer("allowed_start", allowed_start, persistent=False)
        self.register_buffer("allowed_transitions", allowed, persistent=False)

    @staticmethod
    def _valid_mask(mask: torch.Tensor) -> torch.Tensor:
        # pytorch-crf needs the first position of every sequence switched on; a post with no word
        # (all masked) becomes a one-word sequence whose output is dropped by the caller.
        mask = mask.bool().clone()
        mask[:, 0] = True
        return mask

    def forward(self, emissions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of ``labels`` ``[batch, words]`` (masked positions ignored)."""
        if emissions.size(1) == 0:  # a batch of posts without words
            return emissions.sum() * 0.0
        mask = self._valid_mask(mask)
        labels = labels.masked_fill(~mask | (labels < 0), 0)
        return -self.crf(emissions.float(), labels, mask=mask, reduction="mean")

    def marginal_scores(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[batch, words, labels]``: alpha_t + beta_t of the forward-backward algorithm, the log of each
        label's unnormalised marginal at each word (softmax over labels gives p(y_t = l | x)); zeros at
        masked words. Differentiable (the unconstrained scores, as training uses)."""
        crf, mask = self.crf, self._valid_mask(mask)
        emissions = emissions.float()
        words = emissions.size(1)
        transitions = crf.transitions[None]  # [1, L(prev), L(next)]
        alphas = [crf.start_transitions[None] + emissions[:, 0]]  # alpha_0 [B, L]
        for t in range(1, words):
            step = torch.logsumexp(alphas[-1][:, :, None] + transitions, dim=1) + emissions[:, t]
            alphas.append(torch.where(mask[:, t, None], step, alphas[-1]))
        end = crf.end_transitions[None].expand_as(alphas[0])
        betas = [end]  # beta_{n-1}: the end score; a word followed by padding is a last word
        for t in range(words - 2, -1, -1):
            step = torch.logsumexp(transitions + (emissions[:, t + 1] + betas[0])[:, None, :], dim=2)
            betas.insert(0, torch.where(mask[:, t + 1, None], step, end))
        scores = torch.stack(alphas, 1) + torch.stack(betas, 1)  # [B, n, L]
        return scores * mask[..., None]

    def constrained_scores(self) -> dict[str, torch.Tensor]:
        """The CRF's scores with forbidden starts and transitions replaced by FORBIDDEN."""
        forbidden = torch.tensor(FORBIDDEN, dtype=self.crf.transitions.dtype, device=self.crf.transitions.device)
        return {
            "crf.start_transitions": torch.where(self.allowed_start, self.crf.start_transitions, forbidden),
            "crf.transitions": torch.where(self.allowed_transitions, self.crf.transitions, forbidden),
            "crf.end_transitions": self.crf.end_transitions,
        }

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The best valid label sequence of each post (as long as its mask)."""
        lengths = mask.bool().sum(1).tolist()
        paths = torch.func.functional_call(
            _Viterbi(self.crf), self.constrained_scores(), (emissions.float(), self._valid_mask(mask))
        )
        return [path[:length] for path, length in zip(paths, lengths)]

    @torch.no_grad()
    def decode_padded(self, emissions: torch.Tensor, mask: torch.Tensor, fill: int) -> torch.Tensor:
        """:meth:`decode` as a ``[batch, words]`` tensor of label ids, ``fill`` past each post's end."""
        predictions = torch.full(mask.shape, fill, dtype=torch.long, device=emissions.device)
        if mask.size(1) == 0:
            return predictions
        for row, path in enumerate(self.decode(emissions, mask)):
            predictions[row, : len(path)] = torch.tensor(path, dtype=torch.long, device=emissions.device)
        return predictions
