"""Township workbooks (乡镇预警核实工作簿): one xlsx per township with only that township's warned households.

A township may only see its own households (DOMAIN.md, personal data), so each workbook holds the rows of one
township only. Sheets:
- 入户核实清单 (verification list, household verification = 入户核实): the only sheet read back by
  `fangpin.feedback`; it shows the head's full ID (staff need it to find the household) but never phones or health
  details (disease names, disability categories);
- 公示用名单 (public-notice list): masked IDs and risk types only, safe to post after verification;
- 未匹配人员 (persons on a department list not found in the roster): masked IDs;
- 填写说明 (instructions, Chinese);
- a very hidden, protected meta sheet saying which township and month the workbook is for, with a digest so that
  an edited meta sheet is detected when the workbook comes back.

Wording, headers, widths and the dropdown live in `config/workbook.yaml`. openpyxl (write-only mode) writes each
workbook's skeleton: styles, title and header rows, widths, freeze, filter, dropdowns, print setup, instructions and
meta sheet. The data rows of the listing sheets (tens of thousands of cells per township) are built as XML text by
Polars expressions, exactly as openpyxl would write each cell, for every township in one pass and split by township,
and spliced into each sheet when its file is saved (openpyxl's per-cell writer took ~30 s per county month). Every
string is written as text (department data starting with = + - @ never becomes a formula), and the bytes are
deterministic for the same input (fixed document dates and zip timestamps).
"""
from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import polars as pl
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from fangpin.config import PROJECT_ROOT, check_month, config_dir, county, read_yaml, registry
from fangpin.ids import mask_id
from fangpin.values import regex_literal
from fangpin.xlsxml import openpyxl_parts, stable_zip, xml_legal, xml_text

WORKBOOK_CONFIG = "workbook.yaml"
META_FORMAT = "fangpin-township-workbook"
META_VERSION = "1"
META_KEYS = ("format", "version", "month", "township", "households", "unmatched_persons")
HEADER_ROW = 2  # row 1 is the title; data starts on row 3 on every listing sheet
# Leading characters that make a spreadsheet treat typed-in text as a formula (CSV/formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
A4_PAPER = 9  # openpyxl/Excel paperSize code for A4
WRITER_THREADS = 2  # townships written at the same time (see write_workbooks_by_township)


@lru_cache(maxsize=None)
def workbook_config() -> dict:
    """`config/workbook.yaml`; a county folder without one (FANGPIN_CONFIG_DIR) falls back to the bundled file."""
    path = config_dir() / WORKBOOK_CONFIG
    if not path.exists():
        path = PROJECT_ROOT / "config" / WORKBOOK_CONFIG
    return read_yaml(path)


RESULTS: tuple[str, ...] = tuple(item["value"] for item in workbook_config()["results"])


def sheet_name(role: str) -> str:
    """The configured name of a sheet role (verification, public, unmatched, instructions, meta)."""
    return workbook_config()["sheets"][role]


def column_specs(sheet: str) -> list[dict]:
    """The configured columns (key, header, width, fill_in) of a sheet, in order."""
    return workbook_config()["columns"][sheet]


def meta_digest(fields: dict[str, str]) -> str:
    """A digest of the meta sheet's fields, so a hand-edited meta sheet (another township, month) is detected."""
    text = "|".join(f"{key}={fields.get(key, '')}" for key in META_KEYS)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def safe_file_name(township: str) -> str:
    """A township name usable as a file name on Windows, macOS and Linux (no / \\ : * ? " < > |)."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", str(township)).strip().strip(".")
    return cleaned[:80] or "未知乡镇"


def month_label(month: str) -> str:
    year, number = month.split("-")
    return f"{year}年{int(number)}月"


# ---------------------------------------------------------------------------------------------------------------
# Frames: what goes into each sheet, computed with Polars expressions for all townships at once.

def _joined(column: str) -> pl.Expr:
    """A list column as one cell of text, items separated by 、 (the Chinese enumeration comma)."""
    return pl.col(column).list.join("、")


def _source_titles() -> dict[str, str]:
    """`department.list` -> e.g. 民政局新增农村低保人员名单, so a clerk knows which department to ask."""
    reg = registry()
    return {key: f"{reg.departments[spec.department].name}{spec.title}" for key, spec in reg.lists.items()}


def _ensure(frame: pl.DataFrame, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """The columns a sheet needs, in the types it expects; missing optional columns become null.

    Casting also settles untyped empties (a list[null] from an empty mart) so list joins and sorts never fail.
    """
    return frame.with_columns(
        pl.col(name).cast(dtype, strict=False) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in columns.items()
    )


QUEUE_COLUMNS = {
    "month": pl.String, "household_id": pl.String, "township": pl.String, "village": pl.String,
    "head_name": pl.String, "head_id_number": pl.String, "household_size": pl.Int64, "household_type": pl.String,
    "monitoring_category": pl.String, "members": pl.List(pl.String), "risk_types": pl.List(pl.String),
    "assurance_gaps": pl.List(pl.String), "sources": pl.List(pl.String), "findings": pl.List(pl.String),
    "suggested_category": pl.String, "a34_per_capita": pl.Float64, "a38_per_capita": pl.Float64,
    "a38_after_event": pl.Float64, "monitoring_line": pl.Float64, "priority": pl.Float64,
    "priority_reasons": pl.String, "case_status": pl.String, "first_warned_on": pl.Date, "due_date": pl.Date,
    "match_rule": pl.String, "cadre": pl.String,
}
UNMATCHED_COLUMNS = {
    "month": pl.String, "id_number": pl.String, "name": pl.String, "sources": pl.List(pl.String),
    "township": pl.String, "village": pl.String,
}


def verification_rows(queue: pl.DataFrame, month: str) -> pl.DataFrame:
    """The warning queue of `month` as the verification sheet shows it, sorted by priority (highest first).

    Members keep the list they came from but lose the detail after "：" in the closing bracket, as in
    张三（新增30种大病人员名单：白血病） -> 张三（新增30种大病人员名单） (a disease name, a disability category):
    the sheet never carries health details. Phones are never selected.
    """
    titles = _source_titles()
    frame = _ensure(queue, QUEUE_COLUMNS).filter(pl.col("month") == month)
    return frame.sort(
        ["priority", "village", "household_id"], descending=[True, False, False], nulls_last=True,
    ).select(
        "township", "household_id", "village", "head_name",
        pl.col("head_id_number").cast(pl.String).str.strip_chars(),
        "household_size", "household_type", "monitoring_category",
        pl.col("members").list.eval(pl.element().str.replace(r"[：:][^（）()]*([）)])$", "${1}")).list.join("、"),
        _joined("risk_types"), _joined("assurance_gaps"),
        pl.col("sources").list.eval(pl.element().replace(titles)).list.join("、"),
        _joined("findings"), "suggested_category", "a34_per_capita", "a38_per_capita", "a38_after_event",
        "monitoring_line", "priority", "priority_reasons", "case_status", "first_warned_on", "due_date",
        "match_rule", "cadre",
    ).with_columns(pl.int_range(1, pl.len() + 1).over("township").alias("row_index"))


def public_rows(verification: pl.DataFrame) -> pl.DataFrame:
    """The public-notice list: village, head, masked ID, size and risk types only (no details, no phones)."""
    return verification.sort(["village", "head_name", "household_id"], nulls_last=True).select(
        "township", "village", "head_name", mask_id(pl.col("head_id_number")).alias("head_id_masked"),
        "household_size", "risk_types",
    ).with_columns(pl.int_range(1, pl.len() + 1).over("township").alias("row_index"))


CASE_COLUMNS = {"month": pl.String, "township": pl.String, "village": pl.String, "head_name": pl.String,
                "household_id": pl.String, "first_month": pl.String, "first_warned_on": pl.Date,
                "due_date": pl.Date, "status": pl.String, "status_group": pl.String, "days_overdue": pl.Int32,
                "verified_on": pl.Date, "verifier": pl.String, "warned_again": pl.Boolean}
STATUS_ORDER = {"overdue": 0, "pending": 1, "rejected": 2, "verified": 3}  # overdue first: they escalate


def earlier_case_rows(case_status: pl.DataFrame | None, month: str) -> pl.DataFrame:
    """Earlier months' cases as of this month (marts.case_status): overdue first, then pending, then closed."""
    frame = _ensure(case_status if case_status is not None else pl.DataFrame(), CASE_COLUMNS)
    return (
        frame.filter(pl.col("month") == month)
        .with_columns(pl.col("status_group").replace_strict(STATUS_ORDER, default=9).alias("_order"),
                      pl.when(pl.col("warned_again")).then(pl.lit("是")).otherwise(pl.lit("")).alias("warned_again"))
        .sort(["_order", "village", "household_id"], nulls_last=True)
        .drop("_order")
        .with_columns(pl.int_range(1, pl.len() + 1).over("township").alias("row_index"))
    )


def unmatched_rows(unmatched: pl.DataFrame, month: str) -> pl.DataFrame:
    """Unmatched persons with masked IDs and the lists they came from; the list detail (a disease) is left out."""
    titles = _source_titles()
    frame = _ensure(unmatched, UNMATCHED_COLUMNS).filter(pl.col("month") == month)
    return frame.sort(["village", "name", "id_number"], nulls_last=True).select(
        "township", "village", "name", mask_id(pl.col("id_number")).alias("id_masked"),
        pl.col("sources").list.eval(pl.element().replace(titles)).list.join("、"),
    ).with_columns(pl.int_range(1, pl.len() + 1).over("township").alias("row_index"))


# ---------------------------------------------------------------------------------------------------------------
# Styles and cells.

THIN = Side(style="thin", color="999999")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
FILL_IN = PatternFill("solid", fgColor="FFF2CC")  # light yellow: the columns the township fills in
KIND = {  # how a column's values are formatted; anything not listed is wrapped text
    "row_index": "int", "household_size": "int", "head_id_number": "id", "household_id": "id",
    "head_id_masked": "id", "id_masked": "id",
    "a34_per_capita": "money", "a38_per_capita": "money", "a38_after_event": "money", "monitoring_line": "money",
    "priority": "number", "first_warned_on": "date", "due_date": "date", "verified_on": "date",
}


def _register_styles(wb: Workbook) -> None:
    """Named styles once per workbook: cheaper than per-cell fonts and fills, and the same bytes every time."""
    base = dict(font=Font(name="宋体", size=10), border=BORDER)
    wrap = Alignment(wrap_text=True, vertical="top")
    styles = [
        NamedStyle("fp_title", font=Font(name="黑体", size=14, bold=True), alignment=Alignment(vertical="center")),
        NamedStyle("fp_header", font=Font(name="宋体", size=10, bold=True), border=BORDER,
                   fill=PatternFill("solid", fgColor="D9E1F2"),
                   alignment=Alignment(wrap_text=True, horizontal="center", vertical="center")),
        NamedStyle("fp_header_fill_in", font=Font(name="宋体", size=10, bold=True, color="9C0006"), border=BORDER,
                   fill=PatternFill("solid", fgColor="FFD966"),
                   alignment=Alignment(wrap_text=True, horizontal="center", vertical="center")),
        NamedStyle("fp_text", alignment=wrap, number_format="@", **base),
        NamedStyle("fp_id", alignment=Alignment(vertical="top"), number_format="@", **base),
        NamedStyle("fp_int", alignment=Alignment(vertical="top"), number_format="0", **base),
        NamedStyle("fp_money", alignment=Alignment(vertical="top"), number_format="#,##0.00", **base),
        NamedStyle("fp_number", alignment=Alignment(vertical="top"), number_format="0.0", **base),
        NamedStyle("fp_date", alignment=Alignment(vertical="top"), number_format="yyyy-mm-dd", **base),
        NamedStyle("fp_fill_text", alignment=wrap, number_format="@", fill=FILL_IN, **base),
        NamedStyle("fp_fill_date", alignment=Alignment(vertical="top"), number_format="yyyy-mm-dd",
                   fill=FILL_IN, **base),
        NamedStyle("fp_note", font=Font(name="宋体", size=11), alignment=Alignment(wrap_text=True, vertical="top")),
    ]
    for style in styles:
        wb.add_named_style(style)


def _cell(ws, value, style: str | None = None) -> WriteOnlyCell:
    """A cell whose text is always text: a leading = + - @ never becomes a formula, even after the clerk edits it.

    openpyxl would store "=..." as a formula; data_type "s" keeps it a string, and quotePrefix tells Excel/WPS to
    keep it text when the cell is edited. Characters XML cannot hold are dropped rather than failing the run.
    """
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
    cell = WriteOnlyCell(ws, value=value)
    if style:
        cell.style = style
    if isinstance(value, str):
        cell.data_type = "s"
        if value.startswith(FORMULA_PREFIXES):
            cell.quotePrefix = True
    return cell


def _data_style(key: str, fill_in: bool) -> str:
    kind = KIND.get(key, "text")
    if fill_in:
        return "fp_fill_date" if kind == "date" else "fp_fill_text"
    return {"int": "fp_int", "id": "fp_id", "money": "fp_money", "number": "fp_number", "date": "fp_date"}.get(
        kind, "fp_text")


# ---------------------------------------------------------------------------------------------------------------
# Data rows as XML text: what openpyxl's write-only cell writer (`_cell` + ElementTree) writes, for a whole sheet
# at once. The same rules as `_cell`: illegal characters dropped, strings always inline text, a leading
# = + - @ marked quotePrefix through the cell's style.

EXCEL_EPOCH = date(1899, 12, 30)  # openpyxl's Windows epoch: serial day 0
EXCEL_FAKE_LEAP_DAY = 60  # Excel counts 1900-02-29, which never existed: serials 1..60 are one day early


# FORMULA_PREFIXES as one anchored pattern (one pass over the text instead of one per prefix).
FORMULA_START = "^(?:" + "|".join(regex_literal(prefix) for prefix in FORMULA_PREFIXES) + ")"


def _formula_like(text: pl.Expr) -> pl.Expr:
    """Text that a spreadsheet would take as a formula when typed in (FORMULA_PREFIXES, as `_cell` checks)."""
    return text.str.contains(FORMULA_START).fill_null(False)


def _column_facts(rows: pl.DataFrame, keys: list[str | None]) -> dict[object, dict[str, int | bool | None]]:
    """One pass over the rows for what the cell writer needs of each column i (`keys[i]`; text already `xml_legal`),
    per sheet (`rows[SHEET]` names the sheet each row goes to):

    - `quote{i}` / `plain{i}`: the sheet's first row of formula-like and of other text (`_data_style_ids`);
    - `blank{i}`: a cell written as an empty or valueless cell (null, empty text, a NaN or infinite number);
    - `markup{i}`: text with & < > (escaped); `edge{i}`: text with spaces at its edges (xml:space="preserve").

    A column with none of the last three is written in the short form of its cells (`_cell_pieces`).
    """
    exprs, schema = [], rows.schema  # a frame's schema is built anew on every access (~25 µs for 40 columns)
    for i, key in enumerate(keys):
        if key is None:
            continue
        value, dtype = pl.col(key), schema[key]
        if dtype == pl.String:
            exprs += [_formula_like(value).arg_true().first().alias(f"quote{i}"),
                      _formula_like(value).not_().arg_true().first().alias(f"plain{i}"),
                      (value.is_null() | (value == "")).any().alias(f"blank{i}"),
                      value.str.contains("[&<>]").any().alias(f"markup{i}"),
                      (value.str.strip_chars() != value).any().alias(f"edge{i}")]
        elif dtype != pl.Null:
            exprs.append((value.is_null() | _number_text(value, dtype)[0].is_null()).any().alias(f"blank{i}"))
    if not exprs:
        return {sheet: {} for sheet in rows.get_column(SHEET).unique(maintain_order=True)}
    found = rows.group_by(SHEET, maintain_order=True).agg(exprs)
    return {facts.pop(SHEET): facts for facts in found.iter_rows(named=True)}


def _data_style_ids(ws, found: dict[str, int | bool | None], keys: list[str | None], styles: list[str]
                    ) -> list[tuple[int, int | None]]:
    """Each column's openpyxl style id for plain values (-1 if every value is formula-like) and for formula-like
    text (None if the column has none); `found` is `_column_facts` of the sheet `ws`.

    Ids are registered in the order openpyxl's per-cell writer meets them (row by row, left to right), so styles.xml
    lists the same cell formats in the same order as a workbook written cell by cell.
    """
    first_seen = []  # (row, column, quote): when a per-cell writer would first meet the style
    for index in range(len(keys)):
        plain = found.get(f"plain{index}", 0)
        first_seen += [(row, index, quote) for row, quote in ((plain, False), (found.get(f"quote{index}"), True))
                       if row is not None]
    ids: dict[tuple[int, bool], int] = {}
    for _, index, quote in sorted(first_seen):
        ids[index, quote] = _cell(ws, FORMULA_PREFIXES[0] if quote else None, styles[index]).style_id
    return [(ids.get((i, False), -1), ids.get((i, True))) for i in range(len(keys))]


def _number_text(value: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, str]:
    """The text openpyxl writes in <v> for a number, date or boolean, and the cell type (t="n" or "b").

    Dates become Excel serial days (openpyxl's `to_excel`); floats keep their shortest exact decimal (openpyxl
    rounds to 16 significant digits) without a trailing ".0"; NaN and infinity become an empty <v/>, as in openpyxl.
    """
    if dtype == pl.Boolean:
        return pl.when(value).then(pl.lit("1")).otherwise(pl.lit("0")), "b"
    if dtype == pl.Date:
        days = (value - pl.lit(EXCEL_EPOCH)).dt.total_days()
        return pl.when((days > 0) & (days <= EXCEL_FAKE_LEAP_DAY)).then(days - 1).otherwise(days).cast(pl.String), "n"
    if dtype.is_integer():
        return value.cast(pl.String), "n"
    if dtype.is_float():
        return pl.when(value.is_finite()).then(value.cast(pl.Float64).cast(pl.String).str.strip_suffix(".0")), "n"
    raise TypeError(f"workbook cells of type {dtype} are not supported")


def _styled(before: str, style: int | pl.Expr, after: str) -> pl.Expr:
    """`before` + the style id + `after` as one piece of XML: a literal when every sheet's id is the same (a number),
    else the id of each row's sheet (an expression, `_per_sheet`)."""
    if isinstance(style, pl.Expr):
        return pl.concat_str([pl.lit(before), style, pl.lit(after)])
    return pl.lit(f"{before}{style}{after}")


def _cell_pieces(letter: str, row: pl.Expr, value: pl.Expr | None, dtype: pl.DataType, plain: int | pl.Expr,
                 quote: int | pl.Expr | None, short: bool = False, escape: bool = True) -> list[pl.Expr]:
    """One column's cells as pieces of XML text, e.g.
    `<c r="B7" s="5" t="inlineStr"><is><t>…</t></is></c>`, `<c r="O7" s="7" t="n"><v>6200.5</v></c>`, and
    `<c r="Z7" s="10" t="n" />` for an empty cell (openpyxl keeps a styled empty cell, so fill-in columns show).
    Text is already `xml_legal`, as `_cell` cleans it before checking for a formula-like start. `plain` and `quote`
    are the style ids (`_data_style_ids`), or expressions giving each row's sheet's.

    Pieces rather than one string per cell: the row is one flat concatenation, no cell string is built twice.
    `short`: no cell of the column is blank or (text) has spaces at its edges, so every cell takes the one form
    of a plain value, without the branches the other forms need; `escape=False`: no text holds & < > (both from
    `_column_facts`). The same bytes either way; a province county's verification listing took a third less time
    (bench/FINDINGS.md, session 24).
    """
    ref = [pl.lit(f'<c r="{letter}'), row]
    if value is None or dtype == pl.Null:
        return [*ref, _styled('" s="', plain, '" t="n" />')]
    if dtype == pl.String:
        text = value
        style = _styled('" s="', plain, "") if quote is None else (
            pl.when(_formula_like(text)).then(_styled('" s="', quote, "")).otherwise(_styled('" s="', plain, "")))
        body = xml_text(text) if escape else text
        if short:
            return [*ref, style, pl.lit('" t="inlineStr"><is><t>'), body, pl.lit("</t></is></c>")]
        stripped = text.str.strip_chars()  # openpyxl's `whitespace`: keep the edge spaces of non-blank text
        return [*ref, style,
                pl.when(text.is_null()).then(pl.lit('" t="n" />')).when(text == "").then(
                    pl.lit('" t="inlineStr" />')).otherwise(pl.lit('" t="inlineStr"><is><t')),
                pl.when((stripped != "") & (stripped != text)).then(pl.lit(' xml:space="preserve">')).when(
                    text != "").then(pl.lit(">")).otherwise(pl.lit("")),
                body.fill_null(""), pl.when(text != "").then(pl.lit("</t></is></c>")).otherwise(pl.lit(""))]
    number, kind = _number_text(value, dtype)
    if short:
        return [*ref, _styled('" s="', plain, f'" t="{kind}"><v>'), number, pl.lit("</v></c>")]
    opening = (pl.when(value.is_null()).then(_styled('" s="', plain, '" t="n" />'))
               .when(number.is_null()).then(_styled('" s="', plain, f'" t="{kind}"><v /></c>'))
               .otherwise(_styled('" s="', plain, f'" t="{kind}"><v>')))
    return [*ref, opening, number.fill_null(""),
            pl.when(number.is_not_null()).then(pl.lit("</v></c>")).otherwise(pl.lit(""))]


SHEET = "_sheet"  # the column naming the sheet a row goes to (`_rows_xml_by_sheet`); never a listing's key


def _per_sheet(values: dict[object, int]) -> int | pl.Expr:
    """One number per sheet: the number itself when every sheet has the same, else each row's sheet's."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return distinct.pop()
    return pl.col(SHEET).replace_strict(values, return_dtype=pl.Int64)


def _rows_xml_by_sheet(sheets: dict, rows: pl.DataFrame, keys: list[str | None], styles: list[str],
                       first_rows: dict) -> dict[object, bytes]:
    """Each sheet's rows as `<row>` XML (UTF-8): `rows[SHEET]` names the sheet (a key of `sheets`) each row goes to,
    in order, numbered from the sheet's `first_rows`; `keys[i]` is column i's frame column, or None for a column
    left empty (the fill-in columns). A sheet without rows gets nothing (and registers no style).

    Every township's listing in one Polars pass rather than one pass each: a listing's cost is mostly fixed (~100
    expressions built and run: 9-11 ms for five rows of the verification listing, 23-29 ms for 2,000), and each of
    a county's townships paid it (a province county's writer 0.45-0.48 -> 0.40-0.47 CPU-s; bench/FINDINGS.md,
    session 32). Style ids stay each workbook's own (`_data_style_ids`);
    a column's short or escaping form is chosen over all sheets at once, which gives the same bytes.
    """
    if rows.height == 0:
        return {}
    schema = rows.schema
    rows = rows.select(pl.col(SHEET), *(xml_legal(pl.col(key)) if schema[key] == pl.String else pl.col(key)
                                        for key in dict.fromkeys(key for key in keys if key)))  # once per column
    facts = _column_facts(rows, keys)
    ids = {sheet: _data_style_ids(sheets[sheet], found, keys, styles) for sheet, found in facts.items()}
    number = (pl.int_range(pl.len()).over(SHEET) + _per_sheet({sheet: first_rows[sheet] for sheet in ids}))
    number = number.cast(pl.String)
    cells = []
    for i, key in enumerate(keys):
        plain = _per_sheet({sheet: found[i][0] for sheet, found in ids.items()})
        quotes = {sheet: found[i][1] for sheet, found in ids.items()}
        quote = None if all(q is None for q in quotes.values()) else _per_sheet(
            {sheet: ids[sheet][i][0] if q is None else q for sheet, q in quotes.items()})  # no formula-like: unused
        cells += _cell_pieces(get_column_letter(i + 1), number, pl.col(key) if key else None,
                              schema[key] if key else pl.Null, plain, quote,
                              short=not any(found.get(f"blank{i}", True) or found.get(f"edge{i}", False)
                                            for found in facts.values()),
                              escape=any(found.get(f"markup{i}", True) for found in facts.values()))
    row = pl.concat_str([pl.lit('<row r="'), number, pl.lit('">'), *cells, pl.lit("</row>")])
    xml = rows.select(pl.col(SHEET), row.alias("xml")).group_by(SHEET, maintain_order=True).agg(
        pl.col("xml").str.join("").cast(pl.Binary))
    return dict(zip(xml.get_column(SHEET).to_list(), xml.get_column("xml").to_list()))


def _print_setup(ws, last_column: str, last_row: int) -> None:
    """A4 landscape, fit to one page wide, header row repeated on every printed page, page numbers in the footer."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = A4_PAPER
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"
    ws.print_area = f"A1:{last_column}{max(last_row, HEADER_ROW)}"


def _write_listings(books: dict[str, Workbook], role: str, columns: list[dict], rows: pl.DataFrame,
                    heights: dict[str, int], titles: dict[str, str], freeze: str, footer_note: str | None = None,
                    reference: bool = False) -> dict[str, tuple[object, bytes]]:
    """One listing sheet in each township's workbook (`books`), each with only its township's `rows` (`heights`:
    how many, by township): title row, styled header, widths, freeze, filter, print setup. Returns each township's
    sheet and the XML of its data rows (and footer), which `_save_deterministic` splices in after the header.

    The rows of every township are turned into XML in one pass (`_rows_xml_by_sheet`); each workbook still registers
    its styles in the order a cell-by-cell writer meets them (its header's, then its rows', then its footer's).
    `reference=True` appends the rows cell by cell through openpyxl instead (the XML is then b""): the slow path
    the fast one is tested and benchmarked against.
    """
    sheets = {township: _listing_sheet(wb, role, columns, heights.get(township, 0), titles[township], freeze,
                                       footer_note is not None) for township, wb in books.items()}
    styles = [_data_style(spec["key"], bool(spec.get("fill_in"))) for spec in columns]
    keys = [spec["key"] if spec["key"] in rows.columns else None for spec in columns]
    if reference:
        present = [key for key in keys if key is not None]
        for township, ws in sheets.items():
            for values in rows.filter(pl.col("township") == township).select(present).iter_rows():
                by_key = dict(zip(present, values))
                ws.append([_cell(ws, by_key.get(key) if key else None, style) for key, style in zip(keys, styles)])
            if footer_note:
                ws.append([])
                ws.append([_cell(ws, footer_note, "fp_note")])
        return {township: (ws, b"") for township, ws in sheets.items()}
    mine = rows.filter(pl.col("township").is_in(list(sheets))).with_columns(pl.col("township").alias(SHEET))
    xml = _rows_xml_by_sheet(sheets, mine, keys, styles, {township: HEADER_ROW + 1 for township in sheets})
    if footer_note:  # an empty row, then the note, as two appends would write them
        last = {township: HEADER_ROW + heights.get(township, 0) for township in sheets}
        notes = _rows_xml_by_sheet(sheets, pl.DataFrame({SHEET: list(sheets), "note": footer_note}), ["note"],
                                   ["fp_note"], {township: row + 2 for township, row in last.items()})
        xml = {township: xml.get(township, b"") + f'<row r="{last[township] + 1}"></row>'.encode() + notes[township]
               for township in sheets}
    return {township: (ws, xml.get(township, b"")) for township, ws in sheets.items()}


def _listing_sheet(wb: Workbook, role: str, columns: list[dict], height: int, title: str, freeze: str,
                   footer: bool) -> object:
    """A listing sheet of `height` data rows up to its header: title row, styled header, widths, freeze, filter,
    print setup (the data rows follow)."""
    ws = wb.create_sheet(sheet_name(role))
    last_column = get_column_letter(len(columns))
    last_row = HEADER_ROW + height
    for index, spec in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(index)].width = spec["width"]
    ws.freeze_panes = freeze
    ws.auto_filter.ref = f"A{HEADER_ROW}:{last_column}{last_row}"
    _print_setup(ws, last_column, last_row + (2 if footer else 0))
    ws.merged_cells.add(f"A1:{last_column}1")
    ws.row_dimensions[1].height = 28
    ws.row_dimensions[HEADER_ROW].height = 32
    ws.append([_cell(ws, title, "fp_title")])
    ws.append([_cell(ws, spec["header"], "fp_header_fill_in" if spec.get("fill_in") else "fp_header")
               for spec in columns])
    return ws


def _add_dropdowns(ws, columns: list[dict], first_row: int, last_row: int) -> None:
    """The result dropdown (核实结果) and a date check on the date column, over the data rows."""
    if last_row < first_row:
        return
    letters = {spec["key"]: get_column_letter(i) for i, spec in enumerate(columns, start=1)}
    texts = workbook_config()
    result = DataValidation(type="list", formula1='"' + ",".join(RESULTS) + '"', allow_blank=True,
                            showDropDown=False, showErrorMessage=True, showInputMessage=True,
                            errorTitle=texts["dropdown"]["error_title"], error=texts["dropdown"]["error"],
                            promptTitle=texts["dropdown"]["prompt_title"], prompt=texts["dropdown"]["prompt"])
    result.add(f"{letters['result']}{first_row}:{letters['result']}{last_row}")
    ws.data_validations.append(result)
    if "verified_on" in letters:
        when = DataValidation(type="date", operator="greaterThan", formula1="36526", allow_blank=True,
                              showErrorMessage=True, errorTitle=texts["date_validation"]["error_title"],
                              error=texts["date_validation"]["error"])  # 36526 = 2000-01-01
        when.add(f"{letters['verified_on']}{first_row}:{letters['verified_on']}{last_row}")
        ws.data_validations.append(when)


def _instruction_lines(township: str, month: str, households: pl.DataFrame, persons: int) -> list[str]:
    """The instruction sheet's lines, filled in from config; the dropdown table is one line per choice."""
    config = workbook_config()
    due = households.get_column("due_date").drop_nulls() if households.height else pl.Series([], dtype=pl.Date)
    fill_in = "、".join(f"“{spec['header']}”" for spec in column_specs("verification") if spec.get("fill_in"))
    values = {
        "township": township, "month_label": month_label(month), "households": households.height,
        "persons": persons, "earliest_due": due.min() or "（无）", "latest_due": due.max() or "（无）",
        "period_days": county().get("verification", {}).get("period_days", ""),
        "verification_sheet": sheet_name("verification"), "public_sheet": sheet_name("public"),
        "unmatched_sheet": sheet_name("unmatched"), "fill_in_columns": fill_in,
    }
    lines: list[str] = []
    for line in config["instructions"]:
        if line.strip() == "{results_table}":
            lines.extend(f"　　{item['value']}：{item['meaning']}" for item in config["results"])
        else:
            lines.append(line.format(**values))
    return lines


def _write_instructions(wb: Workbook, township: str, month: str, households: pl.DataFrame, persons: int) -> None:
    ws = wb.create_sheet(sheet_name("instructions"))
    ws.column_dimensions["A"].width = 120
    title = workbook_config()["titles"]["instructions"].format(
        township=township, year=month[:4], month_number=int(month[5:]))
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = A4_PAPER
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.append([_cell(ws, title, "fp_title")])
    for line in _instruction_lines(township, month, households, persons):
        ws.append([_cell(ws, line, "fp_note")])


def _write_meta(wb: Workbook, fields: dict[str, str]) -> None:
    """The hidden meta sheet: very hidden (not listed under Unhide) and protected; the digest detects edits."""
    ws = wb.create_sheet(sheet_name("meta"))
    ws.sheet_state = "veryHidden"
    ws.protection.sheet = True
    for key in META_KEYS:
        ws.append([_cell(ws, key), _cell(ws, fields[key])])
    ws.append([_cell(ws, "digest"), _cell(ws, meta_digest(fields))])


def _document_time(month: str) -> datetime:
    """A fixed created/modified time for the workbook: the first day after the month the lists are about."""
    year, number = int(month[:4]), int(month[5:])
    return datetime(year + number // 12, number % 12 + 1, 1)


def _save_deterministic(wb: Workbook, path: Path, stamp: datetime, rows: dict | None = None) -> None:
    """Save with fixed document dates and zip timestamps, so the same input gives the same bytes.

    openpyxl stamps `modified` with the current time and zip entries with the local time; both are replaced.
    `rows` maps a worksheet to the XML (UTF-8) of its data rows, inserted at the end of its <sheetData> (after the
    header openpyxl wrote). Written to a temporary file first so a half-written workbook never replaces a good one.
    """
    parts = openpyxl_parts(wb, stamp)
    for ws, xml in (rows or {}).items():
        if xml:
            name = ws.path.lstrip("/")
            head, end, tail = parts[name].rpartition(b"</sheetData>")
            if not end:
                raise ValueError(f"{name} of {path.name} has no <sheetData> to add rows to")
            parts[name] = head + xml + end + tail
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(stable_zip(parts, stamp.timetuple()[:6]))
    os.replace(temporary, path)


def _file_names(townships: list[str]) -> dict[str, str]:
    """township -> file name, unique even if two names clean to the same text."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for township in townships:
        base = safe_file_name(township)
        name, counter = base, 2
        while name in used:
            name, counter = f"{base}_{counter}", counter + 1
        used.add(name)
        names[township] = f"{name}.xlsx"
    return names


def _new_workbook(title: str) -> Workbook:
    """A township's workbook before its sheets: write-only, creator and title set, fangpin's named styles."""
    wb = Workbook(write_only=True)
    wb.properties.creator = "fangpin"
    wb.properties.title = title
    _register_styles(wb)
    return wb


def _by_township(frame: pl.DataFrame):
    """township -> its rows (empty if none), splitting the frame once instead of filtering it per township."""
    parts = {key[0]: part for key, part in frame.partition_by("township", as_dict=True, maintain_order=True).items()}
    return lambda township: parts.get(township, frame.clear())


def write_township_workbooks(queue: pl.DataFrame, unmatched: pl.DataFrame, month: str, out_dir: Path,
                             case_status: pl.DataFrame | None = None) -> list[Path]:
    """The paths of `write_workbooks_by_township`, sorted."""
    return sorted(write_workbooks_by_township(queue, unmatched, month, out_dir, case_status).values())


def write_workbooks_by_township(queue: pl.DataFrame, unmatched: pl.DataFrame, month: str, out_dir: Path,
                                case_status: pl.DataFrame | None = None, *, reference: bool = False
                                ) -> dict[str, Path]:
    """One `<township>.xlsx` per township present in any frame, holding only that township's rows.

    `queue` is `marts.warning_queue`, `unmatched` is `marts.unmatched_persons`, `case_status` is
    `marts.case_status` (earlier cases: verified, excluded, overdue); rows of other months are ignored.
    Rows without a township cannot be routed to anyone and are left out. Returns township -> path written
    (file names are cleaned, so callers need the mapping rather than reopening files to learn it).

    Every township's workbook is built at once, sheet by sheet (`_write_listings`), then each is saved; a workbook
    holds its own township's rows only. `reference=True` writes every cell through openpyxl (slow; kept as what
    the fast path must equal, byte for byte where openpyxl writes numbers exactly).
    """
    check_month(month)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    households = verification_rows(queue, month)
    public = public_rows(households)
    persons = unmatched_rows(unmatched, month)
    earlier = earlier_case_rows(case_status, month)
    townships = sorted(set(households.get_column("township").drop_nulls().to_list())
                       | set(persons.get_column("township").drop_nulls().to_list())
                       | set(earlier.get_column("township").drop_nulls().to_list()))
    config = workbook_config()
    titles = config["titles"]
    label = {township: dict(township=township, year=month[:4], month_number=int(month[5:])) for township in townships}
    count = {name: dict(frame.group_by("township").len().iter_rows()) if frame.height else {}
             for name, frame in (("households", households), ("persons", persons), ("cases", earlier))}

    def listing_titles(title: str, counted: str | None = None, among: list[str] = townships) -> dict[str, str]:
        return {township: title.format(**label[township], **({counted: count[counted].get(township, 0)}
                                                              if counted else {})) for township in among}

    verification_titles = listing_titles(titles["verification"], "households")
    books = {township: _new_workbook(verification_titles[township]) for township in townships}
    rows: dict[str, dict] = {township: {} for township in townships}
    rest = f"A{HEADER_ROW + 1}"
    columns = column_specs("verification")
    frozen = f"{get_column_letter(5)}{HEADER_ROW + 1}"  # 序号 (row number) to 户主姓名 (head's name) stay visible
    for township, (ws, xml) in _write_listings(books, "verification", columns, households, count["households"],
                                               verification_titles, freeze=frozen, reference=reference).items():
        rows[township][ws] = xml
        _add_dropdowns(ws, columns, HEADER_ROW + 1, HEADER_ROW + count["households"].get(township, 0))
    with_earlier = [township for township in townships if count["cases"].get(township)]
    for role, frame, counted, role_titles, among, note in (
            ("public", public, "households", listing_titles(titles["public"]), townships, titles["public_note"]),
            ("unmatched", persons, "persons", listing_titles(titles["unmatched"], "persons"), townships, None),
            ("earlier_cases", earlier, "cases", listing_titles(titles["earlier_cases"], "cases", with_earlier),
             with_earlier, None)):
        written = _write_listings({township: books[township] for township in among}, role, column_specs(role), frame,
                                  count[counted], role_titles, freeze=rest, footer_note=note, reference=reference)
        for township, (ws, xml) in written.items():
            rows[township][ws] = xml
    of_township = _by_township(households)
    for township in townships:
        persons_count = count["persons"].get(township, 0)
        _write_instructions(books[township], township, month, of_township(township), persons_count)
        _write_meta(books[township], {"format": META_FORMAT, "version": META_VERSION, "month": month,
                                      "township": township, "households": str(count["households"].get(township, 0)),
                                      "unmatched_persons": str(persons_count)})
    names = _file_names(townships)

    def save(township: str) -> Path:
        path = out_dir / names[township]
        _save_deterministic(books[township], path, _document_time(month), rows[township])
        return path

    # Two workbooks saved at a time: while one is in openpyxl (Python, holding the GIL) the other is in ISA-L's
    # deflate (which does not hold it). Each file is saved on its own, so the bytes do not depend on the order.
    with ThreadPoolExecutor(max_workers=WRITER_THREADS) as pool:
        return dict(zip(townships, pool.map(save, townships)))
