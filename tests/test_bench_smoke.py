"""The benchmark cannot rot: a few thousand rows through the same bench code path as `make bench` (generator,
floor, the real `fangpin run` child, Dagster step events, results file), plus the pure parts on hand-made input, and
the province's layout (a county data dir per county) and its per-run accounting. The province's own end-to-end run
(`fangpin province`, ~15 s per county even at 1,000 persons) is `python -m bench.run province-small`, not a test."""
from __future__ import annotations

import os
import re
from dataclasses import replace
from types import SimpleNamespace

import pytest

from bench import run as bench


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    results = root / "results.md"
    results.write_text("<!-- bench:county -->\n## county\nkept\n<!-- /bench:county -->\n", encoding="utf-8")
    result = bench.bench(bench.SCENARIOS["smoke"], cache=root / "cache", results=results)
    return result, results.read_text(encoding="utf-8"), root


def test_smoke_run_succeeds_and_headline_is_sane(smoke):
    result, _, _ = smoke
    assert result.ok, result.run.stderr.read_text(encoding="utf-8")[-3000:]
    line = bench.headline(result)
    match = re.fullmatch(r"smoke: ([\d,]+) persons, run ([\d.]+) s, floor ([\d.]+) s, run/floor ([\d.]+), "
                         r"peak ([\d.]+) GB", line)
    assert match, line
    persons, run_s, floor_s, ratio, peak = match.groups()
    assert int(persons.replace(",", "")) == 3000
    assert float(ratio) > 1  # the whole run cannot be faster than parsing its own input
    assert abs(float(ratio) - float(run_s) / result.floor["seconds"]) / float(ratio) < 0.05
    assert 0.05 < float(peak) < 8


def test_results_file_has_every_stage_and_keeps_other_sections(smoke):
    result, text, _ = smoke
    assert "## county\nkept" in text  # another scenario's section is left alone
    for stage in bench.STAGES:
        assert re.search(rf"^\| {stage} \| [\d.]+ \| \d+% \| \d+ \|", text, flags=re.M), stage
    assert bench.headline(result) in text
    assert re.search(r"- machine: \d+ cores .*[\d.]+ GB memory", text)
    assert "run/floor: **" in text
    side = result.floor["side_by_side"]
    assert f"- floor with every core: {bench._secs(side['seconds'])} s, the same readers parsing {side['threads']} files" in text


def test_a_missed_target_is_said_with_the_largest_stages(smoke):
    result, text, _ = smoke  # a few thousand rows: Dagster's fixed costs alone are many times the floor
    assert f"- targets: run/floor at most 2: **missed** ({result.ratio:.2f}); peak RSS at most 8 GB: met" in text
    largest = max(bench.stage_rows(result), key=lambda row: row[1])[0]
    assert re.search(rf"^- where the time went, largest stages first: {re.escape(largest)} [\d.]+ s \(\d+%", text,
                     flags=re.M), largest


def test_a_missed_target_says_whether_more_overlap_could_meet_it():
    """The run's CPU over the cores bounds its wall time: a target below that bound needs less CPU."""
    result = _province_result()  # 33 s of wall time
    result.machine = {"cores": 2}
    result.run.cpu = 50.0  # 25 s with both cores busy all along
    result.scenario = replace(result.scenario, target_seconds=30.0)
    assert bench.target_lines(result)[-1] == (
        "- the CPU bound: the run's 50.0 CPU-s over 2 cores is 25.0 s even with every core busy all run long "
        "(run/floor 25.00; a core stood idle for 8.00 s of the 33.0 s), so keeping every core busy would be enough")
    result.scenario = replace(result.scenario, target_seconds=20.0)
    assert bench.target_lines(result)[-1].endswith(
        "so wall time cannot meet the target by overlap alone: it needs less CPU: at most 40.0 CPU-s fit 20.0 s on "
        "2 cores, 20% below this run's 50.0 (10.0 CPU-s a county against 12.5)")


def test_a_missed_ratio_says_how_much_cpu_the_target_leaves():
    """A county's run/floor target is a wall time too (the floor times the ratio): what CPU fits it on the cores."""
    result = _province_result()
    result.machine = {"cores": 2}
    result.run.cpu = 50.0
    result.floor["seconds"] = 4.0  # run/floor 2 allows 8 s: 16 CPU-s on two cores
    result.scenario = replace(result.scenario, counties=1, target_ratio=2.0)
    assert bench.target_lines(result)[-1].endswith(
        "so run/floor cannot meet the target by overlap alone: it needs less CPU: at most 16.0 CPU-s fit 8.00 s on "
        "2 cores, 68% below this run's 50.0")
    result.scenario = replace(result.scenario, target_seconds=10.0)  # both missed: the tighter one says what fits
    assert bench.target_lines(result)[-1].endswith(
        "so run/floor and wall time cannot meet the target by overlap alone: it needs less CPU: at most 16.0 CPU-s "
        "fit 8.00 s on 2 cores, 68% below this run's 50.0")


def test_province_targets_met_or_missed_name_the_county_runs_steps():
    result = _province_result()  # 33 s; county runs of 10 s and 14 s, their one step the roster
    result.scenario = replace(result.scenario, target_seconds=600.0)
    assert bench.target_lines(result) == [
        "- targets: wall time at most 600 s: met (33.0 s); peak RSS at most 8 GB: met (2.00 GB)"]
    result.scenario = replace(result.scenario, target_seconds=30.0)
    targets, where = bench.target_lines(result)
    assert "wall time at most 30 s: **missed** (33.0 s)" in targets
    assert where.startswith("- where the time went: a county run takes 12.0 s (median), of which roster 9.50 s "
                            "and Dagster's run setup 1.00 s; 4 counties, 1 at a time")  # roster: 7.5 and 11.5 s


def test_stages_add_up_to_the_run_and_every_step_is_timed(smoke):
    result, _, _ = smoke
    rows = bench.stage_rows(result)
    assert sum(seconds for _, seconds, *_ in rows) == pytest.approx(result.run.wall, rel=0.02)
    steps = {s.step for s in result.steps}
    assert {"drop_zone", "roster", "warehouse_month", "person_links", "warning_queue", "county_dashboard"} <= steps
    assert all(s.stage != "other" for s in result.steps), [s.step for s in result.steps if s.stage == "other"]
    assert all(s.seconds >= 0 and s.status == "success" for s in result.steps)


def test_inputs_are_cached_by_key(smoke, monkeypatch):
    _, _, root = smoke
    scenario = bench.SCENARIOS["smoke"]
    monkeypatch.setattr(bench, "generate_county", lambda *a: pytest.fail("regenerated a cached scenario"))
    data_dir, info = bench.ensure_data(scenario, root / "cache")
    assert info["key"] == scenario.key() and (data_dir / "raw" / scenario.month / "roster").is_dir()
    other = bench.Scenario(**{**bench.asdict(scenario), "seed": 7})
    assert other.key() != scenario.key()


def test_step_times_from_events_split_pickle_io_and_mark_a_stopped_step():
    def record(at, kind, step=None):
        return SimpleNamespace(timestamp=100.0 + at, step_key=step,
                               dagster_event=SimpleNamespace(event_type_value=kind) if kind else None)

    records = [
        record(1.0, None), record(2.0, "PIPELINE_START"),
        record(2.0, "STEP_START", "roster"), record(2.1, None, "roster"), record(2.5, "LOADED_INPUT", "roster"),
        record(4.0, "STEP_OUTPUT", "roster"), record(4.6, "HANDLED_OUTPUT", "roster"),
        record(4.7, "STEP_SUCCESS", "roster"),
        record(5.0, "STEP_START", "person_links"),
    ]
    steps, marks = bench.step_times(records, spawned=100.0, ended=9.0)
    assert marks == {"first_event": 1.0, "run_start": 2.0}
    roster, links = steps
    assert (roster.stage, roster.status) == ("read", "success")
    assert roster.seconds == pytest.approx(2.7) and roster.load == pytest.approx(0.4)
    assert roster.store == pytest.approx(0.6)
    assert (links.stage, links.status, links.seconds) == ("link", "stopped", pytest.approx(4.0))


def test_floor_reads_gb18030_csv_and_every_sheet(tmp_path):
    import openpyxl

    csv_path = tmp_path / "名单.csv"
    csv_path.write_bytes("姓名,身份证号码\n张三,360799199001011234\n李四,\"36,1\"\n".encode("gb18030"))
    book = openpyxl.Workbook()
    book.active.append(["a", "b"])
    book.create_sheet("two").append([1])
    book["two"].append([2])
    book.save(tmp_path / "x.xlsx")
    (tmp_path / "~$x.xlsx").write_bytes(b"lock")
    found = bench.floor([csv_path, tmp_path / "x.xlsx"])
    assert found["rows"] == 3 + 1 + 2
    assert set(found["by_reader"]) == {"csv (duckdb)", "xlsx (calamine)"}
    side = found["side_by_side"]  # the same readers with a file per core at a time parse the same rows
    assert side["rows"] == found["rows"] and side["threads"] == os.cpu_count() and side["seconds"] > 0


def test_province_is_generated_as_a_county_data_dir_per_county(tmp_path):
    """`fangpin province` reads counties/<code>/raw/<month>/: each county its roster and its own department lists;
    the floor walks every county's drop zone."""
    import polars as pl

    scenario = bench.Scenario("tiny-province", persons=1_800, list_rows=180, counties=3)
    data_dir, info = bench.ensure_data(scenario, tmp_path)
    counties = sorted(p.name for p in (data_dir / "counties").iterdir())
    assert counties == [bench.county_code(i) for i in range(3)] and all(re.fullmatch(r"\d{6}", c) for c in counties)
    assert not (data_dir / "raw").exists()
    ids, files = [], bench.input_files(data_dir, scenario.month)
    for code in counties:
        zone = data_dir / "counties" / code / "raw" / scenario.month
        roster = pl.read_parquet(zone / "roster" / "花名册.parquet")
        assert roster.height == 600
        townships = roster.select(pl.col(roster.columns[1]).unique()).to_series()
        assert townships.len() > 1 and not townships.is_duplicated().any()
        ids += roster[roster.columns[5]].to_list()
        mine = [f for f in files if zone in f.parents]
        assert {f.suffix for f in mine} == {".parquet", ".csv", ".xlsx", ".xls"}
        assert len(mine) == 1 + len(bench.registry().lists)  # the roster and one file per list
    assert len(ids) == len(set(ids)) == 1_800  # IDs unique across the province
    assert info["list_rows"] >= 3 * len(bench.registry().lists)


def _province_result(stopped: str | None = None):
    """A hand-made `fangpin province` result: two county runs (10 s and 14 s) and the provincial marts, or, when
    stopped, the second county cut off in its roster step."""
    def record(at, kind, step=None):
        return SimpleNamespace(timestamp=100.0 + at, step_key=step,
                               dagster_event=SimpleNamespace(event_type_value=kind) if kind else None)

    def county(at, seconds, end=True):
        events = [record(at, None), record(at + 1, "PIPELINE_START"), record(at + 1.5, "STEP_START", "roster"),
                  record(at + seconds - 1, "STEP_SUCCESS" if end else None, "roster")]
        return events + ([record(at + seconds, "PIPELINE_SUCCESS")] if end else [])

    runs = [("360099", "county_month", county(5, 10)), ("360199", "county_month", county(16, 14, end=not stopped))]
    if not stopped:
        runs.append(("province_marts", "province_marts", [
            record(31, "PIPELINE_START"), record(31.2, "STEP_START", "province_risk"),
            record(32, "STEP_SUCCESS", "province_risk"), record(32.5, "PIPELINE_SUCCESS")]))
    wall = 25.0 if stopped else 33.0
    timed = bench.run_times(runs, spawned=100.0, ended=wall)
    run = bench.RunOutcome(None if stopped else 0, wall, int(2e9), 100.0, stopped=stopped, last_step="roster",
                           last_run="360199" if stopped else "")
    scenario = bench.Scenario("province", persons=2_000, list_rows=200, counties=4)
    floor = {"seconds": 1.0, "cpu": 1.0, "by_reader": {}, "rows": 0, "files": 0, "bytes": 0}
    steps = [s for r in timed for s in r.steps]
    return bench.BenchResult(scenario, {"persons": 2_000, "list_rows": 200}, floor, run, steps, {},
                             {"persons": 2_000, "list_rows": 200}, {}, "", timed)


def test_province_runs_add_up_and_report_counties_and_dagster_overhead():
    result = _province_result()
    rows = dict((name, seconds) for name, seconds, *_ in bench.stage_rows(result))
    assert sum(rows.values()) == pytest.approx(33.0)
    assert rows["startup: Python and Dagster imports"] == pytest.approx(5.0)
    assert rows["read"] == pytest.approx(7.5 + 11.5) and rows["province marts"] == pytest.approx(0.8)
    progress = bench.province_progress(result)
    assert (progress["done"], progress["started"]) == (2, 2)
    assert progress["median"] == pytest.approx(12.0) and progress["projected"] == pytest.approx(48.0)
    assert progress["overhead"] == pytest.approx(2.5)  # each run: 1 s setup, 0.5 s to its step, 1 s after it
    assert re.fullmatch(r"province: 2,000 persons, run 33.0 s, floor 1.00 s, run/floor 33.00, peak 2.0 GB",
                        bench.headline(result))


def test_a_province_stopped_at_the_cap_says_counties_done_and_the_projection():
    result = _province_result(stopped="time cap")
    assert sum(seconds for _, seconds, *_ in bench.stage_rows(result)) == pytest.approx(25.0)
    line = bench.headline(result)
    assert "STOPPED (time cap) in 360199 roster" in line and "1/4 counties done" in line
    assert "projected 40 s (median 10.0 s per county x 4)" in line
    assert "projected total 40 s" in "\n".join(bench.province_lines(result))


def test_gaps_between_county_runs_side_by_side_are_measured_to_the_next_run_started_after_each():
    """Two workers: A1 then A2 on one, B1 then B2 on the other, overlapping. The next run in start order (B1 after A1)
    started while A1 was still going; the gap is to the run that started after A1 ended (A2: 0.5 s), never negative."""
    def run(label: str, first: float, end: float) -> bench.RunTime:
        steps = [bench.StepTime("roster", "read", first + 0.2, end - first - 0.4)]
        return bench.RunTime(label, "county_month", first, first + 0.1, end, steps)

    runs = [run("A1", 0.0, 10.0), run("B1", 1.0, 12.0), run("A2", 10.3, 20.0), run("B2", 12.0, 22.0)]
    # last step ends: A1 9.8, B1 11.8, A2 19.8, B2 21.8 -> next start after each: A2 (0.5), B2 (0.2), none, none
    assert bench._gaps(runs) == pytest.approx([0.5, 0.2])


def _repeat_of(wall: float, floor_seconds: float, stopped: str | None = None):
    result = _province_result(stopped)
    result.run = replace(result.run, wall=wall)
    result.floor = {**result.floor, "seconds": floor_seconds}
    result.machine = bench.machine()
    return result


def test_repeats_report_the_median_run_and_every_repeat_s_figures(tmp_path, monkeypatch):
    """`--repeat 3`: the section is the repeat with the median run/floor (here the first: 3.42 between 3.26 and
    3.50), and one line gives all three; the inputs are generated once."""
    repeats = iter([_repeat_of(61.7, 18.0), _repeat_of(60.4, 17.3), _repeat_of(62.5, 19.2)])
    generated: list[str] = []
    monkeypatch.setattr(bench, "ensure_data", lambda scenario, cache: generated.append(scenario.name) or (tmp_path, {}))
    monkeypatch.setattr(bench, "_measure", lambda *args: next(repeats))
    results = tmp_path / "results.md"
    chosen = bench.bench(bench.SCENARIOS["province-small"], cache=tmp_path, results=results, repeat=3)
    assert generated == ["province-small"] and next(repeats, None) is None
    assert chosen.run.wall == 61.7 and chosen.repeats == [(61.7, 18.0), (60.4, 17.3), (62.5, 19.2)]
    text = results.read_text(encoding="utf-8")
    assert ("- repeats: 3 runs of the same inputs, run 61.7 / 60.4 / 62.5 s, floor 18.0 / 17.3 / 19.2 s, "
            "run/floor 3.43 / 3.49 / 3.26; this section is the median run by run/floor") in text
    assert bench.headline(chosen) in text


def test_a_failed_repeat_is_reported_not_hidden_behind_the_median():
    chosen = bench.median_result([_repeat_of(30.0, 10.0), _repeat_of(25.0, 1.0, stopped="cap"),
                                  _repeat_of(31.0, 10.0)])
    assert chosen.run.stopped == "cap" and not chosen.ok
    assert bench.repeat_lines(chosen)[0].endswith("this section is the first repeat that failed")
    assert bench.repeat_lines(bench.median_result([_repeat_of(30.0, 10.0)])) == []  # one run: no repeats line


def test_the_one_run_reports_each_countys_steps_as_stages(tmp_path):
    """`fangpin province --one-run` has one Dagster step; the counties' lines in its log give the stages back."""
    from pipelines.one_run import CountyOutcome

    lines = [CountyOutcome("360099", 4.0, {"roster": 2.5, "warning_queue": 1.0}).line(),
             CountyOutcome("360199", 6.0, {"roster": 3.5, "warning_queue": 2.0}).line(),
             CountyOutcome("360299", 1.0, failed={"roster": "没有花名册"}).line()]  # a failed county is not "done"
    stderr = tmp_path / "run.stderr.log"
    stderr.write_text("\n".join(f"  run_province_in_one_run: {line}" for line in lines), encoding="utf-8")
    counties = bench.one_run_counties(stderr)
    assert counties == {"360099": (4.0, {"roster": 2.5, "warning_queue": 1.0}),
                        "360199": (6.0, {"roster": 3.5, "warning_queue": 2.0})}
    whole = bench.StepTime("run_province_in_one_run", "other", 2.0, 12.0)
    steps = bench.one_run_steps([whole], counties, workers=1)
    by_stage = {}
    for step in steps:
        by_stage[step.stage] = by_stage.get(step.stage, 0.0) + step.seconds
    assert by_stage == {"read": 6.0, "queue": 3.0, "province marts": 3.0}  # 12 s = the counties' 9 s + the rest
    result = _province_result()
    result.scenario = replace(result.scenario, one_run=True, target_seconds=3.0)
    result.run.stderr, result.steps = stderr, steps
    assert bench.province_lines(result)[0].endswith(
        "; the first half of the counties to finish took 4.00 s a county (median), the second half 6.00 s "
        "(bench/FINDINGS.md session 33 found no slowdown of a worker over 34 counties: a difference is most likely "
        "the machine's speed moving)")
    assert bench.target_lines(result)[1] == (
        "- where the time went: a county in the one run takes 5.00 s (median), of which roster 3.00 s, warning_queue "
        "1.50 s; 4 counties, 1 at a time (see bench/README.md for why each costs what it does)")


def test_the_feedback_micro_benchmark_reads_back_what_it_returns(tmp_path):
    """`python -m bench.feedback` times reading the townships' returned workbooks; its set-up must stay readable:
    every workbook written for the queue comes back whole, nothing rejected, no row verified (returned as sent)."""
    from bench.feedback import returned_workbooks
    from bench.workbooks import queue_frame
    from fangpin.feedback import read_feedback_dir

    queue = queue_frame(300)
    returned = returned_workbooks(queue, tmp_path)

    verifications, rejections = read_feedback_dir(returned, queue)
    assert len(list(returned.glob("*.xlsx"))) == queue["township"].n_unique()
    assert rejections.is_empty() and verifications.is_empty()
