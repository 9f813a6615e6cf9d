"""The end-of-run summary a county officer reads: what the run could not do for them is named there."""
from __future__ import annotations

import duckdb

from fangpin.summary import summary_lines
from fangpin.warehouse import ensure_schema

MONTH = "2026-10"


def test_the_summary_names_warned_households_no_township_receives():
    con = duckdb.connect()
    ensure_schema(con)
    con.execute("INSERT INTO marts.warning_queue (month, household_id, township) VALUES "
                "(?, 'H1', '城关镇'), (?, 'H2', NULL), (?, 'H3', NULL)", [MONTH] * 3)
    lines = summary_lines(con, MONTH)
    assert "预警户 warned households: 3" in lines
    assert any("其中 2 户没有乡镇" in line for line in lines)


def test_the_summary_says_what_the_townships_sent_back_and_what_was_refused():
    con = duckdb.connect()
    ensure_schema(con)
    con.execute("INSERT INTO cases.verifications (month, township, household_id, result, source_file) VALUES "
                "(?, '甲镇', 'H1', '存在风险', 'raw/2026-10/feedback/甲镇.xlsx'), "
                "(?, '甲镇', 'H2', '不存在风险', 'raw/2026-10/feedback/甲镇.xlsx')", [MONTH] * 2)
    con.execute("INSERT INTO quarantine.rejected_rows (month, source_file, list_key, reason_code, reason) VALUES "
                "(?, 'raw/2026-10/feedback/乙乡.xls', 'feedback', 'feedback_not_workbook', '…')", [MONTH])
    assert any("采用核实结果 2 户（1 个文件），拒收 1 条（1 个文件" in line for line in summary_lines(con, MONTH))
    assert not any("乡镇报回" in line for line in summary_lines(con, "2026-09"))
