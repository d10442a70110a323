"""``mmie score GOLD PRED``: metrics of a prediction file against a gold dataset file."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmie.cli.typer_apps import app
from mmie.data import read_dataset
from mmie.evaluation.predictions import read_predictions, score_predictions

_COUNT_COLUMNS = ("support", "predicted", "correct")


def _table(title: str, rows: list[tuple[str, dict]], rates: tuple[str, ...], counts: tuple[str, ...]) -> list[str]:
    """A plain-text table: rates as percentages with two decimals, counts as integers."""
    width = max([len(title)] + [len(name) for name, _ in rows]) + 2
    lines = [title.ljust(width) + "".join(f"{column:>11}" for column in rates + counts)]
    for name, values in rows:
        cells = [f"{100 * values[column]:>11.2f}" for column in rates]
        cells += [f"{values[column]:>11d}" for column in counts]
        lines.append(name.ljust(width) + "".join(cells))
    return lines


def format_scores(scores: dict, task: str) -> str:
    """The readable report of :func:`mmie.evaluation.predictions.score_predictions`' result."""
    per_key, kind = ("per_type", "entity type") if task == "ner" else ("per_relation", "relation")
    rates = ("precision", "recall", "f1") if task == "ner" else ("accuracy", "precision", "recall", "f1")
    lines = _table("overall", [("all", scores)], rates, _COUNT_COLUMNS + ("n",))
    lines += [""] + _table(kind, list(scores[per_key].items()), ("precision", "recall", "f1"), _COUNT_COLUMNS)
    by_images = scores.get("by_images", {})
    groups = [(name, values) for name, values in by_images.items() if values["n"]]
    if groups:
        lines += [""] + _table("images", groups, rates, _COUNT_COLUMNS + ("n",))
    return "\n".join(lines)


@app.command("score")
def score(
    gold: Path = typer.Argument(..., help="Gold dataset file (any format mmie reads)."),
    pred: Path = typer.Argument(..., help="Prediction file (JSON lines, see docs/predictions.md)."),
    format_name: str | None = typer.Option(
        None, "--format", "-f", help="Format of GOLD: twitter, mnermi, mnre, mremi (detected when omitted)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
    strict: bool = typer.Option(
        False, "--strict", help="NER: seqeval strict IOB2 (entities must open with B-) instead of conlleval."
    ),
) -> None:
    """Score predictions against gold: P/R/F1 overall, per type or relation, by number of images."""
    dataset = read_dataset(gold, format_name)
    predictions = read_predictions(pred)
    mode = "strict" if strict else "conlleval"
    scores = score_predictions(
        dataset.records, predictions, task=dataset.task, gold_path=dataset.path, pred_path=pred, mode=mode
    )
    if as_json:
        header = {"task": dataset.task, "gold": str(gold), "predictions": str(pred)}
        typer.echo(json.dumps({**header, **scores}))
        return
    unit = "posts" if dataset.task == "ner" else "instances"
    reading = f", {mode} entity chunking" if dataset.task == "ner" else ""
    size = f"{len(dataset.records)} {unit}{reading}"
    typer.echo(f"{dataset.task.upper()} scores of {pred} against {gold} ({size})")
    typer.echo("rates in %; support = gold units, predicted = predicted units, correct = exact matches\n")
    typer.echo(format_scores(scores, dataset.task))
    if dataset.task == "ner" and dataset.irregular_tags:
        effect = "not counted as entities (strict)" if strict else "read as entity starts (conlleval)"
        count = dataset.irregular_tags
        typer.echo(f"\nnote: the gold has {count} I- tags that do not continue an entity: {effect}")
    if strict and dataset.task == "re":
        typer.echo("\nnote: --strict changes only NER scoring", err=True)
