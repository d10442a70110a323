"""The BIO-constrained CRF: Viterbi against brute-force enumeration of every valid label sequence."""

from __future__ import annotations

import itertools

import pytest
import torch

from mmie.models.layers.crf import ConstrainedCRF, bio_constraints

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def is_valid_bio(path: tuple[int, ...], labels: list[str]) -> bool:
    previous = "O"
    for index in path:
        label = labels[index]
        if label.startswith("I-") and previous not in (f"B-{label[2:]}", f"I-{label[2:]}"):
            return False
        previous = label
    return True


@torch.no_grad()
def path_score(crf: ConstrainedCRF, emissions: torch.Tensor, path: tuple[int, ...]) -> float:
    inner = crf.crf
    score = inner.start_transitions[path[0]] + emissions[0, path[0]]
    for position in range(1, len(path)):
        score = score + inner.transitions[path[position - 1], path[position]] + emissions[position, path[position]]
    return float(score + inner.end_transitions[path[-1]])


def brute_force(crf: ConstrainedCRF, emissions: torch.Tensor, labels: list[str]) -> list[int]:
    candidates = (
        path for path in itertools.product(range(len(labels)), repeat=emissions.size(0)) if is_valid_bio(path, labels)
    )
    return list(max(candidates, key=lambda path: path_score(crf, emissions, path)))


def test_constraint_masks():
    allowed_start, allowed = bio_constraints(LABELS)
    assert allowed_start.tolist() == [True, True, False, True, False]
    i_per = LABELS.index("I-PER")
    assert [allowed[source, i_per].item() for source in range(len(LABELS))] == [False, True, True, False, False]
    assert allowed[:, LABELS.index("O")].all() and allowed[:, LABELS.index("B-LOC")].all()


@pytest.mark.parametrize("seed", range(12))
def test_viterbi_equals_brute_force_over_valid_sequences(seed):
    generator = torch.Generator().manual_seed(seed)
    crf = ConstrainedCRF(LABELS)
    with torch.no_grad():  # transitions that *favour* invalid moves, so the constraint matters
        for parameter in crf.crf.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 3)
        crf.crf.start_transitions[LABELS.index("I-PER")] = 10.0
        crf.crf.transitions[LABELS.index("O"), LABELS.index("I-LOC")] = 10.0
    lengths = [4, 2, 1, 3]
    emissions = torch.randn(len(lengths), max(lengths), len(LABELS), generator=generator) * 2
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    decoded = crf.decode(emissions, mask)
    for row, length in enumerate(lengths):
        expected = brute_force(crf, emissions[row, :length], LABELS)
        assert decoded[row] == expected
        assert is_valid_bio(tuple(decoded[row]), LABELS)


def test_decoding_leaves_parameters_untouched_and_unconstrained_decode_differs():
    crf = ConstrainedCRF(LABELS)
    with torch.no_grad():
        crf.crf.start_transitions.zero_()
        crf.crf.start_transitions[LABELS.index("I-PER")] = 50.0
    before = {name: value.clone() for name, value in crf.state_dict().items()}
    emissions = torch.zeros(1, 2, len(LABELS))
    mask = torch.ones(1, 2, dtype=torch.bool)
    raw = crf.crf.decode(emissions, mask)[0]
    constrained = crf.decode(emissions, mask)[0]
    assert LABELS[raw[0]] == "I-PER"  # pytorch-crf alone starts with I-PER
    assert LABELS[constrained[0]] != "I-PER"
    for name, value in crf.state_dict().items():
        assert torch.equal(value, before[name])


def test_loss_is_a_negative_log_likelihood_and_trains():
    torch.manual_seed(0)
    crf = ConstrainedCRF(LABELS)
    emissions = torch.randn(2, 3, len(LABELS), requires_grad=True)
    labels = torch.tensor([[1, 2, 0], [3, -100, -100]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    loss = crf(emissions, labels, mask)
    assert loss.item() > 0
    loss.backward()
    assert emissions.grad is not None and crf.crf.transitions.grad is not None
    # A post without any word contributes nothing and does not crash.
    no_words = torch.zeros(1, 0, dtype=torch.long)
    empty = crf(torch.randn(1, 0, len(LABELS)), no_words, no_words.bool())
    assert empty.item() == 0.0
