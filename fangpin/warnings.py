"""The monthly warning queue (预警, warning): one row per warned household, with what warned it, its suggested
monitoring category, its priority (with reasons in words) and its case (deadline, repeat, overdue).

All rules run as DuckDB SQL over small tables built from the configuration:
- `list_meanings`, `detail_words`, `detail_overrides`, `detail_subtypes` (config/registry.yaml): what a list row
  means (A27 risk type, A23-A26 assurance gap, or an eligibility finding);
- `wq_policy` (config/county.yaml `priority:`, `category:`, `near_line_margin`, the monitoring line of the year).
Eligibility lists (vehicle, company, public servant, tax assets, deposits, pension) never create a warning: their
findings (比对疑点, comparison findings) are attached to households that a risk list warned.
"""
from __future__ import annotations

import duckdb
import polars as pl

from fangpin import cases
from fangpin.config import check_month, county, monitoring_line, registry
from fangpin.warehouse import temp_table

SUBTYPE_OTHER = "其他"  # a disaster whose detail names no known subtype (INPUTS.md)
MATCH_LABELS = {"id": "身份证号码一致", "probable_name": "疑似：姓名+乡镇+村唯一匹配"}
ACTION_NEW = "新识别（入户核实）"
ACTION_FOLLOW_UP = "跟踪帮扶（已是监测对象）"  # a monitored household: follow-up, not a new identification




def load_list_meanings(con: duckdb.DuckDBPyConnection) -> None:
    """Temp tables of what each list means, from the registry: the one place the SQL learns list semantics.

    list_meanings(list_key, department, department_name, kind, risk_type, from_detail, gap, finding, has_subtypes);
    detail_words(rank, word, risk_type) for "from_detail" lists; detail_overrides(list_key, rank, word, risk_type)
    (a police fire is a natural disaster); detail_subtypes(list_key, rank, word, subtype) (a word naming the flood,
    drought... of a disaster).
    """
    reg = registry()
    meanings = pl.DataFrame(
        [{
            "list_key": spec.key, "department": spec.department,
            "department_name": reg.departments[spec.department].name, "kind": spec.kind,
            "risk_type": None if spec.risk_type == "from_detail" else spec.risk_type,
            "from_detail": spec.risk_type == "from_detail", "gap": spec.gap, "finding": spec.finding,
            "has_subtypes": bool(spec.subtype_from_detail),
        } for spec in reg.lists.values()],
        schema={"list_key": pl.String, "department": pl.String, "department_name": pl.String, "kind": pl.String,
                "risk_type": pl.String, "from_detail": pl.Boolean, "gap": pl.String, "finding": pl.String,
                "has_subtypes": pl.Boolean},
    )
    words = pl.DataFrame(  # ranked word by word, in the registry's order: a detail naming two words of one group
        # ("务工期间失业") is explained by the first listed, the same word every run (a rank per group tied them)
        [(rank, word, risk_type) for rank, (word, risk_type) in
         enumerate((word, risk_type) for group, risk_type in reg.detail_words for word in group)],
        schema={"rank": pl.Int32, "word": pl.String, "risk_type": pl.String}, orient="row",
    )
    overrides = pl.DataFrame(
        [(spec.key, rank, word, risk_type) for spec in reg.lists.values()
         for rank, (word, risk_type) in enumerate(spec.detail_overrides.items())],
        schema={"list_key": pl.String, "rank": pl.Int32, "word": pl.String, "risk_type": pl.String}, orient="row",
    )
    subtypes = pl.DataFrame(
        [(spec.key, rank, word, subtype) for spec in reg.lists.values()
         for rank, (word, subtype) in enumerate(spec.subtype_from_detail)],
        schema={"list_key": pl.String, "rank": pl.Int32, "word": pl.String, "subtype": pl.String}, orient="row",
    )
    for name, frame in (("list_meanings", meanings), ("detail_words", words),
                        ("detail_overrides", overrides), ("detail_subtypes", subtypes)):
        temp_table(con, name, frame)


def _load_policy(con: duckdb.DuckDBPyConnection, month: str) -> None:
    """One-row temp table `wq_policy` (weights, word lists, line, ages) and `category_types` (type -> category).

    A weight missing from county.yaml counts 0, a word list missing is empty: a county can leave a reason out.
    """
    policy = county()
    weights = policy.get("priority", {}) or {}
    category = policy.get("category", {}) or {}
    number_keys = ("per_risk", "below_line", "near_line", "income_missing", "no_labour", "weak_labour",
                   "severe_illness", "disability", "lifted_out", "vulnerable_in_safety_net", "per_extra_department",
                   "repeat", "overdue")
    list_keys = ("no_labour_words", "weak_labour_words", "severe_illness_health", "severe_illness_lists",
                 "disability_health", "disability_lists", "lifted_out_types", "safety_net_lists")
    params = {key: float(weights.get(key, 0) or 0) for key in number_keys}
    params.update({key: [str(v) for v in weights.get(key, []) or []] for key in list_keys})
    params.update({
        "child_age": int(weights.get("child_age", 16)), "elder_age": int(weights.get("elder_age", 60)),
        "line": float(monitoring_line(int(month[:4]))), "margin": float(policy.get("near_line_margin", 0) or 0),
        "event_cost_lists": [str(v) for v in category.get("event_cost_lists", []) or []],
        "sudden": str(category.get("sudden_hardship", "突发严重困难户")),
        "above_line": str(category.get("above_line", "收入高于监测线")),
        "unknown": str(category.get("unknown", "待核实")),
    })
    columns = ", ".join(
        f"${key}::{'VARCHAR[]' if isinstance(value, list) else 'VARCHAR' if isinstance(value, str) else 'DOUBLE'} AS {key}"
        for key, value in params.items()
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE wq_policy AS SELECT {columns}", params)
    types = pl.DataFrame(
        [(str(k), str(v)) for k, v in (category.get("by_household_type", {}) or {}).items()],
        schema={"household_type": pl.String, "category": pl.String}, orient="row",
    )
    temp_table(con, "category_types", types)


SIGNALS_SQL = """
CREATE OR REPLACE TEMP TABLE wq_signals AS
WITH matched AS (
    SELECT * FROM marts.person_links WHERE month = $month AND match_rule IN ('id', 'probable_name')
), people AS (       -- the roster's name of each linked person (the linked persons only, not the whole roster)
    SELECT household_id, id_number, min(name) AS name
    FROM roster.persons WHERE month = $rm AND id_number IN (SELECT id_number FROM matched)
    GROUP BY household_id, id_number
), links AS (       -- a list name unlike the roster's (spaces aside): the ID may be one digit off, a stranger's
    SELECT l.*, coalesce(p.name, l.name) AS person_name,
           CASE WHEN replace(replace(l.name, ' ', ''), '　', '') <> replace(replace(p.name, ' ', ''), '　', '')
                THEN '名单姓名为“' || l.name || '”，与花名册不一致，请核实身份证号码是否有误；' ELSE '' END AS name_check
    FROM matched l
    LEFT JOIN people p ON p.household_id = l.household_id AND p.id_number = l.id_number
), overridden AS (   -- a detail word that overrides the list's risk type (police: 火灾 -> 因自然灾害)
    SELECT l.list_key, l.source_file, l.sheet, l.row_number,
           arg_min(o.risk_type, o.rank) AS risk_type, arg_min(o.word, o.rank) AS word
    FROM links l JOIN detail_overrides o ON o.list_key = l.list_key AND contains(l.detail, o.word)
    GROUP BY ALL
), worded AS (       -- every risk type whose words the detail contains (for "from_detail" lists only; A27 is a
                     -- set of check boxes), each explained by its first word listed: a row for each
    SELECT l.list_key, l.source_file, l.sheet, l.row_number, d.risk_type, arg_min(d.word, d.rank) AS word
    FROM links l
    JOIN list_meanings m ON m.list_key = l.list_key AND m.from_detail
    JOIN detail_words d ON contains(l.detail, d.word)
    GROUP BY ALL
), subtyped AS (     -- the disaster subtype the detail names
    SELECT l.list_key, l.source_file, l.sheet, l.row_number, arg_min(s.subtype, s.rank) AS word
    FROM links l JOIN detail_subtypes s ON s.list_key = l.list_key AND contains(l.detail, s.word)
    GROUP BY ALL
), typed AS (
    SELECT l.*, m.department_name, m.kind, m.gap, m.finding, m.has_subtypes,
           CASE WHEN m.kind <> 'risk' THEN NULL
                WHEN o.risk_type IS NOT NULL THEN o.risk_type
                WHEN m.from_detail THEN coalesce(w.risk_type, $default_risk)
                ELSE m.risk_type END AS risk_type,
           CASE WHEN m.kind <> 'risk' THEN '比对名单：' || coalesce(m.finding, l.list_key)
                WHEN o.risk_type IS NOT NULL THEN '原因含“' || o.word || '”→' || o.risk_type
                WHEN m.from_detail AND w.risk_type IS NOT NULL THEN '原因含“' || w.word || '”→' || w.risk_type
                WHEN m.from_detail THEN '原因未含关键词→' || $default_risk
                ELSE '名单含义：' || concat_ws('、', m.risk_type, m.gap) END AS meaning_rule,
           o.word AS override_word, s.word AS subtype_word
    FROM links l
    JOIN list_meanings m USING (list_key)
    LEFT JOIN overridden o USING (list_key, source_file, sheet, row_number)
    LEFT JOIN worded w USING (list_key, source_file, sheet, row_number)
    LEFT JOIN subtyped s USING (list_key, source_file, sheet, row_number)
)
SELECT *,
       CASE WHEN risk_type IS NULL THEN NULL
            WHEN override_word IS NOT NULL THEN risk_type || '-' || override_word
            WHEN has_subtypes THEN risk_type || '-' || coalesce(subtype_word, $subtype_other)
            ELSE risk_type END AS risk_detail
FROM typed
"""

FACTS_SQL = """
CREATE OR REPLACE TEMP TABLE wq_facts AS
WITH listed AS (     -- a list row's risk details side by side: a detail naming two risks is one member entry
    SELECT *, nullif(array_to_string(list_sort(list(risk_detail) FILTER (WHERE risk_detail IS NOT NULL)
               OVER (PARTITION BY list_key, source_file, sheet, row_number)), '、'), '') AS row_details
    FROM wq_signals WHERE kind = 'risk' AND household_id IS NOT NULL
), risk AS (
    SELECT s.household_id,
           coalesce(list_sort(list_distinct(list(s.risk_type) FILTER (WHERE s.risk_type IS NOT NULL))), []) AS risk_types,
           coalesce(list_sort(list_distinct(list(s.risk_detail) FILTER (WHERE s.risk_detail IS NOT NULL))), []) AS risk_details,
           coalesce(list_sort(list_distinct(list(s.gap) FILTER (WHERE s.gap IS NOT NULL))), []) AS assurance_gaps,
           list_sort(list_distinct(list(s.list_key))) AS sources,
           list_sort(list_distinct(list(
               s.person_name || '（' || CASE WHEN s.match_rule = 'probable_name' THEN '疑似匹配，' ELSE '' END
               || s.name_check || s.list_key || '：' || concat_ws('、', s.row_details, s.gap) || '）'))) AS members,
           list_sort(list_distinct(list(s.id_number))) AS member_ids,
           -- not count(DISTINCT ...), which makes DuckDB group the rows a second time and join the counts back:
           -- 0.89 -> 0.73 s of this query for 48,632 households (bench/FINDINGS.md, session 26)
           len(list_distinct(list(s.department))) AS departments,
           list_sort(list_distinct(list(s.department_name))) AS department_names,
           bool_or(s.match_rule = 'id') AS any_id, bool_or(s.match_rule = 'probable_name') AS any_probable,
           coalesce(list(s.person_name) FILTER (WHERE list_contains(p.severe_illness_lists, s.list_key)), []) AS ill_listed,
           coalesce(list(s.person_name) FILTER (WHERE list_contains(p.disability_lists, s.list_key)), []) AS disabled_listed
    FROM listed s, wq_policy p
    GROUP BY s.household_id
), costs AS (      -- this month's out-of-pocket cost or loss; a person sent twice on one list counts once
    -- summed as decimals: a DOUBLE sum depends on the order DuckDB's threads add in (143263.65 one run,
    -- 143263.65000000002 the next), and a re-run must give the same queue
    SELECT household_id, sum(amount::DECIMAL(38, 6))::DOUBLE AS event_costs
    FROM (SELECT s.household_id, s.list_key, s.id_number, max(s.amount) AS amount
          FROM wq_signals s, wq_policy p
          WHERE s.kind = 'risk' AND s.amount > 0 AND list_contains(p.event_cost_lists, s.list_key)
          GROUP BY ALL)
    GROUP BY household_id
), found AS (
    SELECT household_id,
           list_sort(list_distinct(list(finding || '（' || department_name
               || CASE WHEN match_rule = 'probable_name' THEN '，疑似匹配' ELSE '' END || '）'))) AS findings
    FROM wq_signals WHERE kind = 'eligibility' AND finding IS NOT NULL GROUP BY household_id
), persons AS (
    SELECT household_id, id_number, min(name) AS name, bool_or(is_head) AS is_head, min(labour) AS labour,
           min(health) AS health, min(phone) AS phone,
           date_sub('year', coalesce(min(birth_date), try_strptime(substr(id_number, 7, 8), '%Y%m%d')::DATE),
                    last_day(strptime($month || '-01', '%Y-%m-%d'))::DATE) AS age
    FROM roster.persons
    WHERE month = $rm AND household_id IN (SELECT household_id FROM risk)  -- warned households only, not the roster
    GROUP BY household_id, id_number
), people AS (
    SELECT x.household_id,
           count(*) FILTER (WHERE x.labour IS NOT NULL AND NOT list_contains(p.no_labour_words, x.labour)
                            AND NOT list_contains(p.weak_labour_words, x.labour)) AS able,
           count(*) FILTER (WHERE list_contains(p.weak_labour_words, x.labour)) AS weak,
           count(*) FILTER (WHERE list_contains(p.no_labour_words, x.labour)) AS unable,
           coalesce(list(x.name) FILTER (WHERE list_contains(p.severe_illness_health, x.health)), []) AS ill_roster,
           coalesce(list(x.name) FILTER (WHERE list_contains(p.disability_health, x.health)), []) AS disabled_roster,
           coalesce(list(x.name || '（' || x.age || '岁）' ORDER BY x.age, x.name)
               FILTER (WHERE x.age <= p.child_age OR x.age >= p.elder_age), []) AS vulnerable,  -- 以下/以上 include it
           arg_min(x.name, x.id_number) FILTER (WHERE x.is_head) AS head_name,
           arg_min(x.id_number, x.id_number) FILTER (WHERE x.is_head) AS head_id_number,
           arg_min(x.phone, x.id_number) FILTER (WHERE x.is_head) AS head_phone
    FROM persons x, wq_policy p GROUP BY x.household_id
), safety_net AS (   -- a 低保/特困 (minimum living guarantee / extreme-poverty support) household, this month or before
    SELECT DISTINCT l.household_id
    FROM marts.person_links l, wq_policy p
    WHERE l.month <= $month AND l.match_rule IN ('id', 'probable_name') AND list_contains(p.safety_net_lists, l.list_key)
), households AS (  -- one row a household (unique by construction; a guard): the one with the lowest head ID,
    -- picked by row id, not by a window over every column (the window: 0.11 of this query's 1.3 s, 1,000,000 persons)
    SELECT * FROM roster.households WHERE rowid IN (
        SELECT arg_min_nulls_last(rowid, head_id_number) FROM roster.households
        WHERE month = $rm AND household_id IN (SELECT household_id FROM risk) GROUP BY household_id)
)
SELECT r.*, coalesce(c.event_costs, 0) AS event_costs, coalesce(f.findings, []) AS findings,
       h.township, h.village, h.division_code,
       coalesce(h.head_name, pe.head_name) AS head_name, coalesce(h.head_id_number, pe.head_id_number) AS head_id_number,
       coalesce(h.household_size, h.members)::INTEGER AS household_size, h.household_type, h.monitoring_category,
       coalesce(nullif(trim(h.monitoring_category), ''), NULL) IS NOT NULL AND NOT coalesce(h.risk_eliminated, false)
           AS is_monitored,
       coalesce(h.a34_per_capita, h.a33_net_income / nullif(coalesce(h.household_size, h.members), 0)) AS a34,
       coalesce(h.a38_per_capita, h.a37_disposable / nullif(coalesce(h.household_size, h.members), 0)) AS a38,
       coalesce(h.a37_disposable, h.a38_per_capita * coalesce(h.household_size, h.members)) AS a37,
       h.cadre, coalesce(h.phone, pe.head_phone) AS phone,
       coalesce(pe.able, 0) AS able, coalesce(pe.weak, 0) AS weak, coalesce(pe.unable, 0) AS unable,
       list_sort(list_distinct(list_concat(coalesce(pe.ill_roster, []), r.ill_listed))) AS ill_members,
       list_sort(list_distinct(list_concat(coalesce(pe.disabled_roster, []), r.disabled_listed))) AS disabled_members,
       CASE WHEN sn.household_id IS NOT NULL THEN coalesce(pe.vulnerable, []) ELSE [] END AS vulnerable_members,
       ct.category AS type_category
FROM risk r
LEFT JOIN costs c USING (household_id)
LEFT JOIN found f USING (household_id)
LEFT JOIN households h USING (household_id)
LEFT JOIN people pe USING (household_id)
LEFT JOIN safety_net sn USING (household_id)
LEFT JOIN category_types ct ON ct.household_type = h.household_type
"""

QUEUE_SQL = """
INSERT INTO marts.warning_queue (month, household_id, township, village, division_code, head_name, head_id_number,
    household_size, household_type, monitoring_category, members, member_ids, risk_types, risk_details,
    assurance_gaps, sources, findings, is_monitored, action, suggested_category, a34_per_capita, a38_per_capita,
    event_costs, a38_after_event, monitoring_line, base_priority, priority, priority_reasons, issued_on, due_date,
    case_id, case_status, first_warned_on, is_repeat, overdue, match_rule, cadre, phone)
WITH income AS (
    SELECT f.*, p.line,
           round(CASE WHEN f.event_costs = 0 THEN f.a38
                      ELSE (f.a37 - f.event_costs) / nullif(f.household_size, 0) END, 2) AS a38_after
    FROM wq_facts f, wq_policy p
), judged AS (
    SELECT i.*,
           CASE WHEN i.is_monitored THEN i.monitoring_category  -- leaves monitoring only by the elimination procedure
                WHEN i.a34 IS NULL OR i.a38_after IS NULL THEN p.unknown      -- missing income: verify, never guess
                WHEN i.a38_after > i.line THEN p.above_line                   -- A38 decides inclusion
                WHEN i.a34 > i.line THEN p.sudden                             -- above the line until the event
                ELSE coalesce(i.type_category, p.unknown) END AS suggested_category,
           i.a38_after > i.line AND i.a38_after <= i.line * (1 + p.margin) AS near_line,
           len(i.risk_types) + len(i.assurance_gaps) AS n_risks,
           oc.case_id IS NOT NULL AS is_repeat, coalesce(oc.overdue, false) AS overdue,
           oc.case_id AS open_case_id, oc.first_warned_on AS open_first_warned_on, oc.case_due AS open_case_due
    FROM income i CROSS JOIN wq_policy p LEFT JOIN open_cases oc USING (household_id)
), parts AS (
    SELECT j.*,
           p.per_risk * j.n_risks AS w_risk,
           CASE WHEN j.n_risks > 0 THEN '风险' || j.n_risks || '项（'
                || array_to_string(list_concat(j.risk_types, j.assurance_gaps), '、') || '）' END AS r_risk,
           CASE WHEN j.a38_after IS NULL THEN p.income_missing WHEN j.a38_after <= j.line THEN p.below_line
                WHEN j.near_line THEN p.near_line ELSE 0 END AS w_income,
           CASE WHEN j.a38_after IS NULL THEN '收入数据缺失，需入户核实'
                WHEN j.a38_after <= j.line OR j.near_line THEN
                    CASE WHEN j.event_costs > 0 THEN '计入本月自付医疗费用/损失' || printf('%.0f', j.event_costs) || '元后，'
                         ELSE '' END
                    || '人均纯收入约' || printf('%.0f', j.a38_after) || '元，'
                    || CASE WHEN j.a38_after <= j.line THEN '不高于监测线' || printf('%.0f', j.line) || '元'
                            ELSE '接近监测线' || printf('%.0f', j.line) || '元（高出不到'
                                 || printf('%.0f', p.margin * 100) || '%）' END
                END AS r_income,
           CASE WHEN j.able = 0 AND j.weak > 0 THEN p.weak_labour
                WHEN j.able = 0 AND j.unable > 0 THEN p.no_labour ELSE 0 END AS w_labour,
           CASE WHEN j.able = 0 AND j.weak > 0 THEN '家庭仅有弱劳动力或半劳动力'
                WHEN j.able = 0 AND j.unable > 0 THEN '家庭无劳动能力成员' END AS r_labour,
           CASE WHEN len(j.ill_members) > 0 THEN p.severe_illness ELSE 0 END AS w_ill,
           CASE WHEN len(j.ill_members) > 0 THEN '成员患大病：' || array_to_string(j.ill_members, '、') END AS r_ill,
           CASE WHEN len(j.disabled_members) > 0 THEN p.disability ELSE 0 END AS w_disabled,
           CASE WHEN len(j.disabled_members) > 0 THEN '成员残疾：' || array_to_string(j.disabled_members, '、') END
               AS r_disabled,
           CASE WHEN list_contains(p.lifted_out_types, j.household_type) THEN p.lifted_out ELSE 0 END AS w_lifted,
           CASE WHEN list_contains(p.lifted_out_types, j.household_type) THEN j.household_type END AS r_lifted,
           CASE WHEN len(j.vulnerable_members) > 0 THEN p.vulnerable_in_safety_net ELSE 0 END AS w_vulnerable,
           CASE WHEN len(j.vulnerable_members) > 0 THEN '低保/特困家庭有' || p.child_age::INTEGER || '周岁以下儿童或'
                || p.elder_age::INTEGER || '周岁以上老人：' || array_to_string(j.vulnerable_members, '、') END
               AS r_vulnerable,
           p.per_extra_department * greatest(j.departments - 1, 0) AS w_departments,
           CASE WHEN j.departments > 1 THEN j.departments || '个部门同时报送（'
                || array_to_string(j.department_names, '、') || '）' END AS r_departments,
           CASE WHEN j.is_repeat THEN p.repeat ELSE 0 END AS w_repeat,
           CASE WHEN j.is_repeat THEN '重复预警（首次预警于' || strftime(j.open_first_warned_on, '%Y-%m-%d')
                || '，尚未反馈核实结果）' END AS r_repeat,
           CASE WHEN j.overdue THEN p.overdue ELSE 0 END AS w_overdue,
           CASE WHEN j.overdue THEN '已逾期：核实期限' || strftime(j.open_case_due, '%Y-%m-%d') || '已过，升级处理' END
               AS r_overdue
    FROM judged j CROSS JOIN wq_policy p
), scored AS (
    SELECT *,
           w_risk + w_income + w_labour + w_ill + w_disabled + w_lifted + w_vulnerable + w_departments AS base_priority,
           list_filter([r_overdue, r_repeat, r_risk, r_income, r_labour, r_ill, r_disabled, r_lifted, r_vulnerable,
                        r_departments], lambda x: x IS NOT NULL) AS reasons
    FROM parts
)
SELECT $month, household_id, township, village, division_code, head_name, head_id_number, household_size,
       household_type, monitoring_category, members, member_ids, risk_types, risk_details, assurance_gaps, sources,
       findings, is_monitored, CASE WHEN is_monitored THEN $action_follow_up ELSE $action_new END,
       suggested_category, a34, a38, event_costs, a38_after, line,
       base_priority, base_priority + w_repeat + w_overdue, array_to_string(reasons, '；'),
       $issued, CASE WHEN is_repeat THEN open_case_due ELSE $due END,
       CASE WHEN is_repeat THEN open_case_id ELSE 'YJ' || replace($month, '-', '') || '-' || household_id END,
       CASE WHEN overdue THEN $status_overdue WHEN is_repeat THEN $status_repeat ELSE $status_new END,
       CASE WHEN is_repeat THEN open_first_warned_on ELSE $issued END,
       is_repeat, overdue,
       array_to_string(list_filter([CASE WHEN any_id THEN $label_id END,
                                    CASE WHEN any_probable THEN $label_probable END], lambda x: x IS NOT NULL), '；'),
       cadre, phone
FROM scored
ORDER BY base_priority + w_repeat + w_overdue DESC, township, village, household_id
"""


def build_warning_queue(con: duckdb.DuckDBPyConnection, month: str) -> dict:
    """marts.warning_queue for month M from M's person links (run `linkage.link_month` first), the roster, the
    case history of earlier months and the townships' verifications; then marts.case_status for M.

    Replaces only M's rows, inside the caller's transaction. Returns counts: households, new, repeat, overdue,
    monitored, probable (households warned only or partly by a probable match), to_verify (待核实), case_status.
    """
    from fangpin.linkage import roster_month  # linkage imports this module for the list meanings

    check_month(month)
    cases.ensure_marts(con)
    load_list_meanings(con)
    _load_policy(con, month)
    rmonth = roster_month(con, month)
    issued = cases.issue_date(month)
    params = {"month": month, "rm": rmonth}
    con.execute(SIGNALS_SQL, params | {"default_risk": registry().default_risk_type, "subtype_other": SUBTYPE_OTHER})
    con.execute(FACTS_SQL, params)
    cases.load_open_cases(con, month)
    con.execute("DELETE FROM marts.warning_queue WHERE month = ?", [month])
    con.execute(QUEUE_SQL, {
        "month": month, "issued": issued, "due": cases.due_date(issued),
        "action_new": ACTION_NEW, "action_follow_up": ACTION_FOLLOW_UP,
        "status_new": cases.STATUS_NEW, "status_repeat": cases.STATUS_REPEAT, "status_overdue": cases.STATUS_OVERDUE,
        "label_id": MATCH_LABELS["id"], "label_probable": MATCH_LABELS["probable_name"],
    })
    (households, new, repeat, overdue, monitored, probable, to_verify), = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE NOT is_repeat), count(*) FILTER (WHERE is_repeat),
               count(*) FILTER (WHERE overdue), count(*) FILTER (WHERE is_monitored),
               count(*) FILTER (WHERE contains(match_rule, '疑似')),
               count(*) FILTER (WHERE suggested_category = (SELECT unknown FROM wq_policy))
        FROM marts.warning_queue WHERE month = ?""", [month]).fetchall()
    status_rows = cases.build_case_status(con, month)
    return {"households": households, "new": new, "repeat": repeat, "overdue": overdue, "monitored": monitored,
            "probable": probable, "to_verify": to_verify, "case_status": status_rows}
