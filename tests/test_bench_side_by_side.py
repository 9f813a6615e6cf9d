"""bench/side_by_side.py: what a process reports per county, and the comparison of two revisions side by side."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import side_by_side
from bench.side_by_side import CHILD, MARK, County, parse_counties, run_pair, summary

ROOT = Path(__file__).resolve().parent.parent


def _county(name: str, cpu: float, faults: int = 100, ok: bool = True, **steps: float) -> County:
    return County(county=name, ok=ok, wall=cpu, user=cpu - 0.5, system=0.5, faults=faults, steps=steps)


def test_a_process_s_counties_are_read_from_its_marked_lines_only():
    output = "\n".join([
        "▶ 360099",
        MARK + '{"county": "360099", "ok": true, "wall": 5.0, "user": 6.0, "system": 0.5, "faults": 9, '
               '"steps": {"roster": 1.5}}',
        "  360199 roster: 20000 persons",
        MARK + '{"county": "360199", "ok": false, "wall": 4.0, "user": 3.5, "system": 0.25, "faults": 7, "steps": {}}',
    ])
    first, second = parse_counties(output)
    assert first == County("360099", True, 5.0, 6.0, 0.5, 9, {"roster": 1.5}) and first.cpu == 6.5
    assert second.county == "360199" and not second.ok and second.cpu == 3.75


def test_the_first_county_of_each_process_is_left_out_and_b_over_a_is_given_per_pair():
    a = [_county("1", 9.0, roster=2.0), _county("2", 4.0, roster=1.0), _county("3", 4.2, roster=1.2)]
    b = [_county("1", 8.0, roster=2.0), _county("2", 3.8, roster=0.8), _county("3", 4.0, roster=1.0)]
    lines = summary([(a, b), (a, a)], ("before", "after"))
    assert lines[0].startswith("pair 1 (A started first): before 4.100 | after 3.900 CPU-s a warm county, B/A 0.951")
    assert lines[1].startswith("pair 2 (B started first): before 4.100 | after 4.100") and "FAILED" not in lines[0] + lines[1]
    assert lines[2] == "B/A median 0.976; after used less CPU in 1 of 2 pairs"
    # the steps over both pairs' warm counties: A 1.0, 1.2, 1.0, 1.2 -> 1.1; B 0.8, 1.0, 1.0, 1.2 -> 1.0
    assert lines[-1] == "  roster                  1.100 |  1.000 | -0.100"


def test_a_pair_with_a_failed_county_or_no_county_at_all_says_so():
    good = [_county("1", 9.0), _county("2", 4.0)]
    lines = summary([(good, [_county("1", 9.0), _county("2", 4.0, ok=False)]), ([], good)], ("A", "B"))
    assert lines[0].endswith("; FAILED: B") and lines[1] == "pair 2: no county reported; FAILED: A"
    assert lines[2] == "B/A median 1.000; B used less CPU in 0 of 1 pairs"
    assert summary([(good, [])], ("A", "B")) == ["pair 1: no county reported; FAILED: B"]


def test_the_child_runs_the_revision_s_code_not_the_installed_one(tmp_path):
    """A revision's process imports that worktree's pipelines (here a stand-in), whatever this virtualenv has
    installed as fangpin."""
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "__init__.py").write_text("")
    (tmp_path / "pipelines" / "one_run.py").write_text(
        "from types import SimpleNamespace\n"
        "def run_county_of_the_province(province, month, county):\n"
        "    return SimpleNamespace(ok=True, step_cpu={'stand_in': 0.5, 'month': int(month[5:])})\n")
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "2026-10", "1,2"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert [(c.county, c.ok, c.steps) for c in parse_counties(done.stdout)] == [
        ("1", True, {"stand_in": 0.5, "month": 10}), ("2", True, {"stand_in": 0.5, "month": 10})]


def test_the_child_runs_a_real_province_county_and_reports_it(tmp_path):
    """The code a revision's process runs, here with this checkout as the revision: a small county, reported."""
    from fangpin import demo

    demo.generate(tmp_path / "counties" / "360001", months=["2026-10"], persons=200, seed=7)
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "2026-10", "360001"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dh")})
    county, = parse_counties(done.stdout)
    assert county.county == "360001" and county.ok and county.cpu > 0
    assert {"roster", "warning_queue", "county_dashboard"} <= set(county.steps)


def test_each_process_gets_its_revision_s_worker_environment_over_this_process_s(monkeypatch):
    from bench.side_by_side import revision_environment
    from fangpin import cores

    monkeypatch.setenv(cores.POLARS_ALLOCATOR_ENV, cores.POLARS_OWN_ALLOCATOR_OPTIONS)  # as Polars leaves it here
    monkeypatch.setenv(cores.POLARS_THREADS_ENV, "7")
    monkeypatch.setenv("FANGPIN_SOMETHING_ELSE", "kept")
    environment = revision_environment(ROOT)  # this checkout as the revision
    assert {name: environment[name] for name in cores.worker_environment(2, {})} == cores.worker_environment(2, {})
    assert environment[cores.POLARS_ALLOCATOR_ENV] == cores.KEEP_FREED_MEMORY  # not Polars' own, inherited
    assert environment[cores.POLARS_THREADS_ENV] != "7" and environment["FANGPIN_SOMETHING_ELSE"] == "kept"


def test_a_revision_without_worker_settings_runs_without_this_process_s(monkeypatch, tmp_path):
    """An old revision (here: a fangpin package without `cores`) gives its worker nothing: none of the variables
    fangpin manages comes from this process instead."""
    from bench.side_by_side import MANAGED, revision_environment

    (tmp_path / "fangpin").mkdir()
    (tmp_path / "fangpin" / "__init__.py").write_text("")
    for name in MANAGED:
        monkeypatch.setenv(name, "from this process")
    assert not set(MANAGED) & set(revision_environment(tmp_path))


def test_every_second_pair_starts_b_first_and_both_copies_are_made_before_either_starts(monkeypatch, tmp_path):
    source = tmp_path / "source"
    for county in ("360099", "360199"):
        (source / "counties" / county / "raw").mkdir(parents=True)
    started = []

    class Started:
        def __init__(self, command, cwd, env, **_):
            copies = sorted(path.parent.name for path in (tmp_path / "work").glob("*/counties"))
            started.append((Path(cwd).name, env["REVISION"], copies))

        def communicate(self):
            return "", None

    monkeypatch.setattr(side_by_side.subprocess, "Popen", Started)
    trees = (tmp_path / "tree_a", tmp_path / "tree_b")
    environments = ({"REVISION": "a"}, {"REVISION": "b"})
    for pair in (1, 2, 3):
        run_pair(trees, environments, source, ["360099", "360199"], "2026-10", tmp_path / "work",
                 b_first=side_by_side.b_starts_first(pair))
    assert [(cwd, revision) for cwd, revision, _ in started] == [
        ("tree_a", "a"), ("tree_b", "b"), ("tree_b", "b"), ("tree_a", "a"), ("tree_a", "a"), ("tree_b", "b")]
    assert all(copies == ["a", "b"] for _, _, copies in started)
