"""Township workbooks: one per township, only its households, sorted, printable, masked, injection-safe."""
from __future__ import annotations

import re
import time
import zipfile
from datetime import date
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from fangpin.workbooks import RESULTS, mask_id, safe_file_name, sheet_name, write_township_workbooks

MONTH = "2026-10"
FULL_ID = re.compile(r"\d{17}[\dXx]")
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def household(hid: str, township: str, village_name: str, head: str, head_id: str, priority: float, **extra
              ) -> dict:
    """One warning_queue row as the mart delivers it (health details and a phone included on purpose)."""
    row = dict(
        month=MONTH, household_id=hid, township=township, village=village_name, division_code="360799001001",
        head_name=head, head_id_number=head_id, household_size=3, household_type="脱贫户", monitoring_category=None,
        members=[f"{head}（新增农村低保人员名单）", f"{head}之子（新增30种大病人员名单：白血病）"],
        member_ids=[head_id, head_id[:-4] + "0000"], risk_types=["因病"], risk_details=["因病：白血病"],
        assurance_gaps=["基本医疗保险"], sources=["civil_affairs.dibao", "health.major_disease"],
        findings=["名下有机动车（公安局）"], is_monitored=False, suggested_category="突发严重困难户",
        a34_per_capita=6200.5, a38_per_capita=None, a38_after_event=None, monitoring_line=11160.0,
        priority=priority, priority_reasons="大病；收入接近监测线", issued_on=date(2026, 11, 11),
        due_date=date(2026, 11, 21), case_id=f"case-{hid}", case_status="新预警", first_warned_on=date(2026, 11, 11),
        is_repeat=False, overdue=False, match_rule="身份证号码一致", cadre="王帮扶", phone="13912345678",
    )
    row.update(extra)
    return row


def sample_queue() -> pl.DataFrame:
    return pl.DataFrame([
        household("A001", "甲镇", "东村", "赵一", "360799198001011111", 2.0),
        household("A002", "甲镇", "西村", "钱二", "360799198102022222", 5.0),
        household("A003", "甲镇", "北村", "孙三", "360799198203033333", 2.0,
                  members=["孙三（新办理重度困难残疾人名单：肢体二级）"], risk_types=["因残"]),
        household("A004", "甲镇", "东村", "李四", "360799198304044444", 2.0),
        household("B001", "乙乡", "南村", "周五", "360799198405055555", 9.0, phone="13800001111"),
        household("B002", "乙乡", "南村", "吴六", "360799198506066666", 1.0),
        household("Z999", "甲镇", "东村", "旧月", "360799198607077777", 99.0, month="2026-09"),
    ])


def sample_unmatched() -> pl.DataFrame:
    return pl.DataFrame([
        dict(month=MONTH, id_number="360799199001018888", name="郑七", sources=["health.major_disease"],
             township="乙乡", village="南村", detail="白血病"),
        dict(month=MONTH, id_number="360799199102029999", name="王八", sources=["civil_affairs.dibao"],
             township="丙/镇", village="中村", detail="肢体残疾"),
        dict(month=MONTH, id_number="360799199203031234", name="无乡镇", sources=["civil_affairs.dibao"],
             township=None, village=None, detail=None),
    ])


@pytest.fixture
def books(tmp_path: Path) -> dict[str, Path]:
    paths = write_township_workbooks(sample_queue(), sample_unmatched(), MONTH, tmp_path / "exports" / MONTH)
    return {openpyxl.load_workbook(p)[sheet_name("meta")]["B4"].value: p for p in paths}


def all_texts(path: Path, sheets: list[str] | None = None) -> list[str]:
    """Every non-empty cell of a workbook (hidden sheets included) as text."""
    wb = openpyxl.load_workbook(path)
    texts = []
    for ws in wb.worksheets:
        if sheets is None or ws.title in sheets:
            texts += [str(v) for row in ws.iter_rows(values_only=True) for v in row if v is not None]
    return texts


def column(ws, header: str) -> list:
    """Values under `header` (row 2) down to the last data row."""
    headers = [c.value for c in ws[2]]
    index = headers.index(header) + 1
    return [ws.cell(row, index).value for row in range(3, ws.max_row + 1)]


def test_one_workbook_per_township_with_safe_names(books):
    assert set(books) == {"甲镇", "乙乡", "丙/镇"}  # 丙/镇 only has an unmatched person; no-township rows go nowhere
    assert books["丙/镇"].name == "丙_镇.xlsx" == safe_file_name("丙/镇") + ".xlsx"
    assert all(p.parent.name == MONTH for p in books.values())


def test_verification_sheet_sorted_by_priority_with_only_this_month(books):
    ws = openpyxl.load_workbook(books["甲镇"])[sheet_name("verification")]
    # priority desc, then village, then household_id (ties A001/A003/A004 at priority 2.0)
    expected = (sample_queue().filter((pl.col("township") == "甲镇") & (pl.col("month") == MONTH))
                .sort(["priority", "village", "household_id"], descending=[True, False, False])
                .get_column("household_id").to_list())
    assert column(ws, "户编号") == expected
    assert expected[0] == "A002" and "Z999" not in expected
    assert column(ws, "序号") == [1, 2, 3, 4]
    assert column(ws, "户主身份证号码")[0] == "360799198102022222"
    assert column(ws, "数据来源")[0] == "民政局新增农村低保人员名单、卫健委新增30种大病人员名单"
    assert column(ws, "核实截止日期")[0].date() == date(2026, 11, 21)


def test_sheet_layout_dropdown_freeze_print(books):
    wb = openpyxl.load_workbook(books["甲镇"])
    ws = wb[sheet_name("verification")]
    assert ws.freeze_panes is not None and ws.freeze_panes.endswith("3")  # frozen below the header row
    assert ws.page_setup.orientation == "landscape" and int(ws.page_setup.paperSize) == 9  # A4
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1
    assert ws.print_title_rows == "$2:$2"
    assert ws.auto_filter.ref == "A2:AC6"
    assert ws.column_dimensions["E"].width > 18  # the ID column fits 18 characters
    lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert len(lists) == 1
    assert lists[0].formula1.strip('"').split(",") == list(RESULTS)
    result_column = [c.column_letter for c in ws[2] if c.value == "核实结果（下拉选择）"][0]
    assert str(lists[0].sqref) == f"{result_column}3:{result_column}6"
    assert ws[f"{result_column}3"].fill.fgColor.rgb.endswith("FFF2CC")  # fill-in cells visibly styled
    assert ws["B3"].fill.fgColor.rgb != ws[f"{result_column}3"].fill.fgColor.rgb
    for name in (sheet_name("public"), sheet_name("unmatched")):
        other = wb[name]
        assert other.page_setup.orientation == "landscape" and other.freeze_panes == "A3"
    meta = wb[sheet_name("meta")]
    assert meta.sheet_state == "veryHidden" and meta.protection.sheet


def test_township_isolation_every_cell(books):
    queue = sample_queue()
    for township, path in books.items():
        others = queue.filter(pl.col("township") != township)
        unmatched = sample_unmatched().filter(pl.col("township").ne_missing(township))
        forbidden = (others.get_column("household_id").to_list() + others.get_column("head_id_number").to_list()
                     + others.get_column("head_name").to_list()
                     + unmatched.get_column("name").to_list() + unmatched.get_column("id_number").to_list()
                     + [i[:6] + "********" + i[-4:] for i in others.get_column("head_id_number").to_list()])
        texts = all_texts(path)
        leaks = [(f, t) for f in forbidden for t in texts if f in t]
        assert not leaks, f"{township} workbook shows other townships' data: {leaks}"


def test_no_full_ids_phones_or_health_details_outside_verification(books):
    verification = sheet_name("verification")
    for path in books.values():
        wb = openpyxl.load_workbook(path)
        others = [ws.title for ws in wb.worksheets if ws.title != verification]
        assert len(others) == 4  # public, unmatched, instructions, meta (hidden) are all checked
        for text in all_texts(path, others):
            assert not FULL_ID.search(text), f"{path.name}: full ID outside the verification sheet: {text}"
        for text in all_texts(path):
            assert not PHONE.search(text), f"{path.name}: phone number in workbook: {text}"
            assert "白血病" not in text and "肢体" not in text, f"{path.name}: health detail: {text}"


def test_public_and_unmatched_sheets_masked(books):
    wb = openpyxl.load_workbook(books["乙乡"])
    public = wb[sheet_name("public")]
    # sorted by village then head name (吴 U+5434 before 周 U+5468), so the notice reads like a village roll
    assert column(public, "户主身份证号码（脱敏）")[:2] == ["360799********6666", "360799********5555"]
    assert column(public, "风险类型")[:2] == ["因病", "因病"]
    headers = [c.value for c in public[2]]
    assert not any("成员" in h or "来源" in h or "疑点" in h for h in headers)
    unmatched = wb[sheet_name("unmatched")]
    assert column(unmatched, "身份证号码（脱敏）") == ["360799********8888"]
    assert column(unmatched, "姓名") == ["郑七"]


def test_mask_id_expression():
    frame = pl.DataFrame({"id": ["360799198001011111", "36079980010111X", "123", None]})
    assert frame.select(mask_id(pl.col("id"))).to_series().to_list() == [
        "360799********1111", "360799********111X", "*" * 18, None]


def test_formula_like_department_text_stays_text(tmp_path):
    hostile = {"head_name": "=HYPERLINK(\"http://evil\",\"点我\")", "village": "+1+2", "findings": ["-2+3"],
               "members": ["@SUM(A1:A9)（新增农村低保人员名单）"], "priority_reasons": "=1+1"}
    queue = pl.DataFrame([household("A001", "甲镇", "东村", "赵一", "360799198001011111", 1.0, **hostile)])
    unmatched = pl.DataFrame([dict(month=MONTH, id_number="360799199001018888", name="=cmd|' /C calc'!A0",
                                   sources=["civil_affairs.dibao"], township="甲镇", village="东村")])
    [path] = write_township_workbooks(queue, unmatched, MONTH, tmp_path)
    wb = openpyxl.load_workbook(path)  # not data_only: a formula would come back as a formula
    ws = wb[sheet_name("verification")]
    by_header = {c.value: c.column for c in ws[2]}
    for header, text in (("户主姓名", hostile["head_name"]), ("村（社区）", "+1+2"), ("比对疑点", "-2+3"),
                         ("涉及成员（来源名单）", hostile["members"][0]), ("优先原因", "=1+1")):
        cell = ws.cell(3, by_header[header])
        assert cell.value == text and cell.data_type == "s" and cell.quotePrefix, header
    name_cell = wb[sheet_name("unmatched")]["C3"]
    assert name_cell.value == "=cmd|' /C calc'!A0" and name_cell.data_type == "s"
    with zipfile.ZipFile(path) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
        assert sheets and not any(b"<f>" in archive.read(n) for n in sheets)


def test_same_input_same_bytes(tmp_path):
    first = write_township_workbooks(sample_queue(), sample_unmatched(), MONTH, tmp_path / "one")
    second = write_township_workbooks(sample_queue(), sample_unmatched(), MONTH, tmp_path / "two")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_instructions_in_chinese_name_due_dates_and_choices(books):
    lines = all_texts(books["甲镇"], [sheet_name("instructions")])
    text = "\n".join(lines)
    assert "2026-11-21" in text and "甲镇" in text
    for result in RESULTS:
        assert any(line.strip().startswith(f"{result}：") for line in lines)
    assert "不要增加或删除行" in text and "身份证号码" in text


def test_300_households_write_fast(tmp_path):
    queue = pl.DataFrame([household(f"H{i:04d}", "大镇", f"村{i % 17}", f"户主{i}", f"3607991980010{i:05d}",
                                    float(i % 7)) for i in range(300)])
    started = time.perf_counter()
    [path] = write_township_workbooks(queue, sample_unmatched().clear(), MONTH, tmp_path)
    elapsed = time.perf_counter() - started
    assert elapsed < 3.0, f"300 households took {elapsed:.2f}s"
    ws = openpyxl.load_workbook(path)[sheet_name("verification")]
    assert ws.max_row == 302 and ws["B3"].value is not None


def test_earlier_cases_sheet_lists_overdue_first_for_its_own_township_only(tmp_path):
    cases = pl.DataFrame([
        dict(month=MONTH, township="甲镇", village="东村", head_name="赵一", household_id="A001", first_month="2026-09",
             first_warned_on=date(2026, 10, 11), due_date=date(2026, 10, 21), status="已核实：存在风险",
             status_group="verified", days_overdue=None, verified_on=date(2026, 10, 15), verifier="张核", warned_again=True),
        dict(month=MONTH, township="甲镇", village="西村", head_name="钱二", household_id="A002", first_month="2026-09",
             first_warned_on=date(2026, 10, 11), due_date=date(2026, 10, 21), status="已逾期",
             status_group="overdue", days_overdue=21, verified_on=None, verifier=None, warned_again=False),
        dict(month=MONTH, township="乙乡", village="南村", head_name="周五", household_id="B001", first_month="2026-09",
             first_warned_on=date(2026, 10, 11), due_date=date(2026, 10, 21), status="已逾期",
             status_group="overdue", days_overdue=21, verified_on=None, verifier=None, warned_again=False),
    ])
    paths = write_township_workbooks(sample_queue(), sample_unmatched(), MONTH, tmp_path, case_status=cases)
    by_name = {p.stem: p for p in paths}
    ws = openpyxl.load_workbook(by_name["甲镇"])[sheet_name("earlier_cases")]
    assert column(ws, "户主姓名") == ["钱二", "赵一"]           # the overdue case first: it escalates
    assert column(ws, "处理情况") == ["已逾期", "已核实：存在风险"]
    assert "周五" not in all_texts(by_name["甲镇"])
    assert not any(FULL_ID.search(t) for t in all_texts(by_name["甲镇"], [sheet_name("earlier_cases")]))
