"""Pandera (Polars backend) models of the roster as validated: persons and households.

`PersonsModel` is roster.persons plus the parsed household-level columns that `fangpin.households` rolls up;
`HouseholdsModel` is roster.households. Rules come from fangpin (one definition each): the ID check, sex and birth
date read from the ID, the head marker, and the A33/A34/A37/A38 formulas.
"""
from __future__ import annotations

import polars as pl
import pandera.polars as pa
from pandera.config import ValidationDepth, config_context

from fangpin import households as rules
from fangpin import ids
from schemas.lists import valid_id

# pandera's row checks re-run rules that fangpin's Polars expressions already applied (the ID rule, uniqueness, the
# A33-A38 formulas): a safety net worth its cost on list-sized frames (and on every test's roster), not at roster
# scale (1.5 s of 6.3 s for a million persons; 0.09 s against 0.01 s for their 292,674 households), where only the
# schema (columns, types) is checked. A province county's 87,518 households are list-sized: fully checked (0.04 s).
ROW_CHECKS_UP_TO = 100_000


def checked(model: type[pa.DataFrameModel], frame: pl.DataFrame) -> pl.DataFrame:
    """`model.validate(frame)`: columns, types and row checks up to ROW_CHECKS_UP_TO rows; columns and types beyond.
    A failure is a bug in fangpin's own rules, so it raises."""
    if frame.height <= ROW_CHECKS_UP_TO:
        return model.validate(frame)
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        return model.validate(frame)


class PersonsModel(pa.DataFrameModel):
    """An accepted roster row: roster.persons columns, then the household-level fields parsed."""

    month: pl.String = pa.Field(nullable=False, str_matches=r"^\d{4}-\d{2}$")
    household_id: pl.String = pa.Field(nullable=False)
    id_number: pl.String = pa.Field(nullable=False, unique=True)
    name: pl.String = pa.Field(nullable=True)
    relation: pl.String = pa.Field(nullable=True)
    is_head: pl.Boolean = pa.Field(nullable=False)
    sex: pl.String = pa.Field(nullable=False, isin=["男", "女"])
    birth_date: pl.Date = pa.Field(nullable=False)
    township: pl.String = pa.Field(nullable=True)
    village: pl.String = pa.Field(nullable=True)
    division_code: pl.String = pa.Field(nullable=True)
    labour: pl.String = pa.Field(nullable=True)
    health: pl.String = pa.Field(nullable=True)
    phone: pl.String = pa.Field(nullable=True)
    source_file: pl.String = pa.Field(nullable=True)
    sheet: pl.String = pa.Field(nullable=True)
    row_number: pl.Int32 = pa.Field(nullable=True)
    household_type: pl.String = pa.Field(nullable=True)
    monitoring_category: pl.String = pa.Field(nullable=True)
    risk_eliminated: pl.Boolean = pa.Field(nullable=True)
    identified_on: pl.Date = pa.Field(nullable=True)
    household_size: pl.Int32 = pa.Field(nullable=True, gt=0)
    wages: pl.Float64 = pa.Field(nullable=True)
    business_income: pl.Float64 = pa.Field(nullable=True)
    property_income: pl.Float64 = pa.Field(nullable=True)
    transfer_income: pl.Float64 = pa.Field(nullable=True)
    business_costs: pl.Float64 = pa.Field(nullable=True)
    insurance_payouts: pl.Float64 = pa.Field(nullable=True)
    compliant_oop: pl.Float64 = pa.Field(nullable=True)
    cadre: pl.String = pa.Field(nullable=True)
    income_unreadable: pl.Boolean = pa.Field(nullable=False)  # the household's income has a cell nobody could read

    class Config:
        strict = True
        ordered = True

    @pa.check("id_number", name="gb11643_id")
    def _id_valid(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return valid_id(data)

    @pa.dataframe_check(name="sex_and_birth_date_from_id")
    def _from_id(cls, data: pa.PolarsData) -> pl.LazyFrame:
        same_sex = pl.col("sex") == ids.sex_from_id(pl.col("id_number"))
        same_birth = pl.col("birth_date") == ids.birth_date_from_id(pl.col("id_number"))
        return data.lazyframe.select(same_sex & same_birth)

    @pa.dataframe_check(name="head_marked_by_relation")
    def _head(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("is_head") == rules.is_head(pl.col("relation")))


def _same(column: str, expected: pl.Expr) -> pl.Expr:
    """Equal, or both null (float results compared with a cent's tolerance)."""
    actual = pl.col(column)
    return (actual.is_null() & expected.is_null()) | ((actual - expected).abs() < 0.005).fill_null(False)


class HouseholdsModel(pa.DataFrameModel):
    """roster.households: one row per household, income indicators consistent with their items."""

    month: pl.String = pa.Field(nullable=False)
    household_id: pl.String = pa.Field(nullable=False, unique=True)
    township: pl.String = pa.Field(nullable=True)
    village: pl.String = pa.Field(nullable=True)
    division_code: pl.String = pa.Field(nullable=True)
    head_name: pl.String = pa.Field(nullable=True)
    head_id_number: pl.String = pa.Field(nullable=True)
    household_type: pl.String = pa.Field(nullable=True)
    monitoring_category: pl.String = pa.Field(nullable=True)
    risk_eliminated: pl.Boolean = pa.Field(nullable=True)
    identified_on: pl.Date = pa.Field(nullable=True)
    household_size: pl.Int32 = pa.Field(nullable=False, gt=0)
    members: pl.Int32 = pa.Field(nullable=False, gt=0)
    wages: pl.Float64 = pa.Field(nullable=True)
    business_income: pl.Float64 = pa.Field(nullable=True)
    property_income: pl.Float64 = pa.Field(nullable=True)
    transfer_income: pl.Float64 = pa.Field(nullable=True)
    business_costs: pl.Float64 = pa.Field(nullable=True)
    insurance_payouts: pl.Float64 = pa.Field(nullable=True)
    compliant_oop: pl.Float64 = pa.Field(nullable=True)
    a33_net_income: pl.Float64 = pa.Field(nullable=True)
    a34_per_capita: pl.Float64 = pa.Field(nullable=True)
    a37_disposable: pl.Float64 = pa.Field(nullable=True)
    a38_per_capita: pl.Float64 = pa.Field(nullable=True)
    cadre: pl.String = pa.Field(nullable=True)
    phone: pl.String = pa.Field(nullable=True)
    income_unreadable: pl.Boolean = pa.Field(nullable=False)

    class Config:
        strict = True
        ordered = True

    @pa.dataframe_check(name="income_indicators_A33_A38")
    def _indicators(cls, data: pa.PolarsData) -> pl.LazyFrame:
        expected = {e.meta.output_name(): e for e in rules.indicator_columns()}
        return data.lazyframe.select(pl.all_horizontal(_same(c, e) for c, e in expected.items()))
