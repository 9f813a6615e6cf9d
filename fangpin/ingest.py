"""One month's ingestion without Dagster: drop zone -> validated lists and roster -> one warehouse transaction.

The Dagster assets in `assets/ingestion.py` are thin wrappers around these functions, so the same path runs in tests,
in the CLI and in the UI, and the rules live here once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from fangpin import households as household_rules
from fangpin import reading, validate
from fangpin.config import ListSpec
from fangpin.warehouse import replace_month
from schemas.lists import REJECTED_COLUMNS


@dataclass
class ListResult:
    """One department list for one month, validated; `rows_read` is what the reconciliation check compares."""

    spec: ListSpec
    rows_read: int
    files: list[str]
    accepted: pl.DataFrame
    rejected: pl.DataFrame
    notes: pl.DataFrame
    file_problems: pl.DataFrame

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.accepted.height + self.rejected.height

    def counts(self, month: str) -> dict:
        return {
            "month": month, "list_key": self.spec.key, "department": self.spec.department,
            "files": len(self.files), "rows_read": self.rows_read, "rows_accepted": self.accepted.height,
            "rows_rejected": self.rejected.height,
            "rows_noted": self.notes.select("row_number", "source_file", "sheet").unique().height if self.notes.height else 0,
            "file_problems": self.file_problems.height,
        }


@dataclass
class RosterMonth:
    """The household roster as of one month, with the income indicators computed per household."""

    rows_read: int
    persons: pl.DataFrame
    households: pl.DataFrame
    townships: pl.DataFrame
    villages: pl.DataFrame
    rejected: pl.DataFrame
    notes: pl.DataFrame
    files: list[reading.ReceivedFile] = field(default_factory=list)

    @property
    def places(self) -> pl.DataFrame:
        return self.villages.select("township", "village", "division_code")


def problems_frame(problems: list[reading.FileProblem], month: str) -> pl.DataFrame:
    """File- and sheet-level problems as quarantine rows (row_number empty: the whole file or sheet)."""
    rows = [
        {"month": month, "source_file": p.source_file, "sheet": p.sheet, "row_number": None, "list_key": p.list_key,
         "column_name": None, "reason_code": p.reason_code, "reason": p.reason}
        for p in problems
    ]
    return pl.DataFrame(rows, schema=REJECTED_COLUMNS)


def concat_tables(tables: list[reading.SheetTable], with_raw: bool = True) -> pl.DataFrame:
    """All sheets recognised as one list, stacked; columns a sheet lacks become null. `with_raw=False`: without
    the original cells (`reading.raw_of_rows` gives them for the rows that need them)."""
    if not tables:
        return pl.DataFrame(schema={"source_file": pl.String, "sheet": pl.String, "row_number": pl.Int64,
                                    "is_total_row": pl.Boolean} | ({"raw": pl.String} if with_raw else {}))
    frames = [t.with_raw() if with_raw else t.without_raw() for t in tables]
    return pl.concat(frames, how="diagonal_relaxed")


@validate.in_memory_plans()
def load_roster(data_dir: Path, month: str, read: reading.RosterFiles | None = None) -> RosterMonth:
    """The month's roster, validated, with its households and places. `read`: what `reading.read_roster` already
    returned for this month (a run starts reading the roster files at its setup); None reads them now."""
    tables, problems, files = read if read is not None else reading.read_roster(Path(data_dir), month)
    table = concat_tables(tables, with_raw=False)  # only rejected rows need their original cells
    checked = validate.validate_roster(table, month=month, raw=lambda rows: reading.raw_of_rows(tables, rows))
    households = household_rules.build_households(checked.households, month)
    townships, villages = household_rules.build_places(households, month)
    rejected = pl.concat([problems_frame(problems, month), checked.rejected], how="diagonal_relaxed")
    return RosterMonth(table.height, checked.accepted, households, townships, villages, rejected, checked.notes, files)


@validate.in_memory_plans()
def ingest_lists(scan: reading.MonthScan, specs: list[ListSpec], places: pl.DataFrame,
                 month: str) -> list[ListResult]:
    """The month's department lists, validated together (`validate.validate_lists`), one ListResult per spec."""
    tables = {spec.key: scan.tables.get(spec.key, []) for spec in specs}
    frames = {key: concat_tables(found) for key, found in tables.items()}
    checked = validate.validate_lists([(spec, frames[spec.key]) for spec in specs], month=month, places=places)
    return [
        ListResult(
            spec=spec, rows_read=frames[spec.key].height,
            files=sorted({f"{t.source_file}#{t.sheet}" for t in tables[spec.key]}),
            accepted=checked[spec.key].accepted, rejected=checked[spec.key].rejected,
            notes=checked[spec.key].notes,
            file_problems=problems_frame([p for p in scan.problems if p.list_key == spec.key], month),
        )
        for spec in specs
    ]


def received_files_frame(scan: reading.MonthScan, roster: RosterMonth, results: list[ListResult], month: str,
                         previous_first_seen: dict[str, datetime], now: datetime) -> pl.DataFrame:
    """raw.received_files: every file with rows read / accepted / rejected (a list's or the roster's; a problem
    of a whole file or sheet is no row); first_seen kept from earlier runs."""
    per_file: dict[str, list[int]] = {}
    counted = [(frame, slot) for result in results for frame, slot in ((result.accepted, 1), (result.rejected, 2))]
    for frame, slot in [*counted, (roster.persons, 1), (roster.rejected, 2)]:
        if "row_number" in frame.columns:
            frame = frame.filter(pl.col("row_number").is_not_null())
        if frame.height:
            for source, count in frame.group_by("source_file").len().iter_rows():
                per_file.setdefault(source, [0, 0, 0])[slot] += count
    for counts in per_file.values():
        counts[0] = counts[1] + counts[2]
    rows = []
    for f in [*scan.files, *roster.files]:
        read, accepted, rejected = per_file.get(f.source_file, [None, None, None])
        rows.append({
            "month": month, "source_file": f.source_file, "department": f.department, "folder": f.folder,
            "lists": list(f.lists), "sha256": f.sha256, "size_bytes": f.size_bytes, "modified_at": f.modified_at,
            "first_seen": previous_first_seen.get(f.sha256, now), "status": f.status, "note": f.note,
            "duplicate_of": f.duplicate_of, "rows_read": read, "rows_accepted": accepted, "rows_rejected": rejected,
        })
    return pl.DataFrame(rows, schema_overrides={"lists": pl.List(pl.String), "rows_read": pl.Int64,
                                                "rows_accepted": pl.Int64, "rows_rejected": pl.Int64})


def first_seen_by_hash(con: duckdb.DuckDBPyConnection) -> dict[str, datetime]:
    rows = con.execute("SELECT sha256, min(first_seen) FROM raw.received_files WHERE sha256 IS NOT NULL GROUP BY 1").fetchall()
    return dict(rows)


def write_roster(con: duckdb.DuckDBPyConnection, month: str, roster: RosterMonth) -> dict[str, int]:
    """The roster's tables of `month` (inside the caller's transaction): the part of `write_month` a run writes
    while the department lists are still being validated (`pipelines.resources.FangpinData.start_roster_write`)."""
    return {
        "roster.persons": replace_month(con, "roster.persons", month, roster.persons),
        "roster.households": replace_month(con, "roster.households", month, roster.households),
        "roster.townships": replace_month(con, "roster.townships", month, roster.townships),
        "roster.villages": replace_month(con, "roster.villages", month, roster.villages),
    }


def write_month(con: duckdb.DuckDBPyConnection, month: str, scan: reading.MonthScan, roster: RosterMonth,
                results: list[ListResult], now: datetime, roster_written: dict[str, int] | None = None
                ) -> dict[str, int]:
    """Replace everything ingestion owns for `month` (call inside one transaction); feedback rows are left alone.
    `roster_written`: what `write_roster` wrote earlier in this transaction (else it is written here)."""
    files = received_files_frame(scan, roster, results, month, first_seen_by_hash(con), now)
    unassigned = [p for p in scan.problems if p.list_key is None]
    quarantine = pl.concat(
        [problems_frame(unassigned, month), roster.rejected]
        + [pl.concat([r.file_problems, r.rejected], how="diagonal_relaxed") for r in results],
        how="diagonal_relaxed",
    )
    notes = pl.concat([roster.notes] + [r.notes for r in results], how="diagonal_relaxed")
    accepted = pl.concat([r.accepted for r in results], how="diagonal_relaxed")
    counts = pl.DataFrame([r.counts(month) for r in results])
    written = {
        "raw.received_files": replace_month(con, "raw.received_files", month, files),
        "raw.list_counts": replace_month(con, "raw.list_counts", month, counts),
        "staging.list_rows": replace_month(con, "staging.list_rows", month, accepted),
        **(roster_written if roster_written is not None else write_roster(con, month, roster)),
        "quarantine.row_notes": replace_month(con, "quarantine.row_notes", month, notes),
        "quarantine.rejected_rows": replace_month(
            con, "quarantine.rejected_rows", month, quarantine, keep="list_key IS DISTINCT FROM 'feedback'"),
    }
    return written

