"""Sorting rows that usually arrive sorted: a county's roster is read file by file, sheet by sheet, row by row, so
the roster-order sorts of validation and of the households rarely move a row, yet cost ~0.1 s each for a million
persons (a stable multi-key sort of every column). Checking the order first costs a quarter of that."""
from __future__ import annotations

import polars as pl

ROSTER_ORDER = ("source_file", "sheet", "row_number")  # where a row sits in what the county sent


def in_order(frame: pl.DataFrame, keys: tuple[str, ...] | list[str]) -> bool:
    """True when the rows are ascending by `keys` (ties allowed) and no key is null: a stable sort by them would
    leave every row where it is, whatever its null placement."""
    if frame.height < 2:
        return True
    current, following = [pl.col(k) for k in keys], [pl.col(k).shift(-1) for k in keys]
    ascending = current[-1] <= following[-1]
    for this, after in reversed(list(zip(current[:-1], following[:-1]))):
        ascending = (this < after) | ((this == after) & ascending)
    ordered, has_null = frame.select(
        ascending.slice(0, frame.height - 1).all().alias("ordered"),
        pl.any_horizontal(column.is_null().any() for column in current).alias("has_null"),
    ).row(0)
    return bool(ordered) and not has_null
