"""Households (户) from the roster's person rows, with the income indicators of the information-collection form.

The unit of monitoring is the household; the roster has one row per person, and household-level fields may be
filled on every member's row or only on the head's (户主) row. The rule here: the head's value, else the first
non-blank value among the members (in file/sheet/row order). Income indicators follow seed 004 (DOMAIN.md):
A33 = A28 + A29 + A30 + A31 - A32, A34 = A33 / size, A37 = A33 + A35 - A36, A38 = A37 / size.
"""
from __future__ import annotations

import polars as pl

from fangpin.ordering import ROSTER_ORDER, in_order

HEAD = "户主"  # 户主, head of household, in the 与户主关系 (relation to head) column

# Household-level columns of a person row, as parsed by fangpin.validate.validate_roster.
HOUSEHOLD_FIELDS = (
    "township", "village", "division_code", "household_type", "monitoring_category", "risk_eliminated",
    "identified_on", "household_size", "wages", "business_income", "property_income", "transfer_income",
    "business_costs", "insurance_payouts", "compliant_oop", "cadre",
)
INCOMES = ("wages", "business_income", "property_income", "transfer_income")  # A28-A31
HOUSEHOLD_COLUMNS = {  # roster.households, in warehouse order
    "month": pl.String, "household_id": pl.String, "township": pl.String, "village": pl.String,
    "division_code": pl.String, "head_name": pl.String, "head_id_number": pl.String, "household_type": pl.String,
    "monitoring_category": pl.String, "risk_eliminated": pl.Boolean, "identified_on": pl.Date,
    "household_size": pl.Int32, "members": pl.Int32, "wages": pl.Float64, "business_income": pl.Float64,
    "property_income": pl.Float64, "transfer_income": pl.Float64, "business_costs": pl.Float64,
    "insurance_payouts": pl.Float64, "compliant_oop": pl.Float64, "a33_net_income": pl.Float64,
    "a34_per_capita": pl.Float64, "a37_disposable": pl.Float64, "a38_per_capita": pl.Float64,
    "cadre": pl.String, "phone": pl.String, "income_unreadable": pl.Boolean,
}


def is_head(relation: pl.Expr) -> pl.Expr:
    """True when the relation cell says 户主 (spaces ignored); false for any other or blank relation."""
    return (relation.cast(pl.String).str.replace_all(r"\s", "") == HEAD).fill_null(False)


def in_member_order(persons: pl.DataFrame) -> pl.DataFrame:
    """Person rows sorted head first, then in roster order: the order `household_value` reads a household in.

    One sort of the frame instead of one per household and column (which cost seconds at a million persons); rows
    already in roster order (validation's output) only have their heads moved first, by two filters rather than a
    stable sort on `is_head` (a province county's 300,000 rows: 0.037 -> 0.012 CPU-s, bench/FINDINGS.md, session
    30); a frame with a blank `is_head`, which the filters would drop, is sorted.
    """
    heads = pl.col("is_head")
    if in_order(persons, ROSTER_ORDER) and not persons["is_head"].null_count():
        return pl.concat([persons.filter(heads), persons.filter(heads.not_())])
    return persons.sort(heads.not_(), *ROSTER_ORDER, maintain_order=True)


def household_value(column: str) -> pl.Expr:
    """The household's value of `column`: the head's when filled, else the first member's non-blank one.

    For `in_member_order(persons).group_by("household_id").agg(...)`: it takes the first non-blank value in the
    order the rows come in.
    """
    return pl.col(column).drop_nulls().first()


def household_values(persons: pl.DataFrame, columns: list[str], facts: tuple[pl.Expr, ...] = ()) -> pl.DataFrame:
    """One row per household_id with the `household_value` of each of `columns`, and `facts` (aggregations over
    the household's rows, of `columns` or `HOUSEHOLD_FIELDS`) in the same grouping."""
    order = ["household_id", "is_head", "source_file", "sheet", "row_number"]
    read = [*columns, *(name for fact in facts for name in fact.meta.root_names())]
    needed = persons.select(*order, *(c for c in dict.fromkeys(read) if c not in order))  # sort only what is read
    return in_member_order(needed).group_by("household_id").agg(*(household_value(c) for c in columns), *facts)


def net_income(a28: pl.Expr, a29: pl.Expr, a30: pl.Expr, a31: pl.Expr, a32: pl.Expr) -> pl.Expr:
    """A33 = wages + business income + property income + transfer income - business costs.

    A blank item counts as 0 when at least one item is filled; with every item blank A33 is unknown (null), so a
    household whose income was never collected is not mistaken for one with no income.
    """
    items = [a28, a29, a30, a31, a32]
    known = pl.any_horizontal(item.is_not_null() for item in items)
    total = pl.sum_horizontal(a28.fill_null(0), a29.fill_null(0), a30.fill_null(0), a31.fill_null(0),
                              -a32.fill_null(0))
    return pl.when(known).then(total)


def disposable_income(a33: pl.Expr, a35: pl.Expr, a36: pl.Expr) -> pl.Expr:
    """A37 = A33 + insurance payouts - compliant out-of-pocket spending; null when A33 is unknown."""
    return pl.when(a33.is_not_null()).then(a33 + a35.fill_null(0) - a36.fill_null(0))


def per_capita(amount: pl.Expr, size: pl.Expr) -> pl.Expr:
    """amount / household size; null when the size is unknown or not positive."""
    return pl.when(size > 0).then(amount / size)


def indicator_columns() -> list[pl.Expr]:
    """A33, A34, A37, A38 from the household's A28-A32, A35, A36 and household_size (one definition, reused by the
    pandera model that checks roster.households); unknown when an item only unreadable cells fill
    (`income_unreadable`: a blank item counts as 0, so such a household would look poorer or richer than it is)."""
    known = pl.col("income_unreadable").not_()
    a33 = pl.when(known).then(net_income(*(pl.col(c) for c in INCOMES), pl.col("business_costs")))
    a37 = disposable_income(a33, pl.col("insurance_payouts"), pl.col("compliant_oop"))
    size = pl.col("household_size")
    return [
        a33.alias("a33_net_income"), per_capita(a33, size).alias("a34_per_capita"),
        a37.alias("a37_disposable"), per_capita(a37, size).alias("a38_per_capita"),
    ]


def _head_field(column: str, alias: str) -> pl.Expr:
    """The head's own value (name, ID); a household with no 户主 row gets its first member's, so it stays visitable.
    Rows in member order (`in_member_order`)."""
    return pl.col(column).first().alias(alias)


def household_aggregates() -> list[pl.Expr]:
    """What a household takes from its members' rows, for `household_values`: each of HOUSEHOLD_FIELDS (the
    reported size as `reported_size`), the phone, the head's name and ID, the members counted.

    Validation groups the roster by household once (`fangpin.validate`, which also needs the places and the facts
    for its notes) and hands these to `build_households`. With a second sort and grouping of every person row there,
    a 300,000-person county's roster took 0.66-0.75 CPU-s, without it 0.61-0.64 (bench/FINDINGS.md, session 30)."""
    return [
        *(household_value(c).alias(c) for c in HOUSEHOLD_FIELDS if c != "household_size"),
        household_value("household_size").alias("reported_size"),
        household_value("phone").alias("phone"),
        _head_field("name", "head_name"), _head_field("id_number", "head_id_number"),
        pl.len().cast(pl.Int32).alias("members"),
    ]


def build_households(grouped: pl.DataFrame, month: str) -> pl.DataFrame:
    """roster.households: one row per household_id with head, places, category, incomes and A33/A34/A37/A38.

    `grouped` is `validate_roster(...).households`: each household's `household_aggregates` and `income_unreadable`
    as validation leaves its rows. household_size is the reported 家庭人口数 (household size) when positive, else
    the members counted.
    """
    from schemas.roster import HouseholdsModel, checked  # schemas.roster imports this module for its rules

    sized = grouped.with_columns(
        pl.when(pl.col("reported_size") > 0).then(pl.col("reported_size")).otherwise(pl.col("members"))
        .cast(pl.Int32).alias("household_size"),
        pl.lit(month, pl.String).alias("month"),
    )
    households = sized.with_columns(indicator_columns()).select(
        pl.col(c).cast(t) for c, t in HOUSEHOLD_COLUMNS.items()
    ).sort("household_id")
    return checked(HouseholdsModel, households)


def build_places(households: pl.DataFrame, month: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """roster.townships and roster.villages: what list place names resolve against, with household/person counts.

    Counted from the household-level place (the head's), so members whose own row left the place blank count too.
    township_code is the first 9 digits (county + township) of the villages' 12-digit division codes.
    """
    placed = households.filter(pl.col("township").is_not_null())
    code = pl.col("division_code").filter(pl.col("division_code").str.contains(r"^\d{12}$"))
    villages = (
        placed.filter(pl.col("village").is_not_null())
        .group_by("township", "village")
        .agg(code.mode().sort().first().alias("division_code"), pl.len().cast(pl.Int64).alias("households"),
             pl.col("members").sum().cast(pl.Int64).alias("persons"))
        .with_columns(pl.lit(month, pl.String).alias("month"))
        .select("month", "township", "village", "division_code", "households", "persons")
        .sort("township", "village")
    )
    townships = (
        placed.group_by("township")
        .agg(code.str.slice(0, 9).mode().sort().first().alias("township_code"),
             pl.len().cast(pl.Int64).alias("households"), pl.col("members").sum().cast(pl.Int64).alias("persons"))
        .with_columns(pl.lit(month, pl.String).alias("month"))
        .select("month", "township", "township_code", "households", "persons")
        .sort("township")
    )
    return townships, villages
