"""Pandera (Polars backend) models of what list validation hands to the warehouse.

`staging.list_rows` (accepted rows), `quarantine.rejected_rows` and `quarantine.row_notes`, column for column as in
schemas/warehouse.sql. The row rules are not re-invented here: the ID check and the disability-certificate check are
the expressions of `fangpin.ids`, the same ones validation used to reject rows, so a failure here is a code bug.
"""
from __future__ import annotations

import polars as pl
import pandera.polars as pa

from fangpin import ids
from schemas.reasons import NOTE, REJECT


def valid_id(data: pa.PolarsData) -> pl.LazyFrame:
    """Custom check: the column holds normalised, valid GB 11643 IDs (fangpin.ids.is_valid_id)."""
    return data.lazyframe.select(ids.is_valid_id(pl.col(data.key)))


def cert_consistent(data: pa.PolarsData) -> pl.LazyFrame:
    """Row rule: a disability certificate, when present, is well formed and belongs to the row's ID."""
    return data.lazyframe.select(ids.cert_problem(pl.col("disability_cert"), pl.col("id_number")).is_null())


class ListRowsModel(pa.DataFrameModel):
    """staging.list_rows: an accepted row of a department list."""

    month: pl.String = pa.Field(nullable=False, str_matches=r"^\d{4}-\d{2}$")
    list_key: pl.String = pa.Field(nullable=False)
    department: pl.String = pa.Field(nullable=False)
    source_file: pl.String = pa.Field(nullable=False)
    sheet: pl.String = pa.Field(nullable=False)
    row_number: pl.Int32 = pa.Field(nullable=False)
    id_number: pl.String = pa.Field(nullable=False)
    name: pl.String = pa.Field(nullable=True)
    township: pl.String = pa.Field(nullable=True)
    village: pl.String = pa.Field(nullable=True)
    township_raw: pl.String = pa.Field(nullable=True)
    village_raw: pl.String = pa.Field(nullable=True)
    division_code: pl.String = pa.Field(nullable=True)
    event_date: pl.Date = pa.Field(nullable=True)
    amount: pl.Float64 = pa.Field(nullable=True)
    detail: pl.String = pa.Field(nullable=True)
    disability_cert: pl.String = pa.Field(nullable=True)
    raw: pl.String = pa.Field(nullable=True)

    class Config:
        strict = True
        ordered = True

    @pa.check("id_number", name="gb11643_id")
    def _id_valid(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return valid_id(data)

    @pa.dataframe_check(name="disability_cert_matches_id")
    def _cert(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return cert_consistent(data)

    @pa.dataframe_check(name="one_row_per_person_per_list")
    def _unique_person(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("id_number").is_unique().over("list_key"))


class RejectedRowsModel(pa.DataFrameModel):
    """quarantine.rejected_rows as row validation writes them (one row per rejected input row)."""

    month: pl.String = pa.Field(nullable=False)
    source_file: pl.String = pa.Field(nullable=False)
    sheet: pl.String = pa.Field(nullable=True)
    row_number: pl.Int32 = pa.Field(nullable=True)
    list_key: pl.String = pa.Field(nullable=True)
    column_name: pl.String = pa.Field(nullable=True)
    reason_code: pl.String = pa.Field(nullable=False, isin=sorted(REJECT))
    reason: pl.String = pa.Field(nullable=False)
    id_raw: pl.String = pa.Field(nullable=True)
    name: pl.String = pa.Field(nullable=True)
    township_raw: pl.String = pa.Field(nullable=True)
    village_raw: pl.String = pa.Field(nullable=True)
    raw: pl.String = pa.Field(nullable=True)
    # The ID as validation normalised it (fangpin.ids.normalise_id), kept when the ID itself was valid: a row rejected
    # for another reason (a duplicate, a bad certificate) is still a known person to the quality suites.
    id_number: pl.String = pa.Field(nullable=True)

    class Config:
        strict = True
        ordered = True


# quarantine.rejected_rows column -> Polars type, in table order: how every writer of quarantine rows (validation,
# file problems, returned workbooks) builds its frames.
REJECTED_COLUMNS: dict[str, pl.DataType] = {
    name: column.dtype.type for name, column in RejectedRowsModel.to_schema().columns.items()}


class RowNotesModel(pa.DataFrameModel):
    """quarantine.row_notes: a value of an accepted row that could not be used."""

    month: pl.String = pa.Field(nullable=False)
    source_file: pl.String = pa.Field(nullable=False)
    sheet: pl.String = pa.Field(nullable=True)
    row_number: pl.Int32 = pa.Field(nullable=True)
    list_key: pl.String = pa.Field(nullable=True)
    column_name: pl.String = pa.Field(nullable=True)
    note_code: pl.String = pa.Field(nullable=False, isin=sorted(NOTE))
    note: pl.String = pa.Field(nullable=False)

    class Config:
        strict = True
        ordered = True
