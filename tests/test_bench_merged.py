"""bench.merged: counties run one by one against the same counties merged into one drop zone (an upper bound on
what batching counties could save)."""
from __future__ import annotations

import collections

import pytest

from bench import merged


def _drop_zone(county, month: str, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = county / "raw" / month / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_merging_keeps_every_file_of_every_county_in_its_department_folder(tmp_path):
    month = "2026-10"
    same_names = {"roster/花名册.parquet": "roster", "civil_affairs/低保.xlsx": "dibao"}
    _drop_zone(tmp_path / "360199", month, {k: v + " 360199" for k, v in same_names.items()})
    _drop_zone(tmp_path / "360299", month, {k: v + " 360299" for k, v in same_names.items()}
               | {"water/饮水.csv": "water 360299"})
    _drop_zone(tmp_path / "360199", "2026-09", {"roster/花名册.parquet": "an earlier month: not merged"})

    target = merged.merge_drop_zones([tmp_path / "360199", tmp_path / "360299"], month, tmp_path / "one")

    copies = {str(p.relative_to(target)): p.read_text(encoding="utf-8") for p in target.rglob("*") if p.is_file()}
    assert copies == {
        "raw/2026-10/roster/360199_花名册.parquet": "roster 360199",
        "raw/2026-10/roster/360299_花名册.parquet": "roster 360299",
        "raw/2026-10/civil_affairs/360199_低保.xlsx": "dibao 360199",
        "raw/2026-10/civil_affairs/360299_低保.xlsx": "dibao 360299",
        "raw/2026-10/water/360299_饮水.csv": "water 360299",
    }


def test_the_comparison_gives_each_steps_medians_and_the_totals_share():
    separate = [(20.0, collections.Counter(roster=4.0, data_quality=2.0)),  # medians, not means: 3.8 not 3.6
                (18.0, collections.Counter(roster=3.0, data_quality=2.2)),
                (19.5, collections.Counter(roster=3.8, data_quality=2.9))]
    together = [(17.0, collections.Counter(roster=4.4, data_quality=1.0)),
                (17.2, collections.Counter(roster=4.2, data_quality=1.2, county_dashboard=0.1))]
    lines = merged.comparison(separate, together, counties=4)
    assert lines[0].split() == ["step", "one", "by", "one", "(4)", "merged", "merged", "-", "one", "by", "one"]
    assert lines[1].split() == ["roster", "3.80", "4.30", "+0.50"]
    assert lines[2].split() == ["data_quality", "2.20", "1.10", "-1.10"]
    assert lines[3].split() == ["county_dashboard", "0.00", "0.05", "+0.05"]  # a step a run lacks counts as none
    assert lines[4].split() == ["all", "(process", "CPU)", "19.50", "17.10", "-2.40", "(-12.3%)"]
    assert lines[5].endswith("0.850, 0.956; median 0.903")  # 17.0 / 20.0, 17.2 / 18.0 (a third unpaired)


def test_a_county_that_did_not_run_whole_stops_the_measurement(monkeypatch, tmp_path):
    from pipelines.one_run import CountyOutcome

    failed = CountyOutcome("360199", failed={"roster": "花名册无法读取"})
    monkeypatch.setattr(merged, "run_counties_here", lambda province, month, counties: [(failed, 1.0)])
    with pytest.raises(RuntimeError, match="360199"):
        merged.run_sample(tmp_path, "2026-10", ["360199"])
