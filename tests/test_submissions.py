"""marts.submissions on a hand-made month: a list on time, one late, one resent late as a duplicate, a department
that sent nothing, rejection reasons, a recorded arrival time, and a re-run that touches only its own month."""
from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from fangpin import submissions
from fangpin.config import registry
from fangpin.warehouse import ensure_schema, transaction

MONTH = "2026-10"   # due 2026-11-10 (county.yaml submissions.due_day)


@pytest.fixture()
def con():
    connection = duckdb.connect()
    ensure_schema(connection)
    yield connection
    connection.close()


def received(con, source_file, department, lists, modified_at, status="read", month=MONTH):
    con.execute("INSERT INTO raw.received_files (month, source_file, department, folder, lists, modified_at, "
                "first_seen, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [month, source_file, department, department, lists, modified_at, datetime(2026, 11, 11, 6), status])


def counted(con, list_key, files, rows, rejected, problems=0, month=MONTH):
    con.execute("INSERT INTO raw.list_counts VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                [month, list_key, list_key.split(".")[0], files, rows, rows - rejected, rejected, problems])


def rejected(con, list_key, code, reason, times):
    con.executemany("INSERT INTO quarantine.rejected_rows (month, source_file, list_key, reason_code, reason, "
                    "row_number) VALUES (?, 'f.xlsx', ?, ?, ?, ?)",
                    [(MONTH, list_key, code, f"{reason}{i}", i + 5) for i in range(times)])


def planted(con):
    received(con, "civil_affairs/低保.xlsx", "civil_affairs", ["civil_affairs.dibao"], datetime(2026, 11, 5, 9))
    counted(con, "civil_affairs.dibao", 1, 10, 4)
    rejected(con, "civil_affairs.dibao", "id_bad_checksum", "身份证号码校验位错误：", 2)
    rejected(con, "civil_affairs.dibao", "duplicate_in_list", "重复", 1)
    rejected(con, "civil_affairs.dibao", "id_missing", "身份证号码为空", 1)
    # the last minutes of the due day still count as on time
    received(con, "civil_affairs/特困.xlsx", "civil_affairs", ["civil_affairs.tekun"], datetime(2026, 11, 10, 23, 30))
    counted(con, "civil_affairs.tekun", 1, 3, 0)
    received(con, "health/大病.xlsx", "health", ["health.major_disease"], datetime(2026, 11, 12, 9))
    counted(con, "health.major_disease", 1, 7, 0)
    # sent on time, then the same content again after the deadline: still on time
    received(con, "emergency/受灾.xlsx", "emergency", ["emergency.disaster"], datetime(2026, 11, 8))
    received(con, "emergency/受灾(1).xlsx", "emergency", ["emergency.disaster"], datetime(2026, 11, 20), "duplicate")
    counted(con, "emergency.disaster", 1, 5, 0)
    # a housing file nobody could recognise: the department sent something, but no list is received
    received(con, "housing/说明.xlsx", "housing", [], datetime(2026, 11, 3), "quarantined")
    # education sent nothing at all
    counted(con, "education.dropout", 0, 0, 0)


def row(con, list_key, month=MONTH):
    cur = con.execute("SELECT * FROM marts.submissions WHERE month = ? AND list = ?", [month, list_key])
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


def test_on_time_late_and_missing(con):
    planted(con)
    counts = submissions.build_submissions(con, MONTH)
    dibao = row(con, "civil_affairs.dibao")
    assert dibao["received"] is True and dibao["on_time"] is True and dibao["status"] == "按时报送"
    assert dibao["department_name"] == "民政局" and dibao["arrived_at"] == datetime(2026, 11, 5, 9)
    assert (dibao["files"], dibao["rows"], dibao["rejected_rows"]) == (1, 10, 4)
    assert row(con, "civil_affairs.tekun")["on_time"] is True
    late = row(con, "health.major_disease")
    assert late["on_time"] is False and late["status"] == "逾期报送" and late["days_late"] == 2
    assert row(con, "emergency.disaster")["on_time"] is True
    missing = row(con, "education.dropout")
    assert missing["received"] is False and missing["on_time"] is None and missing["status"] == "未报送"
    assert missing["arrived_at"] is None
    housing = row(con, "housing.dangerous_house")
    assert housing["received"] is False and housing["department_unrecognised_files"] == 1
    assert counts["on_time"] == 3 and counts["late"] == 1
    assert counts["lists"] == len(registry().lists)
    assert counts["not_received"] == len(registry().lists) - 4
    assert counts["departments_sent_nothing"] == len(registry().departments) - 3


def test_main_reasons_are_the_most_frequent_in_general_words(con):
    planted(con)
    submissions.build_submissions(con, MONTH)
    dibao = row(con, "civil_affairs.dibao")
    assert dibao["main_reasons"].startswith("身份证号码校验位错误：“…”的最后一位应为“…”，请核对是否抄错（2条）；")
    assert dibao["main_reasons"].count("条）") == 3
    assert dibao["reason_counts"] == {"id_bad_checksum": 2, "duplicate_in_list": 1, "id_missing": 1}
    assert row(con, "health.major_disease")["main_reasons"] is None


def test_a_recorded_arrival_wins_over_the_modification_time(con):
    planted(con)
    con.execute("ALTER TABLE raw.received_files ADD COLUMN arrived_at TIMESTAMP")
    con.execute("UPDATE raw.received_files SET arrived_at = TIMESTAMP '2026-11-09 16:00' "
                "WHERE source_file = 'health/大病.xlsx'")
    submissions.build_submissions(con, MONTH)
    health = row(con, "health.major_disease")
    assert health["on_time"] is True and health["arrival_source"] == "arrived_at"
    assert row(con, "civil_affairs.dibao")["arrival_source"] == "modified_at"


def test_rerun_replaces_only_its_month_and_the_latest_view_follows(con):
    planted(con)
    received(con, "civil_affairs/低保9.xlsx", "civil_affairs", ["civil_affairs.dibao"], datetime(2026, 10, 30),
             month="2026-09")
    counted(con, "civil_affairs.dibao", 1, 2, 0, month="2026-09")
    with transaction(con):
        submissions.build_submissions(con, "2026-09")
        submissions.build_submissions(con, MONTH)
    before = con.execute("SELECT * FROM marts.submissions WHERE month = ? ORDER BY list", [MONTH]).fetchall()
    with transaction(con):
        submissions.build_submissions(con, MONTH)
    after = con.execute("SELECT * FROM marts.submissions WHERE month = ? ORDER BY list", [MONTH]).fetchall()
    assert before == after
    assert row(con, "civil_affairs.dibao", "2026-09")["status"] == "逾期报送"   # due 2026-10-10
    latest = con.execute("SELECT DISTINCT month FROM marts.submission_status_latest").fetchall()
    assert latest == [(MONTH,)]
    markdown = submissions.submissions_markdown(con, MONTH)
    assert "| 卫健委 | 新增30种大病人员名单 | 逾期报送 |" in markdown
