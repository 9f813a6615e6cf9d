"""Row validation: every row read ends up accepted (staging.list_rows / roster.persons) or rejected
(quarantine.rejected_rows) with a reason a county clerk understands; values that could not be used on a kept row
are recorded in quarantine.row_notes.

One pass of Polars expressions decides each row's first problem (total row, ID, disability certificate, household,
duplicate person); no per-row Python. The accepted frames are then checked with the pandera models in `schemas/`,
which reuse the same `fangpin.ids` rules: a failure there is a bug in this module, so it raises (row checks on
list-sized frames; a roster past `schemas.roster.ROW_CHECKS_UP_TO` rows gets the schema check only).
"""
from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import polars as pl

from fangpin import households, ids
from fangpin.config import ListSpec, check_month, registry
from fangpin.ordering import ROSTER_ORDER, in_order
from fangpin.reading import excel_number_text
from fangpin.values import (BLANK_CHARS, amount_where_needed, cell_text, parse_amount, parse_date, regex_literal,
                            resolve_places)
from schemas.lists import ListRowsModel, RejectedRowsModel, RowNotesModel
from schemas.reasons import NOTE, REJECT
from schemas.roster import PersonsModel, checked

LINEAGE = {"source_file": pl.String, "sheet": pl.String, "row_number": pl.Int64, "is_total_row": pl.Boolean,
           "raw": pl.String}
LIST_COLUMNS = list(ListRowsModel.to_schema().columns)
PERSON_COLUMNS = list(PersonsModel.to_schema().columns)
ID_CODES = ("id_missing", "id_float_mangled", "id_bad_length", "id_bad_chars", "id_bad_birthdate", "id_bad_checksum")
CODE_COLUMN = {  # which canonical column a rejection is about (None: the row as a whole)
    **{code: "id_number" for code in ID_CODES}, "duplicate_in_list": "id_number",
    "disability_cert_invalid": "disability_cert", "disability_cert_mismatch": "disability_cert",
    "roster_household_missing": "household_id", "roster_household_float_mangled": "household_id", "total_row": None,
}
YES_NO = {"是": True, "否": False}  # 风险是否消除 (risk eliminated?) 是 yes / 否 no
ROSTER_AMOUNTS = ("wages", "business_income", "property_income", "transfer_income", "business_costs",
                  "insurance_payouts", "compliant_oop")


@dataclass
class Validated:
    """accepted: warehouse rows; rejected: quarantine.rejected_rows; notes: quarantine.row_notes; households (the
    roster's only): each household's values from its accepted rows as validation leaves them
    (`households.household_aggregates` and `income_unreadable`), for `households.build_households`."""

    accepted: pl.DataFrame
    rejected: pl.DataFrame
    notes: pl.DataFrame
    households: pl.DataFrame | None = None


# ------------------------------------------------------------------------------------------------------------------
# Sentences, vectorised: the templates of schemas/reasons.py filled from columns
# ------------------------------------------------------------------------------------------------------------------
def template_expr(template: str, **values: pl.Expr) -> pl.Expr:
    """`template.format(**values)` for every row at once (the same wording `reject()` / `note()` produce)."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(pl.lit(literal))
        if field is not None:
            parts.append(values[field].cast(pl.String).fill_null(""))
    return pl.concat_str(parts) if parts else pl.lit("")


def _where(label: pl.Expr) -> pl.Expr:
    """“file”工作表“sheet”第N行“column”: so the clerk can find the cell (sheet omitted for CSV, column when known)."""
    named = pl.col("sheet").fill_null("") != ""
    sheet = pl.when(named).then(pl.format("工作表“{}”", pl.col("sheet"))).otherwise(pl.lit(""))
    column = pl.when(label.is_not_null()).then(pl.format("“{}”列", label)).otherwise(pl.lit(""))
    return pl.concat_str(pl.format("“{}”", pl.col("source_file")), sheet,
                         pl.format("第{}行", pl.col("row_number").cast(pl.String)), column, pl.lit("："))


def _labels(header_map: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Canonical column -> the header word a clerk knows (the registry's first variant, e.g. 身份证号码)."""
    return {column: (words[0] if words else column) for column, words in header_map.items()}


def _label_expr(codes: pl.Expr, labels: dict[str, str]) -> pl.Expr:
    """The column_name of each rejection: the header word of the column the code is about (null: whole row)."""
    mapping = {code: labels.get(column) for code, column in CODE_COLUMN.items() if column}
    return codes.replace_strict(mapping, default=None, return_dtype=pl.String)


def _reason_values() -> dict[str, dict[str, pl.Expr]]:
    """Placeholder values of each rejection template, as columns computed by `_mark_problems`."""
    value = pl.col("_id_text")
    return {
        **{code: {"value": value} for code in ID_CODES},
        "id_bad_checksum": {"value": value, "expected": ids.check_char(pl.col("id_number").str.slice(0, 17))},
        "disability_cert_invalid": {"value": cell_text(pl.col("disability_cert"))},
        "roster_household_float_mangled": {"value": pl.col("household_id")},
        "duplicate_in_list": {"first_row": pl.col("_first_row")},
        "duplicate_in_list_elsewhere": {"first_row": pl.col("_first_row"), "first_file": pl.col("_first_file"),
                                        "first_sheet": pl.col("_first_sheet")},
    }


def _reason_body(codes: pl.Expr, columns: list[str]) -> pl.Expr:
    """The clerk's sentence for each row's code (duplicates name the first row, in another file when it is);
    only codes about the frame's `columns` (a roster has no disability certificate)."""
    values = _reason_values()
    elsewhere = (pl.col("_first_file") != pl.col("source_file")) | (pl.col("_first_sheet_name") != pl.col("sheet"))
    body = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))
    if "_first_household" in columns:  # the roster: the same person in another household is no double report
        other_household = (codes == "duplicate_in_list") & (pl.col("_first_household") != pl.col("household_id"))
        body = body.when(other_household).then(template_expr(REJECT["duplicate_in_two_households"], **{
            **values["duplicate_in_list_elsewhere"], "household_id": pl.col("household_id"),
            "first_household": pl.col("_first_household")}))
    body = body.when((codes == "duplicate_in_list") & elsewhere).then(
        template_expr(REJECT["duplicate_in_list_elsewhere"], **values["duplicate_in_list_elsewhere"]))
    for code in (code for code, column in CODE_COLUMN.items() if column is None or column in columns):
        body = body.when(codes == code).then(template_expr(REJECT[code], **values.get(code, {})))
    return body


@contextmanager
def in_memory_plans() -> Iterator[None]:
    """Polars' lazy plans inside run in memory, not streaming: validation's own (the ID judging keeps every column
    of the frame) and pandera's (a plan per check). Also a decorator (`ingest.load_roster`, `ingest.ingest_lists`).

    Polars 2's default engine ("auto") streams such a plan morsel by morsel and returns the frame in many chunks,
    which the next eager operation copies whole into one; the frames are in memory already, so streaming saves
    nothing here. A province county's roster and lists 0.99 -> 0.82 CPU-s, the bench county's 3.33 -> 3.09, results
    identical (bench/FINDINGS.md, session 27). Polars keeps the setting for the whole process (`pl.Config`, restored
    on leaving): work in other threads meanwhile runs in memory too, which changes how fast, never what.
    """
    with pl.Config(engine_affinity="in-memory"):
        yield


# ------------------------------------------------------------------------------------------------------------------
# The one pass: input columns, each row's first problem, duplicates
# ------------------------------------------------------------------------------------------------------------------
def _prepare(table: pl.DataFrame, canonical: list[str], within: tuple[str, ...] = ()) -> pl.DataFrame:
    """Every canonical and lineage column present (missing ones null), text as String, rows in file/sheet/row order
    (within each `within` group first: the lists of a month are validated as one frame, ordered list by list)."""
    missing = [pl.lit(None, pl.String).alias(c) for c in canonical if c not in table.columns]
    missing += [pl.lit(None, t).alias(c) for c, t in LINEAGE.items() if c not in table.columns]
    frame = table.with_columns(missing).with_columns(
        *[pl.col(c).cast(pl.String) for c in canonical],
        *[pl.col(c).cast(t) for c, t in LINEAGE.items()],
    )
    frame = frame.with_columns(pl.col("sheet").fill_null(""), pl.col("is_total_row").fill_null(False))
    keys = (*within, *ROSTER_ORDER)
    ordered = frame if in_order(frame, keys) else frame.sort(*keys, maintain_order=True, nulls_last=True)
    return ordered.with_row_index("_order")  # the row's position: kept until duplicates are marked


ID_BIRTH_DATE = "_id_birth_date"  # each row's birth date as its ID's judging read it (`ids.with_id_problem`)


def _mark_problems(frame: pl.DataFrame, extra: list[pl.Expr], within: tuple[str, ...] = ()) -> pl.DataFrame:
    """`_code`: the first problem of each row (total row, ID, then `extra` checks), duplicates (within each
    `within` group: a person may be on several lists, once per list) after that."""
    raw = frame.lazy().with_columns(pl.col("id_number").alias("_id_raw"),
                                    cell_text(pl.col("id_number")).alias("_id_text"))
    judged = ids.with_id_problem(ids.with_normalised_id(raw), "id_number", "_id_code", born=ID_BIRTH_DATE)
    frame = judged.collect()  # in memory when called through ingest (`in_memory_plans`)
    first = pl.coalesce(pl.when(pl.col("is_total_row")).then(pl.lit("total_row")), pl.col("_id_code"), *extra)
    return _mark_duplicates(frame.with_columns(first.alias("_code")), within)


# The columns of a duplicate's first clean row its reason names, and what `_mark_duplicates` calls them.
_FIRST_ROW = (("row_number", "_first_row"), ("source_file", "_first_file"), ("sheet", "_first_sheet_name"))


def _mark_duplicates(frame: pl.DataFrame, within: tuple[str, ...]) -> pl.DataFrame:
    """A person (normalised ID) already on an earlier clean row of the same list: duplicate_in_list.

    One window finds each person's first clean row; its file, sheet and row are then picked by position (`_order`
    is the row index `_prepare` gave the frame). Four windows, one per column, cost 0.32 s for 300,000 roster rows,
    one window and the picks 0.12 s: Polars does not share the grouping between windows. When `_has_duplicates`
    finds no person twice, the columns are added empty (only a duplicate's reason reads them): skipping the
    picks as well as the window, 0.20 -> 0.14 CPU-s against 0.17 with empty picks (bench/FINDINGS.md, session 25).
    """
    clean = pl.col("_code").is_null()
    if not _has_duplicates(frame, within):  # the usual roster: no window over its IDs, no duplicate to name
        return frame.with_columns(pl.lit(None, frame.schema["_order"]).alias("_first_order"),
                                  *(pl.lit(None, frame.schema[column]).alias(alias) for column, alias in _FIRST_ROW),
                                  pl.lit("").alias("_first_sheet"))
    frame = frame.with_columns(pl.col("_order").filter(clean).first().over(*within, "id_number").alias("_first_order"))
    frame = frame.with_columns(pl.col(column).gather(pl.col("_first_order")).alias(alias)
                               for column, alias in _FIRST_ROW)
    duplicate = clean & (pl.col("_order") != pl.col("_first_order"))
    sheet = pl.when(pl.col("_first_sheet_name") != "").then(pl.format("工作表“{}”", pl.col("_first_sheet_name")))
    return frame.with_columns(
        pl.when(duplicate).then(pl.lit("duplicate_in_list")).otherwise(pl.col("_code")).alias("_code"),
        sheet.otherwise(pl.lit("")).alias("_first_sheet"),
    )


def _has_duplicates(frame: pl.DataFrame, within: tuple[str, ...]) -> bool:
    """Whether a person (normalised ID) is on two clean rows of one `within` group. One count of distinct IDs
    costs a third of `_mark_duplicates`' window (a province county's 300,000 roster rows: 0.03 against 0.11 CPU-s,
    bench/FINDINGS.md, session 25), and a roster seldom lists a person twice."""
    clean = pl.col("_code").is_null()
    person = pl.struct(*within, "id_number") if within else pl.col("id_number")
    return frame.select(person.filter(clean).n_unique() < clean.sum()).item()


def _key(list_key: str | pl.Expr) -> pl.Expr:
    """The list_key of the output rows: one list's key, or the `list_key` column of the month's lists together."""
    return list_key if isinstance(list_key, pl.Expr) else pl.lit(list_key, pl.String)


RawOfRows = Callable[[pl.Series], pl.Series]  # input row positions -> their `raw` JSON, in that order


def _rejected(frame: pl.DataFrame, month: str, list_key: str | pl.Expr, labels: dict[str, str],
              raw: RawOfRows | None = None) -> pl.DataFrame:
    """quarantine.rejected_rows for every row with a `_code`.

    `raw`: when the frame has no raw JSON column and carries `_input_row` instead (the roster: only rejected rows
    need their original cells, so a million accepted rows neither encode theirs nor drag them through every pass).
    """
    bad = frame.filter(pl.col("_code").is_not_null())
    if raw is not None:
        bad = bad.with_columns(raw(bad["_input_row"]).alias("raw"))
    if "household_id" in frame.columns:  # the household of each duplicate's first row, picked for the bad rows only
        bad = bad.with_columns(frame["household_id"].gather(bad["_first_order"]).alias("_first_household"))
    label = _label_expr(pl.col("_code"), labels)
    rejected = bad.select(
        pl.lit(month, pl.String).alias("month"), "source_file", "sheet",
        pl.col("row_number").cast(pl.Int32), _key(list_key).alias("list_key"),
        label.alias("column_name"), pl.col("_code").alias("reason_code"),
        pl.concat_str(_where(label), _reason_body(pl.col("_code"), bad.columns)).alias("reason"),
        pl.col("_id_raw").alias("id_raw"), cell_text(pl.col("name")).alias("name"),
        pl.col("township").alias("township_raw"), pl.col("village").alias("village_raw"), "raw",
        pl.when(pl.col("_id_code").is_null()).then(pl.col("id_number")).alias("id_number"),
    )
    return RejectedRowsModel.validate(rejected)


# ------------------------------------------------------------------------------------------------------------------
# Notes on accepted rows
# ------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoteRule:
    """A kept row's value that could not be used: when `when` holds, note `code` on `column` with `values`.

    `among`, when given, is a cheap condition every noted row meets (e.g. "the parsed value is empty"): `when`, often
    a regex over the raw text, is then evaluated on those rows only, not on a whole roster.
    """

    column: str
    code: str
    when: pl.Expr
    values: dict[str, pl.Expr]
    among: pl.Expr | None = None


def _notes(frame: pl.DataFrame, rules: list[NoteRule], month: str, list_key: str | pl.Expr,
           labels: dict[str, str]) -> pl.DataFrame:
    """quarantine.row_notes for the accepted rows (one Polars filter per rule, not per row).

    One pass over the frame first tells which rules can note a row at all (each rule's `among`, else its condition):
    most rules note nothing in a month, and filtering a 300,000-person roster once per rule cost ~0.1 CPU-s
    (bench/FINDINGS.md, session 24). Only the rules it finds are filtered.
    """
    gates = [(rule.among if rule.among is not None else rule.when).fill_null(False).any().alias(f"_rule{i}")
             for i, rule in enumerate(rules)]
    found = frame.select(gates).row(0) if gates and frame.height else [False] * len(rules)
    parts = []
    for rule in (rule for rule, any_row in zip(rules, found) if any_row):
        label = pl.lit(labels.get(rule.column, rule.column), pl.String)
        candidates = frame if rule.among is None else frame.filter(rule.among)
        parts.append(candidates.filter(rule.when.fill_null(False)).select(
            pl.lit(month, pl.String).alias("month"), "source_file", "sheet", pl.col("row_number").cast(pl.Int32),
            _key(list_key).alias("list_key"), label.alias("column_name"),
            pl.lit(rule.code).alias("note_code"),
            pl.concat_str(_where(label), template_expr(NOTE[rule.code], **rule.values)).alias("note"),
        ))
    notes = pl.concat(parts) if parts else pl.DataFrame(
        schema={name: dtype.type for name, dtype in RowNotesModel.to_schema().dtypes.items()})
    return RowNotesModel.validate(notes.sort("list_key", "source_file", "sheet", "row_number", "column_name"))


def _unread(column: str) -> pl.Expr:
    """A non-blank cell (its text kept in `_<column>`) that parsed to nothing."""
    return cell_text(pl.col(f"_{column}")).is_not_null() & pl.col(column).is_null()


def _unparsed(column: str, code: str) -> NoteRule:
    """Notes `_unread` cells with their text."""
    return NoteRule(column, code, _unread(column), {"value": cell_text(pl.col(f"_{column}"))},
                    among=pl.col(f"_{column}").is_not_null() & pl.col(column).is_null())


def _month_bounds(month: str) -> tuple[date, date]:
    year, number = (int(part) for part in check_month(month).split("-"))
    start = date(year, number, 1)
    end = date(year + number // 12, number % 12 + 1, 1)
    return start, end


def _place_rules() -> list[NoteRule]:
    unknown_township = pl.col("township_raw").is_not_null() & pl.col("township").is_null()
    unknown_village = (pl.col("village_raw").is_not_null() & pl.col("village").is_null()
                       & pl.col("township").is_not_null())  # an unknown township is noted once, not twice
    return [NoteRule("township", "township_unknown", unknown_township, {"value": pl.col("township_raw")}),
            NoteRule("village", "village_unknown", unknown_village, {"value": pl.col("village_raw")})]


# ------------------------------------------------------------------------------------------------------------------
# Department lists
# ------------------------------------------------------------------------------------------------------------------
def _list_values(frame: pl.DataFrame, places: pl.DataFrame) -> pl.DataFrame:
    """Accepted list rows with parsed values and places resolved (raw texts kept in `_<column>` for the notes).

    Dates and the other repetitive texts are parsed once per distinct cell (`_by_value`): a province county's 30,000
    list rows hold 31 distinct dates, and parsing every row's date cost 0.29 of the 0.43 s here."""
    by_value = {
        "event_date": (parse_date(pl.col("event_date")), pl.Date), "amount": (parse_amount(pl.col("amount")), pl.Float64),
        "detail": (cell_text(pl.col("detail")), pl.String),
        "division_code": (ids.clean_text(pl.col("division_code")), pl.String),
        "disability_cert": (ids.normalise_cert(pl.col("disability_cert")), pl.String),
        "township": (cell_text(pl.col("township")), pl.String), "village": (cell_text(pl.col("village")), pl.String),
    }
    parsed = frame.with_columns(
        pl.col("event_date").alias("_event_date"), pl.col("amount").alias("_amount"),
        _person_name(pl.col("name")).alias("name"), *_by_value(frame, by_value),
    )
    return resolve_places(parsed, places)


def _list_note_rules(month: str) -> list[NoteRule]:
    start, end = _month_bounds(month)
    outside = (pl.col("event_date") < start) | (pl.col("event_date") >= end)
    return [
        _unparsed("event_date", "date_unparsed"),
        NoteRule("event_date", "date_outside_month", outside, {"value": pl.col("event_date").dt.to_string("%Y-%m-%d")}),
        _unparsed("amount", "amount_unparsed"),
        *_place_rules(),
    ]


def validate_lists(tables: list[tuple[ListSpec, pl.DataFrame]], *, month: str,
                   places: pl.DataFrame) -> dict[str, Validated]:
    """The month's department lists (each: all its files and sheets) -> accepted, rejected, notes per list key.

    Validated as ONE frame with `list_key` as a column (duplicates are looked for within a list): a county's list
    has a few hundred to a few thousand rows, and two dozen separate passes cost more in per-call overhead (Polars
    plans, three pandera validations each) than the work itself. len(accepted) + len(rejected) == len(table) for
    every list, always.
    """
    if not tables:
        return {}
    reg = registry()
    labels = _labels(reg.list_headers)
    stacked = pl.concat([table.with_columns(pl.lit(spec.key, pl.String).alias("list_key")) for spec, table in tables],
                        how="diagonal_relaxed")
    frame = _prepare(stacked, list(reg.list_headers), within=("list_key",))
    cert = ids.cert_problem(pl.col("disability_cert"), pl.col("id_number"))
    frame = _mark_problems(frame, [cert], within=("list_key",))
    good = _list_values(frame.filter(pl.col("_code").is_null()), places)
    notes = _notes(good, _list_note_rules(month), month, pl.col("list_key"), labels)
    department = pl.col("list_key").replace_strict({spec.key: spec.department for spec, _ in tables},
                                                    return_dtype=pl.String)
    accepted = good.with_columns(
        pl.lit(month, pl.String).alias("month"), department.alias("department"), pl.col("row_number").cast(pl.Int32),
    ).select(LIST_COLUMNS)
    validated = Validated(ListRowsModel.validate(accepted), _rejected(frame, month, pl.col("list_key"), labels), notes)
    return {spec.key: _one_list(validated, spec.key) for spec, _ in tables}


def _one_list(validated: Validated, list_key: str) -> Validated:
    """One list's rows of the month's validated frames (its accepted, rejected and notes)."""
    def rows_of(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("list_key") == list_key)

    return Validated(rows_of(validated.accepted), rows_of(validated.rejected), rows_of(validated.notes))


def validate_list(table: pl.DataFrame, *, spec: ListSpec, month: str, places: pl.DataFrame) -> Validated:
    """One department list on its own (`validate_lists` with a single list)."""
    return validate_lists([(spec, table)], month=month, places=places)[spec.key]


# ------------------------------------------------------------------------------------------------------------------
# The household roster (花名册)
# ------------------------------------------------------------------------------------------------------------------
def _size(expr: pl.Expr) -> pl.Expr:
    """家庭人口数 (household size) "4" / "4人" / "4.0" -> Int32; anything else (or not positive) -> null."""
    number = parse_amount(cell_text(expr).str.replace(r"[人口]$", ""))
    return pl.when((number > 0) & (number == number.floor())).then(number).cast(pl.Int32)


PER_ROW_TEXTS = ("name", "phone")  # nearly one per person: not by value (cleaned where needed, row by row)


def _squeezed(expr: pl.Expr) -> pl.Expr:
    """A cell's text without any whitespace, inside or at its edges (names, places)."""
    return cell_text(expr).str.replace_all(r"\s", "")


# Text `_squeezed` leaves as it is: no BLANK_CHARS (every \s character, the zero-width space, the byte-order mark).
WITHOUT_BLANKS = "^[^" + regex_literal(BLANK_CHARS) + "]+$"


def _person_name(expr: pl.Expr) -> pl.Expr:
    """A list's or the roster's person name `_squeezed`, computed only for names holding a blank (nearly one name
    per person: 300,000 roster names 0.038 -> 0.015 CPU-s, bench/FINDINGS.md session 24)."""
    return ids.cleaned_where_needed(expr, WITHOUT_BLANKS, _squeezed)


def _person_texts() -> dict[str, pl.Expr]:
    """roster.persons texts cleaned (no spaces inside names and places), each an expression of its own column."""
    squeezed = {c: _squeezed(pl.col(c)) for c in ("relation", "township", "village")}
    return {**squeezed, "name": _person_name(pl.col("name")),
            **{c: cell_text(pl.col(c)) for c in ("labour", "health")},
            "division_code": ids.clean_text(pl.col("division_code")),
            "phone": ids.cleaned_where_needed(pl.col("phone"), ids.PLAIN_CODE, ids.clean_text)}


ROSTER_CHOICES = ("household_type", "monitoring_category")  # answers from a vocabulary (registry roster_choices)


def _choice_text(expr: pl.Expr) -> pl.Expr:
    """A vocabulary word as compared, in a cell or in the registry: no spaces, brackets full-width (脱贫户(监测) is
    脱贫户（监测）)."""
    return cell_text(expr).str.replace_all(r"\s", "").str.replace_all("(", "（", literal=True) \
        .str.replace_all(")", "）", literal=True)


def _choice_words(column: str) -> dict[str, str]:
    """config/registry.yaml roster_choices of `column`, each word as `_choice_text` makes it: {word: meaning}."""
    words = registry().roster_choices.get(column, {})
    compared = pl.Series(list(words), dtype=pl.String).to_frame("w").select(_choice_text(pl.col("w")))["w"]
    return dict(zip(compared.to_list(), words.values()))


def _choice(column: str) -> pl.Expr:
    """What a household_type / monitoring_category cell means: the form's word for a known way of writing it, null
    for one meaning "none" (无, /, 非监测对象: not "already monitored"), else the text as written (noted)."""
    text = _choice_text(pl.col(column))
    meaning = text.replace_strict(_choice_words(column), default=text, return_dtype=pl.String)
    return pl.when(meaning != "").then(meaning)


def _household_parsers() -> dict[str, tuple[pl.Expr, pl.DataType]]:
    """Household-level fields parsed by distinct value (`_by_value`): each column's parser and the type it gives.
    Not the amounts (ROSTER_AMOUNTS): read row by row where they are plain numbers (`amount_where_needed`)."""
    answer = cell_text(pl.col("risk_eliminated")).replace_strict(YES_NO, default=None, return_dtype=pl.Boolean)
    return {
        "identified_on": (parse_date(pl.col("identified_on")), pl.Date),
        "household_size": (_size(pl.col("household_size")), pl.Int32),
        "risk_eliminated": (answer, pl.Boolean),
        **{c: (_choice(c), pl.String) for c in ROSTER_CHOICES},
        "cadre": (cell_text(pl.col("cadre")), pl.String),
    }


def _by_value(frame: pl.DataFrame, parsers: dict[str, tuple[pl.Expr, pl.DataType]]) -> list[pl.Expr]:
    """Each column's parser (an expression of that column alone) computed once per distinct cell instead of once
    per row, as expressions replacing the column.

    A roster of a million persons holds a few hundred dates, household sizes, townships and answers, and its
    household amounts repeat on every member's row (300,000 persons: at most ~60,000 distinct texts per amount
    column), while the parsers are regex-heavy. The distinct values of every column are found and parsed in one
    `collect_all` (columns side by side on the cores).

    A text column its parser leaves as it was (every distinct text already as the parser gives it: a clean
    roster's relations, places, answers, cadres) keeps its values, with no expression: mapping each of a province
    county's 300,000 rows back through its table cost 6-10 ms a column (bench/FINDINGS.md, session 30).
    """
    columns = list(parsers)
    tables = pl.collect_all([
        frame.lazy().select(pl.col(c).unique().drop_nulls()).with_columns(parsers[c][0].alias("_parsed"))
        for c in columns
    ])
    schema = frame.schema
    return [pl.col(c).replace_strict(table[c], table["_parsed"], default=None, return_dtype=parsers[c][1]).alias(c)
            for c, table in zip(columns, tables) if not _parsed_as_it_was(table, c, schema[c], parsers[c][1])]


def _parsed_as_it_was(table: pl.DataFrame, column: str, dtype: pl.DataType, parsed_dtype: pl.DataType) -> bool:
    """Whether every distinct (non-null) text of `column` is its own parse, so that mapping the column through
    `table` would give the column back: text in and text out, no value changed or blanked."""
    return dtype == parsed_dtype == pl.String and table.select(
        (pl.col(column) == pl.col("_parsed")).fill_null(False).all()).item()


def _roster_fields(frame: pl.DataFrame) -> list[pl.Expr]:
    """roster.persons fields and the household-level fields parsed (raw texts kept as `_<column>` for the notes);
    sex and birth date from the ID. Every expression reads the input columns (one `with_columns`)."""
    texts = _person_texts()
    by_value = {c: (expr, pl.String) for c, expr in texts.items() if c not in PER_ROW_TEXTS} | _household_parsers()
    return [
        *[pl.col(c).alias(f"_{c}") for c in ("identified_on", "household_size", "risk_eliminated", *ROSTER_AMOUNTS,
                                              *ROSTER_CHOICES)],
        *[texts[c].alias(c) for c in PER_ROW_TEXTS], *_by_value(frame, by_value),
        *[amount_where_needed(pl.col(c)).alias(c) for c in ROSTER_AMOUNTS],
        households.is_head(pl.col("relation")).alias("is_head"), ids.sex_from_id(pl.col("id_number")).alias("sex"),
        pl.col(ID_BIRTH_DATE).alias("birth_date"),  # accepted rows: valid IDs, judged in `_mark_problems`
    ]


TOWNSHIP_CODE_DIGITS = 9  # 统计用区划代码: 6 digits of the county, 3 of the township, 3 of the village


def _roster_values(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, bool]:
    """Accepted roster rows parsed; a member's blank place is the household's (the head's, else a member's), and a
    household's blank township the one its 区划代码 (division code) names elsewhere in the roster. Also one row per
    household with what its members' rows disagree on (`_DISAGREEMENT_FACTS`), for the notes; and whether the rows
    carry their household's facts for `_household_rules`.

    The household's places and facts reach its rows by a join, only when a row has a blank place or
    `_household_rules` would note a household: the usual roster has neither, and joining a province county's
    300,000 persons back to their households cost ~0.06 CPU-s (bench/FINDINGS.md, session 30). The households come
    back as their rows are left (`_settled_households`)."""
    parsed = frame.with_columns(_roster_fields(frame))
    places = ("township", "village", "division_code")
    household = households.household_values(
        parsed, [], (*households.household_aggregates(), *_HOUSEHOLD_FACTS, *_DISAGREEMENT_FACTS),
    )
    remarkable = pl.any_horizontal(rule.among.fill_null(False).any() for rule in _household_rules())
    if not (parsed.select(pl.any_horizontal(pl.col(c).is_null().any() for c in places)).item()
            or household.select(remarkable).item()):
        return *_settled_households(parsed, household), False
    facts = [*(fact.meta.output_name() for fact in _HOUSEHOLD_FACTS), "reported_size", "members"]
    aligned = parsed.select("household_id").join(household.select("household_id", *places, *facts),
                                                 on="household_id", how="left", maintain_order="left")
    placed = parsed.with_columns(*(pl.coalesce(pl.col(c), aligned[c]).alias(c) for c in places),
                                 *(aligned[fact] for fact in facts),
                                 aligned["township"].alias("_head_township"))
    return *_settled_households(placed, household), True


def _settled_households(rows: pl.DataFrame, household: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows with a blank township filled from the division code and `income_unreadable`, and the households
    grouped before that as these rows now say: a household none of whose rows named a township takes the first its
    rows have now, in member order; each household its `income_unreadable`. The usual roster needs neither: no
    grouping again."""
    rows, unreadable = _income_unreadable(_township_from_code(rows))
    if rows["_township_from_code"].any():  # filled rows belong to households no row named a township of
        blank = household.filter(pl.col("township").is_null())["household_id"]
        filled = households.household_values(rows.filter(pl.col("household_id").is_in(blank.implode())), ["township"])
        household = household.update(filled, on="household_id")
    household = (household.with_columns(pl.lit(False).alias("income_unreadable")) if unreadable is None
                 else household.join(unreadable, on="household_id", how="left"))
    return rows, household


# What is odd about a household, for the notes (`_household_rules`), found in the grouping that gives its places:
# its number of 户主 rows and of townships its members name (besides its reported 家庭人口数, household size, and its
# rows counted, of `households.household_aggregates`).
_HOUSEHOLD_FACTS = (
    pl.col("is_head").sum().alias("_heads"), pl.col("township").drop_nulls().n_unique().alias("_townships"),
)


# Household-level fields the national export repeats on every member's row, which decide a warning's category and
# income: where two members' rows hold different values, the household takes the head's (households.household_value)
# and the head's row gets a note naming the value taken and the others. Found by one cheap aggregation per field in
# the grouping above (1M persons: ~0.1 s); the values for the note only for the households found, usually none.
_AGREEING = (*ROSTER_CHOICES, "risk_eliminated", *ROSTER_AMOUNTS)
_DISAGREEMENT_FACTS = tuple(
    (pl.col(c).min() != pl.col(c).max() if c in ROSTER_AMOUNTS else pl.col(c).drop_nulls().n_unique() > 1)
    .fill_null(False).alias(f"_differs_{c}") for c in _AGREEING)


def _shown(column: str, expr: pl.Expr) -> pl.Expr:
    """A parsed household value as the note shows it: 是/否 for 风险是否消除, amounts as Excel shows numbers."""
    if column == "risk_eliminated":  # back to the words YES_NO reads
        words = {value: word for word, value in YES_NO.items()}
        return pl.when(expr).then(pl.lit(words[True])).otherwise(pl.lit(words[False]))
    if column in ROSTER_AMOUNTS:
        return excel_number_text(expr)
    return expr.cast(pl.String)


def _disagreeing_rules() -> list[NoteRule]:
    """A household whose members' rows give one of `_AGREEING` two values: noted once, on its head's row, with the
    value taken (the first of `_values_<column>`, in member order: the head's) and the others."""
    def quoted(values: pl.Expr) -> pl.Expr:
        return values.list.eval(pl.lit("“") + pl.element() + pl.lit("”")).list.join("、")

    return [NoteRule(c, "household_values_differ", pl.col(f"_differs_{c}"),
                     {"household_id": pl.col("household_id"), "value": pl.col(f"_values_{c}").list.first(),
                      "others": quoted(pl.col(f"_values_{c}").list.slice(1))})
            for c in _AGREEING]


def _household_notes(persons: pl.DataFrame, household: pl.DataFrame, month: str,
                     labels: dict[str, str]) -> pl.DataFrame | None:
    """The notes on what a household's members' rows disagree on (`_disagreeing_rules`), at the head's row (its
    first row in member order), with the values its rows give in member order (the head's first, which the household
    takes); None when no household's rows disagree (the usual roster pays no join and no second validation of the
    notes)."""
    differs = [f"_differs_{c}" for c in _AGREEING]
    found = household.filter(pl.any_horizontal(differs)).select("household_id", *differs)
    if found.is_empty():
        return None
    rows = households.in_member_order(persons.join(found, on="household_id", how="semi"))
    at_head = rows.group_by("household_id").agg(
        *(pl.col(c).first() for c in ("source_file", "sheet", "row_number")),
        *(_shown(c, pl.col(c).drop_nulls()).unique(maintain_order=True).alias(f"_values_{c}") for c in _AGREEING),
    ).join(found, on="household_id").sort("household_id")
    return _notes(at_head, _disagreeing_rules(), month, "roster", labels)


def _income_unreadable(persons: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """`income_unreadable`: the household's value of an income or spending item is blank because its only filled
    cells could not be read (-, 约3000, 三千). A blank item counts as 0 in A33 (households.net_income), which would
    make such a household look poorer (or richer) than it is; households.build_households leaves its A33-A38
    unknown instead, so its category is 待核实 (to verify). The persons with the flag, and household_id ->
    flag (None when no household has it)."""
    maybe = pl.any_horizontal(pl.col(f"_{c}").is_not_null() & pl.col(c).is_null() for c in ROSTER_AMOUNTS)
    if not persons.select(maybe.any()).item():  # no text cleaning over a whole roster when no amount was lost
        return persons.with_columns(pl.lit(False).alias("income_unreadable")), None
    unread = [_unread(c).alias(f"_unread_{c}") for c in ROSTER_AMOUNTS]
    flags = persons.select("household_id", *ROSTER_AMOUNTS, *unread)
    per_household = flags.group_by("household_id").agg(pl.any_horizontal(
        pl.col(c).is_null().all() & pl.col(f"_unread_{c}").any() for c in ROSTER_AMOUNTS).alias("income_unreadable"))
    return persons.join(per_household, on="household_id", how="left", maintain_order="left"), per_household


def _township_from_code(persons: pl.DataFrame) -> pl.DataFrame:
    """A blank township filled from the division code's first nine digits, when every other row of the roster
    with those digits names one and the same township (`_township_from_code` marks the rows, for their note).

    A warned household without a township reaches no township's workbook: nobody would visit it.
    """
    code = pl.col("division_code").str.slice(0, TOWNSHIP_CODE_DIGITS)
    blank = pl.col("township").is_null()
    if not persons.select(blank.any()).item():  # the usual roster: no grouping by code at all
        return persons.with_columns(pl.lit(False).alias("_township_from_code"))
    known = (persons.lazy().filter(pl.col("township").is_not_null()
                                   & (pl.col("division_code").str.len_chars() >= TOWNSHIP_CODE_DIGITS))
             .group_by(code.alias("_code")).agg(pl.col("township").unique().alias("_townships"))
             .filter(pl.col("_townships").list.len() == 1)
             .select("_code", pl.col("_townships").list.first().alias("_coded")).collect())
    coded = persons.select(pl.when(blank).then(code).alias("_code")).join(known, on="_code", how="left",
                                                                           maintain_order="left")["_coded"]
    return persons.with_columns(pl.coalesce(pl.col("township"), coded).alias("township"),
                                (blank & coded.is_not_null()).alias("_township_from_code"))


def _unknown_choice(column: str) -> NoteRule:
    """A household_type / monitoring_category written in no way the registry knows: kept, and noted, since the
    warning's category and weights only know the form's words.

    Only a row whose parsed value (`_choice`) is not itself one of the words can be one: a known word parses to its
    meaning, which the registry lists among its words, an unknown text to itself. That test on the parsed column
    spares cleaning every raw cell again, which every row of a column filled on every row paid: a province
    county's household types 0.048 CPU-s of the roster notes' 0.057 (bench/FINDINGS.md, session 30)."""
    words = _choice_words(column)
    options = "、".join(dict.fromkeys(meaning for meaning in words.values() if meaning))
    text = _choice_text(pl.col(f"_{column}"))
    return NoteRule(column, "choice_kept", ~text.is_in(list(words)), {"value": cell_text(pl.col(f"_{column}")),
                                                                       "options": pl.lit(options)},
                    among=pl.col(column).is_not_null() & ~pl.col(column).is_in(list(words)))


def _household_rules() -> list[NoteRule]:
    """Two 户主 rows (the first head's values are taken), a member naming another township than the head's (the
    head's routes the warning), a 家庭人口数 unlike the members listed (it divides the income): noted where seen."""
    hid = pl.col("household_id")
    first_row = pl.col("row_number") == pl.col("row_number").min().over("household_id")
    return [
        NoteRule("relation", "household_heads", pl.col("is_head") & (pl.col("_heads") > 1),
                 {"household_id": hid, "heads": pl.col("_heads")}, among=pl.col("_heads") > 1),
        NoteRule("township", "household_townships", pl.col("township").ne_missing(pl.col("_head_township"))
                 & pl.col("_head_township").is_not_null(), {"household_id": hid, "value": pl.col("township"),
                                                              "head_township": pl.col("_head_township")},
                 among=pl.col("_townships") > 1),
        NoteRule("household_size", "household_size_members", first_row,
                 {"household_id": hid, "value": pl.col("reported_size"), "members": pl.col("members")},
                 among=pl.col("reported_size").is_not_null()
                 & pl.col("reported_size").ne_missing(pl.col("members"))),
    ]


def _roster_note_rules(household_facts: bool) -> list[NoteRule]:
    """The notes on accepted roster rows; without `household_facts` (rows not joined to their household's facts,
    since `_roster_values` found no household to note) `_household_rules` are left out."""
    options = "、".join(YES_NO)
    answer = cell_text(pl.col("_risk_eliminated"))
    return [
        *(_household_rules() if household_facts else []),
        NoteRule("township", "township_from_code", pl.col("_township_from_code"),
                 {"code": pl.col("division_code"), "township": pl.col("township")}),
        NoteRule("township", "township_missing", pl.col("township").is_null(), {}),
        *[_unknown_choice(column) for column in ROSTER_CHOICES],
        _unparsed("identified_on", "date_unparsed"),
        _unparsed("household_size", "number_unparsed"),
        NoteRule("risk_eliminated", "choice_unrecognised", answer.is_not_null() & pl.col("risk_eliminated").is_null(),
                 {"value": answer, "options": pl.lit(options)},
                 among=pl.col("_risk_eliminated").is_not_null() & pl.col("risk_eliminated").is_null()),
        *[_unparsed(c, "amount_unparsed") for c in ROSTER_AMOUNTS],
    ]


def validate_roster(table: pl.DataFrame, *, month: str, raw: RawOfRows | None = None) -> Validated:
    """The roster's person rows -> accepted persons (roster.persons + parsed household fields), rejected, notes.

    The original cells of a rejected row come from `raw`, else from the table's own `raw` column."""
    reg = registry()
    labels = _labels(reg.roster_headers)
    if raw is None and "raw" in table.columns:
        raw = table["raw"].gather  # kept aside: only rejected rows need it
    frame = _prepare(table.drop("raw", strict=False).with_row_index("_input_row"), list(reg.roster_headers))
    # 户编号 cleaned like an ID (a leading ', full-width digits, spaces): one household, however its rows were typed
    household = ids.cleaned_where_needed(pl.col("household_id"), ids.PLAIN_CODE, cell_text, ids.clean_text)
    frame = frame.with_columns(household.alias("household_id"))
    no_household = (pl.when(pl.col("household_id").is_null()).then(pl.lit("roster_household_missing"))
                    .when(ids.looks_like_float_text(pl.col("household_id")))
                    .then(pl.lit("roster_household_float_mangled")))
    frame = _mark_problems(frame, [no_household])
    good, household, joined = _roster_values(frame.filter(pl.col("_code").is_null()))
    notes = _notes(good, _roster_note_rules(household_facts=joined), month, "roster", labels)
    disagreeing = _household_notes(good, household, month, labels)
    if disagreeing is not None:
        notes = pl.concat([notes, disagreeing]).sort("list_key", "source_file", "sheet", "row_number", "column_name")
    accepted = good.with_columns(pl.lit(month, pl.String).alias("month"), pl.col("row_number").cast(pl.Int32))
    rejected = _rejected(frame, month, "roster", labels, raw)
    aggregated = [expr.meta.output_name() for expr in households.household_aggregates()]
    return Validated(checked(PersonsModel, accepted.select(PERSON_COLUMNS)), rejected, notes,
                     household.select("household_id", *aggregated, "income_unreadable"))

