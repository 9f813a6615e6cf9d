"""The bad-input corpus (tests/badinput.py) through fangpin.reading: each case gets the behaviour decided for it,
nothing else is lost, and the whole drop zone is read within the stated time and memory bounds.

The zone (with its 200,000-row list and 40 MB cell) is generated and scanned once per session.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fastexcel
import openpyxl
import polars as pl
import pytest

import badinput
from badinput import CASES, MONTH
from fangpin import ingest, reading
from fangpin.config import PROJECT_ROOT, registry

REG = registry()


@pytest.fixture(scope="session")
def zone(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    data_dir = tmp_path_factory.mktemp("badinput")
    return data_dir, badinput.build_zone(data_dir)


@pytest.fixture(scope="session")
def scan(zone) -> reading.MonthScan:
    return reading.scan_month(zone[0], MONTH)


def _source(zone, name: str) -> str:
    return reading.relative_source(zone[1][name], zone[0])


def _table(scan: reading.MonthScan, source: str, sheet: str | None = None) -> reading.SheetTable:
    [table] = [t for tables in scan.tables.values() for t in tables
               if t.source_file == source and (sheet is None or t.sheet == sheet)]
    return table


def _problems(scan: reading.MonthScan, source: str) -> list[reading.FileProblem]:
    return [p for p in scan.problems if p.source_file == source]


def _file(scan: reading.MonthScan, source: str) -> reading.ReceivedFile:
    [received] = [f for f in scan.files if f.source_file == source]
    return received


def _read(path: Path, data_dir: Path, limits: reading.IntakeLimits | None = None):
    return reading.read_table_file(path, data_dir, REG.list_headers, REG.list_required, limits=limits)


# ---------------------------------------------------------------------------------------------- the table of cases
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_case_gets_its_outcome_and_reason_code(case, zone, scan):
    source = _source(zone, case.name)
    if case.name == "roster_without_heads":
        _, problems, files = reading.read_roster(zone[0], MONTH)
    else:
        problems, files = scan.problems, scan.files
    [received] = [f for f in files if f.source_file == source]
    codes = {p.reason_code for p in problems if p.source_file == source}
    assert received.status == case.outcome, received.note
    assert codes == ({case.reason_code} if case.reason_code else set())
    if case.reason_code:  # a clerk's sentence naming the file, also on the received file
        [problem] = [p for p in problems if p.source_file == source]
        assert problem.reason.startswith(f"“{source}”") and problem.reason in received.note


def test_every_file_has_an_outcome_and_the_good_file_is_read_completely(zone, scan):
    data_dir, _ = zone
    on_disk = sorted(reading.relative_source(p, data_dir) for p in (data_dir / "raw" / MONTH).rglob("*")
                     if p.is_file() and "roster" not in p.parts)
    assert sorted(f.source_file for f in scan.files) == on_disk
    assert all(f.status in {"read", "quarantined", "ignored", "duplicate"} for f in scan.files)
    good = _table(scan, _source(zone, "good_list"))
    assert good.frame["name"].to_list() == ["张1", "张2", "张3"]
    assert good.frame["id_number"].to_list() == [badinput.valid_id(i) for i in (1, 2, 3)]
    assert _problems(scan, good.source_file) == [] and _file(scan, good.source_file).note is None


# ---------------------------------------------------------------------------------------------- broken files
def test_truncated_and_corrupt_workbooks_say_damaged(zone, scan):
    for name in ("truncated_xlsx", "corrupt_xlsx"):
        [problem] = _problems(scan, _source(zone, name))
        assert "已损坏" in problem.reason, problem.reason


def test_zip_bomb_is_refused_from_its_zip_directory_before_calamine(zone, monkeypatch):
    def no_calamine(*args, **kwargs):
        raise AssertionError("calamine must not open a zip bomb")

    monkeypatch.setattr(fastexcel, "read_excel", no_calamine)
    tables, [problem], _ = _read(zone[1]["zip_bomb"], zone[0])
    assert tables == [] and problem.reason_code == "file_too_large"
    assert "压缩炸弹" in problem.reason and "300MB" in problem.reason and "上限100:1" in problem.reason


def test_declared_unzipped_size_file_size_rows_and_cell_limits(zone, tmp_path):
    good = zone[1]["good_list"]
    small = reading.IntakeLimits(max_unzipped_mb=0.001)
    _, [problem], _ = _read(good, zone[0], small)
    assert problem.reason_code == "file_too_large" and "解压后" in problem.reason

    _, [problem], _ = _read(good, zone[0], reading.IntakeLimits(max_file_mb=0.001))
    assert problem.reason_code == "file_too_large" and "超过上限0.001MB" in problem.reason

    tables, [problem], _ = _read(good, zone[0], reading.IntakeLimits(max_rows_per_sheet=3))
    assert tables == [] and problem.sheet == "Sheet1" and "5行，超过每表3行" in problem.reason
    csv = tmp_path / "低保.csv"
    csv.write_text("姓名,身份证号码\n" + "".join(f"张{i},{badinput.valid_id(i)}\n" for i in range(5)), encoding="utf-8")
    tables, [problem], _ = _read(csv, tmp_path, reading.IntakeLimits(max_rows_per_sheet=3))
    assert tables == [] and problem.reason_code == "file_too_large" and problem.sheet == ""

    [table], [], [note] = _read(csv, tmp_path, reading.IntakeLimits(max_cell_chars=10))
    assert table.frame["id_number"].to_list() == ["3212021990"] * 5  # cut (validation then rejects it as too short)
    assert table.frame["name"].to_list() == [f"张{i}" for i in range(5)]
    assert "B列第2行、第3行、第4行等5个单元格" in note and "只保留前10个字" in note


def test_oversized_file_is_never_read_into_memory(zone, monkeypatch):
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("an oversized file must not be read"))
    _, [problem], _ = _read(zone[1]["oversized_file"], zone[0])
    assert problem.reason_code == "file_too_large" and "100.0MB，超过上限100MB" in problem.reason


def test_intake_limits_come_from_county_yaml(monkeypatch):
    import yaml

    section = yaml.safe_load((PROJECT_ROOT / "config" / "county.yaml").read_text(encoding="utf-8"))["intake_limits"]
    limits = reading.intake_limits()
    assert limits.max_file_mb == section["max_file_mb"] and limits.max_cell_chars == section["max_cell_chars"]
    assert limits.max_rows_per_sheet == section["max_rows_per_sheet"] == 1_048_576
    monkeypatch.setattr(reading.config, "county", lambda: {"intake_limits": {"max_file_mb": "5"}})
    assert reading.intake_limits().max_file_mb == 5.0 and reading.intake_limits().max_zip_ratio == 100
    monkeypatch.setattr(reading.config, "county", lambda: {"intake_limits": {"max_file_size": 5}})
    with pytest.raises(ValueError, match="max_file_size"):
        reading.intake_limits()


def test_password_protected_workbook_asks_for_it_without_password(zone, monkeypatch):
    monkeypatch.setattr(fastexcel, "read_excel", lambda *a, **k: pytest.fail("calamine must not open it"))
    _, [problem], _ = _read(zone[1]["encrypted_xlsx"], zone[0])
    assert problem.reason_code == "file_unreadable"
    detail = problem.reason.split("：", 2)[-1]  # the file's own name says 加密 too: look past it
    assert "文件设置了打开密码（已加密）" in detail and "取消密码" in detail and detail.endswith("后重新报送")


def test_web_page_is_named_and_csv_text_is_read_as_csv(zone, scan):
    [problem] = _problems(scan, _source(zone, "html_as_xls"))
    assert "网页" in problem.reason
    source = _source(zone, "csv_as_xlsx")
    table = _table(scan, source)
    assert table.frame["village"].to_list() == ["文本村", "文本村"] and table.frame["row_number"].to_list() == [2, 3]
    assert "内容其实是CSV文本" in _file(scan, source).note


def test_empty_files_and_title_only_workbook(zone, scan, tmp_path):
    [problem] = _problems(scan, _source(zone, "empty_file"))
    assert "文件是空的（0字节）" in problem.reason
    empty_csv = tmp_path / "低保.csv"
    empty_csv.write_bytes(b"")
    _, [problem], _ = _read(empty_csv, tmp_path)
    assert problem.reason_code == "file_unreadable" and "0字节" in problem.reason
    title_only = _file(scan, _source(zone, "title_only"))
    assert title_only.status == "ignored" and "没有表头和数据" in title_only.note


# ---------------------------------------------------------------------------------------------- big input
def test_200k_row_list_is_read_completely(zone, scan):
    frame = _table(scan, _source(zone, "rows_200k")).frame
    assert frame.height == badinput.BIG_ROWS
    assert frame["row_number"].to_list()[:2] == [3, 4] and frame["row_number"][-1] == badinput.BIG_ROWS + 2
    assert frame["name"][-1] == f"张{badinput.BIG_ROWS}"
    assert frame["id_number"][-1] == badinput.valid_id(badinput.BIG_ROWS, "19500101")


def test_40mb_cell_is_cut_with_a_note_and_the_rest_is_read(zone, scan):
    source = _source(zone, "cell_40mb")
    frame = _table(scan, source).with_raw()
    assert frame["name"].to_list() == ["张1", "张2", "张3"]
    remarks = frame.select(pl.col("raw").str.json_path_match("$.备注")).to_series()
    assert remarks.str.len_chars().to_list() == [1, 32_767, 1]
    assert remarks[1].startswith("家庭情况说明，")
    note = _file(scan, source).note
    assert "G列第3行的内容有" in note and "超过单元格上限32,767个字，已截断" in note


def test_csv_mixing_encodings_keeps_every_row(zone, scan):
    source = _source(zone, "mixed_encoding_csv")
    frame = _table(scan, source).frame
    assert frame["row_number"].to_list() == [2, 3, 4, 5, 6]
    assert frame["village"].to_list() == ["东村", "西村", "南村", "北村", "中村"]  # GB18030 lines decoded, not mojibake
    assert frame["name"].to_list()[:3] == ["张1", "张2", "张3"] and frame["name"][4] == "张5"
    assert "\ufffd" in frame["name"][3] and frame["id_number"][3] == badinput.valid_id(4)
    note = _file(scan, source).note
    assert "混用了UTF-8和GBK/GB18030" in note and "第5行的文字编码无法识别" in note


def test_pure_encodings_are_decoded_whole():
    text = "姓名,村\n张三,东村\n"
    for encoding in ("utf-8", "utf-8-sig", "gb18030", "utf-16"):
        lines, notes = reading._decode_lines(text.encode(encoding))
        assert lines.to_list() == ["姓名,村", "张三,东村", ""] and notes == []


# ---------------------------------------------------------------------------------------------- cell contents
def test_formulas_give_their_saved_results_never_their_text(zone, scan):
    source = _source(zone, "formulas")
    frame = _table(scan, source).with_raw()
    assert frame["amount"].to_list() == ["1000", "500", None, None]
    assert not frame["raw"].str.contains("=|SUM|#DIV").any()
    note = _file(scan, source).note
    assert "F4是公式但没有保存计算结果" in note and "F5是公式错误值" in note


def test_openpyxl_formula_without_cached_value_is_noted(tmp_path):
    path = tmp_path / "低保.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["姓名", "身份证号码", "金额"])
    book.active.append(["张三", badinput.valid_id(1), "=SUM(1,2)"])
    book.save(path)
    [table], [], [note] = _read(path, tmp_path)
    assert table.frame["amount"].to_list() == [None] and "C2是公式但没有保存计算结果" in note


def test_two_row_headers_with_merged_cells(zone, scan):
    source = _source(zone, "merged_header")
    upper = _table(scan, source, "上行为主").frame
    assert upper["amount"].to_list() == ["301", "302", "303"] and upper["detail"].to_list() == ["因病"] * 3
    assert upper["row_number"].to_list() == [3, 4, 5]
    lower = _table(scan, source, "下行为主")
    assert lower.title == "XX县2026年10月新增低保人员名单"
    assert lower.frame["name"].to_list() == ["李1", "李2", "李3"] and lower.frame["township"][0] == "城关镇"
    assert lower.frame["row_number"].to_list() == [4, 5, 6]
    assert list(json.loads(lower.with_raw()["raw"][0])) == ["序号", "姓名", "身份证号码", "乡镇", "村", "金额", "原因"]


def test_title_rows_with_two_cells_do_not_join_the_header(tmp_path):
    path = tmp_path / "低保.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["填报单位：县民政局", "单位：元"])  # 单位 is a header word of `detail`, but this is a title
    book.active.append(["序号", "姓名", "身份证号码"])
    book.active.append([1, "张三", badinput.valid_id(1)])
    book.save(path)
    [table], [], [] = _read(path, tmp_path)
    assert "detail" not in table.frame.columns and table.title == "填报单位：县民政局 单位：元"


def test_duplicated_header_maps_the_first_and_keeps_the_second_in_raw(zone, scan):
    frame = _table(scan, _source(zone, "duplicated_headers")).with_raw()
    assert frame["name"].to_list() == ["王五"]
    assert json.loads(frame["raw"][0])["姓名_2"] == "王小五"


def test_english_header_names_the_expected_chinese_words(zone, scan):
    [problem] = _problems(scan, _source(zone, "english_header"))
    assert problem.sheet == "Sheet1" and problem.list_key == "civil_affairs.dibao"
    assert "“身份证号码”（或“身份证号”“公民身份号码”）" in problem.reason and "“姓名”" in problem.reason


# ---------------------------------------------------------------------------------------------- the drop zone
def test_roster_without_heads_loads_with_first_member_as_head(zone):
    roster = ingest.load_roster(zone[0], MONTH)
    assert roster.rows_read == 4 and roster.persons.height == 4 and roster.rejected.height == 0
    heads = dict(roster.households.select("household_id", "head_name").iter_rows())
    assert heads == {"H001": "钱妻", "H002": "孙父"}


def test_intake_runs_its_polars_plans_in_memory_and_leaves_the_setting_as_it_was(zone, scan, monkeypatch):
    """Validation's lazy plans (the ID judging of every row, pandera's checks) run in memory, not streaming
    (fangpin.validate.in_memory_plans), for the roster and the lists alike; whatever the process had set before
    (here: streaming) is back afterwards."""
    from fangpin import validate

    seen = []
    judge = validate._mark_problems
    monkeypatch.setattr(validate, "_mark_problems", lambda *args, **kwargs: seen.append(
        os.environ.get("POLARS_ENGINE_AFFINITY")) or judge(*args, **kwargs))
    pl.Config.set_engine_affinity("streaming")
    try:
        roster = ingest.load_roster(zone[0], MONTH)
        ingest.ingest_lists(scan, list(registry().lists.values()), roster.places, MONTH)
        assert os.environ["POLARS_ENGINE_AFFINITY"] == "streaming"
    finally:
        pl.Config.set_engine_affinity(None)
    assert seen == ["in-memory", "in-memory"]  # the roster's rows, then every list's rows in one frame


def test_wrong_month_file_is_quarantined_whole_and_not_counted(zone, scan):
    source = _source(zone, "wrong_month")
    [problem] = _problems(scan, source)
    assert problem.sheet == "" and problem.list_key == "civil_affairs.dibao"
    assert "写的是2026年9月" in problem.reason and "不计入2026年10月" in problem.reason
    assert all(t.source_file != source for t in scan.tables["civil_affairs.dibao"])
    dates = _table(scan, _source(zone, "month_in_data")).frame["event_date"].to_list()
    assert dates == ["202609", "202610"]  # a month in the data is data


def test_wrong_month_sheet_in_a_workbook_of_this_month(tmp_path):
    folder = tmp_path / "raw" / MONTH / "民政局"
    folder.mkdir(parents=True)
    book = openpyxl.Workbook()
    book.active.title = "十月"
    for row in (["2026年10月新增低保人员名单"], badinput.HEADER, badinput.person(1, "十月村")):
        book.active.append(row)
    other = book.create_sheet("九月")
    for row in (["2026年9月新增低保人员名单"], badinput.HEADER, badinput.person(2, "九月村")):
        other.append(row)
    book.save(folder / "低保.xlsx")

    scan = reading.scan_month(tmp_path, MONTH)

    [table] = scan.tables["civil_affairs.dibao"]
    assert table.sheet == "十月"
    [problem] = scan.problems
    assert problem.reason_code == "file_wrong_month" and problem.sheet == "九月"
    assert scan.files[0].status == "read"


@pytest.mark.parametrize("text, named", [
    ("XX县2026年10月新增低保人员名单", [(2026, 10)]),
    ("低保202609", [(2026, 9)]),
    ("低保名单（2026.9）", [(2026, 9)]),
    ("9月份低保名单", [(None, 9)]),
    ("低保名单20261015", []),  # a date
    ("填报日期：2026年11月5日", []),
    ("填报时间：2026年11月", []),  # when it was filled in
    ("民政局11月份报送名单", []),
    ("2026年1-9月累计低保名单", []),  # a range
    ("2026年9月至10月", []),
    ("截至2026年9月底", []),
])
def test_named_months(text, named):
    assert reading.named_months(text) == named


def test_wrong_month_needs_another_month_and_no_mention_of_this_one():
    assert reading.wrong_month(MONTH, ("低保", "Sheet1", "")) is None
    assert reading.wrong_month(MONTH, ("2026年9月低保", "", "2026年10月新增低保人员名单")) is None
    assert reading.wrong_month(MONTH, ("10月低保", "", "")) is None
    assert reading.wrong_month(MONTH, ("低保", "", "2025年10月新增低保人员名单")) == "2025年10月"
    assert reading.wrong_month(MONTH, ("9月低保", "", "")) == "9月"


def test_same_file_under_two_names_counts_once(zone, scan):
    second = _source(zone, "sent_twice")
    first = second.replace("（再次发送）", "")
    assert _file(scan, second).duplicate_of == first
    sources = [t.source_file for t in scan.tables["civil_affairs.dibao"]]
    assert first in sources and second not in sources


# ---------------------------------------------------------------------------------------------- bounds
_BOUND_SCRIPT = r"""
import json, resource, sys, time
from pathlib import Path
from fangpin import reading
from fangpin.config import registry

MB = 1 << 20
data_dir, month, warmup, budget_mb = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])


def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024


reg = registry()
reading.read_table_file(warmup, data_dir, reg.list_headers, reg.list_required)  # thread pools up before measuring
base_vm, base_rss = status("VmSize"), status("VmRSS")
resource.setrlimit(resource.RLIMIT_AS, ((base_vm + budget_mb) * MB, resource.RLIM_INFINITY))
seconds = {}
original = reading.read_table_file


def timed(path, *args, **kwargs):
    started = time.perf_counter()
    try:
        return original(path, *args, **kwargs)
    finally:
        seconds[reading.relative_source(Path(path), data_dir)] = time.perf_counter() - started


reading.read_table_file = timed
started = time.perf_counter()
scan = reading.scan_month(data_dir, month)
total = time.perf_counter() - started
try:
    bytearray((budget_mb + 64) * MB)
    capped = False
except MemoryError:
    capped = True
print(json.dumps({
    "total": total, "seconds": seconds, "rss_over_baseline": status("VmHWM") - base_rss, "capped": capped,
    "status": {f.source_file: f.status for f in scan.files},
    "rows": {t.source_file: t.frame.height for tables in scan.tables.values() for t in tables},
}))
"""


def test_whole_zone_is_read_within_time_and_memory_bounds(zone):
    data_dir, paths = zone
    # The read cache off: the zone was scanned by the fixture already, and the bound is on parsing it.
    env = {**os.environ, "POLARS_MAX_THREADS": "2", "MALLOC_ARENA_MAX": "2", "FANGPIN_READ_CACHE": "0"}
    run = subprocess.run(
        [sys.executable, "-c", _BOUND_SCRIPT, str(data_dir), MONTH, str(paths["good_list"]),
         str(badinput.BOUND_ADDRESS_SPACE_MB)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=badinput.BOUND_SECONDS_TOTAL + 30)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])

    assert result["capped"]  # the address-space limit was really in force
    assert result["total"] < badinput.BOUND_SECONDS_TOTAL
    slowest = max(result["seconds"], key=result["seconds"].get)
    assert result["seconds"][slowest] < badinput.BOUND_SECONDS_PER_FILE, slowest
    assert result["rss_over_baseline"] < badinput.BOUND_RSS_MB
    on_disk = {reading.relative_source(p, data_dir) for p in (data_dir / "raw" / MONTH).rglob("*")
               if p.is_file() and "roster" not in p.parts}
    assert set(result["status"]) == on_disk
    assert result["rows"][reading.relative_source(paths["good_list"], data_dir)] == 3
    assert result["rows"][reading.relative_source(paths["rows_200k"], data_dir)] == badinput.BIG_ROWS
