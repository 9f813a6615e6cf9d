"""fangpin.values and fangpin.validate: dates, amounts, places, and department-list rows accepted or rejected."""
from __future__ import annotations

import random
from datetime import date

import duckdb
import polars as pl
import pandera.errors
import pytest
from stdnum.cn import ric

from fangpin import validate
from fangpin.config import PROJECT_ROOT, registry
from fangpin.values import parse_amount, parse_date, place_key, resolve_places
from schemas.lists import ListRowsModel
from schemas.reasons import NOTE, REJECT, note, reject

MONTH = "2026-10"
A = "11010519491231002X"  # valid IDs (GB 11643)
B = "110105194912310011"
C = "130503196704010016"
PLACES = pl.DataFrame({
    "township": ["城关镇", "城关镇", "石门乡", "东街街道"],
    "village": ["东门村", "西门社区", "石门村", "东街社区"],
    "division_code": ["360799001001", "360799001002", "360799002001", "360799003001"],
})


def _one(expr_fn, values: list):
    return pl.DataFrame({"v": values}, schema={"v": pl.String}).select(expr_fn(pl.col("v")).alias("o"))["o"].to_list()


def _table(rows: list[dict], source: str = "civil_affairs/低保.xlsx", sheet: str = "Sheet1",
           first: int = 4) -> pl.DataFrame:
    """A reading-module frame: String cells, lineage, is_total_row, raw JSON."""
    columns = sorted({k for row in rows for k in row})
    frame = pl.DataFrame([{c: row.get(c) for c in columns} for row in rows], schema={c: pl.String for c in columns})
    return frame.with_columns(
        pl.lit(source).alias("source_file"), pl.lit(sheet).alias("sheet"),
        pl.int_range(first, first + len(rows), dtype=pl.Int64).alias("row_number"),
        (pl.col("id_number").fill_null("") == "合计").alias("is_total_row") if "id_number" in columns else pl.lit(False),
        pl.lit('{"身份证号码": "x"}').alias("raw"),
    )


def _run(table: pl.DataFrame, key: str = "civil_affairs.dibao") -> validate.Validated:
    return validate.validate_list(table, spec=registry().lists[key], month=MONTH, places=PLACES)


def _codes(result: validate.Validated) -> dict[int, str]:
    return dict(zip(result.rejected["row_number"].to_list(), result.rejected["reason_code"].to_list()))


# ----------------------------------------------------------------------------------------------------------------
# values
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("46300", date(2026, 10, 5)), ("46300.0", date(2026, 10, 5)), ("46300.75", date(2026, 10, 5)),
    ("2026-10-05", date(2026, 10, 5)), ("2026/10/5", date(2026, 10, 5)), ("2026.10.05", date(2026, 10, 5)),
    ("2026年10月5日", date(2026, 10, 5)), (" 2026年10月05日 ", date(2026, 10, 5)), ("202610", date(2026, 10, 1)),
    ("2026 年 10 月 5 日", date(2026, 10, 5)), ("2026 / 10 / 5", date(2026, 10, 5)), ("2026-10-05 08:30", date(2026, 10, 5)),
    ("2026-10-05 00:00:00.000", date(2026, 10, 5)), ("2026年10月5日 上午", date(2026, 10, 5)),
    ("30-5-01", None), ("5年2.05", None), ("0-02-13", None), ("2026105", None), ("-2026-10-05-", date(2026, 10, 5)),
    ("2026-10-05 00:00:00", date(2026, 10, 5)), ("2026-10-05T08:30:00", date(2026, 10, 5)),
    ("20261005", date(2026, 10, 5)), ("2026年10月", date(2026, 10, 1)), ("2026-1-5", date(2026, 1, 5)),
    ("2026-02-30", None), ("2026-13-01", None), ("明天", None), ("2026", None), ("", None), (None, None),
])
def test_parse_date_every_form(text, expected):
    assert _one(parse_date, [text]) == [expected]


@pytest.mark.parametrize(("text", "expected"), [
    ("1,234.50", 1234.5), ("1234.5元", 1234.5), ("￥1,234", 1234.0), ("¥ 800 元", 800.0), ("1.2万元", 12000.0),
    ("1，234", 1234.0), ("0", 0.0), ("", None), (None, None), ("约一千", None), ("nan", None),
])
def test_parse_amount(text, expected):
    assert _one(parse_amount, [text]) == [expected]


def test_regex_literal_matches_its_text_and_nothing_else():
    """`values.regex_literal` spells text for a Polars regex: regex syntax, control characters and blanks each
    match only themselves, alone or inside a character class."""
    from fangpin.values import regex_literal

    text = "=+-@.*[]()^$\\|?\t\r\u3000\u200b"
    cells = pl.Series([text, text.replace(".", "x"), "=", "a", "\u3000", None])
    assert cells.str.contains("^" + regex_literal(text) + "$").to_list() == [True, False, False, False, False, None]
    assert cells.str.contains("^[" + regex_literal(text) + "]+$").to_list() == [True, False, True, False, True, None]


def test_amounts_read_where_plain_equal_parse_amount_of_every_cell(monkeypatch):
    """The roster's amounts are cast where the cell is a plain number and parsed only elsewhere
    (`values.amount_where_needed`): the result must be `parse_amount` of every cell, even for texts a cast reads
    that parse_amount refuses (inf, nan, 1e400), and a column of plain numbers must not be parsed at all."""
    import fangpin.values as values

    texts = ["1234.5", "0", "-5", "+7", "1e3", ".5", "5.", " 12 ", "12\u3000", "1,234.50", "1.2万元", "￥800",
             "1234.5元", "inf", "-inf", "nan", "NaN", "1e400", "", "   ", None, "约一千", "0x10", "1_000"]
    frame = pl.DataFrame({"amount": texts}, schema={"amount": pl.String})
    gated = frame.select(values.amount_where_needed(pl.col("amount")))["amount"].to_list()
    assert gated == _one(parse_amount, texts)
    assert gated[:8] == [1234.5, 0.0, -5.0, 7.0, 1000.0, 0.5, 5.0, 12.0] and gated[13:18] == [None] * 5

    parsed: list[int] = []
    monkeypatch.setattr(values, "parse_amount", lambda expr: parsed.append(1) or parse_amount(expr))
    plain = pl.DataFrame({"amount": ["1234.5", "0", None, "88"]}, schema={"amount": pl.String})
    assert plain.select(values.amount_where_needed(pl.col("amount")))["amount"].to_list() == [1234.5, 0.0, None, 88.0]
    assert parsed == []


@pytest.mark.parametrize(("a", "b"), [
    ("城关镇", "城关"), ("石门乡", "石门"), ("东街街道", "东街"), ("东街街道办事处", "东街"), ("石门村委会", "石门村"),
    ("西门社区", "西门"), ("西门居委会", "西门"), (" 城 关 镇", "城关"), ("新乡镇", "新乡"),
])
def test_place_key_ignores_suffix_variants(a, b):
    assert _one(place_key, [a]) == _one(place_key, [b])


def test_resolve_places_names_codes_and_unknowns():
    frame = pl.DataFrame({
        "township": ["城关", "城关镇 ", "石门", None, "不存在镇", None, "城关", "东街"],
        "village": ["东门", "西门居委会", "石门村委会", "西门", "东门", None, "北门", "东街"],
        "division_code": [None, None, None, None, None, "360799002001", None, None],
    })
    out = resolve_places(frame, PLACES)
    assert out["township"].to_list() == ["城关镇", "城关镇", "石门乡", "城关镇", None, "石门乡", "城关镇", "东街街道"]
    assert out["village"].to_list() == ["东门村", "西门社区", "石门村", "西门社区", None, "石门村", None, "东街社区"]
    assert out["township_raw"].to_list() == frame["township"].to_list()


def test_resolve_places_accepts_raw_columns_only():
    """linkage passes quarantined rows: township_raw/village_raw and no division_code."""
    frame = pl.DataFrame({"township_raw": ["石门"], "village_raw": ["石门"], "name": ["张三"]})
    out = resolve_places(frame, PLACES)
    assert out.select("township", "village").row(0) == ("石门乡", "石门村")
    assert out.columns == ["township_raw", "village_raw", "name", "township", "village"]


# ----------------------------------------------------------------------------------------------------------------
# department lists
# ----------------------------------------------------------------------------------------------------------------
def _warehouse_columns(table: str) -> list[str]:
    con = duckdb.connect()
    con.execute((PROJECT_ROOT / "schemas" / "warehouse.sql").read_text(encoding="utf-8"))
    schema, name = table.split(".")
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?"
                       " ORDER BY ordinal_position", [schema, name]).fetchall()
    return [r[0] for r in rows]


def test_output_columns_match_the_warehouse():
    result = _run(_table([{"id_number": A, "event_date": "bad"}, {"id_number": "x"}]))
    assert result.accepted.columns == _warehouse_columns("staging.list_rows")
    assert result.rejected.columns == _warehouse_columns("quarantine.rejected_rows")
    assert result.notes.columns == _warehouse_columns("quarantine.row_notes")
    assert result.accepted.schema["event_date"] == pl.Date and result.accepted.schema["amount"] == pl.Float64


def test_accepted_row_values():
    rows = [{"id_number": " 11010519491231002x", "name": "张 三", "township": "城关", "village": "东门",
             "event_date": "2026年10月5日", "amount": "1,234.50元", "detail": " 因病 "}]
    row = _run(_table(rows)).accepted.row(0, named=True)
    assert (row["id_number"], row["name"], row["township"], row["village"]) == (A, "张三", "城关镇", "东门村")
    assert (row["township_raw"], row["village_raw"]) == ("城关", "东门")
    assert (row["event_date"], row["amount"], row["detail"]) == (date(2026, 10, 5), 1234.5, "因病")
    assert (row["list_key"], row["department"], row["month"], row["row_number"]) == (
        "civil_affairs.dibao", "civil_affairs", MONTH, 4)


def test_id_rejections_with_clerk_sentences():
    rows = [{"id_number": v, "name": "某"} for v in
            ["3.21202199001011E+17", "110105194912310021", "11010519490230002X", "123", None, "合计"]]
    result = _run(_table(rows))
    assert _codes(result) == {4: "id_float_mangled", 5: "id_bad_checksum", 6: "id_bad_birthdate",
                              7: "id_bad_length", 8: "id_missing", 9: "total_row"}
    assert result.accepted.height == 0
    by_row = {r["row_number"]: r for r in result.rejected.to_dicts()}
    checksum = by_row[5]["reason"]
    assert checksum == ("“civil_affairs/低保.xlsx”工作表“Sheet1”第5行“身份证号码”列："
                        + reject("id_bad_checksum", value="110105194912310021", expected="X"))
    assert by_row[4]["reason"].endswith(reject("id_float_mangled", value="3.21202199001011E+17"))
    assert by_row[9]["column_name"] is None and by_row[9]["reason"].endswith(reject("total_row"))
    assert by_row[4]["id_raw"] == "3.21202199001011E+17" and by_row[4]["raw"] == '{"身份证号码": "x"}'


def test_disability_certificate_ok_mismatch_invalid():
    rows = [{"id_number": A, "disability_cert": A.lower() + "12"},
            {"id_number": B, "disability_cert": A + "12"},
            {"id_number": C, "disability_cert": C + "92"},
            {"id_number": "130503196704010024", "disability_cert": None}]
    result = _run(_table(rows), key="disability.severe")
    assert _codes(result) == {5: "disability_cert_mismatch", 6: "disability_cert_invalid"}
    assert result.accepted["disability_cert"].to_list() == [A + "12", None]
    assert set(result.rejected["column_name"]) == {"残疾人证号"}


def test_duplicates_within_a_sheet_and_across_files():
    first = _table([{"id_number": A}, {"id_number": B}, {"id_number": A.lower()}], source="civil_affairs/a.xlsx")
    second = _table([{"id_number": "110105491231002"}], source="civil_affairs/b.xlsx", sheet="第二批", first=2)
    result = _run(pl.concat([second, first], how="diagonal_relaxed"))  # order of arrival does not matter
    rejected = result.rejected.to_dicts()
    assert [(r["source_file"], r["row_number"], r["reason_code"]) for r in rejected] == [
        ("civil_affairs/a.xlsx", 6, "duplicate_in_list"), ("civil_affairs/b.xlsx", 2, "duplicate_in_list")]
    assert rejected[0]["reason"].endswith(reject("duplicate_in_list", first_row=4))
    assert rejected[1]["reason"].endswith(reject("duplicate_in_list_elsewhere", first_row=4,
                                                 first_file="civil_affairs/a.xlsx", first_sheet="工作表“Sheet1”"))
    assert result.accepted["id_number"].to_list() == [A, B]


@pytest.mark.parametrize("spelled", [
    "11010519491231002X", "11010519491231002x", "'11010519491231002X", " 110105 19491231 002X\t",
    "１１０１０５１９４９１２３１００２ｘ", "\u201c11010519491231002X\u201d", "1101051949\u200b1231002X",
    "110105491231002", "110105491231002.0", " 110105491231002.00 ", "'110105491231002.0",
])
def test_a_duplicate_keeps_the_id_it_repeats_whatever_its_spelling(spelled):
    """Quarantine stores the validator's own ID with a row rejected for another reason than its ID (id_number): the
    quality suites count a duplicate against its first row by it, without normalising the cell a second time (a
    copy of the rule in SQL once missed a legacy number's float ".0"). A row rejected for its ID stores none."""
    result = _run(_table([{"id_number": A}, {"id_number": spelled}, {"id_number": "1234"}]))
    assert _codes(result) == {5: "duplicate_in_list", 6: "id_bad_length"}
    assert result.rejected["id_number"].to_list() == [A, None]
    assert result.rejected["id_raw"].to_list() == [spelled, "1234"]


def test_the_months_lists_validated_together_keep_duplicates_within_each_list():
    dibao = _table([{"id_number": A}, {"id_number": B}, {"id_number": A}])
    disease = _table([{"id_number": A}, {"id_number": C}], source="health/大病.xlsx")
    together = validate.validate_lists(
        [(registry().lists["civil_affairs.dibao"], dibao), (registry().lists["health.major_disease"], disease)],
        month=MONTH, places=PLACES)
    assert together["health.major_disease"].accepted["id_number"].to_list() == [A, C]  # A on two lists: both count
    assert together["health.major_disease"].rejected.is_empty()
    assert _codes(together["civil_affairs.dibao"]) == {6: "duplicate_in_list"}
    for key, table in [("civil_affairs.dibao", dibao), ("health.major_disease", disease)]:
        alone = _run(table, key)
        assert together[key].accepted.equals(alone.accepted) and together[key].rejected.equals(alone.rejected)
        assert set(together[key].accepted["department"]) == {registry().lists[key].department}


def test_the_list_schema_allows_a_person_once_per_list():
    rows = _run(_table([{"id_number": A}, {"id_number": B}])).accepted
    on_two_lists = pl.concat([rows, rows.with_columns(pl.lit("health.major_disease").alias("list_key"))])
    ListRowsModel.validate(on_two_lists)
    with pytest.raises(pandera.errors.SchemaError, match="one_row_per_person_per_list"):
        ListRowsModel.validate(pl.concat([rows, rows.head(1)]))


def test_a_rejected_row_does_not_make_the_next_a_duplicate():
    result = _run(_table([{"id_number": A, "disability_cert": "bad"}, {"id_number": A, "disability_cert": None}]),
                  key="disability.severe")
    assert _codes(result) == {4: "disability_cert_invalid"} and result.accepted["row_number"].to_list() == [5]


def test_notes_for_unusable_values_keep_the_row():
    rows = [{"id_number": A, "event_date": "下旬", "amount": "很多", "township": "城关", "village": "北门"},
            {"id_number": B, "event_date": "2026-09-30", "township": "月亮镇", "village": "东门"},
            {"id_number": C, "event_date": "2026-10-31", "amount": "", "township": "石门", "village": "石门"}]
    result = _run(_table(rows))
    assert result.accepted.height == 3 and result.rejected.height == 0
    got = {(r["row_number"], r["note_code"]) for r in result.notes.to_dicts()}
    assert got == {(4, "date_unparsed"), (4, "amount_unparsed"), (4, "village_unknown"),
                   (5, "date_outside_month"), (5, "township_unknown")}
    notes = {(r["row_number"], r["note_code"]): r for r in result.notes.to_dicts()}
    assert notes[(4, "date_unparsed")]["note"].endswith(note("date_unparsed", value="下旬"))
    assert notes[(5, "township_unknown")]["note"].startswith("“civil_affairs/低保.xlsx”工作表“Sheet1”第5行“乡镇”列")
    assert notes[(4, "village_unknown")]["column_name"] == "村"


def test_only_an_id_column_and_an_empty_table():
    result = _run(_table([{"id_number": A}]))
    assert result.accepted.height == 1 and result.accepted["township"].to_list() == [None]
    empty = pl.DataFrame(schema={"source_file": pl.String, "sheet": pl.String, "row_number": pl.Int64,
                                 "is_total_row": pl.Boolean, "raw": pl.String})
    result = _run(empty)
    assert (result.accepted.height, result.rejected.height, result.notes.height) == (0, 0, 0)
    assert result.accepted.columns == _warehouse_columns("staging.list_rows")


def test_csv_rows_without_sheet_name_the_file_and_row():
    result = _run(_table([{"id_number": "123"}], source="civil_affairs/低保.csv", sheet=""))
    assert result.rejected["reason"][0].startswith("“civil_affairs/低保.csv”第4行“身份证号码”列：")


def _messy_cell(rng: random.Random, pool: list[str]) -> str | None:
    return rng.choice(pool + [None, "", "  ", "合计", "３.２E+17", "１１０１０５１９４９１２３１００２ｘ"])


def test_counts_reconcile_on_messy_input():
    """Property: whatever arrives, every row is accepted or rejected, exactly once."""
    ids = [A, B, C, A.lower(), "'" + B, "110105491231002", "3.21202199001011E+17", "321202199001011000",
           "11010519490230002X", "1234", "abc", "110105194912310021"]
    for seed in range(40):
        rng = random.Random(seed)
        columns = ["id_number"] + rng.sample(["name", "township", "village", "event_date", "amount",
                                              "disability_cert", "division_code", "detail"], rng.randrange(0, 8))
        pools = {"id_number": ids, "disability_cert": [A + "11", B + "99", "x"], "township": ["城关", "火星"],
                 "village": ["东门", "无"], "event_date": ["46300", "2026/10/5", "?"], "amount": ["1,2元", "x"]}
        rows = [{c: _messy_cell(rng, pools.get(c, ["某"])) for c in columns} for _ in range(rng.randrange(0, 30))]
        table = _table(rows, sheet=rng.choice(["", "S"])) if rows else _table([{"id_number": A}]).clear()
        table = table.with_columns(pl.when(pl.int_range(pl.len()) % 7 == 3).then(None).otherwise(pl.col("is_total_row"))
                                   .alias("is_total_row"))
        result = _run(table, key="disability.severe")
        assert result.accepted.height + result.rejected.height == table.height, seed
        seen = result.accepted["row_number"].to_list() + result.rejected["row_number"].to_list()
        assert sorted(seen) == sorted(table["row_number"].to_list()), seed
        assert result.accepted["id_number"].is_unique().all()


def test_vectorised_sentences_equal_the_reasons_module():
    frame = pl.DataFrame({"v": ["1234"], "e": ["X"]})
    got = frame.select(validate.template_expr(REJECT["id_bad_checksum"], value=pl.col("v"), expected=pl.col("e")))
    assert got.item() == reject("id_bad_checksum", value="1234", expected="X")
    got = frame.select(validate.template_expr(NOTE["amount_unparsed"], value=pl.col("v"))).item()
    assert got == note("amount_unparsed", value="1234")


def test_a_roster_past_the_row_check_size_still_gets_its_schema_checked(monkeypatch):
    """Row rules at roster scale are the Polars expressions; pandera then checks only columns and types."""
    import pandera.errors
    from fangpin import validate as module
    from schemas import roster as models

    monkeypatch.setattr(models, "ROW_CHECKS_UP_TO", 0)
    frame = pl.DataFrame({column: [None] for column in module.PERSON_COLUMNS})
    with pytest.raises((pandera.errors.SchemaError, pandera.errors.SchemaErrors)):
        models.checked(models.PersonsModel, frame)  # wrong types (all null columns): refused even without row checks


def test_list_dates_amounts_and_places_parsed_once_per_distinct_text_equal_each_cells_own_parse_and_notes():
    """A month's list rows repeat a few dozen dates and places, so those columns are parsed once per distinct text
    (validate._by_value); every row must still get its own cell's value, and every unusable cell its own note."""
    from fangpin.values import parse_amount, parse_date

    dates = ["2026-10-05", "46300", "下旬", None, "2026年10月5日", "2026/9/30", "", "2026-10-05", "46300.0"]
    amounts = ["1,200", "很多", None, "1200元", "", "1,200", "3万"]
    townships = ["城关镇", " 城关镇", "月亮镇", None]
    ids = [body + ric.calc_check_digit(body + "?") for body in (f"36079919800101{n:03d}" for n in range(43))]
    rows = [{"id_number": number, "event_date": dates[i % len(dates)], "amount": amounts[i % len(amounts)],
             "township": townships[i % len(townships)]} for i, number in enumerate(ids)]
    result = _run(_table(rows))
    accepted = result.accepted.sort("row_number")
    assert accepted.height == len(rows)

    def each(expr, texts: list) -> list:
        return pl.DataFrame({"v": texts}, schema={"v": pl.String}).select(expr(pl.col("v"))).to_series().to_list()

    assert accepted["event_date"].to_list() == each(parse_date, [row["event_date"] for row in rows])
    assert accepted["amount"].to_list() == each(parse_amount, [row["amount"] for row in rows])
    noted = {(r["row_number"], r["note_code"]) for r in result.notes.to_dicts()}
    unparsed = {4 + i for i, row in enumerate(rows) if row["event_date"] in ("下旬",)}
    assert {n for n, code in noted if code == "date_unparsed"} == unparsed
    assert {n for n, code in noted if code == "township_unknown"} == {
        4 + i for i, row in enumerate(rows) if row["township"] == "月亮镇"}


def test_a_cell_is_trimmed_of_exactly_what_a_clerk_sees_as_blank():
    """`values.cell_text` strips a set of characters: it must be the set the regex it replaced stripped (Polars' \\s,
    Unicode White_Space, plus the zero-width space and BOM), checked over every code point at both ends of a cell."""
    from fangpin.values import BLANK_CHARS, cell_text

    points = [chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]
    cells = pl.DataFrame({"cell": [f"{point}甲 {point}乙{point}" for point in points]})
    regex = r"^[\s\u200b\ufeff]+|[\s\u200b\ufeff]+$"
    trimmed = cells.select(
        "cell", cell_text(pl.col("cell")).alias("now"),
        pl.col("cell").str.replace_all(regex, "").alias("regex"),
        pl.col("cell").str.slice(0, 1).str.contains(r"^[\s\u200b\ufeff]$").alias("blank"),
    )
    assert trimmed.filter(pl.col("now") != pl.col("regex")).is_empty()
    assert set(BLANK_CHARS) == set(trimmed.filter("blank")["cell"].str.slice(0, 1).to_list())
    assert cells.select(cell_text(pl.lit(" \u3000\u200b "))).item() is None


def test_person_names_are_squeezed_where_needed_as_squeezing_every_name_would():
    """Names are cleaned only when they hold a blank (validate.WITHOUT_BLANKS): every blank character, at an edge or
    inside, still goes, and the result is that of squeezing every name."""
    from fangpin.values import BLANK_CHARS

    names = ["张三", "李四", None, "", "王 五", *(f"{c}赵六" for c in BLANK_CHARS), *(f"钱{c}七{c}" for c in BLANK_CHARS)]
    frame = pl.DataFrame({"name": names}, schema={"name": pl.String})
    gated = frame.select(validate._person_name(pl.col("name")))["name"].to_list()
    assert gated == frame.select(validate._squeezed(pl.col("name")))["name"].to_list()
    assert gated[:5] == ["张三", "李四", None, None, "王五"]
    assert not frame.select(pl.col("name").str.contains(validate.WITHOUT_BLANKS))["name"][5:].any()


def test_by_value_leaves_a_column_its_parser_would_not_change_and_maps_every_other():
    """A clean roster's relations, places and answers are each already as their parser gives them, so
    `_by_value` returns no expression for them (mapping 300,000 rows back costs ~8 ms a column); a column with one
    text to clean, a text the parser blanks, or a parser of another type is mapped, and every row gets its own
    cell's parse."""
    from fangpin.values import cell_text, parse_date

    frame = pl.DataFrame({"clean": ["户主", "配偶", None, "户主"], "spaced": ["户主", " 配偶", None, "户主"],
                          "blanked": ["户主", "   ", None, "户主"], "dated": ["2025-03-01", None, "2025-03-01", "x"]})
    parsers = {"clean": (cell_text(pl.col("clean")), pl.String), "spaced": (cell_text(pl.col("spaced")), pl.String),
               "blanked": (cell_text(pl.col("blanked")), pl.String), "dated": (parse_date(pl.col("dated")), pl.Date)}
    exprs = validate._by_value(frame, parsers)
    assert [expr.meta.output_name() for expr in exprs] == ["spaced", "blanked", "dated"]
    assert frame.with_columns(exprs).equals(frame.select(expr.alias(name) for name, (expr, _) in parsers.items()))
