"""Sweeps: a paper table as a grid of ordinary training runs in one folder.

    # configs/tables/<name>.yaml
    name: mre_mi_table2
    output_dir: runs/tables/mre_mi_table2      # `mmie sweep FILE --output-dir D` overrides it
    seeds: [42, 43, 44]
    models: {MTB: configs/mre_mi/mtb.yaml, GLRA: configs/mre_mi/glra.yaml}   # row label -> config
    datasets: {mre_mi: []}                     # optional: dataset label -> overrides for every row
    grid: {data.sample_fraction: [0.05, 0.1]}  # optional: every combination is a run
    overrides: []                              # optional, every run
    reference: MTB                             # the row `mmie report` tests the others against
    pairs: {GLRA: MTB}                         # optional: row -> its counterpart, each pair tested too
    challenges: {align-noise: [], aug-noise: [0.1, 0.3]}   # optional: `mmie evaluate --challenge` per run

Every combination row x dataset x grid values x seed is one :func:`mmie.training.train` run in
``<output_dir>/<row>__<dataset>__<key=value,...>__seed<S>`` with a ``sweep_run.json`` naming its
place in the grid (what ``mmie report`` reads). A run is finished when its ``metrics.json`` is
complete (the engine writes it last, atomically): a rerun skips it. An unfinished run folder is
resumed from its last complete checkpoint. A failing run writes its trace to ``error.log`` in its
folder and the sweep goes on; the failures are listed at the end.

With ``challenges``, every finished run's model is then scored on its test split by each challenge
(:func:`mmie.inference.challenges.challenge_sweep`: the clean set and each noise ratio) into
``challenge_<name>.json`` in its folder, unless that file is there already; ``mmie report`` tables
them side by side per row (FocalMRE paper, Table 2).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mmie.errors import ConfigError, config_error
from mmie.io import write_atomic
from mmie.training.compose import read_yaml_mapping
from mmie.training.config import load_config

logger = logging.getLogger("mmie.sweep")

RUN_INFO = "sweep_run.json"
ERROR_LOG = "error.log"


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    output_dir: Path | None = Field(None, description="default runs/tables/<name>")
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1)
    models: dict[str, Path] = Field(min_length=1, description="row label -> experiment config")
    datasets: dict[str, list[str]] = Field(default_factory=dict, description="dataset label -> overrides")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="config key -> values")
    overrides: list[str] = Field(default_factory=list)
    reference: str | None = Field(None, description="the row significance is tested against")
    pairs: dict[str, str] = Field(
        default_factory=dict,
        description="optional: row -> its counterpart (an image row -> its text row, a -MI row -> its "
        "single-image row); `mmie report` tests each row against its counterpart as well",
    )
    challenges: dict[str, list[float]] = Field(
        default_factory=dict,
        description="optional: challenge -> noise ratios (empty: the paper's); each run's model is scored on "
        "its test split with it, challenge_<name>.json in its folder",
    )

    @field_validator("grid")
    @classmethod
    def _non_empty_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid.{key}: give at least one value")
        return grid


@dataclass(frozen=True)
class SweepRun:
    row: str
    dataset: str | None
    grid: dict[str, Any]
    seed: int
    config: Path
    overrides: list[str]
    run_dir: Path

    def info(self, sweep: str, reference: str | None, row_index: int = 0, pairs: dict[str, str] | None = None) -> dict:
        return {
            "sweep": sweep,
            "row": self.row,
            "row_index": row_index,  # the row's place in the sweep file: the report keeps that order
            "dataset": self.dataset,
            "grid": self.grid,
            "seed": self.seed,
            "config": str(self.config),
            "overrides": self.overrides,
            "reference": reference,
            "pairs": pairs or {},
        }


@dataclass
class SweepOutcome:
    finished: list[SweepRun] = field(default_factory=list)
    skipped: list[SweepRun] = field(default_factory=list)
    failed: list[tuple[SweepRun, str]] = field(default_factory=list)


def load_sweep(path: str | Path) -> SweepConfig:
    path = Path(path)
    settings = read_yaml_mapping(path, "sweep", "(name, seeds, models, ...)")
    try:
        sweep = SweepConfig.model_validate(settings)
    except ValidationError as error:
        raise config_error(error, source=path) from None
    if sweep.reference is not None and sweep.reference not in sweep.models:
        raise ConfigError(
            f"{path}: reference: {sweep.reference!r} is not one of the models ({', '.join(sweep.models)})"
        )
    for row, counterpart in sweep.pairs.items():
        for name in (row, counterpart):
            if name not in sweep.models:
                raise ConfigError(f"{path}: pairs: {name!r} is not one of the models ({', '.join(sweep.models)})")
        if row == counterpart:
            raise ConfigError(f"{path}: pairs: {row!r} is paired with itself")
    return sweep


def _resolve_config(config: Path, sweep_file: Path) -> Path:
    """A model config path: as given (relative to the working directory), else relative to the
    repository the sweep file sits in (the first ancestor folder where it exists)."""
    if config.is_absolute() or config.is_file():
        return config
    for folder in sweep_file.resolve().parents:
        if (folder / config).is_file():
            return folder / config
    raise ConfigError(f"{sweep_file}: models: {config}: no such config file")


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-") or "x"


def run_folder_name(row: str, dataset: str | None, grid: dict[str, Any], seed: int) -> str:
    parts = [_slug(row)]
    if dataset is not None:
        parts.append(_slug(dataset))
    if grid:
        parts.append(",".join(f"{_slug(key)}={_slug(value)}" for key, value in grid.items()))
    parts.append(f"seed{seed}")
    return "__".join(parts)


def expand(
    sweep: SweepConfig, sweep_file: Path, output_dir: Path, extra_overrides: Sequence[str] = ()
) -> list[SweepRun]:
    """Every run of the sweep, rows outermost, seeds innermost."""
    # A comprehension, not dict(...): its keys widen to str | None (None: no dataset label).
    datasets: dict[str | None, list[str]] = (
        {label: overrides for label, overrides in sweep.datasets.items()} if sweep.datasets else {None: []}
    )
    keys = list(sweep.grid)
    combinations = list(itertools.product(*(sweep.grid[key] for key in keys)))
    runs = []
    for row, config in sweep.models.items():
        config_path = _resolve_config(config, sweep_file)
        for dataset, dataset_overrides in datasets.items():
            for values in combinations:
                grid = dict(zip(keys, values))
                for seed in sweep.seeds:
                    overrides = [
                        *dataset_overrides,
                        *sweep.overrides,
                        *(f"{key}={json.dumps(value)}" for key, value in grid.items()),
                        f"training.seed={seed}",
                        *extra_overrides,
                    ]
                    folder = output_dir / run_folder_name(row, dataset, grid, seed)
                    runs.append(SweepRun(row, dataset, grid, seed, config_path, overrides, folder))
    names = [run.run_dir.name for run in runs]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ConfigError(f"{sweep_file}: two runs would share the folder {duplicate} (rename a row or dataset)")
    return runs


def is_finished(run_dir: Path) -> bool:
    """metrics.json is there, parses, and holds the scores and the data fingerprints."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and "data" in metrics and any(split in metrics for split in ("dev", "test"))


def run_sweep(
    sweep_file: str | Path,
    output_dir: str | Path | None = None,
    *,
    extra_overrides: Sequence[str] = (),
    dry_run: bool = False,
) -> tuple[SweepConfig, list[SweepRun], SweepOutcome]:
    """Run (or, with ``dry_run``, only list) every run of a sweep; see the module docstring."""
    from mmie.training.engine import train

    sweep_file = Path(sweep_file)
    sweep = load_sweep(sweep_file)
    folder = Path(output_dir or sweep.output_dir or Path("runs") / "tables" / sweep.name)
    runs = expand(sweep, sweep_file, folder, list(extra_overrides))
    outcome = SweepOutcome()
    if dry_run:
        for run in runs:
            load_config(run.config, run.overrides)  # a bad key fails the dry run, not run 17
        return sweep, runs, outcome
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "sweep.yaml", yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False))
    for index, run in enumerate(runs, start=1):
        label = f"[{index}/{len(runs)}] {run.run_dir.name}"
        row_index = list(sweep.models).index(run.row)
        info = json.dumps(run.info(sweep.name, sweep.reference, row_index, sweep.pairs), indent=2) + "\n"
        if is_finished(run.run_dir):
            logger.info("%s: finished earlier, skipped", label)
            write_atomic(run.run_dir / RUN_INFO, info)
            outcome.skipped.append(run)
        else:
            # An interrupted run with a checkpoint continues from it; any other unfinished folder
            # (a failed run, a run killed before its first checkpoint) starts again.
            resume = any((run.run_dir / "checkpoints").glob("checkpoint-*"))
            logger.info("%s: %s", label, "resuming" if resume else "training")
            try:
                (run.run_dir / ERROR_LOG).unlink(missing_ok=True)
                train(run.config, output_dir=run.run_dir, overrides=run.overrides, resume=resume, overwrite=not resume)
                write_atomic(run.run_dir / RUN_INFO, info)
                outcome.finished.append(run)
            except Exception as error:  # noqa: BLE001 - one failed run must not stop the table
                _record_failure(run, error, label, outcome)
                continue
        try:
            run_challenges(run, sweep.challenges)
        except Exception as error:  # noqa: BLE001 - one failed challenge must not stop the table
            _record_failure(run, error, label, outcome)
    return sweep, runs, outcome


def _record_failure(run: SweepRun, error: Exception, label: str, outcome: SweepOutcome) -> None:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    message = f"{type(error).__name__}: {error}"
    write_atomic(run.run_dir / ERROR_LOG, f"{message}\n\n{traceback.format_exc()}")
    logger.error("%s: failed: %s (trace in %s)", label, message, run.run_dir / ERROR_LOG)
    outcome.failed.append((run, message))


def run_challenges(run: SweepRun, challenges: dict[str, list[float]]) -> None:
    """Score the run's model on its test split with each challenge (``challenge_<name>.json``), once."""
    todo = {
        name: ratios for name, ratios in challenges.items() if not (run.run_dir / f"challenge_{name}.json").is_file()
    }
    if not todo:
        return
    from mmie.inference.challenges import challenge_sweep
    from mmie.inference.loading import load_model

    config = load_config(run.config, run.overrides)
    if config.data.test is None:
        raise ConfigError("challenges: the runs need a test split (data.test)")
    model = load_model(run.run_dir / "model", images=config.data.images)
    for name, ratios in todo.items():
        logger.info("%s: challenge %s", run.run_dir.name, name)
        result = challenge_sweep(model, config.data.test, name, ratios or None, data_format=config.data.format)
        write_atomic(run.run_dir / f"challenge_{name}.json", json.dumps(result, indent=2) + "\n")
