"""The benchmark cannot rot: a few thousand rows through the same bench code path as `make bench` (generator,
floor, the real `fangpin run` child, Dagster step events, results file), plus the pure parts on hand-made input."""
from __future__ import annotations

import re
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
