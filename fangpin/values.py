"""Cell values as departments type them: dates, amounts and place names, parsed with Polars expressions.

INPUTS.md lists the forms that arrive (Excel serials, 2026/10/5, 2026年10月5日, 202610, "1,234.50", "1234.5元",
"城关" for 城关镇). Everything is vectorised; a value that cannot be read becomes null, and validation records a note.
"""
from __future__ import annotations

from collections.abc import Callable

import polars as pl

EXCEL_EPOCH = (1899, 12, 30)  # Excel serial 1 = 1900-01-01 (with Lotus' phantom 1900-02-29, so day 0 is 12-30)
SERIAL_PATTERN = r"^[1-9][0-9]{4}(\.[0-9]+)?$"  # 5-digit serials: 1927-05-18 .. 2173-10-14
# Place suffixes (longest first): 街道办事处 street office, 村民委员会/村委会 village committee, 居民委员会/居委会
# residents' committee, 社区 community, 街道 sub-district, 镇 town, 乡 township, 村 village.
PLACE_SUFFIXES = ("街道办事处", "村民委员会", "居民委员会", "办事处", "村委会", "居委会", "社区", "街道", "镇", "乡", "村")
SUFFIX_PATTERN = r"^(.{2,}?)(?:" + "|".join(PLACE_SUFFIXES) + r")$"  # one suffix, at least two characters kept


# What a clerk sees as blank at either end of a cell: Unicode's White_Space (exactly what the regex \s of Polars'
# Rust engine matches: tabs and line breaks, the ideographic space U+3000, no-break spaces, ...), the zero-width
# space and the byte-order mark. tests/test_validate.py checks the set against \s over every code point.
BLANK_CHARS = "".join(chr(code) for code in (*range(0x9, 0xE), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                                             0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0x200B, 0xFEFF))


def regex_literal(text: str) -> str:
    """`text` as a Polars (Rust) regex matching it literally, each character as a hex escape (\\x{3000}): safe for
    control characters, blanks and regex syntax alike, inside a character class or out of one."""
    return "".join(f"\\x{{{ord(char):x}}}" for char in text)


def cell_text(expr: pl.Expr) -> pl.Expr:
    """A cell as trimmed text (full-width and zero-width spaces too); empty -> null. The one rule of what is blank,
    for the reader's cells (fangpin.reading) and validation alike.

    Stripped as a set of characters, not with the anchored regex it replaced, which cost 2.5 times as much:
    10 columns of the bench county's 1,000,000 roster rows, 0.51 -> 0.21 s; and emptied with `replace`, not
    `when`/`then`: 15 columns of 1,000,000 cells 0.43-0.51 -> 0.25-0.30 s.
    """
    return expr.cast(pl.String).str.strip_chars(BLANK_CHARS).replace("", None)


def _from_serial(text: pl.Expr) -> pl.Expr:
    """An Excel date serial ("46300", "46300.0", "46300.5" for a datetime) as a date."""
    days = text.cast(pl.Float64, strict=False).floor().cast(pl.Int64)
    return pl.date(*EXCEL_EPOCH) + pl.duration(days=days)


def _from_parts(text: pl.Expr, day_required: bool) -> pl.Expr:
    """Year, month, day separated by - / . 年 月 (日 dropped, spaces around them too, time of day ignored), or 8
    digits, or (unless `day_required`) YYYYMM / YYYY年MM月 (first of the month); a date that does not exist
    (2026-02-30) -> null.

    One chain of replacements into YYYY-MM-DD, read by `str.to_date` (any other shape becomes null), not branches
    over shared sub-expressions: Polars' eager `with_columns` evaluates a shared sub-expression once per use, and the
    branching version took 0.37 s for 50,000 returned-workbook dates, this one 0.056 s, with the same dates for
    136,171 generated texts (/tmp harnesses, bench/FINDINGS.md session 15).
    """
    undated = text.str.replace(r"(?:\s+|T)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?$", "")
    squeezed = undated.str.replace_all(r"\s*([-/.年月])\s*", "${1}").str.replace(r"\s+日", "日")
    day_part = squeezed.str.replace(r"[ T].*$", "").str.replace(r"日$", "")
    iso = (
        day_part.str.replace_all(r"[-/.年月]", "-").str.strip_chars("-")
        .str.replace(r"^(\d{4})(\d{2})(\d{2})$", "${1}-${2}-${3}")  # 20261005
        .str.replace(r"^(\d{4})(\d{2})$", "${1}-${2}")  # 202610: the month alone
        .str.replace(r"^(\d{4})-(\d)(-|$)", "${1}-0${2}${3}")  # a one-digit month
        .str.replace(r"^(\d{4}-\d{2})-(\d)$", "${1}-0${2}")  # a one-digit day
    )
    if not day_required:
        iso = iso.str.replace(r"^(\d{4}-\d{2})$", "${1}-01")  # the month alone: its first day
    return iso.str.extract(r"^(\d{4}-\d{2}-\d{2})$", 1).str.to_date("%Y-%m-%d", strict=False)  # %Y alone takes "0"


def parse_date(expr: pl.Expr, *, day_required: bool = False) -> pl.Expr:
    """A date cell in any form INPUTS.md lists -> pl.Date, else null. The one date rule for lists, the roster and
    the township workbooks that come back.

    Excel serials (5 digits, optional fraction), 2026-10-05, 2026/10/5, 2026.10.05, 2026年10月5日 (also typed as
    "2026 年 10 月 5 日"), 20261005, 202610 and 2026年10月 (first of the month, unless `day_required`: a township's
    verification date names the day of the visit), ISO datetimes "2026-10-05 00:00:00" / "2026-10-05T08:30:00".
    """
    text = cell_text(expr)
    return (
        pl.when(text.str.contains(SERIAL_PATTERN)).then(_from_serial(text))
        .otherwise(_from_parts(text, day_required))
        .cast(pl.Date)
    )


def parse_amount(expr: pl.Expr) -> pl.Expr:
    """An amount cell -> Float64 yuan, else null: "1,234.50", "1234.5元", "￥1,234", "1.2万元", "" (null)."""
    text = cell_text(expr)
    cleaned = text.str.replace_all(r"[\s,，元¥￥]|RMB|人民币", "")
    ten_thousands = cleaned.str.ends_with("万")  # 万 = 10,000
    number = cleaned.str.strip_suffix("万").cast(pl.Float64, strict=False)
    number = pl.when(number.is_finite()).then(number)
    return pl.when(ten_thousands).then(number * 10_000).otherwise(number)


def amount_where_needed(expr: pl.Expr) -> pl.Expr:
    """`parse_amount` of `expr`, computed only for the cells that are not already a plain number.

    Why: a roster's seven household amounts hold tens of thousands of distinct texts each (a province county's
    300,000 persons: up to ~60,000), nearly all plain numbers ("1234.5"), which a cast reads as `parse_amount`
    would; parsed by distinct value they made the roster's fields cost 0.66 CPU-s, cast 0.42 (bench/FINDINGS.md,
    session 25). A cell the cast reads as a finite number has none of the characters `parse_amount` removes (blanks,
    separators, 元, 万), so both give the same value; every other non-blank cell goes through `parse_amount` itself.
    """
    def batch(values: pl.Series) -> pl.Series:
        texts = values.cast(pl.String)
        cast = texts.cast(pl.Float64, strict=False).to_frame("number")
        numbers = cast.select(pl.when(pl.col("number").is_finite()).then(pl.col("number"))).to_series()
        return computed_where(numbers, numbers.is_null() & texts.is_not_null(), texts, parse_amount)

    return expr.map_batches(batch, return_dtype=pl.Float64)


def computed_where(base: pl.Series, needed: pl.Series, texts: pl.Series,
                   compute: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """`base`, with its values where `needed` is true replaced by `compute` (an expression builder) of `texts` there.

    The gather-and-scatter of the cells an expensive rule must see, when a cheap test clears most of a column
    (`amount_where_needed`, `fangpin.ids.cleaned_where_needed`)."""
    positions = needed.arg_true()
    if positions.len() == 0:
        return base
    part = texts.gather(positions).to_frame("value").select(compute(pl.col("value"))).to_series()
    return base.clone().scatter(positions, part)


def place_key(expr: pl.Expr) -> pl.Expr:
    """A place name reduced for matching: no spaces, no suffix (镇/乡/街道/村/社区/村委会/居委会…).

    The suffix is only dropped when at least two characters remain, so 新乡 stays 新乡 and matches 新乡镇.
    """
    text = cell_text(expr).str.replace_all(r"[\s\u200b\ufeff]", "").str.replace_all("（", "(").str.replace_all("）", ")")
    return text.str.replace(SUFFIX_PATTERN, "${1}")


def _raw_places(frame: pl.DataFrame) -> pl.DataFrame:
    """township_raw / village_raw / division_code present as String (taken from township/village when not yet)."""
    columns = []
    for name in ("township", "village"):
        source = f"{name}_raw" if f"{name}_raw" in frame.columns else name
        columns.append(pl.col(source).cast(pl.String).alias(f"{name}_raw") if source in frame.columns
                       else pl.lit(None, pl.String).alias(f"{name}_raw"))
    code = pl.col("division_code").cast(pl.String) if "division_code" in frame.columns else pl.lit(None, pl.String)
    columns.append(cell_text(code).alias("_code"))
    return frame.with_columns(columns)


def _unique_by(table: pl.DataFrame, keys: list[str], values: list[str]) -> pl.DataFrame:
    """Lookup rows whose key is unambiguous (a key shared by two canonical places resolves to nothing)."""
    distinct = table.select(*keys, *values).drop_nulls(keys).unique()
    return distinct.filter(pl.len().over(keys) == 1)


def _clean_name(expr: pl.Expr) -> pl.Expr:
    return cell_text(expr).str.replace_all(r"[\s\u200b\ufeff]", "")


def _lookups(places: pl.DataFrame) -> dict[str, tuple[pl.DataFrame, list[str]]]:
    """Lookup tables, each unique on its join keys: township by exact name, then by key; village within its
    township by exact name, then by key; village by key county-wide; township and village by 12-digit code."""
    table = places.select(
        pl.col("township").cast(pl.String), pl.col("village").cast(pl.String),
        cell_text(pl.col("division_code").cast(pl.String)).alias("_code"),
    ).filter(pl.col("township").is_not_null())
    table = table.with_columns(
        _clean_name(pl.col("township")).alias("_texact"), place_key(pl.col("township")).alias("_tkey"),
        _clean_name(pl.col("village")).alias("_vexact"), place_key(pl.col("village")).alias("_vkey"),
    )
    villages = table.filter(pl.col("village").is_not_null())
    coded = villages.filter(pl.col("_code").str.contains(r"^\d{12}$"))
    return {
        "t_exact": (_unique_by(table, ["_texact"], ["township"]), ["_texact"]),
        "t_key": (_unique_by(table, ["_tkey"], ["township"]), ["_tkey"]),
        "v_exact": (_unique_by(villages, ["township", "_vexact"], ["village"]), ["_t_name", "_vexact"]),
        "v_key": (_unique_by(villages, ["township", "_vkey"], ["village"]), ["_t_name", "_vkey"]),
        "v_any": (_unique_by(villages, ["_vkey"], ["township", "village"]), ["_vkey"]),
        "code": (_unique_by(coded, ["_code"], ["township", "village"]), ["_code"]),
    }


def _join(work: pl.DataFrame, lookup: pl.DataFrame, keys: list[str], prefix: str) -> pl.DataFrame:
    """Left join of one lookup, its value columns renamed `_<prefix>_township` / `_<prefix>_village`."""
    if "_t_name" in keys:
        lookup = lookup.rename({"township": "_t_name"})
    lookup = lookup.rename({c: f"_{prefix}_{c}" for c in ("township", "village") if c in lookup.columns})
    return work.join(lookup, on=keys, how="left", validate="m:1", maintain_order="left")


def resolve_places(frame: pl.DataFrame, places: pl.DataFrame) -> pl.DataFrame:
    """Adds township/village = the roster's canonical names (null when unknown) and keeps township_raw/village_raw.

    Names match without suffix and spaces; a village resolves within its township, or county-wide when the township
    is blank and the village name is unique; a 12-digit division_code fills in what the names did not resolve.
    """
    lookups = _lookups(places)
    work = _raw_places(frame).drop([c for c in ("township", "village") if c in frame.columns])
    work = work.with_columns(
        _clean_name(pl.col("township_raw")).alias("_texact"), place_key(pl.col("township_raw")).alias("_tkey"),
        _clean_name(pl.col("village_raw")).alias("_vexact"), place_key(pl.col("village_raw")).alias("_vkey"),
    )
    for prefix in ("t_exact", "t_key"):
        work = _join(work, *lookups[prefix], prefix)
    work = work.with_columns(pl.coalesce("_t_exact_township", "_t_key_township").alias("_t_name"))
    for prefix in ("v_exact", "v_key", "v_any", "code"):
        work = _join(work, *lookups[prefix], prefix)
    blank_township = pl.col("township_raw").is_null()
    township = pl.coalesce(pl.col("_t_name"), pl.when(blank_township).then(pl.col("_v_any_township")),
                           pl.col("_code_township"))
    village = pl.coalesce(
        pl.col("_v_exact_village"), pl.col("_v_key_village"),
        pl.when(blank_township).then(pl.col("_v_any_village")),
        pl.when(pl.col("_code_township") == township).then(pl.col("_code_village")),
    )
    work = work.with_columns(township.alias("township"), village.alias("village"))
    return work.drop([c for c in work.columns if c.startswith("_") and c not in frame.columns])
