"""Tabular datasets shipped with the suites: CSV -> float64 table + column metadata (no pandas).

Encoding: discrete columns hold integer codes 0..k-1 (as float64) into their sorted
``categories``; continuous columns hold their values. A column is discrete when any value is not
a number, when it only holds 0 and 1 (binary flags such as diagnosis codes), or when it is named
in ``discrete``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["decode_rows", "load_table"]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_table(path: Path, discrete: Sequence[str] | None = None) -> tuple[np.ndarray[Any, Any], list[dict[str, Any]]]:
    """Read ``path`` into (table [rows, columns] float64, columns metadata)."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty CSV (a header row is required)") from None
        rows = [row for row in reader if row]
    if not rows:
        raise ValueError(f"{path}: no data rows")
    bad = [i + 2 for i, row in enumerate(rows) if len(row) != len(header)]
    if bad:
        raise ValueError(f"{path}: line {bad[0]} has a different number of fields than the header ({len(header)})")
    unknown = sorted(set(discrete or ()) - set(header))
    if unknown:
        raise ValueError(f"{path}: discrete columns {unknown} are not in the header {header}")
    table = np.empty((len(rows), len(header)), dtype=np.float64)
    columns: list[dict[str, Any]] = []
    for j, name in enumerate(header):
        values = [row[j].strip() for row in rows]
        numeric = all(_is_number(v) for v in values)
        binary = numeric and {float(v) for v in values} <= {0.0, 1.0}
        if (discrete and name in discrete) or not numeric or binary:
            categories = sorted(set(values), key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0.0, v))
            index = {c: i for i, c in enumerate(categories)}
            table[:, j] = [index[v] for v in values]
            columns.append({"name": name, "kind": "discrete", "categories": categories})
        else:
            table[:, j] = [float(v) for v in values]
            columns.append({"name": name, "kind": "continuous"})
    return table, columns


def decode_rows(table: np.ndarray[Any, Any], columns: list[dict[str, Any]], limit: int = 5) -> list[dict[str, Any]]:
    """The first ``limit`` rows as readable dicts (categories restored), for reports."""
    out = []
    for row in table[:limit]:
        item: dict[str, Any] = {}
        for value, col in zip(row, columns, strict=True):
            if col["kind"] == "discrete":
                code = int(np.clip(np.rint(value), 0, len(col["categories"]) - 1))
                item[col["name"]] = col["categories"][code]
            else:
                item[col["name"]] = float(value)
        out.append(item)
    return out
