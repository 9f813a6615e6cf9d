"""Reading back township verification workbooks: valid rows update cases, altered rows and workbooks are rejected."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from fangpin.feedback import read_feedback, read_feedback_dir, source_name
from fangpin.values import parse_date
from fangpin.workbooks import sheet_name, write_township_workbooks
from schemas.lists import REJECTED_COLUMNS

MONTH = "2026-10"
RESULT, WHEN, WHO, NOTE = "核实结果（下拉选择）", "核实日期", "核实人", "备注"


def household(hid: str, township: str, head: str, head_id: str, priority: float) -> dict:
    return dict(
        month=MONTH, household_id=hid, township=township, village="东村", head_name=head, head_id_number=head_id,
        household_size=3, household_type="一般农户", monitoring_category=None, members=[f"{head}（新增农村低保人员名单）"],
        member_ids=[head_id], risk_types=["其他"], risk_details=[], assurance_gaps=[], sources=["civil_affairs.dibao"],
        findings=[], is_monitored=False, suggested_category="边缘易致贫户", a34_per_capita=None, a38_per_capita=None,
        a38_after_event=None, monitoring_line=11160.0, priority=priority, priority_reasons="", issued_on=date(2026, 11, 11),
        due_date=date(2026, 11, 21), case_id=f"case-{hid}", case_status="新预警", first_warned_on=date(2026, 11, 11),
        is_repeat=False, overdue=False, match_rule="身份证号码一致", cadre=None, phone=None,
    )


@pytest.fixture
def queue() -> pl.DataFrame:
    return pl.DataFrame([
        household("A001", "甲镇", "赵一", "360799198001011111", 3.0),
        household("A002", "甲镇", "钱二", "360799198102022222", 2.0),
        household("A003", "甲镇", "孙三", "360799198203033333", 1.0),
        household("B001", "乙乡", "周五", "360799198405055555", 9.0),
    ])


@pytest.fixture
def sent(tmp_path: Path, queue: pl.DataFrame) -> Path:
    """The 甲镇 workbook as it comes back: copied into the month's feedback folder."""
    paths = write_township_workbooks(queue, pl.DataFrame(), MONTH, tmp_path / "exports" / MONTH)
    feedback = tmp_path / "raw" / MONTH / "feedback"
    feedback.mkdir(parents=True)
    target = feedback / "甲镇.xlsx"
    target.write_bytes(next(p for p in paths if p.name == "甲镇.xlsx").read_bytes())
    return target


class Clerk:
    """Edits a returned workbook the way a township clerk does: by header, by household, with openpyxl."""

    def __init__(self, path: Path):
        self.path = path
        self.wb = openpyxl.load_workbook(path)
        self.ws = self.wb[sheet_name("verification")]
        self.columns = {cell.value: cell.column for cell in self.ws[2]}

    def row_of(self, household_id: str) -> int:
        column = self.columns["户编号"]
        return next(r for r in range(3, self.ws.max_row + 1) if self.ws.cell(r, column).value == household_id)

    def set(self, household_id: str, **values) -> int:
        row = self.row_of(household_id)
        for header, value in values.items():
            self.ws.cell(row, self.columns[header], value)
        return row

    def fill(self, household_id: str, result="存在风险", when=datetime(2026, 11, 15), who="李核实", note=None) -> int:
        return self.set(household_id, **{RESULT: result, WHEN: when, WHO: who, NOTE: note})

    def append(self, **values) -> int:
        row = self.ws.max_row + 1
        for header, value in values.items():
            self.ws.cell(row, self.columns[header], value)
        return row

    def save(self) -> Path:
        self.wb.save(self.path)
        return self.path


def test_round_trip_clerk_fills_results(sent, queue):
    clerk = Clerk(sent)
    row_a = clerk.fill("A001", note="低保已到位")
    row_b = clerk.fill("A002", result="不存在风险", when="2026年11月16日", who="王核实")
    clerk.save()  # A003 left blank: not yet verified
    verifications, rejections = read_feedback(sent, queue)
    assert rejections.is_empty()
    assert verifications.sort("household_id").to_dicts() == [
        dict(month=MONTH, township="甲镇", household_id="A001", case_id="case-A001", result="存在风险",
             verified_on=date(2026, 11, 15), verifier="李核实", remarks="低保已到位",
             source_file=f"raw/{MONTH}/feedback/甲镇.xlsx", row_number=row_a),
        dict(month=MONTH, township="甲镇", household_id="A002", case_id="case-A002", result="不存在风险",
             verified_on=date(2026, 11, 16), verifier="王核实", remarks=None,
             source_file=f"raw/{MONTH}/feedback/甲镇.xlsx", row_number=row_b),
    ]


def test_untouched_workbook_gives_nothing(sent, queue):
    verifications, rejections = read_feedback(sent, queue)
    assert verifications.is_empty() and rejections.is_empty()
    assert verifications.schema["verified_on"] == pl.Date


def test_altered_rows_rejected_and_valid_rows_still_count(sent, queue):
    clerk = Clerk(sent)
    good = clerk.fill("A001")
    changed_id = clerk.fill("A002")
    clerk.set("A002", 户主身份证号码="360799198102020000")
    changed_household = clerk.fill("A003")
    clerk.set("A003", 户编号="A333")  # the head's ID still says it is A003
    pasted = clerk.append(户编号="B001", 户主姓名="周五", 户主身份证号码="360799198405055555",
                          **{RESULT: "存在风险", WHEN: "2026-11-15", WHO: "李核实"})
    added = clerk.append(户编号="N001", 户主姓名="新户", 户主身份证号码="360799199912120011")
    duplicate = clerk.append(户编号="A001", 户主姓名="赵一", 户主身份证号码="360799198001011111",
                             **{RESULT: "不存在风险", WHEN: "2026-11-15", WHO: "李核实"})
    clerk.append(序号="填表人：张三")  # a signature line: not a household row, ignored
    clerk.save()
    verifications, rejections = read_feedback(sent, queue)
    assert verifications.get_column("household_id").to_list() == ["A001"]
    assert verifications.get_column("row_number").to_list() == [good]
    got = {row["row_number"]: row for row in rejections.to_dicts()}
    expected = {
        changed_id: ("feedback_id_changed", "户主身份证号码"),
        changed_household: ("feedback_household_id_changed", "户编号"),
        pasted: ("feedback_other_township", "户编号"),
        added: ("feedback_row_added", "户编号"),
        duplicate: ("feedback_duplicate_row", "户编号"),
    }
    assert {r: (g["reason_code"], g["column_name"]) for r, g in got.items()} == expected
    for row, (code, column) in expected.items():
        reason = got[row]["reason"]
        assert "甲镇.xlsx" in reason and "入户核实清单" in reason and f"第{row}行" in reason and column in reason
    assert "乙乡" in got[pasted]["reason"] and "A003" in got[changed_household]["reason"]
    assert f"第{good}行" in got[duplicate]["reason"]
    assert all(r["list_key"] == "feedback" and r["sheet"] == "入户核实清单" for r in got.values())
    assert rejections.schema == pl.Schema(REJECTED_COLUMNS)


def test_bad_values_rejected(sent, queue):
    clerk = Clerk(sent)
    bad_result = clerk.fill("A001", result="有风险")
    bad_date = clerk.fill("A002", when="下周二")
    no_verifier = clerk.fill("A003", who=None)
    clerk.save()
    verifications, rejections = read_feedback(sent, queue)
    assert verifications.is_empty()
    got = {r["row_number"]: (r["reason_code"], r["column_name"]) for r in rejections.to_dicts()}
    assert got == {bad_result: ("feedback_bad_result", RESULT), bad_date: ("feedback_bad_date", WHEN),
                   no_verifier: ("feedback_verifier_missing", WHO)}
    reasons = " ".join(rejections.get_column("reason").to_list())
    assert "有风险" in reasons and "下周二" in reasons


def test_date_before_warning_rejected(sent, queue):
    clerk = Clerk(sent)
    early = clerk.fill("A001", when=datetime(2026, 10, 1))
    clerk.fill("A002", when="20261112")
    clerk.save()
    verifications, rejections = read_feedback(sent, queue)
    assert verifications.get_column("verified_on").to_list() == [date(2026, 11, 12)]
    assert rejections.get_column("row_number").to_list() == [early]
    assert rejections.get_column("reason_code").to_list() == ["feedback_date_out_of_range"]


def test_clerk_sorting_rows_is_fine(sent, queue):
    clerk = Clerk(sent)
    first, last = clerk.row_of("A001"), clerk.row_of("A003")
    values_first = [c.value for c in clerk.ws[first]]
    values_last = [c.value for c in clerk.ws[last]]
    for index, (a, b) in enumerate(zip(values_first, values_last), start=1):
        clerk.ws.cell(first, index, b)
        clerk.ws.cell(last, index, a)
    clerk.fill("A003")
    clerk.save()
    verifications, rejections = read_feedback(sent, queue)
    assert rejections.is_empty()
    assert verifications.select("household_id", "row_number").to_dicts() == [
        {"household_id": "A003", "row_number": first}]


def whole(rejections: pl.DataFrame) -> tuple[str, object]:
    assert rejections.height == 1
    row = rejections.row(0, named=True)
    assert row["row_number"] is None and "甲镇.xlsx" in row["reason"]
    return row["reason_code"], row["month"]


def test_meta_sheet_missing_rejects_whole_workbook(sent, queue):
    clerk = Clerk(sent)
    clerk.fill("A001")
    del clerk.wb[sheet_name("meta")]
    clerk.save()
    verifications, rejections = read_feedback(sent, queue)
    assert verifications.is_empty()
    assert whole(rejections) == ("feedback_meta_missing", MONTH)


def test_meta_sheet_edited_rejects_whole_workbook(sent, queue):
    clerk = Clerk(sent)
    clerk.fill("A001")
    meta = clerk.wb[sheet_name("meta")]
    row = next(r for r in range(1, meta.max_row + 1) if meta.cell(r, 1).value == "township")
    meta.cell(row, 2, "乙乡")  # pretending to be another township
    clerk.save()
    verifications, rejections = read_feedback(sent, queue)
    assert verifications.is_empty()
    assert whole(rejections)[0] == "feedback_meta_altered"


def test_wrong_month_rejects_whole_workbook(sent, queue):
    Clerk(sent).save()
    next_month = queue.with_columns(pl.lit("2026-11").alias("month"))
    verifications, rejections = read_feedback(sent, next_month)
    assert verifications.is_empty()
    code, _ = whole(rejections)
    assert code == "feedback_wrong_month" and "2026-10" in rejections.item(0, "reason")


def test_renamed_sheet_and_unreadable_file(sent, queue, tmp_path):
    clerk = Clerk(sent)
    clerk.ws.title = "Sheet1"
    clerk.save()
    assert whole(read_feedback(sent, queue)[1])[0] == "feedback_sheet_missing"
    junk = tmp_path / "raw" / MONTH / "feedback" / "甲镇(1).xlsx"
    junk.write_bytes(b"not a zip at all")
    verifications, rejections = read_feedback(junk, queue)
    assert verifications.is_empty() and rejections.item(0, "reason_code") == "file_unreadable"


def test_feedback_folder(sent, queue):
    clerk = Clerk(sent)
    clerk.fill("A001")
    clerk.save()
    folder = sent.parent
    (folder / "~$甲镇.xlsx").write_bytes(b"lock")
    (folder / "乙乡.csv").write_text("户编号,核实结果\n", encoding="utf-8")
    verifications, rejections = read_feedback_dir(folder, queue)
    assert verifications.get_column("household_id").to_list() == ["A001"]
    assert rejections.select("source_file", "reason_code").to_dicts() == [
        {"source_file": f"raw/{MONTH}/feedback/乙乡.csv", "reason_code": "feedback_not_workbook"}]


def test_a_verification_date_is_read_in_every_form_a_clerk_types_but_must_name_the_day():
    """The township's date goes through the lists' date rule (fangpin.values), with the day required."""
    texts = ["2026-11-05", "2026/11/5", "2026.11.05", "2026年11月5日", "2026 年 11 月 5 日", "20261105", "46331",
             "2026-11-05 08:30", "2026-02-30", "下周", "2026年11月", "202611", None]
    parsed = pl.DataFrame({"t": texts}).select(parse_date(pl.col("t"), day_required=True)).to_series().to_list()
    assert parsed == [date(2026, 11, 5)] * 8 + [None] * 5


def test_source_name_relative_to_data_dir(tmp_path):
    assert source_name(tmp_path / "data" / "raw" / MONTH / "feedback" / "x.xlsx") == f"raw/{MONTH}/feedback/x.xlsx"
    assert source_name(Path("elsewhere/x.xlsx")) == "elsewhere/x.xlsx"


def test_an_encrypted_returned_workbook_is_read_with_its_townships_password(sent, queue):
    from fangpin import protect

    clerk = Clerk(sent)
    clerk.fill("A001")
    clerk.save()
    protect.encrypt_workbook(sent, "甲镇-密码-2026")
    verifications, rejections = read_feedback(sent, queue, protect.open_returned(sent, {"乙乡": "x" * 12, "甲镇": "甲镇-密码-2026"}))
    assert rejections.is_empty() and verifications["household_id"].to_list() == ["A001"]
    _, unreadable = read_feedback(sent, queue, protect.open_returned(sent, {"乙乡": "x" * 12}))
    assert unreadable["reason_code"].to_list() == ["feedback_password"]  # a password no township was given
    assert "保持原来的密码" in unreadable.item(0, "reason") and "取消密码" not in unreadable.item(0, "reason")


def test_cells_read_as_the_clerk_meant_them(tmp_path):
    """A returned workbook is read with calamine, cell by cell as Excel stores what the clerk typed: a household
    number retyped as a number, a date with a time of day, spaces around a result, and a row inserted above the
    title all give the verification the clerk meant, on the Excel row the clerk sees."""
    numbered = pl.DataFrame([household("3607990001", "甲镇", "赵一", "360799198001011111", 1.0),
                             household("3607990002", "甲镇", "钱二", "36079919810202222X", 2.0)])
    written = write_township_workbooks(numbered, pl.DataFrame(), MONTH, tmp_path / "exports" / MONTH)
    path = next(p for p in written if p.name == "甲镇.xlsx")
    clerk = Clerk(path)
    row = clerk.set("3607990001", **{"户编号": 3607990001, RESULT: "  存在风险 ", WHEN: datetime(2026, 11, 15, 9, 30),
                                     WHO: "李核实"})
    other = clerk.fill("3607990002", when="2026/11/16")
    clerk.ws.insert_rows(1)
    clerk.save()

    verifications, rejections = read_feedback(path, numbered)

    assert rejections.is_empty()
    assert verifications.sort("household_id").select("household_id", "result", "verified_on", "row_number").rows() == [
        ("3607990001", "存在风险", date(2026, 11, 15), row + 1),
        ("3607990002", "存在风险", date(2026, 11, 16), other + 1),
    ]


def test_an_error_value_in_the_result_is_rejected_not_taken_for_blank(sent, queue):
    """calamine reads an error cell (#N/A, a formula gone wrong) blank, which would pass the row as not yet verified;
    it is read as Excel shows it, so the clerk is told."""
    clerk = Clerk(sent)
    row = clerk.fill("A001", result="#N/A")  # openpyxl stores it as an error value
    clerk.save()

    verifications, rejections = read_feedback(sent, queue)

    assert verifications.is_empty()
    assert rejections.select("row_number", "reason_code").rows() == [(row, "feedback_bad_result")]
    assert "“#N/A”不是下拉选项之一" in rejections["reason"][0]


def test_a_return_in_a_sub_folder_is_read_and_an_unopenable_entry_rejected(sent, queue):
    """A township's zip unpacked as a folder; a link to a share that is not mounted; Windows' Thumbs.db."""
    clerk = Clerk(sent)
    clerk.fill("A001")
    clerk.save()
    inner = sent.parent / "11月报回"
    inner.mkdir()
    sent.rename(inner / sent.name)
    (sent.parent / "乙乡.xlsx").symlink_to(sent.parent / "share" / "乙乡.xlsx")
    (sent.parent / "Thumbs.db").write_bytes(b"\x00")

    verifications, rejections = read_feedback_dir(sent.parent, queue, MONTH)

    assert verifications.select("household_id", "source_file").rows() == [
        ("A001", f"raw/{MONTH}/feedback/11月报回/甲镇.xlsx")]
    assert rejections.select("source_file", "reason_code").rows() == [
        (f"raw/{MONTH}/feedback/乙乡.xlsx", "file_unreadable")]
    assert "链接" in rejections.item(0, "reason")


def test_a_damaged_return_is_rejected_alone_when_workbooks_are_encrypted(sent, queue):
    """msoffcrypto refuses bytes that are neither zip nor OLE: that must not stop the other townships' returns."""
    from fangpin import protect

    clerk = Clerk(sent)
    clerk.fill("A001")
    clerk.save()
    protect.encrypt_workbook(sent, "甲镇-密码-2026")
    (sent.parent / "乙乡.xlsx").write_bytes(b"")
    passwords = {"甲镇": "甲镇-密码-2026"}

    verifications, rejections = read_feedback_dir(sent.parent, queue, MONTH,
                                                  lambda path: protect.open_returned(path, passwords))

    assert verifications["household_id"].to_list() == ["A001"]
    assert rejections.select("source_file", "reason_code").rows() == [
        (f"raw/{MONTH}/feedback/乙乡.xlsx", "file_unreadable")]


def test_an_error_no_check_foresaw_rejects_its_workbook_only(sent, queue, monkeypatch):
    import fangpin.feedback as feedback

    (sent.parent / "乙乡.xlsx").write_bytes(sent.read_bytes())
    Clerk(sent).save()  # saved again: no longer the same bytes as 乙乡.xlsx
    read = feedback.read_feedback

    def fail_for_yixiang(path, *args):
        if path.name == "乙乡.xlsx":
            raise RuntimeError("boom")
        return read(path, *args)

    monkeypatch.setattr(feedback, "read_feedback", fail_for_yixiang)
    _, rejections = read_feedback_dir(sent.parent, queue, MONTH)

    assert rejections["source_file"].to_list() == [f"raw/{MONTH}/feedback/乙乡.xlsx"]
    assert "RuntimeError: boom" in rejections.item(0, "reason")


def test_a_return_of_another_month_is_refused_even_when_nobody_was_warned(sent, queue):
    """A 2026-10 workbook filed under 2026-11, whose queue is empty: refused as 2026-10's and dated 2026-11, so a
    re-run of 2026-11 replaces it instead of piling rows up in 2026-10's quarantine."""
    nobody = queue.clear()

    verifications, rejections = read_feedback(sent, nobody, month="2026-11")

    assert verifications.is_empty()
    assert rejections.select("month", "reason_code").rows() == [("2026-11", "feedback_wrong_month")]


def test_a_row_filled_in_without_a_result_is_rejected_not_passed_over(sent, queue):
    clerk = Clerk(sent)
    dated = clerk.set("A001", **{WHEN: datetime(2026, 11, 15), WHO: "李核实"})
    noted = clerk.set("A002", **{NOTE: "该户已于10月迁往外省，无法入户"})
    added = clerk.append(**{"户主姓名": "赵无号", WHO: "李核实", NOTE: "新发现困难户，请县里核实"})
    clerk.save()

    verifications, rejections = read_feedback(sent, queue)

    assert verifications.is_empty()
    assert rejections.select("row_number", "reason_code").sort("row_number").rows() == [
        (dated, "feedback_result_missing"), (noted, "feedback_result_missing"), (added, "feedback_row_added")]


def test_a_household_typed_again_below_is_taken_from_its_answered_row(sent, queue):
    clerk = Clerk(sent)
    first = clerk.row_of("A001")  # left blank
    again = clerk.append(**{"户编号": "A001", "户主身份证号码": "360799198001011111", RESULT: "存在风险",
                            WHEN: datetime(2026, 11, 15), WHO: "李核实"})
    clerk.save()

    verifications, rejections = read_feedback(sent, queue)

    assert verifications.select("household_id", "row_number").rows() == [("A001", again)]
    assert rejections.select("row_number", "reason_code").rows() == [(first, "feedback_duplicate_row")]
    assert f"只采用第{again}行" in rejections.item(0, "reason")


def test_a_township_returning_twice_is_taken_from_the_file_saved_last(sent, queue):
    """甲镇.xlsx and 甲镇(修改).xlsx with other answers: the correction (saved last) is taken, once per household,
    and every row of the other file is rejected naming the one taken (both were taken, and the original won)."""
    import os

    clerk = Clerk(sent)
    clerk.fill("A001", result="存在风险")
    clerk.fill("A002", result="存在风险")
    clerk.save()
    corrected = sent.with_name("甲镇(修改).xlsx")
    corrected.write_bytes(sent.read_bytes())
    clerk = Clerk(corrected)
    row = clerk.fill("A001", result="不存在风险")
    clerk.save()
    os.utime(sent, (1_700_000_000, 1_700_000_000))
    os.utime(corrected, (1_700_000_100, 1_700_000_100))

    verifications, rejections = read_feedback_dir(sent.parent, queue, MONTH)

    assert verifications.select("household_id", "result", "source_file").sort("household_id").rows() == [
        ("A001", "不存在风险", f"raw/{MONTH}/feedback/甲镇(修改).xlsx"),
        ("A002", "存在风险", f"raw/{MONTH}/feedback/甲镇(修改).xlsx")]
    assert rejections.select("source_file", "reason_code").unique().rows() == [
        (f"raw/{MONTH}/feedback/甲镇.xlsx", "feedback_answered_twice")]
    assert rejections.height == 2
    assert f"《甲镇(修改).xlsx》第{row}行" in rejections.sort("row_number").item(0, "reason")


def test_answers_already_recorded_stay_when_their_file_is_gone_and_yield_to_newer_ones(sent, queue):
    """The workbook says a township may fill in the rest later and return it again; a clerk may also tidy the
    folder. A household answered before and not now keeps its answer; one answered again takes the new one."""
    from fangpin.feedback import with_earlier_answers

    clerk = Clerk(sent)
    clerk.fill("A001", result="存在风险")
    clerk.fill("A002", result="存在风险")
    clerk.save()
    first, _ = read_feedback_dir(sent.parent, queue, MONTH)
    clerk = Clerk(sent)  # the fresh copy sent, the rest filled in: A001 blank again, A002 corrected, A003 new
    clerk.set("A001", **{RESULT: None, WHEN: None, WHO: None})
    clerk.fill("A002", result="不存在风险")
    clerk.fill("A003", result="存在风险")
    clerk.save()
    second, _ = read_feedback_dir(sent.parent, queue, MONTH)

    recorded = with_earlier_answers(second, first)

    assert recorded.select("household_id", "result").sort("household_id").rows() == [
        ("A001", "存在风险"), ("A002", "不存在风险"), ("A003", "存在风险")]
    assert with_earlier_answers(second, recorded).sort("household_id").equals(recorded.sort("household_id"))
    sent.unlink()
    nothing, _ = read_feedback_dir(sent.parent, queue, MONTH)
    assert with_earlier_answers(nothing, recorded).height == 3


def test_an_edited_head_name_is_returned_as_the_instructions_say(sent, queue):
    """填写说明 六: rows whose 户编号, 户主姓名 or ID were changed are returned; the name was taken silently."""
    clerk = Clerk(sent)
    renamed = clerk.fill("A001")
    clerk.set("A001", **{"户主姓名": "张改名"})
    spaced = clerk.fill("A002")
    clerk.set("A002", **{"户主姓名": "钱 二"})  # a space typed: the same name
    clerk.save()

    verifications, rejections = read_feedback(sent, queue)

    assert verifications["household_id"].to_list() == ["A002"]
    assert rejections.select("row_number", "reason_code").rows() == [(renamed, "feedback_name_changed")]
    assert "张改名" in rejections.item(0, "reason") and spaced != renamed


def test_answers_on_a_copy_of_the_verification_sheet_are_rejected_not_passed_over(sent, queue):
    """An Excel copy of the sheet (移动或复制→建立副本: 入户核实清单 (2)) filled in while the original was left
    blank: only the verification sheet is read, so the answers vanished without a word."""
    clerk = Clerk(sent)
    copy = clerk.wb.copy_worksheet(clerk.ws)
    copy.title = "入户核实清单 (2)"
    clerk.ws = copy
    clerk.fill("A001")
    notes = clerk.wb.create_sheet("汇总")  # a clerk's own sheet without the header: left alone
    notes.append(["合计", 3])
    clerk.save()

    verifications, rejections = read_feedback(sent, queue)

    assert verifications.is_empty()
    assert rejections.select("sheet", "reason_code").rows() == [("入户核实清单 (2)", "feedback_other_sheet")]
    assert "入户核实清单 (2)" in rejections.item(0, "reason")


def test_an_identical_copy_of_a_return_counts_once(sent, queue):
    clerk = Clerk(sent)
    clerk.fill("A001")
    clerk.fill("A002")
    clerk.save()
    sent.with_name("甲镇 - 副本.xlsx").write_bytes(sent.read_bytes())

    verifications, rejections = read_feedback_dir(sent.parent, queue, MONTH)

    copy = f"raw/{MONTH}/feedback/甲镇 - 副本.xlsx"  # first in path order (" " sorts before "."): the one read
    assert verifications.select("household_id", "source_file").rows() == [("A001", copy), ("A002", copy)]
    assert rejections.select("source_file", "reason_code", "row_number").rows() == [
        (f"raw/{MONTH}/feedback/甲镇.xlsx", "feedback_duplicate_file", None)]
