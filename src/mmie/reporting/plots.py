"""PNG plots beside the report (matplotlib, Agg backend: no display needed).

* ``by_images_<dataset>.png``: F1 of every row on single-image, multi-image and all posts, grouped
  bars with the std over seeds as error bars (the MNER-MI paper's Figure 3, MRE-MI's Figure 4).
* ``low_resource_<key>_<dataset>.png``: F1 against ``data.sample_fraction`` or
  ``data.sample_per_label`` for sweeps that vary them, one line per row.
* ``challenge_<name>.png``: F1 against the noise ratio of ``mmie evaluate --challenge`` files
  (``{"challenge", "seed", "model", "data", "results": [{"ratio", "metrics"}]}``), one line per model.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmie.errors import DataError
from mmie.io import atomic_writer

if TYPE_CHECKING:
    from mmie.reporting.run_records import RunRecord

LOW_RESOURCE_KEYS = ("data.sample_fraction", "data.sample_per_label")
IMAGE_GROUPS = ("single", "multi", "whole")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


def _scores(run: RunRecord) -> dict:
    return run.metrics.get("test") or run.metrics.get("dev") or {}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, binary=True) as handle:
        fig.savefig(handle, dpi=120, bbox_inches="tight", format="png")
    return path


def breakdown_plots(runs: list[RunRecord], out: Path) -> list[Path]:
    """One grouped-bar PNG per dataset: rows x (single, multi, whole) test F1."""
    plt = _pyplot()
    written = []
    for dataset in dict.fromkeys(run.dataset for run in runs):
        by_row: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for run in runs:
            if run.dataset != dataset:
                continue
            label = run.row + "".join(f" {k.split('.')[-1]}={v}" for k, v in run.grid.items())
            for group in IMAGE_GROUPS:
                value = _scores(run).get("by_images", {}).get(group, {}).get("f1")
                if value is not None and _scores(run)["by_images"][group].get("n", 1):
                    by_row[label][group].append(100 * value)
        if not by_row:
            continue
        fig, axis = plt.subplots(figsize=(max(5.0, 1.2 * len(by_row) + 2), 3.6))
        width = 0.8 / len(IMAGE_GROUPS)
        for offset, group in enumerate(IMAGE_GROUPS):
            stats = [_mean_std(by_row[row][group]) if by_row[row][group] else (0.0, 0.0) for row in by_row]
            positions = [i + (offset - 1) * width for i in range(len(by_row))]
            axis.bar(positions, [m for m, _ in stats], width, yerr=_clipped_errors(stats), capsize=3, label=group)
        axis.set_xticks(range(len(by_row)), list(by_row), rotation=20, ha="right")
        axis.set_ylabel("test F1 (%)")
        axis.set_title(f"F1 by number of images: {dataset}")
        axis.legend(title="posts", fontsize=8)
        axis.grid(axis="y", alpha=0.3)
        written.append(_save(fig, out / f"by_images_{_safe(dataset)}.png"))
        plt.close(fig)
    return written


def low_resource_plots(runs: list[RunRecord], out: Path) -> list[Path]:
    """F1 against the training-data size, for runs whose grid varies a sampling key."""
    plt = _pyplot()
    written = []
    for key in LOW_RESOURCE_KEYS:
        members = [run for run in runs if key in run.grid]
        for dataset in dict.fromkeys(run.dataset for run in members):
            lines: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
            for run in members:
                if run.dataset == dataset and "f1" in _scores(run):
                    lines[run.row][float(run.grid[key])].append(100 * _scores(run)["f1"])
            fig, axis = plt.subplots(figsize=(5.5, 3.6))
            for row, points in lines.items():
                xs = sorted(points)
                stats = [_mean_std(points[x]) for x in xs]
                axis.errorbar(xs, [m for m, _ in stats], yerr=_clipped_errors(stats), marker="o", capsize=3, label=row)
            if key == "data.sample_fraction":
                axis.set_xscale("log")
            values = sorted({x for points in lines.values() for x in points})
            axis.minorticks_off()  # the log axis's minor labels overlap; label the swept values instead
            axis.set_xticks(values, [f"{100 * x:g}%" if key == "data.sample_fraction" else f"{x:g}" for x in values])
            axis.set_xlabel(key.split(".")[-1].replace("_", " "))
            axis.set_ylabel("test F1 (%)")
            axis.set_title(f"Low-resource training: {dataset}")
            axis.legend(fontsize=8)
            axis.grid(alpha=0.3)
            written.append(_save(fig, out / f"low_resource_{_safe(key.split('.')[-1])}_{_safe(dataset)}.png"))
            plt.close(fig)
    return written


def read_challenge(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"not a readable challenge JSON file: {error}", path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list) or "challenge" not in data:
        raise DataError('expected {"challenge", "results": [{"ratio", "metrics"}, ...]}', path=path)
    for index, entry in enumerate(data["results"]):
        if not isinstance(entry, dict) or "ratio" not in entry or "f1" not in entry.get("metrics", {}):
            raise DataError("each result needs a ratio and metrics with f1", path=path, field=f"results[{index}]")
    return data


def _model_label(model: str, runs: list[RunRecord]) -> str:
    """The report's row label of the run whose model/ folder the challenge file names."""
    model_path = Path(model).resolve()
    for run in runs:
        if model_path in (run.path.resolve(), (run.path / "model").resolve()):
            return run.row + (f" seed {run.seed}" if run.seed is not None else "")
    return model_path.parent.name if model_path.name == "model" else model_path.name


def challenge_plots(files: list[Path], out: Path, runs: Sequence[RunRecord] = ()) -> list[Path]:
    """One PNG per challenge (align-noise, aug-noise): F1 against the noise ratio, one line per file."""
    plt = _pyplot()
    by_challenge: dict[str, list[dict]] = defaultdict(list)
    for path in dict.fromkeys(Path(f) for f in files):
        data = read_challenge(path)
        by_challenge[str(data["challenge"])].append(data)
    written = []
    for challenge, entries in by_challenge.items():
        fig, axis = plt.subplots(figsize=(5.5, 3.6))
        for data in entries:
            points = sorted((float(r["ratio"]), 100 * float(r["metrics"]["f1"])) for r in data["results"])
            axis.plot(
                [100 * x for x, _ in points],
                [y for _, y in points],
                marker="o",
                label=_model_label(str(data.get("model", "?")), list(runs)),
            )
        axis.set_xlabel("noise ratio (%)")
        axis.set_ylabel("F1 (%)")
        axis.set_title(f"Challenge set: {challenge}")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
        written.append(_save(fig, out / f"challenge_{_safe(challenge)}.png"))
        plt.close(fig)
    return written


def _clipped_errors(stats: list[tuple[float, float]]) -> list[list[float]]:
    """± std error bars, the lower one cut at 0 (an F1 is never negative)."""
    return [[min(s, m) for m, s in stats], [s for _, s in stats]]
