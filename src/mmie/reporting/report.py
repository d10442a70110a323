"""``mmie report``: run folders -> the papers' tables (mean ± std over seeds), with significance marks.

    report = build_report(["runs/tables/mre_mi_table2"], reference="MTB")
    write_report(report, "runs/tables/mre_mi_table2/report")   # report.md, *.md, *.tex, *.csv, *.png

A run folder is any folder with a ``metrics.json`` (``mmie train`` or ``mmie sweep`` wrote it); a
sweep folder's runs are found below it. Each run's place comes from its ``sweep_run.json`` (row,
dataset, grid values, seed) or, for a plain ``mmie train`` run, from its ``config.yaml`` (row = the
config's name, seed = training.seed). Runs differing only by seed are averaged: mean ± sample
standard deviation (n - 1; 0 for one seed), in percent.

Tables: the main one (rows x datasets, P/R/F1, and accuracy for RE; a dagger on the F1 of rows
significantly better than the reference row, p < 0.05, :mod:`mmie.evaluation.significance`), the
image-count breakdown (single vs multi vs whole, the papers' Figure 3/4), the per-relation (RE) or
per-type (NER) F1, and the p-values. Rows of one dataset trained or tested on files with different
fingerprints (metrics.json "data") raise a warning: they are not comparable.

When the test posts carry a group (the deciding ``setting`` of ``mmie data synth``'s
``synth_meta.jsonl`` beside the test file, or any JSON lines file with ``id`` and ``setting`` given as
``breakdown``), the ``by_setting`` table gives the F1 of every row on each group's posts, scored
from each run's saved ``predictions/test.jsonl`` with the metrics of :mod:`mmie.evaluation`, with a
dagger where the row is significantly better than the reference on that group's posts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmie.errors import DataError, MmieError
from mmie.io import write_atomic
from mmie.reporting.challenge_tables import challenge_tables

# read_run and collect_runs stay importable from here, where they were defined before.
from mmie.reporting.run_records import RunRecord, collect_runs, read_run  # noqa: F401
from mmie.reporting.tables import DAGGER, Cell, Table, to_csv, to_latex, to_markdown


@dataclass
class Report:
    runs: list[RunRecord]
    tables: list[Table]
    warnings: list[str]
    significance: list[dict]
    reference: str | None


def _split(run: RunRecord) -> str:
    return "test" if "test" in run.metrics else "dev"


# ------------------------------------------------------------------------------ significance


def _significance(
    runs: list[RunRecord], comparisons: Sequence[tuple[str, str]], trials: int, seed: int
) -> tuple[list[dict], list[str]]:
    """Each ``(row, base)`` of ``comparisons`` tested on every grid value and dataset both have."""
    from mmie.data import read_dataset
    from mmie.evaluation.predictions import read_predictions
    from mmie.evaluation.significance import example_counts

    warnings: list[str] = []
    gold_cache: dict[str, list] = {}

    def counts(run: RunRecord):
        predictions = run.path / "predictions" / "test.jsonl"
        gold = run.metrics.get("data", {}).get("test", {}).get("path")
        if not predictions.is_file() or not gold or not Path(gold).is_file():
            warnings.append(f"{run.path}: no test predictions or test file; left out of the significance tests")
            return None
        if gold not in gold_cache:
            gold_cache[gold] = list(read_dataset(gold).records)
        return example_counts(run.task, gold_cache[gold], read_predictions(predictions))

    groups: dict[tuple, dict[int, Any]] = defaultdict(dict)
    for run in runs:
        if "test" in run.metrics:
            groups[(run.row, tuple(run.grid.items()), run.dataset)][run.seed] = run
    counted: dict[int, Any] = {}  # id(run) -> its counts: a run paired twice is read once

    def counts_of(by_seed: dict[int, RunRecord]) -> dict[int, Any]:
        for run in by_seed.values():
            if id(run) not in counted:
                counted[id(run)] = counts(run)
        return {s: counted[id(r)] for s, r in by_seed.items() if counted[id(r)] is not None}

    results = []
    wanted = list(dict.fromkeys(comparisons))
    for (row, grid, dataset), by_seed in groups.items():
        for reference in (base for system, base in wanted if system == row):
            if row == reference or (reference, grid, dataset) not in groups:
                continue
            system, base = counts_of(by_seed), counts_of(groups[(reference, grid, dataset)])
            if not system or not base:
                continue
            test = _paired_test(system, base, f"{row} vs {reference} on {dataset}", warnings, trials, seed)
            if test is None:
                continue
            results.append({"row": row, "grid": dict(grid), "dataset": dataset, "reference": reference, **test})
    return results, warnings


# ----------------------------------------------------------------------------------- warnings


def fingerprint_warnings(runs: list[RunRecord]) -> list[str]:
    """One warning per dataset and split whose runs read files with different sha256."""
    from mmie.data.releases import describe

    warnings = []
    by_dataset: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_dataset[run.dataset].append(run)
    for dataset, members in by_dataset.items():
        for split in ("train", "dev", "test"):
            versions: dict[str, set[str]] = defaultdict(set)
            entries: dict[str, dict] = {}
            for run in members:
                entry = run.metrics.get("data", {}).get(split)
                sha = entry.get("sha256") if entry else "not recorded"
                versions[sha].add(run.row)
                entries[sha] = entry
            if len(versions) > 1:
                detail = "; ".join(
                    f"{describe(entries[sha])}: {', '.join(sorted(rows))}" for sha, rows in versions.items()
                )
                warnings.append(f"{dataset} {split}: the rows used different data files ({detail})")
    return warnings


# ------------------------------------------------------------------------------------ tables


def _label(row: str, grid: tuple) -> str:
    return row + (f" ({', '.join(f'{k}={v}' for k, v in grid)})" if grid else "")


def _ordered(runs: list[RunRecord], attribute: str) -> list:
    return list(dict.fromkeys(getattr(run, attribute) for run in runs))


def _cells(runs: list[RunRecord], pick) -> Cell:
    values = [v for run in runs if (v := pick(run.metrics.get(_split(run), {}))) is not None]
    return Cell(values)


def build_report(
    paths: Sequence[str | Path],
    reference: str | None = None,
    *,
    trials: int = 10_000,
    seed: int = 12345,
    breakdown: str | Path | None = None,
    pairs: dict[str, str] | None = None,
) -> Report:
    """The tables of the runs below ``paths``; ``breakdown``: a JSON lines file of post ``id`` ->
    ``setting`` for the ``by_setting`` table (default: ``synth_meta.jsonl`` beside each run's test file);
    ``pairs``: row -> its counterpart, each tested in the ``pairs`` table (default: the sweep's)."""
    from mmie.evaluation.significance import describe_test

    runs = collect_runs(paths)
    if not runs:
        raise MmieError("no runs found")
    if len({run.task for run in runs}) > 1:
        raise MmieError("these folders hold both NER and RE runs: report each task separately (one table per task)")
    infos = [json.loads((r.path / "sweep_run.json").read_text()) for r in runs if (r.path / "sweep_run.json").is_file()]
    if reference is None:
        reference = next((info.get("reference") for info in infos if info.get("reference")), None)
    if pairs is None:
        pairs = next((info["pairs"] for info in infos if info.get("pairs")), {})
    row_names = {run.row for run in runs}
    if reference is not None and reference not in row_names:
        raise MmieError(f"--reference {reference!r}: no such row (rows: {', '.join(_ordered(runs, 'row'))})")
    for name in (name for pair in pairs.items() for name in pair):
        if name not in row_names:
            raise MmieError(f"--pair: {name!r}: no such row (rows: {', '.join(_ordered(runs, 'row'))})")
    against_reference = [(row, reference) for row in _ordered(runs, "row") if reference and row != reference]
    significance, warnings = _significance(runs, against_reference, trials, seed)
    paired, pair_warnings = _significance(runs, list(pairs.items()), trials, seed)
    warnings += pair_warnings
    warnings = fingerprint_warnings(runs) + warnings
    significant = {
        (s["row"], tuple(s["grid"].items()), s["dataset"])
        for s in significance
        if s["p_value"] < 0.05 and s["delta"] > 0
    }

    datasets = _ordered(runs, "dataset")
    row_keys = _ordered(runs, "row_key")
    task = runs[0].task
    metric_names = ["accuracy", "precision", "recall", "f1"] if task == "re" else ["precision", "recall", "f1"]
    short = {"accuracy": "Acc", "precision": "P", "recall": "R", "f1": "F1"}
    cell_runs = defaultdict(list)
    for run in runs:
        cell_runs[(run.row_key, run.dataset)].append(run)
    seeds = sorted({run.seed for run in runs})
    method = (
        f"{DAGGER}: significantly better than {reference} (p < 0.05, {describe_test(trials)}, seeds pooled)"
        if reference
        else "no reference row: no significance test"
    )
    caption = f"Test scores in %, mean ± std over seeds {', '.join(map(str, seeds))}. {method}."

    main_rows, by_image_rows = [], []
    for key in row_keys:
        # The main table names the reference row beside the caption's dagger (the paper's marking).
        main_row: list[Any] = [_label(*key) + (" (reference)" if key[0] == reference else "")]
        image_row: list[Any] = [_label(*key)]
        for dataset in datasets:
            members = cell_runs.get((key, dataset), [])
            for name in metric_names:
                cell = _cells(members, lambda m, name=name: m.get(name))
                if name == "f1" and (key[0], key[1], dataset) in significant:
                    cell.mark = DAGGER
                main_row.append(cell)
            for group in ("single", "multi", "whole"):
                image_row.append(_cells(members, lambda m, g=group: m.get("by_images", {}).get(g, {}).get("f1")))
        main_rows.append(main_row)
        by_image_rows.append(image_row)
    groups = [(d, len(metric_names)) for d in datasets]
    tables = [
        Table(
            "main",
            "Main results",
            caption,
            ["Model"] + [short[n] for n in metric_names] * len(datasets),
            main_rows,
            groups,
        ),
        Table(
            "by_images",
            "F1 by number of images (single vs multi vs whole)",
            "Test F1 in %, mean ± std over seeds; single: posts with one image, multi: two or more.",
            ["Model"] + ["single", "multi", "whole"] * len(datasets),
            by_image_rows,
            [(d, 3) for d in datasets],
        ),
    ]
    tables += _per_label_tables(runs, row_keys, datasets, cell_runs, task)
    setting_tables, setting_warnings = _setting_tables(
        runs, row_keys, datasets, reference, breakdown, trials=trials, seed=seed
    )
    tables += setting_tables
    warnings += setting_warnings
    for fields in challenge_tables(runs):  # score cells come as lists of the seeds' values
        rows = [[c if isinstance(c, str) else Cell(c) for c in row] for row in fields.pop("rows")]
        tables.append(Table(**fields, rows=rows))
    if significance:
        tables.append(
            Table(
                "significance",
                "Paired significance tests",
                f"{describe_test(trials)}, seed {seed}; delta = F1(row) - F1({reference}) in points.",
                ["Model", "dataset", "delta F1", "p-value", "n pooled"],
                [
                    [
                        _label(s["row"], tuple(s["grid"].items())),
                        s["dataset"],
                        f"{100 * s['delta']:+.2f}",
                        f"{s['p_value']:.4f}",
                        str(s["n"]),
                    ]
                    for s in significance
                ],
            )
        )
    if paired:
        tables.append(_pairs_table(paired, cell_runs, trials, seed))
    return Report(runs, tables, warnings, significance, reference)


def _pairs_table(paired: list[dict], cell_runs: dict, trials: int, seed: int) -> Table:
    """Each row against its counterpart (``pairs``): both F1s, the delta and the p-value; a dagger on
    the row's F1 where it is significantly better than its counterpart."""
    from mmie.evaluation.significance import describe_test

    rows = []
    for test in paired:
        grid = tuple(test["grid"].items())
        row_f1 = _cells(cell_runs.get(((test["row"], grid), test["dataset"]), []), lambda m: m.get("f1"))
        base_f1 = _cells(cell_runs.get(((test["reference"], grid), test["dataset"]), []), lambda m: m.get("f1"))
        if test["p_value"] < 0.05 and test["delta"] > 0:
            row_f1.mark = DAGGER
        rows.append(
            [
                _label(test["row"], grid),
                test["reference"],
                test["dataset"],
                row_f1,
                base_f1,
                f"{100 * test['delta']:+.2f}",
                f"{test['p_value']:.4f}",
            ]
        )
    return Table(
        "pairs",
        "Each row against its counterpart",
        f"Test F1 in %, mean ± std over seeds; {DAGGER}: significantly better than its counterpart (p < 0.05, "
        f"{describe_test(trials)}, seed {seed}, seeds pooled); delta = F1(row) - F1(counterpart) in points.",
        ["Model", "counterpart", "dataset", "F1", "F1 counterpart", "delta F1", "p-value"],
        rows,
    )


def _per_label_tables(runs, row_keys, datasets, cell_runs, task) -> list[Table]:
    per_key = "per_relation" if task == "re" else "per_type"
    tables = []
    for dataset in datasets:
        labels: dict[str, None] = {}
        for run in runs:
            if run.dataset == dataset:
                labels.update(dict.fromkeys(run.metrics.get(_split(run), {}).get(per_key, {})))
        if not labels:
            continue
        rows = []
        for label in labels:
            row: list[Any] = [label]
            for key in row_keys:
                members = cell_runs.get((key, dataset), [])
                row.append(_cells(members, lambda m, label=label: m.get(per_key, {}).get(label, {}).get("f1")))
            rows.append(row)
        kind = "relation" if task == "re" else "entity type"
        tables.append(
            Table(
                f"per_label_{dataset}",
                f"F1 per {kind} on {dataset}",
                f"Test F1 in %, mean ± std over seeds, per {kind}.",
                [kind.capitalize()] + [_label(*key) for key in row_keys],
                rows,
            )
        )
    return tables


# ------------------------------------------------------------------- breakdown by deciding setting


@dataclass
class _RunGroups:
    """One run's test examples split by group: the F1 of each group and the per-example counts."""

    f1: dict[str, float]
    counts: dict[str, Any]  # group -> [n, 3] counts (mmie.evaluation.significance.example_counts)
    sizes: dict[str, int]


def _group_order(groups: set[str]) -> list[str]:
    from mmie.data.synth import SETTINGS

    return [g for g in SETTINGS if g in groups] + sorted(groups - set(SETTINGS))


def _setting_tables(
    runs: list[RunRecord],
    row_keys: list,
    datasets: list[str],
    reference: str | None,
    breakdown: str | Path | None,
    *,
    trials: int,
    seed: int,
) -> tuple[list[Table], list[str]]:
    """The ``by_setting`` table (and its significance tests), or nothing when no run has groups."""
    from mmie.data import read_dataset
    from mmie.data.synth import META_FILE, read_settings
    from mmie.evaluation.predictions import read_predictions, score_by_group
    from mmie.evaluation.significance import describe_test, example_counts

    warnings: list[str] = []
    gold_cache: dict[str, list] = {}
    group_cache: dict[Path, dict[str, str]] = {}
    scored: dict[Path, _RunGroups] = {}
    if breakdown is not None and not Path(breakdown).is_file():
        raise DataError("no such breakdown file (--breakdown-by)", path=breakdown)
    for run in runs:
        if "test" not in run.metrics:
            continue
        gold = run.metrics.get("data", {}).get("test", {}).get("path")
        groups_path = Path(breakdown) if breakdown else (Path(gold).parent / META_FILE if gold else None)
        if groups_path is None or not groups_path.is_file():
            continue
        predictions_path = run.path / "predictions" / "test.jsonl"
        if not predictions_path.is_file() or not Path(gold).is_file():
            warnings.append(f"{run.path}: no test predictions or test file; left out of the breakdown by setting")
            continue
        if gold not in gold_cache:
            gold_cache[gold] = list(read_dataset(gold).records)
        if groups_path not in group_cache:
            group_cache[groups_path] = read_settings(groups_path)
        records, group_of = gold_cache[gold], group_cache[groups_path]
        predictions = read_predictions(predictions_path)
        mode = run.metrics["test"].get("mode", "conlleval")
        missing = [record.id for record in records if str(record.id) not in group_of]
        if missing:
            warnings.append(
                f"{run.path}: {len(missing)} test posts (first: {missing[0]}) have no setting in {groups_path}; "
                "left out of the breakdown by setting"
            )
        scores, indices = score_by_group(
            records, predictions, group_of, task=run.task, gold_path=gold, pred_path=predictions_path, mode=mode
        )
        counts = example_counts(run.task, records, predictions, mode=mode)
        f1 = {group: values["f1"] for group, values in scores.items()}
        group_counts = {group: counts[members] for group, members in indices.items()}
        scored[run.path] = _RunGroups(f1, group_counts, {g: len(m) for g, m in indices.items()})
    if not scored:
        return [], warnings

    # significance on each group's posts, against the reference, seeds pooled as in the main table
    significant: set[tuple] = set()
    tests: list[list[Any]] = []
    by_cell: dict[tuple, dict[int, _RunGroups]] = defaultdict(dict)
    for run in runs:
        if run.path in scored:
            by_cell[(run.row_key, run.dataset)][run.seed] = scored[run.path]
    tables_groups: dict[str, list[str]] = {}
    for dataset in datasets:
        present = {g for (key, d), by_seed in by_cell.items() if d == dataset for r in by_seed.values() for g in r.f1}
        tables_groups[dataset] = _group_order(present - {"whole"}) + (["whole"] if "whole" in present else [])
    if reference is not None:
        for (key, dataset), by_seed in by_cell.items():
            if key[0] == reference:
                continue
            base = by_cell.get(((reference, key[1]), dataset))
            if not base:
                continue
            for group in tables_groups[dataset]:
                system = {s: r.counts[group] for s, r in by_seed.items() if group in r.counts}
                other = {s: r.counts[group] for s, r in base.items() if group in r.counts}
                if not system or not other:
                    continue
                what = f"{_label(*key)} vs {reference} on {dataset} {group} posts"
                test = _paired_test(system, other, what, warnings, trials, seed)
                if test is None:
                    continue
                if test["p_value"] < 0.05 and test["delta"] > 0:
                    significant.add((key, dataset, group))
                tests.append(
                    [
                        _label(*key),
                        dataset,
                        group,
                        f"{100 * test['delta']:+.2f}",
                        f"{test['p_value']:.4f}",
                        str(test["n"]),
                    ]
                )

    header, group_header, rows = ["Model"], [], []
    for dataset in datasets:
        sizes = next((r.sizes for (key, d), by_seed in by_cell.items() if d == dataset for r in by_seed.values()), {})
        header += [f"{group} (n={sizes.get(group, 0)})" for group in tables_groups[dataset]]
        group_header.append((dataset, len(tables_groups[dataset])))
    for key in row_keys:
        row: list[Any] = [_label(*key)]
        for dataset in datasets:
            by_seed = by_cell.get((key, dataset), {})
            for group in tables_groups[dataset]:
                cell = Cell([r.f1[group] for _, r in sorted(by_seed.items()) if group in r.f1])
                if (key, dataset, group) in significant:
                    cell.mark = DAGGER
                row.append(cell)
        rows.append(row)
    method = (
        f"{DAGGER}: significantly better than {reference} on the same posts (p < 0.05, {describe_test(trials)}, seeds pooled)"
        if reference
        else "no reference row: no significance test"
    )
    tables = [
        Table(
            "by_setting",
            "F1 by deciding setting",
            "Test F1 in %, mean ± std over seeds, on the test posts of each setting that decides their label "
            f"({', '.join(sorted({path.name for path in group_cache}))}; n = posts), scored from each run's "
            f"predictions/test.jsonl. {method}.",
            header,
            rows,
            group_header,
        )
    ]
    if tests:
        tables.append(
            Table(
                "significance_by_setting",
                "Paired significance tests by deciding setting",
                f"{describe_test(trials)}, seed {seed}; delta = F1(row) - F1({reference}) in points on the setting's posts.",
                ["Model", "dataset", "setting", "delta F1", "p-value", "n pooled"],
                tests,
            )
        )
    return tables, warnings


def render_markdown(report: Report) -> str:
    parts = ["# Results", ""]
    if report.warnings:
        parts += ["**Warnings**", ""] + [f"- {w}" for w in report.warnings] + [""]
    parts += [to_markdown(table) for table in report.tables]
    return "\n".join(parts)


def write_report(report: Report, out: str | Path, challenge_files: Sequence[Path] = ()) -> list[Path]:
    """Write report.md and every table as .md, .tex and .csv, and the plots, into ``out``."""
    from mmie.reporting import plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in report.tables:
        for suffix, render in ((".md", to_markdown), (".tex", to_latex), (".csv", to_csv)):
            path = out / f"{table.name}{suffix}"
            write_atomic(path, render(table))
            written.append(path)
    write_atomic(out / "report.md", render_markdown(report))
    write_atomic(out / "significance.json", json.dumps(report.significance, indent=2) + "\n")
    written += [out / "report.md", out / "significance.json"]
    written += plots.breakdown_plots(report.runs, out)
    written += plots.low_resource_plots(report.runs, out)
    challenges = list(challenge_files) + [p for run in report.runs for p in sorted(run.path.glob("*challenge*.json"))]
    if challenges:
        written += plots.challenge_plots(challenges, out, report.runs)
    return written


def _paired_test(
    system: dict, base: dict, what: str, warnings: list[str], trials: int, seed: int
) -> dict[str, Any] | None:
    """The paired test of ``system`` against ``base`` (counts by seed); None, with a warning naming
    ``what``, when the two cannot be paired."""
    from mmie.evaluation.significance import approximate_randomisation, pair_by_seed

    try:
        a, b = pair_by_seed(system, base)
        return approximate_randomisation(a, b, trials=trials, seed=seed)
    except ValueError as error:
        warnings.append(f"{what}: not tested: {error}")
        return None
