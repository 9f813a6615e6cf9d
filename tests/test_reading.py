"""fangpin.reading on hand-made department files: what clerks really send, read as text and recognised."""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import zipfile
from pathlib import Path

import fastexcel
import openpyxl
import polars as pl
from polars.testing import assert_frame_equal
import pytest
import xlwt
from isal import isal_zlib

from fangpin import reading
from fangpin.config import registry
from schemas.reasons import ignored
from badinput import write_openpyxl

MONTH = "2026-10"
REG = registry()
ID_A = "32120219900101123X"
ID_B = "321202199001011234"


def _xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    """A workbook with one sheet per entry, rows written from A1 (None = empty cell)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_openpyxl(path, sheets)


def _read(path: Path, data_dir: Path):
    return reading.read_table_file(path, data_dir, REG.list_headers, REG.list_required)


def _dept_file(data_dir: Path, folder: str, name: str) -> Path:
    return data_dir / "raw" / MONTH / folder / name


PERSON_ROWS = [["序号", "姓名", "身份证号码", "乡镇", "村"], [1, "张三", ID_A, "城关镇", "东村"]]


def _persons(tag: str) -> list[list]:
    """PERSON_ROWS with a distinct village, so two files never share a SHA-256 by accident."""
    return [PERSON_ROWS[0], [1, "张三", ID_A, "城关镇", tag]]


# ---------------------------------------------------------------------------------------------- sheet layout
def test_title_rows_header_variants_total_and_blank_rows(tmp_path):
    path = tmp_path / "低保.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet["A1"] = "XX县2026年10月新增低保人员名单"
    sheet.merge_cells("A1:G1")
    sheet["A2"] = "填报单位：县民政局"
    sheet.append(["序号", "姓　名", "身份证号码（18位）", "乡镇（街道）：", "村(社区)", "月保障金额", "备注"])
    sheet.append([1, "张三", ID_A, "城关镇", "东村", "500", "新增"])
    sheet.append([])
    sheet.append([2, "李四", ID_B, "河口镇", "西村", 300, None])
    sheet.append([None, "  ", None, None, None, None, None])  # whitespace only: blank to a clerk
    sheet.append(["合 计", None, None, None, None, 800, None])
    book.save(path)

    tables, problems, notes = _read(path, tmp_path)

    assert problems == [] and notes == []
    [table] = tables
    assert table.header_row == 3
    assert table.title == "XX县2026年10月新增低保人员名单 填报单位：县民政局"
    assert table.unmapped_headers == ["序号", "备注"]
    assert table.blank_rows == 2
    frame = table.with_raw()
    assert frame["row_number"].to_list() == [4, 6, 8]
    assert frame["is_total_row"].to_list() == [False, False, True]
    assert frame["name"].to_list() == ["张三", "李四", None]
    assert frame["id_number"].to_list() == [ID_A, ID_B, None]
    assert frame["township"].to_list()[:2] == ["城关镇", "河口镇"]
    assert frame["amount"].to_list() == ["500", "300", "800"]  # integral numbers as "300", not "300.0"
    assert {name: dtype for name, dtype in frame.schema.items()} == {
        "name": pl.String, "id_number": pl.String, "township": pl.String, "village": pl.String,
        "amount": pl.String, "row_number": pl.Int64, "is_total_row": pl.Boolean, "raw": pl.String,
        "source_file": pl.String, "sheet": pl.String,
    }
    raw = json.loads(frame["raw"][0])
    assert raw["姓　名"] == "张三" and raw["备注"] == "新增" and raw["序号"] == "1"
    assert set(frame["source_file"]) == {"低保.xlsx"} and set(frame["sheet"]) == {"Sheet1"}


def test_zero_width_spaces_and_byte_order_marks_are_blank_to_the_reader_as_to_validation(tmp_path):
    """One rule of what is blank (values.cell_text): a cell holding only U+200B or a BOM is empty, as a clerk sees
    it, and a row of such cells is a blank row, not a person with no name."""
    path = tmp_path / "低保.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["姓名", "身份证号码", "乡镇", "村"])
    sheet.append(["\u200b张三\u3000", ID_A, "\ufeff", "东村"])
    sheet.append(["\u200b", "\ufeff", " ", None])
    sheet.append(["李四", ID_B, "河口镇", "西村"])
    book.save(path)

    [table], problems, _ = _read(path, tmp_path)

    assert problems == [] and table.blank_rows == 1
    frame = table.with_raw()
    assert frame.select("row_number", "name", "township").rows() == [(2, "张三", None), (4, "李四", "河口镇")]


def test_table_starting_mid_sheet_keeps_excel_row_numbers_and_unlabelled_columns(tmp_path):
    path = tmp_path / "低保.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["B3"], sheet["C3"], sheet["D3"] = "姓名", "身份证号", "姓名"  # a duplicated header: first one is mapped
    sheet["B4"], sheet["C4"], sheet["D4"], sheet["E4"] = "王五", ID_A, "别名", "无表头的值"
    book.save(path)

    [table], problems, _ = _read(path, tmp_path)

    assert problems == []
    assert table.header_row == 3
    assert table.frame["row_number"].to_list() == [4]
    assert table.frame["name"].to_list() == ["王五"]
    raw = json.loads(table.with_raw()["raw"][0])
    assert raw == {"姓名": "王五", "身份证号": ID_A, "姓名_2": "别名", "列E": "无表头的值"}


def test_no_header_missing_column_and_notes_sheet(tmp_path):
    path = _xlsx(tmp_path / "低保.xlsx", {
        "数据": [["张三", ID_A, "城关镇", "东村"]],  # records without any header
        "缺列": [["姓名", "乡镇"], ["张三", "城关镇"]],  # header without 身份证号码
        "填表说明": [["填表说明："], ["1. 身份证号码请填写18位"], ["2. 每月10日前报送"]],
        "空": [],
    })

    tables, problems, notes = _read(path, tmp_path)

    assert tables == []
    assert [(p.sheet, p.reason_code) for p in problems] == [("数据", "no_header"), ("缺列", "missing_required_column")]
    assert "身份证号码" in problems[1].reason and "缺列" in problems[1].reason
    assert len(notes) == 2 and "填表说明" in notes[0] and "空" in notes[1]


# ---------------------------------------------------------------------------------------------- cell values
def test_excel_number_ids_dates_and_apostrophe_text(tmp_path):
    path = tmp_path / "低保.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["姓名", "身份证号码", "残疾人证号", "审批日期", "金额（元）"])
    sheet.append(["数字", int(ID_B), None, dt.date(2026, 10, 5), 1234.5])
    sheet.append(["旧证", 321202900101123, None, dt.datetime(2026, 10, 6), 12.0])
    sheet.append(["撇号", "'" + ID_A, "'32120219900101123X41", "2026/10/5", "1,234.50"])
    sheet.append(["文本", ID_B, 32120219900101123441, "2026年10月5日", None])
    book.save(path)

    [table], problems, _ = _read(path, tmp_path)

    assert problems == []
    frame = table.frame
    assert frame["id_number"].to_list() == ["3.21202199001011E+17", "321202900101123", "'" + ID_A, ID_B]
    assert frame["disability_cert"].to_list() == [None, None, "'32120219900101123X41", "3.21202199001011E+19"]
    assert frame["event_date"].to_list() == ["2026-10-05", "2026-10-06", "2026/10/5", "2026年10月5日"]
    assert frame["amount"].to_list() == ["1234.5", "12", "1,234.50", None]


def test_excel_number_text_matches_python_format():
    values = [321202199001011234.0, 321202900101123.0, 999999999999999.0, 1e15, 1.5e15, 9999999999999999.0,
              12345678901234567890.0, -321202199001011234.0, 12.0, 1234.5, 0.0, 1234567890123455e4]
    out = pl.DataFrame({"x": values}).select(reading.excel_number_text(pl.col("x"))).to_series().to_list()
    assert out == [format(v, ".15g").upper() for v in values]
    assert out[0] == "3.21202199001011E+17"


def test_xls_written_by_xlwt(tmp_path):
    path = tmp_path / "特困人员.xls"
    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    sheet.write(0, 0, "2026年10月特困供养人员")
    for col, text in enumerate(["姓名", "公民身份号码", "认定日期"]):
        sheet.write(1, col, text)
    sheet.write(2, 0, "赵六")
    sheet.write(2, 1, ID_A)
    sheet.write(2, 2, dt.date(2026, 10, 8), xlwt.easyxf(num_format_str="YYYY-MM-DD"))
    sheet.write(3, 0, "钱七")
    sheet.write(3, 1, float(ID_B))
    book.save(str(path))

    [table], problems, _ = _read(path, tmp_path)

    assert problems == []
    assert table.header_row == 2 and table.title == "2026年10月特困供养人员"
    assert table.frame["id_number"].to_list() == [ID_A, "3.21202199001011E+17"]
    assert table.frame["event_date"].to_list() == ["2026-10-08", None]
    assert table.frame["row_number"].to_list() == [3, 4]


# ---------------------------------------------------------------------------------------------- CSV
def test_csv_gb18030_with_ragged_title_row(tmp_path):
    text = ("XX县2026年10月临时救助名单\r\n"
            "\r\n"
            "姓名,身份证号,救助金额（元）,救助原因,备注\r\n"
            f'张三,{ID_A},"1,500",因病住院,\r\n'
            f"李四,{ID_B},800,火灾,多出的字段,再多一个\r\n"
            "合计,,2300\r\n")
    path = tmp_path / "临时救助.csv"
    path.write_bytes(text.encode("gb18030"))

    [table], problems, _ = _read(path, tmp_path)

    assert problems == []
    assert table.sheet == "" and table.header_row == 3 and table.title == "XX县2026年10月临时救助名单"
    frame = table.with_raw()
    assert frame["row_number"].to_list() == [4, 5, 6]
    assert frame["name"].to_list() == ["张三", "李四", "合计"]
    assert frame["amount"].to_list() == ["1,500", "800", "2300"]
    assert frame["detail"].to_list() == ["因病住院", "火灾", None]
    assert frame["is_total_row"].to_list() == [False, False, True]
    raw = json.loads(frame["raw"][1])
    assert raw["备注"] == "多出的字段" and raw["列F"] == "再多一个"  # ragged rows keep every field


def test_csv_utf8_with_bom_and_without(tmp_path):
    body = f"身份证号码,姓名\n{ID_A},张三\n"
    for name, data in (("bom.csv", b"\xef\xbb\xbf" + body.encode()), ("plain.csv", body.encode())):
        path = tmp_path / name
        path.write_bytes(data)
        [table], problems, _ = _read(path, tmp_path)
        assert problems == []
        assert table.header_row == 1 and table.unmapped_headers == []
        assert table.frame["id_number"].to_list() == [ID_A]
        assert table.frame["name"].to_list() == ["张三"]


def test_large_csv_reads_fast(tmp_path):
    import time

    lines = ["姓名,身份证号码,乡镇,村,金额"] + [f"张{i},3212021990{i:08d},城关镇,东村,{i}.5" for i in range(200_000)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines), encoding="gb18030")
    started = time.perf_counter()
    [table], _, _ = _read(path, tmp_path)
    assert table.frame.height == 200_000
    assert table.frame["row_number"][-1] == 200_001
    assert time.perf_counter() - started < 10


# ---------------------------------------------------------------------------------------------- recognition
def test_workbook_with_two_lists_and_notes_sheet_in_chinese_folder(tmp_path):
    _xlsx(_dept_file(tmp_path, "民政局", "民政局2026年10月报送.xlsx"), {
        "低保": PERSON_ROWS,
        "分散供养特困": [["XX县新增特困人员名单"], ["姓名", "身份证号码"], ["李四", ID_B], ["王五", ID_A]],
        "说明": [["本表由县民政局填报"]],
    })

    scan = reading.scan_month(tmp_path, MONTH)

    assert scan.problems == []
    assert sorted(scan.tables) == ["civil_affairs.dibao", "civil_affairs.tekun"]
    assert scan.tables["civil_affairs.dibao"][0].frame["name"].to_list() == ["张三"]
    assert scan.tables["civil_affairs.tekun"][0].frame.height == 2
    [received] = scan.files
    assert received.department == "civil_affairs" and received.folder == "民政局"
    assert received.status == "read" and received.lists == ["civil_affairs.dibao", "civil_affairs.tekun"]
    assert received.source_file == "raw/2026-10/民政局/民政局2026年10月报送.xlsx"
    assert len(received.sha256) == 64 and received.size_bytes > 0


def test_a_drop_zone_linked_from_a_shared_drive_keeps_its_lineage_relative_to_the_data_dir(tmp_path):
    """raw/ (or a file in it) may be a link to a shared drive; lineage, messages and the read cache still name
    raw/<month>/..., never the drive's own folders."""
    shared = tmp_path / "shared_drive"
    _xlsx(shared / MONTH / "civil_affairs" / "低保.xlsx", {"Sheet1": _persons("一村")})
    _xlsx(tmp_path / "elsewhere" / "特困.xlsx", {"Sheet1": _persons("二村")})
    data_dir = tmp_path / "county"
    data_dir.mkdir()
    (data_dir / "raw").symlink_to(shared, target_is_directory=True)
    (shared / MONTH / "civil_affairs" / "特困人员.xlsx").symlink_to(tmp_path / "elsewhere" / "特困.xlsx")

    scan = reading.scan_month(data_dir, MONTH)

    assert scan.problems == []
    assert sorted(f.source_file for f in scan.files) == [
        f"raw/{MONTH}/civil_affairs/低保.xlsx", f"raw/{MONTH}/civil_affairs/特困人员.xlsx"]
    assert scan.tables["civil_affairs.dibao"][0].source_file == f"raw/{MONTH}/civil_affairs/低保.xlsx"
    assert reading.relative_source(tmp_path / "elsewhere" / "特困.xlsx", data_dir) == (
        tmp_path / "elsewhere" / "特困.xlsx").as_posix()  # not under the data dir at all: named in full


def test_dibao_edge_is_not_dibao_and_ambiguous_names_are_not_guessed(tmp_path):
    _xlsx(_dept_file(tmp_path, "civil_affairs", "低保.xlsx"), {"Sheet1": _persons("一村")})
    _xlsx(_dept_file(tmp_path, "civil_affairs", "低保边缘户名单.xlsx"), {"Sheet1": _persons("二村")})
    _xlsx(_dept_file(tmp_path, "civil_affairs", "低保特困合并.xlsx"), {"Sheet1": _persons("三村")})
    _xlsx(_dept_file(tmp_path, "civil_affairs", "低保特困分表.xlsx"), {"特困": _persons("四村")})

    scan = reading.scan_month(tmp_path, MONTH)

    by_file = {Path(p.source_file).name: p for p in scan.problems}
    assert by_file["低保边缘户名单.xlsx"].reason_code == "file_unrecognised"
    assert by_file["低保特困合并.xlsx"].reason_code == "file_ambiguous"
    assert "新增农村低保人员名单" in by_file["低保特困合并.xlsx"].reason
    assert len(scan.problems) == 2
    assert [Path(t.source_file).name for t in scan.tables["civil_affairs.dibao"]] == ["低保.xlsx"]
    assert [Path(t.source_file).name for t in scan.tables["civil_affairs.tekun"]] == ["低保特困分表.xlsx"]
    status = {Path(f.source_file).name: f.status for f in scan.files}
    assert status["低保边缘户名单.xlsx"] == "quarantined" and status["低保.xlsx"] == "read"


def test_recognition_falls_back_to_title_and_names_keywords_when_unrecognised(tmp_path):
    _xlsx(_dept_file(tmp_path, "housing", "10月报表.xlsx"), {"Sheet1": [["XX县新增危房改造名单"], *PERSON_ROWS]})
    _xlsx(_dept_file(tmp_path, "emergency", "10月报表.xlsx"), {"Sheet1": _persons("二村")})

    scan = reading.scan_month(tmp_path, MONTH)

    assert list(scan.tables) == ["housing.dangerous_house"]
    [problem] = scan.problems
    assert problem.reason_code == "file_unrecognised" and problem.list_key is None
    assert problem.source_file == "raw/2026-10/emergency/10月报表.xlsx" and problem.sheet == "Sheet1"
    for word in ("受灾", "灾害", "灾情"):
        assert word in problem.reason


# ---------------------------------------------------------------------------------------------- drop zone
def test_lock_files_documents_duplicates_and_unknown_folders(tmp_path):
    first = _xlsx(_dept_file(tmp_path, "民政局", "a_低保.xlsx"), {"Sheet1": PERSON_ROWS})
    copy = _dept_file(tmp_path, "民政局", "b_低保(1).xlsx")
    copy.write_bytes(first.read_bytes())
    _dept_file(tmp_path, "民政局", "~$a_低保.xlsx").write_bytes(b"\x05lock")
    _dept_file(tmp_path, "民政局", "说明.txt").write_text("十月名单", encoding="utf-8")
    _dept_file(tmp_path, "民政局", ".DS_Store").write_bytes(b"\x00\x00")
    _xlsx(_dept_file(tmp_path, "统计局", "低保.xlsx"), {"Sheet1": _persons("二村")})
    _xlsx(tmp_path / "raw" / MONTH / "roster" / "花名册.xlsx", {"Sheet1": _persons("三村")})  # not a department

    scan = reading.scan_month(tmp_path, MONTH)

    files = {f.source_file.split("/", 2)[2]: f for f in scan.files}
    assert "roster/花名册.xlsx" not in files
    assert files["民政局/a_低保.xlsx"].status == "read"
    duplicate = files["民政局/b_低保(1).xlsx"]
    assert duplicate.status == "duplicate" and duplicate.duplicate_of == "raw/2026-10/民政局/a_低保.xlsx"
    assert duplicate.note == ignored("duplicate_file", other="raw/2026-10/民政局/a_低保.xlsx")
    assert files["民政局/~$a_低保.xlsx"].status == "ignored"
    assert files["民政局/~$a_低保.xlsx"].note == ignored("lock_file")
    assert files["民政局/说明.txt"].note == ignored("not_spreadsheet")
    assert files["民政局/.DS_Store"].status == "ignored"
    assert len(scan.tables["civil_affairs.dibao"]) == 1  # the same content twice counts once
    assert files["统计局/低保.xlsx"].status == "quarantined" and files["统计局/低保.xlsx"].department is None
    [problem] = scan.problems
    assert problem.reason_code == "unknown_department" and "统计局" in problem.reason
    assert [f.source_file for f in scan.files] == sorted(f.source_file for f in scan.files)


def test_corrupt_encrypted_and_html_files_are_quarantined_not_raised(tmp_path):
    good = _xlsx(_dept_file(tmp_path, "disability", "残疾人.xlsx"), {"Sheet1": PERSON_ROWS})
    _dept_file(tmp_path, "disability", "残疾人_损坏.xlsx").write_bytes(good.read_bytes()[:400])
    _dept_file(tmp_path, "disability", "残疾人_网页.xls").write_text(
        "<html><body><table><tr><td>姓名</td></tr></table></body></html>", encoding="utf-8")
    _dept_file(tmp_path, "disability", "残疾人_空.xlsx").write_bytes(b"")

    scan = reading.scan_month(tmp_path, MONTH)

    problems = {Path(p.source_file).name: p for p in scan.problems}
    assert {name: p.reason_code for name, p in problems.items()} == {
        "残疾人_损坏.xlsx": "file_unreadable", "残疾人_网页.xls": "file_unreadable", "残疾人_空.xlsx": "file_unreadable"}
    assert "HTML" in problems["残疾人_网页.xls"].reason
    status = {Path(f.source_file).name: f.status for f in scan.files}
    assert status == {"残疾人.xlsx": "read", "残疾人_损坏.xlsx": "quarantined", "残疾人_网页.xls": "quarantined",
                      "残疾人_空.xlsx": "quarantined"}
    assert scan.tables["disability.severe"][0].frame.height == 1


# ---------------------------------------------------------------------------------------------- roster
def test_a_parquet_grid_cleans_its_text_columns_as_every_other_cell(tmp_path):
    """Text columns (strings, categories, bytes) are stripped and blanked like a sheet's cells; number, date, time
    and yes/no columns, which cannot hold a blank, are left as written: the grid equals cleaning every cell."""
    frame = pl.DataFrame({
        " 户号 ": ["H001 ", "\u3000H002", ""], "家庭人口数": [3, None, 12], "工资性收入": [1234.5, 3.21202199001011e17, None],
        "识别纳入时间": [dt.date(2026, 10, 5), None, dt.date(2025, 1, 1)], "申报时间": [dt.datetime(2026, 10, 5), None,
                                                                               dt.datetime(2026, 10, 5, 13, 45)],
        "时刻": [dt.time(8, 30), None, dt.time(0, 0)], "是否风险消除": [True, False, None],
        "户类别": pl.Series([" 脱贫户", "一般农户 ", " "], dtype=pl.Categorical), "备注": [b" x ", b"", None],
        "金额": pl.Series(["12.50", "3", None]).cast(pl.Decimal(10, 2)),
    })
    frame.write_parquet(tmp_path / "花名册.parquet")
    grid = reading._parquet_grid(tmp_path / "花名册.parquet")
    # cleaning is idempotent: cleaning the grid again changes nothing exactly when no cell was left uncleaned
    assert_frame_equal(reading._clean_cells(grid.cells), grid.cells)
    assert grid.cells.row(0)[0] == "户号" and grid.cells["c0"].to_list()[1:] == ["H001", "H002", None]
    assert grid.cells["c7"].to_list()[1:] == ["脱贫户", "一般农户", None]
    assert grid.cells["c2"].to_list()[1:] == ["1234.5", "3.21202199001011E+17", None]


def test_a_parquet_grid_writes_integers_as_polars_casts_them(tmp_path):
    """Integer columns of every width and sign become the text Polars' own cast gives (the grid takes Arrow's
    cast, which is cheaper): no ".0", a minus sign, the extremes in full, and blank stays blank."""
    integers = {"i8": pl.Int8, "u8": pl.UInt8, "i32": pl.Int32, "u32": pl.UInt32, "i64": pl.Int64, "u64": pl.UInt64}
    values = {"i8": [-128, 0, None, 127], "u8": [0, 255, None, 7], "i32": [-2**31, 2**31 - 1, None, 10],
              "u32": [0, 2**32 - 1, None, 3], "i64": [-2**63, 2**63 - 1, None, -5], "u64": [0, 2**64 - 1, None, 42]}
    frame = pl.DataFrame({name: pl.Series(values[name], dtype=dtype) for name, dtype in integers.items()})
    frame.write_parquet(tmp_path / "花名册.parquet")
    cells = reading._parquet_grid(tmp_path / "花名册.parquet").cells
    for i, name in enumerate(integers):
        assert cells[f"c{i}"].to_list() == [name, *frame[name].cast(pl.String).to_list()]
    assert cells["c4"].to_list()[1:] == ["-9223372036854775808", "9223372036854775807", None, "-5"]


def test_roster_split_across_files_sheets_and_parquet(tmp_path):
    roster_dir = tmp_path / "raw" / MONTH / "roster"
    header = ["户编号", "姓名", "证件号码", "与户主关系", "乡镇", "村"]
    _xlsx(roster_dir / "花名册_城关镇.xlsx", {
        "城关镇": [["XX县防返贫监测花名册"], header, ["H001", "张三", ID_A, "户主", "城关镇", "东村"]],
        "河口镇": [header, ["H002", "李四", ID_B, "户主", "河口镇", "西村"]],
    })
    pl.DataFrame({"户号": ["H003"], "姓名": ["王五"], "身份证号码": [321202900101123.0], "家庭人口数": [3.0]}) \
        .write_parquet(roster_dir / "花名册_其他.parquet")
    _xlsx(roster_dir / "花名册_缺户号.xlsx", {"Sheet1": [["姓名", "证件号码"], ["赵六", ID_A]]})
    (roster_dir / "~$花名册_城关镇.xlsx").write_bytes(b"lock")

    tables, problems, files = reading.read_roster(tmp_path, MONTH)

    assert [(Path(t.source_file).name, t.sheet) for t in tables] == [
        ("花名册_其他.parquet", ""), ("花名册_城关镇.xlsx", "城关镇"), ("花名册_城关镇.xlsx", "河口镇")]
    parquet = tables[0].frame
    assert parquet["household_id"].to_list() == ["H003"] and parquet["row_number"].to_list() == [1]
    assert parquet["id_number"].to_list() == ["321202900101123"] and parquet["household_size"].to_list() == ["3"]
    assert tables[1].frame["relation"].to_list() == ["户主"] and tables[1].header_row == 2
    [problem] = problems
    assert problem.reason_code == "missing_required_column" and problem.list_key == "roster"
    assert "户编号" in problem.reason
    status = {Path(f.source_file).name: f.status for f in files}
    assert status == {"花名册_其他.parquet": "read", "花名册_城关镇.xlsx": "read", "花名册_缺户号.xlsx": "quarantined",
                      "~$花名册_城关镇.xlsx": "ignored"}
    assert all(f.folder == "roster" and f.department is None for f in files)


def test_header_matcher_exact_before_prefix_and_short_variants_need_brackets():
    matcher = reading.HeaderMatcher(REG.list_headers)
    assert matcher.match("身份证号码（18位）") == ("id_number", False)
    assert matcher.match(" 身份证号码： ") == ("id_number", True)
    assert matcher.match("村（居）") == ("village", False)
    assert matcher.match("村民小组") == (None, False)
    assert matcher.match("身份证号码请按18位填写") == (None, False)
    assert matcher.match("月保障金额") == ("amount", False)
    assert matcher.match("乡镇名称") == ("township", True)


@pytest.mark.parametrize("month_missing", [True])
def test_missing_month_folder_is_empty_not_an_error(tmp_path, month_missing):
    scan = reading.scan_month(tmp_path, MONTH)
    assert scan.files == [] and scan.tables == {} and scan.problems == []
    assert reading.read_roster(tmp_path, MONTH) == ([], [], [])


def test_one_xml_scan_gives_formula_notes_and_number_ids(tmp_path, monkeypatch):
    """Formula and error cells (notes) and number-typed IDs (Excel's rounded text) come from one pass over the
    worksheet XML: decompressing and searching it twice cost as much as calamine's own parse of the sheet."""
    path = tmp_path / "低保.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["姓名", "身份证号码", "金额（元）"])
    sheet.append(["数字", int(ID_B), "=SUM(1,2)"])
    sheet.append(["文本", ID_A, "#DIV/0!"])
    book.save(path)
    scanned = []
    blocks = reading._part_blocks
    monkeypatch.setattr(reading, "_part_blocks", lambda archive, part: scanned.append(part) or blocks(archive, part))

    [table], problems, notes = _read(path, tmp_path)

    assert problems == [] and scanned == ["xl/worksheets/sheet1.xml"]
    assert table.frame["id_number"].to_list() == ["3.21202199001011E+17", ID_A]
    assert table.frame["amount"].to_list() == [None, None]
    assert any("C2是公式但没有保存计算结果" in note for note in notes)
    assert any("C3是公式错误值" in note for note in notes)


# The worksheet-XML searches as Python's re spelled them (with look-ahead), kept here as the reference the Rust-regex
# scan in `reading._scan_part` must agree with.
_REFERENCE_UNPLAIN = (re.compile(rb'<c(?:[>/]| (?!r="))'), re.compile(rb":c[ >]"))
_REFERENCE_OTHER = rb"(?:\s+(?!t=)[\w:]+=\"[^\"]*\")*"
_REFERENCE_FORMULA = re.compile(
    rb'<c\b[^>]*?\br="([A-Z]{1,3}[0-9]+)"[^>]*>\s*<f\b[^>]*(?:/>|>[^<]*</f>)\s*(?:<v\s*/>|<v>\s*</v>)?\s*</c>')
_REFERENCE_ERROR = re.compile(rb'<c\b(?=[^>]*\bt="e")[^>]*?\br="([A-Z]{1,3}[0-9]+)"')


def _found(scan) -> tuple:
    """A `_PartScan` as plain lists, to compare with the reference."""
    rows = None if scan.number_rows is None else [found.to_list() for found in scan.number_rows]
    return scan.formulas.to_list(), scan.errors.to_list(), rows


def _reference(xml: bytes, letters: tuple[str, ...]) -> tuple:
    refs = [[ref.decode() for ref in pattern.findall(xml)] for pattern in (_REFERENCE_FORMULA, _REFERENCE_ERROR)]
    rows = [_reference_number_rows(xml, letter) for letter in letters]
    return refs[0], refs[1], None if rows[0] is None else rows


def _reference_number_rows(xml: bytes, letter: str) -> list[int] | None:
    if any(pattern.search(xml) for pattern in _REFERENCE_UNPLAIN):
        return None
    number = re.compile(b'<c r="' + letter.encode() + rb'(\d+)"' + _REFERENCE_OTHER
                        + rb'(?:\s+t="[nb]"' + _REFERENCE_OTHER + rb')?\s*/?>')
    return [int(row) for row in number.findall(xml)]


_CELLS = {
    "number": '<c r="C{row}"><v>3.2E+17</v></c>',
    "number, styled": '<c r="C{row}" s="3"><v>1</v></c>',
    "number, t=n between attributes": '<c r="C{row}" s="3" t="n" cm="1"><v>1</v></c>',
    "boolean": '<c r="C{row}" t="b"><v>1</v></c>',
    "empty, self-closing": '<c r="C{row}" s="2"/>',
    "shared string": '<c r="C{row}" t="s"><v>0</v></c>',
    "inline string": '<c r="C{row}" t="inlineStr"><is><t>张三</t></is></c>',
    "formula string": '<c r="C{row}" t="str"><f>A1</f><v>x</v></c>',
    "attribute named tx": '<c r="C{row}" tx="s"><v>2</v></c>',
    "other column": '<c r="D{row}"><v>5</v></c>',
    "wide column": '<c r="CC{row}"><v>5</v></c>',
    "line breaks between attributes": '<c r="C{row}"\n  s="1"\n  t="n"><v>1</v></c>',
    "formula without its value": '<c r="C{row}"><f>SUM(A1:A3)</f></c>',
    "formula with an empty value": '<c r="C{row}" s="1"><f t="shared" si="0"/><v></v></c>',
    "formula with its value": '<c r="C{row}"><f>1+1</f><v>2</v></c>',
    "error value": '<c r="C{row}" t="e"><f>1/0</f><v>#DIV/0!</v></c>',
}
_NOT_PLAIN = {
    "no reference": "<c><v>1</v></c>",
    "self-closing without reference": "<c/>",
    "reference not first": '<c s="1" r="C{row}"><v>1</v></c>',
    "namespace prefix": '<x:c r="C{row}"><x:v>1</x:v></x:c>',
    "error value, type first": '<c t="e" r="C{row}"><v>#N/A</v></c>',
}


def _sheet_part(cells: list[str]) -> zipfile.ZipFile:
    rows = "".join(f'<row r="{row}">{cell.format(row=row)}</row>' for row, cell in enumerate(cells, start=2))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", f"<worksheet><sheetData>{rows}</sheetData></worksheet>")
    return zipfile.ZipFile(buffer)


@pytest.mark.parametrize("kind", list(_CELLS) + list(_NOT_PLAIN))
def test_xml_scan_finds_the_cells_pythons_re_finds(kind):
    """Each cell layout, between a plain number cell and a plain text cell: the same number rows (or the same
    "cannot tell"), formulas without results and error cells as the look-ahead patterns in Python's re."""
    cells = [_CELLS["number"], {**_CELLS, **_NOT_PLAIN}[kind], _CELLS["shared string"]]
    archive = _sheet_part(cells)
    xml = archive.read("xl/worksheets/sheet1.xml")

    found = reading._scan_part(archive, "xl/worksheets/sheet1.xml", ("C", "CC"))

    assert _found(found) == _reference(xml, ("C", "CC"))
    assert (found.number_rows is None) == (kind in _NOT_PLAIN)


def test_xml_scan_across_blocks_and_batches_matches_pythons_re(monkeypatch):
    """Blocks cut mid-row and batches of blocks do not lose or double a cell: tiny blocks, two per batch."""
    monkeypatch.setattr(reading, "_MB", 64)
    monkeypatch.setattr(reading, "_INFLATE_INPUT", 16)  # many small inflated pieces, as a big part gives
    monkeypatch.setattr(reading, "_SCAN_BLOCKS_AT_ONCE", 2)
    kinds = list(_CELLS)
    cells = [_CELLS[kinds[row % len(kinds)]] for row in range(400)]
    archive = _sheet_part(cells)
    xml = archive.read("xl/worksheets/sheet1.xml")

    found = reading._scan_part(archive, "xl/worksheets/sheet1.xml", ("C",))

    assert _found(found) == _reference(xml, ("C",))
    assert found.number_rows[0].len() > 100 and found.formulas.len() > 20 and found.errors.len() > 20


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
@pytest.mark.parametrize("from_memory", [True, False])
def test_a_worksheet_part_inflates_to_the_bytes_zipfile_reads(tmp_path, monkeypatch, compression, from_memory):
    """The scan inflates deflated parts of a workbook in memory with ISA-L, in pieces; stored parts and workbooks on
    disk go through zipfile. Either way, the same bytes as zipfile's own read."""
    monkeypatch.setattr(reading, "_INFLATE_INPUT", 7)
    xml = "".join(f'<row r="{row}"><c r="C{row}"><v>{row * 7919}</v></c></row>' for row in range(2, 3000)).encode()
    path = tmp_path / "book.xlsx"
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("docProps/app.xml", "<Properties/>")
        archive.writestr("xl/worksheets/sheet1.xml", xml)
    archive = zipfile.ZipFile(io.BytesIO(path.read_bytes()) if from_memory else path)

    pieces = list(reading._inflated(archive, "xl/worksheets/sheet1.xml"))

    assert b"".join(pieces) == xml == archive.read("xl/worksheets/sheet1.xml")
    assert len(pieces) > 100 if (from_memory and compression == zipfile.ZIP_DEFLATED) else len(pieces) == 1


@pytest.mark.parametrize("damage", ["crc", "size", "deflate", "local name"])
def test_a_damaged_worksheet_part_is_not_scanned_but_left_to_calamine(damage):
    """A part whose CRC, declared size or deflated bytes are wrong, or whose local header names another file, raises
    a zip or inflate error while it inflates, and the scan then answers "cannot tell" (calamine's own read reports
    the damage), never numbers read from damaged bytes."""
    archive = _sheet_part([_CELLS["number"]] * 50)
    info = archive.getinfo("xl/worksheets/sheet1.xml")
    if damage == "crc":
        info.CRC ^= 1
    elif damage == "size":
        info.file_size -= 1
    else:  # a byte of the deflated data, or of the file name in the part's local header (zipfile refuses it)
        data = bytearray(archive.fp.getvalue())
        data[info.header_offset + (60 if damage == "deflate" else 33)] ^= 0x01
        archive = zipfile.ZipFile(io.BytesIO(bytes(data)))

    with pytest.raises((zipfile.BadZipFile, isal_zlib.error)):
        list(reading._inflated(archive, "xl/worksheets/sheet1.xml"))
    assert reading._SheetXml(archive, "xl/worksheets/sheet1.xml").number_rows(["C"]) is None
    assert reading._SheetXml(_sheet_part([_CELLS["number"]] * 50), "xl/worksheets/sheet1.xml").number_rows(["C"])


def test_a_part_that_declares_more_than_it_holds_reads_as_zipfile_reads_it():
    """zipfile reads a part up to its declared size and checks only the CRC: a size overstated (by one byte here)
    with the right CRC reads whole, so its formula and error notes are not lost."""
    archive = _sheet_part([_CELLS["number"], _CELLS["error value"]])
    archive.getinfo("xl/worksheets/sheet1.xml").file_size += 1

    assert b"".join(reading._inflated(archive, "xl/worksheets/sheet1.xml")) == archive.read("xl/worksheets/sheet1.xml")
    assert reading._SheetXml(archive, "xl/worksheets/sheet1.xml").notes()


def test_a_part_that_inflates_beyond_its_declared_size_is_stopped_4_mb_at_a_time():
    """A part whose zip directory understates its size (how a zip bomb passes the limits) is inflated no further
    than declared, at most 4 MB at a time, and then fails its CRC, as zipfile reads it: 40 MB of one repeated pair
    of bytes deflate to ~40 KB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"<c" * (20 * 1024 * 1024))
    archive = zipfile.ZipFile(buffer)
    archive.getinfo("xl/worksheets/sheet1.xml").file_size = 5 * 1024 * 1024
    pieces: list[int] = []

    with pytest.raises(zipfile.BadZipFile, match="CRC"):
        for piece in reading._inflated(archive, "xl/worksheets/sheet1.xml"):
            pieces.append(len(piece))

    assert pieces and max(pieces) <= 4 * 1024 * 1024 and sum(pieces) == 5 * 1024 * 1024


def test_the_eager_sheet_load_gives_the_lazy_loads_cells_and_columns(tmp_path):
    """Sheets are loaded eagerly (calamine builds Arrow outside the GIL); the cells, dtypes and Excel columns must be
    those of the lazy load: a table starting at C3 keeps its column letters, an empty sheet still reads."""
    book = openpyxl.Workbook()
    mid = book.active
    mid["C3"], mid["D4"], mid["C6"] = "姓名", 3.5, dt.datetime(2026, 10, 1)
    book.create_sheet("空表")
    full = book.create_sheet("名单")
    full.append(["姓名", "身份证号码"])
    full.append(["张三", ID_A])
    path = tmp_path / "名单.xlsx"
    book.save(path)
    reader = fastexcel.read_excel(path.read_bytes())
    limits = reading.IntakeLimits()

    for index in range(3):
        eager, eager_columns = reading._load_sheet(reader, index, limits)
        lazy, lazy_columns = reading._load_sheet_lazily(reader, index, limits)
        assert eager.equals(lazy) and eager.schema == lazy.schema
        assert [(c.name, c.absolute_index) for c in eager_columns] == [(c.name, c.absolute_index) for c in lazy_columns]
    assert [c.absolute_index for c in reading._load_sheet(reader, 0, limits)[1]] == [2, 3]


def test_workbook_sheets_reads_only_the_named_sheets_by_excel_letter_and_row():
    """What fangpin reads back from its own workbooks (a township's returned results): the named sheets only, hidden
    ones too, each cell as text where Excel shows it (column letter, row i = Excel row i + 1)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "核实"
    ws["C3"], ws["D3"] = "户编号", "核实日期"
    ws["C4"], ws["D4"] = 3607990001, dt.datetime(2026, 11, 15)
    ws["C5"], ws["D5"] = "  A002 ", "   "
    ws["C6"] = "#N/A"  # openpyxl writes it as an error value, as a formula gone wrong shows in Excel
    hidden = wb.create_sheet("信息")
    hidden.sheet_state = "veryHidden"
    hidden.append(["month", "2026-10"])
    wb.create_sheet("其他").append(["not asked for"])
    data = io.BytesIO()
    wb.save(data)

    sheets = reading.workbook_sheets(data.getvalue(), frozenset({"核实", "信息", "没有这张表"}))

    assert sorted(sheets) == ["信息", "核实"]
    cells = sheets["核实"]
    assert cells.columns == ["C", "D"]
    assert cells.rows()[2:] == [("户编号", "核实日期"), ("3607990001", "2026-11-15"), ("A002", None), ("#N/A", None)]
    assert sheets["信息"].rows() == [("month", "2026-10")]
    with pytest.raises(reading.UnreadableFile):
        reading.workbook_sheets(b"not a workbook", frozenset({"核实"}))


def test_error_cells_read_with_the_text_excel_shows():
    """calamine reads an error value blank; the worksheet XML gives its text (with or without the formula before
    it, `t` before or after `r`), for the cells fangpin reads back from its own workbooks."""
    cells = [_CELLS["error value"], _CELLS["shared string"], _NOT_PLAIN["error value, type first"],
             '<c r="D{row}" s="2" t="e"><f t="shared" si="0"/><v>#REF!</v></c>']
    archive = _sheet_part(cells)

    errors = reading._SheetXml(archive, "xl/worksheets/sheet1.xml").error_texts()

    assert errors.rows() == [("C2", "#DIV/0!"), ("C4", "#N/A"), ("D5", "#REF!")]
    plain = reading._SheetXml(_sheet_part([_CELLS["shared string"]]), "xl/worksheets/sheet1.xml")
    assert plain.error_texts().is_empty()


# ------------------------------------------------------------- drop zone: what cannot be opened is named, not skipped
def _by_name(scan) -> tuple[dict, dict]:
    files = {f.source_file.split("/", 2)[2]: f for f in scan.files}
    problems = {p.source_file.split("/", 2)[2]: p for p in scan.problems}
    return files, problems


def test_a_file_that_cannot_be_opened_is_quarantined_and_the_month_goes_on(tmp_path, monkeypatch):
    """A clerk's copy without read permission (root ignores chmod, so the refusal is the system's, simulated)."""
    good = _xlsx(_dept_file(tmp_path, "民政局", "低保.xlsx"), {"Sheet1": _persons("一村")})
    locked = _xlsx(_dept_file(tmp_path, "残联", "残疾人10月.xlsx"), {"Sheet1": _persons("二村")})
    sha256_of = reading.sha256_of

    def refuse_locked(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return sha256_of(path)

    monkeypatch.setattr(reading, "sha256_of", refuse_locked)
    scan = reading.scan_month(tmp_path, MONTH)

    files, problems = _by_name(scan)
    assert files["民政局/低保.xlsx"].status == "read" and scan.tables["civil_affairs.dibao"]
    assert files["残联/残疾人10月.xlsx"].status == "quarantined"
    problem = problems["残联/残疾人10月.xlsx"]
    assert problem.reason_code == "file_unreadable" and "没有读写权限" in problem.reason
    assert problem.list_key == "disability.severe"  # counted against the list its name names
    assert good.exists()


def test_a_folder_that_cannot_be_listed_and_a_broken_link_are_quarantined(tmp_path, monkeypatch):
    _xlsx(_dept_file(tmp_path, "民政局", "低保.xlsx"), {"Sheet1": _persons("一村")})
    closed = _dept_file(tmp_path, "民政局", "10月补报")
    _xlsx(closed / "特困.xlsx", {"Sheet1": _persons("二村")})
    _dept_file(tmp_path, "民政局", "临时救助.xlsx").symlink_to(tmp_path / "share" / "临时救助.xlsx")  # not mounted
    (tmp_path / "raw" / MONTH / "卫健委").symlink_to(tmp_path / "share" / "卫健委")
    scandir = reading.os.scandir

    def refuse_closed(path=".", *args):
        if Path(path) == closed:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path, *args)

    monkeypatch.setattr(reading.os, "scandir", refuse_closed)
    scan = reading.scan_month(tmp_path, MONTH)

    files, problems = _by_name(scan)
    assert set(problems) == {"民政局/10月补报", "民政局/临时救助.xlsx", "卫健委"}
    assert "文件夹无法打开" in problems["民政局/10月补报"].reason
    assert "链接" in problems["民政局/临时救助.xlsx"].reason and "不存在" in problems["卫健委"].reason
    assert problems["民政局/临时救助.xlsx"].list_key == "civil_affairs.temporary_assistance"
    assert {files[name].status for name in problems} == {"quarantined"}
    assert files["卫健委"].department == "health" and files["卫健委"].size_bytes is None
    assert list(scan.tables) == ["civil_affairs.dibao"]


def test_a_folder_linked_in_from_a_shared_drive_is_read_once_even_when_it_links_back(tmp_path):
    share = tmp_path / "share" / "补报"
    _xlsx(share / "特困10月.xlsx", {"Sheet1": _persons("二村")})
    (share / "上一级").symlink_to(share)  # a loop
    _dept_file(tmp_path, "民政局", "x").parent.mkdir(parents=True)
    _dept_file(tmp_path, "民政局", "补报").symlink_to(share)

    scan = reading.scan_month(tmp_path, MONTH)

    assert [f.source_file for f in scan.files] == ["raw/2026-10/民政局/补报/特困10月.xlsx"]
    assert scan.tables["civil_affairs.tekun"][0].frame.height == 1 and scan.problems == []


def test_a_file_name_in_gbk_bytes_is_read_under_its_chinese_name(tmp_path):
    """What unpacking a zip made on Chinese Windows gives on Linux: the name's bytes are GBK, not UTF-8."""
    folder = _dept_file(tmp_path, "民政局", "x").parent
    data = _xlsx(tmp_path / "低保.xlsx", {"Sheet1": _persons("一村")}).read_bytes()
    folder.mkdir(parents=True)
    (Path(os.fsdecode(bytes(folder))) / os.fsdecode("低保10月补报.xlsx".encode("gbk"))).write_bytes(data)

    scan = reading.scan_month(tmp_path, MONTH)

    [received] = scan.files
    assert received.source_file == "raw/2026-10/民政局/低保10月补报.xlsx" and received.status == "read"
    assert scan.tables["civil_affairs.dibao"][0].source_file == received.source_file


def test_an_error_no_check_foresaw_quarantines_its_file_only(tmp_path, monkeypatch):
    _xlsx(_dept_file(tmp_path, "民政局", "低保.xlsx"), {"Sheet1": _persons("一村")})
    _xlsx(_dept_file(tmp_path, "民政局", "特困.xlsx"), {"Sheet1": _persons("二村")})
    read = reading._read_department_file

    def fail_on_tekun(path, *args, **kwargs):
        if "特困" in Path(path).name:
            raise RuntimeError("boom")
        return read(path, *args, **kwargs)

    monkeypatch.setattr(reading, "_read_department_file", fail_on_tekun)
    scan = reading.scan_month(tmp_path, MONTH)

    files, problems = _by_name(scan)
    assert files["民政局/低保.xlsx"].status == "read"
    assert problems["民政局/特困.xlsx"].list_key == "civil_affairs.tekun"
    assert "RuntimeError: boom" in problems["民政局/特困.xlsx"].reason


def test_archives_are_refused_as_archives_and_misnamed_workbooks_read_by_their_content(tmp_path):
    workbook = _xlsx(tmp_path / "w.xlsx", {"Sheet1": _persons("一村")}).read_bytes()
    _dept_file(tmp_path, "民政局", "低保10月").parent.mkdir(parents=True)
    _dept_file(tmp_path, "民政局", "低保10月").write_bytes(workbook)  # a download that lost its suffix
    _dept_file(tmp_path, "民政局", "特困10月.csv").write_bytes(workbook.replace(b"\xe4\xb8\x80", b"\xe4\xb8\x80"))
    _xlsx(_dept_file(tmp_path, "民政局", "t.xlsx"), {"Sheet1": _persons("二村")})
    _dept_file(tmp_path, "民政局", "特困10月.csv").write_bytes(_dept_file(tmp_path, "民政局", "t.xlsx").read_bytes())
    _dept_file(tmp_path, "民政局", "t.xlsx").unlink()
    with zipfile.ZipFile(_dept_file(tmp_path, "民政局", "临时救助10月.zip"), "w") as archive:
        archive.writestr("临时救助10月.xlsx", workbook)

    scan = reading.scan_month(tmp_path, MONTH)

    files, problems = _by_name(scan)
    assert files["民政局/低保10月"].status == "read" and "没有扩展名" in files["民政局/低保10月"].note
    assert files["民政局/特困10月.csv"].status == "read" and "内容其实是Excel工作簿" in files["民政局/特困10月.csv"].note
    assert list(problems) == ["民政局/临时救助10月.zip"] and "压缩包" in problems["民政局/临时救助10月.zip"].reason
    assert problems["民政局/临时救助10月.zip"].list_key == "civil_affairs.temporary_assistance"


def test_csv_with_mac_line_ends_utf16_without_bom_and_line_breaks_inside_cells(tmp_path):
    rows = ["XX县2026年10月低保名单", "姓名,身份证号码,原因,金额", f'张三,{ID_A},"因病\n住院治疗",500',
            f'李四,{ID_B},"火灾""严重""",300']
    mac = _dept_file(tmp_path, "民政局", "低保_mac.csv")
    mac.parent.mkdir(parents=True)
    mac.write_text("\r".join(rows[:2] + [rows[3]]), encoding="utf-8")
    unicode_text = tmp_path / "低保_utf16.csv"
    unicode_text.write_bytes("\r\n".join(rows[:2] + [rows[3]]).encode("utf-16-le"))
    broken = tmp_path / "低保_换行.csv"
    broken.write_text("\r\n".join(rows), encoding="utf-8")

    [mac_table], _, _ = _read(mac, tmp_path)
    [utf16_table], _, utf16_notes = _read(unicode_text, tmp_path)
    [table], problems, notes = _read(broken, tmp_path)

    assert mac_table.frame["name"].to_list() == ["李四"] and mac_table.frame["row_number"].to_list() == [3]
    assert utf16_table.frame["detail"].to_list() == ['火灾"严重"'] and "UTF-16" in utf16_notes[0]
    assert problems == []
    assert table.frame["name"].to_list() == ["张三", "李四"]
    assert table.frame["detail"].to_list() == ["因病\n住院治疗", '火灾"严重"']
    assert table.frame["amount"].to_list() == ["500", "300"]
    assert table.frame["row_number"].to_list() == [3, 4]  # Excel's rows: the break is inside row 3
    assert any("单元格内有换行" in note for note in notes)


def test_a_stray_quote_does_not_swallow_the_rows_after_it(tmp_path):
    path = tmp_path / "低保.csv"
    path.write_text(f'姓名,身份证号码,原因\n张"三,{ID_A},因病\n李四,{ID_B},火灾\n', encoding="utf-8")

    [table], _, notes = _read(path, tmp_path)

    assert table.frame["row_number"].to_list() == [2, 3]
    assert any("双引号不成对" in note for note in notes)


def test_a_subfolder_naming_another_month_is_that_months(tmp_path):
    _xlsx(_dept_file(tmp_path, "民政局", "2026年9月") / "低保新增.xlsx", {"Sheet1": _persons("一村")})

    scan = reading.scan_month(tmp_path, MONTH)

    [problem] = scan.problems
    assert problem.reason_code == "file_wrong_month" and problem.list_key == "civil_affairs.dibao"
    assert scan.tables == {}


def test_household_numbers_stored_as_numbers_are_exact_where_the_number_can_hold_them(tmp_path):
    """Parquet Float64 户号 of 16 digits (below 2^53: exact) keep every digit; 17 digits typed into Excel number
    cells cannot be held by a float, so they read as Excel shows them and validation rejects them."""
    roster_dir = tmp_path / "raw" / MONTH / "roster"
    roster_dir.mkdir(parents=True)
    pl.DataFrame({"户号": [3607990010010013.0, 3607990010010014.0], "姓名": ["甲", "乙"], "证件号码": [ID_A, ID_B]}) \
        .write_parquet(roster_dir / "花名册.parquet")
    _xlsx(roster_dir / "花名册2.xlsx", {"Sheet1": [["户编号", "姓名", "证件号码"], [36079910120400016, "丙", ID_A],
                                                 [123, "丁", ID_B], ["H9", "戊", ID_B]]})

    tables, _, _ = reading.read_roster(tmp_path, MONTH)

    by_name = {Path(t.source_file).name: t.frame["household_id"].to_list() for t in tables}
    assert by_name["花名册.parquet"] == ["3607990010010013", "3607990010010014"]
    assert by_name["花名册2.xlsx"] == ["3.60799101204E+16", "123", "H9"]


def test_the_national_systems_roster_header_words_are_known():
    """乡(镇) as the national system exports it: unknown, it left every household without a township."""
    matcher = reading.HeaderMatcher(REG.roster_headers)
    assert [matcher.match(word)[0] for word in ("乡(镇)", "乡（镇）", "乡(镇、街道)", "户类别", "务工收入", "村民小组")] == [
        "township", "township", "township", "household_type", "wages", None]


def test_a_roster_naming_another_month_is_not_this_months(tmp_path):
    """September's roster left beside October's added a person who was only in September's file."""
    roster_dir = tmp_path / "raw" / MONTH / "roster"
    header = ["户编号", "姓名", "证件号码", "与户主关系"]
    _xlsx(roster_dir / "花名册（2026年10月）.xlsx", {"Sheet1": [header, ["H1", "张三", ID_A, "户主"]]})
    _xlsx(roster_dir / "花名册（2026年9月）.xlsx", {"Sheet1": [header, ["H1", "张三", ID_A, "户主"],
                                                               ["H1", "张父", ID_B, "父亲"]]})

    tables, problems, files = reading.read_roster(tmp_path, MONTH)

    assert [Path(t.source_file).name for t in tables] == ["花名册（2026年10月）.xlsx"]
    [problem] = problems
    assert problem.reason_code == "file_wrong_month" and problem.list_key == "roster"
    assert "2026年9月" in problem.reason
    assert {Path(f.source_file).name: f.status for f in files}["花名册（2026年9月）.xlsx"] == "quarantined"


def test_a_summary_sheet_beside_a_list_is_a_note_and_alone_a_missing_column(tmp_path):
    """A 汇总 sheet (乡镇, 户数, 金额, 合计) next to the 低保 list made the clerk chase the department for a file
    "that could not be processed"; without a list beside it, it is still the missing-column problem it was."""
    summary = [["乡镇", "户数", "人数", "金额（元）"], ["城关镇", 3, 7, 1500], ["合计", 3, 7, 1500]]
    both = _xlsx(tmp_path / "低保.xlsx", {"低保": PERSON_ROWS, "汇总": summary})
    alone = _xlsx(tmp_path / "低保汇总.xlsx", {"汇总": summary})

    tables, problems, notes = _read(both, tmp_path)
    _, alone_problems, _ = _read(alone, tmp_path)

    assert [t.sheet for t in tables] == ["低保"] and problems == []
    assert any("汇总" in note and "未作为名单读取" in note for note in notes)
    assert [p.reason_code for p in alone_problems] == ["missing_required_column"]


def test_department_folders_as_clerks_name_them():
    """县民政局, Civil_Affairs, full-width letters and a month behind the name were each 'not a registered
    department' (the department's lists then showed as not received)."""
    names = ["民政局", "县民政局", "赣南示范县民政局", "Civil_Affairs", "ｃｉｖｉｌ＿ａｆｆａｉｒｓ", "民政局-10月",
             "民政局（2026年10月）", "民政局202610", "县乡村振兴局", "林业局", "统计局"]
    assert [REG.department_for_folder(name) for name in names] == [
        "civil_affairs"] * 8 + ["rural_revitalization", None, None]


def test_a_department_folder_naming_another_month_is_that_months(tmp_path):
    _xlsx(tmp_path / "raw" / MONTH / "民政局-9月" / "低保新增.xlsx", {"Sheet1": _persons("一村")})
    _xlsx(tmp_path / "raw" / MONTH / "民政局-10月" / "特困新增.xlsx", {"Sheet1": _persons("二村")})

    scan = reading.scan_month(tmp_path, MONTH)

    assert [p.reason_code for p in scan.problems] == ["file_wrong_month"]
    assert list(scan.tables) == ["civil_affairs.tekun"]


def test_a_signature_line_below_the_list_is_no_person_and_not_a_bad_id(tmp_path):
    """制表人：张三 | 审核人：李四 under the list was rejected as an ID of the wrong length, "收到“审核人：李四”"."""
    path = _xlsx(tmp_path / "低保.xlsx", {"Sheet1": [*PERSON_ROWS, [None, "制表人：张三", "审核人：李四"]]})

    [table], _, _ = _read(path, tmp_path)

    assert table.frame["is_total_row"].to_list() == [False, True]


def test_a_hidden_sheet_is_read_with_a_note(tmp_path):
    """A hidden Sheet2 holding two other persons (a list left from an earlier month) was read without a word."""
    path = _xlsx(tmp_path / "低保.xlsx", {"低保": PERSON_ROWS, "Sheet2": _persons("旧村")})
    workbook = openpyxl.load_workbook(path)
    workbook["Sheet2"].sheet_state = "hidden"
    workbook.save(path)

    tables, _, notes = _read(path, tmp_path)

    assert [t.sheet for t in tables] == ["低保", "Sheet2"]
    assert [note for note in notes if "隐藏" in note] == [
        f"“{reading.relative_source(path, tmp_path)}”工作表“Sheet2”：是隐藏的工作表，其内容已照常读取；请核对它是否属于本月的名单"]
