"""Challenge-set tables: the ``challenge_<name>.json`` files a sweep with ``challenges:`` writes into its
run folders (``mmie evaluate --challenge`` output), side by side per row as the FocalMRE paper's Table 2:

    | ratio | MKGformer P | R | F1 | FocalMRE P | R | F1 |      one table per challenge, mean ± std over seeds

The clean set (ratio 0) is the first line of each table.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from mmie.reporting.plots import read_challenge

if TYPE_CHECKING:
    from mmie.reporting.run_records import RunRecord

METRICS = (("precision", "P"), ("recall", "R"), ("f1", "F1"))


def challenge_tables(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """One table per challenge found in the runs' folders (none when there is no challenge file), as the
    fields of :class:`mmie.reporting.tables.Table`, each score cell the list of its seeds' fractions."""
    # challenge -> row -> ratio -> metrics of each seed
    scores: dict[str, dict[str, dict[float, list[dict]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    rows: dict[str, int] = {}
    for run in runs:
        for path in sorted(run.path.glob("challenge_*.json")):
            data = read_challenge(path)
            rows.setdefault(run.row, run.row_index)
            for entry in data["results"]:
                scores[str(data["challenge"])][run.row][float(entry["ratio"])].append(entry["metrics"])
    ordered = sorted(rows, key=lambda row: rows[row])
    tables = []
    for challenge, by_row in scores.items():
        ratios = sorted({ratio for by_ratio in by_row.values() for ratio in by_ratio})
        body: list[list[Any]] = []
        for ratio in ratios:
            line: list[Any] = ["clean" if ratio == 0 else f"{100 * ratio:g}%"]
            for row in ordered:
                seeds = by_row.get(row, {}).get(ratio, [])
                line += [[float(m[name]) for m in seeds if name in m] for name, _ in METRICS]
            body.append(line)
        tables.append(
            {
                "name": f"challenge_{challenge}",
                "title": f"Challenge set: {challenge}",
                "caption": f"Test scores in %, mean ± std over seeds, on the test split with {challenge} at each "
                "ratio (clean: the test split itself).",
                "header": ["Ratio"] + [short for _, short in METRICS] * len(ordered),
                "rows": body,
                "group_header": [(row, len(METRICS)) for row in ordered],
            }
        )
    return tables
