"""Run folders -> :class:`RunRecord`, what the report tabulates and the plots draw.

A run folder is any folder with a ``metrics.json`` (``mmie train`` or ``mmie sweep`` wrote it); a
sweep folder's runs are found below it. Each run's place comes from its ``sweep_run.json`` (row,
dataset, grid values, seed) or, for a plain ``mmie train`` run, from its ``config.yaml`` (row = the
config's name, seed = training.seed).

A module of its own so that the report and the plots both import it and the plots need not import
the report (which imports the plots).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmie.errors import MmieError


@dataclass
class RunRecord:
    path: Path
    row: str
    dataset: str
    grid: dict[str, Any]
    seed: int
    task: str
    metrics: dict
    row_index: int = 0  # the row's place in its sweep file

    @property
    def row_key(self) -> tuple[str, tuple]:
        return (self.row, tuple(self.grid.items()))


def _run_folders(path: Path) -> list[Path]:
    if (path / "metrics.json").is_file():
        return [path]
    if not path.is_dir():
        raise MmieError(f"{path}: no such run folder")
    found = sorted(p.parent for p in path.rglob("metrics.json") if "model" not in p.relative_to(path).parts[:-1])
    if not found:
        raise MmieError(f"{path}: no metrics.json in it or below it (not a run or sweep folder)")
    return found


def read_run(path: Path) -> RunRecord:
    try:
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    except ValueError as error:
        raise MmieError(f"{path / 'metrics.json'}: not valid JSON: {error}") from None
    info_path = path / "sweep_run.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    config_path = path / "config.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    task = config.get("task") or ("re" if "accuracy" in metrics.get("test", metrics.get("dev", {})) else "ner")
    return RunRecord(
        path=path,
        row=str(info.get("row") or config.get("name") or path.name),
        dataset=str(info.get("dataset") or "test"),
        grid=dict(info.get("grid") or {}),
        seed=int(info.get("seed", config.get("training", {}).get("seed", 0))),
        task=task,
        metrics=metrics,
        row_index=int(info.get("row_index", 0)),
    )


def collect_runs(paths: Sequence[str | Path]) -> list[RunRecord]:
    folders = dict.fromkeys(folder for path in paths for folder in _run_folders(Path(path)))
    # rows in their sweep file's order (a stable sort: folders and sweeps keep theirs)
    return sorted((read_run(folder) for folder in folders), key=lambda run: run.row_index)
