"""Deadlines and case history across months (fangpin.cases, through fangpin.warnings)."""
from __future__ import annotations

import copy
import shutil
from datetime import date

import pytest

from fangpin import cases, config
from fangpin.cases import due_date, issue_date
from fangpin.linkage import link_month
from fangpin.warnings import build_warning_queue
from test_linkage import add_household, add_row, rows, warehouse

SEP, OCT = "2026-09", "2026-10"


def run(con, month: str) -> dict:
    link_month(con, month)
    return build_warning_queue(con, month)


def verify(con, month: str, household_id: str, result: str, verified_on: date | None, case_id: str | None = None):
    con.execute(
        "INSERT INTO cases.verifications (month, township, household_id, case_id, result, verified_on, verifier,"
        " remarks, source_file, row_number) VALUES (?, '红旗镇', ?, ?, ?, ?, '核实员', NULL, 'feedback/红旗镇.xlsx', 5)",
        [month, household_id, case_id, result, verified_on])


def two_months(con, households=("1",)) -> dict[str, list[str]]:
    """Households on the dibao list in September and again in October."""
    ids = {}
    for month in (SEP, OCT):
        for household in households:
            ids[household] = add_household(con, household, month=month)
            add_row(con, "civil_affairs.dibao", ids[household][0], month=month, detail="因病")
    return ids


def case_row(con, month: str, household_id: str) -> dict:
    columns = ("case_id", "case_status", "first_warned_on", "due_date", "is_repeat", "overdue", "priority",
               "base_priority", "priority_reasons", "issued_on")
    found = rows(con, f"SELECT {', '.join(columns)} FROM marts.warning_queue WHERE month = ? AND household_id = ?",
                 month, household_id)
    return dict(zip(columns, found[0]))


def test_issue_date_is_the_day_after_the_departments_deadline():
    assert issue_date("2026-10") == date(2026, 11, 11)
    assert issue_date("2026-12") == date(2027, 1, 11)
    with pytest.raises(ValueError):
        issue_date("2026-13")


def test_due_date_in_calendar_days_by_default():
    assert due_date(date(2026, 11, 11)) == date(2026, 11, 21)
    assert due_date(date(2026, 9, 28), period_days=10, working_days=False) == date(2026, 10, 8)


def test_due_date_in_working_days_over_national_day_2026():
    # chinese_calendar: 2026-10-01..07 off, Saturday 2026-10-10 a make-up working day
    assert due_date(date(2026, 9, 30), period_days=3, working_days=True) == date(2026, 10, 10)
    assert due_date(date(2026, 9, 30), period_days=10, working_days=True) == date(2026, 10, 20)
    assert due_date(date(2026, 9, 29), period_days=1, working_days=True) == date(2026, 9, 30)


def test_working_days_come_from_county_yaml(tmp_path, monkeypatch):
    shutil.copytree(config.config_dir(), tmp_path, dirs_exist_ok=True)
    text = (tmp_path / "county.yaml").read_text(encoding="utf-8")
    text = text.replace("period_days: 10", "period_days: 3").replace("working_days: false", "working_days: true")
    (tmp_path / "county.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("FANGPIN_CONFIG_DIR", str(tmp_path))
    config.county.cache_clear()
    try:
        assert due_date(date(2026, 9, 30)) == date(2026, 10, 10)
    finally:
        monkeypatch.delenv("FANGPIN_CONFIG_DIR")
        config.county.cache_clear()


def test_repeat_while_open_keeps_case_and_first_date_and_escalates_when_overdue():
    con = warehouse()
    two_months(con)
    assert run(con, SEP)["new"] == 1
    first = case_row(con, SEP, "1")
    assert (first["case_status"], first["first_warned_on"], first["due_date"]) == ("新预警", date(2026, 10, 11),
                                                                                   date(2026, 10, 21))
    counts = run(con, OCT)
    assert counts["repeat"] == 1 and counts["overdue"] == 1 and counts["new"] == 0
    again = case_row(con, OCT, "1")
    assert again["case_id"] == first["case_id"] == "YJ202609-1"
    assert again["first_warned_on"] == date(2026, 10, 11) and again["issued_on"] == date(2026, 11, 11)
    assert again["is_repeat"] and again["overdue"] and again["case_status"] == "已逾期"
    weights = config.county()["priority"]
    assert again["priority"] == again["base_priority"] + weights["repeat"] + weights["overdue"]
    assert "已逾期：核实期限2026-10-21已过" in again["priority_reasons"]
    assert "首次预警于2026-10-11" in again["priority_reasons"]


def test_repeat_not_yet_due_is_a_repeat_not_overdue(monkeypatch):
    policy = copy.deepcopy(config.county())
    policy["verification"]["period_days"] = 45
    monkeypatch.setattr(cases, "county", lambda: policy)
    con = warehouse()
    two_months(con)
    run(con, SEP)
    run(con, OCT)
    row = case_row(con, OCT, "1")
    assert row["is_repeat"] and not row["overdue"] and row["case_status"] == "重复预警"
    assert row["due_date"] == date(2026, 11, 25)  # the case's own deadline, from its first warning


def test_verified_case_closes_and_next_warning_is_a_new_case():
    con = warehouse()
    two_months(con)
    run(con, SEP)
    verify(con, SEP, "1", "存在风险", date(2026, 10, 15), case_id="YJ202609-1")
    run(con, OCT)
    row = case_row(con, OCT, "1")
    assert (row["case_id"], row["case_status"], row["is_repeat"]) == ("YJ202610-1", "新预警", False)
    assert row["first_warned_on"] == date(2026, 11, 11) and row["due_date"] == date(2026, 11, 21)
    (status, group, warned_again, verified_on), = rows(
        con, "SELECT status, status_group, warned_again, verified_on FROM marts.case_status WHERE month = ?", OCT)
    assert (status, group, warned_again, verified_on) == ("已核实：存在风险", "verified", False, date(2026, 10, 15))


def test_case_status_shows_rejected_overdue_and_verification_without_case_id():
    con = warehouse()
    for household in ("1", "2", "3"):
        ids = add_household(con, household, month=SEP)
        add_row(con, "civil_affairs.dibao", ids[0], month=SEP, detail="因病")
        add_household(con, household, month=OCT)
    run(con, SEP)
    verify(con, SEP, "1", "不存在风险", date(2026, 10, 20))           # no case_id: found by household and month
    verify(con, SEP, "3", "查无此户", date(2026, 11, 20))             # after October's issue date: not known yet
    counts = run(con, OCT)
    assert counts["households"] == 0 and counts["case_status"] == 3
    status = {h: (s, g, o, p) for h, s, g, o, p in rows(
        con, "SELECT household_id, status, status_group, overdue, priority FROM marts.case_status WHERE month = ?", OCT)}
    base = rows(con, "SELECT base_priority FROM marts.warning_queue WHERE month = ? AND household_id = '2'", SEP)[0][0]
    assert status["1"][:3] == ("已排除：不存在风险", "rejected", False)
    assert status["2"] == ("已逾期", "overdue", True, base + config.county()["priority"]["overdue"])
    assert status["3"][:3] == ("已逾期", "overdue", True)
    # November: household 3's late feedback now counts; household 1's case, closed before, is no longer listed
    run(con, "2026-11")
    later = dict(rows(con, "SELECT household_id, status FROM marts.case_status WHERE month = '2026-11'"))
    assert later == {"2": "已逾期", "3": "已排除：查无此户"}


def snapshot(con, month: str | None = None) -> dict[str, list[str]]:
    """Every row of the four tables (of one month when given), as sorted text."""
    tables = ("marts.person_links", "marts.unmatched_persons", "marts.warning_queue", "marts.case_status")
    where = "" if month is None else f" WHERE month = '{month}'"
    return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}{where}").fetchall())) for t in tables}


def test_rerunning_a_month_is_idempotent_and_leaves_other_months_alone():
    con = warehouse()
    two_months(con, households=("1", "2"))
    add_row(con, "health.major_disease", "360799199001010000", month=OCT)  # not in the roster
    run(con, SEP)
    run(con, OCT)
    before = snapshot(con)
    run(con, OCT)
    assert snapshot(con) == before
    run(con, SEP)
    assert snapshot(con) == before
    # October's inputs change: only October's rows change
    con.execute("DELETE FROM staging.list_rows WHERE month = ? AND list_key = 'health.major_disease'", [OCT])
    september = snapshot(con, SEP)
    assert september["marts.warning_queue"] and september["marts.person_links"]
    run(con, OCT)
    assert snapshot(con, SEP) == september
    assert rows(con, "SELECT count(*) FROM marts.unmatched_persons WHERE month = ?", OCT) == [(0,)]
