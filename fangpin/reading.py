"""Reading what departments really send: every sheet of every file in the month's drop zone, as text.

Departments send .xlsx, .xls and .csv (UTF-8 or GB18030, with or without BOM) with title rows above the header,
total rows, blank rows, several sheets, header words that vary, Excel lock files and stray documents. This module
turns each sheet into a `SheetTable` (one String column per canonical column found, plus lineage), recognises which
department list (名单) it holds, and reports everything it could not read as a `FileProblem` (a quarantine entry)
instead of raising: one bad file must never stop the month.

Excel is read with fastexcel (calamine); CSV is split with Polars string expressions (no per-row Python).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import fastexcel
import polars as pl

from fangpin import config
from fangpin.config import ListSpec, Registry
from schemas.reasons import ignored, reject

# .et is the WPS Office spreadsheet (common in county offices); calamine reads it like .xls.
SPREADSHEET_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xlsb", ".xls", ".et", ".ods", ".csv"})
ROSTER_SUFFIXES = SPREADSHEET_SUFFIXES | {".parquet"}
NOT_DEPARTMENTS = frozenset({"roster", "feedback"})  # drop-zone folders that hold no department list
HEADER_SCAN_ROWS = 12  # the header is looked for among the first non-blank rows of a sheet
# "身份证号码18位" (ID number, 18 digits) maps to 身份证号码; a longer tail ("…请填写18位") is a sentence, not a header.
PREFIX_TAIL_MAX = 4
# Columns whose Excel *number* cells must show what Excel shows (15 significant digits), so that validation can
# reject an ID that went through a float instead of silently accepting digits that were never typed.
FLOAT_SENSITIVE = ("id_number", "disability_cert")
_DATE_AT_MIDNIGHT = r"^(\d{4}-\d{2}-\d{2}) 00:00:00$"


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
    frame: pl.DataFrame  # canonical columns + row_number, is_total_row, raw, source_file, sheet
    blank_rows: int  # blank rows skipped between the header and the last data row
    unmapped_headers: list[str] = field(default_factory=list)


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
        for variant, canonical in self.prefixes:
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


class UnreadableFile(Exception):
    """The file cannot be opened as a spreadsheet; the message is the clerk's short detail (Chinese)."""


def _column_letter(index: int) -> str:
    """0 -> A, 26 -> AA: how the clerk names a column."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _clean_cells(cells: pl.DataFrame) -> pl.DataFrame:
    """Strip each cell; whitespace-only cells become null (they are blank to a clerk)."""
    return cells.with_columns(
        pl.col(c).cast(pl.String).str.strip_chars().replace("", None) for c in cells.columns
    )


def _sniff_binary(data: bytes) -> str:
    """A short Chinese detail for bytes calamine refused, naming the usual culprits."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not data:
        return "文件是空的（0字节）"
    if data.startswith(b"\xd0\xcf\x11\xe0") and "EncryptedPackage".encode("utf-16-le") in data:
        return "文件设置了打开密码（已加密），请取消密码后重新报送"
    if head.startswith((b"<html", b"<!doctype", b"<table", b"<?xml")) or b"<table" in head:
        return "文件实际是网页（HTML）格式，不是真正的Excel文件；请用Excel打开后另存为.xlsx再报送"
    if data.startswith(b"PK"):
        return "Excel文件已损坏（压缩包不完整），请重新导出后报送"
    return "无法识别的文件格式，可能已损坏"


def _excel_grids(data: bytes) -> list[_Grid]:
    """Every sheet of an Excel workbook (format sniffed from the bytes, so a misnamed .xls still reads)."""
    try:
        reader = fastexcel.read_excel(data)
    except Exception as exc:  # calamine raises its own error types; all mean "cannot open"
        raise UnreadableFile(_sniff_binary(data)) from exc
    grids = []
    for index, name in enumerate(reader.sheet_names):
        sheet = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string")
        columns = sheet.available_columns()
        cells = sheet.to_polars()
        cells = cells.rename({info.name: f"c{position}" for position, info in enumerate(columns)})
        cells = _clean_cells(cells).with_columns(pl.col(pl.String).str.replace(_DATE_AT_MIDNIGHT, "${1}"))
        grids.append(_Grid(
            sheet=name, cells=cells, first_row=1,
            column_labels=[_column_letter(info.absolute_index) for info in columns],
            number_cells=_number_cell_loader(reader, index, [info.name for info in columns], cells.height),
        ))
    return grids


def _number_cell_loader(reader: fastexcel.ExcelReader, index: int, names: list[str], height: int):
    """A function telling, for some columns of a sheet, which cells were Excel numbers (not text).

    fastexcel renders every cell as text when asked for strings, so the cell type is recovered by loading those
    columns again as booleans: calamine converts number (and boolean) cells and leaves text cells null.
    """

    def load(positions: list[int]) -> pl.DataFrame:
        wanted = [names[p] for p in positions]
        sheet = reader.load_sheet(index, header_row=None, skip_rows=0, use_columns=wanted,
                                  dtypes={name: "boolean" for name in wanted})
        flags = sheet.to_polars()
        if flags.height != height:  # never guess a row alignment
            return pl.DataFrame({f"c{p}": [False] * height for p in positions})
        return flags.select(pl.col(n).is_not_null().alias(f"c{p}") for n, p in zip(wanted, positions))

    return load


def _decode_text(data: bytes) -> str:
    """CSV bytes -> text: UTF-8 (BOM or not) first, then GB18030 (a superset of GBK/GB2312), UTF-16 by BOM."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:4096]:
        raise UnreadableFile(_sniff_binary(data))
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableFile("文字编码无法识别（既不是UTF-8也不是GBK/GB18030）")


def _sniff_separator(text: str) -> str:
    """Comma unless the first lines clearly use tab, semicolon or bar."""
    head = text[:20000].splitlines()[:30]
    counts = {sep: max((line.count(sep) for line in head), default=0) for sep in (",", "\t", ";", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def _csv_grid(data: bytes) -> _Grid:
    """A CSV as a grid, keeping ragged rows whole and every physical line (line number = spreadsheet row).

    Polars' CSV reader sizes columns from the first line (a one-cell title row) and skips blank lines, which
    would drop fields and shift line numbers; so each line is split with a quote-aware regex instead, still
    vectorised. A quoted field spanning lines is split at the line break (rare in department lists).
    """
    text = _decode_text(data)
    separator = _sniff_separator(text)
    sep = re.escape(separator)
    field_pattern = f'{sep}("(?:[^"]|"")*"|[^{sep}]*)'
    lines = pl.Series("line", [text]).str.split("\n").explode().str.strip_suffix("\r")
    element = pl.element().str.slice(1)
    quoted = element.str.starts_with('"') & element.str.ends_with('"') & (element.str.len_chars() >= 2)
    unquoted = element.str.slice(1, element.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
    fields = pl.DataFrame(lines).select(
        (pl.lit(separator) + pl.col("line")).str.extract_all(field_pattern)
        .list.eval(pl.when(quoted).then(unquoted).otherwise(element)).alias("fields")
    )
    width = int(fields["fields"].list.len().max() or 0)
    cells = fields.select(pl.col("fields").list.get(i, null_on_oob=True).alias(f"c{i}") for i in range(width))
    return _Grid(sheet="", cells=_clean_cells(cells), first_row=1,
                 column_labels=[_column_letter(i) for i in range(width)])


def _parquet_grid(path: Path) -> _Grid:
    """A parquet roster as a grid whose first row is the column names (header_row 0, rows numbered from 1)."""
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:
        raise UnreadableFile("parquet文件无法读取，可能已损坏") from exc
    texts = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if dtype.is_float():
            texts.append(excel_number_text(column.cast(pl.Float64)))
        elif isinstance(dtype, pl.Datetime):
            texts.append(column.dt.strftime("%Y-%m-%d %H:%M:%S").str.replace(_DATE_AT_MIDNIGHT, "${1}"))
        else:
            texts.append(column.cast(pl.String))
    values = frame.select(expr.alias(f"c{i}") for i, expr in enumerate(texts))
    header = pl.DataFrame({f"c{i}": [name] for i, name in enumerate(frame.columns)})
    cells = pl.concat([header, values]) if frame.width else pl.DataFrame()
    return _Grid(sheet="", cells=_clean_cells(cells), first_row=0,
                 column_labels=[_column_letter(i) for i in range(frame.width)])


def _load_grids(path: Path) -> list[_Grid]:
    """Every sheet of one file as grids, or UnreadableFile."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return [_parquet_grid(path)]
    data = path.read_bytes()
    if suffix == ".csv":
        return [_csv_grid(data)]
    try:
        return _excel_grids(data)
    except UnreadableFile:
        # Some systems export CSV text under an .xls name; HTML pages stay unreadable (reported, not guessed).
        if data[:1] in (b"\xef", b"\xff", b"\xfe") or (data and b"\x00" not in data[:4096] and b"<" not in data[:64]):
            try:
                return [_csv_grid(data)]
            except UnreadableFile:
                pass
        raise


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


def _total_row(columns: list[str], words: tuple[str, ...]) -> pl.Expr:
    """True when one of the first two non-empty cells starts with 合计/总计/… (total; spaces inside ignored).

    Two cells, because a 序号 (row number) column often runs on into the total row.
    """
    if not words or not columns:
        return pl.lit(False)
    pattern = "^(?:" + "|".join(re.escape(w) for w in words) + ")"
    return (
        pl.concat_list(pl.col(c) for c in columns).list.drop_nulls().list.head(2)
        .list.eval(pl.element().str.replace_all(r"\s", "").str.contains(pattern)).list.any()
        .fill_null(False)
    )


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


def _sheet_table(grid: _Grid, source: str, matcher: HeaderMatcher, header_map: dict[str, tuple[str, ...]],
                 required: tuple[str, ...], total_words: tuple[str, ...]) -> _SheetResult:
    """One grid -> a SheetTable, or the problem or note that replaces it."""
    cells = grid.cells
    where = f"“{source}”" + (f"工作表“{grid.sheet}”" if grid.sheet else "")
    if cells.width == 0:
        return _SheetResult(note=f"{where}是空表，已跳过")
    blank = ~pl.any_horizontal(pl.col(c).is_not_null() for c in cells.columns)
    indexed = cells.with_row_index("_i").with_columns(blank.alias("_blank"))
    head = indexed.filter(~pl.col("_blank")).head(HEADER_SCAN_ROWS)
    candidates = [(row[0], list(row[1:-1])) for row in head.iter_rows()]
    header_index = _find_header(candidates, matcher)
    if header_index is None:
        if _looks_like_data(cells):
            reason = f"{where}：{reject('no_header')}"
            return _SheetResult(problem=FileProblem(source, grid.sheet, "no_header", reason))
        return _SheetResult(note=f"{where}没有表头和数据（空白或只有说明文字），已跳过")

    header_cells = list(cells.row(header_index))
    title = " ".join(" ".join(c for c in cells_ if c) for i, cells_ in candidates if i < header_index).strip()
    body = indexed.slice(header_index + 1)
    has_data = [c for c in cells.columns if body.select(pl.col(c).is_not_null().any()).item()]

    # Which grid column feeds each canonical column: exact names win over prefix matches, then the first column.
    mapping: dict[str, tuple[str, bool]] = {}
    unmapped: list[str] = []
    labels: dict[str, str] = {}
    for position, column in enumerate(cells.columns):
        text = header_cells[position]
        if text is None and column not in has_data:
            continue
        labels[column] = text if text is not None else f"列{grid.column_labels[position]}"
        canonical, exact = matcher.match(text)
        if canonical is None:
            if text is not None:
                unmapped.append(text)
        elif canonical not in mapping or (exact and not mapping[canonical][1]):
            mapping[canonical] = (column, exact)

    missing = [name for name in required if name not in mapping]
    if missing:
        words = "、".join((header_map.get(name) or (name,))[0] for name in missing)
        reason = f"{where}：{reject('missing_required_column', column=words)}"
        return _SheetResult(problem=FileProblem(source, grid.sheet, "missing_required_column", reason))

    body = _fix_number_ids(body, grid, mapping)
    kept = body.filter(~pl.col("_blank"))
    last = kept["_i"].max() if kept.height else header_index
    blank_rows = body.filter(pl.col("_blank") & (pl.col("_i") < last)).height
    raw_columns = list(labels)
    raw_keys = _unique_keys([labels[c] for c in raw_columns])
    raw = (
        pl.struct(pl.col(c).alias(k) for c, k in zip(raw_columns, raw_keys)).struct.json_encode()
        if raw_columns else pl.lit("{}")
    )
    frame = kept.select(
        *[pl.col(column).alias(canonical) for canonical, (column, _) in mapping.items()],
        (pl.col("_i").cast(pl.Int64) + grid.first_row).alias("row_number"),
        _total_row(cells.columns, total_words).alias("is_total_row"),
        raw.alias("raw"),
        pl.lit(source, pl.String).alias("source_file"),
        pl.lit(grid.sheet, pl.String).alias("sheet"),
    )
    table = SheetTable(source_file=source, sheet=grid.sheet, header_row=header_index + grid.first_row, title=title,
                       frame=frame, blank_rows=blank_rows, unmapped_headers=unmapped)
    return _SheetResult(table=table)


def _fix_number_ids(body: pl.DataFrame, grid: _Grid, mapping: dict[str, tuple[str, bool]]) -> pl.DataFrame:
    """ID cells that were Excel numbers -> the 15-significant-digit text Excel shows (e.g. 3.21202199001011E+17)."""
    columns = [mapping[name][0] for name in FLOAT_SENSITIVE if name in mapping]
    if not columns or grid.number_cells is None or body.height == 0:
        return body
    flags = grid.number_cells([int(c[1:]) for c in columns]).slice(body["_i"][0], body.height)
    flags = flags.rename({c: f"_num_{c}" for c in columns})
    body = pl.concat([body, flags], how="horizontal")
    return body.with_columns(
        pl.when(pl.col(f"_num_{c}"))
        .then(excel_number_text(pl.col(c).cast(pl.Float64, strict=False)).fill_null(pl.col(c)))
        .otherwise(pl.col(c))
        .alias(c)
        for c in columns
    ).drop(f"_num_{c}" for c in columns)


def relative_source(path: Path, data_dir: Path) -> str:
    """The path lineage columns carry: relative to the data dir, posix."""
    try:
        return path.resolve().relative_to(Path(data_dir).resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _unreadable(source: str, sheet: str, detail: str) -> FileProblem:
    return FileProblem(source, sheet, "file_unreadable", f"“{source}”：{reject('file_unreadable', detail=detail)}")


def read_table_file(path: Path, data_dir: Path, header_map: dict[str, tuple[str, ...]], required: tuple[str, ...],
                    total_words: tuple[str, ...] | None = None,
                    ) -> tuple[list[SheetTable], list[FileProblem], list[str]]:
    """Read every sheet of one xlsx/xls/csv (or parquet): tables with a header, problems, and notes.

    Never raises for a bad file: an unreadable file is one `file_unreadable` problem; a sheet without a header
    that holds records is `no_header`; one lacking a required column is `missing_required_column`; an empty or
    notes-only sheet is a note.
    """
    source = relative_source(Path(path), data_dir)
    words = config.registry().total_row_words if total_words is None else tuple(total_words)
    try:
        grids = _load_grids(Path(path))
    except UnreadableFile as exc:
        return [], [_unreadable(source, "", str(exc))], []
    except Exception as exc:  # anything else the readers raise still means "cannot open"
        return [], [_unreadable(source, "", f"读取出错（{type(exc).__name__}）")], []
    matcher = HeaderMatcher(header_map)
    tables, problems, notes = [], [], []
    for grid in grids:
        try:
            result = _sheet_table(grid, source, matcher, header_map, tuple(required), words)
        except Exception as exc:  # a sheet that breaks the reader is reported, the other sheets still count
            detail = f"工作表“{grid.sheet}”读取出错（{type(exc).__name__}）"
            result = _SheetResult(problem=_unreadable(source, grid.sheet, detail))
        if result.table is not None:
            tables.append(result.table)
        if result.problem is not None:
            problems.append(result.problem)
        if result.note is not None:
            notes.append(result.note)
    return tables, problems, notes


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
# The month's drop zone
# ----------------------------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _ignore_code(path: Path, suffixes: frozenset[str]) -> str | None:
    """Why a file is not read at all: an Excel lock file, or not a spreadsheet (.txt, .docx, .DS_Store, ._x)."""
    if path.name.startswith("~$"):
        return "lock_file"
    if path.name.startswith(".") or path.suffix.lower() not in suffixes or "__MACOSX" in path.parts:
        return "not_spreadsheet"
    return None


def _files_under(folder: Path) -> list[Path]:
    return sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.as_posix())


def _received(path: Path, data_dir: Path, department: str | None, folder: str, sha: str, status: str,
              note: str | None = None, duplicate_of: str | None = None, lists: list[str] | None = None) -> ReceivedFile:
    stat = path.stat()
    return ReceivedFile(
        source_file=relative_source(path, data_dir), department=department, folder=folder, sha256=sha,
        size_bytes=stat.st_size, modified_at=datetime.fromtimestamp(stat.st_mtime), status=status, note=note,
        duplicate_of=duplicate_of, lists=list(lists or []),
    )


class _Intake:
    """Per-month bookkeeping shared by scan_month and read_roster: ignore, de-duplicate, record each file."""

    def __init__(self, data_dir: Path, suffixes: frozenset[str]):
        self.data_dir, self.suffixes = Path(data_dir), suffixes
        self.files: list[ReceivedFile] = []
        self.seen: dict[str, str] = {}  # sha256 -> source_file of its first copy

    def admit(self, path: Path, department: str | None, folder: str) -> str | None:
        """The file's sha256 when it should be read; otherwise records it as ignored/duplicate and returns None."""
        source = relative_source(path, self.data_dir)
        code = _ignore_code(path, self.suffixes)
        sha = _sha256(path)
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


def _status(tables: int, problems: int) -> str:
    if tables:
        return "read"
    return "quarantined" if problems else "ignored"


def scan_month(data_dir: Path, month: str, registry: Registry | None = None) -> MonthScan:
    """Every department folder under data_dir/raw/<month>/ except roster/ and feedback/, read and recognised."""
    reg = registry or config.registry()
    data_dir = Path(data_dir)
    month_dir = data_dir / "raw" / month
    intake = _Intake(data_dir, SPREADSHEET_SUFFIXES)
    tables: dict[str, list[SheetTable]] = {}
    problems: list[FileProblem] = []
    if not month_dir.is_dir():
        return MonthScan([], tables, [])
    paths: list[tuple[Path, str]] = []
    for entry in sorted(month_dir.iterdir(), key=lambda p: p.name):
        if entry.is_dir() and entry.name not in NOT_DEPARTMENTS:
            paths.extend((p, entry.name) for p in _files_under(entry))
        elif entry.is_file():
            paths.append((entry, ""))  # loose file: not in any department folder
    for path, folder in sorted(paths, key=lambda item: item[0].as_posix()):
        department = reg.department_for_folder(folder) if folder else None
        sha = intake.admit(path, department, folder)
        if sha is None:
            continue
        source = relative_source(path, data_dir)
        if department is None:
            reason = f"“{source}”：{reject('unknown_department', folder=folder or month)}"
            problems.append(FileProblem(source, "", "unknown_department", reason))
            intake.files.append(_received(path, data_dir, None, folder, sha, "quarantined", reason))
            continue
        found, file_problems, notes = _read_department_file(path, data_dir, reg, department)
        problems.extend(file_problems)
        for key, table in found:
            tables.setdefault(key, []).append(table)
        lists = list(dict.fromkeys(key for key, _ in found))
        note = "；".join(notes) or ("；".join(p.reason for p in file_problems) if not found else None) or None
        intake.files.append(_received(path, data_dir, department, folder, sha, _status(len(found), len(file_problems)),
                                      note, lists=lists))
    return MonthScan(intake.files, tables, problems)


def _read_department_file(path: Path, data_dir: Path, reg: Registry, department: str,
                          ) -> tuple[list[tuple[str, SheetTable]], list[FileProblem], list[str]]:
    """Read one department file and recognise each sheet among that department's lists."""
    specs = reg.lists_of(department)
    sheet_tables, problems, notes = read_table_file(path, data_dir, reg.list_headers, reg.list_required,
                                                    reg.total_row_words)
    stem = Path(path).stem
    for problem in problems:  # a list named by file or sheet still gets its problem counted against it
        if problem.reason_code != "file_unreadable":
            spec, _ = recognise_list(specs, (stem, problem.sheet))
            problem.list_key = spec.key if spec else None
    found: list[tuple[str, SheetTable]] = []
    for table in sheet_tables:
        spec, candidates = recognise_list(specs, (stem, table.sheet, table.title))
        where = f"“{table.source_file}”" + (f"工作表“{table.sheet}”" if table.sheet else "")
        if spec is not None:
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


def read_roster(data_dir: Path, month: str, registry: Registry | None = None,
                ) -> tuple[list[SheetTable], list[FileProblem], list[ReceivedFile]]:
    """data_dir/raw/<month>/roster/*: the 花名册 (household roster), in one or several xlsx/xls files or sheets,
    csv or parquet, as roster tables.

    Mapped with registry.roster_headers; a sheet lacking registry.roster_required is a problem (list_key "roster").
    """
    reg = registry or config.registry()
    data_dir = Path(data_dir)
    folder = data_dir / "raw" / month / "roster"
    intake = _Intake(data_dir, ROSTER_SUFFIXES)
    tables: list[SheetTable] = []
    problems: list[FileProblem] = []
    if not folder.is_dir():
        return tables, problems, intake.files
    for path in _files_under(folder):
        sha = intake.admit(path, None, "roster")
        if sha is None:
            continue
        found, file_problems, notes = read_table_file(path, data_dir, reg.roster_headers, reg.roster_required,
                                                      reg.total_row_words)
        for problem in file_problems:
            problem.list_key = "roster"
        tables.extend(found)
        problems.extend(file_problems)
        note = "；".join(notes) or ("；".join(p.reason for p in file_problems) if not found else None) or None
        intake.files.append(_received(path, data_dir, None, "roster", sha, _status(len(found), len(file_problems)),
                                      note, lists=["roster"] if found else []))
    return tables, problems, intake.files
