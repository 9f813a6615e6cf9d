"""The monthly dashboard (月度看板): one self-contained HTML file per month, DIR/exports/YYYY-MM/dashboard.html.

Why one file with everything inlined: it is mailed or carried on a USB stick to the county leaders' meeting and must
open from disk on a machine with no network. So the plotting library (plotly.js) is embedded once in the page, the
CSS is inline, and nothing is fetched. It shows aggregates only: townships, villages, departments, counts. No names
and no ID numbers (居民身份证号码, resident ID): free text coming from the marts is masked, and a final scrub refuses
to write a page in which an ID pattern survived.

Every section reads one warehouse relation through the columns of the data contract; a relation that is missing
(an early month, a stage that has not run) or has no rows for the month gives "暂无数据" instead of an error.
Display tables are built row by row in Python: they are bounded (tens of townships, the top clusters, one row per
department list), unlike the data behind them, which is aggregated in DuckDB.
"""
from __future__ import annotations

import html
import logging
import os
import re
import tempfile
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from string import Template

import duckdb
import plotly.io as pio
import plotly.offline
import polars as pl

from fangpin.config import check_month, county, dashboard_settings, registry

log = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "dashboard.html"

# A resident ID: 17 digits and a check character (GB 11643). Used to mask free text and to scrub the page.
ID_PATTERN = re.compile(r"\d{17}[\dXx]")
ID_MASK = "［证件号已隐去］"

# Township risk levels, most severe first (the CSS class is level-<key>); Chinese names from config/dashboard.yaml.
LEVELS = ("red", "orange", "yellow", "green")
EMPTY = "暂无数据"  # "no data yet"
TREND_MONTHS = 12
TOP_CLUSTERS = 20
CHART_TEMPLATE = "plotly_white"  # a registered plotly template
CHART_FONT = "Microsoft YaHei, PingFang SC, Noto Sans CJK SC, WenQuanYi Micro Hei, sans-serif"
PLOTLY_MARKER = "/*__FANGPIN_PLOTLYJS__*/"


class IdNumberInDashboard(ValueError):
    """An ID-number pattern reached the dashboard text: personal data must not leave the warehouse this way."""


# ---------------------------------------------------------------------------------------------------------------
# Reading the warehouse


def _fetch(con, query: str, params: list) -> tuple[pl.DataFrame | None, str]:
    """The query's rows, or (None, why) when the relation or a contract column is missing.

    Why not raise: the dashboard is the last step of a month's run and shows whatever exists; a missing mart must
    cost one section, not the whole page.
    """
    try:
        frame = con.sql(query, params=params).pl()
    except (duckdb.CatalogException, duckdb.BinderException) as error:
        log.warning("dashboard: %s", str(error).splitlines()[0])
        return None, "数据表或字段尚未生成"
    if frame.is_empty():
        return None, "本月没有记录"
    return frame, ""


def _fetch_month(con, relation: str, month: str, required: tuple[str, ...]) -> tuple[pl.DataFrame | None, str]:
    """All columns of `relation` for `month`, or (None, why) when it is missing or lacks a contract column.

    SELECT * so that optional extras of a mart (status words, type order, notes) are used when present.
    """
    frame, why = _fetch(con, f"SELECT * FROM {relation} WHERE month = ?", [month])
    if frame is None:
        return None, why
    missing = [column for column in required if column not in frame.columns]
    if missing:
        log.warning("dashboard: %s lacks %s", relation, ", ".join(missing))
        return None, f"缺少字段 {', '.join(missing)}"
    return frame, ""


def _columns(con, relation: str) -> list[str]:
    """The column names of `relation`, empty when it does not exist."""
    try:
        return con.sql(f"SELECT * FROM {relation} LIMIT 0").columns
    except duckdb.CatalogException:
        return []


@lru_cache(maxsize=None)
def _risk_config() -> dict:
    """The `risk` block of config/dashboard.yaml (level names, rising ratio); empty when the file is absent."""
    try:
        return dashboard_settings().get("risk", {}) or {}
    except FileNotFoundError:
        return {}


def _level_name(level: str) -> str | None:
    """绿色/黄色/橙色/红色 for green/yellow/orange/red (config/dashboard.yaml risk.level_names)."""
    names = {"green": "绿色", "yellow": "黄色", "orange": "橙色", "red": "红色"} | _risk_config().get("level_names", {})
    return names.get(level) if level in LEVELS else None


def mask_id_numbers(text: object) -> str:
    """`text` as a string with anything shaped like a resident ID replaced (free text may quote a rejected ID)."""
    if text is None:
        return ""
    if isinstance(text, (list, tuple)):
        text = "；".join(str(item) for item in text if item is not None)
    return ID_PATTERN.sub(ID_MASK, str(text))


def assert_no_id_numbers(page: str) -> None:
    """Raise IdNumberInDashboard when `page` holds a 17-digit-plus-check ID pattern (the last guard before disk)."""
    found = ID_PATTERN.search(page)
    if found:
        start = max(found.start() - 40, 0)
        context = ID_PATTERN.sub("<ID>", page[start:found.end() + 40])
        raise IdNumberInDashboard(f"看板中出现疑似身份证号码，已拒绝写出（位置 {found.start()}，上下文：{context!r}）")


# ---------------------------------------------------------------------------------------------------------------
# Small HTML helpers


def _e(value: object) -> str:
    """Escaped, ID-masked cell text; empty for NULL."""
    return html.escape(mask_id_numbers(value))


def _int(value: object) -> str:
    return "" if value is None else f"{int(value):,}"


def _signed(value: object) -> str:
    return "" if value is None else f"{round(float(value)):+,}"


def _float(value: object, digits: int = 1) -> str:
    return "" if value is None else f"{float(value):,.{digits}f}"


def _percent(value: object) -> str:
    """A share (0..1) as a percentage; a value already above 1 is taken as a percentage."""
    if value is None:
        return ""
    value = float(value)
    return f"{value * 100:.0f}%" if value <= 1 else f"{value:.0f}%"


def _level_badge(level: object) -> str:
    label = _level_name(str(level))
    css = str(level) if label else "none"
    return f'<span class="badge level-{css}">{html.escape(label or str(level or "未定级"))}</span>'


def _empty(reason: str) -> str:
    return f'<div class="empty">{EMPTY}<small>{html.escape(reason)}</small></div>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


def _table(headers: list[tuple[str, bool]], rows: list[list[tuple[str, bool]]], css: str = "") -> str:
    """An HTML table; headers and cells are (html, is_number) pairs, cells already escaped."""
    head = "".join(f'<th class="num">{h}</th>' if num else f"<th>{h}</th>" for h, num in headers)
    body = "\n".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if num else f"<td>{c}</td>" for c, num in row) + "</tr>"
        for row in rows
    )
    return (f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n{body}\n</tbody></table></div>')


@lru_cache(maxsize=1)
def _template() -> dict:
    """CHART_TEMPLATE as plotly writes it into a figure's layout; built once per process, read-only."""
    return pio.templates[CHART_TEMPLATE].to_plotly_json()


def _chart(data: list[dict], layout: dict, div_id: str, height: int = 420) -> str:
    """A chart as a <div> + script (plotly.js is embedded once in the page head), from plotly's figure JSON: traces
    as dicts, each with its `type`, and the layout, drawn in CHART_TEMPLATE.

    Why dicts, not plotly's graph objects: they validate and copy every property as it is set, the template (a
    deep copy) at each figure, and again when the figure is written: ~30 of a page's ~60 ms for four small charts,
    the same JSON in the end. tests/test_dashboard.py checks each chart is what plotly's validated objects make of
    it, unchanged."""
    figure = {"data": data, "layout": {
        "template": _template(), **layout, "height": height, "font": {"family": CHART_FONT, "size": 13},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 60}, "hoverlabel": {"font": {"family": CHART_FONT}},
        "legend": {"font": {"size": 12}},
    }}
    return pio.to_html(
        figure, validate=False, include_plotlyjs=False, full_html=False, div_id=div_id,
        # No mode bar: its tooltips are English and its image export is not needed offline.
        config={"displayModeBar": False, "responsive": True},
    )


def _month_label(month: str) -> str:
    return f"{month[:4]}年{int(month[5:])}月"


# ---------------------------------------------------------------------------------------------------------------
# Sections


TOWNSHIP_COLUMNS = ("township", "households", "warned_households", "rate_per_1000", "warned_change", "level",
                    "reasons", "overdue_cases", "largest_cluster_village", "largest_cluster_event",
                    "largest_cluster_households", "largest_cluster_share")


def _township_frame(con, month: str) -> tuple[pl.DataFrame | None, str]:
    """marts.township_risk for the month, most severe level first, then the highest rate."""
    frame, why = _fetch_month(con, "marts.township_risk", month, TOWNSHIP_COLUMNS)
    if frame is None:
        return None, why
    rank = {level: i for i, level in enumerate(LEVELS)}
    return frame.with_columns(pl.col("level").replace_strict(rank, default=len(LEVELS)).alias("_rank")).sort(
        ["_rank", "rate_per_1000", "warned_households", "township"],
        descending=[False, True, True, False], nulls_last=True), ""


def _overview_section(townships, why: str, submissions, quality) -> str:
    """County totals as cards: households, warnings, rate, change, levels, overdue cases, submissions, quality."""
    if townships is None:
        return _section("overview", "全县概况", _empty(f"乡镇风险汇总（marts.township_risk）：{why}"))
    totals = townships.select(
        pl.col("households").sum().alias("households"),
        pl.col("warned_households").sum().alias("warned"),
        pl.col("warned_change").sum().alias("change"),
        pl.col("overdue_cases").sum().alias("overdue"),
        pl.len().alias("townships"),
    ).row(0, named=True)
    rate = totals["warned"] / totals["households"] * 1000 if totals["households"] else None
    counts = dict(townships.group_by("level").len().iter_rows())
    level_html = " ".join(f"{_level_badge(level)} {counts.get(level, 0)}" for level in LEVELS)
    cards = [
        ("监测范围户数", _int(totals["households"]), f"{totals['townships']} 个乡镇（街道）"),
        ("本月预警户数", _int(totals["warned"]), f"较近期月均 {_signed(totals['change'])} 户"),
        ("每千户预警", _float(rate), "预警户数 ÷ 户数 × 1000"),
        ("逾期未核实案件", _int(totals["overdue"]), "超过核实期限仍未反馈"),
    ]
    if submissions is not None:
        received = submissions.filter(pl.col("received")).height
        on_time = submissions.filter(pl.col("on_time")).height
        cards.append(("部门名单报送", f"{received}/{submissions.height}", f"按时 {on_time} 份"))
    if quality is not None:
        passed = quality.filter(pl.col("success")).height
        cards.append(("数据质量检查", f"{passed}/{quality.height}", "通过项 / 检查项"))
    body = '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{html.escape(label)}</div><div class="value">{value}</div>'
        f'<div class="sub">{html.escape(sub)}</div></div>' for label, value, sub in cards
    ) + "</div>"
    body += f'<p class="note">乡镇风险等级分布：{level_html}</p>'
    return _section("overview", "全县概况", body)


def _reasons(value: object) -> str:
    """Reasons joined with "；" (or a list) as escaped lines."""
    return "<br>".join(_e(part) for part in mask_id_numbers(value).split("；") if part.strip())


def _township_section(townships, why: str) -> str:
    """One row per township, most severe level first: counts, rate, change, overdue cases, largest cluster, reasons."""
    if townships is None:
        return _section("townships", "乡镇风险等级", _empty(f"乡镇风险汇总（marts.township_risk）：{why}"))
    headers = [("乡镇（街道）", False), ("等级", False), ("户数", True), ("预警户数", True), ("每千户预警", True),
               ("较近期月均", True), ("逾期案件", True), ("最大聚集（同村同一事件）", False), ("定级原因", False)]
    rows = []
    for r in townships.iter_rows(named=True):
        cluster = ""
        if r["largest_cluster_households"]:
            cluster = (f"{_e(r['largest_cluster_village'])}·{_e(r['largest_cluster_event'])}："
                       f"{_int(r['largest_cluster_households'])} 户"
                       + (f"，占该村 {_percent(r['largest_cluster_share'])}" if r["largest_cluster_share"] is not None
                          else ""))
        change = r["warned_change"]
        change_css = "bad" if change and change > 0 else ("ok" if change and change < 0 else "")
        rows.append([
            (_e(r["township"]), False), (_level_badge(r["level"]), False), (_int(r["households"]), True),
            (_int(r["warned_households"]), True), (_float(r["rate_per_1000"]), True),
            (f'<span class="{change_css}">{_signed(change)}</span>', True), (_int(r["overdue_cases"]), True),
            (cluster, False), (_reasons(r["reasons"]), False),
        ])
    return _section("townships", "乡镇风险等级（按等级排序）", _table(headers, rows))


def _heat_colour(value: int, top: int) -> tuple[str, str]:
    """Background and text colour of a heat cell: white for 0, deepening red towards the table's maximum."""
    if not value or not top:
        return "#ffffff", "#9aa5b1"
    share = min(value / top, 1.0)
    light = (255, 235, 230)
    dark = (183, 28, 28)
    rgb = tuple(round(a + (b - a) * share) for a, b in zip(light, dark))
    return "#%02x%02x%02x" % rgb, ("#ffffff" if share > 0.55 else "#1f2933")


def _type_order(frame: pl.DataFrame) -> list[str]:
    """The relapse types in the seed's order: the mart's type_order, else config/dashboard.yaml's list, else by name."""
    return [name for name in _with_type_rank(frame).group_by("risk_type").agg(pl.col("type_order").min())
            .sort("type_order", "risk_type", nulls_last=True)["risk_type"].to_list() if name is not None]


def _with_type_rank(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with a type_order for every risk_type (the mart's, filled from config/dashboard.yaml relapse_types)."""
    names = [entry.get("name") for entry in _risk_config().get("relapse_types", []) if isinstance(entry, dict)]
    configured = pl.col("risk_type").replace_strict({name: i + 1 for i, name in enumerate(names)}, default=None,
                                                    return_dtype=pl.Int64)
    mart = pl.col("type_order").cast(pl.Int64) if "type_order" in frame.columns else pl.lit(None, dtype=pl.Int64)
    return frame.with_columns(mart.fill_null(configured).alias("type_order"))


def _rising(cell: dict) -> bool:
    """Whether a township's type count fired the rising rule: the mart's flag, else the configured doubling ratio."""
    if cell.get("rising") is not None:
        return bool(cell["rising"])
    ratio = cell.get("ratio_to_trailing")
    threshold = (_risk_config().get("rising", {}).get("ratio", {}) or {}).get("yellow", 2.0)
    return ratio is not None and float(ratio) >= float(threshold)


def _heat_cell(township: str, risk_type: str, cell: dict | None, top: int) -> str:
    """One coloured cell: the count, its ratio to the trailing mean when it rose, the details in the tooltip."""
    if cell is None:
        return '<td style="color:#9aa5b1">—</td>'
    count = int(cell["households"] or 0)
    background, colour = _heat_colour(count, top)
    tip = f"{township} {risk_type}：{count} 户"
    if cell.get("trailing_avg") is not None:
        tip += f"；近期月均 {_float(cell['trailing_avg'])} 户"
    extra = ""
    if count and cell.get("ratio_to_trailing") is not None and _rising(cell):
        extra = f"<small>↑ 近期均值×{float(cell['ratio_to_trailing']):.1f}</small>"
    elif count and cell.get("trailing_avg") == 0 and _rising(cell):
        extra = "<small>↑ 新出现</small>"
    border = ";outline:2px solid #8e1b1b;outline-offset:-2px" if extra else ""
    return (f'<td style="background:{background};color:{colour}{border}" title="{_e(tip)}">'
            f'{count if count else "·"}{extra}</td>')


def _heat_section(con, month: str, townships) -> str:
    """Township x relapse type (the nine of seed 001) table of warned households, cells coloured by count."""
    title = "乡镇 × 风险类型 预警户数"
    frame, why = _fetch_month(con, "marts.township_risk_types", month,
                              ("township", "risk_type", "households", "trailing_avg", "ratio_to_trailing"))
    if frame is None:
        return _section("heat", title, _empty(f"乡镇风险类型汇总（marts.township_risk_types）：{why}"))
    risk_types = _type_order(frame)
    order = townships["township"].to_list() if townships is not None else []
    totals = frame.group_by("township").agg(pl.col("households").sum()).sort(
        ["households", "township"], descending=[True, False])
    order += [name for name in totals["township"].to_list() if name not in set(order)]
    cells = {(r["township"], r["risk_type"]): r for r in frame.iter_rows(named=True)}
    notes = {}
    if "note" in frame.columns:
        notes = dict(frame.filter(pl.col("note").is_not_null() & (pl.col("note") != ""))
                     .group_by("risk_type").agg(pl.col("note").first()).iter_rows())
    top = int(frame["households"].max() or 0)
    head = "<th>乡镇（街道）</th>" + "".join(
        f'<th title="{_e(notes.get(t, ""))}">{_e(t)}' + (f"<small><br>{_e(notes[t])}</small>" if t in notes else "")
        + "</th>" for t in risk_types) + '<th class="num">合计（户次）</th>'
    body_rows = []
    for township in order:
        row = [f'<td class="rowhead">{_e(township)}</td>']
        row += [_heat_cell(township, t, cells.get((township, t)), top) for t in risk_types]
        total = sum(int(cells[(township, t)]["households"] or 0) for t in risk_types if (township, t) in cells)
        row.append(f'<td class="num"><b>{total}</b></td>')
        body_rows.append("<tr>" + "".join(row) + "</tr>")
    table = (f'<div class="scroll"><table class="heat"><thead><tr>{head}</tr></thead><tbody>\n'
             + "\n".join(body_rows) + "\n</tbody></table></div>")
    legend = ('<div class="legend">颜色越深，预警户数越多：0 <span style="background:#ffffff;border:1px solid #ccc"></span>'
              f'<span style="background:{_heat_colour(1, 2)[0]}"></span>'
              f'<span style="background:#b71c1c"></span> {top} 户。'
              '带框并标“↑”的格：该类型户数明显高于此前几个月的平均（上升规则触发）。'
              '一户可属于多种类型，故合计为户次。</div>')
    return _section("heat", title, table + legend)


def _trend_months(con, month: str) -> list[str]:
    """The last TREND_MONTHS months present in marts.township_risk up to `month`, oldest first."""
    frame, _ = _fetch(con, "SELECT DISTINCT month FROM marts.township_risk WHERE month <= ? "
                           f"ORDER BY month DESC LIMIT {TREND_MONTHS}", [month])
    return [] if frame is None else sorted(frame["month"].to_list())


def _line_chart(frame: pl.DataFrame, series: str, months: list[str], title: str, div_id: str) -> str:
    """One line per value of `series` (township or risk type): warned households by month, months as categories."""
    traces = []
    for name in frame[series].unique(maintain_order=True).to_list():
        part = frame.filter(pl.col(series) == name)
        by_month = dict(zip(part["month"].to_list(), part["households"].to_list()))
        label = mask_id_numbers(name)
        traces.append({
            "type": "scatter", "x": [_month_label(m) for m in months], "y": [by_month.get(m) for m in months],
            "name": label, "mode": "lines+markers",
            "hovertemplate": f"{html.escape(label)}<br>%{{x}}：%{{y}} 户<extra></extra>",
        })
    return _chart(traces, {"title": {"text": title}, "xaxis": {"title": {"text": "月份"}, "type": "category"},
                           "yaxis": {"title": {"text": "预警户数（户）"}, "rangemode": "tozero"}}, div_id)


def _trend_section(con, month: str) -> str:
    """Warned households per township and per relapse type (county-wide) over the last 12 months present."""
    title = f"近{TREND_MONTHS}个月趋势"
    months = _trend_months(con, month)
    if not months:
        return _section("trends", title, _empty("乡镇风险汇总（marts.township_risk）尚未生成"))
    placeholders = ", ".join("?" for _ in months)
    # Townships with the most warnings over the period first (legend order).
    township, why = _fetch(con, f"""
        WITH per_month AS (
            SELECT month, township, sum(warned_households) AS households FROM marts.township_risk
            WHERE month IN ({placeholders}) GROUP BY month, township)
        SELECT * FROM per_month
        ORDER BY sum(households) OVER (PARTITION BY township) DESC, township, month""", months)
    if township is None:
        return _section("trends", title, _empty(f"乡镇风险汇总（marts.township_risk）：{why}"))
    body = _line_chart(township, "township", months, "各乡镇预警户数", "chart-trend-township")
    order_expr = "min(type_order)" if "type_order" in _columns(con, "marts.township_risk_types") else "NULL"
    types, why = _fetch(con, f"""
        SELECT month, risk_type, sum(households) AS households, {order_expr} AS type_order
        FROM marts.township_risk_types WHERE month IN ({placeholders}) GROUP BY month, risk_type""", months)
    chart_title = "各风险类型预警户数（全县，一户可计入多类）"
    if types is None:
        body += f"<h3>{chart_title}</h3>" + _empty(f"乡镇风险类型汇总（marts.township_risk_types）：{why}")
    else:
        types = _with_type_rank(types).with_columns(pl.col("type_order").min().over("risk_type")).sort(
            "type_order", "risk_type", "month", nulls_last=True)
        body += _line_chart(types, "risk_type", months, chart_title, "chart-trend-risk-type")
    return _section("trends", title, body)


def _cluster_section(con, month: str) -> str:
    """Villages where one event hit several households (聚集, cluster): a bar chart and a table, largest first."""
    title = "风险聚集（同一村同一事件）"
    frame, why = _fetch_month(con, "marts.village_risk", month,
                              ("township", "village", "level", "warned_households", "largest_cluster_event",
                               "largest_cluster_households", "largest_cluster_share"))
    if frame is not None:
        frame = frame.filter(pl.col("largest_cluster_households") > 1).sort(
            ["largest_cluster_households", "largest_cluster_share", "township", "village"],
            descending=[True, True, False, False], nulls_last=True).head(TOP_CLUSTERS)
        why = "本月没有同一事件涉及 2 户及以上的村" if frame.is_empty() else why
        frame = None if frame.is_empty() else frame
    if frame is None:
        return _section("clusters", title, _empty(f"村级风险汇总（marts.village_risk）：{why}"))
    labels = [f"{mask_id_numbers(t)}·{mask_id_numbers(v)}" for t, v in zip(frame["township"], frame["village"])]
    events = [mask_id_numbers(e) for e in frame["largest_cluster_event"].to_list()]
    bars = {"type": "bar", "x": frame["largest_cluster_households"].to_list()[::-1], "y": labels[::-1],
            "orientation": "h", "text": events[::-1], "textposition": "auto", "marker": {"color": "#c62828"},
            "hovertemplate": "%{y}<br>%{text}：%{x} 户<extra></extra>"}
    chart = _chart([bars], {"title": {"text": "同一事件涉及户数最多的村"}, "xaxis": {"title": {"text": "涉及户数（户）"}},
                            "yaxis": {"type": "category", "automargin": True}, "bargap": 0.4},
                   "chart-clusters", height=max(260, 80 + 32 * frame.height))
    headers = [("乡镇（街道）", False), ("村（社区）", False), ("村等级", False), ("预警户数", True),
               ("聚集事件", False), ("涉及户数", True), ("占该村户数", True)]
    rows = [[(_e(r["township"]), False), (_e(r["village"]), False), (_level_badge(r["level"]), False),
             (_int(r["warned_households"]), True), (_e(r["largest_cluster_event"]), False),
             (_int(r["largest_cluster_households"]), True), (_percent(r["largest_cluster_share"]), True)]
            for r in frame.iter_rows(named=True)]
    note = f'<p class="note">列出同一事件涉及 2 户及以上的村，按户数从多到少，最多 {TOP_CLUSTERS} 个。</p>'
    return _section("clusters", title, chart + _table(headers, rows) + note)


SUBMISSION_COLUMNS = ("department", "department_name", "list", "received", "on_time", "arrived_at", "files", "rows",
                      "rejected_rows", "main_reasons")


def _submission_frame(con, month: str) -> tuple[pl.DataFrame | None, str]:
    frame, why = _fetch_month(con, "marts.submissions", month, SUBMISSION_COLUMNS)
    return (None, why) if frame is None else (frame.sort("department", "list"), "")


def _status(row: dict) -> str:
    """The delivery status in words: the mart's own status words when it has them, else from received/on_time."""
    text = row.get("status") or ("未报送" if not row["received"] else
                                 "按时报送" if row["on_time"] else
                                 "已报送（到达时间不明）" if row["on_time"] is None else "逾期报送")
    css = "bad" if not row["received"] else ("ok" if row["on_time"] else "warn")
    late = f"（晚 {row['days_late']} 天）" if row.get("days_late") else ""
    return f'<span class="{css}">{_e(text)}{late}</span>'


def _submission_section(submissions, why: str) -> str:
    """Per department list: delivered, on time, rows and rejected rows, with a bar chart per department."""
    title = "部门报送情况"
    if submissions is None:
        return _section("submissions", title, _empty(f"部门报送汇总（marts.submissions）：{why}"))
    titles = {key: spec.title for key, spec in registry().lists.items()}
    per_dept = submissions.group_by("department", maintain_order=True).agg(
        pl.col("department_name").first(), pl.col("rows").sum(), pl.col("rejected_rows").sum(),
        pl.col("received").not_().sum().alias("missing"))
    names = [mask_id_numbers(n or d) for n, d in zip(per_dept["department_name"], per_dept["department"])]
    rejected = per_dept["rejected_rows"].fill_null(0)
    accepted = (per_dept["rows"].fill_null(0) - rejected).clip(lower_bound=0)
    bars = [
        {"type": "bar", "x": names, "y": accepted.to_list(), "name": "接收行数", "marker": {"color": "#2e7d32"},
         "hovertemplate": "%{x}<br>接收 %{y} 行<extra></extra>"},
        {"type": "bar", "x": names, "y": rejected.to_list(), "name": "拒收行数", "marker": {"color": "#c62828"},
         "hovertemplate": "%{x}<br>拒收 %{y} 行<extra></extra>"},
    ]
    chart = _chart(bars, {"barmode": "stack", "title": {"text": "各部门名单行数（接收与拒收）"},
                          "yaxis": {"title": {"text": "行数"}}, "xaxis": {"type": "category"}},
                   "chart-submissions", height=380)
    headers = [("部门", False), ("名单", False), ("报送状态", False), ("到达时间", False), ("文件数", True),
               ("行数", True), ("拒收行数", True), ("主要拒收原因", False)]
    rows = []
    for r in submissions.iter_rows(named=True):
        arrived = r["arrived_at"].strftime("%Y-%m-%d %H:%M") if hasattr(r["arrived_at"], "strftime") else _e(
            r["arrived_at"])
        list_title = r.get("list_title") or titles.get(r["list"], r["list"])
        rows.append([
            (_e(r["department_name"] or r["department"]), False), (_e(list_title), False), (_status(r), False),
            (arrived, False), (_int(r["files"]), True), (_int(r["rows"]), True), (_int(r["rejected_rows"]), True),
            (_reasons(r["main_reasons"]), False),
        ])
    missing = int(per_dept["missing"].sum())
    note = f'<p class="note">应报名单 {submissions.height} 份，未报送 {missing} 份。</p>'
    return _section("submissions", title, chart + _table(headers, rows) + note)


def _quality_frame(con, month: str) -> tuple[pl.DataFrame | None, str]:
    """quality.results of the month, failures first; the judged column is `column_name` (or `column`)."""
    frame, why = _fetch_month(con, "quality.results", month,
                              ("suite", "expectation", "success", "observed", "threshold", "description_zh",
                               "rows_evaluated"))
    if frame is None:
        return None, why
    if "column_name" not in frame.columns:
        frame = frame.with_columns((pl.col("column") if "column" in frame.columns else pl.lit(None)).alias(
            "column_name"))
    return frame.sort("success", "suite", "expectation", "column_name", nulls_last=True), ""


def _quality_fragment(quality: pl.DataFrame, month: str) -> str | None:
    """The quality module's own HTML fragment, when that module exists and renders (it owns the wording)."""
    try:
        from fangpin.quality import render_quality_html  # noqa: PLC0415 - optional, built by another stage
    except ImportError:
        return None
    try:
        return mask_id_numbers(render_quality_html(quality, month))
    except Exception:  # its failure must not cost the whole dashboard: fall back to our own table
        log.exception("dashboard: fangpin.quality.render_quality_html failed; using the built-in table")
        return None


def _quality_section(quality, why: str, month: str) -> str:
    """Data-quality summary: pass/fail per suite, then every check, failures first."""
    title = "数据质量"
    if quality is None:
        return _section("quality", title, _empty(f"数据质量检查结果（quality.results）：{why}"))
    fragment = _quality_fragment(quality, month)
    if fragment is not None:
        return _section("quality", title, fragment)
    per_suite = quality.group_by("suite", maintain_order=True).agg(
        pl.len().alias("checks"), pl.col("success").sum().alias("passed")).sort("suite")
    summary = _table(
        [("检查组", False), ("检查项", True), ("通过", True), ("未通过", True)],
        [[(_e(r["suite"]), False), (_int(r["checks"]), True), (f'<span class="ok">{r["passed"]}</span>', True),
          (f'<span class="{"bad" if r["checks"] - r["passed"] else ""}">{r["checks"] - r["passed"]}</span>', True)]
         for r in per_suite.iter_rows(named=True)])
    detail = _table(
        [("结果", False), ("检查组", False), ("检查内容", False), ("字段", False), ("实际值", False),
         ("阈值", False), ("检查行数", True)],
        [[('<span class="ok">通过</span>' if r["success"] else '<span class="bad">未通过</span>', False),
          (_e(r["suite"]), False), (_e(r["description_zh"] or r["expectation"]), False),
          (_e(r["column_name"]), False), (_e(r["observed"]), False), (_e(r["threshold"]), False),
          (_int(r["rows_evaluated"]), True)]
         for r in quality.iter_rows(named=True)])
    return _section("quality", title, summary + "<h3>检查明细（未通过在前）</h3>" + detail)


# ---------------------------------------------------------------------------------------------------------------
# The page


def _page(month: str, sections: list[str]) -> str:
    """The filled template with a marker where plotly.js goes (so the scrub sees only what fangpin wrote)."""
    name = county().get("county", {}).get("name", "")
    title = f"{name}防止返贫动态监测月度看板（{_month_label(month)}）"
    subtitle = ("本页汇总本月各部门名单比对产生的预警、乡镇风险等级、风险聚集、部门报送和数据质量；"
                "仅含汇总数字，不含姓名和身份证号码。")
    footer = (f"生成时间：{datetime.now():%Y-%m-%d %H:%M}　由 fangpin 生成；图表由 plotly 绘制，"
              "全部脚本内嵌于本文件，可离线打开。")
    template = Template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template.substitute(title=html.escape(title), subtitle=html.escape(subtitle), footer=html.escape(footer),
                               sections="\n".join(sections), plotlyjs=PLOTLY_MARKER)


def render_dashboard(con, month: str) -> str:
    """The month's dashboard as one HTML text, plotly.js embedded once; raises IdNumberInDashboard on an ID."""
    check_month(month)
    townships, townships_why = _township_frame(con, month)
    submissions, submissions_why = _submission_frame(con, month)
    quality, quality_why = _quality_frame(con, month)
    sections = [
        _overview_section(townships, townships_why, submissions, quality),
        _township_section(townships, townships_why),
        _heat_section(con, month, townships),
        _trend_section(con, month),
        _cluster_section(con, month),
        _submission_section(submissions, submissions_why),
        _quality_section(quality, quality_why, month),
    ]
    page = _page(month, sections)
    # Scrub what fangpin wrote; plotly.js (inserted next, verbatim from the plotly package) holds long digit runs.
    assert_no_id_numbers(page)
    return page.replace(PLOTLY_MARKER, _plotly_js(), 1)


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    """plotly.js as it goes inside the page's <script> (no "</script" in it), read once per process: 4.8 MB read
    and escaped for every county's page took ~12 ms a page."""
    return plotly.offline.get_plotlyjs().replace("</script", "<\\/script")


def write_dashboard(con, month: str, out_dir: Path) -> Path:
    """Write out_dir/dashboard.html (owner-only, 0o600) atomically and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = render_dashboard(con, month)
    target = out_dir / "dashboard.html"
    handle, temp_name = tempfile.mkstemp(prefix=".dashboard-", suffix=".html", dir=out_dir)
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(page)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    os.chmod(target, 0o600)
    return target
