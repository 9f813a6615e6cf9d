"""Linkage of list rows to the roster (fangpin.linkage) on hand-made tiny warehouses.

The helpers at the top build those warehouses; test_warnings.py and test_cases.py import them.
"""
from __future__ import annotations

import json

import duckdb
import pytest

from fangpin.cases import ensure_marts
from fangpin.config import PROJECT_ROOT
from fangpin.linkage import link_month

MONTH = "2026-10"
TOWN, VILLAGE = "红旗镇", "东村"
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def make_id(birth: str = "19800101", seq: int = 1, address: str = "360799") -> str:
    """A valid 18-character resident ID (GB 11643 check character)."""
    body = f"{address}{birth}{seq:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, WEIGHTS)) % 11]


def warehouse() -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse with the shared tables (schemas/warehouse.sql) and the marts."""
    con = duckdb.connect()
    con.execute((PROJECT_ROOT / "schemas" / "warehouse.sql").read_text(encoding="utf-8"))
    ensure_marts(con)
    return con


def add_household(con, household_id: str, *, month: str = MONTH, township: str = TOWN, village: str = VILLAGE,
                  size: int = 2, a34: float | None = 20000, a38: float | None = 20000, household_type: str = "一般农户",
                  monitoring_category: str | None = None, risk_eliminated: bool | None = None,
                  members: list[dict] | None = None) -> list[str]:
    """A roster household with its members (default: one head of working age); returns the members' IDs.

    Incomes are given per capita (A34, A38) and stored as the roster computes them (A33 = A34 x size, A37 = A38 x size).
    """
    members = members or [{"name": f"户主{household_id}"}]
    ids = []
    for index, member in enumerate(members):
        id_number = member.get("id_number") or make_id(member.get("birth", "19800101"), seq=int(household_id) * 10 + index)
        ids.append(id_number)
        birth = id_number[6:14]
        con.execute(
            "INSERT INTO roster.persons (month, household_id, id_number, name, relation, is_head, birth_date, township,"
            " village, division_code, labour, health, phone) VALUES (?, ?, ?, ?, ?, ?, strptime(?, '%Y%m%d'), ?, ?, ?, ?, ?, ?)",
            [month, household_id, id_number, member["name"], "户主" if index == 0 else "子女", index == 0, birth,
             township, village, "360799001001", member.get("labour", "普通劳动力"), member.get("health", "健康"), None],
        )
    con.execute(
        "INSERT INTO roster.households (month, household_id, township, village, division_code, head_name,"
        " head_id_number, household_type, monitoring_category, risk_eliminated, household_size, members,"
        " a33_net_income, a34_per_capita, a37_disposable, a38_per_capita, cadre, phone)"
        " VALUES (?, ?, ?, ?, '360799001001', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '李干部', '13800000000')",
        [month, household_id, township, village, members[0]["name"], ids[0], household_type, monitoring_category,
         risk_eliminated, size, len(members), None if a34 is None else a34 * size, a34,
         None if a38 is None else a38 * size, a38],
    )
    return ids


_ROWS = {"n": 0}


def add_row(con, list_key: str, id_number: str, *, month: str = MONTH, name: str | None = None,
            detail: str | None = None, amount: float | None = None, township: str | None = TOWN,
            village: str | None = VILLAGE, source_file: str | None = None, row_number: int | None = None) -> None:
    """An accepted list row in staging.list_rows."""
    _ROWS["n"] += 1
    department = list_key.split(".")[0]
    con.execute(
        "INSERT INTO staging.list_rows (month, list_key, department, source_file, sheet, row_number, id_number, name,"
        " township, village, township_raw, village_raw, amount, detail) VALUES (?, ?, ?, ?, 'Sheet1', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [month, list_key, department, source_file or f"{department}/{list_key}.xlsx", row_number or _ROWS["n"] + 3,
         id_number, name, township, village, township, village, amount, detail],
    )


def add_rejected(con, list_key: str, name: str, *, month: str = MONTH, township_raw: str = TOWN,
                 village_raw: str = VILLAGE, id_raw: str = "3607991980010100", detail: str | None = None,
                 row_number: int = 7, reason_code: str = "id_bad_length") -> None:
    """A row quarantined for its ID number, with name and raw places (and the raw cells as JSON)."""
    raw = {"姓名": name, "身份证号码": id_raw, "乡镇": township_raw, "村": village_raw}
    if detail is not None:
        raw["救助原因"] = detail
    con.execute(
        "INSERT INTO quarantine.rejected_rows (month, source_file, sheet, row_number, list_key, column_name,"
        " reason_code, reason, id_raw, name, township_raw, village_raw, raw) VALUES (?, ?, 'Sheet1', ?, ?, '身份证号码',"
        " ?, '身份证号码位数不对', ?, ?, ?, ?, ?)",
        [month, f"{list_key.split('.')[0]}/bad.xlsx", row_number, list_key, reason_code, id_raw, name,
         township_raw, village_raw, json.dumps(raw, ensure_ascii=False)],
    )


def rows(con, sql: str, *params) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def needs_values():
    """The probable-match tests need fangpin.values.resolve_places (another helper writes it)."""
    return pytest.importorskip("fangpin.values", reason="fangpin.values.resolve_places not written yet")


# ---------------------------------------------------------------------------------------------------------------


def test_id_match_links_to_household_and_says_which_rule():
    con = warehouse()
    ids = add_household(con, "1", members=[{"name": "张三"}, {"name": "张小三", "birth": "20150101"}])
    add_row(con, "civil_affairs.dibao", ids[1], name="张小三", detail="因病")
    counts = link_month(con, MONTH)
    assert counts["id"] == 1 and counts["none"] == 0 and counts["unmatched_persons"] == 0
    (household, rule, note), = rows(con, "SELECT household_id, match_rule, match_note FROM marts.person_links")
    assert (household, rule) == ("1", "id")
    assert "身份证号码与花名册一致" in note


def test_an_id_in_two_households_links_to_the_smallest_and_names_each_once():
    """An ID the roster lists in two households (twice in the first) is linked to the smaller household number, and
    its note names the two households, each once."""
    con = warehouse()
    shared = make_id("19700101", seq=5)
    add_household(con, "1", members=[{"name": "张三", "id_number": shared}, {"name": "张三", "id_number": shared}])
    add_household(con, "2", members=[{"name": "张三", "id_number": shared}])
    add_row(con, "civil_affairs.dibao", shared, name="张三")
    link_month(con, MONTH)
    (household, note), = rows(con, "SELECT household_id, match_note FROM marts.person_links")
    assert household == "1"
    assert "身份证号码在花名册中属于2户（1、2）" in note


def test_person_not_in_roster_goes_to_unmatched_with_sources_and_township():
    con = warehouse()
    add_household(con, "1")
    stranger = make_id("19900202", seq=555)
    add_row(con, "civil_affairs.dibao", stranger, name="王五", township="青山乡", village="西村")
    add_row(con, "health.major_disease", stranger, name="王五", township="青山乡", village="西村", detail="尿毒症")
    add_row(con, "police.vehicle", make_id("19900303", seq=556), name="赵六")  # eligibility: not an unmatched person
    counts = link_month(con, MONTH)
    assert counts["none"] == 3 and counts["unmatched_persons"] == 1
    (id_number, name, sources, township, details, locations, reason), = rows(
        con, "SELECT id_number, name, sources, township, details, locations, reason FROM marts.unmatched_persons")
    assert (id_number, name, township) == (stranger, "王五", "青山乡")
    assert sources == ["civil_affairs.dibao", "health.major_disease"]
    assert details == ["health.major_disease：尿毒症"]
    assert all("Sheet1" in loc and "行" in loc for loc in locations) and len(locations) == 2
    assert "找不到" in reason


def test_unknown_roster_month_uses_latest_earlier_roster():
    con = warehouse()
    ids = add_household(con, "1", month="2026-09")
    add_row(con, "civil_affairs.tekun", ids[0])
    assert link_month(con, MONTH)["id"] == 1
    assert rows(con, "SELECT roster_month FROM marts.person_links") == [("2026-09",)]


def test_probable_name_match_when_unique_in_township_and_village():
    needs_values()
    con = warehouse()
    ids = add_household(con, "1", members=[{"name": "张三"}])
    add_household(con, "2", village="西村", members=[{"name": "张三"}])  # same name, another village
    # the list wrote the township without its suffix and a space in the name: both still match
    add_rejected(con, "civil_affairs.temporary_assistance", "张 三", township_raw="红旗", detail="房屋受灾")
    counts = link_month(con, MONTH)
    assert counts["probable_name"] == 1 and counts["unmatched_persons"] == 0
    (rule, household, id_number, note, detail), = rows(
        con, "SELECT match_rule, household_id, id_number, match_note, detail FROM marts.person_links")
    assert (rule, household, id_number) == ("probable_name", "1", ids[0])
    assert "疑似" in note and "只有1人" in note
    assert detail == "房屋受灾"  # read back from the raw cells for the risk type


def test_ambiguous_name_is_not_matched():
    needs_values()
    con = warehouse()
    add_household(con, "1", members=[{"name": "张三"}])
    add_household(con, "2", members=[{"name": "张三"}])  # two 张三 in the same village
    add_rejected(con, "civil_affairs.dibao", "张三")
    counts = link_month(con, MONTH)
    assert counts["probable_name"] == 0 and counts["none"] == 1
    (rule, household, note), = rows(con, "SELECT match_rule, household_id, match_note FROM marts.person_links")
    assert rule == "none" and household is None and "2人" in note
    (valid, reason), = rows(con, "SELECT id_valid, reason FROM marts.unmatched_persons")
    assert valid is False and "无法确定" in reason


def test_relink_replaces_only_its_month():
    con = warehouse()
    ids = add_household(con, "1")
    add_household(con, "1", month="2026-09")
    add_row(con, "civil_affairs.dibao", ids[0])
    add_row(con, "civil_affairs.dibao", ids[0], month="2026-09")
    link_month(con, "2026-09")
    link_month(con, MONTH)
    before = rows(con, "SELECT * FROM marts.person_links ORDER BY month")
    assert link_month(con, MONTH)["id"] == 1
    assert rows(con, "SELECT * FROM marts.person_links ORDER BY month") == before
    assert rows(con, "SELECT count(*) FROM marts.person_links WHERE month = '2026-09'") == [(1,)]
