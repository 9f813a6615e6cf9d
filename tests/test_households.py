"""The roster: person rows validated, households built from the head's row or from every row, A33-A38, places."""
from __future__ import annotations

from datetime import date, datetime

import duckdb
import polars as pl
import pytest

from fangpin import households, ingest, reading, validate
from fangpin.config import PROJECT_ROOT

MONTH = "2026-10"
HEAD, SPOUSE, CHILD = "11010519491231002X", "110105194912310011", "130503196704010016"
OTHER = "130503196704010024"
HOUSEHOLD = {"township": "城关镇", "village": "东门村", "division_code": "360799001001", "household_type": "脱贫户",
             "monitoring_category": "边缘易致贫户", "risk_eliminated": "否", "identified_on": "2025年3月1日",
             "household_size": "3", "wages": "12,000", "business_income": "3000元", "property_income": "",
             "transfer_income": "1500", "business_costs": "1,000", "insurance_payouts": "500", "compliant_oop": "2000",
             "cadre": "李干部"}


def _roster(rows: list[dict], source: str = "roster/花名册.xlsx") -> pl.DataFrame:
    columns = sorted({k for row in rows for k in row})
    frame = pl.DataFrame([{c: row.get(c) for c in columns} for row in rows], schema={c: pl.String for c in columns})
    return frame.with_columns(pl.lit(source).alias("source_file"), pl.lit("花名册").alias("sheet"),
                              pl.int_range(3, 3 + len(rows), dtype=pl.Int64).alias("row_number"),
                              pl.lit(False).alias("is_total_row"), pl.lit("{}").alias("raw"))


def _family(on_every_row: bool) -> list[dict]:
    """One household of three: household fields on the head's row only, or repeated on every member's row."""
    members = [("张父", HEAD, "户主"), ("张母", SPOUSE, "配偶"), ("张子", CHILD, "子")]
    rows = []
    for name, number, relation in members:
        row = {"household_id": "H1", "name": name, "id_number": number, "relation": relation}
        if relation == "户主" or on_every_row:
            row |= HOUSEHOLD
        rows.append(row)
    return rows


def _households(rows: list[dict]) -> pl.DataFrame:
    return households.build_households(validate.validate_roster(_roster(rows), month=MONTH).households, MONTH)


def _columns(table: str) -> list[str]:
    con = duckdb.connect()
    con.execute((PROJECT_ROOT / "schemas" / "warehouse.sql").read_text(encoding="utf-8"))
    schema, name = table.split(".")
    return [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                                      "AND table_name = ? ORDER BY ordinal_position", [schema, name]).fetchall()]


def test_head_row_only_and_every_row_give_the_same_household():
    from_head = _households(_family(on_every_row=False))
    from_all = _households(_family(on_every_row=True))
    assert from_head.equals(from_all)
    row = from_head.row(0, named=True)
    assert (row["head_name"], row["head_id_number"], row["members"], row["household_size"]) == ("张父", HEAD, 3, 3)
    assert (row["township"], row["village"], row["household_type"], row["risk_eliminated"]) == (
        "城关镇", "东门村", "脱贫户", False)
    assert row["identified_on"] == date(2025, 3, 1) and row["cadre"] == "李干部"
    assert from_head.columns == _columns("roster.households")


def test_income_indicators_hand_case():
    row = _households(_family(on_every_row=False)).row(0, named=True)
    a33 = 12000 + 3000 + 0 + 1500 - 1000  # A28 + A29 + A30 (blank) + A31 - A32
    assert row["a33_net_income"] == pytest.approx(15500.0) == a33
    assert row["a34_per_capita"] == pytest.approx(15500 / 3)
    assert row["a37_disposable"] == pytest.approx(15500 + 500 - 2000)
    assert row["a38_per_capita"] == pytest.approx(14000 / 3)


def test_missing_income_gives_null_indicators_without_crashing():
    rows = [{"household_id": "H9", "name": "王", "id_number": OTHER, "relation": "户主"}]
    row = _households(rows).row(0, named=True)
    assert [row[c] for c in ("a33_net_income", "a34_per_capita", "a37_disposable", "a38_per_capita")] == [None] * 4
    assert row["household_size"] == 1 and row["members"] == 1


def test_household_fields_from_the_first_member_when_the_head_has_none():
    rows = _family(on_every_row=False)
    rows[0] = {k: v for k, v in rows[0].items() if k not in HOUSEHOLD}  # head row blank
    rows[2] |= {"township": "石门乡", "village": "石门村", "wages": "100"}
    rows[1] |= {"village": "东门村"}
    row = _households(rows).row(0, named=True)
    assert (row["township"], row["village"], row["wages"], row["household_size"]) == ("石门乡", "东门村", 100.0, 3)
    assert row["a33_net_income"] == 100.0


def test_no_head_row_takes_the_first_member_as_contact():
    rows = [{"household_id": "H2", "name": "甲", "id_number": SPOUSE, "relation": "配偶"},
            {"household_id": "H2", "name": "乙", "id_number": CHILD, "relation": "子"}]
    row = _households(rows).row(0, named=True)
    assert (row["head_name"], row["head_id_number"]) == ("甲", SPOUSE)


def test_persons_rows_rejected_and_noted():
    rows = _family(on_every_row=False) + [
        {"household_id": None, "name": "无户", "id_number": OTHER},
        {"household_id": "H3", "name": "重复", "id_number": HEAD.lower()},
        {"household_id": "H3", "name": "坏号", "id_number": "3.21202199001011E+17"},
    ]
    rows[1] |= {"household_size": "三", "risk_eliminated": "不知道", "wages": "很多"}
    result = validate.validate_roster(_roster(rows), month=MONTH)
    codes = dict(zip(result.rejected["row_number"], result.rejected["reason_code"]))
    assert codes == {6: "roster_household_missing", 7: "duplicate_in_list", 8: "id_float_mangled"}
    assert result.rejected["id_number"].to_list() == [OTHER, HEAD, None]  # the validator's ID, unless it was the fault
    assert set(result.rejected["list_key"]) == {"roster"}
    assert {(r["row_number"], r["note_code"]) for r in result.notes.to_dicts()} == {
        (4, "number_unparsed"), (4, "choice_unrecognised"), (4, "amount_unparsed")}
    assert result.accepted.height + result.rejected.height == len(rows)
    persons = result.accepted
    assert persons.columns[:17] == _columns("roster.persons")
    assert persons["is_head"].to_list() == [True, False, False]
    assert persons["sex"].to_list() == ["女", "男", "男"]
    assert persons["township"].to_list() == ["城关镇"] * 3  # members' blank places filled from the head


def test_build_places_counts():
    rows = _family(on_every_row=False) + [
        {"household_id": "H2", "name": "李", "id_number": OTHER, "relation": "户主", "township": "城关镇",
         "village": "西门村", "division_code": "360799001002"}]
    townships, villages = households.build_places(_households(rows), MONTH)
    assert townships.columns == _columns("roster.townships") and villages.columns == _columns("roster.villages")
    assert townships.rows() == [(MONTH, "城关镇", "360799001", 2, 4)]
    assert villages.rows() == [(MONTH, "城关镇", "东门村", "360799001001", 1, 3),
                               (MONTH, "城关镇", "西门村", "360799001002", 1, 1)]


def test_empty_roster():
    empty = pl.DataFrame(schema={"source_file": pl.String, "sheet": pl.String, "row_number": pl.Int64,
                                 "is_total_row": pl.Boolean, "raw": pl.String})
    result = validate.validate_roster(empty, month=MONTH)
    built = households.build_households(result.households, MONTH)
    townships, villages = households.build_places(built, MONTH)
    assert (result.accepted.height, built.height, townships.height, villages.height) == (0, 0, 0, 0)


def _valid_id(sequence: int) -> str:
    """A distinct valid ID; its check character from python-stdnum, the reference for fangpin.ids."""
    from stdnum.cn import ric

    body = f"36079919800101{sequence:03d}"
    return body + ric.calc_check_digit(body + "?")  # stdnum's function ignores the last (check) position


def test_roster_amounts_read_where_plain_equal_each_cells_own_parse_and_notes():
    """A household's amounts repeat on every member's row and are mostly plain numbers, so they are cast where plain
    and parsed only elsewhere (values.amount_where_needed); every row must still get its own cell's value, and every
    unusable cell its own note."""
    from fangpin.config import registry
    from fangpin.values import parse_amount

    texts = ["12,000", "1.2万元", "很多", "", None, "￥800", "12,000", "很多", " 3000元 ", "nan", "2500.5", "inf"]
    rows = [{"household_id": f"H{i}", "name": f"人{i}", "id_number": _valid_id(i), "relation": "户主",
             "township": "城关镇", "wages": texts[i % len(texts)], "compliant_oop": texts[(i * 3) % len(texts)]}
            for i in range(40)]
    result = validate.validate_roster(_roster(rows), month=MONTH)
    assert result.accepted.height == len(rows)
    labels = validate._labels(registry().roster_headers)
    for column in ("wages", "compliant_oop"):
        cells = pl.DataFrame({"cell": [row[column] for row in rows]}, schema={"cell": pl.String})
        expected = cells.select(parse_amount(pl.col("cell"))).to_series().to_list()
        assert result.accepted[column].to_list() == expected
        unusable = {3 + i for i, (text, value) in enumerate(zip(cells["cell"], expected))
                    if text is not None and text.strip() and value is None}
        noted = set(result.notes.filter((pl.col("note_code") == "amount_unparsed")
                                        & (pl.col("column_name") == labels[column]))["row_number"])
        assert unusable and noted == unusable


def test_places_and_answers_cleaned_once_per_distinct_text_equal_each_cells_own_cleaning():
    """Places, relations and answers repeat down a roster, so they are cleaned once per distinct text
    (validate._by_value) in one batch with the amounts; every row must get its own cell's cleaned value, and an
    unrecognised answer its own note."""
    from fangpin.values import cell_text

    townships = ["城关镇", " 城 关镇 ", "\u3000城关镇", "河口乡", None, "河口乡 "]
    answers = ["是", "否", " 是 ", "也许", None, "   "]
    rows = [{"household_id": f"H{i}", "name": f"人 {i}", "id_number": _valid_id(i), "relation": "户主",
             "township": townships[i % len(townships)], "risk_eliminated": answers[(i * 5) % len(answers)],
             "labour": [" 普通劳动力", "无劳动力", None][i % 3]}
            for i in range(36)]
    result = validate.validate_roster(_roster(rows), month=MONTH)
    accepted = result.accepted.sort("row_number")
    households = {row["household_id"]: row for row in rows}

    def cleaned(texts: list, squeeze: bool) -> list:
        expr = cell_text(pl.col("cell"))
        expr = expr.str.replace_all(r"\s", "") if squeeze else expr
        return pl.DataFrame({"cell": texts}, schema={"cell": pl.String}).select(expr).to_series().to_list()

    assert accepted["name"].to_list() == [f"人{i}" for i in range(36)]
    assert accepted["township"].to_list() == cleaned([households[h]["township"] for h in accepted["household_id"]],
                                                     squeeze=True)
    assert accepted["labour"].to_list() == cleaned([households[h]["labour"] for h in accepted["household_id"]],
                                                   squeeze=False)
    noted = set(result.notes.filter(pl.col("note_code") == "choice_unrecognised")["row_number"])
    assert noted == {3 + i for i, row in enumerate(rows) if row["risk_eliminated"] == "也许"}


def test_a_rejected_roster_row_keeps_its_own_file_s_original_cells_though_accepted_rows_never_encode_theirs(
        tmp_path, monkeypatch):
    """The roster's original cells (`raw`) are encoded for rejected rows only, each with its own file's headers in
    the file's order, unmapped and duplicated headers included; accepted rows are never encoded."""
    import json

    import openpyxl

    folder = tmp_path / "raw" / MONTH / "roster"
    folder.mkdir(parents=True)
    book = openpyxl.Workbook()
    book.active.append(["户编号", "姓名", "身份证号码", "备注", "姓名"])
    book.active.append(["H1", "张三", _valid_id(1), "户主", "张老三"])
    book.active.append(["H1", "李四", "123", None, None])  # a bad ID: rejected
    book.save(folder / "花名册（1）.xlsx")
    (folder / "花名册（2）.csv").write_text(
        f"序号,户号,姓名,身份证号\n1,,王五,{_valid_id(2)}\n2,H2,赵六,{_valid_id(3)}\n", encoding="utf-8")

    def whole_table_encoded(table):
        raise AssertionError(f"{table.source_file}: every row's raw cells encoded")

    monkeypatch.setattr(reading.SheetTable, "with_raw", whole_table_encoded)
    encoded_rows = []
    real = reading.raw_of_rows
    monkeypatch.setattr(reading, "raw_of_rows", lambda tables, rows: encoded_rows.append(len(rows)) or real(tables, rows))

    month_roster = ingest.load_roster(tmp_path, MONTH)

    rejected = month_roster.rejected.sort("source_file")
    assert rejected["reason_code"].to_list() == ["id_bad_length", "roster_household_missing"]
    assert [json.loads(raw) for raw in rejected["raw"]] == [
        {"户编号": "H1", "姓名": "李四", "身份证号码": "123", "备注": None, "姓名_2": None},
        {"序号": "1", "户号": None, "姓名": "王五", "身份证号": _valid_id(2)},
    ]
    assert list(json.loads(rejected["raw"][0])) == ["户编号", "姓名", "身份证号码", "备注", "姓名_2"]
    assert month_roster.persons["name"].sort().to_list() == ["张三", "赵六"]
    assert encoded_rows == [2]  # the two rejected rows, nothing else


def test_households_at_roster_scale_skip_the_row_checks_and_keep_the_schema_check(monkeypatch):
    """pandera's row checks stop at roster scale for households as for persons (a million-person county has ~290,000):
    a household whose A38 disagrees with its incomes is refused on a small roster, passed on a large one (where the
    Polars formulas that built it are the rule), and a wrong type is refused at any size."""
    import pandera.errors
    from schemas import roster as models

    built = _households(_family(on_every_row=False))
    wrong = built.with_columns(pl.col("a38_per_capita") + 1.0)
    refused = (pandera.errors.SchemaError, pandera.errors.SchemaErrors)
    with pytest.raises(refused):
        models.checked(models.HouseholdsModel, wrong)
    monkeypatch.setattr(models, "ROW_CHECKS_UP_TO", 0)
    assert models.checked(models.HouseholdsModel, wrong).equals(wrong)
    with pytest.raises(refused):
        models.checked(models.HouseholdsModel, built.with_columns(pl.col("household_size").cast(pl.Int64)))
    seen: list[int] = []
    monkeypatch.setattr(models, "checked", lambda model, frame: seen.append(frame.height) or frame)
    _households(_family(on_every_row=False))
    assert seen == [1], "build_households checks its frame through schemas.roster.checked"


def test_a_household_number_typed_with_an_apostrophe_or_full_width_digits_is_one_household():
    """A CSV export whose head rows carry '3607990010010001 split every household in two."""
    rows = _family(on_every_row=False)
    rows[0]["household_id"], rows[1]["household_id"], rows[2]["household_id"] = "'3607990010010001", \
        "3607990010010001", "３６０７９９００１００１０００１ "
    result = validate.validate_roster(_roster(rows), month=MONTH)
    assert result.accepted["household_id"].unique().to_list() == ["3607990010010001"]
    assert households.build_households(result.households, MONTH).height == 1


def test_a_household_number_whose_digits_excel_lost_is_rejected_not_merged():
    """17-digit 户编号 stored as numbers: 36079910120400016 and ...017 are the same float, so they would be one
    household of strangers; the reader shows them as Excel does (3.60799101204E+16) and validation rejects them."""
    rows = [{"household_id": "3.60799101204E+16", "name": name, "id_number": number, "relation": "户主"}
            for name, number in (("甲", HEAD), ("乙", OTHER))]
    result = validate.validate_roster(_roster(rows), month=MONTH)
    assert result.accepted.is_empty()
    assert result.rejected["reason_code"].to_list() == ["roster_household_float_mangled"] * 2
    assert "3.60799101204E+16" in result.rejected.item(0, "reason")
    assert result.rejected["column_name"].to_list() == ["户编号"] * 2


def test_a_blank_township_is_taken_from_the_division_code_else_noted():
    """A warned household without a township reaches no township's workbook: the roster fills it from the
    区划代码 other households share, and notes the rows it cannot fill."""
    placed = [{"household_id": f"H{i}", "name": f"甲{i}", "id_number": number, "relation": "户主",
               "township": township, "division_code": code}
              for i, (number, township, code) in enumerate(
                  ((HEAD, "城关镇", "360799001001"), (SPOUSE, None, "360799001002"), (CHILD, None, None),
                   (OTHER, None, "360799002001")))]
    result = validate.validate_roster(_roster(placed), month=MONTH)
    assert result.accepted.sort("household_id")["township"].to_list() == ["城关镇", "城关镇", None, None]
    notes = {(r["row_number"], r["note_code"]) for r in result.notes.to_dicts()}
    assert notes == {(4, "township_from_code"), (5, "township_missing"), (6, "township_missing")}
    assert "360799001002" in result.notes.filter(pl.col("note_code") == "township_from_code").item(0, "note")


def test_households_take_what_validation_fills_in_after_grouping():
    """Validation groups the roster by household once, and build_households takes that grouping instead of sorting
    and grouping every person row again; what validation fills in after grouping (a blank township from a member's
    division code) and the unreadable-income flag must still reach the household."""
    rows = [
        {"household_id": "H0", "name": "甲", "id_number": HEAD, "relation": "户主", "township": "城关镇",
         "division_code": "360799001001"},
        # no row of H1 names a township: its head's code is nowhere else in the roster, its member's is 城关镇's
        {"household_id": "H1", "name": "乙", "id_number": SPOUSE, "relation": "户主", "division_code": "360799009001"},
        {"household_id": "H1", "name": "丙", "id_number": CHILD, "relation": "子", "division_code": "360799001002"},
        {"household_id": "H2", "name": "丁", "id_number": OTHER, "relation": "户主", "township": "城关镇",
         "wages": "约3000"},  # its only income item unreadable
    ]
    by_id = {row["household_id"]: row for row in _households(rows).to_dicts()}
    assert by_id["H1"]["township"] == "城关镇"
    assert by_id["H1"]["division_code"] == "360799009001"  # the head's
    assert by_id["H2"]["income_unreadable"] and by_id["H2"]["a33_net_income"] is None
    assert not by_id["H0"]["income_unreadable"]


def test_roster_files_carry_their_row_counts_and_a_refused_file_is_not_one_row(tmp_path):
    """A roster file refused whole (half a county missing) was logged as "拒收 1 行" and left out of the summary;
    roster files had no row counts in raw.received_files."""
    from badinput import write_openpyxl
    from fangpin.summary import summary_lines
    from fangpin.warehouse import ensure_schema

    roster_dir = tmp_path / "raw" / MONTH / "roster"
    roster_dir.mkdir(parents=True)
    write_openpyxl(roster_dir / "花名册1.xlsx", {"Sheet1": [["户编号", "姓名", "证件号码", "与户主关系"],
                                                        ["H1", "张三", HEAD, "户主"], ["H1", "张母", "123", "配偶"]]})
    (roster_dir / "花名册2.xlsx").write_bytes(b"PK\x03\x04 cut off")

    month_roster = ingest.load_roster(tmp_path, MONTH)
    scan = reading.MonthScan([], {}, [])
    files = ingest.received_files_frame(scan, month_roster, [], MONTH, {}, datetime(2026, 11, 10))

    counts = {row["source_file"].rsplit("/", 1)[1]: (row["rows_read"], row["rows_accepted"], row["rows_rejected"])
              for row in files.to_dicts()}
    assert counts == {"花名册1.xlsx": (2, 1, 1), "花名册2.xlsx": (None, None, None)}
    con = duckdb.connect()
    ensure_schema(con)
    con.register("rejected", month_roster.rejected.select("month", "source_file", "row_number", "list_key",
                                                          "reason_code", "reason"))
    con.execute("INSERT INTO quarantine.rejected_rows (month, source_file, row_number, list_key, reason_code, reason) "
                "SELECT * FROM rejected")
    assert any("花名册文件或工作表无法处理 roster files or sheets refused: 1" in line
               for line in summary_lines(con, MONTH))


def test_household_type_and_monitoring_category_are_read_by_what_they_mean():
    """无, / or 非监测对象 in 监测对象类别 made a household "already monitored"; 一般户 or 脱贫人口 lost the category
    and weights the form's words carry. Unknown words are kept as written, and noted."""
    written = [("一般户", "无"), ("脱贫人口", "/"), ("脱贫户(监测)", "边缘户"), ("已脱贫户", " 非监测对象 "),
               ("建档户", "重点户"), (None, None)]
    numbers = [HEAD, SPOUSE, CHILD, OTHER, "110105194912310038", "110105194912310046"]
    rows = [{"household_id": f"H{i}", "name": f"甲{i}", "id_number": number, "relation": "户主",
             "household_type": kind, "monitoring_category": category}
            for i, (number, (kind, category)) in enumerate(zip(numbers, written))]
    result = validate.validate_roster(_roster(rows), month=MONTH)
    persons = result.accepted.sort("household_id")
    assert persons["household_type"].to_list() == ["一般农户", "脱贫户", "脱贫户", "脱贫户", "建档户", None]
    assert persons["monitoring_category"].to_list() == [None, None, "边缘易致贫户", None, "重点户", None]
    kept = result.notes.filter(pl.col("note_code") == "choice_kept")
    assert kept.select("row_number", "column_name").rows() == [(7, "户类型"), (7, "监测对象类别")]
    assert "建档户" in kept.item(0, "note") and "脱贫户、一般农户" in kept.item(0, "note")


def test_an_income_only_unreadable_cells_fill_leaves_the_households_income_unknown():
    """工资性收入 "-" or "约3000" was noted, then counted as 0: a household above the line became 边缘易致贫户 with
    a "below the line" reason. An item whose only filled cells cannot be read makes A33-A38 unknown (待核实)."""
    read_as = {"H1": "-", "H2": "约3000", "H3": "3,000元"}
    rows = []
    for household_id, wages in read_as.items():
        family = _family(on_every_row=False)
        for row, number in zip(family, {"H1": (HEAD, SPOUSE, CHILD), "H2": (OTHER, "110105194912310038",
                                                                         "110105194912310046"),
                                        "H3": ("110105194912310054", "110105194912310062",
                                               "110105194912310070")}[household_id]):
            row |= {"household_id": household_id, "id_number": number}
        family[0]["wages"] = wages
        rows += family
    built = _households(rows).sort("household_id")
    assert built["a33_net_income"].to_list()[:2] == [None, None]
    assert built["a34_per_capita"].to_list()[:2] == [None, None]
    assert built["a33_net_income"].to_list()[2] == 3000 + 3000 + 1500 - 1000  # wages, business, transfer - costs


def test_what_is_odd_about_a_household_is_noted_where_it_is():
    """Township files that each number their households 1, 2, 3 merge households across townships; two 户主 rows,
    or a 家庭人口数 that disagrees with the members listed, change the household silently otherwise."""
    rows = [
        {"household_id": "1", "name": "甲", "id_number": HEAD, "relation": "户主", "township": "城关镇",
         "household_size": "2"},
        {"household_id": "1", "name": "乙", "id_number": SPOUSE, "relation": "户主", "township": "河口镇"},
        {"household_id": "2", "name": "丙", "id_number": CHILD, "relation": "户主", "township": "城关镇",
         "household_size": "5"},
        {"household_id": "3", "name": "丁", "id_number": OTHER, "relation": "户主", "township": "城关镇",
         "household_size": "1"},
    ]
    notes = validate.validate_roster(_roster(rows), month=MONTH).notes
    assert sorted(notes.select("row_number", "note_code").rows()) == [
        (3, "household_heads"), (4, "household_heads"), (4, "household_townships"), (5, "household_size_members")]
    assert "花名册中该户有1人" in notes.filter(pl.col("note_code") == "household_size_members").item(0, "note")


def test_a_household_is_noted_though_no_row_leaves_a_place_blank():
    """Rows reach their household's facts by a join only when a place is blank or a household is odd
    (validate._roster_values); a roster whose every row names its township, village and code must still have its
    two 户主 rows and its wrong 家庭人口数 noted, and a clean one no household note."""
    placed = {"township": "城关镇", "village": "东门村", "division_code": "360799001001"}
    rows = [
        {"household_id": "1", "name": "甲", "id_number": HEAD, "relation": "户主", "household_size": "2", **placed},
        {"household_id": "1", "name": "乙", "id_number": SPOUSE, "relation": "户主", **placed},
        {"household_id": "2", "name": "丙", "id_number": CHILD, "relation": "户主", "household_size": "5", **placed},
    ]
    notes = validate.validate_roster(_roster(rows), month=MONTH).notes
    assert sorted(notes.select("row_number", "note_code").rows()) == [
        (3, "household_heads"), (4, "household_heads"), (5, "household_size_members")]
    clean = [rows[0], {**rows[1], "relation": "配偶"}, {**rows[2], "household_size": "1"}]
    assert validate.validate_roster(_roster(clean), month=MONTH).notes.is_empty()


def test_members_rows_that_disagree_on_the_household_are_noted_once_at_the_head():
    """The national export repeats household fields on every member's row. Where two rows of one household disagree
    (脱贫户 on one, 一般农户 on another; two wage figures), the household takes the head's value, as before, and the
    head's row says so, naming both values, once per field; agreeing or blank rows say nothing."""
    rows = [
        {"household_id": "1", "name": "乙", "id_number": SPOUSE, "relation": "配偶", "household_type": "一般农户",
         "wages": "1000"},
        {"household_id": "1", "name": "甲", "id_number": HEAD, "relation": "户主", "household_type": "脱贫户",
         "wages": "3000", "risk_eliminated": "是"},
        {"household_id": "1", "name": "丙", "id_number": CHILD, "relation": "子", "household_type": "脱贫户",
         "wages": "3500", "risk_eliminated": "否"},
        {"household_id": "2", "name": "丁", "id_number": OTHER, "relation": "户主", "household_type": "脱贫户",
         "wages": "3000"},
    ]
    result = validate.validate_roster(_roster(rows), month=MONTH)
    notes = result.notes.filter(pl.col("note_code") == "household_values_differ").sort("column_name")
    assert notes.select("row_number", "column_name").rows() == [(4, "工资性收入"), (4, "户类型"), (4, "风险是否消除")]
    wages, kind, eliminated = notes["note"].to_list()
    # the head's 3000 is taken, between the members' 1000 and 3500: every value named, the one taken first
    assert "户的信息取“3000”（户主行的值" in wages and "其他成员行填的是“1000”、“3500”；" in wages
    assert "户编号“1”" in wages
    assert "取“脱贫户”" in kind and "其他成员行填的是“一般农户”；" in kind
    assert "取“是”" in eliminated and "其他成员行填的是“否”；" in eliminated
    built = households.build_households(result.households, MONTH)
    assert built["household_type"].to_list() == ["脱贫户", "脱贫户"] and built["wages"].to_list() == [3000, 3000]


def test_the_same_person_in_two_households_is_named_as_such():
    """The same ID in households 0021 and 0013 was rejected as "重复报送" (sent twice), naming neither household."""
    rows = [{"household_id": "0013", "name": "甲", "id_number": HEAD, "relation": "户主"},
            {"household_id": "0021", "name": "甲", "id_number": HEAD, "relation": "子"},
            {"household_id": "0013", "name": "甲", "id_number": HEAD, "relation": "户主"}]
    rejected = validate.validate_roster(_roster(rows), month=MONTH).rejected.sort("row_number")
    assert rejected["reason_code"].to_list() == ["duplicate_in_list", "duplicate_in_list"]
    two, same = rejected["reason"].to_list()
    assert "户编号“0013”" in two and "户编号“0021”" in two and "同一人只能在一户" in two
    assert "同一人只能在一户" not in same and "第3行是同一人" in same


def test_a_roster_without_duplicates_skips_the_duplicate_window_with_the_same_result(monkeypatch):
    """With no person on two clean rows, `validate._mark_duplicates` only adds empty columns (no window over the
    roster's IDs): accepted rows, rejected rows with their reasons, and notes equal those of the full marking, and a
    duplicate is still found when there is one."""
    rows = _family(on_every_row=False) + [
        {"household_id": None, "name": "无户", "id_number": OTHER},
        {"household_id": "H3", "name": "坏号", "id_number": "3.21202199001011E+17"},
        {"household_id": "H3", "name": "丙", "id_number": HEAD[:-1] + ("0" if HEAD[-1] != "0" else "1")},
    ]
    skipped = validate.validate_roster(_roster(rows), month=MONTH)
    assert not skipped.rejected.filter(pl.col("reason_code") == "duplicate_in_list").height
    monkeypatch.setattr(validate, "_has_duplicates", lambda frame, within: True)
    marked = validate.validate_roster(_roster(rows), month=MONTH)
    for part in ("accepted", "rejected", "notes"):
        assert getattr(skipped, part).equals(getattr(marked, part)), part
    assert skipped.rejected.height == 3

    monkeypatch.undo()
    twice = validate.validate_roster(_roster([*rows, {"household_id": "H3", "name": "重复", "id_number": HEAD}]),
                                     month=MONTH)
    assert twice.rejected.filter(pl.col("reason_code") == "duplicate_in_list")["row_number"].to_list() == [9]


def test_the_no_roster_message_names_each_problem_once_in_row_order():
    """The message quoted a refused file's problem twice (as its problem and as its file's note) and put 第1000行
    before 第12行 (sorted as text)."""
    from assets.ingestion import no_roster_message

    def rejection(row, reason):
        return {"source_file": "raw/2026-10/roster/花名册.xlsx", "row_number": row, "reason": reason}

    rejected = pl.DataFrame([rejection(1000, "第1000行：身份证号码为空"), rejection(12, "第12行：身份证号码为空"),
                             {"source_file": "raw/2026-10/roster/旧.xlsx", "row_number": None, "reason": "旧.xlsx：文件无法打开"}],
                            schema={"source_file": pl.String, "row_number": pl.Int32, "reason": pl.String})
    files = [reading.ReceivedFile("raw/2026-10/roster/旧.xlsx", None, "roster", "x", 1, datetime(2026, 11, 1),
                                  "quarantined", note="旧.xlsx：文件无法打开"),
             reading.ReceivedFile("raw/2026-10/roster/~$花名册.xlsx", None, "roster", "y", 1, datetime(2026, 11, 1),
                                  "ignored", note="Excel临时锁定文件（~$开头），已忽略")]
    empty = pl.DataFrame()
    message = no_roster_message(MONTH, ingest.RosterMonth(3, empty, empty, empty, empty, rejected, empty, files))
    assert message.count("文件无法打开") == 1
    assert message.index("第12行") < message.index("第1000行") and "临时锁定文件" in message


def test_roster_names_are_written_without_any_whitespace_which_probable_matching_relies_on():
    """fangpin.linkage compares a list's cleaned name with roster.persons.name as written: the names validation
    accepts hold no space of any kind (tabs, full-width and no-break spaces, line breaks)."""
    rows = _family(on_every_row=True)
    for row, name in zip(rows, ["张 父", "张\u3000母", " 张\t子\n"]):
        row["name"] = name
    names = validate.validate_roster(_roster(rows), month=MONTH).accepted["name"].to_list()
    assert names == ["张父", "张母", "张子"]
    assert not any(ch.isspace() for name in names for ch in name)
