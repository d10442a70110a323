"""Paired significance over test examples: approximate randomisation on the saved predictions.

The papers mark a row with a dagger when it is significantly better (p < 0.05) than the best
baseline by "a paired test over the test examples". mmie uses **approximate randomisation**
(Noreen, 1989; the form of Riezler and Maxwell, 2005, also used by Dror et al., 2018): for every
trial, each test example's two predictions (system A's and the reference's) are swapped with
probability 1/2, and the corpus-level micro F1 difference is recomputed. The one-sided p-value is

    p = (1 + #{trials with F1(A') - F1(B') >= F1(A) - F1(B)}) / (1 + trials)

It tests the metric the tables report (micro F1 over entities, or over relations without ``None``),
which is not a mean over examples, so a t-test would not do. It is seeded and deterministic: the
same predictions and seed give the same p-value.

Several seeds: the runs of the two rows are paired by seed (seed 42 of A with seed 42 of B; runs
with no same-seed partner are paired in seed order), and their examples are **pooled**: seed i's
example j is one paired unit. The statistic is then the F1 over the pooled predictions.

Every example reduces to three counts (correct, predicted, gold units; :func:`example_counts`), so a
trial is two matrix-vector products and 10,000 trials over 4,500 examples take well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmie.data.schema import NO_RELATION
from mmie.evaluation.metrics import ner_entities
from mmie.evaluation.predictions import ner_metric_inputs, re_metric_inputs

DEFAULT_TRIALS = 10_000
DEFAULT_SEED = 12345


def describe_test(trials: int) -> str:
    """The test's name as the report captions give it, with its number of trials."""
    return f"approximate randomisation (paired, one-sided, {trials:,} trials)"


def example_counts(task: str, gold: Sequence, predictions: Sequence[dict], mode: str = "conlleval") -> np.ndarray:
    """``[n, 3]`` counts per example: units predicted correctly, predicted, in the gold.

    NER units are entities ``(type, start, end)``; RE units are non-``None`` labels (the micro F1 of
    :func:`mmie.evaluation.metrics.re_scores`). Their sums give exactly the reported micro F1.
    """
    if task == "ner":
        gold_tags, pred_tags, _ = ner_metric_inputs(gold, predictions)
        rows = []
        for gold_seq, pred_seq in zip(gold_tags, pred_tags):
            gold_entities, pred_entities = ner_entities(gold_seq, mode), ner_entities(pred_seq, mode)
            rows.append((len(gold_entities & pred_entities), len(pred_entities), len(gold_entities)))
    else:
        gold_labels, pred_labels, _ = re_metric_inputs(gold, predictions)
        rows = [
            (int(g != NO_RELATION and g == p), int(p != NO_RELATION), int(g != NO_RELATION))
            for g, p in zip(gold_labels, pred_labels)
        ]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def micro_f1(counts: np.ndarray) -> float:
    correct, predicted, gold = counts.sum(axis=0)
    return float(2 * correct / (predicted + gold)) if predicted + gold else 0.0


def _f1(correct: np.ndarray, predicted: np.ndarray, gold: float) -> np.ndarray:
    denominator = predicted + gold
    return np.divide(2 * correct, denominator, out=np.zeros_like(correct), where=denominator > 0)


def approximate_randomisation(
    system: np.ndarray, reference: np.ndarray, trials: int = DEFAULT_TRIALS, seed: int = DEFAULT_SEED
) -> dict:
    """Is ``system`` better than ``reference`` (paired example counts, see :func:`example_counts`)?

    Returns ``{"delta", "p_value", "trials", "seed", "n", "test"}``; ``delta`` = F1(system) - F1(reference).
    """
    if system.shape != reference.shape:
        raise ValueError(f"unpaired counts: {system.shape} vs {reference.shape}")
    if not np.array_equal(system[:, 2], reference[:, 2]):
        raise ValueError("the two systems were scored on different gold data")
    gold = float(system[:, 2].sum())
    correct_a, predicted_a = system[:, 0].sum(), system[:, 1].sum()
    correct_b, predicted_b = reference[:, 0].sum(), reference[:, 1].sum()
    observed = float(
        _f1(np.array([correct_a]), np.array([predicted_a]), gold)[0]
        - _f1(np.array([correct_b]), np.array([predicted_b]), gold)[0]
    )
    diff_correct = reference[:, 0] - system[:, 0]  # what a swap adds to A (and takes from B)
    diff_predicted = reference[:, 1] - system[:, 1]
    rng = np.random.default_rng(seed)
    at_least = 0
    chunk = max(1, min(trials, 2_000_000 // max(1, len(system))))
    for start in range(0, trials, chunk):
        swaps = rng.integers(0, 2, size=(min(chunk, trials - start), len(system))).astype(np.float64)
        moved_correct, moved_predicted = swaps @ diff_correct, swaps @ diff_predicted
        delta = _f1(correct_a + moved_correct, predicted_a + moved_predicted, gold) - _f1(
            correct_b - moved_correct, predicted_b - moved_predicted, gold
        )
        at_least += int(np.count_nonzero(delta >= observed - 1e-12))
    return {
        "delta": observed,
        "p_value": (1 + at_least) / (1 + trials),
        "trials": trials,
        "seed": seed,
        "n": len(system),
        "test": "approximate randomisation, paired, one-sided",
    }


def pair_by_seed(system: dict[int, np.ndarray], reference: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pool the runs of two rows, paired by seed (the leftovers in seed order); see the module docstring."""
    common = sorted(set(system) & set(reference))
    left = sorted(set(system) - set(common))
    right = sorted(set(reference) - set(common))
    pairs = [(s, s) for s in common] + list(zip(left, right))
    if not pairs:
        raise ValueError("no runs to pair")
    return (
        np.concatenate([system[a] for a, _ in pairs]),
        np.concatenate([reference[b] for _, b in pairs]),
    )
