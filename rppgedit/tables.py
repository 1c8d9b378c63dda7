"""Result tables as text: one writer of Markdown, CSV and plain-text tables for every runner.

Rows are dicts; a Markdown or plain-text table's columns are (key, header, format spec) triples, a
CSV's are keys. None is an empty cell (in Markdown also NaN and infinities). Used by the sweep
(`results.csv`, `results.md`), the experiments (`tables.md`, `per_*.csv`) and the printed tables
of the command line and benchmarks (`text_table`, also `readings.format_table`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence


def cell(value, fmt: str) -> str:
    """One Markdown cell: "" for None or a non-finite float, "yes"/"no" for format "b", else
    `format(value, fmt)`."""
    if value is None:
        return ""
    if fmt == "b":
        return "yes" if value else "no"
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return format(value, fmt)


def markdown_table(
    rows: Sequence[dict], columns: Sequence[tuple[str, str, str]], *, align: bool = True
) -> str:
    """A GitHub Markdown table of `rows` (no trailing newline).

    Args:
      rows: one dict per table row.
      columns: (key, header, format spec) triples; spec "s" is text, "b" yes/no.
      align: right-align the numeric columns (all but "s" and "b"); False leaves every column at
        the default alignment.
    """
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |"]
    lines.append(
        "|" + "|".join("---" if not align or f in "sb" else "---:" for _, _, f in columns) + "|"
    )
    for r in rows:
        lines.append("| " + " | ".join(cell(r.get(k), f) for k, _, f in columns) + " |")
    return "\n".join(lines)


def csv_text(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """CSV (header + one line per row) of `rows`; None is an empty field, floats are written in
    full precision."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return buf.getvalue()


def text_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain-text table (headers left-aligned, cells right-aligned, columns two spaces apart);
    `columns` are (key, header, format spec) triples; None is an empty cell."""
    header = [h for _, h, _ in columns]
    body = [[("" if r.get(k) is None else format(r[k], f)) for k, _, f in columns] for r in rows]
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)
