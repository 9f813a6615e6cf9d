"""The demo county generator: deterministic, valid IDs, every list, every planted problem recorded where it is.

These tests open the generated files with openpyxl / xlrd / csv directly (not fangpin.reading), so they check the
generator's own promises: the truth's Excel row numbers point at the planted cells.
"""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import openpyxl
import polars as pl
import pytest
import xlrd
from stdnum.cn import ric

from fangpin import demo
from fangpin.config import county, registry
from schemas.reasons import IGNORED, NOTE, REJECT

MONTHS = ["2026-08", "2026-09", "2026-10"]
PERSONS = 2000
CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def county_dir(tmp_path_factory) -> tuple[Path, dict]:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    summary = demo.generate(data_dir, months=MONTHS, persons=PERSONS)
    return data_dir, summary


def _truth(data_dir: Path, month: str | None = None) -> pl.DataFrame:
    months = [month] if month else MONTHS
    return pl.concat([pl.read_csv(data_dir / "demo_truth" / f"{m}.csv", infer_schema=False) for m in months])


def _roster(data_dir: Path, month: str) -> pl.DataFrame:
    """The month's roster with canonical column names (header words from the registry)."""
    path = next((data_dir / "raw" / month / "roster").iterdir())
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(path.read_bytes().decode("gb18030"))))
    else:
        sheet = openpyxl.load_workbook(path, read_only=True).active
        rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    header = rows[0]
    body = [list(r) + [""] * (len(header) - len(r)) for r in rows[1:]]
    names = {}
    for canonical, variants in registry().roster_headers.items():
        for i, word in enumerate(header):
            if word in variants and i not in names:
                names[i] = canonical
    return pl.DataFrame({names.get(i, word): [r[i] for r in body] for i, word in enumerate(header)})


def _grid(path: Path, sheet: str) -> list[list]:
    """Every row of one sheet as a clerk sees it (row n of Excel is index n-1); empty cells are None."""
    if path.suffix == ".xlsx":
        return [list(r) for r in openpyxl.load_workbook(path)[sheet].iter_rows(values_only=True)]
    if path.suffix == ".xls":
        book = xlrd.open_workbook(str(path))
        ws = book.sheet_by_name(sheet)
        return [[None if v == "" else v for v in ws.row_values(r)] for r in range(ws.nrows)]
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")
    return [[None if v == "" else v for v in row] for row in csv.reader(io.StringIO(text))]


def _column(grid: list[list], canonical: str) -> tuple[int, int]:
    """(header row index, column index) of a canonical list column, found by the registry's header words."""
    variants = registry().list_headers[canonical]
    for r, row in enumerate(grid):
        for c, cell in enumerate(row):
            if isinstance(cell, str) and cell in variants:
                return r, c
    raise AssertionError(f"no {canonical} header")


def test_same_seed_gives_identical_files_and_rerun_replaces(county_dir, tmp_path):
    data_dir, summary = county_dir
    other = tmp_path / "again"
    for _ in range(2):  # the second run replaces the first run's output in place
        again = demo.generate(other, months=MONTHS, persons=PERSONS)
        assert again == summary
        for month in MONTHS:
            assert (other / "demo_truth" / f"{month}.csv").read_bytes() == (data_dir / "demo_truth" / f"{month}.csv").read_bytes()
            assert _roster(other, month).equals(_roster(data_dir, month))
            mine = sorted(p.relative_to(data_dir).as_posix() for p in (data_dir / "raw" / month).rglob("*") if p.is_file())
            theirs = sorted(p.relative_to(other).as_posix() for p in (other / "raw" / month).rglob("*") if p.is_file())
            assert mine == theirs
            for rel in mine:  # xlsx, xls and csv bytes are stable too
                assert (data_dir / rel).read_bytes() == (other / rel).read_bytes(), rel
    different = demo.generate(tmp_path / "other_seed", months=MONTHS[-1:], persons=PERSONS, seed=7)
    assert (tmp_path / "other_seed" / "demo_truth" / f"{MONTHS[-1]}.csv").read_bytes() != \
        (data_dir / "demo_truth" / f"{MONTHS[-1]}.csv").read_bytes()
    assert different["months"] == MONTHS[-1:]


def test_refuses_a_month_folder_it_did_not_write(tmp_path):
    foreign = tmp_path / "raw" / "2026-10" / "民政局"
    foreign.mkdir(parents=True)
    (foreign / "低保.xlsx").write_bytes(b"real data")
    with pytest.raises(FileExistsError):
        demo.generate(tmp_path, months=["2026-10"], persons=PERSONS)
    assert (foreign / "低保.xlsx").read_bytes() == b"real data"


def test_roster_ids_are_valid_stable_and_agree_with_sex(county_dir):
    data_dir, summary = county_dir
    rosters = {m: _roster(data_dir, m) for m in MONTHS}
    for month, roster in rosters.items():
        ids = roster["id_number"].to_list()
        assert len(ids) == summary["persons_by_month"][month]
        assert all(ric.is_valid(i) for i in ids)
        assert len(set(ids)) == len(ids)
        odd = roster.select(pl.col("id_number").str.slice(16, 1).cast(pl.Int32) % 2 == 1)["id_number"]
        assert ((roster["性别"] == "男") == odd).all()
    first, last = set(rosters[MONTHS[0]]["id_number"]), set(rosters[MONTHS[-1]]["id_number"])
    assert len(first & last) >= 0.98 * len(first)
    home = {code for pair in demo.BIRTHPLACE_LINEAGES[:1] for code in pair}  # most were born in the county
    assert sum(i[:6] in home for i in last) > 0.9 * len(last)


def test_household_sizes_places_and_status_are_sensible(county_dir):
    data_dir, _ = county_dir
    roster = _roster(data_dir, MONTHS[0])  # household fields on the head's row only
    sizes = roster.group_by("household_id").len()["len"]
    assert sizes.min() >= 1 and sizes.max() <= 10
    assert 2.8 <= sizes.mean() <= 4.0
    heads = roster.filter(pl.col("relation") == "户主")
    assert heads["household_id"].n_unique() == heads.height == sizes.len()
    assert (heads["household_size"].cast(pl.Int64).sort() == sizes.cast(pl.Int64).sort()).all()
    assert roster.filter(pl.col("relation") != "户主")["household_type"].eq("").all()
    share_tuopin = (heads["household_type"] == "脱贫户").mean()
    share_monitored = (heads["monitoring_category"] != "").mean()
    assert 0.15 < share_tuopin < 0.35 and 0.005 < share_monitored < 0.08
    assert set(heads.filter(pl.col("monitoring_category") != "")["risk_eliminated"]) <= {"是", "否"}
    code = str(county()["county"]["code"])
    assert roster["division_code"].str.contains(rf"^{code}\d{{6}}$").all()
    townships = roster["township"].unique().to_list()
    assert sum(t.endswith("街道") for t in townships) == 1
    assert all(re.search("(镇|乡|街道)$", t) for t in townships)
    assert roster["village"].str.contains("(村|社区)$").all()
    # every row of the month-2 roster carries the household fields
    assert (_roster(data_dir, MONTHS[1])["household_type"] != "").all()


def test_every_registry_list_appears_and_one_is_missing_once(county_dir):
    _, summary = county_dir
    seen = set().union(*(rows.keys() for rows in summary["list_rows"].values()))
    assert seen == set(registry().lists)
    missing = [(m, k) for m, keys in summary["missing_lists"].items() for k in keys]
    assert len(missing) == 1
    month, key = missing[0]
    assert key not in summary["list_rows"][month]


def test_every_planted_problem_is_in_the_truth_with_a_known_reason(county_dir):
    data_dir, summary = county_dir
    truth = _truth(data_dir)
    assert set(truth["problem"]) == set(demo.PROBLEMS)
    assert set(truth["expected"]) <= {"rejected", "accepted", "note", "file_problem", "ignored"}
    for row in truth.filter(pl.col("expected") != "accepted").iter_rows(named=True):
        table = {"rejected": REJECT, "file_problem": REJECT, "note": NOTE, "ignored": IGNORED}[row["expected"]]
        assert row["reason_code"] in table, row
    required = {"id_float_mangled", "id_bad_checksum", "id_bad_birthdate", "id_bad_length", "id_missing",
                "duplicate_in_list", "disability_cert_mismatch", "township_unknown", "date_unparsed", "total_row",
                "duplicate_file", "file_unrecognised", "unknown_department"}
    assert required <= set(truth["reason_code"])
    assert summary["planted_problems"] == truth.height
    for month in MONTHS:  # row problems every month, each at least once
        assert set(demo.PLANT_RATES) <= set(_truth(data_dir, month)["problem"])


def test_problem_rates_are_low_at_county_scale():
    rng = np.random.default_rng(1)
    rows = sum(demo._list_sizes(rng, 60_000).values())
    assert 0.015 <= rows / 60_000 <= 0.03
    assert sum(demo._plant_counts(rows).values()) / rows < 0.1  # most rows clean


def test_truth_row_numbers_point_at_the_planted_cells(county_dir):
    data_dir, _ = county_dir
    roster_ids = set(_roster(data_dir, MONTHS[-1])["id_number"])
    roster_places = {i[:6] for i in roster_ids}
    for month in MONTHS:
        truth = _truth(data_dir, month).filter(pl.col("row_number").is_not_null())
        for row in truth.iter_rows(named=True):
            grid = _grid(data_dir / row["source_file"], row["sheet"] or "")
            cells = grid[int(row["row_number"]) - 1]
            header_row, id_col = _column(grid, "id_number")
            assert int(row["row_number"]) - 1 > header_row
            id_cell = cells[id_col] if id_col < len(cells) else None
            problem, value = row["problem"], row["value"] or ""
            if problem == "total_row":
                assert next(c for c in cells if c not in (None, "")) in registry().total_row_words
            elif problem == "id_missing":
                assert id_cell is None
            elif problem == "id_float_mangled":
                assert float(id_cell) == float(value) and f"{float(id_cell):.0f}" != row["id_number"]
            elif problem.startswith("id_") or problem == "probable_match":
                assert str(id_cell) == value and value != row["id_number"]
            elif problem in ("township_no_suffix", "township_unknown"):
                assert cells[_column(grid, "township")[1]] == value
            elif problem == "date_unparsed":
                assert cells[_column(grid, "event_date")[1]] == value
            elif problem == "duplicate_in_list":
                earlier = [r[id_col] for r in grid[header_row + 1:int(row["row_number"]) - 1] if r and id_col < len(r)]
                assert id_cell in earlier
            elif problem == "other_county":
                assert ric.is_valid(id_cell) and id_cell[:6] not in roster_places and id_cell not in roster_ids
            elif problem == "disability_cert_mismatch":
                cert = cells[_column(grid, "disability_cert")[1]]
                assert len(cert) == 20 and cert[:18] != id_cell and id_cell == row["id_number"]
            elif problem == "multi_list":
                assert id_cell == row["id_number"] and id_cell in roster_ids | set(_roster(data_dir, month)["id_number"])


def test_probable_match_names_fit_one_roster_person_and_other_rejections_none(county_dir):
    data_dir, _ = county_dir
    for month in MONTHS:
        roster = _roster(data_dir, month)
        truth = _truth(data_dir, month).filter(pl.col("expected") == "rejected", pl.col("problem").str.starts_with("id_")
                                               | (pl.col("problem") == "probable_match"))
        for row in truth.iter_rows(named=True):
            grid = _grid(data_dir / row["source_file"], row["sheet"] or "")
            header_row, name_col = _column(grid, "name")
            cells = grid[int(row["row_number"]) - 1]
            township = cells[_column(grid, "township")[1]]
            same = roster.filter((pl.col("township") == township) & (pl.col("name") == cells[name_col]))
            if row["problem"] == "probable_match":
                assert same["id_number"].to_list() == [row["id_number"]]
            else:
                assert same.height == 0, row


def test_float_mangled_id_is_a_number_cell_in_the_xlsx(county_dir):
    data_dir, _ = county_dir
    truth = _truth(data_dir).filter(pl.col("problem") == "id_float_mangled", pl.col("source_file").str.ends_with(".xlsx"))
    assert truth.height >= 1
    for row in truth.iter_rows(named=True):
        grid = _grid(data_dir / row["source_file"], row["sheet"])
        value = grid[int(row["row_number"]) - 1][_column(grid, "id_number")[1]]
        assert isinstance(value, (int, float)) and not isinstance(value, bool)
        assert int(value) != int(row["id_number"])  # digits lost: not repairable


def test_list_files_carry_every_date_and_amount_form(county_dir):
    data_dir, _ = county_dir
    for month in MONTHS:
        forms, amounts = set(), set()
        for path in (data_dir / "raw" / month).rglob("*"):
            if path.suffix not in (".xlsx", ".xls", ".csv") or path.parent.name == "roster" or path.name.startswith("~$"):
                continue
            sheets = openpyxl.load_workbook(path).sheetnames if path.suffix == ".xlsx" else (
                xlrd.open_workbook(str(path)).sheet_names() if path.suffix == ".xls" else [""])
            for sheet in sheets:
                grid = _grid(path, sheet)
                try:
                    header_row, date_col = _column(grid, "event_date")
                except AssertionError:
                    continue
                for r in grid[header_row + 1:]:
                    value = r[date_col] if r and date_col < len(r) else None
                    if isinstance(value, datetime) or (path.suffix == ".xls" and isinstance(value, float)):
                        forms.add("date_or_serial")
                    elif isinstance(value, int):
                        forms.add("serial")
                    elif isinstance(value, str):
                        for form, pattern in [("iso", r"^\d{4}-\d{2}-\d{2}$"), ("slash", r"^\d{4}/\d{1,2}/\d{1,2}$"),
                                              ("dot", r"^\d{4}\.\d{2}\.\d{2}$"), ("cn", r"^\d{4}年\d{1,2}月\d{1,2}日$"),
                                              ("month", r"^\d{6}$")]:
                            if re.match(pattern, value):
                                forms.add(form)
                try:
                    _, amount_col = _column(grid, "amount")
                except AssertionError:
                    continue
                for r in grid[header_row + 1:]:
                    value = r[amount_col] if r and amount_col < len(r) else None
                    if isinstance(value, str) and re.match(r"^\d{1,3}(,\d{3})+\.\d{2}$", value):
                        amounts.add("comma")
                    elif isinstance(value, str) and value.endswith("元"):
                        amounts.add("yuan")
                    elif value is None and r and any(r):
                        amounts.add("blank")
        assert {"date_or_serial", "iso", "slash", "dot", "cn", "month"} <= forms, (month, forms)
        assert {"comma", "yuan", "blank"} <= amounts, (month, amounts)


def test_file_level_problems_are_real_files(county_dir):
    data_dir, _ = county_dir
    truth = _truth(data_dir).filter(pl.col("row_number").is_null())
    for row in truth.iter_rows(named=True):
        path = data_dir / row["source_file"]
        assert path.is_file(), row
        folder = path.parent.name
        if row["problem"] == "lock_file":
            assert path.name.startswith("~$") and (path.parent / path.name[2:]).is_file()
        elif row["problem"] == "readme_file":
            assert path.suffix == ".txt"
        elif row["problem"] == "duplicate_file":
            original = data_dir / row["value"]
            assert original.read_bytes() == path.read_bytes() and original.as_posix() < path.as_posix()
        elif row["problem"] == "unknown_department":
            assert registry().department_for_folder(folder) is None
        elif row["problem"] == "file_unrecognised":
            dept = registry().department_for_folder(folder)
            sheets = openpyxl.load_workbook(path).sheetnames
            assert not any(s.matches(text) for s in registry().lists_of(dept) for text in [path.stem, *sheets])


def test_files_arrive_by_the_due_day_except_the_late_ones(county_dir):
    data_dir, summary = county_dir
    due = int(county()["submissions"]["due_day"])
    for month in MONTHS:
        late = set(summary["late_files"][month])
        assert 1 <= len(late)
        year, mon = demo._next_month(month)
        for path in (data_dir / "raw" / month).rglob("*"):
            if not path.is_file() or path.parent.name == "roster":
                continue
            arrived = datetime.fromtimestamp(path.stat().st_mtime, CST)
            assert (arrived.year, arrived.month) == (year, mon), path
            rel = path.relative_to(data_dir).as_posix()
            if rel in late:
                assert arrived.day > due
            elif "_重发" not in path.name and not path.name.startswith("~$") and path.suffix != ".txt":
                assert arrived.day <= due, rel


def test_flood_hits_most_households_of_one_village(county_dir):
    data_dir, summary = county_dir
    flood = summary["flood"]
    assert flood["month"] == MONTHS[-1] and flood["households_hit"] >= 0.5 * flood["village_households"] - 1
    spec = registry().lists[flood["list"]]
    folder = next(p for p in (data_dir / "raw" / flood["month"]).iterdir()
                  if registry().department_for_folder(p.name) == spec.department)
    path = next(p for p in folder.iterdir() if p.suffix in (".xlsx", ".xls", ".csv") and not p.name.startswith("~$"))
    sheet = openpyxl.load_workbook(path).sheetnames[0] if path.suffix == ".xlsx" else (
        xlrd.open_workbook(str(path)).sheet_names()[0] if path.suffix == ".xls" else "")
    grid = _grid(path, sheet)
    _, village_col = _column(grid, "village")
    _, detail_col = _column(grid, "detail")
    hit = [r for r in grid if len(r) > village_col and r[village_col] == flood["village"] and r[detail_col] == "洪涝"]
    assert len(hit) >= flood["households_hit"] - 5  # a few of them may carry a planted problem instead


def test_summary_json_matches_the_return_value(county_dir):
    data_dir, summary = county_dir
    assert json.loads((data_dir / "demo_truth" / "summary.json").read_text(encoding="utf-8")) == summary
    assert summary["persons"] == summary["persons_by_month"][MONTHS[-1]]
    assert summary["files_written"] == sum(len(v) for v in summary["files_by_month"].values())
    assert summary["households"] * 2.8 < summary["persons"] < summary["households"] * 4.0
    assert date.fromisoformat(MONTHS[-1] + "-01")  # months are real months
