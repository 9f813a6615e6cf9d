"""Reading back the townships' verification results (入户核实 feedback) from the workbooks we sent them.

A township returns its workbook into `data/raw/<month>/feedback/`. Each household row with a result (核实结果)
becomes one verification (result, date, verifier, remarks) for its case. A returned workbook is checked against
what was sent (`marts.warning_queue` of that month): rows we never sent, a changed household number or ID, another
township's household, a result outside the dropdown, an unreadable date are rejected row by row, with a sentence
naming file, sheet, row and column; the valid rows still count. A workbook whose hidden meta sheet is missing or was
edited, or that belongs to another month, is rejected whole. Nothing here deletes or overwrites: rows without a
result are simply "not yet verified" and produce no output, so an earlier verification is never erased.

Read with calamine (`reading.workbook_sheets`, the meta and verification sheets only): the bench county's eight
returned workbooks (34,135 verified households) take ~1.5 s, where openpyxl's cell objects took ~22 s. Error
cells (#N/A) read as Excel shows them, so a result gone wrong is rejected, not taken for blank.
"""
from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Callable

import polars as pl

from fangpin import reading
from fangpin.files import fs_text, os_error_words, sha256_of
from fangpin.validate import template_expr
from fangpin.values import parse_date
from fangpin.xlsxml import xml_legal
from fangpin.workbooks import (META_FORMAT, META_KEYS, META_VERSION, RESULTS, column_specs, meta_digest,
                               sheet_name, workbook_config)
from schemas.lists import REJECTED_COLUMNS
from schemas.reasons import REJECT, reject

LIST_KEY = "feedback"
HEADER_SEARCH_ROWS = 10  # the header is row 2 as sent; look a little further in case a clerk inserted a row above
REQUIRED_KEYS = ("household_id", "head_id_number", "result", "verified_on", "verifier")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
# The columns a township fills in (config/workbook.yaml `fill_in: true`): a row with any of them is an answer.
FILL_IN_KEYS = tuple(spec["key"] for spec in column_specs("verification") if spec.get("fill_in"))

VERIFICATION_SCHEMA = {
    "month": pl.String, "township": pl.String, "household_id": pl.String, "case_id": pl.String,
    "result": pl.String, "verified_on": pl.Date, "verifier": pl.String, "remarks": pl.String,
    "source_file": pl.String, "row_number": pl.Int32,
}


class WorkbookRejected(Exception):
    """The whole returned workbook is unusable (not ours, meta edited, wrong month, sheet or column missing)."""

    def __init__(self, code: str, sheet: str | None = None, **values: object):
        super().__init__(reject(code, **values))
        self.code, self.sheet, self.values = code, sheet, values


def source_name(path: Path) -> str:
    """The path as the warehouse records files: relative to the data dir (the folder holding `raw/`) if it can."""
    parts = Path(path).parts
    if "raw" in parts:
        index = len(parts) - 1 - parts[::-1].index("raw")
        return fs_text(Path(*parts[index:]).as_posix())
    return fs_text(Path(path).as_posix())


def _empty_verifications() -> pl.DataFrame:
    return pl.DataFrame(schema=VERIFICATION_SCHEMA)


def _whole_rejection(month: str | None, path: Path, error: WorkbookRejected, township: str | None = None
                     ) -> pl.DataFrame:
    """One quarantine row for the whole workbook (row_number empty)."""
    reason = f"文件《{fs_text(Path(path).name)}》" + (f"工作表“{error.sheet}”" if error.sheet else "") + f"：{error}"
    return pl.DataFrame([{
        "month": month, "source_file": source_name(path), "sheet": error.sheet, "row_number": None,
        "list_key": LIST_KEY, "column_name": error.values.get("column"), "reason_code": error.code,
        "reason": reason, "id_raw": None, "name": None, "township_raw": township, "village_raw": None, "raw": None,
    }], schema=REJECTED_COLUMNS)


# ---------------------------------------------------------------------------------------------------------------
# Opening the workbook: meta sheet, verification sheet, header.

def open_workbook(source: Path | io.BytesIO, roles: tuple[str, ...] | None = ("meta", "verification")
                  ) -> dict[str, pl.DataFrame]:
    """The sheets of these roles (by default meta and verification; None: every sheet, a clerk's own too) of a
    township workbook (a file, or an encrypted one's decrypted bytes) as text cells (`reading.workbook_sheets`:
    calamine, columns named by Excel letter, row i = Excel row i + 1)."""
    try:
        data = source.getvalue() if isinstance(source, io.BytesIO) else Path(source).read_bytes()
        return reading.workbook_sheets(data, None if roles is None else frozenset(sheet_name(r) for r in roles))
    except reading.UnreadableFile as error:
        if reading.is_encrypted(data):  # not a password the county gave: never tell a township to remove it
            raise WorkbookRejected("feedback_password") from error
        raise WorkbookRejected("file_unreadable", detail=str(error)) from error
    except OSError as error:
        raise WorkbookRejected("file_unreadable", detail=os_error_words(error)) from error


def read_meta(sheets: dict[str, pl.DataFrame]) -> dict[str, str]:
    """The meta sheet's fields (key in column A, value in B), checked: ours (format, version) and unedited (digest)."""
    name = sheet_name("meta")
    if name not in sheets:
        raise WorkbookRejected("feedback_meta_missing", meta_sheet=name)
    cells = sheets[name]
    pairs = cells.select(pl.col(c) if c in cells.columns else pl.lit(None, pl.String).alias(c) for c in ("A", "B"))
    fields = {key: value or "" for key, value in pairs.rows() if key}
    complete = all(key in fields for key in META_KEYS) and "digest" in fields
    if (not complete or fields["format"] != META_FORMAT or fields["version"] != META_VERSION
            or fields["digest"] != meta_digest(fields)):
        raise WorkbookRejected("feedback_meta_altered", meta_sheet=name)
    return fields


def workbook_meta(source: Path | io.BytesIO) -> dict[str, str]:
    """The checked meta fields of a township workbook (month, township, ...), reading its meta sheet only."""
    return read_meta(open_workbook(source, roles=("meta",)))


def _normal_header(text: str | None) -> str:
    """Header text compared without spaces and with half-width brackets, as clerks' edits vary."""
    return (text or "").replace(" ", "").replace("\u3000", "").replace("(", "（").replace(")", "）").strip("：:")


def find_header(cells: pl.DataFrame, sheet: str) -> tuple[int, dict[str, str]]:
    """The header row (1-based) and configured key -> Excel column letter, found by header text in the first rows
    of a sheet's cells (`open_workbook`)."""
    wanted = {_normal_header(spec["header"]): spec["key"] for spec in column_specs("verification")}
    by_key = {spec["key"]: spec["header"] for spec in column_specs("verification")}
    best: tuple[int, dict[str, str]] = (0, {})
    for number, row in enumerate(cells.head(HEADER_SEARCH_ROWS).rows(), start=1):
        found: dict[str, str] = {}
        for letter, value in zip(cells.columns, row):
            key = wanted.get(_normal_header(value))
            if key and key not in found:
                found[key] = letter
        if len(found) > len(best[1]):
            best = (number, found)
    for key in REQUIRED_KEYS:
        if key not in best[1]:
            raise WorkbookRejected("missing_required_column", sheet=sheet, column=by_key[key])
    return best


def sheet_frame(cells: pl.DataFrame, header_row: int, columns: dict[str, str]) -> pl.DataFrame:
    """The data rows below the header as text, with the Excel row number and the row as JSON (`raw`)."""
    headers = {spec["key"]: spec["header"] for spec in column_specs("verification")}
    body = cells.slice(header_row)
    frame = body.select(pl.col(letter).alias(key) for key, letter in columns.items()).with_columns(
        pl.int_range(header_row + 1, header_row + 1 + body.height, dtype=pl.Int32).alias("row_number"))
    read = list(columns)
    identifying = [key for key in ("household_id", "head_id_number", *FILL_IN_KEYS) if key in columns]
    # Rows naming no household and filling in nothing (a signature line, a note) are not household rows.
    return frame.filter(pl.any_horizontal(pl.col(identifying).is_not_null())).with_columns(
        pl.struct([pl.col(key).alias(headers[key]) for key in read]).struct.json_encode().alias("raw"),
        pl.col("head_id_number").str.replace_all(r"[\s'‘’]", "").str.to_uppercase(),
    )


# ---------------------------------------------------------------------------------------------------------------
# Checks, as Polars expressions over the whole sheet.

def reason_expr(code: str, **fields: pl.Expr) -> pl.Expr:
    """The sentence of `code` (schemas/reasons.py) filled from columns, so wording stays in one place."""
    return template_expr(REJECT[code], **fields)


def _problems(township: str) -> list[tuple[str, str, pl.Expr, pl.Expr]]:
    """(code, column key, condition, sentence) in the order they are checked; a row gets its first problem.

    Identity problems come first: a row that is not the household we sent cannot verify anything.
    """
    options = "、".join(RESULTS)
    hid, value = pl.col("household_id"), pl.col("household_id").fill_null("（空）")
    sent = pl.col("sent_township")
    filled = pl.col("result").is_not_null()
    other_fill_ins = pl.any_horizontal(pl.col(key).is_not_null() for key in FILL_IN_KEYS if key != "result")
    return [
        ("feedback_household_id_changed", "household_id", sent.is_null() & pl.col("id_owner").is_not_null(),
         reason_expr("feedback_household_id_changed", value=value, expected=pl.col("id_owner"))),
        ("feedback_row_added", "household_id", sent.is_null(),
         reason_expr("feedback_row_added", value=value, township=pl.lit(township))),
        ("feedback_other_township", "household_id", sent != township,
         reason_expr("feedback_other_township", value=value, other=sent, township=pl.lit(township))),
        ("feedback_duplicate_row", "household_id", hid.is_not_null() & (pl.col("row_number") != pl.col("first_row")),
         reason_expr("feedback_duplicate_row", value=value, first_row=pl.col("first_row"))),
        ("feedback_id_changed", "head_id_number", pl.col("head_id_number").ne_missing(pl.col("sent_head_id")),
         reason_expr("feedback_id_changed", household_id=hid)),
        ("feedback_name_changed", "head_name",
         pl.col("sent_head_name").is_not_null() & pl.col("head_name").is_not_null()
         & (_name_key(pl.col("head_name")) != pl.col("sent_head_name")),
         reason_expr("feedback_name_changed", household_id=hid, value=pl.col("head_name"))),
        ("feedback_result_missing", "result", ~filled & other_fill_ins, reason_expr("feedback_result_missing")),
        ("feedback_bad_result", "result", filled & ~pl.col("result").is_in(RESULTS),
         reason_expr("feedback_bad_result", value=pl.col("result"), options=pl.lit(options))),
        ("feedback_date_missing", "verified_on", filled & pl.col("verified_on").is_null(),
         reason_expr("feedback_date_missing")),
        ("feedback_bad_date", "verified_on", filled & pl.col("verified_date").is_null(),
         reason_expr("feedback_bad_date", value=pl.col("verified_on"))),
        ("feedback_date_out_of_range", "verified_on",
         filled & ((pl.col("verified_date") < pl.col("issued_on")) | (pl.col("verified_date") > date.today())),
         reason_expr("feedback_date_out_of_range", value=pl.col("verified_date"), issued_on=pl.col("issued_on"))),
        ("feedback_verifier_missing", "verifier", filled & pl.col("verifier").is_null(),
         reason_expr("feedback_verifier_missing")),
    ]


def _name_key(name: pl.Expr) -> pl.Expr:
    """A name as compared between what was sent and what came back: spaces (also full-width) do not count, nor
    characters the workbook could not hold (`xlsxml.xml_legal` dropped them when it was written)."""
    return xml_legal(name.cast(pl.String)).str.replace_all(r"\s", "")


def _sent(expected: pl.DataFrame, month: str) -> pl.DataFrame:
    """What we sent for `month`, one row per household, with the head's ID normalised like the sheet's."""
    columns = {"case_id": pl.String, "issued_on": pl.Date, "head_id_number": pl.String}
    frame = expected.filter(pl.col("month") == month).with_columns(
        pl.lit(None, dtype).alias(name) for name, dtype in columns.items() if name not in expected.columns)
    return frame.select(
        pl.col("household_id").cast(pl.String),
        pl.col("township").alias("sent_township"),
        pl.col("head_id_number").cast(pl.String).str.replace_all(r"\s", "").str.to_uppercase().alias("sent_head_id"),
        _name_key(pl.col("head_name")).alias("sent_head_name") if "head_name" in frame.columns
        else pl.lit(None, pl.String).alias("sent_head_name"),
        pl.col("case_id").cast(pl.String), pl.col("issued_on").cast(pl.Date),
    ).unique("household_id", keep="first")


def check_rows(rows: pl.DataFrame, sent: pl.DataFrame, township: str) -> pl.DataFrame:
    """Each sheet row with `problem` (a reason code or null), `problem_column` and `problem_reason`."""
    owners = sent.filter(pl.col("sent_township") == township).select(
        pl.col("sent_head_id").alias("head_id_number"), pl.col("household_id").alias("id_owner"),
    ).drop_nulls("head_id_number").unique("head_id_number", keep="first")
    frame = (
        rows.join(sent, on="household_id", how="left")
        .join(owners, on="head_id_number", how="left")
        .with_columns(
            # the row taken of a household typed twice: its first answered row, else its first row
            pl.coalesce(pl.col("row_number").filter(pl.col("result").is_not_null()).min().over("household_id"),
                        pl.col("row_number").min().over("household_id")).alias("first_row"),
            parse_date(pl.col("verified_on"), day_required=True).alias("verified_date"),
        )
    )
    problems = _problems(township)
    code = pl.lit(None, pl.String)
    column = pl.lit(None, pl.String)
    reason = pl.lit(None, pl.String)
    for name, key, condition, sentence in reversed(problems):  # the first matching problem wins
        hit = condition.fill_null(False)
        code = pl.when(hit).then(pl.lit(name)).otherwise(code)
        column = pl.when(hit).then(pl.lit(key)).otherwise(column)
        reason = pl.when(hit).then(sentence).otherwise(reason)
    return frame.with_columns(code.alias("problem"), column.alias("problem_column"), reason.alias("problem_reason"))


def _rejections(checked: pl.DataFrame, month: str, path: Path, sheet: str, township: str) -> pl.DataFrame:
    headers = {spec["key"]: spec["header"] for spec in column_specs("verification")}
    bad = checked.filter(pl.col("problem").is_not_null())
    column_name = pl.col("problem_column").replace_strict(headers, default=pl.col("problem_column"))
    return bad.select(
        pl.lit(month).alias("month"), pl.lit(source_name(path)).alias("source_file"), pl.lit(sheet).alias("sheet"),
        pl.col("row_number").cast(pl.Int32), pl.lit(LIST_KEY).alias("list_key"), column_name.alias("column_name"),
        pl.col("problem").alias("reason_code"),
        pl.format(f"文件《{fs_text(Path(path).name)}》工作表“{sheet}”第{{}}行“{{}}”列：{{}}",
                  pl.col("row_number"), column_name, pl.col("problem_reason")).alias("reason"),
        pl.col("head_id_number").alias("id_raw"), pl.col("head_name").alias("name"),
        pl.lit(township).alias("township_raw"), pl.col("village").alias("village_raw"), "raw",
        pl.lit(None, pl.String).alias("id_number"),  # the workbook's ID is the household head's, already known
    ).cast(REJECTED_COLUMNS)


def _verifications(checked: pl.DataFrame, month: str, path: Path, township: str) -> pl.DataFrame:
    good = checked.filter(pl.col("problem").is_null() & pl.col("result").is_not_null())
    return good.select(
        pl.lit(month).alias("month"), pl.lit(township).alias("township"), "household_id", "case_id", "result",
        pl.col("verified_date").alias("verified_on"), "verifier", "remarks",
        pl.lit(source_name(path)).alias("source_file"), pl.col("row_number").cast(pl.Int32),
    ).cast(VERIFICATION_SCHEMA)


def read_feedback(path: Path, expected: pl.DataFrame, content: io.BytesIO | None = None, month: str | None = None
                  ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(verifications, rejections) from one returned township workbook.

    `expected` is `marts.warning_queue` of the month (all townships). Verifications: month, township,
    household_id, case_id, result, verified_on, verifier, remarks, source_file, row_number — only rows with a
    result. Rejections: quarantine.rejected_rows columns, list_key 'feedback'. `content` is the decrypted bytes of
    an encrypted workbook (fangpin.protect), read instead of the file while `path` still names it. `month` (the
    feedback folder's) dates a rejection when neither `expected` (a month nobody was warned) nor the file says it.
    """
    path = Path(path)
    months = sorted(expected.get_column("month").drop_nulls().unique().to_list()) if expected.height else []
    months = months or ([month] if month else [])  # nobody warned this month: the folder's month still decides
    month = _rejection_month(expected, month)
    township = None
    name = sheet_name("verification")
    try:
        sheets = open_workbook(content if content is not None else path, roles=None)
        meta = read_meta(sheets)
        township = meta["township"]
        if months and meta["month"] not in months:
            raise WorkbookRejected("feedback_wrong_month", found=meta["month"],
                                   expected="、".join(months))
        month = meta["month"]
        if name not in sheets:
            raise WorkbookRejected("feedback_sheet_missing", expected_sheet=name)
        header_row, columns = find_header(sheets[name], name)
    except WorkbookRejected as error:
        return _empty_verifications(), _whole_rejection(month, path, error, township)
    rows = sheet_frame(sheets[name], header_row, columns)
    for key in ("head_name", "village", "remarks"):
        if key not in rows.columns:
            rows = rows.with_columns(pl.lit(None, pl.String).alias(key))
    checked = check_rows(rows, _sent(expected, month), township)
    elsewhere = [WorkbookRejected("feedback_other_sheet", sheet=sheet, other=sheet, expected_sheet=name)
                 for sheet in _sheets_answered_elsewhere(sheets)]
    answered_elsewhere = [_whole_rejection(month, path, error, township) for error in elsewhere]
    return (_verifications(checked, month, path, township),
            pl.concat([_rejections(checked, month, path, name, township), *answered_elsewhere],
                      how="diagonal_relaxed"))


def _sheets_answered_elsewhere(sheets: dict[str, pl.DataFrame]) -> list[str]:
    """Sheets a clerk added (an Excel copy of the verification sheet, 入户核实清单 (2)) holding the verification
    header and a result, a date or a verifier: only the verification sheet is read, so these answers would be
    passed over without a word."""
    ours = {sheet_name(role) for role in workbook_config()["sheets"]}
    found = []
    for sheet, cells in sheets.items():
        if sheet in ours:
            continue
        try:
            header_row, columns = find_header(cells, sheet)
        except WorkbookRejected:  # no verification header: a clerk's own notes or totals
            continue
        body = cells.slice(header_row).select(columns[key] for key in FILL_IN_KEYS if key in columns)
        if body.width and body.select(pl.any_horizontal(pl.all().is_not_null()).any()).item():
            found.append(sheet)
    return found


def returned_files(folder: Path) -> list[Path]:
    """Every file in a month's feedback folder and its sub-folders (a township's zip unpacked as a folder), in path
    order, but lock and system files (`reading.housekeeping_file`), and every entry there that cannot be opened:
    each one is read or rejected (`read_feedback_files`), none silently left out."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files, unreachable = reading.walk_folder(folder)
    return sorted([*(p for p in files if reading.housekeeping_file(p) is None), *unreachable], key=Path.as_posix)


def _rejection_month(expected: pl.DataFrame, month: str | None) -> str | None:
    """The month a rejection is dated by before the file says its own: the queue's, when it holds one month, else
    `month` (the feedback folder's; a month nobody was warned has an empty queue)."""
    months = expected.get_column("month").drop_nulls().unique() if expected.height else []
    return months[0] if len(months) == 1 else month


def read_feedback_dir(folder: Path, expected: pl.DataFrame, month: str | None = None,
                      open_returned: Callable[[Path], io.BytesIO | None] | None = None
                      ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every returned workbook in `data/raw/<month>/feedback/` (`returned_files`), stacked (files in name order);
    see `read_feedback_files`."""
    return read_feedback_files(returned_files(folder), expected, month, open_returned)


def read_feedback_files(paths: list[Path], expected: pl.DataFrame, month: str | None = None,
                        open_returned: Callable[[Path], io.BytesIO | None] | None = None
                        ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """These returned files (`returned_files`), stacked.

    Other files than .xlsx/.xlsm (whatever the case of the suffix) are rejected as no workbook (townships must
    return the xlsx they were sent), an identical copy of a file read before as a copy. `open_returned(path)`
    gives an encrypted workbook's plain bytes (fangpin.protect.open_returned), or None to read the file itself.
    `month` is the folder's (see `read_feedback`). A household answered in two files is taken from the file saved
    last (`_answered_once`).
    """
    verifications, rejections = [_empty_verifications()], [pl.DataFrame(schema=REJECTED_COLUMNS)]
    saved: dict[str, float] = {}  # source_file -> when the file was last saved (its modification time)
    first_copy: dict[str, str] = {}  # sha256 -> the first file with these bytes (a 副本 is a copy, not an answer)
    for path in paths:
        refused = _refused_unread(path) or _copy_of(path, first_copy)
        if refused is None:
            try:
                found, rejected = read_feedback(path, expected, open_returned(path) if open_returned else None, month)
            except Exception as error:  # noqa: BLE001 - one workbook, one rejection; the other townships are read
                refused = WorkbookRejected("file_unreadable", detail=reading.read_error_detail(error))
        if refused is not None:
            found, rejected = _empty_verifications(), _whole_rejection(_rejection_month(expected, month), path, refused)
        else:
            saved[source_name(path)] = path.stat().st_mtime
        verifications.append(found)
        rejections.append(rejected)
    taken, answered_twice = _answered_once(pl.concat(verifications, how="diagonal_relaxed"), saved)
    return taken, pl.concat([*rejections, answered_twice], how="diagonal_relaxed")


def with_earlier_answers(current: pl.DataFrame, earlier: pl.DataFrame) -> pl.DataFrame:
    """The month's verifications: what the returned files say now, and every household answered by an earlier run
    that no file answers now (its file removed from the folder, replaced by one without that row, or rejected
    whole this time), so that nothing already recorded is lost. A household answered again is superseded.

    Same folder, same result: the earlier answers kept are those the previous run recorded, so a re-run keeps them.
    """
    kept = earlier.join(current.select("month", "household_id"), on=["month", "household_id"], how="anti")
    return pl.concat([current, kept.select(current.columns).cast(current.schema)], how="vertical")


def _answered_once(verifications: pl.DataFrame, saved: dict[str, float]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A household answered in two returned files of a month (甲镇.xlsx and 甲镇(修改).xlsx, or a copy): the answer
    of the file saved last is taken, the others rejected naming it. (Within one file, feedback_duplicate_row.)"""
    keys = ["month", "household_id"]
    ranked = verifications.with_columns(
        pl.col("source_file").replace_strict(saved, default=0.0, return_dtype=pl.Float64).alias("_saved"))
    last = pl.struct("_saved", "source_file", "row_number")
    ranked = ranked.with_columns(
        pl.col("source_file").sort_by(last).last().over(keys).alias("_kept_file"),
        pl.col("row_number").sort_by(last).last().over(keys).alias("_kept_row"))
    kept = (pl.col("source_file") == pl.col("_kept_file")) & (pl.col("row_number") == pl.col("_kept_row"))
    other = ranked.filter(~kept)
    name = pl.col("_kept_file").str.split("/").list.last()
    header = next(spec["header"] for spec in column_specs("verification") if spec["key"] == "result")
    sheet = sheet_name("verification")
    rejected = other.select(
        "month", "source_file", pl.lit(sheet).alias("sheet"), "row_number", pl.lit(LIST_KEY).alias("list_key"),
        pl.lit(header).alias("column_name"), pl.lit("feedback_answered_twice").alias("reason_code"),
        pl.format(f"文件《{{}}》工作表“{sheet}”第{{}}行“{header}”列：{{}}",
                  pl.col("source_file").str.split("/").list.last(), "row_number",
                  reason_expr("feedback_answered_twice", value=pl.col("household_id"), other=name,
                              other_row=pl.col("_kept_row"))).alias("reason"),
        pl.lit(None, pl.String).alias("id_raw"), pl.lit(None, pl.String).alias("name"),
        pl.col("township").alias("township_raw"), pl.lit(None, pl.String).alias("village_raw"),
        pl.lit(None, pl.String).alias("raw"), pl.lit(None, pl.String).alias("id_number"),
    ).cast(REJECTED_COLUMNS)
    return ranked.filter(kept).select(list(VERIFICATION_SCHEMA)), rejected


def _copy_of(path: Path, first_copy: dict[str, str]) -> WorkbookRejected | None:
    """A file with the same bytes as one read before (甲镇 - 副本.xlsx): counted once, as the drop zone counts a list
    sent twice, instead of every row of one being rejected as answered twice."""
    try:
        sha = sha256_of(path)
    except OSError:
        return None  # the reader says what is wrong with it
    if sha in first_copy:
        return WorkbookRejected("feedback_duplicate_file", other=first_copy[sha])
    first_copy[sha] = fs_text(path.name)
    return None


def _refused_unread(path: Path) -> WorkbookRejected | None:
    """Why a returned file is rejected before it is opened (no regular file; not a workbook), or None."""
    if not path.is_file():
        return WorkbookRejected("file_unreadable", detail=reading.unreachable_detail(path))
    if path.suffix.lower() not in WORKBOOK_SUFFIXES:
        return WorkbookRejected("feedback_not_workbook", suffix=path.suffix or "（无扩展名）")
    return None


__all__ = ["RESULTS", "read_feedback", "read_feedback_dir", "read_feedback_files", "returned_files", "source_name",
           "with_earlier_answers"]
