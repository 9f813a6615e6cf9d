"""bench/ab.py's arithmetic: what a core left idle, and the summary of alternating rounds."""
from __future__ import annotations

from bench.ab import Sample, idle_core_seconds, summary


def test_idle_core_seconds_counts_what_the_cores_did_not_use():
    # 2 cores: the first second one core busy (1 idle core-second), the next both (none), then none (2)
    samples = [(0.0, 0.0), (1.0, 1.0), (2.0, 3.0), (3.0, 3.0)]
    assert idle_core_seconds(samples, cores=2) == 3.0
    assert idle_core_seconds(samples[:1], cores=2) == 0.0


def test_summary_gives_medians_and_how_often_b_was_faster():
    a = [Sample(22.0, 36.0, 7.0, 0), Sample(21.0, 35.0, 7.5, 0), Sample(23.0, 37.0, 6.0, 0)]
    b = [Sample(21.0, 34.0, 6.5, 0), Sample(21.5, 34.5, 7.0, 0), Sample(20.0, 33.0, 6.0, 0)]
    lines = summary(a, b, ("before", "after"))
    assert lines[0] == "round 1: before 22.0 s (36.0 CPU-s, idle 7.0) | after 21.0 s (34.0 CPU-s, idle 6.5)"
    assert "before: median 22.00 s, CPU 36.00 s, idle 7.00 core-s" in lines
    assert "after: median 21.00 s, CPU 34.00 s, idle 6.50 core-s" in lines
    assert lines[-1] == "after faster than before in 2 of 3 rounds"


def test_a_failed_run_is_named_in_the_summary():
    lines = summary([Sample(5.0, 6.0, 1.0, 1)], [Sample(20.0, 30.0, 5.0, 0)], ("A", "B"))
    assert lines[-1].startswith("runs that failed (exit code not 0): A")


def test_another_checkout_runs_its_own_code_not_this_checkout_s_console_script(tmp_path):
    import sys

    from bench.run import fangpin_command

    theirs = fangpin_command("2026-10", tmp_path, code=tmp_path / "tree")
    assert theirs == [sys.executable, "-m", "fangpin.cli", "run", "--month", "2026-10", "--data-dir", str(tmp_path)]


def test_a_province_sample_holds_the_first_counties_drop_zones_laid_out_as_a_province(tmp_path):
    from bench.ab import province_sample

    for code in ("360299", "360099", "360199"):
        drop_zone = tmp_path / "source" / "counties" / code / "raw" / "2026-10" / "roster"
        drop_zone.mkdir(parents=True)
        (drop_zone / "花名册.parquet").write_bytes(code.encode())
        (tmp_path / "source" / "counties" / code / "warehouse").mkdir()  # a run's output: not copied
    sample = province_sample(tmp_path / "source", 2, tmp_path / "sample")
    assert sorted(p.name for p in (sample / "counties").iterdir()) == ["360099", "360199"]
    assert (sample / "counties" / "360199" / "raw" / "2026-10" / "roster" / "花名册.parquet").read_bytes() == b"360199"
    assert not (sample / "counties" / "360099" / "warehouse").exists()
