"""fangpin.ordering: rows already in roster order are not sorted again, and sorting gives the same rows either way."""
from __future__ import annotations

import random

import polars as pl
import pytest

from fangpin import households, validate
from fangpin.ordering import ROSTER_ORDER, in_order


def _rows(pairs: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(pairs, schema={"source_file": pl.String, "sheet": pl.String, "row_number": pl.Int64},
                        orient="row")


@pytest.mark.parametrize(("rows", "ordered"), [
    ([("a.xlsx", "Sheet1", 3), ("a.xlsx", "Sheet1", 4), ("a.xlsx", "Sheet2", 1), ("b.xlsx", "", 1)], True),
    ([("a.xlsx", "Sheet1", 3), ("a.xlsx", "Sheet1", 3)], True),                 # ties stay where they are
    ([("a.xlsx", "Sheet1", 4), ("a.xlsx", "Sheet1", 3)], False),
    ([("b.xlsx", "Sheet1", 1), ("a.xlsx", "Sheet1", 9)], False),                # the file decides first
    ([("a.xlsx", "Sheet2", 1), ("a.xlsx", "Sheet1", 9)], False),
    ([("a.xlsx", None, 1), ("a.xlsx", "Sheet1", 2)], False),                    # a null key: sort as asked
    ([("a.xlsx", "Sheet1", 1), ("a.xlsx", "Sheet1", None)], False),
    ([("a.xlsx", "Sheet1", 1)], True),
    ([], True),
])
def test_in_order(rows, ordered):
    assert in_order(_rows(rows), ROSTER_ORDER) is ordered


def _persons(rng: random.Random, n: int, shuffled: bool, nulls: bool) -> pl.DataFrame:
    rows = [(f"{rng.choice('ab')}.xlsx", rng.choice(["Sheet1", "Sheet2", None if nulls else "Sheet3"]),
             rng.randrange(1, 40)) for _ in range(n)]
    if not shuffled:
        rows.sort(key=lambda r: (r[0], r[1] is None, r[1] or "", r[2]))
    frame = _rows(rows).with_columns(
        pl.Series("household_id", [f"H{rng.randrange(8)}" for _ in range(n)]),
        pl.Series("is_head", [rng.random() < 0.3 for _ in range(n)]),
        pl.Series("order", list(range(n))),  # where each row came in: ties must keep it
    )
    return frame


@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize("nulls", [False, True])
def test_sorting_gives_the_rows_a_full_stable_sort_gives(shuffled, nulls):
    rng = random.Random(f"{shuffled}{nulls}")
    for _ in range(20):
        persons = _persons(rng, 60, shuffled, nulls)
        full = persons.sort(pl.col("is_head").not_(), *ROSTER_ORDER, maintain_order=True)
        assert households.in_member_order(persons).equals(full)
        prepared = validate._prepare(persons, ["household_id"]).drop("_order")
        expected = persons.with_columns(pl.col("sheet").fill_null(""), pl.lit(False).alias("is_total_row")).sort(
            *ROSTER_ORDER, maintain_order=True, nulls_last=True)  # a blank sheet name is "" before the sort
        assert prepared.select(expected.columns).equals(expected)


def test_rows_in_roster_order_with_a_blank_head_marker_keep_every_row():
    """Rows already in roster order have their heads moved first by two filters on `is_head`; a blank marker, which
    both filters would drop, sends the frame to the full sort instead."""
    persons = _rows([("a.xlsx", "Sheet1", i) for i in range(1, 7)]).with_columns(
        pl.Series("is_head", [False, True, None, False, True, False], dtype=pl.Boolean))
    assert households.in_member_order(persons).equals(
        persons.sort(pl.col("is_head").not_(), *ROSTER_ORDER, maintain_order=True))
