"""The warning queue (fangpin.warnings): meanings, findings, category boundaries, priority, follow-ups."""
from __future__ import annotations

import pytest

from fangpin.config import monitoring_line
from fangpin.linkage import link_month
from fangpin.warnings import build_warning_queue
from test_linkage import MONTH, TOWN, add_household, add_rejected, add_row, needs_values, rows, warehouse

LINE = monitoring_line(2026)


def run(con, month: str = MONTH) -> dict:
    link_month(con, month)
    return build_warning_queue(con, month)


def queue(con, household_id: str, *columns: str):
    """One household's queue row of MONTH as a dict."""
    names = ", ".join(columns)
    found = rows(con, f"SELECT {names} FROM marts.warning_queue WHERE month = ? AND household_id = ?", MONTH, household_id)
    return dict(zip(columns, found[0])) if found else None


def test_eligibility_alone_never_warns_but_findings_attach_to_warned_households():
    con = warehouse()
    only_car = add_household(con, "1")
    warned = add_household(con, "2")
    add_row(con, "police.vehicle", only_car[0])
    add_row(con, "police.vehicle", warned[0])
    add_row(con, "market_regulation.company", warned[0])
    add_row(con, "housing.dangerous_house", warned[0], detail="D级")
    counts = run(con)
    assert counts["households"] == 1
    assert queue(con, "1", "household_id") is None
    row = queue(con, "2", "findings", "sources", "assurance_gaps", "risk_types", "members")
    assert row["findings"] == sorted(["名下有机动车（公安局）", "注册有企业或市场主体（市场监督管理局）"])
    assert row["sources"] == ["housing.dangerous_house"]  # eligibility lists are not sources of a warning
    assert row["assurance_gaps"] == ["住房安全"] and row["risk_types"] == []
    assert row["members"] == ["户主2（housing.dangerous_house：住房安全）"]


def test_risk_types_from_detail_words_subtypes_and_overrides():
    con = warehouse()
    ids = add_household(con, "1", members=[{"name": "甲"}, {"name": "乙"}, {"name": "丙"}])
    add_row(con, "civil_affairs.dibao", ids[0], detail="因病致贫")          # 病 -> 因病
    add_row(con, "civil_affairs.temporary_assistance", ids[1], detail="生活困难")  # no word -> 其他
    add_row(con, "emergency.disaster", ids[2], detail="暴雨洪涝")           # subtype 洪涝
    add_row(con, "police.incident", ids[1], detail="森林火灾")              # override: 火灾 -> 因自然灾害
    add_row(con, "education.dropout", ids[2])                               # 因学 + gap 义务教育
    run(con)
    row = queue(con, "1", "risk_types", "risk_details", "assurance_gaps", "sources", "members", "member_ids")
    assert row["risk_types"] == sorted(["因病", "其他", "因自然灾害", "因学"])
    assert row["risk_details"] == sorted(["因病", "其他", "因自然灾害-洪涝", "因自然灾害-火灾", "因学"])
    assert row["assurance_gaps"] == ["义务教育"]
    assert "丙（emergency.disaster：因自然灾害-洪涝）" in row["members"]
    assert "丙（education.dropout：因学、义务教育）" in row["members"]
    assert row["member_ids"] == sorted(ids)
    assert len(row["sources"]) == 5


@pytest.mark.parametrize("list_key, detail, risk_detail", [
    ("emergency.disaster", "持续干旱，玉米绝收", "因自然灾害-旱灾"),         # the form's subtypes by their usual words
    ("emergency.disaster", "山体滑坡冲毁房屋", "因自然灾害-地质灾害"),
    ("emergency.disaster", "冰雹砸毁大棚", "因自然灾害-气象灾害"),
    ("emergency.disaster", "地震", "因自然灾害-地震灾害"),
    ("emergency.disaster", "病虫害减产", "因自然灾害-生物灾害"),
    ("emergency.disaster", "不明原因", "因自然灾害-其他"),
    ("civil_affairs.dibao", "丧失劳动能力", "缺劳动力"),                  # 低保's usual reason has its own box
    ("civil_affairs.temporary_assistance", "化学品泄漏事故受伤", "因意外事故"),  # not 因学 for the 学 of 化学
    ("rural_revitalization.application", "孩子考上大学", "因学"),           # as a probe of session 20 wrote them
    ("civil_affairs.dibao", "肺癌晚期化疗", "因病"),
    ("civil_affairs.dibao", "缺劳力", "缺劳动力"),
])
def test_detail_words_as_departments_write_them(list_key, detail, risk_detail):
    con = warehouse()
    ids = add_household(con, "1")
    add_row(con, list_key, ids[0], detail=detail)
    run(con)
    assert queue(con, "1", "risk_details")["risk_details"] == [risk_detail]


def test_a_detail_naming_two_risks_gives_both_as_the_forms_check_boxes_do():
    """A27 is a set of check boxes: an application saying the children's schooling and an old man's illness are the
    trouble is 因学 and 因病, each explained by its own word, not whichever the registry lists first."""
    con = warehouse()
    ids = add_household(con, "1")
    add_row(con, "rural_revitalization.application", ids[0], detail="子女上学、老人患病")
    run(con)
    row = queue(con, "1", "risk_types", "members")
    assert row["risk_types"] == sorted(["因学", "因病"])
    assert row["members"] == ["户主1（rural_revitalization.application：因学、因病）"]  # one person, one entry
    assert rows(con, "SELECT meaning_rule FROM wq_signals ORDER BY 1") == [("原因含“上学”→因学",), ("原因含“病”→因病",)]


def test_a_list_of_one_risk_type_is_not_read_for_detail_words():
    """Detail words only decide the type of the lists whose type is "from_detail". A dropout list (因学) whose
    reason says 因病休学, or a failed-industry list (因产业项目失败) naming 黄龙病, is that list's one type: one signal
    per list row, and the member's entry names the type once (it read "因产业项目失败、因产业项目失败" when
    a word of another type also matched: 239 of a province bench county's 30,001 list rows were doubled)."""
    con = warehouse()
    ids = add_household(con, "1", members=[{"name": "甲"}, {"name": "乙"}])
    add_row(con, "education.dropout", ids[0], detail="因病休学")
    add_row(con, "agriculture.industry_failure", ids[1], detail="脐橙黄龙病减产，缺劳力")
    run(con)
    row = queue(con, "1", "risk_types", "members")
    assert row["risk_types"] == sorted(["因学", "因产业项目失败"])
    assert row["members"] == sorted(["甲（education.dropout：因学、义务教育）", "乙（agriculture.industry_failure：因产业项目失败）"])
    assert rows(con, "SELECT list_key, count(*) FROM wq_signals GROUP BY 1 ORDER BY 1") == [
        ("agriculture.industry_failure", 1), ("education.dropout", 1)]


@pytest.mark.parametrize("a34, a38, household_type, amount, expected", [
    (LINE, LINE, "一般农户", None, "边缘易致贫户"),                   # exactly at the line: included
    (LINE, LINE + 0.01, "一般农户", None, "收入高于监测线（暂不符合纳入条件）"),  # just above: not included
    (LINE - 1000, LINE - 1000, "脱贫户", None, "脱贫不稳定户"),
    (LINE + 800, LINE + 800, "一般农户", 3000, "突发严重困难户"),      # above the line until this month's medical cost
    (LINE + 800, LINE + 800, "一般农户", 1000, "收入高于监测线（暂不符合纳入条件）"),  # cost too small to cross
    (None, LINE, "一般农户", None, "待核实"),                         # missing income: verify, no crash
    (LINE, None, "脱贫户", None, "待核实"),
])
def test_category_boundaries(a34, a38, household_type, amount, expected):
    con = warehouse()
    ids = add_household(con, "1", size=2, a34=a34, a38=a38, household_type=household_type)
    add_row(con, "medical_insurance.high_cost", ids[0], amount=amount)
    counts = run(con)
    row = queue(con, "1", "suggested_category", "a38_after_event", "monitoring_line", "event_costs")
    assert row["suggested_category"] == expected
    assert row["monitoring_line"] == LINE
    if amount and a38 is not None:
        assert row["a38_after_event"] == pytest.approx(a38 - amount / 2)
        assert row["event_costs"] == amount
    assert counts["to_verify"] == (expected == "待核实")


def test_priority_orders_obvious_pairs_and_says_why():
    con = warehouse()
    rich = {"a34": 50000, "a38": 50000}
    two = add_household(con, "1", members=[{"name": "甲", "labour": "技能劳动力"}], **rich)
    one = add_household(con, "2", members=[{"name": "乙", "labour": "技能劳动力"}], **rich)
    unable = add_household(con, "3", members=[{"name": "丙", "labour": "丧失劳动力"}], **rich)
    skilled = add_household(con, "4", members=[{"name": "丁", "labour": "技能劳动力"}], **rich)
    add_row(con, "civil_affairs.dibao", two[0], detail="因病")
    add_row(con, "civil_affairs.tekun", two[0])
    add_row(con, "civil_affairs.dibao", one[0], detail="因病")
    add_row(con, "disability.severe", unable[0])
    add_row(con, "disability.severe", skilled[0])
    run(con)
    p = {h: queue(con, h, "priority", "priority_reasons") for h in "1234"}
    assert p["1"]["priority"] > p["2"]["priority"]
    assert "风险2项" in p["1"]["priority_reasons"]
    assert p["3"]["priority"] > p["4"]["priority"]
    assert "家庭无劳动能力成员" in p["3"]["priority_reasons"]
    assert "成员残疾：丙" in p["3"]["priority_reasons"]  # on the severe-disability list


def test_two_lists_of_one_department_count_as_one_department():
    """Departments are counted once each: a household on two civil-affairs lists and a health list was reported by
    two departments, not three."""
    con = warehouse()
    ids = add_household(con, "1", members=[{"name": "甲"}, {"name": "乙", "birth": "19820101"}])
    add_row(con, "civil_affairs.dibao", ids[0], detail="因病")
    add_row(con, "civil_affairs.temporary_assistance", ids[1], detail="因病")
    add_row(con, "health.major_disease", ids[1])
    run(con)
    reasons = queue(con, "1", "priority_reasons")["priority_reasons"].split("；")
    assert any(r.startswith("2个部门同时报送") for r in reasons)
    assert not any(r.startswith("3个部门") for r in reasons)


def test_priority_income_lifted_out_children_and_departments():
    con = warehouse()
    poor = add_household(con, "1", a34=LINE - 100, a38=LINE - 100, household_type="脱贫户",
                         members=[{"name": "母亲"}, {"name": "小孩", "birth": "20180101", "labour": "无劳动力"}])
    near = add_household(con, "2", a34=LINE * 1.1, a38=LINE * 1.1)
    far = add_household(con, "3", a34=LINE * 2, a38=LINE * 2)
    add_row(con, "civil_affairs.dibao", poor[0], detail="因病")
    add_row(con, "health.major_disease", poor[1])
    add_row(con, "housing.dangerous_house", near[0])
    add_row(con, "housing.dangerous_house", far[0])
    run(con)
    first = queue(con, "1", "priority", "priority_reasons")
    reasons = first["priority_reasons"].split("；")
    assert any(r.startswith("人均纯收入约") and "不高于监测线" in r for r in reasons)
    assert "脱贫户" in reasons
    assert any(r.startswith("低保/特困家庭有16周岁以下儿童") and "小孩（8岁）" in r for r in reasons)
    assert any(r.startswith("2个部门同时报送") for r in reasons)
    assert "成员患大病：小孩" in reasons
    near_row, far_row = queue(con, "2", "priority", "priority_reasons"), queue(con, "3", "priority", "priority_reasons")
    assert "接近监测线" in near_row["priority_reasons"] and near_row["priority"] > far_row["priority"]
    assert first["priority"] > near_row["priority"]


def test_monitored_household_is_a_follow_up():
    con = warehouse()
    monitored = add_household(con, "1", monitoring_category="边缘易致贫户", risk_eliminated=False)
    eliminated = add_household(con, "2", monitoring_category="边缘易致贫户", risk_eliminated=True)
    add_row(con, "health.major_disease", monitored[0])
    add_row(con, "health.major_disease", eliminated[0])
    counts = run(con)
    assert counts["monitored"] == 1
    assert queue(con, "1", "is_monitored", "action")["is_monitored"] is True
    assert "跟踪帮扶" in queue(con, "1", "action")["action"]
    assert queue(con, "2", "is_monitored")["is_monitored"] is False


def test_a_monitored_household_above_the_line_keeps_its_category():
    """Seed 004: a monitored household leaves monitoring only by the risk-elimination procedure; one above the line
    was told 收入高于监测线（暂不符合纳入条件） while its action said 跟踪帮扶（已是监测对象）."""
    con = warehouse()
    monitored = add_household(con, "1", a34=LINE * 2, a38=LINE * 2, monitoring_category="突发严重困难户",
                              risk_eliminated=False)
    add_row(con, "health.major_disease", monitored[0])
    run(con)
    assert queue(con, "1", "suggested_category")["suggested_category"] == "突发严重困难户"


def test_probable_match_appears_marked_never_merged():
    needs_values()
    con = warehouse()
    ids = add_household(con, "1", members=[{"name": "张三"}, {"name": "李四"}])
    add_row(con, "health.major_disease", ids[0])
    add_rejected(con, "civil_affairs.dibao", "李四", detail="因残")
    counts = run(con)
    assert counts["probable"] == 1
    row = queue(con, "1", "match_rule", "members", "risk_types")
    assert row["match_rule"] == "身份证号码一致；疑似：姓名+乡镇+村唯一匹配"
    assert "李四（疑似匹配，civil_affairs.dibao：因残）" in row["members"]
    assert row["risk_types"] == ["因残", "因病"]


def test_columns_and_types_the_workbooks_rely_on():
    con = warehouse()
    ids = add_household(con, "1")
    add_row(con, "civil_affairs.dibao", ids[0], detail="因病")
    run(con)
    types = dict(rows(con, "SELECT column_name, data_type FROM information_schema.columns "
                           "WHERE table_schema = 'marts' AND table_name = 'warning_queue'"))
    expected = {"household_size": "INTEGER", "members": "VARCHAR[]", "risk_types": "VARCHAR[]",
                "is_monitored": "BOOLEAN", "priority": "DOUBLE", "issued_on": "DATE", "due_date": "DATE",
                "first_warned_on": "DATE", "is_repeat": "BOOLEAN", "overdue": "BOOLEAN", "monitoring_line": "DOUBLE"}
    assert {k: types[k] for k in expected} == expected
    row = queue(con, "1", "head_name", "household_size", "cadre", "phone", "match_rule", "case_status", "issued_on")
    assert row["head_name"] == "户主1" and row["household_size"] == 2 and row["cadre"] == "李干部"
    assert row["match_rule"] == "身份证号码一致" and row["case_status"] == "新预警"
    assert str(row["issued_on"]) == "2026-11-11"


def test_event_costs_add_losses_of_members_and_count_a_resent_row_once():
    con = warehouse()
    ids = add_household(con, "1", size=2, a34=LINE + 1500, a38=LINE + 1500,
                        members=[{"name": "甲"}, {"name": "乙"}])
    add_row(con, "emergency.disaster", ids[0], detail="洪涝", amount=1000)
    add_row(con, "medical_insurance.high_cost", ids[1], amount=1500, source_file="medical_insurance/a.xlsx")
    add_row(con, "medical_insurance.high_cost", ids[1], amount=1500, source_file="medical_insurance/b.xlsx")
    add_row(con, "police.incident", ids[1], detail="交通事故", amount=9999)  # not an event-cost list
    run(con)
    row = queue(con, "1", "event_costs", "a38_after_event", "suggested_category", "priority_reasons")
    assert row["event_costs"] == 2500
    assert row["a38_after_event"] == pytest.approx(LINE + 1500 - 1250)
    assert row["suggested_category"] == "收入高于监测线（暂不符合纳入条件）"
    assert "计入本月自付医疗费用/损失2500元后" in row["priority_reasons"] and "接近监测线" in row["priority_reasons"]


def test_event_costs_add_up_exactly_whatever_the_order():
    """Money is added as decimals: with doubles 0.1 + 0.2 is 0.30000000000000004 and the last digits depended on
    the order DuckDB's threads added in, so a re-run of the bench province changed two households' event costs."""
    con = warehouse()
    ids = add_household(con, "1", size=2, members=[{"name": "甲"}, {"name": "乙"}])
    add_row(con, "emergency.disaster", ids[0], detail="洪涝", amount=0.1)
    add_row(con, "medical_insurance.high_cost", ids[1], amount=0.2)
    run(con)
    assert queue(con, "1", "event_costs")["event_costs"] == 0.3


def test_a_detail_naming_two_words_of_one_group_is_explained_by_the_first_listed_every_time():
    """registry.yaml lists 失业, 务工, 岗位 for one risk type; "务工期间失业" names two of them. The risk type is the
    group's either way; the explanation names 失业 (listed first), not whichever word the join met first (in a
    warehouse this small the join meets them in the listed order anyway: the ranks are what is checked)."""
    con = warehouse()
    ids = add_household(con, "1")
    add_row(con, "civil_affairs.temporary_assistance", ids[0], detail="务工期间失业")
    run(con)
    [(rule, risk_type)] = rows(con, "SELECT meaning_rule, risk_type FROM wq_signals")
    assert (rule, risk_type) == ("原因含“失业”→因务工就业不稳", "因务工就业不稳")
    # what makes it the same every run, whatever order the join meets the words in: no two words share a rank
    assert rows(con, "SELECT count(*) = count(DISTINCT rank) FROM detail_words") == [(True,)]
    assert queue(con, "1", "risk_types")["risk_types"] == ["因务工就业不稳"]


def test_linkage_and_the_queue_read_only_the_roster_rows_they_join_and_still_see_all_of_them():
    """Linkage groups roster IDs only for IDs on the month's lists, and the queue reads persons and households only of
    the households it warns. What those rows say must still all count: an ID the roster gives two households (one
    never listed), the roster's spelling of a listed person's name, and an unlisted elder of a warned 低保 household."""
    con = warehouse()
    ids = add_household(con, "1", members=[{"name": "张三"}, {"name": "李四", "birth": "19500101"}])
    add_household(con, "2", members=[{"name": "张三", "id_number": ids[0]}])  # the same ID in a second household
    add_household(con, "3")  # never listed, never warned
    add_row(con, "civil_affairs.dibao", ids[0], name="张叁", detail="因病")  # the list spells the name otherwise
    assert run(con)["households"] == 1
    assert rows(con, "SELECT household_id, match_note FROM marts.person_links") == [
        ("1", "身份证号码在花名册中属于2户（1、2），暂归入户编号1，请核实")]
    row = queue(con, "1", "members", "priority_reasons")
    assert row["members"] == ["张三（名单姓名为“张叁”，与花名册不一致，请核实身份证号码是否有误；civil_affairs.dibao：因病）"]
    assert "李四（76岁）" in row["priority_reasons"]



def test_vulnerable_ages_include_sixty_and_sixteen():
    """Seed 000: 60周岁以上的老人、16周岁以下的儿童 — 以上/以下 include the number: a member exactly 16 or 60 on the
    month's last day counts, one of 17 or 59 does not."""
    con = warehouse()
    members = [{"name": name, "birth": birth} for name, birth in (
        ("十六岁", "20101031"), ("十七岁", "20091031"), ("六十岁", "19661031"), ("五十九岁", "19661101"))]
    household = add_household(con, "1", a34=LINE - 100, a38=LINE - 100, members=members)
    add_row(con, "civil_affairs.dibao", household[0], detail="因病")
    run(con)
    reasons = queue(con, "1", "priority_reasons")["priority_reasons"].split("；")
    [vulnerable] = [r for r in reasons if r.startswith("低保/特困家庭有16周岁以下儿童或60周岁以上老人")]
    assert "十六岁（16岁）" in vulnerable and "六十岁（60岁）" in vulnerable
    assert "十七岁" not in vulnerable and "五十九岁" not in vulnerable


def test_a_list_name_unlike_the_roster_s_is_shown_beside_the_member():
    """Linked by ID alone, a row whose ID is one digit off but valid warns a stranger's household, under the
    stranger's roster name: the list's own name is now shown beside it, with a request to check the ID."""
    con = warehouse()
    ids = add_household(con, "1", members=[{"name": "黄涛海"}, {"name": "黄 母"}])
    add_row(con, "civil_affairs.dibao", ids[0], name="李杰强", detail="因病")
    add_row(con, "health.major_disease", ids[1], name="黄母")  # a space typed: the same name
    run(con)
    members = queue(con, "1", "members")["members"]
    assert any(m.startswith("黄涛海（名单姓名为“李杰强”，与花名册不一致") for m in members)
    assert not any("不一致" in m for m in members if m.startswith("黄 母"))


def test_a_household_written_twice_in_the_roster_is_warned_once_as_its_row_with_the_lowest_head_id():
    """roster.households holds one row a household and month by construction; should a second row appear, the
    queue still has one row for it, the one whose head ID sorts first (a blank head ID last)."""
    con = warehouse()
    ids = add_household(con, "1", household_type="脱贫户")
    con.execute("INSERT INTO roster.households (month, household_id, township, head_id_number, household_type) "
                "VALUES (?, '1', '别的镇', NULL, '一般农户'), (?, '1', '另一镇', '999', '一般农户')", [MONTH, MONTH])
    no_head_ids = add_household(con, "2")  # and a household whose rows name no head ID at all: still warned
    con.execute("UPDATE roster.households SET head_id_number = NULL WHERE household_id = '2'")
    con.execute("INSERT INTO roster.households (month, household_id, township, head_id_number) "
                "VALUES (?, '2', ?, NULL)", [MONTH, TOWN])
    add_row(con, "civil_affairs.dibao", ids[0], detail="因病致贫")
    add_row(con, "civil_affairs.dibao", no_head_ids[0], detail="因病致贫")
    counts = run(con)
    assert counts["households"] == 2
    row = queue(con, "1", "township", "household_type", "head_id_number")
    assert row == {"township": TOWN, "household_type": "脱贫户", "head_id_number": ids[0]}
    assert rows(con, "SELECT township FROM marts.warning_queue WHERE household_id = '2'") == [(TOWN,)]
