"""The tables of a report and their renderings: Markdown, LaTeX (booktabs) and CSV.

A :class:`Table` holds text cells and score :class:`Cell` s (one fraction per seed); each renderer
prints a score cell as its mean ± sample standard deviation in percent, with a dagger when marked
significant.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

DAGGER = "†"


@dataclass
class Cell:
    values: list[float]  # fractions, one per seed
    mark: str = ""

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        n = len(self.values)
        if n < 2:
            return 0.0
        mean = self.mean
        return math.sqrt(sum((v - mean) ** 2 for v in self.values) / (n - 1))


@dataclass
class Table:
    name: str
    title: str
    caption: str
    header: list[str]  # the first column is the row label
    rows: list[list[Any]]  # str or Cell
    group_header: list[tuple[str, int]] = field(default_factory=list)  # (dataset, columns spanned)


def cell_text(cell: Any, latex: bool = False) -> str:
    """A score cell as ``mean ± std`` in percent (the std only over several seeds), marked; text as is
    (escaped for LaTeX)."""
    if not isinstance(cell, Cell):
        return str(cell).replace("_", r"\_").replace("%", r"\%") if latex else str(cell)
    if not cell.values:
        return "–"
    std = f" ± {100 * cell.std:.2f}" if len(cell.values) > 1 else ""
    if latex:
        std = f"$\\pm${100 * cell.std:.2f}" if len(cell.values) > 1 else ""
        mark = "$^\\dagger$" if cell.mark else ""
        return f"{100 * cell.mean:.2f}{std}{mark}"
    return f"{100 * cell.mean:.2f}{std}{cell.mark}"


def _flat_header(table: Table) -> list[str]:
    """The header with each column's dataset before its metric, for the formats with one header row."""
    header = list(table.header)
    position = 1
    for dataset, span in table.group_header:
        for i in range(position, position + span):
            header[i] = f"{dataset} {header[i]}"
        position += span
    return header


def to_markdown(table: Table) -> str:
    header = _flat_header(table)
    lines = [
        f"**{table.title}.** {table.caption}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(cell_text(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    columns = "l" + "r" * (len(table.header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{columns}}}", r"\toprule"]
    if table.group_header:
        lines.append(
            " & "
            + " & ".join(
                rf"\multicolumn{{{span}}}{{c}}{{{cell_text(name, True)}}}" for name, span in table.group_header
            )
            + r" \\"
        )
    lines.append(" & ".join(cell_text(h, True) for h in table.header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(cell_text(c, True) for c in row) + r" \\" for row in table.rows]
    caption = cell_text(table.caption, True).replace("±", r"$\pm$").replace(DAGGER, r"$^\dagger$")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{caption}}}",
        rf"\label{{tab:{table.name}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """One column per value: ``<dataset> <metric>`` (mean, %), then its ``std`` and ``significant``."""
    header = _flat_header(table)
    has_cells = any(isinstance(c, Cell) for row in table.rows for c in row)
    out = io.StringIO()
    writer = csv.writer(out)
    if not has_cells:
        writer.writerow(header)
        writer.writerows(table.rows)
        return out.getvalue()
    # a column of score cells becomes three (mean, std, significant); a text column stays one
    scored = [any(isinstance(row[i], Cell) for row in table.rows) for i in range(len(header))]
    expanded = [header[0]] + [
        name
        for h, is_scored in zip(header[1:], scored[1:])
        for name in ((h, f"{h} std", f"{h} significant") if is_scored else (h,))
    ]
    writer.writerow(expanded)
    for row in table.rows:
        values = [row[0]]
        for cell, is_scored in zip(row[1:], scored[1:]):
            if not is_scored:
                values.append(str(cell))
            elif isinstance(cell, Cell) and cell.values:
                values += [f"{100 * cell.mean:.4f}", f"{100 * cell.std:.4f}", "yes" if cell.mark else ""]
            else:
                values += ["", "", ""]
        writer.writerow(values)
    return out.getvalue()
