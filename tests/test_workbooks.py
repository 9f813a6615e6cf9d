"""Township workbooks: one per township, only its households, sorted, printable, masked, injection-safe."""
from __future__ import annotations

import re
import zipfile
from datetime import date
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from fangpin.workbooks import (RESULTS, mask_id, safe_file_name, sheet_name, write_township_workbooks,
                               write_workbooks_by_township)

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


def test_300_households_fill_300_rows_under_the_two_header_rows(tmp_path):
    """Speed is measured by bench/workbooks.py, not here; here: every household gets its row."""
    queue = pl.DataFrame([household(f"H{i:04d}", "大镇", f"村{i % 17}", f"户主{i}", f"3607991980010{i:05d}",
                                    float(i % 7)) for i in range(300)])
    [path] = write_township_workbooks(queue, sample_unmatched().clear(), MONTH, tmp_path)
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


# ---------------------------------------------------------------------------------------------------------------
# The fast path (data rows spliced in as XML built by Polars) equals openpyxl writing every cell itself.

NASTY_TEXTS = ["a & b < c > d \"quoted\"", "=SUM(A1:A9)", "+86 139", "-3", "@cmd", "\tindented", "line one\nline two",
               "crlf\r\nend", "𠀀𠮷 非BMP 😀", "", None, "  edge spaces  ", "\u3000全角空格", "   ", "bell\x07\x0bgone",
               "\x01=after illegal", "plain 张三", "</t></is></c><c r=\"A1\"><f>1+1</f>", "&amp; already escaped"]


def nasty_queue(rows: int = 240) -> pl.DataFrame:
    """Hundreds of households across three townships whose text fields cycle through hostile values."""
    def text(i: int, shift: int) -> str | None:
        return NASTY_TEXTS[(i + shift) % len(NASTY_TEXTS)]
    numbers = [10000 / 3, 0.1 + 0.2, 6200.5, 11160.0, -0.0, 1e20, 1.5e-7, float("nan"), float("inf"), None, 7.0]
    return pl.DataFrame([
        household(f"N{i:04d}", ["甲镇", "乙乡", "丙&<镇"][i % 3], text(i, 0) or "村", text(i, 1) or f"户主{i}",
                  f"3607991980010{i:05d}", float(i % 7) + numbers[i % 4],
                  head_id_number=(f"3607991980010{i:05d}" if i % 5 else text(i, 2)), village=text(i, 3),
                  household_type=text(i, 4), monitoring_category=text(i, 5), members=[text(i, 6) or "", "乙"],
                  risk_types=[text(i, 7) or "因病"], findings=[] if i % 4 else [text(i, 8) or ""],
                  priority_reasons=text(i, 9), cadre=text(i, 10), household_size=None if i % 9 == 0 else i % 6,
                  a34_per_capita=numbers[i % len(numbers)], a38_per_capita=numbers[(i + 3) % len(numbers)],
                  a38_after_event=numbers[(i + 5) % len(numbers)], due_date=None if i % 8 == 0 else date(2026, 11, 21),
                  first_warned_on=date(1900, 2, 28 - i % 3) if i % 50 == 0 else date(2026, 11, 11))
        for i in range(rows)
    ])


def nasty_unmatched() -> pl.DataFrame:
    return pl.DataFrame([dict(month=MONTH, id_number=f"3607991990010{i:05d}", name=NASTY_TEXTS[i % len(NASTY_TEXTS)],
                              sources=["civil_affairs.dibao"], township=["甲镇", "丁村镇"][i % 2],
                              village=NASTY_TEXTS[(i + 4) % len(NASTY_TEXTS)]) for i in range(40)])


def nasty_cases() -> pl.DataFrame:
    return pl.DataFrame([dict(month=MONTH, township="乙乡", village=NASTY_TEXTS[i % len(NASTY_TEXTS)], head_name=f"旧{i}",
                              household_id=f"O{i:03d}", first_month="2026-09", first_warned_on=date(2026, 10, 11),
                              due_date=date(2026, 10, 21), status="已逾期", status_group=["overdue", "verified"][i % 2],
                              days_overdue=i if i % 2 == 0 else None, verified_on=None, verifier=NASTY_TEXTS[i % 7],
                              warned_again=bool(i % 3)) for i in range(30)])


def cell_facts(cell) -> tuple:
    """What a clerk sees and edits in a cell: value, type and every part of its style."""
    return (cell.data_type, cell.number_format, cell.quotePrefix, repr(cell.font), repr(cell.fill), repr(cell.border),
            repr(cell.alignment), repr(cell.protection))


def assert_same_workbook(fast: Path, plain: Path) -> int:
    """Every sheet and cell of two workbooks read back with openpyxl agree; returns the number of cells compared.

    Floats are the one difference: openpyxl rounds them to 16 significant digits, the fast path keeps the exact
    value, so openpyxl's number must be the fast path's rounded the same way.
    """
    one, two = openpyxl.load_workbook(fast), openpyxl.load_workbook(plain)
    assert one.sheetnames == two.sheetnames
    compared = 0
    for a, b in zip(one.worksheets, two.worksheets):
        assert (a.max_row, a.max_column, a.freeze_panes, a.auto_filter.ref, a.print_area, a.sheet_state) == (
            b.max_row, b.max_column, b.freeze_panes, b.auto_filter.ref, b.print_area, b.sheet_state), a.title
        assert [str(dv.sqref) for dv in a.data_validations.dataValidation] == [
            str(dv.sqref) for dv in b.data_validations.dataValidation]
        widths = [{key: d.width for key, d in ws.column_dimensions.items()} for ws in (a, b)]
        assert widths[0] == widths[1], a.title
        for row_a, row_b in zip(a.iter_rows(), b.iter_rows(), strict=True):
            for x, y in zip(row_a, row_b, strict=True):
                where = f"{a.title}!{x.coordinate}"
                assert x.data_type != "f", where
                if isinstance(x.value, float) and x.value == x.value:
                    assert y.value == float("%.16g" % x.value), where
                else:
                    assert x.value == y.value or (x.value != x.value and y.value != y.value), where
                assert cell_facts(x) == cell_facts(y), where
                compared += 1
    return compared


def test_fast_rows_equal_openpyxl_cell_by_cell(tmp_path):
    queue, unmatched, cases = nasty_queue(), nasty_unmatched(), nasty_cases()
    fast = write_workbooks_by_township(queue, unmatched, MONTH, tmp_path / "fast", cases)
    plain = write_workbooks_by_township(queue, unmatched, MONTH, tmp_path / "plain", cases, reference=True)
    assert set(fast) == set(plain) == {"甲镇", "乙乡", "丙&<镇", "丁村镇"}
    compared = sum(assert_same_workbook(fast[t], plain[t]) for t in fast)
    assert compared > 240 * 29
    ws = openpyxl.load_workbook(fast["甲镇"])[sheet_name("verification")]
    texts = [c.value for row in ws.iter_rows(min_row=3) for c in row if isinstance(c.value, str)]
    assert "a & b < c > d \"quoted\"" in texts and "𠀀𠮷 非BMP 😀" in texts and "line one\nline two" in texts
    assert "bellgone" in texts and "=after illegal" in texts and "  edge spaces  " in texts  # illegal chars dropped
    money = column(ws, "人均纯收入A34（元）")
    assert 10000 / 3 in money and 0.1 + 0.2 in money  # exact, where openpyxl would round to 16 digits


def test_fast_path_same_bytes_as_openpyxl_for_ordinary_rows(tmp_path):
    """Numbers openpyxl writes exactly (and any text): the fast path's files are byte for byte openpyxl's."""
    queue = pl.concat([sample_queue(), nasty_queue(60).with_columns(
        pl.lit(6200.5).alias("a34_per_capita"), pl.lit(None, pl.Float64).alias("a38_per_capita"),
        pl.lit(11160.0).alias("a38_after_event"), pl.col("priority").round(1))], how="diagonal_relaxed")
    fast = write_township_workbooks(queue, nasty_unmatched(), MONTH, tmp_path / "fast", nasty_cases())
    plain = write_workbooks_by_township(queue, nasty_unmatched(), MONTH, tmp_path / "plain", nasty_cases(),
                                        reference=True)
    assert [p.read_bytes() for p in fast] == [p.read_bytes() for p in sorted(plain.values())]


def test_columns_of_plain_values_take_the_short_cell_form_with_the_same_bytes(monkeypatch):
    """A column with no blank cell, no text to escape and no edge spaces is written in the short form of its cells;
    every other column in the general form. The XML is the same as writing every column in the general form."""
    from openpyxl import Workbook

    from fangpin import workbooks

    rows = pl.DataFrame({
        "plain_text": ["甲", "乙", "丙"], "with_null": ["甲", None, "丙"], "with_empty": ["甲", "", "丙"],
        "edge": ["甲", " 乙 ", "丙"], "markup": ["a&b", "<c>", "丙"], "formula": ["=1", "甲", "+2"],
        "ints": [1, 2, 3], "ints_null": [1, None, 3], "floats": [0.5, 1.0, 2.25],
        "floats_nan": [0.5, float("nan"), float("inf")], "dates": [date(2026, 10, 1)] * 3,
        "dates_null": [date(2026, 10, 1), None, None], "flags": [True, False, True], "flags_null": [True, None, False],
    })
    keys = [*rows.columns, None]
    styles = ["fp_text"] * len(keys)
    forms: list[tuple[bool, bool]] = []
    pieces = workbooks._cell_pieces
    monkeypatch.setattr(workbooks, "_cell_pieces", lambda *a, **k: forms.append(
        (k.get("short", False), k.get("escape", True))) or pieces(*a, **k))

    def written() -> bytes:
        wb = Workbook(write_only=True)
        workbooks._register_styles(wb)
        one_sheet = rows.with_columns(pl.lit("x").alias(workbooks.SHEET))
        return workbooks._rows_xml_by_sheet({"x": wb.create_sheet("x")}, one_sheet, keys, styles, {"x": 3})["x"]

    short = written()
    assert forms == [(True, False), (False, False), (False, False), (False, False), (True, True), (True, False),
                     (True, True), (False, True), (True, True), (False, True), (True, True), (False, True),
                     (True, True), (False, True), (False, True)]
    facts = workbooks._column_facts
    monkeypatch.setattr(workbooks, "_column_facts", lambda frame, names: {
        sheet: {name: (True if name.startswith(("blank", "markup", "edge")) else value)
                for name, value in found.items()}
        for sheet, found in facts(frame, names).items()})
    assert written() == short


def test_each_listing_is_built_once_for_every_township(tmp_path, monkeypatch):
    """A listing's rows become XML in one pass over all the townships, not one pass each: its cost is mostly fixed
    (~100 expressions), and a county has a dozen townships. Each workbook still gets only its own rows."""
    from fangpin import workbooks

    passes: list[set] = []
    by_sheet = workbooks._rows_xml_by_sheet
    monkeypatch.setattr(workbooks, "_rows_xml_by_sheet", lambda sheets, *a: passes.append(set(sheets)) or by_sheet(
        sheets, *a))
    queue, unmatched, cases = nasty_queue(), nasty_unmatched(), nasty_cases()
    written = write_workbooks_by_township(queue, unmatched, MONTH, tmp_path, cases)
    assert len(written) == 4
    # verification, public, public's footer note, unmatched, earlier cases (only one township has any)
    assert [len(sheets) for sheets in passes] == [4, 4, 4, 4, 1]
