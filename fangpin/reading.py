"""Reading what departments really send: every sheet of every file in the month's drop zone, as text.

Departments send .xlsx, .xls and .csv (UTF-8 or GB18030, with or without BOM) with title rows above the header,
total rows, blank rows, several sheets, header words that vary, Excel lock files and stray documents. This module
turns each sheet into a `SheetTable` (one String column per canonical column found, plus lineage), recognises which
department list (名单) it holds, and reports everything it could not read as a `FileProblem` (a quarantine entry)
instead of raising: one bad file must never stop the month.

Excel is read with fastexcel (calamine); CSV is split with Polars string expressions (no per-row Python).

Bad input is bounded before it is parsed (config/county.yaml `intake_limits`, read by `intake_limits()`): a file
bigger than max_file_mb on disk, an .xlsx whose parts unzip (as their zip directory declares) to more than
max_unzipped_mb or a big part compressed more than max_zip_ratio:1 (a zip bomb), and a sheet or CSV longer than
max_rows_per_sheet are each one `file_too_large` problem; a cell longer than max_cell_chars is cut with a note.
A password-protected workbook, a web page saved as .xls/.xlsx, and an empty file are `file_unreadable`; a list whose
file name, sheet name or title names another month than its folder is `file_wrong_month` (see `named_months`).
So the memory one file can take is bounded by what its limits let calamine parse (about 4x max_unzipped_mb).
"""
from __future__ import annotations

import html
import io
import os
import re
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import fastexcel
import polars as pl
from isal import isal_zlib  # ISA-L's deflate: worksheet XML inflated ~2x faster than zlib
from openpyxl.utils import get_column_letter

from fangpin import config, ids, readcache
from fangpin.config import ListSpec, Registry
from fangpin.files import fs_text, os_error_words, sha256_of
from fangpin.values import cell_text
from fangpin.xlsxml import ZIP_UTF8_NAME
from schemas.reasons import ignored, reject

# .et is the WPS Office spreadsheet (common in county offices); calamine reads it like .xls.
SPREADSHEET_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xlsb", ".xls", ".et", ".ods", ".csv"})
ROSTER_SUFFIXES = SPREADSHEET_SUFFIXES | {".parquet"}
NOT_DEPARTMENTS = frozenset({"roster", "feedback"})  # drop-zone folders that hold no department list
# Read only to be refused as what they are: a list sent inside an archive is a list not yet received.
ARCHIVE_SUFFIXES = frozenset({".zip", ".rar", ".7z", ".gz", ".tgz", ".tar", ".bz2", ".xz"})
SYSTEM_FILES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini"})  # left by Windows in any folder: ignored
HEADER_SCAN_ROWS = 12  # the header is looked for among the first non-blank rows of a sheet
# "身份证号码18位" (ID number, 18 digits) maps to 身份证号码; a longer tail ("…请填写18位") is a sentence, not a header.
PREFIX_TAIL_MAX = 4
# Columns whose Excel *number* cells must show what Excel shows (15 significant digits), so that validation can
# reject an ID that went through a float instead of silently accepting digits that were never typed.
FLOAT_SENSITIVE = ("id_number", "disability_cert", "household_id")
_DATE_AT_MIDNIGHT = r"^(\d{4}-\d{2}-\d{2}) 00:00:00$"
_CFB_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE compound file: old .xls, or an encrypted .xlsx
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")  # the stream Office writes when a password is set
_MB = 1 << 20


# ----------------------------------------------------------------------------------------------------------------
# Limits: what one file may cost before it is refused (config/county.yaml intake_limits)
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IntakeLimits:
    """How big one received file may be. Defaults are used for keys a county's county.yaml leaves out."""

    max_file_mb: float = 100  # size on disk
    max_unzipped_mb: float = 500  # sum of the declared uncompressed sizes of an .xlsx's parts
    max_zip_ratio: float = 100  # a part that unzips to more than zip_ratio_floor_mb at a higher ratio is a zip bomb
    zip_ratio_floor_mb: float = 100
    max_rows_per_sheet: int = 1_048_576  # Excel's own row limit
    max_cell_chars: int = 32_767  # Excel's own cell limit; longer cells are cut, with a note

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * _MB)


def intake_limits() -> IntakeLimits:
    """The county's `intake_limits:` section of config/county.yaml (missing keys keep the defaults above)."""
    section = config.county().get("intake_limits") or {}
    known = IntakeLimits.__dataclass_fields__
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ValueError(f"county.yaml intake_limits: unknown keys {unknown}")
    cast = {"float": float, "int": int}
    return IntakeLimits(**{key: cast[known[key].type](value) for key, value in section.items()})


# ----------------------------------------------------------------------------------------------------------------
# Public records
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class SheetTable:
    """One sheet with a header row: its data rows as text, with the lineage a clerk needs to find each row."""

    source_file: str  # path relative to data_dir, posix
    sheet: str  # sheet name; "" for CSV and parquet
    header_row: int  # Excel row number (1-based) of the header; 0 for parquet (no header row)
    title: str  # title/note rows above the header, joined with " "
    frame: pl.DataFrame  # canonical columns + row_number, is_total_row, source_file, sheet (+ RAW_ONLY columns)
    blank_rows: int  # blank rows skipped between the header and the last data row
    unmapped_headers: list[str] = field(default_factory=list)
    # The row's original cells, as (column of `frame`, header as the clerk wrote it) in the sheet's order: a mapped
    # column under its canonical name, any other headed column as RAW_ONLY + its position.
    raw_cells: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.raw_cells = [(column, header) for column, header in self.raw_cells]  # pairs from JSON (the read cache)

    def raw_json(self) -> pl.Expr:
        """`raw`: the original header -> cell text of each row, as JSON (quarantine.rejected_rows, staging.list_rows).

        Encoded when asked for, not when read: a roster's million accepted rows never need theirs (0.5 s of JSON
        per 300,000 rows, and twice the size in the read cache), only its few rejected rows do."""
        if not self.raw_cells:
            return pl.lit("{}", pl.String)
        return pl.struct(pl.col(column).alias(header) for column, header in self.raw_cells).struct.json_encode()

    def without_raw(self) -> pl.DataFrame:
        """The frame without the columns kept only for `raw`."""
        return self.frame.select(_KEPT_COLUMNS)

    def with_raw(self) -> pl.DataFrame:
        """The frame with its `raw` column, without the columns kept only for it."""
        return self.frame.select(_KEPT_COLUMNS, self.raw_json().alias("raw"))


RAW_ONLY = "_raw_only_"  # prefix of a headed column no canonical column takes: kept for `raw` alone
_KEPT_COLUMNS = pl.exclude(f"^{RAW_ONLY}.*$")  # every column of a table's frame but those


def raw_of_rows(tables: list[SheetTable], rows: pl.Series) -> pl.Series:
    """`raw` of the rows at positions `rows` of the tables stacked in order (ingest.concat_tables), in that order:
    each table encodes only its own rows that are asked for."""
    wanted = rows.cast(pl.Int64).to_frame("_row").with_row_index("_order")
    parts, offset = [], 0
    for table in tables:
        mine = wanted.filter((pl.col("_row") >= offset) & (pl.col("_row") < offset + table.frame.height))
        if mine.height:
            cells = table.frame[mine["_row"] - offset]
            parts.append(mine.select("_order").with_columns(cells.select(table.raw_json().alias("raw"))))
        offset += table.frame.height
    if not parts:
        return pl.Series("raw", [], pl.String)
    return pl.concat(parts).sort("_order")["raw"]


@dataclass
class FileProblem:
    """A file or sheet that could not be read or recognised: a quarantine.rejected_rows entry (row_number NULL)."""

    source_file: str
    sheet: str
    reason_code: str
    reason: str
    list_key: str | None = None


@dataclass
class ReceivedFile:
    """One row of raw.received_files (status: read | ignored | duplicate | quarantined)."""

    source_file: str
    department: str | None
    folder: str
    sha256: str
    size_bytes: int
    modified_at: datetime
    status: str
    note: str | None = None
    duplicate_of: str | None = None
    lists: list[str] = field(default_factory=list)


@dataclass
class MonthScan:
    """Everything found in `raw/<month>/` outside roster/ and feedback/."""

    files: list[ReceivedFile]
    tables: dict[str, list[SheetTable]]  # list_key -> recognised tables (keys only for lists actually received)
    problems: list[FileProblem]


# ----------------------------------------------------------------------------------------------------------------
# Header words
# ----------------------------------------------------------------------------------------------------------------
def normalise_header(text: str | None) -> str:
    """A header cell as compared with the registry's variants.

    Clerks type spaces (also full-width), full-width brackets, a trailing colon, a "*" marking required columns
    and line breaks inside the cell; none of these change which column it is.
    """
    if text is None:
        return ""
    cleaned = re.sub(r"\s+", "", str(text)).replace("（", "(").replace("）", ")")
    return cleaned.strip("*＊").rstrip("：:")


def _drop_brackets(key: str) -> str:
    """A normalised header without its bracketed unit or remark: 救助金额(元) -> 救助金额."""
    return re.sub(r"\([^()]*\)", "", key) or key


class HeaderMatcher:
    """Maps header cells to canonical column names using a registry header map (exact match first, then prefix)."""

    def __init__(self, header_map: dict[str, tuple[str, ...]]):
        self.exact: dict[str, str] = {}
        self.unbracketed: dict[str, str] = {}
        prefixes: list[tuple[str, str]] = []
        for canonical, variants in header_map.items():
            for variant in (canonical, *variants):  # the canonical name itself is accepted (English exports)
                key = normalise_header(variant)
                self.exact.setdefault(key, canonical)  # "the first matching canonical name wins"
                self.unbracketed.setdefault(_drop_brackets(key), canonical)
                prefixes.append((key, canonical))
        self.prefixes = sorted(prefixes, key=lambda item: -len(item[0]))  # longest variant first
        # The prefixes a key can start with, by its first character (same order: an empty variant sorts last and
        # goes in every list): most cells looked at while finding the header are data (names, IDs) that no
        # variant starts with, and need not try them all.
        self.no_first = [item for item in self.prefixes if not item[0]]
        self.by_first: dict[str, list[tuple[str, str]]] = {}
        for item in self.prefixes:
            if item[0]:
                self.by_first.setdefault(item[0][0], []).append(item)
        for bucket in self.by_first.values():
            bucket.extend(self.no_first)

    def match(self, cell: str | None) -> tuple[str | None, bool]:
        """(canonical, exact) for one header cell; (None, False) when it names no known column.

        A prefix match covers "身份证号码（18位）"; one-character variants (镇, 村) only match with a bracket after
        them, so that 村民小组 (villager group) is not taken for 村 (village).
        """
        key = normalise_header(cell)
        if not key:
            return None, False
        if key in self.exact:
            return self.exact[key], True
        if "(" not in key and key in self.unbracketed:  # 月保障金额 for the variant 月保障金额（元）
            return self.unbracketed[key], False
        for variant, canonical in self.by_first.get(key[0], self.no_first):
            if key.startswith(variant):
                tail = key[len(variant):]
                bracketed = tail[:1] in ("(", "[", "【", "〔")
                if bracketed or (len(variant) >= 2 and len(tail) <= PREFIX_TAIL_MAX):
                    return canonical, False
        return None, False


# ----------------------------------------------------------------------------------------------------------------
# Numbers as Excel shows them
# ----------------------------------------------------------------------------------------------------------------
def excel_number_text(values: pl.Expr) -> pl.Expr:
    """Float64 -> the text `format(value, '.15g').upper()` gives, vectorised.

    Excel keeps 15 significant digits, so an 18-digit ID typed into a number cell shows as 3.21202199001011E+17:
    that text lets validation reject it as float-mangled, while a 15-digit legacy ID stays exact.
    """
    magnitude = values.abs()
    # |x| < 1e15: integers exactly ("12", not "12.0"); fractions as their shortest text when it has at most 15
    # significant digits (1234.5), else rounded to 15 (0.30000000000000004 -> 0.3; last digit may differ by one).
    shortest = values.cast(pl.String)
    significant = shortest.str.replace_all(r"[-.]", "").str.strip_chars_start("0").str.len_chars()
    small = (
        pl.when(magnitude == magnitude.floor())
        .then(values.cast(pl.Int64, strict=False).cast(pl.String))
        .when(significant <= 15).then(shortest)
        .otherwise(values.round_sig_figs(15).cast(pl.String).str.strip_suffix(".0"))
    )
    # |x| >= 1e15: round the exact decimal value to 15 significant digits (half to even, like Python's format).
    whole = magnitude.floor().cast(pl.Int128, strict=False)
    digits = whole.cast(pl.String).str.len_chars().cast(pl.Int64)
    scale = pl.lit(10, pl.Int128).pow((digits - 15).clip(lower_bound=0))
    head, rest = whole // scale, whole % scale
    fraction = magnitude - magnitude.floor()
    round_up = (2 * rest > scale) | ((2 * rest == scale) & ((head % 2 == 1) | (fraction > 0)))
    rounded = head + round_up.cast(pl.Int128)
    carried = rounded >= 10**15
    mantissa = pl.when(carried).then(rounded // 10).otherwise(rounded).cast(pl.String).str.strip_chars_end("0")
    exponent = digits - 1 + carried.cast(pl.Int64)
    big = pl.concat_str(
        pl.when(values < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        mantissa.str.slice(0, 1),
        pl.when(mantissa.str.len_chars() > 1).then(pl.lit(".") + mantissa.str.slice(1)).otherwise(pl.lit("")),
        pl.lit("E+"),
        exponent.cast(pl.String).str.zfill(2),
    )
    return (
        pl.when(values.is_null()).then(None)
        .when(magnitude < 1e15).then(small)
        .when(magnitude < 1e38).then(big)
        .otherwise(values.cast(pl.String))
        .str.to_uppercase()
    )


# ----------------------------------------------------------------------------------------------------------------
# Grids: a sheet (or CSV, or parquet) as rows of text cells, before any header is known
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class _Grid:
    """The cells of one sheet as String columns c0..cN; row i of `cells` is spreadsheet row `first_row + i`."""

    sheet: str
    cells: pl.DataFrame
    first_row: int
    column_labels: list[str]  # Excel column letters, for raw keys of columns without a header
    number_cells: Callable[[list[int]], pl.DataFrame] | None = None  # columns -> Boolean "was an Excel number"
    notes: list[str] = field(default_factory=list)  # what the clerk should know (without the file/sheet prefix)
    # More such notes, from the .xlsx's XML: asked for after the table is built, so one scan finds them and numbers
    xml_notes: Callable[[], list[str]] | None = None
    error_texts: Callable[[], pl.DataFrame] | None = None  # .xlsx: error cells (ref, text Excel shows), read blank
    problem: tuple[str, str] | None = None  # (reason_code, detail): the sheet was refused and has no cells


class UnreadableFile(Exception):
    """The file cannot be opened as a spreadsheet; the message is the clerk's short detail (Chinese).

    `code` is its reason code: file_unreadable, or file_too_large when an intake limit refused it.
    """

    def __init__(self, detail: str, code: str = "file_unreadable"):
        super().__init__(detail)
        self.code = code


def _column_letter(index: int) -> str:
    """0 -> A, 26 -> AA: how the clerk names a column (0-based index, openpyxl's rule)."""
    return get_column_letter(index + 1)


def _clean_cells(cells: pl.DataFrame, columns: list[str] | None = None) -> pl.DataFrame:
    """Strip each cell (of `columns`, else of every column); blank cells become null (they are blank to a clerk:
    `values.cell_text`)."""
    return cells.with_columns(cell_text(pl.col(c)) for c in (cells.columns if columns is None else columns))


def _dates_at_midnight(cells: pl.DataFrame) -> pl.DataFrame:
    """Date cells calamine renders as "2026-10-05 00:00:00" shown as Excel shows them: "2026-10-05".

    The regex runs only on columns holding a cell that ends in " 00:00:00" (a cheap literal test first), as
    running it on every cell cost more than the rest of the cleaning.
    """
    text = [c for c, dtype in cells.schema.items() if dtype == pl.String]
    if not text or cells.height == 0:
        return cells
    found = cells.select(pl.col(text).str.ends_with(" 00:00:00").any()).row(0)
    dated = [c for c, any_found in zip(text, found) if any_found]
    return cells.with_columns(pl.col(dated).str.replace(_DATE_AT_MIDNIGHT, "${1}")) if dated else cells


def _cap_cells(cells: pl.DataFrame, limit: int, labels: list[str], first_row: int) -> tuple[pl.DataFrame, list[str]]:
    """Cells longer than `limit` characters cut to it, and a note naming them (at most three per column).

    Such a cell is pasted text or a broken export, never a value fangpin uses; cutting it keeps the row (and the
    rest of the file) while bounding what every later step copies. Columns are c0..cN, labelled by `labels`.
    """
    notes: list[str] = []
    text = [c for c, dtype in cells.schema.items() if dtype == pl.String]
    longest = cells.select(pl.col(text).str.len_bytes().max()).row(0) if text and cells.height else ()
    long = [c for c, most in zip(text, longest) if (most or 0) > limit]  # bytes >= characters: a cheap first test
    for column in long:
        lengths = cells[column].str.len_chars()
        rows = (lengths > limit).arg_true()
        if rows.len() == 0:
            continue
        named = "、".join(f"第{first_row + i}行" for i in rows.head(3).to_list())
        more = f"等{rows.len():,}个单元格" if rows.len() > 3 else ""
        notes.append(f"{labels[int(column[1:])]}列{named}{more}的内容有{lengths.max():,}个字，超过单元格上限{limit:,}个字，"
                     f"已截断（只保留前{limit:,}个字），该行照常读取")
    if long:
        cells = cells.with_columns(pl.col(c).str.slice(0, limit) for c in long)
    return cells, notes


def is_encrypted(data: bytes) -> bool:
    """An Office file saved with an opening password is an OLE container holding an EncryptedPackage stream."""
    return data.startswith(_CFB_SIGNATURE) and _ENCRYPTED_PACKAGE in data


_ENCRYPTED_DETAIL = ("文件设置了打开密码（已加密），系统无法打开；"
                     "请在Excel中取消密码（文件→信息→保护工作簿→用密码进行加密，清空密码）后重新报送")


def _sniff_binary(data: bytes) -> str:
    """A short Chinese detail for bytes calamine refused, naming the usual culprits."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not data:
        return "文件是空的（0字节），可能没有保存成功或没有复制完整"
    if is_encrypted(data):
        return _ENCRYPTED_DETAIL
    if head.startswith((b"<html", b"<!doctype", b"<table", b"<?xml")) or b"<table" in head:
        return "文件实际是网页（HTML）格式，不是真正的Excel文件；请用Excel打开后另存为.xlsx再报送"
    if data.startswith(b"PK"):
        return "Excel文件已损坏（压缩包不完整），请重新导出后报送"
    return "无法识别的文件格式，可能已损坏"


# ----------------------------------------------------------------------------------------------------------------
# Zip-based workbooks (.xlsx): checked before calamine unzips them
# ----------------------------------------------------------------------------------------------------------------
# A formula cell saved without its result (written by a program, never opened in Excel): calamine reads it blank.
# (Rust regex, searched by Polars like every worksheet search below; ASCII \b and \s as in a bytes pattern.)
_FORMULA_WITHOUT_VALUE = (r'<c(?-u:\b)[^>]*?(?-u:\b)r="[A-Z]{1,3}[0-9]+"[^>]*>(?-u:\s)*<f(?-u:\b)[^>]*(?:/>|>[^<]*</f>)'
                          r'(?-u:\s)*(?:<v(?-u:\s)*/>|<v>(?-u:\s)*</v>)?(?-u:\s)*</c>')
# The opening tag of a cell holding an error value (#DIV/0!, #REF!, #N/A, usually a formula's): read blank too.
_ERROR_CELL_TAG = r'<c(?-u:\b)[^>]*(?-u:\b)t="e"[^>]*'
_CELL_REFERENCE = r'(?-u:\b)r="([A-Z]{1,3}[0-9]+)"'  # the first r="C2" of a cell's tag
# An error cell with its value as Excel shows it: <c r="F5" t="e"><f>…</f><v>#N/A</v></c> (group 1: #N/A).
_ERROR_CELL_VALUE = _ERROR_CELL_TAG + r'>(?:(?-u:\s)*<f(?-u:\b)[^>]*(?:/>|>[^<]*</f>))?(?-u:\s)*<v>([^<]*)</v>'


def _check_zip(data: bytes, limits: IntakeLimits) -> zipfile.ZipFile:
    """The workbook's zip directory, once what its parts would unzip to is known to be within the limits.

    The declared sizes are what an unzipper allocates for, and a big part far smaller compressed than unzipped is
    how a zip bomb looks; both are refused before calamine unzips anything. A zip whose directory cannot be read is
    a damaged (usually truncated: not fully downloaded or copied) file.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        parts = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise UnreadableFile("Excel文件已损坏（压缩包不完整，可能没有下载或复制完整），请重新导出后报送") from exc
    total = sum(part.file_size for part in parts)
    if total > limits.max_unzipped_mb * _MB:
        raise UnreadableFile(f"文件解压后共{total / _MB:,.0f}MB，超过上限{limits.max_unzipped_mb:g}MB"
                             "（内容异常膨胀，疑似“压缩炸弹”恶意文件）", "file_too_large")
    for part in parts:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > limits.zip_ratio_floor_mb * _MB and ratio > limits.max_zip_ratio:
            raise UnreadableFile(f"文件中的“{part.filename}”从{part.compress_size / _MB:.1f}MB解压为"
                                 f"{part.file_size / _MB:,.0f}MB（压缩比{ratio:,.0f}:1，上限{limits.max_zip_ratio:g}:1），"
                                 "内容异常膨胀，疑似“压缩炸弹”恶意文件", "file_too_large")
    return archive


def _sheet_parts(archive: zipfile.ZipFile) -> dict[str, str]:
    """Worksheet part (xl/worksheets/sheet1.xml) -> sheet name, from xl/workbook.xml and its relationships."""
    try:
        workbook = archive.read("xl/workbook.xml").decode("utf-8", "replace")
        rels = archive.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    except KeyError:
        return {}
    targets: dict[str, str] = {}
    for tag in re.findall(r"<(?:\w+:)?Relationship\b[^>]*>", rels):
        rid, target = re.search(r'\bId="([^"]+)"', tag), re.search(r'\bTarget="([^"]+)"', tag)
        if rid and target:
            path = target.group(1)
            targets[rid.group(1)] = path.lstrip("/") if path.startswith("/") else "xl/" + path
    names: dict[str, str] = {}
    for tag in re.findall(r"<(?:\w+:)?sheet\b[^>]*>", workbook):
        name, rid = re.search(r'\bname="([^"]*)"', tag), re.search(r'\s\w+:id="([^"]+)"', tag)
        if name and rid and rid.group(1) in targets:
            names[targets[rid.group(1)]] = html.unescape(name.group(1))
    return names


def _hidden_sheets(archive: zipfile.ZipFile) -> set[str]:
    """The names of the sheets xl/workbook.xml marks hidden or very hidden (state="hidden" / "veryHidden")."""
    try:
        workbook = archive.read("xl/workbook.xml").decode("utf-8", "replace")
    except KeyError:
        return set()
    return {html.unescape(name.group(1)) for tag in re.findall(r"<(?:\w+:)?sheet\b[^>]*>", workbook)
            if re.search(r'\bstate="(?:hidden|veryHidden)"', tag) and (name := re.search(r'\bname="([^"]*)"', tag))}


# The searches over a worksheet part run as Polars (Rust regex) string expressions, outside the GIL: in Python's re
# they cost ~1.3 s of held GIL per 500,000-row roster file, while the other roster file's reader waited for it.
# Rust's regex has no look-ahead, so "not followed by" is spelled out as alternatives; ASCII classes as in bytes re.
#
# A cell tag not laid out plainly: not starting with its r="A1" reference (<c>, <c/>, <c s="1" r=…>), or with a
# namespace prefix (<x:c …>).
_UNPLAIN_CELL = r'<c(?:[>/]| (?:$|[^r]|r(?:$|[^=]|=(?:$|[^"]))))|:c[ >]'
_ATTRIBUTE_NAME_NOT_T = r"(?:[A-Za-su-z0-9_:][A-Za-z0-9_:]*|t[A-Za-z0-9_:]+)"  # any name but t itself
_OTHER_ATTRIBUTES = r'(?:(?-u:\s)+' + _ATTRIBUTE_NAME_NOT_T + r'="[^"]*")*'
_CELL_ROW = r'^<c r="[A-Z]+([0-9]+)"'  # the row of a plain cell tag
_FORMULA_MARK, _ERROR_MARK = "<f", 't="e"'  # a substring every match of each contains
_INFLATE_INPUT = 256 * 1024  # deflated bytes fed to the inflater at a time (~2 MB of worksheet XML)
_ZIP_ENCRYPTED = 0x1  # the general-purpose flag bit of a zip entry encrypted by zip itself
_SCAN_BLOCKS_AT_ONCE = 16  # 4 MB blocks searched per Polars call: 64 MB of text, not a whole 500 MB part


def _number_cell_pattern(letter: str) -> str:
    """A number (or boolean) cell tag of one column, its row in the reference: no t attribute, or t="n" / t="b"
    (calamine's number and boolean cells); text is t="s", "inlineStr" or "str"."""
    return (f'<c r="{letter}[0-9]+"' + _OTHER_ATTRIBUTES + r'(?:(?-u:\s)+t="[nb]"' + _OTHER_ATTRIBUTES
            + r')?(?-u:\s)*/?>')


@dataclass
class _PartScan:
    """What one pass over a worksheet part found, as Polars Series (none of it grows Python lists row by row)."""

    formulas: pl.Series  # references (String, "C2") of formula cells saved without their result
    errors: pl.Series  # references of error-value cells
    number_rows: list[pl.Series] | None  # per letter scanned, the Excel rows (Int64) of its number cells; None: not plain


def _as_text(pieces: list[bytes]) -> pl.Series:
    """XML pieces as one String Series, decoded in Rust; a piece that is not UTF-8 is decoded with replacement
    characters (a damaged byte then cannot hide or invent a cell tag)."""
    texts = pl.Series("xml", pieces, dtype=pl.Binary).cast(pl.String, strict=False)
    if texts.null_count():
        texts = pl.Series("xml", [piece.decode("utf-8", "replace") for piece in pieces], dtype=pl.String)
    return texts


def _matches(texts: pl.Series, pattern: str, part: str) -> pl.Series:
    """`part` (a regex with one group) of every match of `pattern` in these XML pieces, in order."""
    return texts.str.extract_all(pattern).explode().drop_nulls().str.extract(part, 1).drop_nulls()


def _scan_part(archive: zipfile.ZipFile, part: str, letters: tuple[str, ...]) -> _PartScan:
    """Every search fangpin makes in a worksheet part's XML, in one pass over its decompressed 4 MB blocks.

    Decompressing the part costs as much as searching it, so the part is read once for all of them. Only blocks
    holding "<f" (t="e") are searched for formulas (errors): most sheets hold none. Number cells are only trusted
    while every cell tag is plain (see `_SheetXml.number_rows`); the scan for notes goes on after a non-plain block.
    """
    formulas: list[pl.Series] = []
    errors: list[pl.Series] = []
    numbers: list[list[pl.Series]] | None = [[] for _ in letters]
    for texts in _part_texts(archive, part):
        numbers = _scan_pieces(texts, letters, formulas, errors, numbers)
    return _PartScan(_concat(formulas, pl.String), _concat(errors, pl.String),
                     None if numbers is None else [_concat(rows, pl.Int64) for rows in numbers])


def _concat(chunks: list[pl.Series], dtype: pl.DataType) -> pl.Series:
    return pl.concat(chunks) if chunks else pl.Series([], dtype=dtype)


def _scan_pieces(texts: pl.Series, letters: tuple[str, ...], formulas: list[pl.Series], errors: list[pl.Series],
                 numbers: list[list[pl.Series]] | None) -> list[list[pl.Series]] | None:
    """Adds what these XML pieces hold to the chunks found so far; returns the number-cell chunks, or None once a
    non-plain tag was seen (in these pieces or before)."""
    if texts.str.contains(_FORMULA_MARK, literal=True).any():
        formulas.append(_matches(texts, _FORMULA_WITHOUT_VALUE, _CELL_REFERENCE))
    if texts.str.contains(_ERROR_MARK, literal=True).any():
        errors.append(_matches(texts, _ERROR_CELL_TAG, _CELL_REFERENCE))
    if not numbers:  # no letter asked for, or an earlier block was not plain
        return numbers
    if texts.str.contains(_UNPLAIN_CELL).any():
        return None
    for rows, letter in zip(numbers, letters):
        rows.append(_matches(texts, _number_cell_pattern(letter), _CELL_ROW).cast(pl.Int64))
    return numbers


def _part_texts(archive: zipfile.ZipFile, part: str):
    """A worksheet part's XML as String Series of `_SCAN_BLOCKS_AT_ONCE` blocks each (`_part_blocks`): one Polars
    call searches 64 MB, not a whole 500 MB part."""
    batch: list[bytes] = []
    for block in _part_blocks(archive, part):
        batch.append(block)
        if len(batch) == _SCAN_BLOCKS_AT_ONCE:
            yield _as_text(batch)
            batch = []
    if batch:
        yield _as_text(batch)


def _part_blocks(archive: zipfile.ZipFile, part: str):
    """A worksheet part's XML in blocks of ~4 MB, each ending before a cell start, so that searching one block never
    splits a cell (its start goes with the next block) and memory stays small."""
    pending: list[bytes] = []  # the last block's tail, then what was inflated since
    size = 0
    for piece in _inflated(archive, part):
        pending.append(piece)
        size += len(piece)
        if size >= 4 * _MB:
            buffer = b"".join(pending)
            last_cell = buffer.rfind(b"<c", 1)  # a buffer without a second cell start is searched whole, so that
            cut = last_cell if last_cell > 0 else len(buffer)  # one huge cell cannot grow the tail forever
            yield buffer[:cut]
            pending, size = [buffer[cut:]], len(buffer) - cut
    yield b"".join(pending)


def _inflated(archive: zipfile.ZipFile, part: str):
    """A worksheet part's XML in pieces of at most 4 MB, as it inflates.

    Inflated by ISA-L (python-isal) rather than `archive.open()`, whose zlib inflate and crc32 are twice as slow: the
    scan of a 500,000-row roster file's 368 MB part took 1.22-1.32 CPU-s that way, 0.97-1.05 this way. Read as
    zipfile reads it: no more than the size the zip directory declares, then the CRC checked (a damaged part, or
    one that understates its size, raises zipfile.BadZipFile). A part that is not plainly deflated (stored, or a
    zip-encrypted entry) is read by zipfile itself.
    """
    info = archive.getinfo(part)
    deflated = _deflated_bytes(archive, info)
    if deflated is None:
        with archive.open(info) as handle:
            while piece := handle.read(4 * _MB):
                yield piece
        return
    inflater, crc, left = isal_zlib.decompressobj(-15), 0, info.file_size  # -15: raw deflate, as zip stores it
    for start in range(0, len(deflated), _INFLATE_INPUT):
        pending = deflated[start:start + _INFLATE_INPUT]
        while pending and left > 0:  # at most 4 MB at a time, however well the part compresses
            piece = inflater.decompress(pending, min(4 * _MB, left))
            pending, left = inflater.unconsumed_tail, left - len(piece)
            crc = isal_zlib.crc32(piece, crc)
            yield piece
    piece = inflater.flush()[:max(left, 0)]
    if isal_zlib.crc32(piece, crc) != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {part!r}")
    yield piece


def _deflated_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> memoryview | None:
    """A deflated part's bytes inside the workbook's own bytes (`_check_zip` opens every workbook from memory), or
    None when zipfile should read it: not deflated, zip-encrypted, not in memory, or its local header damaged or
    naming another file (zipfile then raises its own error)."""
    if (info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & _ZIP_ENCRYPTED
            or not isinstance(archive.fp, io.BytesIO)):
        return None
    workbook = archive.fp.getvalue()  # the bytes the archive was opened on, not a copy
    start = info.header_offset + zipfile.sizeFileHeader
    header = workbook[info.header_offset:start]
    if len(header) < zipfile.sizeFileHeader or not header.startswith(zipfile.stringFileHeader):
        return None
    name_length, extra_length = struct.unpack("<HH", header[26:30])  # the local header's own, not the directory's
    name = workbook[start:start + name_length].decode("utf-8" if info.flag_bits & ZIP_UTF8_NAME else "cp437",
                                                      "replace")
    if name != info.orig_filename:
        return None
    start += name_length + extra_length
    return memoryview(workbook)[start:start + info.compress_size]


class _SheetXml:
    """One worksheet part of an .xlsx, scanned (once, by `_scan_part`) for what calamine's text grid does not tell:
    cells read blank although Excel shows something, and which cells of the ID columns were Excel numbers.

    The scan waits for the first `number_rows(letters)` (asked once the header names the ID columns) so that the
    same pass also finds the notes; `notes()` reuses it, or scans for notes only when no column was asked for.
    """

    def __init__(self, archive: zipfile.ZipFile, part: str):
        self.archive, self.part = archive, part
        self.letters: tuple[str, ...] | None = None  # the letters the cached scan looked at
        self.found: _PartScan | None = None  # None after a scan: a damaged part

    def _scan(self, letters: tuple[str, ...]) -> _PartScan | None:
        if self.letters is None or not set(letters) <= set(self.letters):
            self.letters = tuple(dict.fromkeys((*(self.letters or ()), *letters)))
            try:
                self.found = _scan_part(self.archive, self.part, self.letters)
            except Exception:  # a damaged part (bad CRC, bad deflate data): calamine reports it reading the sheet
                self.found = None
        return self.found

    def number_rows(self, letters: list[str]) -> list[pl.Series] | None:
        """For each column letter, the Excel rows (Int64) whose cell is a number (or boolean) cell in the XML;
        None when the part is damaged or not laid out plainly enough to tell (then calamine is asked instead).

        Plain means every cell tag starts with its r="A1" reference and has no namespace prefix, which is what
        Excel, WPS and most exporters write.
        """
        found = self._scan(tuple(letters))
        if found is None or found.number_rows is None:
            return None
        by_letter = dict(zip(self.letters, found.number_rows))
        return [by_letter[letter] for letter in letters]

    def error_texts(self) -> pl.DataFrame:
        """Error-value cells: reference and the text Excel shows (ref "F5", text "#N/A"), in one pass of its own over
        the part (the notes' scan is not needed for this; only blocks holding t="e" are searched)."""
        try:
            cells = _concat([texts.str.extract_all(_ERROR_CELL_VALUE).explode().drop_nulls()
                             for texts in _part_texts(self.archive, self.part)
                             if texts.str.contains(_ERROR_MARK, literal=True).any()], pl.String)
        except Exception:  # noqa: BLE001 - a damaged part: calamine reports it reading the sheet
            cells = pl.Series([], dtype=pl.String)
        return pl.DataFrame({"ref": cells.str.extract(_CELL_REFERENCE, 1),
                             "text": cells.str.extract(_ERROR_CELL_VALUE, 1)}).drop_nulls()

    def notes(self) -> list[str]:
        """Notes on cells read as blank although Excel would show something: formulas saved without their result,
        and error values. A formula's text is never taken as the cell's value ("=SUM(...)")."""
        found = self._scan(self.letters or ())
        if found is None:
            return []
        notes = []
        for refs, what in ((found.formulas, "是公式但没有保存计算结果（文件由程序生成、未在Excel中保存过）"),
                           (found.errors, "是公式错误值（如#DIV/0!、#REF!、#N/A）")):
            if refs.len():
                named = "、".join(refs.head(5).to_list()) + (f"等{refs.len():,}个单元格" if refs.len() > 5 else "")
                notes.append(f"{named}{what}，按空白读取；请在Excel中核对、保存后重新报送")
        return notes


def _refused(sheet: str, code: str, detail: str) -> _Grid:
    """A sheet that was not read: no cells, just the problem."""
    return _Grid(sheet=sheet, cells=pl.DataFrame(), first_row=1, column_labels=[], problem=(code, detail))


def _excel_grids(data: bytes, limits: IntakeLimits, only: frozenset[str] | None = None) -> list[_Grid]:
    """Every sheet of an Excel workbook (format sniffed from the bytes, so a misnamed .xls still reads); `only`:
    just the sheets of those names.

    A zip-based workbook is checked against the limits first and an encrypted one is refused before calamine sees
    it; a sheet longer than max_rows_per_sheet is refused (its grid carries the problem, no cells).
    """
    parts: dict[str, _SheetXml] = {}  # sheet name -> its worksheet part, for what the XML tells beyond calamine
    hidden: set[str] = set()
    if data.startswith(b"PK"):
        archive = _check_zip(data, limits)
        parts = {sheet: _SheetXml(archive, part) for part, sheet in _sheet_parts(archive).items()}
        hidden = _hidden_sheets(archive)
    elif is_encrypted(data):
        raise UnreadableFile(_sniff_binary(data))
    try:
        reader = fastexcel.read_excel(data)
    except Exception as exc:  # calamine raises its own error types; all mean "cannot open"
        if "password" in str(exc).lower():  # an old .xls with a password (no EncryptedPackage stream)
            raise UnreadableFile(_ENCRYPTED_DETAIL) from exc
        raise UnreadableFile(_sniff_binary(data)) from exc
    grids = []
    for index, name in enumerate(reader.sheet_names):
        if only is not None and name not in only:
            continue
        try:
            cells, columns = _load_sheet(reader, index, limits)
        except UnreadableFile as refused:
            grids.append(_refused(name, refused.code, str(refused)))
            continue
        labels = [_column_letter(info.absolute_index) for info in columns]
        cells = cells.rename({info.name: f"c{position}" for position, info in enumerate(columns)})
        cells, notes = _cap_cells(cells, limits.max_cell_chars, labels, first_row=1)
        if name in hidden and cells.height:  # a list left over from an earlier month, hidden but read all the same
            notes.insert(0, "是隐藏的工作表，其内容已照常读取；请核对它是否属于本月的名单")
        cells = _dates_at_midnight(_clean_cells(cells))
        xml = parts.get(name)
        grids.append(_Grid(
            sheet=name, cells=cells, first_row=1, column_labels=labels,
            number_cells=_number_cell_loader(reader, index, [info.name for info in columns], cells.height,
                                             (xml, labels) if xml is not None else None),
            notes=notes, xml_notes=xml.notes if xml is not None else None,
            error_texts=xml.error_texts if xml is not None else None,
        ))
    return grids


def workbook_sheets(data: bytes, names: frozenset[str] | None, limits: IntakeLimits | None = None
                    ) -> dict[str, pl.DataFrame]:
    """The sheets of an Excel workbook named in `names` (those it has; None: every sheet), each as text cells read the
    way department lists are (calamine; limits and encryption checked first; cells stripped, blanks null, dates at
    midnight as dates, whole numbers without ".0"), error cells as Excel shows them (#N/A; calamine reads them
    blank). Columns are named by Excel letter from the first used column; row i is Excel row i + 1. For workbooks
    fangpin wrote and gets back (a township's verification results): calamine reads one in ~0.2 s where openpyxl
    took 2-4 s.

    Raises UnreadableFile (its message the clerk's detail) when the workbook, or one of those sheets, cannot be
    read.
    """
    sheets = {}
    for grid in _excel_grids(data, limits or intake_limits(), only=names):
        if grid.problem is not None:
            code, detail = grid.problem
            raise UnreadableFile(f"工作表“{grid.sheet}”：{detail}", code=code)
        cells = grid.cells.rename(dict(zip(grid.cells.columns, grid.column_labels)))
        sheets[grid.sheet] = _with_error_texts(cells, grid.error_texts() if grid.error_texts else None)
    return sheets


def _with_error_texts(cells: pl.DataFrame, errors: pl.DataFrame | None) -> pl.DataFrame:
    """Cells named by Excel letter, with each error cell's text (`_SheetXml.error_texts`) where calamine left it
    blank; an error outside the cells read is left out (nothing there to show it in)."""
    if errors is None or errors.is_empty():
        return cells
    located = errors.select(pl.col("ref").str.extract(r"^([A-Z]+)", 1).alias("letter"),
                            (pl.col("ref").str.extract(r"([0-9]+)$", 1).cast(pl.Int64) - 1).alias("row"), "text")
    located = located.filter(pl.col("letter").is_in(cells.columns) & (pl.col("row") < cells.height))
    for (letter,), found in located.partition_by("letter", as_dict=True).items():  # a column at a time: a few
        cells = cells.with_columns(cells[letter].scatter(found["row"], found["text"]))
    return cells


def _load_sheet(reader: fastexcel.ExcelReader, index: int, limits: IntakeLimits) -> tuple[pl.DataFrame, list]:
    """One sheet's cells as text from its first row, and its columns (fastexcel's ColumnInfo: name and
    absolute_index, the Excel column); raises UnreadableFile for a damaged sheet or one over max_rows_per_sheet.

    Loaded eagerly: calamine builds the Arrow columns outside the GIL, where the lazy sheet's `to_polars` holds it
    (~1 s a 500,000-row roster file, while the other roster file's reader waits). The eager batch names columns
    by position, so the columns are taken from what calamine passes to `use_columns`. A sheet the eager load
    refuses (an empty one) is loaded lazily, as before.
    """
    limit = limits.max_rows_per_sheet
    columns: list = []
    try:
        batch = reader.load_sheet_eager(index, header_row=None, skip_rows=0, n_rows=limit + 1, dtypes="string",
                                        use_columns=lambda column: columns.append(column) or True)
    except Exception:  # noqa: BLE001 - an empty sheet, or damaged bytes: the lazy load tells which
        return _load_sheet_lazily(reader, index, limits)
    if batch.num_rows > limit:
        return _load_sheet_lazily(reader, index, limits)  # refuses it, with the sheet's number of rows
    return pl.from_arrow(batch), columns


def _load_sheet_lazily(reader: fastexcel.ExcelReader, index: int, limits: IntakeLimits) -> tuple[pl.DataFrame, list]:
    """`_load_sheet` through fastexcel's lazy sheet, which knows an over-long sheet's number of rows and reads an
    empty sheet as no cells."""
    try:
        sheet = reader.load_sheet(index, header_row=None, skip_rows=0, n_rows=limits.max_rows_per_sheet,
                                  dtypes="string")
    except Exception as error:  # damaged bytes inside the workbook: this sheet is lost, the others may still read
        raise UnreadableFile("工作表内容已损坏（文件可能在复制或传输中出错），无法读取，请重新导出后报送") from error
    if sheet.total_height > limits.max_rows_per_sheet:
        raise UnreadableFile(f"工作表有{sheet.total_height:,}行，超过每表{limits.max_rows_per_sheet:,}行的上限",
                             code="file_too_large")
    return sheet.to_polars(), sheet.available_columns()


def _xml_number_flags(xml: _SheetXml, letters: list[str], height: int) -> list[pl.Series] | None:
    """`_SheetXml.number_rows` as one Boolean Series per letter over the grid's rows (grid row i is Excel row
    i + 1); None (let calamine decide) when the XML cannot tell or names rows outside the grid."""
    rows = xml.number_rows(letters)
    if rows is None or any(found.len() and (found.min() < 1 or found.max() > height) for found in rows):
        return None
    flags = []
    for found in rows:
        column = pl.zeros(height, pl.Boolean, eager=True)
        flags.append(column.scatter(found - 1, True) if found.len() else column)
    return flags


def _number_cell_loader(reader: fastexcel.ExcelReader, index: int, names: list[str], height: int,
                        xml: tuple[_SheetXml, list[str]] | None = None):
    """A function telling, for some columns of a sheet, which cells were Excel numbers (not text).

    fastexcel renders every cell as text when asked for strings, so the cell type is recovered from the sheet's
    XML when it is an .xlsx (`xml`: its worksheet part, column letters), else by loading those columns again
    as booleans: calamine converts number (and boolean) cells and leaves text cells null. The XML scan costs a
    fraction of calamine parsing the whole sheet a second time.
    """

    def load(positions: list[int]) -> pl.DataFrame:
        if xml is not None:
            sheet_xml, letters = xml
            flags = _xml_number_flags(sheet_xml, [letters[p] for p in positions], height)
            if flags is not None:
                return pl.DataFrame([flag.alias(f"c{p}") for flag, p in zip(flags, positions)])
        wanted = [names[p] for p in positions]
        sheet = reader.load_sheet(index, header_row=None, skip_rows=0, use_columns=wanted,
                                  dtypes={name: "boolean" for name in wanted})
        flags = sheet.to_polars()
        if flags.height != height:  # never guess a row alignment
            return pl.DataFrame({f"c{p}": [False] * height for p in positions})
        return flags.select(pl.col(n).is_not_null().alias(f"c{p}") for n, p in zip(wanted, positions))

    return load


# ----------------------------------------------------------------------------------------------------------------
# CSV text
# ----------------------------------------------------------------------------------------------------------------
def _split_lines(text: str) -> pl.Series:
    """Text -> one String per physical line (a line number is a spreadsheet row), without the line break: CRLF,
    LF, or CR alone (Excel for Mac's "CSV (Macintosh)", some old systems)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return pl.Series("line", [text]).str.split("\n").explode()


def _join_quoted_breaks(lines: pl.Series) -> tuple[pl.Series, list[str]]:
    """Physical lines -> rows as Excel opens the CSV: a quoted cell holding a line break (Alt+Enter in a cell, then
    saved as CSV) spans lines, which are joined into one row, numbered as Excel numbers it.

    A line ends inside a quoted cell when the quotes before its end are odd in number (a quote inside a quoted cell
    is doubled, so it never changes that). A file whose quotes never close is left line by line, with a note: a
    stray quote must not swallow the rows after it.
    """
    odd = lines.str.count_matches('"', literal=True) % 2 == 1
    if not odd.any():
        return lines, []
    open_after = odd.cast(pl.UInt32).cum_sum() % 2
    if open_after[-1]:
        first = int(odd.arg_true()[0]) + 1
        return lines, [f"第{first}行起英文双引号不成对，已按每行一条记录读取，请核对该行"]
    starts = open_after.shift(1, fill_value=0) == 0
    frame = pl.DataFrame({"row": starts.cum_sum(), "line": lines})  # row: the Excel row the line belongs to
    rows = frame.group_by("row", maintain_order=True).agg(pl.col("line").str.join("\n"), pl.len().alias("lines"))
    spanning = rows.filter(pl.col("lines") > 1)
    named = "、".join(str(n) for n in spanning["row"].head(5).to_list())
    more = f"等{spanning.height:,}行" if spanning.height > 5 else ""
    note = f"第{named}行{more}的单元格内有换行，已按Excel打开时的样子合为一行（行号按Excel计）"
    return rows["line"], [note]


def _decode_lines(data: bytes) -> tuple[pl.Series, list[str]]:
    """CSV bytes -> its lines as text, and notes: UTF-8 (BOM or not), else GB18030 (a superset of GBK/GB2312),
    UTF-16 by BOM.

    A file mixing UTF-8 and GB18030 lines (two offices' exports pasted together) is decoded line by line, still
    with whole-column operations: lines that are not UTF-8 (or decode to letters no Chinese list holds, U+0100 to
    U+07FF, which is how GBK bytes look when read as UTF-8) are decoded together as GB18030. A line that is neither
    is kept, with "�" for the bytes that could not be read, and named in a note: no line is dropped.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _split_lines(data.decode("utf-16")), []
        except UnicodeDecodeError as exc:
            raise UnreadableFile("文字编码（UTF-16）有误，文件可能已损坏") from exc
    if b"\x00" in data[:4096]:
        encoding = _utf16_without_bom(data)
        if encoding is None:
            raise UnreadableFile(_sniff_binary(data))
        try:
            return _split_lines(data.decode(encoding)), ["文件是UTF-16编码（没有BOM标记），已按UTF-16读取"]
        except UnicodeDecodeError as exc:
            raise UnreadableFile("文字编码（UTF-16）有误，文件可能已损坏") from exc
    data = data.removeprefix(b"\xef\xbb\xbf")
    if b"\r" in data:  # line breaks as LF before the bytes are split by line below (no GBK byte is a CR)
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    try:
        return _split_lines(data.decode("utf-8")), []
    except UnicodeDecodeError:
        pass
    as_utf8 = _split_lines(data.decode("utf-8", errors="replace"))  # "\n" survives replacement: same line count
    not_utf8 = as_utf8.str.contains("\ufffd", literal=True) | as_utf8.str.contains(r"[\x{0100}-\x{07FF}]")
    utf8_chinese = int((~not_utf8 & as_utf8.str.contains(r"[^\x00-\x7F]")).sum())
    if not utf8_chinese:
        try:
            return _split_lines(data.decode("gb18030")), []
        except UnicodeDecodeError:
            pass
    positions = not_utf8.arg_true()
    raw = pl.Series(data.split(b"\n"), dtype=pl.Binary)
    gb = _split_lines(b"\n".join(raw.gather(positions).to_list()).decode("gb18030", errors="replace"))
    if gb.len() != positions.len():  # never guess a line alignment
        raise UnreadableFile("文字编码无法识别（既不是UTF-8也不是GBK/GB18030）")
    lines = as_utf8.clone().scatter(positions, gb)
    notes = []
    if utf8_chinese:
        notes.append(f"文件混用了UTF-8和GBK/GB18030两种文字编码，已逐行识别（{positions.len():,}行按GBK/GB18030读取）")
    unreadable = positions.gather(gb.str.contains("\ufffd", literal=True).arg_true()) + 1
    if unreadable.len():
        named = "、".join(str(row) for row in unreadable.head(10).to_list())
        more = f"等{unreadable.len():,}行" if unreadable.len() > 10 else ""
        notes.append(f"第{named}行{more}的文字编码无法识别，认不出的字显示为“\ufffd”，这些行照常读取，请核对")
    return lines, notes


def _utf16_without_bom(data: bytes) -> str | None:
    """"utf-16-le"/"utf-16-be" for text saved as UTF-16 without its BOM, else None: the zero bytes of the
    ASCII characters (digits, commas, line breaks) all fall on odd (little-endian) or all on even positions."""
    head = data[:4096]
    odd, even = head[1::2].count(0), head[0::2].count(0)
    if len(data) % 2 or not (odd or even) or (odd and even):
        return None
    return "utf-16-le" if odd else "utf-16-be"


def _sniff_separator(lines: pl.Series) -> str:
    """Comma unless the first lines clearly use tab, semicolon or bar."""
    head = [line[:20000] for line in lines.head(30).to_list() if line]
    counts = {sep: max((line.count(sep) for line in head), default=0) for sep in (",", "\t", ";", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def _csv_grid(data: bytes, limits: IntakeLimits) -> _Grid:
    """A CSV as a grid, keeping ragged rows whole and every physical line (line number = spreadsheet row).

    Polars' CSV reader sizes columns from the first line (a one-cell title row) and skips blank lines, which
    would drop fields and shift line numbers; so each line is split with a quote-aware regex instead, still
    vectorised. A quoted cell spanning lines is one row, as in Excel (`_join_quoted_breaks`).
    """
    lines, notes = _decode_lines(data)
    lines, joined = _join_quoted_breaks(lines)
    notes += joined
    if lines.len() > limits.max_rows_per_sheet:
        raise UnreadableFile(f"文件有{lines.len():,}行，超过每表{limits.max_rows_per_sheet:,}行的上限", "file_too_large")
    separator = _sniff_separator(lines)
    sep = re.escape(separator)
    field_pattern = f'{sep}("(?:[^"]|"")*"|[^{sep}]*)'
    element = pl.element().str.slice(1)
    quoted = element.str.starts_with('"') & element.str.ends_with('"') & (element.str.len_chars() >= 2)
    unquoted = element.str.slice(1, element.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
    fields = pl.DataFrame(lines).select(
        (pl.lit(separator) + pl.col("line")).str.extract_all(field_pattern)
        .list.eval(pl.when(quoted).then(unquoted).otherwise(element)).alias("fields")
    )
    width = int(fields["fields"].list.len().max() or 0)
    cells = fields.select(pl.col("fields").list.get(i, null_on_oob=True).alias(f"c{i}") for i in range(width))
    labels = [_column_letter(i) for i in range(width)]
    cells, capped = _cap_cells(cells, limits.max_cell_chars, labels, first_row=1)
    return _Grid(sheet="", cells=_clean_cells(cells), first_row=1, column_labels=labels, notes=notes + capped)


def _parquet_grid(path: Path) -> _Grid:
    """A parquet roster as a grid whose first row is the column names (header_row 0, rows numbered from 1).

    Only text columns are cleaned (`values.cell_text`): a number, date or yes/no written as text has no blank to strip
    and is never empty, and stripping every cell of a 300,000-person roster's 24 columns took 0.19-0.23 CPU-s, its
    eight number columns a third of it (bench/FINDINGS.md, session 22)."""
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:
        raise UnreadableFile("parquet文件无法读取，可能已损坏") from exc
    schema = frame.schema
    frame = frame.with_columns(_integer_text(frame[name]) for name, dtype in schema.items() if dtype.is_integer())
    texts, textual = [], []
    for i, (name, dtype) in enumerate(schema.items()):
        column = pl.col(name)
        if dtype.is_float():
            texts.append(number_text(column.cast(pl.Float64)))
        elif isinstance(dtype, pl.Datetime):
            texts.append(column.dt.strftime("%Y-%m-%d %H:%M:%S").str.replace(_DATE_AT_MIDNIGHT, "${1}"))
        else:
            texts.append(column.cast(pl.String))
        if not (dtype.is_numeric() or dtype in (pl.Date, pl.Time, pl.Boolean) or isinstance(dtype, pl.Datetime)):
            textual.append(f"c{i}")
    values = frame.select(expr.alias(f"c{i}") for i, expr in enumerate(texts))
    values = _clean_cells(values, textual)
    header = _clean_cells(pl.DataFrame({f"c{i}": [name] for i, name in enumerate(frame.columns)}))
    cells = pl.concat([header, values]) if frame.width else pl.DataFrame()
    return _Grid(sheet="", cells=cells, first_row=0, column_labels=[_column_letter(i) for i in range(frame.width)])


def _integer_text(column: pl.Series) -> pl.Series:
    """Integers as the text Polars' cast gives ("-5", "0", null), through Arrow's cast: Polars' own took 0.25 CPU-s
    for the eight number columns of a province county's roster (300,000 rows), Arrow's with the conversion back
    0.07 (bench/FINDINGS.md, session 28). Cast to string views, the layout of Polars' strings: to large strings
    and converted, 88-134 ms for those eight columns, 68-98 as views (session 30)."""
    import pyarrow as pa  # imported by the code location anyway; not by whoever only imports this module
    import pyarrow.compute as pc

    return pl.Series(column.name, pc.cast(column.to_arrow(), pa.string_view()))


def _is_workbook(data: bytes) -> bool:
    """An Excel workbook by its bytes: an OLE file (.xls, or an encrypted .xlsx) or a zip holding xl/workbook.xml."""
    if data.startswith(_CFB_SIGNATURE):
        return True
    if not data.startswith(zipfile.stringFileHeader):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(name.lower() == "xl/workbook.xml" for name in archive.namelist())
    except (zipfile.BadZipFile, ValueError):
        return False


def _looks_like_text(data: bytes) -> bool:
    """True for bytes that may be CSV text under a spreadsheet name (not binary, not an HTML page)."""
    if data.startswith((zipfile.stringFileHeader, _CFB_SIGNATURE)):  # a workbook, however damaged
        return False
    return data[:1] in (b"\xef", b"\xff", b"\xfe") or (b"\x00" not in data[:4096] and b"<" not in data[:64])


def _load_grids(path: Path, limits: IntakeLimits) -> list[_Grid]:
    """Every sheet of one file as grids, or UnreadableFile (an empty or too big file is refused unread)."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableFile(_sniff_binary(b""))
    if size > limits.max_file_bytes:
        raise UnreadableFile(f"文件有{size / _MB:,.1f}MB，超过上限{limits.max_file_mb:g}MB", "file_too_large")
    suffix = path.suffix.lower()
    if suffix in ARCHIVE_SUFFIXES:
        raise UnreadableFile(f"这是压缩包（{path.suffix}），系统不解压；请解压后把其中的名单放到部门文件夹中重新运行")
    if suffix == ".parquet":
        return [_parquet_grid(path)]
    data = path.read_bytes()
    if suffix in (".csv", ""):  # a CSV, or a download that lost its name's suffix
        named = f"文件扩展名是{path.suffix}" if suffix else "文件没有扩展名"
        if _is_workbook(data):
            grids = _excel_grids(data, limits)
            grids[0].notes.insert(0, f"{named}，但内容其实是Excel工作簿，已按Excel读取（建议改正文件名）")
            return grids
        grid = _csv_grid(data, limits)
        if not suffix:
            grid.notes.insert(0, f"{named}，已按CSV文本读取（建议改正文件名）")
        return [grid]
    try:
        return _excel_grids(data, limits)
    except UnreadableFile as refused:
        # Some systems export CSV text under an .xls name; HTML pages stay unreadable (reported, not guessed).
        if refused.code != "file_unreadable" or not _looks_like_text(data):
            raise
        try:
            grid = _csv_grid(data, limits)
        except UnreadableFile as exc:
            if exc.code != "file_unreadable":
                raise
            raise refused from None
        grid.notes.insert(0, f"文件扩展名是{path.suffix}，但内容其实是CSV文本，已按CSV读取（建议用Excel另存为.xlsx）")
        return [grid]


# ----------------------------------------------------------------------------------------------------------------
# Header detection and the sheet table
# ----------------------------------------------------------------------------------------------------------------
def _find_header(rows: list[tuple[int, list[str | None]]], matcher: HeaderMatcher) -> int | None:
    """The grid index of the header: the row naming the most known columns (then most exact names, most cells)."""
    best, best_score = None, (0, 0, 0)
    for index, cells in rows:
        matches = [matcher.match(cell) for cell in cells]
        canonicals = {canonical for canonical, _ in matches if canonical}
        score = (len(canonicals), sum(exact for _, exact in matches), sum(cell is not None for cell in cells))
        if canonicals and score > best_score:
            best, best_score = index, score
    return best


def _looks_like_data(cells: pl.DataFrame) -> bool:
    """True when a sheet without a header still holds records (so it is a problem, not a notes sheet)."""
    if cells.width == 0 or cells.height == 0:
        return False
    filled = pl.sum_horizontal(pl.col(c).is_not_null() for c in cells.columns)
    id_like = pl.any_horizontal(pl.col(c).str.contains(r"\d{15}") for c in cells.columns)
    return bool(cells.select((filled >= 3).any() | id_like.any()).item())


def _complete_header(cells: pl.DataFrame, header_index: int, matcher: HeaderMatcher,
                     ) -> tuple[list[str | None], list[int]]:
    """The header cells, completed from the row just below or above when the header spans two rows; and its rows.

    A two-row header has group cells merged across the columns under them (救助情况 over 金额 and 原因) and cells
    merged down both rows (姓名); calamine leaves covered cells empty, so one row alone misses columns. A neighbour
    completes the header when it names a known column the header row lacks, in a column where the header row is
    empty (or, for the row below, names only a group), has at least two cells and no ID-like number (a data row or
    a one-cell title never qualifies).
    """
    header = list(cells.row(header_index))
    rows = [header_index]
    found = {matcher.match(cell)[0] for cell in header} - {None}
    for neighbour in (header_index + 1, header_index - 1):
        if not 0 <= neighbour < cells.height:
            continue
        row = list(cells.row(neighbour))
        if sum(cell is not None for cell in row) < 2 or any(cell and re.search(r"\d{15}", cell) for cell in row):
            continue
        fills = {}
        for position, cell in enumerate(row):
            canonical = matcher.match(cell)[0]
            group_above = neighbour > header_index and matcher.match(header[position])[0] is None
            open_slot = header[position] is None or group_above
            if canonical and canonical not in found and open_slot:
                fills[position] = cell
                found.add(canonical)
        if fills:  # the neighbour is part of the header: its other words label columns the header row leaves empty
            for position, cell in enumerate(row):
                if position in fills or (header[position] is None and cell is not None):
                    header[position] = cell
            rows.append(neighbour)
    return header, sorted(rows)


def _expected_headers(header_map: dict[str, tuple[str, ...]], required: tuple[str, ...]) -> str:
    """The header words a clerk should use: the required columns' and the name's, with two variants each."""
    parts = []
    for column in dict.fromkeys([*required, "name"]):
        words = header_map.get(column) or ()
        if words:
            others = "".join(f"“{word}”" for word in words[1:3])
            parts.append(f"“{words[0]}”" + (f"（或{others}）" if others else ""))
    return "、".join(parts)


def _total_row(columns: list[str], words: tuple[str, ...]) -> pl.Expr:
    """True when one of the first two non-empty cells starts with 合计/总计/… (total; spaces inside ignored).

    Two cells, because a 序号 (row number) column often runs on into the total row.
    """
    words = tuple(w for w in words if not re.search(r"\s", w))  # a word with a space never matches a squeezed cell
    if not words or not columns:
        return pl.lit(False)
    # "starts with the word once spaces are removed" == "matches the word with spaces allowed before each character"
    pattern = "^(?:" + "|".join("".join(r"\s*" + re.escape(ch) for ch in w) for w in words) + ")"
    # Only two cells per row are tested: the first non-empty one, and the first non-empty one after it.
    first_at = pl.coalesce(pl.when(pl.col(c).is_not_null()).then(pl.lit(i)) for i, c in enumerate(columns))
    first = pl.coalesce(pl.col(c) for c in columns)
    second = pl.coalesce(pl.when(first_at < i).then(pl.col(c)) for i, c in enumerate(columns))
    return (first.str.contains(pattern) | second.str.contains(pattern)).fill_null(False)


def _unique_keys(labels: list[str]) -> list[str]:
    """Raw JSON keys: a repeated header gets "_2", "_3" so no cell is lost."""
    seen: dict[str, int] = {}
    keys = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        keys.append(label if seen[label] == 1 else f"{label}_{seen[label]}")
    return keys


@dataclass
class _SheetResult:
    table: SheetTable | None = None
    problem: FileProblem | None = None
    note: str | None = None


def header_columns(columns: list[str], headers: list[str | None], matcher: HeaderMatcher
                   ) -> tuple[dict[str, tuple[str, bool]], list[str]]:
    """Which of `columns` feeds each canonical column, by its header cell (`headers`, in the same order): canonical
    -> (column, exact). Exact names win over prefix matches, then the first column. Also the header texts that name
    no known column, in order."""
    mapping: dict[str, tuple[str, bool]] = {}
    unmapped: list[str] = []
    for column, text in zip(columns, headers):
        canonical, exact = matcher.match(text)
        if canonical is None:
            if text is not None:
                unmapped.append(text)
        elif canonical not in mapping or (exact and not mapping[canonical][1]):
            mapping[canonical] = (column, exact)
    return mapping, unmapped


def _sheet_table(grid: _Grid, source: str, matcher: HeaderMatcher, header_map: dict[str, tuple[str, ...]],
                 required: tuple[str, ...], total_words: tuple[str, ...]) -> _SheetResult:
    """One grid -> a SheetTable, or the problem or note that replaces it."""
    cells = grid.cells
    where = _where(source, grid.sheet)
    if cells.width == 0:
        return _SheetResult(note=f"{where}是空表，已跳过")
    blank = ~pl.any_horizontal(pl.col(c).is_not_null() for c in cells.columns)
    indexed = cells.with_row_index("_i").with_columns(blank.alias("_blank"))
    head = indexed.filter(~pl.col("_blank")).head(HEADER_SCAN_ROWS)
    candidates = [(row[0], list(row[1:-1])) for row in head.iter_rows()]
    header_index = _find_header(candidates, matcher)
    if header_index is None:
        if _looks_like_data(cells):
            reason = f"{where}：{reject('no_header')}；表头须用这些列名，如{_expected_headers(header_map, required)}"
            return _SheetResult(problem=FileProblem(source, grid.sheet, "no_header", reason))
        return _SheetResult(note=f"{where}没有表头和数据（空白或只有说明文字），已跳过")

    header_cells, header_rows = _complete_header(cells, header_index, matcher)
    title = " ".join(" ".join(c for c in cells_ if c) for i, cells_ in candidates if i < min(header_rows)).strip()
    body = indexed.slice(max(header_rows) + 1)
    filled = body.select(pl.col(cells.columns).is_not_null().any()).row(0)  # one query, not one per column
    has_data = [c for c, any_filled in zip(cells.columns, filled) if any_filled]

    mapping, unmapped = header_columns(cells.columns, header_cells, matcher)
    labels = {column: text if text is not None else f"列{grid.column_labels[position]}"
              for position, (column, text) in enumerate(zip(cells.columns, header_cells))
              if text is not None or column in has_data}

    missing = [name for name in required if name not in mapping]
    if missing:
        words = "、".join((header_map.get(name) or (name,))[0] for name in missing)
        reason = f"{where}：{reject('missing_required_column', column=words)}"
        return _SheetResult(problem=FileProblem(source, grid.sheet, "missing_required_column", reason))

    body = _fix_number_ids(body, grid, mapping)
    kept = body.filter(~pl.col("_blank"))
    last = kept["_i"].max() if kept.height else header_index
    blank_rows = int((body["_blank"] & (body["_i"] < last)).sum())  # Series ops: no query to plan
    canonical_of = {column: canonical for canonical, (column, _) in mapping.items()}
    in_frame = {column: canonical_of.get(column, f"{RAW_ONLY}{position}")
                for position, column in enumerate(cells.columns) if column in labels}
    raw_cells = list(zip(in_frame.values(), _unique_keys([labels[c] for c in in_frame])))
    frame = kept.select(
        *[pl.col(column).alias(canonical) for canonical, (column, _) in mapping.items()],
        (pl.col("_i").cast(pl.Int64) + grid.first_row).alias("row_number"),
        _total_row(cells.columns, total_words).alias("is_total_row"),
        pl.lit(source, pl.String).alias("source_file"),
        pl.lit(grid.sheet, pl.String).alias("sheet"),
        *[pl.col(column).alias(name) for column, name in in_frame.items() if column not in canonical_of],
    )
    table = SheetTable(source_file=source, sheet=grid.sheet, header_row=header_index + grid.first_row, title=title,
                       frame=frame, blank_rows=blank_rows, unmapped_headers=unmapped, raw_cells=raw_cells)
    return _SheetResult(table=table)


def number_text(values: pl.Expr) -> pl.Expr:
    """Float64 -> its digits when the float holds an integer exactly (below 2^53: a 16-digit 户编号 a program wrote
    as a number), else the text Excel shows (`excel_number_text`: 3.21202199001011E+17, whose lost digits validation
    then rejects instead of merging households or persons that differ only there)."""
    exact = (values == values.floor()) & (values.abs() < 2.0**53)
    return pl.when(exact).then(values.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(excel_number_text(values))


def _fix_number_ids(body: pl.DataFrame, grid: _Grid, mapping: dict[str, tuple[str, bool]]) -> pl.DataFrame:
    """ID and household-number cells that were Excel numbers -> `number_text`."""
    columns = [mapping[name][0] for name in FLOAT_SENSITIVE if name in mapping]
    if not columns or grid.number_cells is None or body.height == 0:
        return body
    flags = grid.number_cells([int(c[1:]) for c in columns]).slice(body["_i"][0], body.height)
    fixed = [_number_texts(body[c], flags[c].arg_true()) for c in columns]
    return body.with_columns(column for column in fixed if column is not None)


def _number_texts(cells: pl.Series, rows: pl.Series) -> pl.Series | None:
    """`cells` with the cells at `rows` (Excel numbers) as Excel shows them; None when there are none.

    Only those cells are converted: number_text is a large expression (about 10 ms to plan and run even on a
    few rows), and most files hold no number-typed ID at all.
    """
    if rows.len() == 0:
        return None
    numbers = cells.gather(rows).to_frame("v").select(
        number_text(pl.col("v").cast(pl.Float64, strict=False)).fill_null(pl.col("v"))).to_series()
    return cells.clone().scatter(rows, numbers)


def relative_source(path: Path, data_dir: Path) -> str:
    """The path lineage columns carry: relative to the data dir, posix.

    Taken from the path as found under the data dir, symbolic links left alone: a drop zone whose raw/ (or one of
    its files) links to a shared drive still names `raw/2026-10/...`, not the drive's folders. Only a path not
    under the data dir as written is resolved, and named in full when it is not under it either. A name whose bytes
    are not UTF-8 is read as GB18030 (`fs_text`).
    """
    try:
        return fs_text(Path(os.path.abspath(path)).relative_to(os.path.abspath(data_dir)).as_posix())
    except ValueError:
        pass
    try:
        return fs_text(path.resolve().relative_to(Path(data_dir).resolve()).as_posix())
    except ValueError:
        return fs_text(path.as_posix())


def _where(source: str, sheet: str) -> str:
    """“file”工作表“sheet” (sheet omitted for CSV): how every message names its place."""
    return f"“{source}”" + (f"工作表“{sheet}”" if sheet else "")


def _file_problem(source: str, sheet: str, code: str, detail: str) -> FileProblem:
    """A file or sheet refused for `code` (file_unreadable, file_too_large), with the clerk's detail."""
    return FileProblem(source, sheet, code, f"{_where(source, sheet)}：{reject(code, detail=detail)}")


def _unreadable(source: str, sheet: str, detail: str) -> FileProblem:
    return FileProblem(source, sheet, "file_unreadable", f"“{source}”：{reject('file_unreadable', detail=detail)}")


def read_table_file(path: Path, data_dir: Path, header_map: dict[str, tuple[str, ...]], required: tuple[str, ...],
                    total_words: tuple[str, ...] | None = None, limits: IntakeLimits | None = None,
                    ) -> tuple[list[SheetTable], list[FileProblem], list[str]]:
    """Read every sheet of one xlsx/xls/csv (or parquet): tables with a header, problems, and notes.

    Never raises for a bad file: an unreadable file is one `file_unreadable` problem and one refused by an intake
    limit (`limits`, default `intake_limits()`) one `file_too_large`; a sheet without a header that holds records is
    `no_header`; one lacking a required column is `missing_required_column`; an empty or notes-only sheet is a
    note, and so is anything read in a way the clerk should know (cut cells, mixed encodings, formulas read blank).
    """
    source = relative_source(Path(path), data_dir)
    words = config.registry().total_row_words if total_words is None else tuple(total_words)
    try:
        grids = _load_grids(Path(path), limits or intake_limits())
    except UnreadableFile as exc:
        return [], [_file_problem(source, "", exc.code, str(exc))], []
    except Exception as exc:  # anything else the readers raise still means "cannot open"
        return [], [_unreadable(source, "", f"读取出错（{type(exc).__name__}）")], []
    matcher = HeaderMatcher(header_map)
    tables, problems, notes = [], [], []
    summaries: list[tuple[FileProblem, str]] = []  # sheets lacking the ID column and holding no ID: summary tables?
    for grid in grids:
        notes.extend(f"{_where(source, grid.sheet)}：{detail}" for detail in grid.notes)
        if grid.problem is not None:
            problems.append(_file_problem(source, grid.sheet, *grid.problem))
            continue
        try:
            result = _sheet_table(grid, source, matcher, header_map, tuple(required), words)
        except Exception as exc:  # a sheet that breaks the reader is reported, the other sheets still count
            detail = f"工作表“{grid.sheet}”读取出错（{type(exc).__name__}）"
            result = _SheetResult(problem=_unreadable(source, grid.sheet, detail))
        if grid.xml_notes is not None:  # asked after the table, so one XML scan also found the ID number cells
            notes.extend(f"{_where(source, grid.sheet)}：{detail}" for detail in grid.xml_notes())
        if result.table is not None:
            tables.append(result.table)
        if result.problem is not None and result.problem.reason_code == "missing_required_column" \
                and not _holds_ids(grid.cells):
            summaries.append((result.problem, f"{_where(source, grid.sheet)}没有身份证号码，是汇总或说明表，未作为名单读取"))
        elif result.problem is not None:
            problems.append(result.problem)
        if result.note is not None:
            notes.append(result.note)
    # Beside a list, a sheet of counts per township (汇总) is no list a column is missing from; alone, it is
    for problem, note in summaries:
        if tables:
            notes.append(note)
        else:
            problems.append(problem)
    return tables, problems, notes


def _holds_ids(cells: pl.DataFrame) -> bool:
    """Whether any cell holds a valid resident ID (fangpin.ids' rule, as validation judges a list's IDs)."""
    if not cells.width:
        return False
    return bool(cells.select(pl.any_horizontal(ids.id_problem(pl.col(c)).is_null() for c in cells.columns).any())
                .item())


# ----------------------------------------------------------------------------------------------------------------
# Which list a sheet holds
# ----------------------------------------------------------------------------------------------------------------
def recognise_list(specs: list[ListSpec], texts: tuple[str, ...]) -> tuple[ListSpec | None, list[ListSpec]]:
    """(the list, candidates) from texts tried in order: file name, sheet name, title.

    At each level one match decides; several narrow the candidates for the next level; none moves on.
    Returns (None, []) when nothing matched, (None, several) when still ambiguous.
    """
    candidates = list(specs)
    narrowed = False
    for text in texts:
        if not text:
            continue
        hits = [spec for spec in candidates if spec.matches(text)]
        if len(hits) == 1:
            return hits[0], hits
        if hits:
            candidates, narrowed = hits, True
    return None, (candidates if narrowed else [])


def _keywords(specs: list[ListSpec]) -> str:
    words: list[str] = []
    for spec in specs:
        words.extend(w for w in spec.keywords if w not in words)
    return "、".join(words)


# ----------------------------------------------------------------------------------------------------------------
# Which month a file says it is about
# ----------------------------------------------------------------------------------------------------------------
_NOT_A_RANGE = r"(?!\s*份?\s*[-~～—至到]\s*\d)"  # 2026年1-9月, 1至9月: a range names no single month
_NOT_A_DATE = r"(?!\s*\d{1,2}\s*[日号])"  # 2026年11月5日: a fill-in date
_YEAR_MONTH = re.compile(
    r"(?<!\d)(20\d{2})\s*(?:年\s*(\d{1,2})\s*月" + _NOT_A_DATE
    + r"|[-_.](\d{1,2})(?!\d|[-_.]\d)|(0[1-9]|1[0-2])(?!\d))" + _NOT_A_RANGE)
# 9月 alone; not the end of a range (1-9月, 1至9月): a dash counts as a range only after a digit (民政局-9月 is 9月)
_MONTH_ONLY = re.compile(r"(?<![\d年~～至到/._])(?<!\d-)(?<!\d—)(\d{1,2})\s*月" + _NOT_A_DATE + _NOT_A_RANGE)
# A month named as when the file was filled in or sent (填报时间：2026年11月, 11月报送) says nothing of the list's month.
_SENT_BEFORE = re.compile(r"(?:(?:填报|报送|上报|制表|打印|导出)(?:时间|日期)?|截至|截止)[\s:：]*$")
_SENT_AFTER = re.compile(r"^\s*份?\s*(?:报送|上报|填报|制表|打印|导出)")


def named_months(text: str) -> list[tuple[int | None, int]]:
    """The months `text` (a file name, sheet name or title) names as what its list is about: (year or None, month).

    Read: 2026年9月, 2026-09, 2026.9, 2026_09, 202609, 9月, 9月份. Not read: full dates (2026年11月5日, 2026.11.05,
    20261105), ranges (2026年1-9月, 1至9月) and months named as when the file was filled in or sent.
    """
    months: list[tuple[int | None, int]] = []

    def keep(match: re.Match, year: int | None, month: str) -> None:
        before, after = text[max(0, match.start() - 8):match.start()], text[match.end():]
        sent = _SENT_BEFORE.search(before) or _SENT_AFTER.match(after)
        if not sent and 1 <= int(month) <= 12:
            months.append((year, int(month)))

    rest = text
    for match in _YEAR_MONTH.finditer(text):
        keep(match, int(match.group(1)), next(g for g in match.groups()[1:] if g))
        rest = rest[:match.start()] + " " * (match.end() - match.start()) + rest[match.end():]
    for match in _MONTH_ONLY.finditer(rest):
        keep(match, None, match.group(1))
    return months


def _month_text(month: str) -> str:
    """"2026-10" -> "2026年10月", as a clerk writes it."""
    return f"{int(month[:4])}年{int(month[5:])}月"


def wrong_month(month: str, texts: tuple[str, ...]) -> str | None:
    """The other month `texts` name ("2026年9月"), or None when they name `month` or no month at all.

    Any mention of `month` wins (a file of October may also say when it was sent); a month without a year is
    compared by its number only.
    """
    year, number = int(month[:4]), int(month[5:])
    named = [found for text in texts if text for found in named_months(text)]
    if not named or any(m == number and y in (None, year) for y, m in named):
        return None
    other_year, other = named[0]
    return f"{other_year}年{other}月" if other_year else f"{other}月"


# ----------------------------------------------------------------------------------------------------------------
# The month's drop zone
# ----------------------------------------------------------------------------------------------------------------
def housekeeping_file(path: Path) -> str | None:
    """"lock_file" for an Excel lock file (~$…), "system_file" for what an operating system or office suite leaves
    in any folder (.DS_Store, Thumbs.db, ._x, __MACOSX/): never anybody's list or return, so ignored; else None."""
    name = path.name
    if name.startswith("~$"):
        return "lock_file"
    if name.startswith(".") or name.lower() in SYSTEM_FILES or "__MACOSX" in path.parts:
        return "system_file"
    return None


def _ignore_code(path: Path, suffixes: frozenset[str]) -> str | None:
    """Why a file is not read at all: a lock or system file (`housekeeping_file`), or a document that is no
    spreadsheet (.txt, .docx, .pdf). Archives and names without a suffix are read: the reader says what they are (a
    .zip is refused as one, a workbook is read)."""
    code = housekeeping_file(path)
    suffix = path.suffix.lower()
    if code is None and suffix not in suffixes and suffix not in ARCHIVE_SUFFIXES and suffix != "":
        return "not_spreadsheet"
    return code


def walk_folder(top: Path) -> tuple[list[Path], list[Path]]:
    """Every regular file at or below `top`, and every entry that could not be opened (`unreachable_detail` says
    why), each in path order.

    Links to folders (a shared drive linked in) are followed, each real folder once, so a link back up cannot loop.
    A folder that cannot be listed, a link whose target is gone and anything that is no regular file are named,
    never passed over (`Path.rglob` skips all three without a word).
    """
    files: list[Path] = []
    unreachable: list[Path] = []
    if not top.is_dir():
        (files if top.is_file() else unreachable).append(top)
        return files, unreachable
    seen: set[str] = set()
    for root, folders, names in os.walk(top, onerror=lambda error: unreachable.append(Path(error.filename)),
                                        followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        for name in names:  # os.walk lists a link to a folder among the folders, a broken link among the names
            path = Path(root) / name
            (files if path.is_file() else unreachable).append(path)
    return sorted(files, key=Path.as_posix), sorted(unreachable, key=Path.as_posix)


def unreachable_detail(path: Path) -> str:
    """Why `walk_folder` could not open this entry, in the clerk's words."""
    if path.is_dir():
        try:
            os.scandir(path).close()
        except OSError as error:
            return f"文件夹无法打开，其中的文件未读取：{os_error_words(error)}"
        return "文件夹无法打开，其中的文件未读取"
    if path.is_symlink() and not path.exists():
        return "是一个链接，但它指向的文件或文件夹不存在（共享盘未连接，或原文件已被移走），未读取"
    return "不是普通文件（如设备或管道），未读取"


def _received(path: Path, data_dir: Path, department: str | None, folder: str, sha: str | None, status: str,
              note: str | None = None, duplicate_of: str | None = None, lists: list[str] | None = None) -> ReceivedFile:
    try:
        stat = path.stat()
        size, modified = stat.st_size, datetime.fromtimestamp(stat.st_mtime)
    except OSError:  # a broken link, or a folder that cannot be opened: recorded without size and time
        size, modified = None, None
    return ReceivedFile(
        source_file=relative_source(path, data_dir), department=department, folder=fs_text(folder), sha256=sha,
        size_bytes=size, modified_at=modified, status=status, note=note, duplicate_of=duplicate_of,
        lists=list(lists or []),
    )


class _Intake:
    """Per-month bookkeeping shared by scan_month and read_roster: ignore, de-duplicate, refuse what cannot be
    opened, record each file, so that every entry found is one row of raw.received_files."""

    def __init__(self, data_dir: Path, suffixes: frozenset[str], reg: Registry, list_key: str | None = None):
        self.data_dir, self.suffixes, self.reg, self.list_key = Path(data_dir), suffixes, reg, list_key
        self.files: list[ReceivedFile] = []
        self.problems: list[FileProblem] = []  # files and folders that could not be opened
        self.seen: dict[str, str] = {}  # sha256 -> source_file of its first copy

    def admit(self, path: Path, department: str | None, folder: str) -> str | None:
        """The file's sha256 when it should be read; otherwise records it as ignored, duplicate or refused (it
        cannot be opened) and returns None."""
        source = relative_source(path, self.data_dir)
        code = _ignore_code(path, self.suffixes)
        try:
            sha = sha256_of(path)
        except OSError as error:
            if not code:  # a lock file another user's Excel holds may be unreadable: ignored all the same
                self.refuse(path, department, folder, os_error_words(error))
                return None
            sha = None
        if code:
            self.files.append(_received(path, self.data_dir, department, folder, sha, "ignored", ignored(code)))
            return None
        if sha in self.seen:
            first = self.seen[sha]
            self.files.append(_received(path, self.data_dir, department, folder, sha, "duplicate",
                                        ignored("duplicate_file", other=first), duplicate_of=first))
            return None
        self.seen[sha] = source
        return sha

    def refuse(self, path: Path, department: str | None, folder: str, detail: str) -> None:
        """A file or folder that could not be opened or read: one quarantine entry (counted against the list its
        name names) and one received file."""
        problem = _unreadable(relative_source(path, self.data_dir), "", detail)
        problem.list_key = self.list_key or _named_list(self.reg, department, path)
        self.problems.append(problem)
        self.files.append(_received(path, self.data_dir, department, folder, None, "quarantined", problem.reason))


def _status(tables: int, problems: int) -> str:
    if tables:
        return "read"
    return "quarantined" if problems else "ignored"


def _file_note(notes: list[str], problems: list[FileProblem]) -> str | None:
    """raw.received_files.note: what the clerk should know about the file, then why nothing of it was read."""
    return "；".join([*notes, *(p.reason for p in problems)]) or None


def _named_list(reg: Registry, department: str | None, path: Path) -> str | None:
    """The list a file's name names among its department's lists (a file refused unread still counts against it)."""
    spec, _ = recognise_list(reg.lists_of(department), (fs_text(path.stem),)) if department else (None, [])
    return spec.key if spec else None


def read_error_detail(error: Exception) -> str:
    """What the clerk reads for a file whose reading failed in a way no check foresaw: the system's words for an
    operating-system error, else the error itself (for whoever maintains fangpin), and what to do."""
    if isinstance(error, OSError):
        return os_error_words(error)
    return f"读取时出错，请把此文件转交系统维护人员（{type(error).__name__}: {error}）"


def scan_month(data_dir: Path, month: str, registry: Registry | None = None,
               limits: IntakeLimits | None = None) -> MonthScan:
    """Every department folder under data_dir/raw/<month>/ except roster/ and feedback/, read and recognised.

    Each file is bounded by `limits` (default `intake_limits()`); a list naming another month is not this month's.
    Every entry found is one raw.received_files row: a file or folder that cannot be opened, and a file whose reading
    fails in a way no check foresaw, are quarantined on their own while the rest of the month is read.
    """
    reg = registry or config.registry()
    data_dir = Path(data_dir)
    month_dir = data_dir / "raw" / month
    intake = _Intake(data_dir, SPREADSHEET_SUFFIXES, reg)
    tables: dict[str, list[SheetTable]] = {}
    problems: list[FileProblem] = []
    cache = readcache.ReadCache(data_dir, month, "lists")  # re-reads only files whose content is new
    if not month_dir.is_dir():
        cache.prune()
        return MonthScan([], tables, [])
    paths: list[tuple[Path, str]] = []
    departments: dict[str, str | None] = {"": None}  # folder -> its department (a loose file is in none)
    for entry in sorted(month_dir.iterdir(), key=lambda p: p.name):
        if entry.name in NOT_DEPARTMENTS and entry.is_dir():
            continue
        folder = entry.name if not entry.is_file() else ""
        departments.setdefault(folder, reg.department_for_folder(fs_text(folder)))
        files, unreachable = walk_folder(entry)
        paths.extend((p, folder) for p in files)
        for path in unreachable:
            intake.refuse(path, departments[folder], folder, unreachable_detail(path))
    for path, folder in sorted(paths, key=lambda item: item[0].as_posix()):
        department = departments[folder]
        sha = intake.admit(path, department, folder)
        if sha is None:
            continue
        source = relative_source(path, data_dir)
        if department is None:
            reason = f"“{source}”：{reject('unknown_department', folder=fs_text(folder) or month)}"
            problems.append(FileProblem(source, "", "unknown_department", reason))
            intake.files.append(_received(path, data_dir, None, folder, sha, "quarantined", reason))
            continue
        subfolders = tuple(fs_text(part) for part in (folder, *path.relative_to(month_dir / folder).parent.parts))
        try:
            found, file_problems, notes = _read_department_file(path, data_dir, reg, department, month, limits,
                                                                cache=cache, sha=sha, subfolders=subfolders)
        except Exception as error:  # noqa: BLE001 - one file, one quarantine entry; the month goes on
            intake.refuse(path, department, folder, read_error_detail(error))
            continue
        problems.extend(file_problems)
        for key, table in found:
            tables.setdefault(key, []).append(table)
        lists = list(dict.fromkeys(key for key, _ in found))
        note = _file_note(notes, [] if found else file_problems)
        intake.files.append(_received(path, data_dir, department, folder, sha, _status(len(found), len(file_problems)),
                                      note, lists=lists))
    problems.extend(intake.problems)
    cache.prune_when_written()
    return MonthScan(sorted(intake.files, key=lambda f: f.source_file), tables, problems)


def _read_department_file(path: Path, data_dir: Path, reg: Registry, department: str, month: str | None = None,
                          limits: IntakeLimits | None = None, cache: readcache.ReadCache | None = None,
                          sha: str | None = None, subfolders: tuple[str, ...] = (),
                          ) -> tuple[list[tuple[str, SheetTable]], list[FileProblem], list[str]]:
    """Read one department file and recognise each sheet among that department's lists.

    With `month`, a sheet whose file name, sheet name, title or folder (`subfolders`: the department's and those
    below it, `民政局-9月/`, `民政局/2026年9月/`) names another month is `file_wrong_month` (its rows are not this
    month's); when every sheet does, the whole file is one problem.
    """
    specs = reg.lists_of(department)
    how = (reg.list_headers, reg.list_required, reg.total_row_words, limits)
    sheet_tables, problems, notes = (cache.read(path, sha, *how) if cache and sha else
                                     read_table_file(path, data_dir, *how))
    stem = fs_text(Path(path).stem)
    for problem in problems:  # a list named by file or sheet still gets its problem counted against it
        spec, _ = recognise_list(specs, (stem, problem.sheet))
        problem.list_key = spec.key if spec else None
    wrong = {id(table): other for table in sheet_tables
             if month and (other := wrong_month(month, (*subfolders, stem, table.sheet, table.title)))}
    if sheet_tables and len(wrong) == len(sheet_tables):  # the whole file is another month's
        keys = {spec.key for table in sheet_tables
                if (spec := recognise_list(specs, (stem, table.sheet, table.title))[0])}
        source = sheet_tables[0].source_file
        months = {"found": wrong[id(sheet_tables[0])], "expected": _month_text(month)}
        reason = f"“{source}”：{reject('file_wrong_month', **months)}"
        problems.append(FileProblem(source, "", "file_wrong_month", reason, keys.pop() if len(keys) == 1 else None))
        return [], problems, notes
    found: list[tuple[str, SheetTable]] = []
    for table in sheet_tables:
        spec, candidates = recognise_list(specs, (stem, table.sheet, table.title))
        where = _where(table.source_file, table.sheet)
        if id(table) in wrong:
            problems.append(_wrong_month_problem(table, wrong[id(table)], month, spec.key if spec else None))
        elif spec is not None:
            found.append((spec.key, table))
        elif table.frame.height == 0:
            notes.append(f"{where}只有表头、没有数据，且无法识别是哪张名单，已跳过")
        elif candidates:
            lists = "、".join(f"{c.title}" for c in candidates)
            problems.append(FileProblem(table.source_file, table.sheet, "file_ambiguous",
                                        f"{where}：{reject('file_ambiguous', lists=lists)}"))
        else:
            problems.append(FileProblem(table.source_file, table.sheet, "file_unrecognised",
                                        f"{where}：{reject('file_unrecognised', keywords=_keywords(specs))}"))
    return found, problems, notes


def _wrong_month_problem(table: SheetTable, other: str, month: str, list_key: str | None) -> FileProblem:
    """A sheet whose file name, sheet name or title names `other` month, not `month`: not this month's."""
    months = {"found": other, "expected": _month_text(month)}
    reason = f"{_where(table.source_file, table.sheet)}：{reject('file_wrong_month', **months)}"
    return FileProblem(table.source_file, table.sheet, "file_wrong_month", reason, list_key)


# A county roster comes as several files (Excel's 1,048,576-row limit): two are parsed at once, in threads (the
# parse is Rust, outside the GIL; threads, not processes, as Polars must not be forked). Two: memory stays bounded.
ROSTER_READ_THREADS = 2


RosterFiles = tuple[list[SheetTable], list[FileProblem], list[ReceivedFile]]  # what read_roster returns


def read_roster(data_dir: Path, month: str, registry: Registry | None = None, limits: IntakeLimits | None = None,
                ) -> RosterFiles:
    """data_dir/raw/<month>/roster/*: the 花名册 (household roster), in one or several xlsx/xls files or sheets,
    csv or parquet, as roster tables.

    Mapped with registry.roster_headers; a sheet lacking registry.roster_required is a problem (list_key "roster").
    """
    reg = registry or config.registry()
    data_dir = Path(data_dir)
    folder = data_dir / "raw" / month / "roster"
    intake = _Intake(data_dir, ROSTER_SUFFIXES, reg, list_key="roster")
    tables: list[SheetTable] = []
    problems: list[FileProblem] = []
    cache = readcache.ReadCache(data_dir, month, "roster")  # re-reads only files whose content is new
    if not folder.is_dir():
        cache.prune()
        return tables, problems, intake.files
    pending = []  # (where its entry goes in intake.files, path, sha): skipped files keep their place in the record
    files, unreachable = walk_folder(folder)
    for path in unreachable:
        intake.refuse(path, None, "roster", unreachable_detail(path))
    for path in files:
        sha = intake.admit(path, None, "roster")
        if sha is not None:
            pending.append((len(intake.files), path, sha))

    def read(item: tuple[int, Path, str]) -> tuple[list[SheetTable], list[FileProblem], list[str]]:
        try:
            return cache.read(item[1], item[2], reg.roster_headers, reg.roster_required, reg.total_row_words, limits)
        except Exception as error:  # noqa: BLE001 - one file, one quarantine entry; the other files are read
            return [], [_unreadable(relative_source(item[1], data_dir), "", read_error_detail(error))], []

    with ThreadPoolExecutor(max_workers=ROSTER_READ_THREADS) as pool:  # calamine releases the GIL while parsing
        results = list(pool.map(read, pending))
    received = []
    for (slot, path, sha), (read_tables, file_problems, notes) in zip(pending, results):
        for problem in file_problems:
            problem.list_key = "roster"
        found = []
        for table in read_tables:  # September's roster left in October's folder is not October's
            other = wrong_month(month, (fs_text(path.stem), table.sheet, table.title))
            if other:
                file_problems.append(_wrong_month_problem(table, other, month, "roster"))
            else:
                found.append(table)
        tables.extend(found)
        problems.extend(file_problems)
        note = _file_note(notes, [] if found else file_problems)
        received.append((slot, _received(path, data_dir, None, "roster", sha, _status(len(found), len(file_problems)),
                                         note, lists=["roster"] if found else [])))
    for slot, entry in reversed(received):
        intake.files.insert(slot, entry)
    problems.extend(intake.problems)
    cache.prune_when_written()
    return tables, problems, intake.files
