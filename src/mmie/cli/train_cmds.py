"""``mmie train``, ``mmie evaluate``, ``mmie predict``: thin wrappers of mmie.training and mmie.inference."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmie.cli.typer_apps import app
from mmie.errors import DataError

FORMAT_HELP = "twitter, mnermi, mnre or mremi (detected if omitted)."
IMAGES_HELP = (
    "Image folder the records' image references resolve against (image models need it); "
    "repeat it for several folders, searched in order (MNER-MI-Plus: images/ and twitter2017_images/)."
)


def _read_records(path: Path, data_format: str | None, task: str | None = None) -> list:
    """The records of a dataset file; with ``task``, a DataError unless they are that task's records."""
    from mmie.data import read_dataset

    dataset = read_dataset(path, format=data_format)
    if task is not None and dataset.task != task:
        raise DataError(
            f"holds {dataset.task.upper()} records ({dataset.format}), but the model is an {task.upper()} model",
            path=path,
        )
    return list(dataset.records)


@app.command("train")
def train_command(
    config: Path = typer.Argument(..., help="Experiment config (YAML), e.g. configs/twitter2017/bert_crf.yaml."),
    set_values: list[str] = typer.Option(
        [], "--set", help="Override a config key: --set training.learning_rate=5e-5 (repeatable)."
    ),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="Run folder (default: runs/<config name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the run folder from its checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in the run folder."),
    report_to: str | None = typer.Option(None, "--report-to", help="Logging integration: tensorboard."),
) -> None:
    """Train a model from an experiment config; select on dev; score dev and test."""
    from mmie.training import train

    result = train(
        config,
        output_dir=output_dir,
        overrides=set_values,
        resume=resume,
        overwrite=overwrite,
        report_to=[report_to] if report_to else None,
    )
    for split in ("dev", "test"):
        if split in result.metrics:
            typer.echo(f"{split}: " + _headline(result.metrics[split]))
    typer.echo(f"run folder: {result.run_dir}  (model: {result.model_dir})")


@app.command("evaluate")
def evaluate_command(
    model_dir: Path = typer.Argument(..., help="A trained model folder (<run>/model)."),
    file: Path = typer.Argument(..., help="A labelled dataset file."),
    data_format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the full metrics as JSON."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    images: list[Path] | None = typer.Option(None, "--images", help=IMAGES_HELP),
    per_relation: bool = typer.Option(
        False, "--per-relation", help="Print the per-relation table with support counts (FocalMRE Table 4)."
    ),
    challenge: str | None = typer.Option(
        None, "--challenge", help="Sweep a noise challenge: align-noise or aug-noise (FocalMRE Table 2)."
    ),
    ratios: str | None = typer.Option(
        None, "--ratios", help="Comma-separated noise ratios (default: the paper's: align 0.05..1, aug 0.1..1)."
    ),
    seed: int = typer.Option(13, "--seed", help="Seed of the challenge sets."),
    out: Path | None = typer.Option(None, "--out", help="With --challenge: write the sweep's JSON here."),
) -> None:
    """Score a trained model on a labelled file (P/R/F1, per type, by number of images), or sweep a challenge."""
    import mmie
    from mmie.evaluation.metrics import per_relation_rows, render_per_relation

    model = mmie.load_model(model_dir, images=images or None)
    if challenge is not None:
        _challenge(model, file, challenge, ratios, seed, data_format, batch_size, out)
        return
    metrics = model.evaluate(_read_records(file, data_format, model.task), batch_size=batch_size, progress=True)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
    elif per_relation:
        typer.echo("overall " + _headline(metrics) + "\n\n" + render_per_relation(per_relation_rows(metrics)))
    else:
        typer.echo(_report(metrics, model.task))


def _challenge(
    model,
    file: Path,
    challenge: str,
    ratios: str | None,
    seed: int,
    data_format: str | None,
    batch_size: int,
    out: Path | None,
) -> None:
    from mmie.errors import ConfigError
    from mmie.inference.challenges import challenge_sweep, render_challenge_table
    from mmie.io import write_atomic

    values = None
    if ratios:
        try:
            values = [float(part) for part in ratios.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(f"--ratios: expected comma-separated numbers, got {ratios!r}") from None
    result = challenge_sweep(
        model, file, challenge, values, seed, data_format=data_format, batch_size=batch_size, progress=True
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, json.dumps(result, indent=2) + "\n")
    typer.echo(render_challenge_table(result))


@app.command("predict")
def predict_command(
    model_dir: Path = typer.Argument(..., help="A trained model folder (<run>/model)."),
    file: Path = typer.Argument(..., help="A dataset file (labels, if any, are ignored)."),
    out: Path = typer.Option(..., "--out", help="Prediction file (JSON lines) to write; an existing one is resumed."),
    data_format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    images: list[Path] | None = typer.Option(None, "--images", help=IMAGES_HELP),
) -> None:
    """Write one prediction per record, line by line (an interrupted run resumes where it stopped)."""
    import mmie
    from mmie.evaluation.predictions import PredictionWriter

    model = mmie.load_model(model_dir, images=images or None)
    records = _read_records(file, data_format, model.task)
    with PredictionWriter(out, resume=True) as writer:
        done = writer.already_written
        if writer.existing_ids != [str(record.id) for record in records[:done]]:
            raise DataError(
                f"holds predictions of other records than {file}; delete it or pick another --out", path=out
            )
        if done:
            typer.echo(f"{out}: {done} predictions already written, resuming", err=True)
        for prediction in model.iter_predictions(records[done:], batch_size=batch_size):
            writer.write(prediction)
    typer.echo(f"wrote {len(records)} predictions to {out}")


# ------------------------------------------------------------------------------ printing


def _headline(scores: dict) -> str:
    text = f"P {100 * scores['precision']:.2f}  R {100 * scores['recall']:.2f}  F1 {100 * scores['f1']:.2f}"
    if "accuracy" in scores:
        text += f"  accuracy {100 * scores['accuracy']:.2f}"
    return text


def _report(metrics: dict, task: str) -> str:
    lines = ["overall      " + _headline(metrics)]
    per_key = "per_type" if task == "ner" else "per_relation"
    for name, scores in metrics.get(per_key, {}).items():
        lines.append(f"  {name:<28} {_headline(scores)}  (support {scores.get('support', '?')})")
    by_images = metrics.get("by_images") or {}
    if by_images:
        lines.append("by number of images")
        for group, scores in by_images.items():
            lines.append(f"  {group:<28} {_headline(scores)}  (n {scores.get('n', '?')})")
    return "\n".join(lines)
