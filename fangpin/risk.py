"""Large-scale relapse risk (规模性返贫风险, seed 001): per month, where warnings concentrate, which risk type is rising
against a township's own history, and which village was hit together (one flood, one factory closing).

Everything is DuckDB SQL over `marts.warning_queue` and the roster; the rules and thresholds live in
`config/dashboard.yaml` (documented there), so a county tunes them without touching this file. Each rule that fires
gives an area a minimum level (green < yellow < orange < red) and one sentence in `reasons`; the level is the highest.
The report speaks the vocabulary of seed 001's nine relapse types (九大类型风险); the form's A27 risk types and A23-A26
gaps are mapped onto them in the configuration.

Tables written (schemas/risk.sql): marts.township_risk, marts.village_risk, marts.township_risk_types,
marts.village_risk_types. Every write replaces exactly the given month, inside the caller's transaction.
"""
from __future__ import annotations

import duckdb
import polars as pl

from fangpin.config import PROJECT_ROOT, check_month, dashboard_settings, registry
from fangpin.warehouse import temp_table

RISK_SQL = PROJECT_ROOT / "schemas" / "risk.sql"
LEVELS = ("green", "yellow", "orange", "red")
UNKNOWN_TOWNSHIP = "（乡镇不详）"
UNKNOWN_VILLAGE = "（村不详）"
UNFED_NOTE = "无对应部门名单，恒为0（表示没有数据，不表示没有风险）"
TABLES = ("marts.township_risk", "marts.village_risk", "marts.township_risk_types", "marts.village_risk_types")

# The two scopes the same rules run at: the grouping keys of each.
SCOPES = {"township": ("township",), "village": ("township", "village")}


# ---------------------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------------------

def ensure_risk_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the risk and submission marts if missing (idempotent DDL, safe inside the caller's transaction)."""
    con.execute(RISK_SQL.read_text(encoding="utf-8"))


def _tiers(rule: dict) -> dict[int, float]:
    """{level rank: threshold} of the levels a rule configures (yellow=1, orange=2, red=3); null levels are off."""
    return {rank: float(rule[name]) for rank, name in enumerate(LEVELS) if rank and rule.get(name) is not None}


def _level_rank(name: str | None) -> int:
    """The rank of a level name from the configuration (`new_type_level: yellow`), 0 when off."""
    if not name:
        return 0
    if name not in LEVELS:
        raise ValueError(f"config/dashboard.yaml: unknown level {name!r}, use one of {', '.join(LEVELS)}")
    return LEVELS.index(name)


def _num(value: float) -> str:
    """A threshold as a clerk reads it: 2.0 -> 2, 2.5 -> 2.5."""
    return f"{value:g}"


def _lit(text: str) -> str:
    """A SQL string literal (configuration text spliced into SQL: quotes doubled)."""
    return "'" + str(text).replace("'", "''") + "'"


def _rank_sql(expr: str, tiers: dict[int, float]) -> str:
    """CASE giving the highest level rank whose threshold `expr` reaches, else 0."""
    if not tiers:
        return "0"
    whens = " ".join(f"WHEN {expr} >= {value!r} THEN {rank}" for rank, value in sorted(tiers.items(), reverse=True))
    return f"(CASE {whens} ELSE 0 END)"


def _by_rank_sql(rank_expr: str, texts: dict[int, str]) -> str:
    """CASE mapping a level rank to a fixed text (the threshold reached, in words)."""
    if not texts:
        return "''"
    whens = " ".join(f"WHEN {rank} THEN {_lit(text)}" for rank, text in texts.items())
    return f"(CASE {rank_expr} {whens} ELSE '' END)"


def _level_name_sql(rank_expr: str, names: dict) -> str:
    """The Chinese level word (绿色/黄色/橙色/红色) of a rank."""
    words = ", ".join(_lit(names.get(level, level)) for level in LEVELS)
    return f"list_value({words})[{rank_expr} + 1]"


def relapse_vocabulary(settings: dict | None = None) -> pl.DataFrame:
    """The nine relapse types in the seed's order, the form labels mapped onto each, and the lists that can feed it.

    `fed_by` is derived from config/registry.yaml (a list's fixed A27 type or gap, or every type its detail words can
    give), so a type no list can produce is shown as 0 with that said, instead of looking like good news.
    """
    settings = settings or dashboard_settings()
    reg = registry()
    produced: dict[tuple[str, str], set[str]] = {}
    for spec in reg.lists.values():  # per configured list, not per data row
        if not spec.is_risk:
            continue
        labels = set()
        if spec.risk_type == "from_detail":
            labels |= {risk_type for _, risk_type in reg.detail_words} | {reg.default_risk_type}
        elif spec.risk_type:
            labels.add(spec.risk_type)
        labels |= set(spec.detail_overrides.values())
        for label in labels:
            produced.setdefault(("form", label), set()).add(spec.key)
        if spec.gap:
            produced.setdefault(("gap", spec.gap), set()).add(spec.key)
    rows = []
    for order, body in enumerate(settings["risk"]["relapse_types"], start=1):
        labels = [("form", label) for label in body.get("risk_types") or []]
        labels += [("gap", label) for label in body.get("gaps") or []]
        fed_by = sorted(set().union(*(produced.get(label, set()) for label in labels))) if labels else []
        rows.append({"risk_type": body["name"], "type_order": order, "labels": [f"{d}:{l}" for d, l in labels],
                     "fed_by": fed_by, "note": None if fed_by else UNFED_NOTE})
    return pl.DataFrame(rows, schema={"risk_type": pl.String, "type_order": pl.Int32, "labels": pl.List(pl.String),
                                      "fed_by": pl.List(pl.String), "note": pl.String})




def _load_vocabulary(con: duckdb.DuckDBPyConnection, settings: dict) -> None:
    """Temp tables `_rk_types` (the nine), `_rk_map` (form label -> type), `_rk_vocab` (every count map's keys)."""
    types = relapse_vocabulary(settings)
    temp_table(con, "_rk_types", types.drop("labels"))
    mapping = [{"dim": dim, "label": label, "risk_type": body["name"]}
               for body in settings["risk"]["relapse_types"]
               for dim, key in (("form", "risk_types"), ("gap", "gaps"))
               for label in body.get(key) or []]
    temp_table(con, "_rk_map", pl.DataFrame(mapping, schema={"dim": pl.String, "label": pl.String,
                                                               "risk_type": pl.String}))
    reg = registry()
    vocab = pl.DataFrame(
        [{"dim": "relapse", "label": t, "ord": i} for i, t in enumerate(types["risk_type"].to_list())]
        + [{"dim": "gap", "label": g, "ord": i} for i, g in enumerate(reg.assurance_gaps)]
        + [{"dim": "form", "label": r, "ord": i} for i, r in enumerate(reg.risk_types)],
        schema={"dim": pl.String, "label": pl.String, "ord": pl.Int32})
    temp_table(con, "_rk_vocab", vocab)
    events = pl.DataFrame({"event_type": settings["risk"]["cluster"].get("event_risk_types") or []},
                          schema={"event_type": pl.String})
    temp_table(con, "_rk_event_types", events)


# ---------------------------------------------------------------------------------------------------------------
# inputs: months, places, the queue and its labels
# ---------------------------------------------------------------------------------------------------------------

def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                       [schema, table]).fetchone()[0] > 0


def _load_months(con: duckdb.DuckDBPyConnection, month: str, trailing: int) -> None:
    """`_rk_months`: the month itself and the previous `trailing` months the pipeline ran (missing months absent)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rk_months AS
        SELECT $month AS month, true AS is_current
        UNION ALL
        SELECT month, false FROM (
            SELECT DISTINCT month FROM (SELECT month FROM marts.warning_queue UNION SELECT month FROM raw.list_counts)
            WHERE month < $month ORDER BY month DESC LIMIT {int(trailing)})
    """, {"month": month})


def _load_queue(con: duckdb.DuckDBPyConnection) -> None:
    """`_rk_queue` (the warned households of those months) and `_rk_hits` (one row per household x label).

    dim 'form' = A27 risk types, 'gap' = A23-A26 gaps, 'relapse' = the nine types they map onto (a household once per
    type, however many of its labels map there).
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rk_queue AS
        SELECT q.month, q.household_id,
               coalesce(q.township, {_lit(UNKNOWN_TOWNSHIP)}) AS township,
               coalesce(q.village, {_lit(UNKNOWN_VILLAGE)}) AS village,
               coalesce(q.risk_types, []) AS risk_types, coalesce(q.risk_details, []) AS risk_details,
               coalesce(q.assurance_gaps, []) AS assurance_gaps, coalesce(q.overdue, false) AS overdue
        FROM marts.warning_queue q JOIN _rk_months m USING (month)
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _rk_hits AS
        WITH labelled AS (
            SELECT month, township, village, household_id, 'form' AS dim, unnest(risk_types) AS label FROM _rk_queue
            UNION ALL
            SELECT month, township, village, household_id, 'gap', unnest(assurance_gaps) FROM _rk_queue
        )
        SELECT DISTINCT month, township, village, household_id, dim, label FROM labelled
        UNION ALL
        SELECT DISTINCT l.month, l.township, l.village, l.household_id, 'relapse', m.risk_type
        FROM labelled l JOIN _rk_map m ON m.dim = l.dim AND m.label = l.label
    """)


def _load_places(con: duckdb.DuckDBPyConnection) -> None:
    """`_rk_places_township` / `_rk_places_village`: which areas exist in each month, with roster households.

    The roster in force for a month is the latest one at or before it. An area the queue names but the roster does
    not still appears (households unknown), so no warned household is lost from the report.
    """
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _rk_roster_month AS
        SELECT m.month,
               (SELECT max(t.month) FROM roster.townships t WHERE t.month <= m.month) AS township_roster,
               (SELECT max(v.month) FROM roster.villages v WHERE v.month <= m.month) AS village_roster
        FROM _rk_months m
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _rk_places_village AS
        WITH v AS (
            SELECT r.month, v.township, v.village, min(v.division_code) AS division_code, sum(v.households) AS households
            FROM _rk_roster_month r JOIN roster.villages v ON v.month = r.village_roster
            GROUP BY ALL
        ), keys AS (
            SELECT month, township, village FROM v UNION SELECT month, township, village FROM _rk_queue
        )
        SELECT k.month, k.township, k.village, v.division_code, v.households::BIGINT AS households
        FROM keys k LEFT JOIN v USING (month, township, village)
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _rk_places_township AS
        WITH t AS (
            SELECT r.month, t.township, sum(t.households) AS households
            FROM _rk_roster_month r JOIN roster.townships t ON t.month = r.township_roster GROUP BY ALL
        ), v AS (
            SELECT month, township, sum(households) AS households FROM _rk_places_village GROUP BY ALL
        ), keys AS (
            SELECT month, township FROM t UNION SELECT month, township FROM v
        )
        SELECT k.month, k.township, coalesce(t.households, v.households)::BIGINT AS households
        FROM keys k LEFT JOIN t USING (month, township) LEFT JOIN v USING (month, township)
    """)


def _load_overdue(con: duckdb.DuckDBPyConnection, month: str) -> None:
    """`_rk_overdue`: households whose verification deadline passed without feedback (queue and case history)."""
    sources = ["SELECT township, village, household_id FROM _rk_queue WHERE month = $month AND overdue"]
    if _table_exists(con, "marts", "case_status"):
        sources.append(f"""SELECT coalesce(township, {_lit(UNKNOWN_TOWNSHIP)}), coalesce(village, {_lit(UNKNOWN_VILLAGE)}),
                                  household_id FROM marts.case_status WHERE month = $month AND overdue""")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _rk_overdue AS SELECT DISTINCT * FROM ({' UNION ALL '.join(sources)})",
                {"month": month})


def _load_clusters(con: duckdb.DuckDBPyConnection, month: str, settings: dict) -> None:
    """`_rk_clusters`: per village x event (e.g. 因自然灾害-洪涝), households hit this month, share and rule rank.

    An event is a risk detail whose A27 type is an event type, or the bare type when no detail names it.
    """
    cluster = settings["risk"]["cluster"]
    share_rank = _rank_sql("c.share", _tiers(cluster.get("share") or {}))
    size_rank = _rank_sql("c.households", _tiers(cluster.get("households") or {}))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rk_clusters AS
        WITH current AS (SELECT * FROM _rk_queue WHERE month = $month),
        detailed AS (
            SELECT DISTINCT d.household_id, d.township, d.village, d.event, e.event_type
            FROM (SELECT household_id, township, village, unnest(risk_details) AS event FROM current) d
            JOIN _rk_event_types e ON starts_with(d.event, e.event_type)
        ),
        bare AS (
            SELECT DISTINCT t.household_id, t.township, t.village, t.event
            FROM (SELECT household_id, township, village, unnest(risk_types) AS event FROM current) t
            JOIN _rk_event_types e ON e.event_type = t.event
            WHERE NOT EXISTS (SELECT 1 FROM detailed d WHERE d.household_id = t.household_id AND d.event_type = t.event)
        ),
        counted AS (
            SELECT township, village, event, count(DISTINCT household_id) AS households
            FROM (SELECT household_id, township, village, event FROM detailed UNION ALL SELECT * FROM bare)
            GROUP BY ALL
        ),
        c AS (
            SELECT c.*, CASE WHEN p.households > 0 THEN c.households / p.households END AS share
            FROM counted c LEFT JOIN _rk_places_village p ON p.month = $month AND p.township = c.township
                                                         AND p.village = c.village
        )
        SELECT c.*, CASE WHEN c.households >= {int(cluster.get("min_households", 1))}
                         THEN greatest({share_rank}, {size_rank}) ELSE 0 END AS rank
        FROM c
    """, {"month": month})


# ---------------------------------------------------------------------------------------------------------------
# measures and rules per scope (township, village)
# ---------------------------------------------------------------------------------------------------------------

def _keys(scope: str, alias: str | None = None) -> str:
    return ", ".join(f"{alias}.{k}" if alias else k for k in SCOPES[scope])


def _on(scope: str, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{k} = {right}.{k}" for k in SCOPES[scope])


def _load_measures(con: duckdb.DuckDBPyConnection, month: str, scope: str) -> None:
    """`_rk_measure_<scope>`: households, warned, rate, count maps, the trailing comparison and overdue cases."""
    keys, places = _keys(scope), f"_rk_places_{scope}"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rk_hist_{scope} AS
        SELECT p.month, {_keys(scope, 'p')}, count(DISTINCT q.household_id) AS warned
        FROM {places} p JOIN _rk_months m ON m.month = p.month AND NOT m.is_current
        LEFT JOIN _rk_queue q ON q.month = p.month AND {_on(scope, 'q', 'p')}
        GROUP BY ALL
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rk_counts_{scope} AS
        WITH area AS (SELECT {keys} FROM {places} WHERE month = $month),
        hit AS (SELECT {keys}, dim, label, count(DISTINCT household_id) AS n FROM _rk_hits WHERE month = $month
                GROUP BY ALL),
        grid AS (SELECT a.*, v.dim, v.label, v.ord, coalesce(h.n, 0)::INTEGER AS n
                 FROM area a CROSS JOIN _rk_vocab v
                 LEFT JOIN hit h ON {_on(scope, 'h', 'a')} AND h.dim = v.dim AND h.label = v.label)
        SELECT {keys},
               map(list(label ORDER BY ord) FILTER (WHERE dim = 'relapse'),
                   list(n ORDER BY ord) FILTER (WHERE dim = 'relapse')) AS risk_counts,
               map(list(label ORDER BY ord) FILTER (WHERE dim = 'gap'),
                   list(n ORDER BY ord) FILTER (WHERE dim = 'gap')) AS gap_counts,
               map(list(label ORDER BY ord) FILTER (WHERE dim = 'form'),
                   list(n ORDER BY ord) FILTER (WHERE dim = 'form')) AS form_risk_counts
        FROM grid GROUP BY ALL
    """, {"month": month})
    division = "a.division_code," if scope == "village" else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rk_measure_{scope} AS
        WITH warned AS (SELECT {keys}, count(DISTINCT household_id) AS warned FROM _rk_queue WHERE month = $month
                        GROUP BY ALL),
        trend AS (SELECT {keys}, count(*)::INTEGER AS trailing_months, avg(warned) AS trailing_avg
                  FROM _rk_hist_{scope} GROUP BY ALL),
        overdue AS (SELECT {keys}, count(DISTINCT household_id)::INTEGER AS overdue_cases FROM _rk_overdue GROUP BY ALL)
        SELECT {_keys(scope, 'a')}, {division} a.households,
               coalesce(w.warned, 0)::BIGINT AS warned_households,
               CASE WHEN a.households > 0 THEN 1000.0 * coalesce(w.warned, 0) / a.households END AS rate_per_1000,
               coalesce(t.trailing_months, 0) AS trailing_months, t.trailing_avg AS warned_trailing_avg,
               coalesce(w.warned, 0) - t.trailing_avg AS warned_change,
               CASE WHEN t.trailing_avg > 0 THEN coalesce(w.warned, 0) / t.trailing_avg END AS warned_change_ratio,
               coalesce(o.overdue_cases, 0) AS overdue_cases
        FROM {places} a
        LEFT JOIN warned w ON {_on(scope, 'w', 'a')}
        LEFT JOIN trend t ON {_on(scope, 't', 'a')}
        LEFT JOIN overdue o ON {_on(scope, 'o', 'a')}
        WHERE a.month = $month
    """, {"month": month})


def _load_types(con: duckdb.DuckDBPyConnection, month: str, scope: str, settings: dict) -> None:
    """`_rk_types_<scope>`: per area x relapse type, this month against its trailing average, and the rising rank."""
    keys, places = _keys(scope), f"_rk_places_{scope}"
    rising = settings["risk"]["rising"]
    minimum = int(rising.get("min_households", 1))
    rank = _rank_sql("ratio_to_trailing", _tiers(rising.get("ratio") or {}))
    new_rank = _level_rank(rising.get("new_type_level"))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rk_types_{scope} AS
        WITH cur AS (SELECT {keys}, label AS risk_type, count(DISTINCT household_id) AS n
                     FROM _rk_hits WHERE dim = 'relapse' AND month = $month GROUP BY ALL),
        hist AS (SELECT p.month, {_keys(scope, 'p')}, t.risk_type, count(DISTINCT h.household_id) AS n
                 FROM {places} p JOIN _rk_months m ON m.month = p.month AND NOT m.is_current
                 CROSS JOIN _rk_types t
                 LEFT JOIN _rk_hits h ON h.dim = 'relapse' AND h.month = p.month AND {_on(scope, 'h', 'p')}
                                      AND h.label = t.risk_type
                 GROUP BY ALL),
        trend AS (SELECT {keys}, risk_type, count(*)::INTEGER AS trailing_months, avg(n) AS trailing_avg
                  FROM hist GROUP BY ALL),
        joined AS (
            SELECT {_keys(scope, 'a')}, t.risk_type, t.type_order, coalesce(c.n, 0)::INTEGER AS households,
                   coalesce(tr.trailing_months, 0) AS trailing_months, tr.trailing_avg,
                   CASE WHEN tr.trailing_avg > 0 THEN coalesce(c.n, 0) / tr.trailing_avg END AS ratio_to_trailing,
                   t.fed_by, t.note
            FROM {places} a CROSS JOIN _rk_types t
            LEFT JOIN cur c ON {_on(scope, 'c', 'a')} AND c.risk_type = t.risk_type
            LEFT JOIN trend tr ON {_on(scope, 'tr', 'a')} AND tr.risk_type = t.risk_type
            WHERE a.month = $month
        )
        SELECT *, CASE WHEN trailing_months = 0 OR households < {minimum} THEN 0
                       WHEN trailing_avg = 0 THEN {new_rank}
                       ELSE {rank} END AS rising_rank
        FROM joined
    """, {"month": month})


def _rule_sql(scope: str, settings: dict) -> str:
    """One SELECT per rule, each row: area keys, rank, order, sort keys, reason sentence (UNION ALL of all rules)."""
    risk = settings["risk"]
    names = risk.get("level_names") or {}
    keys = _keys(scope)
    lvl = lambda expr: _level_name_sql(expr, names)  # noqa: E731 - a short local formatter

    cluster = risk["cluster"]
    share_tiers, size_tiers = _tiers(cluster.get("share") or {}), _tiers(cluster.get("households") or {})
    cluster_texts = {}
    for rank in sorted(set(share_tiers) | set(size_tiers)):
        parts = []
        if rank in share_tiers:
            parts.append(f"≥{cluster.get('min_households', 1)}户且占比≥{_num(share_tiers[rank] * 100)}%")
        if rank in size_tiers:
            parts.append(f"≥{_num(size_tiers[rank])}户")
        cluster_texts[rank] = "，或".join(parts)
    listed = int(cluster.get("max_listed", 3))

    rate = {key: value for key, value in risk["rate_per_1000"].items() if key != "village"}
    if scope == "village":  # villages are small: their own (higher) thresholds when configured
        rate.update(risk["rate_per_1000"].get("village") or {})
    rate_tiers = _tiers(rate)
    rate_texts = {r: f"每千户≥{_num(v)}户" for r, v in rate_tiers.items()}

    rising = risk["rising"]
    ratio_texts = {r: f"≥{_num(v)}倍" for r, v in _tiers(rising.get("ratio") or {}).items()}
    minimum = int(rising.get("min_households", 1))
    total_rank = _rank_sql("warned_change_ratio", _tiers(rising.get("ratio") or {}))
    new_rank = _level_rank(rising.get("new_type_level"))

    overdue_tiers = _tiers(risk.get("overdue_cases") or {})
    overdue_texts = {r: f"≥{_num(v)}户" for r, v in overdue_tiers.items()}

    rules = [f"""
        WITH fired AS (
            SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY rank DESC, households DESC, village, event) AS rn
            FROM _rk_clusters WHERE rank > 0
        )
        SELECT {keys}, rank, 1 AS rule_order, -households::DOUBLE AS sort_num, village || chr(1) || event AS sort_txt,
               {lvl('rank')} || '：' || village || '同一事件“' || event || '”' || households || '户'
               || CASE WHEN share IS NULL THEN '（该村花名册户数不详）'
                       ELSE '，占该村户数' || format('{{:.1f}}%', share * 100) END
               || '（达到条件：' || {_by_rank_sql('rank', cluster_texts)} || '）' AS reason
        FROM fired WHERE rn <= {listed}
        UNION ALL
        SELECT {keys}, max(rank), 1, 0, '~', '另有' || count(*) || '处同一事件聚集达到阈值（见村级明细 marts.village_risk）'
        FROM fired WHERE rn > {listed} GROUP BY ALL
    """]
    rules.append(f"""
        SELECT {keys}, rank, 2, 0, '', {lvl('rank')} || '：预警户' || warned_households || '户，每千户'
               || format('{{:.1f}}', rate_per_1000) || '户（达到条件：' || {_by_rank_sql('rank', rate_texts)} || '）'
        FROM (SELECT *, CASE WHEN warned_households >= {int(rate.get('min_warned', 0))}
                             THEN {_rank_sql('rate_per_1000', rate_tiers)} ELSE 0 END AS rank
              FROM _rk_measure_{scope})
        WHERE rank > 0
    """)
    rules.append(f"""
        SELECT {keys}, rising_rank, 3, type_order, risk_type,
               {lvl('rising_rank')} || '：' || risk_type || households || '户，'
               || CASE WHEN trailing_avg = 0
                       THEN '近' || trailing_months || '个月平均为0（新出现，≥{minimum}户）'
                       ELSE '为近' || trailing_months || '个月平均' || format('{{:.1f}}', trailing_avg) || '户的'
                            || format('{{:.1f}}', ratio_to_trailing) || '倍（达到条件：'
                            || {_by_rank_sql('rising_rank', ratio_texts)} || '且≥{minimum}户）' END
        FROM _rk_types_{scope} WHERE rising_rank > 0
    """)
    if rising.get("apply_to_total"):
        rules.append(f"""
            SELECT {keys}, rank, 4, 0, '',
                   {lvl('rank')} || '：预警户' || warned_households || '户，'
                   || CASE WHEN warned_trailing_avg = 0
                           THEN '近' || trailing_months || '个月平均为0（新出现，≥{minimum}户）'
                           ELSE '为近' || trailing_months || '个月平均' || format('{{:.1f}}', warned_trailing_avg)
                                || '户的' || format('{{:.1f}}', warned_change_ratio) || '倍（达到条件：'
                                || {_by_rank_sql('rank', ratio_texts)} || '且≥{minimum}户）' END
            FROM (SELECT *, CASE WHEN trailing_months = 0 OR warned_households < {minimum} THEN 0
                                 WHEN warned_trailing_avg = 0 THEN {new_rank}
                                 ELSE {total_rank} END AS rank
                  FROM _rk_measure_{scope})
            WHERE rank > 0
        """)
    rules.append(f"""
        SELECT {keys}, rank, 5, 0, '', {lvl('rank')} || '：逾期未核实' || overdue_cases || '户（达到条件：'
               || {_by_rank_sql('rank', overdue_texts)} || '）'
        FROM (SELECT *, {_rank_sql('overdue_cases', overdue_tiers)} AS rank FROM _rk_measure_{scope})
        WHERE rank > 0
    """)
    rules.append(f"""
        SELECT {keys}, 0, 9, 0, '', '无往月数据可比，未评估上升趋势'
        FROM _rk_measure_{scope} WHERE trailing_months = 0
    """)
    return "\nUNION ALL\n".join(f"SELECT * FROM ({rule})" for rule in rules)


def _load_levels(con: duckdb.DuckDBPyConnection, scope: str, settings: dict) -> None:
    """`_rk_level_<scope>`: the level (highest rule) and the reasons in words, green said explicitly."""
    keys = _keys(scope)
    names = settings["risk"].get("level_names") or {}
    green = _lit(names.get("green", "green"))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rk_level_{scope} AS
        WITH rules ({keys}, rank, rule_order, sort_num, sort_txt, reason) AS ({_rule_sql(scope, settings)}),
        agg AS (
            SELECT {keys}, max(rank) AS level_rank,
                   string_agg(reason, '；' ORDER BY rank DESC, rule_order, sort_num, sort_txt, reason) AS reasons
            FROM rules GROUP BY ALL
        )
        SELECT {_keys(scope, 'm')}, coalesce(a.level_rank, 0)::INTEGER AS level_rank,
               CASE WHEN coalesce(a.level_rank, 0) > 0 THEN a.reasons
                    ELSE {green} || '：未触发预警规则（预警户' || m.warned_households || '户'
                         || CASE WHEN m.rate_per_1000 IS NULL THEN '，花名册户数不详'
                                 ELSE '，每千户' || format('{{:.1f}}', m.rate_per_1000) || '户' END
                         || '）' || coalesce('；' || a.reasons, '') END AS reasons
        FROM _rk_measure_{scope} m LEFT JOIN agg a ON {_on(scope, 'a', 'm')}
    """)


# ---------------------------------------------------------------------------------------------------------------
# writing the marts
# ---------------------------------------------------------------------------------------------------------------

def _level_sql(rank_expr: str) -> str:
    return f"list_value({', '.join(_lit(level) for level in LEVELS)})[{rank_expr} + 1]"


def _write_marts(con: duckdb.DuckDBPyConnection, month: str) -> None:
    """Replace the month in the four marts from the temp tables (deterministic order)."""
    for table in TABLES:
        con.execute(f"DELETE FROM {table} WHERE month = ?", [month])
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rk_drivers AS
        SELECT v.township, v.village, v.level_rank AS village_rank, t.level_rank AS township_rank,
               mv.warned_households, t.level_rank > 0 AND v.level_rank >= t.level_rank AS drives
        FROM _rk_level_village v JOIN _rk_level_township t USING (township)
        JOIN _rk_measure_village mv USING (township, village)
    """)
    largest = """
        SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY households DESC, share DESC NULLS LAST, village, event)
                  AS rn FROM _rk_clusters
    """
    rising = "SELECT {keys}, list(risk_type ORDER BY type_order) AS rising_types FROM _rk_types_{scope} " \
             "WHERE rising_rank > 0 GROUP BY ALL"
    con.execute(f"""
        INSERT INTO marts.township_risk
        WITH cl AS ({largest.format(keys='township')}),
        rt AS ({rising.format(keys='township', scope='township')}),
        dv AS (SELECT township, list(village ORDER BY village_rank DESC, warned_households DESC, village) AS villages
               FROM _rk_drivers WHERE drives GROUP BY ALL)
        SELECT $month, m.township, m.households, m.warned_households, m.rate_per_1000,
               c.risk_counts, c.gap_counts, c.form_risk_counts,
               m.trailing_months, m.warned_trailing_avg, m.warned_change, m.warned_change_ratio,
               coalesce(rt.rising_types, []), cl.village, cl.event, cl.households::INTEGER, cl.share,
               m.overdue_cases, {_level_sql('l.level_rank')}, l.level_rank, l.reasons, coalesce(dv.villages, [])
        FROM _rk_measure_township m
        JOIN _rk_counts_township c USING (township)
        JOIN _rk_level_township l USING (township)
        LEFT JOIN cl ON cl.township = m.township AND cl.rn = 1
        LEFT JOIN rt USING (township)
        LEFT JOIN dv USING (township)
        ORDER BY m.township
    """, {"month": month})
    con.execute(f"""
        INSERT INTO marts.village_risk
        WITH cl AS ({largest.format(keys='township, village')}),
        rt AS ({rising.format(keys='township, village', scope='village')})
        SELECT $month, m.township, m.village, m.division_code, m.households, m.warned_households, m.rate_per_1000,
               c.risk_counts, c.gap_counts, c.form_risk_counts,
               m.trailing_months, m.warned_trailing_avg, m.warned_change, m.warned_change_ratio,
               coalesce(rt.rising_types, []), cl.event, cl.households::INTEGER, cl.share,
               m.overdue_cases, {_level_sql('l.level_rank')}, l.level_rank, l.reasons,
               CASE WHEN mt.warned_households > 0 THEN m.warned_households / mt.warned_households END,
               d.drives
        FROM _rk_measure_village m
        JOIN _rk_counts_village c USING (township, village)
        JOIN _rk_level_village l USING (township, village)
        JOIN _rk_measure_township mt USING (township)
        JOIN _rk_drivers d USING (township, village)
        LEFT JOIN cl ON cl.township = m.township AND cl.village = m.village AND cl.rn = 1
        LEFT JOIN rt USING (township, village)
        ORDER BY m.township, m.village
    """, {"month": month})
    for scope, table in (("township", "marts.township_risk_types"), ("village", "marts.village_risk_types")):
        con.execute(f"""
            INSERT INTO {table}
            SELECT $month, {_keys(scope)}, risk_type, type_order, households, trailing_months, trailing_avg,
                   ratio_to_trailing, rising_rank > 0, fed_by, note
            FROM _rk_types_{scope} ORDER BY {_keys(scope)}, type_order
        """, {"month": month})


def _drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    """Drop this module's temp tables (they hold household ids; no need to keep them in the session)."""
    names = [row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND starts_with(table_name, '_rk_')").fetchall()]
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")


def build_township_risk(con: duckdb.DuckDBPyConnection, month: str, *, settings: dict | None = None) -> dict:
    """Build marts.township_risk, marts.village_risk and the per-type long tables for `month`.

    Writes inside the caller's transaction (DELETE the month, INSERT); other months are untouched. Returns the rows
    written per table and the number of townships per level.
    """
    check_month(month)
    settings = settings or dashboard_settings()
    ensure_risk_schema(con)
    _load_vocabulary(con, settings)
    _load_months(con, month, int(settings["risk"].get("trailing_months", 3)))
    _load_queue(con)
    _load_places(con)
    _load_overdue(con, month)
    _load_clusters(con, month, settings)
    for scope in SCOPES:
        _load_measures(con, month, scope)
        _load_types(con, month, scope, settings)
        _load_levels(con, scope, settings)
    _write_marts(con, month)
    _drop_temp(con)
    counts = {table: con.execute(f"SELECT count(*) FROM {table} WHERE month = ?", [month]).fetchone()[0]
              for table in TABLES}
    per_level = dict(con.execute("SELECT level, count(*) FROM marts.township_risk WHERE month = ? GROUP BY level",
                                 [month]).fetchall())
    counts.update({f"townships_{level}": per_level.get(level, 0) for level in LEVELS})
    return counts


def _markdown_table(header: list[str], rows: list[tuple]) -> str:
    """A small Markdown table (a Dagster metadata value renders it)."""
    clean = lambda value: "" if value is None else str(value).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(clean(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def risk_summary(con: duckdb.DuckDBPyConnection, month: str, *, settings: dict | None = None) -> dict:
    """Townships per level, villages per level, and the top townships as Markdown (for Dagster metadata).

    Keys: townships, townships_<level> (4), villages_<level> (4), unfed_types (types always 0, in words),
    top_townships_markdown.
    """
    check_month(month)
    settings = settings or dashboard_settings()
    names = settings["risk"].get("level_names") or {}
    top = int(settings["risk"].get("top_townships", 10))
    towns = dict(con.execute("SELECT level, count(*) FROM marts.township_risk WHERE month = ? GROUP BY level",
                             [month]).fetchall())
    villages = dict(con.execute("SELECT level, count(*) FROM marts.village_risk WHERE month = ? GROUP BY level",
                                [month]).fetchall())
    rows = con.execute("""
        SELECT township, level, warned_households, households, round(rate_per_1000, 1),
               coalesce(largest_cluster_village || '：' || largest_cluster_event || ' ' || largest_cluster_households
                        || '户', ''), overdue_cases, reasons
        FROM marts.township_risk WHERE month = ?
        ORDER BY level_rank DESC, rate_per_1000 DESC NULLS LAST, warned_households DESC, township LIMIT ?
    """, [month, top]).fetchall()
    table = _markdown_table(["乡镇", "等级", "预警户", "总户数", "每千户", "最大同一事件聚集", "逾期", "原因"],
                            [(r[0], names.get(r[1], r[1]), *r[2:]) for r in rows])
    unfed = relapse_vocabulary(settings).filter(pl.col("note").is_not_null())["risk_type"].to_list()
    summary = {"townships": sum(towns.values())}
    summary.update({f"townships_{level}": towns.get(level, 0) for level in LEVELS})
    summary.update({f"villages_{level}": villages.get(level, 0) for level in LEVELS})
    summary["unfed_types"] = "、".join(unfed) + ("：" + UNFED_NOTE if unfed else "")
    summary["top_townships_markdown"] = table
    return summary
