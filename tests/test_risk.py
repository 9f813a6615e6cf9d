"""Large-scale relapse risk levels on hand-made months: a planted flood cluster, a doubled risk type, a quiet
township that stays green, overdue cases, and a re-run that touches only its own month."""
from __future__ import annotations

import copy

import duckdb
import pytest

from fangpin import risk
from fangpin.warehouse import ensure_schema, transaction

QUEUE_DDL = """
CREATE TABLE IF NOT EXISTS marts.warning_queue (
    month VARCHAR NOT NULL, household_id VARCHAR NOT NULL, township VARCHAR, village VARCHAR, division_code VARCHAR,
    risk_types VARCHAR[], risk_details VARCHAR[], assurance_gaps VARCHAR[], sources VARCHAR[],
    is_monitored BOOLEAN, priority DOUBLE, due_date DATE, case_status VARCHAR, overdue BOOLEAN
)
"""

# township -> village -> roster households
PLACES = {
    "甲镇": {"甲一村": 100, "甲二村": 900},
    "乙镇": {"乙一村": 1000, "乙二村": 1000},
    "丙镇": {"丙一村": 500, "丙二村": 500},
}


@pytest.fixture()
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(connection)
    connection.execute(QUEUE_DDL)
    roster_month = "2026-07"
    for township, villages in PLACES.items():
        connection.execute("INSERT INTO roster.townships VALUES (?, ?, NULL, ?, NULL)",
                           [roster_month, township, sum(villages.values())])
        for village, households in villages.items():
            connection.execute("INSERT INTO roster.villages VALUES (?, ?, ?, NULL, ?, NULL)",
                               [roster_month, township, village, households])
    yield connection
    connection.close()


def warn(con, month, township, village, count, risk_types=(), details=(), gaps=(), overdue=False, prefix="h"):
    """`count` warned households in one village with the same labels."""
    rows = [(month, f"{prefix}-{township}-{village}-{i}", township, village, list(risk_types), list(details),
             list(gaps), overdue) for i in range(count)]
    con.executemany("INSERT INTO marts.warning_queue (month, household_id, township, village, risk_types, "
                    "risk_details, assurance_gaps, overdue) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def quiet_history(con, months=("2026-07", "2026-08", "2026-09")):
    """Three earlier months: 甲镇 and 丙镇 calm, 乙镇 with 2 illness and 4 dropout households a month."""
    for month in months:
        warn(con, month, "甲镇", "甲二村", 2, ["因病"], ["因病"])
        warn(con, month, "乙镇", "乙一村", 2, ["因病"], ["因病"])
        warn(con, month, "乙镇", "乙二村", 4, ["因学"], ["因学"], ["义务教育"])
        warn(con, month, "丙镇", "丙一村", 2, ["因残"], ["因残"])


def planted_october(con):
    """October: a flood hits 12 of 甲一村's 100 households; 乙镇's illness doubles; 丙镇 stays as it was."""
    warn(con, "2026-10", "甲镇", "甲一村", 12, ["因自然灾害"], ["因自然灾害-洪涝"], prefix="flood")
    warn(con, "2026-10", "甲镇", "甲二村", 2, ["因病"], ["因病"])
    warn(con, "2026-10", "乙镇", "乙一村", 5, ["因病"], ["因病"])
    warn(con, "2026-10", "乙镇", "乙二村", 4, ["因学"], ["因学"], ["义务教育"])
    warn(con, "2026-10", "丙镇", "丙一村", 2, ["因残"], ["因残"])


def township(con, month, name):
    cur = con.execute("SELECT * FROM marts.township_risk WHERE month = ? AND township = ?", [month, name])
    columns = [d[0] for d in cur.description]
    row = cur.fetchone()
    return dict(zip(columns, row)) if row else None


def village(con, month, town, name):
    cur = con.execute("SELECT * FROM marts.village_risk WHERE month = ? AND township = ? AND village = ?",
                      [month, town, name])
    columns = [d[0] for d in cur.description]
    return dict(zip(columns, cur.fetchone()))


def test_planted_flood_cluster_makes_the_township_orange_and_names_the_village(con):
    quiet_history(con)
    planted_october(con)
    counts = risk.build_township_risk(con, "2026-10")
    jia = township(con, "2026-10", "甲镇")
    assert jia["level"] == "orange"
    assert jia["largest_cluster_village"] == "甲一村"
    assert jia["largest_cluster_event"] == "因自然灾害-洪涝"
    assert jia["largest_cluster_households"] == 12
    assert jia["largest_cluster_share"] == pytest.approx(0.12)
    assert "甲一村同一事件“因自然灾害-洪涝”12户" in jia["reasons"]
    assert jia["reasons"].startswith("橙色：")
    assert jia["warned_households"] == 14 and jia["households"] == 1000
    assert jia["rate_per_1000"] == pytest.approx(14.0)
    assert jia["risk_counts"]["因自然灾害意外事故"] == 12
    assert jia["driving_villages"] == ["甲一村"]
    # the village that drives the level says so; the calm village does not
    assert village(con, "2026-10", "甲镇", "甲一村")["drives_township_level"] is True
    assert village(con, "2026-10", "甲镇", "甲一村")["level"] == "orange"
    assert village(con, "2026-10", "甲镇", "甲二村")["drives_township_level"] is False
    assert counts["marts.township_risk"] == 3 and counts["townships_orange"] == 1


def test_a_large_share_makes_red_and_a_small_cluster_does_not_fire(con):
    warn(con, "2026-10", "丙镇", "丙一村", 130, ["因自然灾害"], ["因自然灾害-地质灾害"])   # 26% of 500
    warn(con, "2026-10", "丙镇", "丙二村", 4, ["因自然灾害"], [])      # below 5 households, no detail given
    risk.build_township_risk(con, "2026-10")
    assert village(con, "2026-10", "丙镇", "丙一村")["level"] == "red"
    assert township(con, "2026-10", "丙镇")["level"] == "red"
    small = village(con, "2026-10", "丙镇", "丙二村")
    assert small["largest_cluster_households"] == 4 and "同一事件" not in small["reasons"]
    assert small["largest_cluster_event"] == "因自然灾害"       # the bare A27 type stands for the event


def test_a_doubled_risk_type_raises_a_calm_township_to_yellow(con):
    quiet_history(con)
    planted_october(con)
    risk.build_township_risk(con, "2026-10")
    yi = township(con, "2026-10", "乙镇")
    assert yi["level"] == "yellow"
    assert yi["rising_types"] == ["因病因残"]
    assert "因病因残5户，为近3个月平均2.0户的2.5倍" in yi["reasons"]
    # the total did not double (9 against 6), so only the type rule fires
    assert yi["warned_change"] == pytest.approx(3.0) and yi["warned_change_ratio"] == pytest.approx(1.5)
    row = con.execute("SELECT households, trailing_months, trailing_avg, ratio_to_trailing, rising "
                      "FROM marts.township_risk_types WHERE month = '2026-10' AND township = '乙镇' "
                      "AND risk_type = '因病因残'").fetchone()
    assert row == (5, 3, pytest.approx(2.0), pytest.approx(2.5), True)
    policy = con.execute("SELECT households, rising FROM marts.township_risk_types WHERE month = '2026-10' "
                         "AND township = '乙镇' AND risk_type = '政策衔接引发'").fetchone()
    assert policy == (4, False)   # the dropout gap maps onto the policy-transition type, steady


def test_a_quiet_township_stays_green_and_says_why(con):
    quiet_history(con)
    planted_october(con)
    risk.build_township_risk(con, "2026-10")
    bing = township(con, "2026-10", "丙镇")
    assert bing["level"] == "green" and bing["level_rank"] == 0
    assert bing["reasons"].startswith("绿色：未触发预警规则（预警户2户，每千户2.0户）")
    assert bing["trailing_months"] == 3 and bing["rising_types"] == []
    assert bing["largest_cluster_event"] is None


def test_no_history_compares_to_nothing_and_says_so(con):
    planted_october(con)
    risk.build_township_risk(con, "2026-10")
    yi = township(con, "2026-10", "乙镇")
    assert yi["level"] == "green"          # same October as above, but nothing to compare the illness with
    assert yi["trailing_months"] == 0 and yi["warned_trailing_avg"] is None
    assert "无往月数据可比" in yi["reasons"]


def test_nine_types_are_the_vocabulary_and_unfed_types_are_zero_with_a_note(con):
    planted_october(con)
    risk.build_township_risk(con, "2026-10")
    jia = township(con, "2026-10", "甲镇")
    assert list(jia["risk_counts"]) == ["因病因残", "因自然灾害意外事故", "新增住房不安全", "新增饮水不安全",
                                        "就业不稳定减收", "乡村产业失败", "政策衔接引发", "扶贫资产监管不善",
                                        "小额贷款逾期"]
    assert jia["gap_counts"] == {"住房安全": 0, "饮水安全": 0, "义务教育": 0, "基本医疗保险": 0}
    assert jia["form_risk_counts"]["因自然灾害"] == 12
    notes = dict(con.execute("SELECT risk_type, note FROM marts.township_risk_types WHERE month = '2026-10' "
                             "AND township = '甲镇'").fetchall())
    assert notes["扶贫资产监管不善"] == risk.UNFED_NOTE and notes["小额贷款逾期"] == risk.UNFED_NOTE
    assert notes["因病因残"] is None
    fed = con.execute("SELECT fed_by FROM marts.township_risk_types WHERE month = '2026-10' AND township = '甲镇' "
                      "AND risk_type = '新增住房不安全'").fetchone()[0]
    assert fed == ["housing.dangerous_house"]


def test_overdue_cases_raise_the_level(con):
    warn(con, "2026-10", "丙镇", "丙二村", 1, ["因病"], ["因病"], overdue=True)
    # an earlier case, not warned again this month, still overdue in the case history
    con.execute("INSERT INTO marts.case_status (month, case_id, household_id, township, village, overdue) "
                "VALUES ('2026-10', 'c1', 'old-1', '丙镇', '丙一村', true), ('2026-09', 'c2', 'old-2', '丙镇', '丙一村', true)")
    settings = copy.deepcopy(risk.dashboard_settings())
    settings["risk"]["overdue_cases"] = {"yellow": 1, "orange": 5, "red": None}
    risk.build_township_risk(con, "2026-10", settings=settings)
    bing = township(con, "2026-10", "丙镇")
    assert bing["overdue_cases"] == 2 and bing["level"] == "yellow"
    assert "逾期未核实2户" in bing["reasons"]
    assert village(con, "2026-10", "丙镇", "丙一村")["overdue_cases"] == 1


def test_thresholds_come_from_configuration(con):
    planted_october(con)
    settings = copy.deepcopy(risk.dashboard_settings())
    settings["risk"]["cluster"]["share"] = {"orange": 0.5}
    settings["risk"]["rate_per_1000"].update(yellow=10, orange=30, red=60)
    risk.build_township_risk(con, "2026-10", settings=settings)
    assert township(con, "2026-10", "甲镇")["level"] == "yellow"   # only the rate rule (14 per 1,000) is left


def test_rerun_replaces_only_its_month_and_summary_reads_it(con):
    quiet_history(con)
    planted_october(con)
    with transaction(con):
        risk.build_township_risk(con, "2026-09")
        first = risk.build_township_risk(con, "2026-10")
    before = con.execute("SELECT * FROM marts.township_risk WHERE month = '2026-10' ORDER BY township").fetchall()
    with transaction(con):
        again = risk.build_township_risk(con, "2026-10")
    after = con.execute("SELECT * FROM marts.township_risk WHERE month = '2026-10' ORDER BY township").fetchall()
    assert first == again and before == after
    assert con.execute("SELECT count(*) FROM marts.township_risk WHERE month = '2026-09'").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM marts.village_risk_types WHERE month = '2026-09'").fetchone()[0] == 6 * 9
    summary = risk.risk_summary(con, "2026-10")
    assert summary["townships"] == 3 and summary["townships_orange"] == 1 and summary["townships_yellow"] == 1
    assert summary["top_townships_markdown"].splitlines()[2].startswith("| 甲镇 | 橙色 |")
    assert "扶贫资产监管不善" in summary["unfed_types"]


def test_a_township_only_the_queue_names_still_appears(con):
    warn(con, "2026-10", "丁镇", "丁一村", 3, ["因病"], ["因病"])
    risk.build_township_risk(con, "2026-10")
    ding = township(con, "2026-10", "丁镇")
    assert ding["households"] is None and ding["warned_households"] == 3 and ding["rate_per_1000"] is None
    assert "花名册户数不详" in ding["reasons"]


def test_many_cluster_villages_are_listed_up_to_the_configured_number(con):
    for name in ("甲一村", "甲二村"):
        warn(con, "2026-10", "甲镇", name, 100, ["因产业项目失败"], ["因产业项目失败"])
    settings = copy.deepcopy(risk.dashboard_settings())
    settings["risk"]["cluster"]["max_listed"] = 1
    risk.build_township_risk(con, "2026-10", settings=settings)
    jia = township(con, "2026-10", "甲镇")
    assert jia["level"] == "red"                       # 100 of 100 households in 甲一村
    assert "甲一村同一事件“因产业项目失败”100户，占该村户数100.0%" in jia["reasons"]
    assert "另有1处同一事件聚集达到阈值" in jia["reasons"] and "甲二村同一事件" not in jia["reasons"]
    assert jia["risk_counts"]["乡村产业失败"] == 200
