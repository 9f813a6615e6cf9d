"""The monthly dashboard: sections from tiny hand-made marts, "暂无数据" when marts are missing, no ID numbers, and a
real render in headless Chromium with the network disabled (charts drawn, screenshot saved)."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import duckdb
import polars as pl
import pytest

from fangpin import dashboard

MONTH = "2026-10"
PLANTED_ID = "11010119900307425X"   # a valid-looking ID quoted in a department's rejection reason
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Level and rate per township for MONTH; the table must list them red, orange, yellow, green.
TOWNSHIPS = {"东山镇": ("green", 2.0), "西河乡": ("red", 40.0), "南岭镇": ("orange", 25.0), "北坪镇": ("yellow", 12.0)}
# The nine types of large-scale relapse (seed 001), the risk_type values of marts.township_risk_types.
RELAPSE_TYPES = ["因病因残", "因自然灾害意外事故", "新增住房不安全", "新增饮水不安全", "就业不稳定减收", "乡村产业失败",
                 "政策衔接引发", "扶贫资产监管不善", "小额贷款逾期"]
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def _months(last: str, count: int) -> list[str]:
    year, month = int(last[:4]), int(last[5:])
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return sorted(out)


def _load(con, table: str, frame: pl.DataFrame, extra: dict | None = None, real: bool = False) -> None:
    """Create `table` from `frame` (the brief's columns), or insert it into the real DDL with its NOT NULL extras."""
    if real:
        frame = frame.with_columns(**{name: value(frame) for name, value in (extra or {}).items()})
    con.register("_frame", frame.to_arrow())
    if real:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _frame")
    else:
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM _frame")
    con.unregister("_frame")


def _level_rank(frame: pl.DataFrame) -> pl.Expr:
    return pl.col("level").replace_strict({"green": 0, "yellow": 1, "orange": 2, "red": 3}, return_dtype=pl.Int32)


def _marts(con, real: bool = False) -> None:
    """Tiny marts: 15 months of four townships (plus one later month), one cluster, two lists, three checks.

    real=True inserts into the DDL of schemas/risk.sql and schemas/quality.sql (created by the caller)."""
    if not real:
        con.execute("CREATE SCHEMA marts; CREATE SCHEMA quality;")
    months = _months(MONTH, 15) + ["2026-11"]
    rows = []
    for i, month in enumerate(months):
        for j, (township, (level, rate)) in enumerate(TOWNSHIPS.items()):
            warned = int(rate * 10) if month == MONTH else i + j
            rows.append({
                "month": month, "township": township, "households": 10_000, "warned_households": warned,
                "rate_per_1000": rate if month == MONTH else warned / 10, "warned_change": 3 - j, "level": level,
                "reasons": "红色：因病因残预警户数为近期均值的2倍；橙色：石门村洪涝聚集" if level == "red" else "",
                "overdue_cases": j,
                "largest_cluster_village": "石门村" if township == "西河乡" else None,
                "largest_cluster_event": "因自然灾害-洪涝" if township == "西河乡" else None,
                "largest_cluster_households": 5 if township == "西河乡" else 0,
                "largest_cluster_share": 0.5 if township == "西河乡" else None,
            })
    _load(con, "marts.township_risk", pl.DataFrame(rows), {"level_rank": _level_rank}, real)
    types = [
        {"month": month, "township": township, "risk_type": risk_type,
         "households": (7 if (township, risk_type) == ("西河乡", "因自然灾害意外事故") and month == MONTH else k % 3),
         "trailing_avg": 1.0, "ratio_to_trailing": 7.0 if (township, risk_type) == ("西河乡", "因自然灾害意外事故") else 1.0}
        for month in months for township in TOWNSHIPS for k, risk_type in enumerate(RELAPSE_TYPES)
    ]
    _load(con, "marts.township_risk_types", pl.DataFrame(types),
          {"type_order": lambda f: pl.col("risk_type").replace_strict(
              {t: i + 1 for i, t in enumerate(RELAPSE_TYPES)}, return_dtype=pl.Int32)}, real)
    _load(con, "marts.village_risk", pl.DataFrame([
        {"month": MONTH, "township": "西河乡", "village": "石门村", "households": 300, "warned_households": 10,
         "level": "red", "reasons": "洪涝聚集", "largest_cluster_event": "因自然灾害-洪涝",
         "largest_cluster_households": 5, "largest_cluster_share": 0.5},
        {"month": MONTH, "township": "东山镇", "village": "独户村", "households": 200, "warned_households": 1,
         "level": "green", "reasons": "", "largest_cluster_event": "因病", "largest_cluster_households": 1,
         "largest_cluster_share": 1.0},
    ]), {"level_rank": _level_rank}, real)
    _load(con, "marts.submissions", pl.DataFrame([
        {"month": MONTH, "department": "civil_affairs", "department_name": "民政局", "list": "civil_affairs.dibao",
         "received": True, "on_time": True, "arrived_at": "2026-11-05 09:30", "files": 1, "rows": 120,
         "rejected_rows": 4, "main_reasons": f"身份证号码{PLANTED_ID}校验位不符（3行）"},
        {"month": MONTH, "department": "water", "department_name": "水利局", "list": "water.unsafe_water",
         "received": False, "on_time": False, "arrived_at": None, "files": 0, "rows": 0, "rejected_rows": 0,
         "main_reasons": None},
    ]).with_columns(pl.col("arrived_at").str.to_datetime()),
          {"status": lambda f: pl.when(pl.col("received")).then(pl.lit("按时报送")).otherwise(pl.lit("未报送"))}, real)
    _load(con, "quality.results", pl.DataFrame([
        {"month": MONTH, "suite": "名单", "expectation": "expect_column_values_to_not_be_null", "column": "id_number",
         "success": True, "observed": "0", "threshold": "0", "description_zh": "身份证号码不为空", "rows_evaluated": 120},
        {"month": MONTH, "suite": "名单", "expectation": "expect_column_values_to_be_in_set", "column": "township",
         "success": False, "observed": "3.2%", "threshold": "≤1%", "description_zh": "乡镇名称可识别", "rows_evaluated": 120},
        {"month": MONTH, "suite": "花名册", "expectation": "expect_column_values_to_be_unique", "column": "id_number",
         "success": True, "observed": "0", "threshold": "0", "description_zh": "身份证号码不重复", "rows_evaluated": 900},
    ]).rename({"column": "column_name"} if real else {}), {"check_name": lambda f: pl.col("expectation")}, real)


@pytest.fixture()
def con():
    connection = duckdb.connect()
    _marts(connection)
    yield connection
    connection.close()


def _ours(page: str) -> str:
    """The page without the embedded plotly.js, with plotly's \\uXXXX escapes decoded (what fangpin wrote)."""
    start = page.index('<script id="plotly-js-library"')
    end = page.index("</script>", start)
    rest = page[:start] + page[end:]
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), rest)


def _section(page: str, anchor: str) -> str:
    return page.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]


def test_sections_from_the_marts(con, monkeypatch):
    monkeypatch.setattr(dashboard, "_quality_fragment", lambda quality, month: None)  # the built-in table
    page = dashboard.render_dashboard(con, MONTH)
    ours = _ours(page)
    # Self-contained: plotly.js once, inline; nothing fetched.
    assert page.count("plotly.js v") == 1 and page.count('id="plotly-js-library"') == 1
    assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*href=|cdn\.plot\.ly", ours)
    assert ours.count("Plotly.newPlot") == 4
    # Township table sorted by level.
    townships = _section(ours, "townships")
    positions = [townships.index(name) for name in ("西河乡", "南岭镇", "北坪镇", "东山镇")]
    assert positions == sorted(positions)
    assert "红色" in townships and "石门村·因自然灾害-洪涝：5 户，占该村 50%" in townships
    assert "近期均值的2倍<br>橙色：" in townships
    # Heat table: the nine relapse types as columns, the hot cell darkest and marked as rising.
    heat = _section(ours, "heat")
    positions = [heat.index(f">{name}</th>") for name in RELAPSE_TYPES]   # the seed's order (config, no type_order)
    assert positions == sorted(positions)
    hot = re.search(r'<td style="background:#b71c1c;color:#ffffff[^"]*" title="西河乡 因自然灾害意外事故：7 户[^>]*>([^/]*)',
                    heat)
    assert hot and "↑ 近期均值×7.0" in hot.group(1)
    assert heat.count("↑") == 1 + heat.count("带框并标“↑”")
    # Trends: the last 12 months present up to MONTH, not earlier ones, not later ones.
    trends = _section(ours, "trends")
    assert "2025年11月" in trends and "2026年10月" in trends
    assert "2025年10月" not in trends and "2026年11月" not in trends
    # Clusters: a one-household "cluster" is not one.
    clusters = _section(ours, "clusters")
    assert "石门村" in clusters and "独户村" not in clusters
    # Submissions and quality.
    submissions = _section(ours, "submissions")
    assert "未报送" in submissions and "新增农村低保人员名单" in submissions
    quality = _section(ours, "quality")
    assert quality.index("未通过</span></td><td>名单") < quality.index("身份证号码不为空")
    # The ID quoted in a rejection reason is masked, and no ID pattern is left anywhere fangpin wrote.
    assert PLANTED_ID not in page and dashboard.ID_MASK in submissions
    assert not dashboard.ID_PATTERN.search(ours)
    assert "暂无数据" not in ours


def test_against_the_warehouse_ddl(monkeypatch):
    """The same marts inserted into the real DDL (schemas/risk.sql, schemas/quality.sql): every section renders."""
    ddl = [SCHEMAS / "risk.sql", SCHEMAS / "quality.sql"]
    if not all(path.exists() for path in ddl):
        pytest.skip("schemas/risk.sql or schemas/quality.sql not written yet")
    monkeypatch.setattr(dashboard, "_quality_fragment", lambda quality, month: None)
    connection = duckdb.connect()
    for path in ddl:
        connection.execute(path.read_text(encoding="utf-8"))
    _marts(connection, real=True)
    ours = _ours(dashboard.render_dashboard(connection, MONTH))
    assert "暂无数据" not in ours
    heat = _section(ours, "heat")
    positions = [heat.index(f">{name}</th>") for name in RELAPSE_TYPES]   # the seed's order (type_order)
    assert positions == sorted(positions)
    assert "2026-11-05 09:30" in _section(ours, "submissions") and "乡镇名称可识别" in _section(ours, "quality")


def _charts(page: str) -> list[tuple[str, list, dict]]:
    """Each chart's div id, traces and layout, as the page hands them to plotly.js."""
    calls = re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"displayModeBar"', page, re.S)
    return [(call.group(1), json.loads(call.group(2)), json.loads(call.group(3))) for call in calls]


def test_every_chart_is_what_plotly_s_validated_figure_makes_of_it(con):
    """The charts are written as plotly's figure JSON without its graph objects: each is a figure plotly's own
    validation accepts and leaves as it is (no property it would coerce, rename or drop), drawn in the dashboard's
    template; plotly's default template is left alone."""
    import plotly.graph_objects as go
    import plotly.io as pio

    default = pio.templates.default
    charts = _charts(dashboard.render_dashboard(con, MONTH))
    template = json.loads(pio.json.to_json_plotly(pio.templates[dashboard.CHART_TEMPLATE].to_plotly_json()))
    assert [div for div, _, _ in charts] == ["chart-trend-township", "chart-trend-risk-type", "chart-clusters",
                                             "chart-submissions"]
    for div, traces, layout in charts:
        validated = json.loads(go.Figure({"data": traces, "layout": layout}).to_json())
        assert validated == {"data": traces, "layout": layout}, div
        assert layout["template"] == template, div
        assert all(trace["type"] in ("scatter", "bar") for trace in traces) and traces, div
    assert pio.templates.default == default


def test_a_chart_s_values_and_layout_are_those_it_was_given():
    """The layout the dashboard sets on every chart (size, fonts, margins) joins the chart's own; the traces go
    through as they are."""
    bars = [{"type": "bar", "x": ["民政"], "y": [3], "name": "接收行数"}]
    html = dashboard._chart(bars, {"title": {"text": "标题"}, "barmode": "stack"}, "chart-x", height=300)
    (div, traces, layout), = _charts(html)
    assert div == "chart-x" and traces == bars
    assert layout["title"] == {"text": "标题"} and layout["barmode"] == "stack" and layout["height"] == 300
    assert layout["font"]["family"] == dashboard.CHART_FONT and layout["margin"]["l"] == 60


def test_quality_module_fragment_is_embedded(con):
    quality = pytest.importorskip("fangpin.quality")
    if not hasattr(quality, "render_quality_html"):
        pytest.skip("fangpin.quality has no render_quality_html yet")
    section = _section(_ours(dashboard.render_dashboard(con, MONTH)), "quality")
    assert "fp-quality" in section and "乡镇名称可识别" in section


def test_missing_marts_say_no_data_and_file_is_owner_only(tmp_path):
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA marts")
    connection.execute("CREATE TABLE marts.submissions (month VARCHAR)")  # a contract column missing
    path = dashboard.write_dashboard(connection, MONTH, tmp_path / "exports" / MONTH)
    page = path.read_text(encoding="utf-8")
    assert path == tmp_path / "exports" / MONTH / "dashboard.html"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert page.count("暂无数据") == 7   # every section
    assert list(path.parent.iterdir()) == [path]   # no temporary file left


def test_an_id_that_escapes_masking_stops_the_write(con, tmp_path, monkeypatch):
    with pytest.raises(dashboard.IdNumberInDashboard):
        dashboard.assert_no_id_numbers(f"<td>{PLANTED_ID.lower()}</td>")
    dashboard.assert_no_id_numbers("<td>12345678901234567</td>")   # 17 digits alone are not an ID
    monkeypatch.setattr(dashboard, "mask_id_numbers", lambda text: "" if text is None else str(text))
    with pytest.raises(dashboard.IdNumberInDashboard) as error:
        dashboard.write_dashboard(con, MONTH, tmp_path)
    assert PLANTED_ID not in str(error.value)   # the error message does not leak it either
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Headless Chromium (Debian `chromium`), network disabled


def _apt_install(*packages: str) -> str | None:
    """Install Debian packages; the reason it could not, or None."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "需要 root 和 apt-get 才能安装 chromium（not root or no apt-get）"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)} timed out"
        if result.returncode != 0:
            return f"{' '.join(command)} failed: {result.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary, installed from Debian when missing (with a CJK font so the screenshot reads)."""
    binary = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    cjk = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("fc-list") else ""
    missing = ([] if binary else ["chromium", "fonts-liberation"]) + ([] if cjk else ["fonts-wqy-microhei"])
    if missing:
        why = _apt_install(*missing)
        binary = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
        if binary is None:
            pytest.skip(f"chromium unavailable: {why}")
    return binary


def _run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    offline = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--disable-default-apps", "--hide-scrollbars",
        f"--user-data-dir={profile}",
        # No network: every request goes to a dead proxy, and no host name resolves.
        "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=5000",
    ]
    return subprocess.run([binary, *offline, *args], capture_output=True, text=True, timeout=60)


def test_dashboard_renders_offline_in_chromium(chromium, con, tmp_path):
    path = dashboard.write_dashboard(con, MONTH, tmp_path / "exports" / MONTH)
    url = path.as_uri()
    dom = _run_chromium(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    # plotly drew every chart: one SVG root per chart, inside its plot container.
    assert rendered.count('class="plot-container plotly"') == 4
    assert rendered.count('class="main-svg"') >= 4
    assert "2025年11月" in rendered and "西河乡" in rendered       # Chinese axis ticks and legend, drawn in SVG
    # No ID number anywhere fangpin wrote, nor anything shaped like a real one (valid date and check) at all.
    assert not dashboard.ID_PATTERN.search(_ours(rendered))
    assert not [candidate for candidate in re.findall(r"\d{17}[\dXx]", rendered) if _valid_id(candidate)]
    screenshot = tmp_path / "dashboard.png"
    shot = _run_chromium(chromium, tmp_path / "profile-shot", f"--screenshot={screenshot}",
                         "--window-size=1400,2000", url)
    assert screenshot.exists() and screenshot.stat().st_size > 20_000, shot.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "dashboard.png")


def _valid_id(candidate: str) -> bool:
    """GB 11643: a plausible birth date and the right check character."""
    from datetime import date

    try:
        date(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    except ValueError:
        return False
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(digit) * weight for digit, weight in zip(candidate[:17], weights))
    return "10X98765432"[total % 11] == candidate[17].upper()
