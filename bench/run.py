"""`make bench`: how long the real `fangpin run` takes on a county, and `fangpin province` on a province (its
counties as month x county partitions, one Dagster run each), against the floor.

    python -m bench.run [county] [province] [province-small] [--profile] [--cap-minutes M] [--results PATH]

Why: a county's month (1,000,000 persons, ~100,000 department rows) must run in minutes on the office's machine,
and a province (30,000,000 persons) shows where the design stops scaling. The headline is run/floor: the whole run
through Dagster (a child process, exactly what a clerk starts) divided by the time the fastest readers alone take to
parse the same files (calamine via fastexcel for Excel, DuckDB for CSV and parquet), timed in this process.

Inputs are generated once per scenario, seeded, and cached under bench/cache/<scenario>-<seed>/ keyed by a hash of
the generator's parameters. Stage times come from the step events (STEP_START → STEP_SUCCESS per asset) of every
Dagster run of the child (summed over a province's county runs), grouped into read / validate / link / queue /
marts / workbooks / dashboard; peak memory is the larger of the child's ru_maxrss (os.wait4) and the sampled RSS
summed over its process group (a province runs counties in worker processes side by side); the sampler tells which step
held the most memory (and stops a run past its caps).
Results are printed and written to bench/results.md (one section per scenario, the others kept).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import polars as pl

from fangpin.config import PROJECT_ROOT, registry
from fangpin.province import counties_found
from pipelines.resources import county_dir

BENCH_DIR = PROJECT_ROOT / "bench"
CACHE_DIR = BENCH_DIR / "cache"
RESULTS_PATH = BENCH_DIR / "results.md"
# bump when the generator below changes what it writes (invalidates the cache); one per layout, so that changing the
# province's does not throw away the county's inputs (~19 min to generate on the Xeon, ~50 min on sessions 6-7's AMD)
GENERATOR_VERSION = {"county": 1, "province": 2}  # province 2: a county data dir per county under counties/
EXCEL_MAX_ROWS = 1_048_576  # rows of one xlsx sheet, header included (Excel's limit)
XLS_MAX_ROWS = 65_536  # rows of one .xls (BIFF8) sheet
GB = 1e9
STARTUP = "(startup)"  # the step name of RSS samples taken before the first step started
STAGES = ("read", "validate", "link", "queue", "marts", "workbooks", "dashboard")
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xlsb", ".xls", ".et", ".ods"}
READABLE_SUFFIXES = EXCEL_SUFFIXES | {".csv", ".parquet"}


# ----------------------------------------------------------------------------------------------------------------
# Scenarios
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One benchmark input: how many persons and list rows, in how many counties, and the run's caps."""

    name: str
    persons: int
    list_rows: int  # department rows of the month, all lists together (before planted duplicates)
    counties: int = 1  # >1: a province, generated county by county with a parquet roster per county
    roster_file_rows: int = EXCEL_MAX_ROWS - 1  # data rows per roster xlsx: longer rosters are split into files
    month: str = "2026-10"
    seed: int = 20261123
    cap_seconds: float = 3600.0  # wall-clock cap of the run (killed past it; how far it got is reported)
    memory_cap_gb: float = 20.0  # RSS cap of the run (the machine has 24 GiB; past this it is stopped)
    workers: int = 1  # a province: county runs side by side (`fangpin province --workers`)
    one_run: bool = False  # a province as ONE Dagster run, no run per county (`fangpin province --one-run`)
    inputs_of: str = ""  # another scenario whose generated inputs (and cache folder) this one uses
    # issue 5's targets on a 2-core, 24 GB machine; the results say which are met and, when one is not, where the
    # time went
    target_ratio: float | None = None  # run/floor at most this
    target_seconds: float | None = None  # wall time at most this
    target_peak_gb: float = 8.0

    def params(self) -> dict:
        """What the generated files depend on (the caps do not)."""
        return {"generator": GENERATOR_VERSION[self.layout], "name": self.inputs_name, "persons": self.persons,
                "list_rows": self.list_rows, "counties": self.counties, "month": self.month, "seed": self.seed,
                "roster_file_rows": self.roster_file_rows}

    @property
    def inputs_name(self) -> str:
        return self.inputs_of or self.name

    @property
    def layout(self) -> str:
        """"county": one drop zone (`fangpin run`); "province": counties/<code>/ (`fangpin province`)."""
        return "province" if self.counties > 1 else "county"

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.params(), sort_keys=True).encode()).hexdigest()[:12]


SCENARIOS = {
    # 500,000 rows per roster file: one 1,000,001-row sheet is legal for Excel but unzips to ~703 MB, which
    # config/county.yaml intake_limits.max_unzipped_mb (500) refuses as file_too_large (bench/FINDINGS.md, the
    # first findings).
    "county": Scenario("county", persons=1_000_000, list_rows=100_000, roster_file_rows=500_000, target_ratio=2.0),
    "province": Scenario("province", persons=30_000_000, list_rows=3_000_000, counties=100, cap_seconds=1200.0,
                         workers=2, target_seconds=600.0),
    # the same province as one run (issue 5: at most 3 minutes): every county in one Dagster run
    "province-one-run": Scenario("province-one-run", persons=30_000_000, list_rows=3_000_000, counties=100,
                                 cap_seconds=1200.0, workers=2, one_run=True, inputs_of="province",
                                 target_seconds=180.0),
    "smoke": Scenario("smoke", persons=3_000, list_rows=300, cap_seconds=300.0,  # tests/test_bench_smoke.py
                      target_ratio=2.0),
    # the province's layout and command at a size that runs in minutes (validating the province path)
    "province-small": Scenario("province-small", persons=100_000, list_rows=10_000, counties=5, cap_seconds=900.0,
                               workers=2),
    "province-small-one-run": Scenario("province-small-one-run", persons=100_000, list_rows=10_000, counties=5,
                                       cap_seconds=900.0, workers=2, one_run=True, inputs_of="province-small"),
}


def stage_steps() -> dict[str, set[str]]:
    """Which Dagster steps (assets, checks) make up each stage named in the issue; unknown steps go to "other"."""
    lists = {spec.asset_name for spec in registry().lists.values()}
    return {
        "read": {"drop_zone", "roster", "roster_places"},  # roster also validates the roster and builds households
        "validate": lists | {"department_lists", "warehouse_month", "data_quality", "expectation_suites"},
        "link": {"person_links"},
        "queue": {"warning_queue"},
        "marts": {"submissions", "township_risk"},
        "workbooks": {"township_workbooks", "township_feedback"},
        "dashboard": {"county_dashboard"},
        "province marts": {"province_risk"},  # the province's own run, after its counties (not one of STAGES)
    }


def stage_of(step: str, stages: dict[str, set[str]] | None = None) -> str:
    for stage, steps in (stages or stage_steps()).items():
        if step in steps:
            return stage
    return "other"


# ----------------------------------------------------------------------------------------------------------------
# Generating the inputs (cached)
# ----------------------------------------------------------------------------------------------------------------
def scenario_dir(scenario: Scenario, cache: Path) -> Path:
    return Path(cache) / f"{scenario.inputs_name}-{scenario.seed}"


def ensure_data(scenario: Scenario, cache: Path = CACHE_DIR) -> tuple[Path, dict]:
    """(data dir, generation facts): the cached inputs when their key matches, else generated afresh."""
    root = scenario_dir(scenario, cache)
    marker = root / "generated.json"
    if marker.exists():
        info = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("key") == scenario.key():
            _say(f"{scenario.name}: inputs cached in {root} (key {scenario.key()})")
            return root / "data", info
    if root.exists():
        shutil.rmtree(root)
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    _say(f"{scenario.name}: generating {scenario.persons:,} persons, ~{scenario.list_rows:,} list rows → {root}")
    started = time.perf_counter()
    generate = generate_province if scenario.counties > 1 else generate_county
    counts = generate(data_dir, scenario)
    info = {"key": scenario.key(), "params": scenario.params(),
            "generated_seconds": round(time.perf_counter() - started, 1), **counts}
    marker.write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    return data_dir, info


def list_factor(scenario: Scenario) -> float:
    """How much larger than the demo's own rates the lists are, so that they add up to `list_rows`."""
    from fangpin import demo

    natural = sum(demo.profile_of(key).rate for key in registry().lists) * scenario.persons
    return scenario.list_rows / natural if natural else 1.0


@contextmanager
def _patched(module, name: str, replacement) -> Iterator[None]:
    """Swap one function of a module for the duration (the demo generator has no knob for list sizes)."""
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def _scaled_sizes(original: Callable, factor: float) -> Callable:
    """demo._list_sizes as if the county had `factor` times the persons: the same mix, more rows."""
    return lambda rng, persons: original(rng, int(round(persons * factor)))


def _split_writer(original: Callable, per_file: int = EXCEL_MAX_ROWS - 1) -> Callable:
    """demo.write_fast_xlsx, splitting a frame too long for one file into files of at most `per_file` data rows
    (never more than Excel's limit), as the national system's export does (name（2）.xlsx, name（3）.xlsx, …)."""
    per_file = min(per_file, EXCEL_MAX_ROWS - 1)  # one row is the header

    def write(path: Path, frame: pl.DataFrame, sheet: str) -> None:
        for part, offset in enumerate(range(0, max(frame.height, 1), per_file), start=1):
            target = path if part == 1 else path.with_name(f"{path.stem}（{part}）{path.suffix}")
            original(target, frame.slice(offset, per_file), sheet)

    return write


def generate_county(data_dir: Path, scenario: Scenario) -> dict:
    """The demo county (fangpin.demo.generate, every planted mess included) at the scenario's size."""
    from fangpin import demo

    factor = list_factor(scenario)
    with _patched(demo, "_list_sizes", _scaled_sizes(demo._list_sizes, factor)), \
            _patched(demo, "write_fast_xlsx", _split_writer(demo.write_fast_xlsx, scenario.roster_file_rows)):
        summary = demo.generate(data_dir, months=[scenario.month], persons=scenario.persons, seed=scenario.seed)
    roster_files = -(-summary["persons"] // min(scenario.roster_file_rows, EXCEL_MAX_ROWS - 1))
    return {"persons": summary["persons"], "households": summary["households"],
            "list_rows": sum(summary["list_rows"][scenario.month].values()), "list_factor": round(factor, 3),
            "roster_format": f"{roster_files} xlsx file{'s' if roster_files > 1 else ''}"}


def _province_ids(persons: pl.DataFrame, county_index: int) -> pl.DataFrame:
    """IDs unique across the province: each county's birthplace codes become codes of its own (36 ii nn)."""
    from fangpin import demo

    ids = pl.col("id_number")
    codes = persons.select(ids.str.slice(0, 6).unique().sort())["id_number"].to_list()
    if len(codes) > 100:
        raise ValueError("bench: more birthplace codes than a county's code space")
    mapping = {code: f"36{county_index:02d}{n:02d}" for n, code in enumerate(codes)}
    body = persons.select(ids.str.slice(0, 6).replace_strict(mapping) + ids.str.slice(6, 11))["id_number"]
    fixed = body + pl.Series(demo.check_chars(body.to_list()).astype(str))
    return persons.with_columns(fixed.alias("id_number"))


def county_code(index: int) -> str:
    """The province's `index`-th county: a distinct 6-digit code (36 ii 99), also the folder under counties/ and the
    prefix of its division codes."""
    return f"36{index:02d}99"


def _county_persons(rng: np.random.Generator, index: int, persons: int, month: str) -> pl.DataFrame:
    """One county of the province, as demo.month_persons gives it (townships distinct within the county; the same
    names recur in other counties, as they do in a real province: (county, township) is the key)."""
    from fangpin import demo
    from fangpin.config import monitoring_line

    end = demo._month_bounds(month)[1]
    line = monitoring_line(end.year)
    places = demo.build_places(rng, persons, county_code(index))
    people, households = demo.build_population(rng, places, persons, end, line)
    return _province_ids(demo.month_persons(people, households, month, line), index)


def generate_province(data_dir: Path, scenario: Scenario) -> dict:
    """A province as `fangpin province` reads it, county by county (never all persons in memory): for each county
    `counties/<code>/raw/<month>/` with a parquet roster under roster/ and the county's department lists in their
    department folders (xlsx, csv, or xls for the two smallest), as a county's own drop zone."""
    from fangpin import demo

    factor = list_factor(scenario)
    per_county = scenario.persons // scenario.counties
    households = rows = files = 0
    for index in range(scenario.counties):
        started = time.perf_counter()
        rng = np.random.default_rng([scenario.seed, index])
        persons = _county_persons(rng, index, per_county, scenario.month)
        households += persons["hh"].n_unique()
        month_dir = county_dir(data_dir, county_code(index)) / "raw" / scenario.month
        (month_dir / "roster").mkdir(parents=True)
        demo.roster_frame(persons, rng, head_only=False).write_parquet(month_dir / "roster" / "花名册.parquet")
        lists = {}
        for key in registry().lists:
            wanted = max(1, int(round(demo.profile_of(key).rate * per_county * factor)))
            lists[key] = demo.make_rows(rng, demo.sample_persons(rng, persons, key, wanted), key, scenario.month)
        county_rows, county_files = write_lists(month_dir, lists, rng, scenario.month)
        rows, files = rows + county_rows, files + county_files
        _say(f"  county {index + 1}/{scenario.counties} ({county_code(index)}): {persons.height:,} persons, "
             f"{county_rows:,} list rows ({time.perf_counter() - started:.1f} s)")
        del persons, lists
    return {"persons": per_county * scenario.counties, "households": households, "list_rows": rows,
            "list_files": files, "list_factor": round(factor, 3),
            "roster_format": "one parquet file per county"}


def _list_sheet(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """A list's rows under the registry's first header word for each column (a clean provincial export)."""
    from fangpin import demo

    profile = demo.profile_of(key)
    headers = registry().list_headers
    columns = ["name", "id_number", "township", "village", "detail", "event_date"]
    columns += ["amount"] if profile.amount_headers else []
    columns += ["disability_cert"] if profile.disability else []
    return frame.select(
        (pl.col(c).cast(pl.String) if c == "event_date" else pl.col(c)).alias((headers.get(c) or (c,))[0])
        for c in columns
    )


def _write_xls(path: Path, frame: pl.DataFrame) -> None:
    """A small list as .xls (BIFF8), the format older county systems still export."""
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("Sheet1")
    for c, name in enumerate(frame.columns):
        sheet.write(0, c, name)
    for r, row in enumerate(frame.iter_rows(), start=1):  # generator only, a few thousand rows
        for c, value in enumerate(row):
            if value is not None:
                sheet.write(r, c, value)
    book.save(str(path))


def write_lists(month_dir: Path, frames: dict[str, pl.DataFrame], rng: np.random.Generator,
                month: str) -> tuple[int, int]:
    """Each list of the registry as one file in its department's folder (the two smallest as xls, every third csv,
    the rest xlsx); (rows, files)."""
    from fangpin import demo

    reg = registry()
    small = [k for k in sorted(frames, key=lambda k: frames[k].height) if frames[k].height < XLS_MAX_ROWS - 1][:2]
    files = 0
    for index, key in enumerate(sorted(frames)):
        spec = reg.lists[key]
        fmt = "xls" if key in small else ("csv" if index % 3 == 0 else "xlsx")
        folder = month_dir / spec.department
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{demo._file_name(rng, spec, month)}.{fmt}"
        sheet = _list_sheet(frames[key], key)
        if fmt == "xls":
            _write_xls(path, sheet)
        elif fmt == "csv":
            sheet.write_csv(path)
        else:
            _split_writer(demo.write_fast_xlsx)(path, sheet, "Sheet1")
        files += 1
    return sum(f.height for f in frames.values()), files


# ----------------------------------------------------------------------------------------------------------------
# The floor: the fastest readers alone, on the same files
# ----------------------------------------------------------------------------------------------------------------
def drop_zones(data_dir: Path, month: str) -> list[Path]:
    """The month's drop zone of a county data dir, or of every county of a province dir (counties/*/raw/<month>)."""
    dirs = county_dirs(data_dir)
    return [d / "raw" / month for d in dirs if len(dirs) == 1 or (d / "raw" / month).is_dir()]


def input_files(data_dir: Path, month: str) -> list[Path]:
    """The files a run parses: spreadsheets, CSV and parquet of the month, without lock files and byte-identical
    copies within one drop zone (fangpin reads neither; each county reads its own files)."""
    files = []
    for zone in drop_zones(data_dir, month):
        seen: set[str] = set()
        for path in sorted(zone.rglob("*"), key=lambda p: p.as_posix()):
            if not path.is_file() or path.name.startswith(("~$", ".")) or path.suffix.lower() not in READABLE_SUFFIXES:
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                files.append(path)
    return files


def parse_excel(path: Path) -> int:
    """Every sheet with calamine (fastexcel), eagerly into Arrow; rows parsed (0 for what it cannot open)."""
    import fastexcel

    try:
        reader = fastexcel.read_excel(path)
    except Exception:  # a CSV or HTML page under an Excel name: fangpin falls back; the floor just skips it
        return 0
    rows = 0
    for index in range(len(reader.sheet_names)):
        try:
            rows += reader.load_sheet_eager(index, header_row=None).num_rows
        except Exception:  # an empty sheet
            continue
    return rows


def _parse_csv(path: Path, con) -> int:
    """DuckDB's CSV reader, every cell as text; GB18030 files are decoded first (DuckDB reads UTF-8 only)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        source = str(path)
    except UnicodeDecodeError:
        source = io.BytesIO(data.decode("gb18030").encode("utf-8"))
    options = dict(header=False, all_varchar=True, null_padding=True, strict_mode=False, quotechar='"', escapechar='"')
    try:
        return con.read_csv(source, **options).to_arrow_table().num_rows
    except Exception:  # quoted line breaks with ragged rows need the single-threaded scanner
        if isinstance(source, io.BytesIO):
            source.seek(0)
        return con.read_csv(source, parallel=False, **options).to_arrow_table().num_rows


def _reader_of(path: Path) -> str:
    suffix = path.suffix.lower()
    return "csv (duckdb)" if suffix == ".csv" else "parquet (duckdb)" if suffix == ".parquet" \
        else f"{suffix[1:]} (calamine)"


def _parse_file(path: Path, con) -> int:
    """Rows the fastest reader parses from one file (`con`: a DuckDB connection, or a cursor of one per thread)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _parse_csv(path, con)
    if suffix == ".parquet":
        return con.read_parquet(str(path)).to_arrow_table().num_rows
    return parse_excel(path)


def floor(files: list[Path]) -> dict:
    """Seconds and rows the fastest readers take on these files, per reader, one file after the other; files are
    read once beforehand so the page cache is warm for the floor and the run alike. `side_by_side`: the same
    parse with one file per core at a time (see `floor_side_by_side`)."""
    import duckdb

    for path in files:
        path.read_bytes()
    con = duckdb.connect()
    seconds: dict[str, float] = {}
    rows, cpu = 0, time.process_time()
    for path in files:
        started = time.perf_counter()
        rows += _parse_file(path, con)
        kind = _reader_of(path)
        seconds[kind] = seconds.get(kind, 0.0) + time.perf_counter() - started
    cpu = time.process_time() - cpu
    side_seconds, side_rows = floor_side_by_side(files, con, os.cpu_count() or 1)
    con.close()
    return {"seconds": sum(seconds.values()), "cpu": cpu, "by_reader": seconds, "rows": rows,
            "files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "side_by_side": {"threads": os.cpu_count() or 1, "seconds": side_seconds, "rows": side_rows}}


def floor_side_by_side(files: list[Path], con, threads: int) -> tuple[float, int]:
    """Seconds the same readers take parsing `threads` files at a time, largest first (calamine and DuckDB parse
    outside the GIL). The floor proper is one file after the other; a run may use every core (a county's roster
    files are parsed two at once), which flatters its run/floor, so the results give this figure too."""
    from concurrent.futures import ThreadPoolExecutor

    def parse(path: Path) -> int:
        cursor = con.cursor()  # one DuckDB cursor per file: a connection is not shared between threads
        try:
            return _parse_file(path, cursor)
        finally:
            cursor.close()

    largest_first = sorted(files, key=lambda p: -p.stat().st_size)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        rows = sum(pool.map(parse, largest_first))
    return time.perf_counter() - started, rows


# ----------------------------------------------------------------------------------------------------------------
# The run: `fangpin run` as a child process, watched
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    """What the child did: exit code, wall seconds, peak RSS, which step was running when, and why it was stopped."""

    returncode: int | None
    wall: float
    peak_rss: int  # bytes, ru_maxrss of the child
    spawned: float  # epoch seconds just before the child started (same clock as Dagster's event timestamps)
    cpu: float = 0.0  # user + system seconds of the child (less sensitive than wall time to a busy machine)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average when the run started and ended
    stopped: str | None = None  # "time cap" | "memory cap" | None
    last_step: str = ""
    last_run: str = ""  # the county whose run was going on last (province), "" for a county's one run
    step_peak_rss: dict[str, int] = field(default_factory=dict)  # step -> highest sampled RSS while it ran
    stdout: Path | None = None
    stderr: Path | None = None
    cpu_samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, CPU seconds), 0.1 s apart


PROFILE_SNIPPET = (
    "import cProfile, os, sys\n"
    "from fangpin import cli\n"
    "profile = cProfile.Profile()\n"
    "code = profile.runcall(cli.main, sys.argv[2:])\n"
    "profile.dump_stats(sys.argv[1])\n"
    "sys.stdout.flush(); sys.stderr.flush()\n"
    "os._exit(code)\n"  # as cli.entry: skip DuckDB's noisy interpreter teardown
)


def fangpin_command(month: str, data_dir: Path, profile_to: Path | None = None, command: str = "run",
                    workers: int = 1, one_run: bool = False, code: Path = PROJECT_ROOT) -> list[str]:
    """The clerk's command (the console script of this virtualenv), or the same under cProfile; `command` is `run`
    (a county's month) or `province` (every county's month, then the provincial marts). `code`: another checkout
    of fangpin (bench/ab.py's worktrees), run as `python -m fangpin.cli` from its folder, since the console script
    imports this checkout's."""
    args = [command, "--month", month, "--data-dir", str(data_dir)]
    args += ["--workers", str(workers)] if command == "province" else []
    args += ["--one-run"] if one_run else []
    if profile_to is not None:
        return [sys.executable, "-c", PROFILE_SNIPPET, str(profile_to), *args]
    if Path(code) != PROJECT_ROOT:
        return [sys.executable, "-m", "fangpin.cli", *args]
    script = Path(sys.executable).with_name("fangpin")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "fangpin.cli", *args]


def _rss(pid: int) -> int:
    """Resident set size of a process in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _group_rss(group: int) -> int:
    """RSS summed over every process of the run's process group: `fangpin province --workers N` runs its counties
    in child processes side by side, and the machine holds all of them at once."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group:  # fields after the command name: state, ppid, pgrp, ...
            total += _rss(int(stat.parent.name))
    return total


class _StepWatcher:
    """Follows the progress lines (`▶ step`) `fangpin run` prints to stderr, to name the step running now, and the
    `fangpin: <job> <partition> ←` line each Dagster run starts with, to name the county (`fangpin province`)."""

    RUN_LINE = re.compile(r"^fangpin: (\S+) (\S+) ←")

    def __init__(self, path: Path, month: str = ""):
        self.path, self.offset, self.rest, self.step, self.month = path, 0, b"", "", month
        self.run, self.runs = "", 0

    def current(self) -> str:
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        self.offset += len(chunk)
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            text = line.decode("utf-8", errors="replace")
            if text.startswith("▶ "):
                self.step = text[2:].strip()
            elif match := self.RUN_LINE.match(text):
                job, partition = match.groups()
                self.run = "|".join(p for p in partition.split("|") if p != self.month) or job
                self.runs += 1
        return self.step

    def where(self) -> str:
        """The step running now, with its county when there are several runs."""
        return f"{self.run} {self.step}".strip() if self.runs > 1 else self.step


def _cpu_seconds(pid: int) -> float | None:
    """User + system seconds of a running process (every thread), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_fangpin(data_dir: Path, month: str, work: Path, cap_seconds: float, memory_cap_gb: float,
                profile_to: Path | None = None, command: str = "run", workers: int = 1,
                one_run: bool = False, code: Path = PROJECT_ROOT) -> RunOutcome:
    """Run one month in a child with a fresh Dagster instance under `work`, from an empty warehouse (and read
    cache) in the data dir and in every county dir of a province; stop it past the caps. `code`: the checkout of
    fangpin to run (`fangpin_command`)."""
    home = work / "dagster_home"
    data_dirs = {Path(data_dir), *county_dirs(data_dir)}
    for stale in (home, *(d / name for d in data_dirs for name in ("warehouse", "exports", "cache"))):
        shutil.rmtree(stale, ignore_errors=True)
    home.mkdir(parents=True)
    env = {**os.environ, "DAGSTER_HOME": str(home), "FANGPIN_DATA_DIR": str(data_dir),
           "DAGSTER_DISABLE_TELEMETRY": "1"}
    out_path, err_path = work / "run.stdout.log", work / "run.stderr.log"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        spawned, started, load_before = time.time(), time.perf_counter(), os.getloadavg()[0]
        child = subprocess.Popen(fangpin_command(month, data_dir, profile_to, command, workers, one_run, code),
                                 stdout=out, stderr=err, env=env, cwd=code, start_new_session=True)
        watcher, peaks, stopped, cpu_samples = _StepWatcher(err_path, month), {}, None, []
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            step, rss = watcher.current(), _group_rss(child.pid)
            peaks[step] = max(peaks.get(step, 0), rss)
            elapsed = time.perf_counter() - started
            cpu = _cpu_seconds(child.pid)
            if cpu is not None:
                cpu_samples.append((elapsed, cpu))
            if stopped is None and (elapsed > cap_seconds or rss > memory_cap_gb * GB):
                stopped = "time cap" if elapsed > cap_seconds else "memory cap"
                _say(f"  stopping the run ({stopped}) during {watcher.where() or 'startup'} after {elapsed:.0f} s, RSS {rss / GB:.1f} GB")
                os.killpg(child.pid, signal.SIGKILL)
            time.sleep(0.1)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    sampled = max(peaks.values(), default=0)  # several processes at once: their sum, not the largest one
    return RunOutcome(child.returncode, wall, max(usage.ru_maxrss * 1024, sampled), spawned, usage.ru_utime + usage.ru_stime,
                      (load_before, os.getloadavg()[0]), stopped, watcher.current(),
                      watcher.run if watcher.runs > 1 else "",
                      {(k or STARTUP): v for k, v in peaks.items()}, out_path, err_path, cpu_samples)


# ----------------------------------------------------------------------------------------------------------------
# Stage times from the Dagster event log
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class StepTime:
    """One Dagster step: when it started (seconds after the child was spawned), how long, and how much of that was
    the filesystem IO manager unpickling inputs (load) or pickling the output (store)."""

    step: str
    stage: str
    start: float
    seconds: float
    load: float = 0.0
    store: float = 0.0
    status: str = "success"
    run: str = ""  # the county of the run it belongs to (province), "" for a county's one run


@dataclass
class RunTime:
    """One Dagster run of the child (a county's month, the provincial marts, or a county scenario's one run), in
    seconds after the child was spawned: its first event, PIPELINE_START, its end event (None when stopped)."""

    label: str  # the county; the job name for the provincial marts; "" for `fangpin run`
    job: str
    first_event: float
    start: float
    end: float | None
    steps: list[StepTime]

    @property
    def last_step_end(self) -> float:
        return max((s.start + s.seconds for s in self.steps), default=self.start)

    @property
    def seconds(self) -> float:
        """First event to the end event (to the end of its last step when it did not end)."""
        return (self.end if self.end is not None else self.last_step_end) - self.first_event

    @property
    def overhead(self) -> float:
        """Dagster's own time in this run: everything but its steps."""
        return self.seconds - sum(s.seconds for s in self.steps)

    @property
    def ok(self) -> bool:
        return self.end is not None and bool(self.steps) and all(s.status == "success" for s in self.steps)


def read_runs(home: Path) -> list[tuple[str, str, list]]:
    """(label, job, event records) of every run in this (fresh) Dagster instance, in the order they ran: one for
    `fangpin run`, one per county then the provincial marts for `fangpin province`."""
    import dagster as dg

    found = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in instance.get_runs():
            records = list(instance.all_logs(run.run_id))
            county = run.tags.get("dagster/partition/county", "")
            found.append((county or ("" if run.job_name == "monthly_run" else run.job_name), run.job_name, records))
    return sorted(found, key=lambda r: r[2][0].timestamp if r[2] else float("inf"))


def run_times(runs: list[tuple[str, str, list]], spawned: float, ended: float) -> list[RunTime]:
    """Each run's steps (step_times) and marks; a run without PIPELINE_START starts at its first step."""
    timed = []
    for label, job, records in runs:
        steps, marks = step_times(records, spawned, ended)
        for step in steps:
            step.run = label
        start = marks.get("run_start", steps[0].start if steps else marks.get("first_event", ended))
        timed.append(RunTime(label, job, min(marks.get("first_event", start), start), start, marks.get("run_end"),
                             steps))
    return timed


def step_times(records: list, spawned: float, ended: float) -> tuple[list[StepTime], dict[str, float]]:
    """Steps in start order, and run marks (seconds after spawn): first event, run start, run end."""
    stages = stage_steps()
    open_steps: dict[str, dict] = {}
    steps: list[StepTime] = []
    marks: dict[str, float] = {}
    for record in records:
        event, at = record.dagster_event, record.timestamp - spawned
        kind = event.event_type_value if event else None
        marks.setdefault("first_event", at)
        if kind == "PIPELINE_START":
            marks["run_start"] = at
        elif kind in ("PIPELINE_SUCCESS", "PIPELINE_FAILURE"):
            marks["run_end"] = at
        step = record.step_key
        if kind == "STEP_START":
            open_steps[step] = {"start": at, "prev": at, "output": None, "load": 0.0, "store": 0.0}
            continue
        state = open_steps.get(step)
        if state is None:
            continue
        if kind == "LOADED_INPUT":
            state["load"] += at - state["prev"]
        elif kind == "STEP_OUTPUT":
            state["output"] = at
        elif kind == "HANDLED_OUTPUT" and state["output"] is not None:
            state["store"] += at - state["output"]
        state["prev"] = at
        if kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            state = open_steps.pop(step)
            steps.append(StepTime(step, stage_of(step, stages), state["start"], at - state["start"], state["load"],
                                  state["store"], "success" if kind == "STEP_SUCCESS" else "failure"))
    for step, state in open_steps.items():  # still running when the child was stopped
        steps.append(StepTime(step, stage_of(step, stages), state["start"], ended - state["start"], state["load"],
                              state["store"], "stopped"))
    return sorted(steps, key=lambda s: s.start), marks


# ----------------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------------
def machine() -> dict:
    """Cores, memory and versions: a run/floor ratio means little without them."""
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    versions = {}
    for package in ("polars", "duckdb", "fastexcel", "dagster", "pandera"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = "?"
    return {"cores": os.cpu_count(), "memory_gb": int(total.group(1)) * 1024 / GB if total else 0.0,
            "cpu": model.group(1).strip() if model else platform.processor(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}", "versions": versions}


@dataclass
class BenchResult:
    scenario: Scenario
    info: dict
    floor: dict
    run: RunOutcome
    steps: list[StepTime]
    marks: dict[str, float]
    rows: dict[str, int]
    machine: dict
    profile: str = ""
    runs: list[RunTime] = field(default_factory=list)  # every Dagster run of the child, in order
    repeats: list[tuple[float, float]] = field(default_factory=list)  # (run, floor) seconds of every repeat, in order

    @property
    def incomplete(self) -> str:
        """Why a run that exited 0 still did not do the whole job (a roster refused, lists lost), or ""."""
        read, made = self.rows.get("persons", 0), self.info.get("persons", 0)
        if made and read < 0.99 * made:
            return f"roster {read:,} of {made:,} rows read"
        listed, sent = self.rows.get("list_rows", 0), self.info.get("list_rows", 0)
        if sent and listed < 0.95 * sent:
            return f"lists {listed:,} of {sent:,} rows read"
        return ""

    @property
    def ok(self) -> bool:
        return self.run.returncode == 0 and self.run.stopped is None and not self.incomplete

    @property
    def ratio(self) -> float:
        return self.run.wall / self.floor["seconds"] if self.floor["seconds"] else float("inf")


def _secs(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def headline(result: BenchResult) -> str:
    """The one line the issue asks for, e.g. `county: 1,000,000 persons, run 41.2 s, floor 30.1 s, run/floor 1.37,
    peak 3.1 GB`; a run that failed or was stopped says where."""
    s, run = result.scenario, result.run
    floor_s = _secs(result.floor["seconds"])
    peak = f"peak {run.peak_rss / GB:.1f} GB"
    if result.ok:
        return (f"{s.name}: {result.rows['persons']:,} persons, run {_secs(run.wall)} s, floor {floor_s} s, "
                f"run/floor {result.ratio:.2f}, {peak}")
    if run.returncode == 0 and not run.stopped:
        return (f"{s.name}: {result.info.get('persons', 0):,} persons, run INCOMPLETE ({result.incomplete}), "
                f"run {_secs(run.wall)} s, floor {floor_s} s, run/floor {result.ratio:.2f}, {peak}")
    why = run.stopped or f"exit {run.returncode}"
    where = f"{run.last_run} {run.last_step}".strip() or "startup"
    counties = province_progress(result)
    if counties:
        return (f"{s.name}: {result.info.get('persons', 0):,} persons, run {'STOPPED' if run.stopped else 'FAILED'} "
                f"({why}) in {where} after {_secs(run.wall)} s with {counties['done']}/{counties['counties']} counties "
                f"done, projected {counties['projected']:,.0f} s (median {_secs(counties['median'])} s per county x "
                f"{counties['counties']}{f' / {s.workers} workers' if s.workers > 1 else ''}), floor {floor_s} s, "
                f"run/floor > {result.ratio:.2f}, {peak}")
    return (f"{s.name}: {result.info.get('persons', 0):,} persons, run FAILED ({why}) in {where} "
            f"after {_secs(run.wall)} s, floor {floor_s} s, run/floor > {result.ratio:.2f}, {peak}")


def target_lines(result: BenchResult) -> list[str]:
    """The scenario's targets, each met or missed; when one is missed, the stages (a province: the steps of a
    county run) that took the most time, so that the results themselves say where to look."""
    s, run = result.scenario, result.run
    targets = []
    if s.target_ratio:
        targets.append((f"run/floor at most {s.target_ratio:g}", result.ok and result.ratio <= s.target_ratio,
                        f"{result.ratio:.2f}"))
    if s.target_seconds:
        targets.append((f"wall time at most {s.target_seconds:,.0f} s", result.ok and run.wall <= s.target_seconds,
                        f"{_secs(run.wall)} s"))
    targets.append((f"peak RSS at most {s.target_peak_gb:g} GB", run.peak_rss <= s.target_peak_gb * GB,
                    f"{run.peak_rss / GB:.2f} GB"))
    lines = ["- targets: " + "; ".join(f"{name}: {'met' if met else '**missed**'} ({value})"
                                       for name, met, value in targets)
]
    if all(met for _, met, _ in targets):
        return lines
    bound = _cpu_bound(result)
    return lines + [_where_the_time_went(result)] + ([bound] if bound else [])


def _cpu_bound(result: BenchResult) -> str | None:
    """What the run's CPU allows on this machine: its CPU seconds spread over every core. A time target missed even
    at that wall time cannot be met by overlap (keeping every core busy), only by less CPU; one within it can."""
    cores, cpu, scenario = result.machine.get("cores"), result.run.cpu, result.scenario
    if not cores or not cpu or not result.ok:
        return None
    bound, floor = cpu / cores, result.floor["seconds"]
    ratio = bound / floor if floor else float("inf")
    # each target as the wall time it allows (a ratio: the floor times it), out of reach when the bound exceeds it
    walls = (("run/floor", scenario.target_ratio * floor if scenario.target_ratio else None),
             ("wall time", scenario.target_seconds))
    out_of_reach = {name: wall for name, wall in walls if wall is not None and bound > wall}
    verdict = (f"so {' and '.join(out_of_reach)} cannot meet the target by overlap alone: it needs less CPU"
               + _cpu_allowed(result, cores, min(out_of_reach.values()))
               if out_of_reach else "so keeping every core busy would be enough")
    return (f"- the CPU bound: the run's {_secs(cpu)} CPU-s over {cores} cores is {_secs(bound)} s even with every core "
            f"busy all run long (run/floor {ratio:.2f}; a core stood idle for {_secs(max(result.run.wall - bound, 0))} s "
            f"of the {_secs(result.run.wall)} s), {verdict}")


def _cpu_allowed(result: BenchResult, cores: int, wall: float) -> str:
    """How much CPU a missed target's wall time (`wall`, the tightest) leaves on these cores, and how far below this
    run's that is (a province: also per county), so a missed target says how much cheaper the run must get, not only
    that it must; an upper bound, as a real run also waits on its start and its last county."""
    scenario, cpu = result.scenario, result.run.cpu
    if wall <= 0:  # no floor measured: nothing to say
        return ""
    allowed = wall * cores
    text = (f": at most {_secs(allowed)} CPU-s fit {_secs(wall)} s on {cores} cores, "
            f"{1 - allowed / cpu:.0%} below this run's {_secs(cpu)}")
    if scenario.counties > 1:
        text += f" ({_secs(allowed / scenario.counties)} CPU-s a county against {_secs(cpu / scenario.counties)})"
    return text


def _where_the_time_went(result: BenchResult) -> str:
    """The three largest stages with their slowest step (a province: the steps of a county run, by median)."""
    if result.scenario.layout == "province":
        by_step: dict[str, list[float]] = {}
        for step in result.steps:
            if step.stage != "province marts":
                by_step.setdefault(step.step, []).append(step.seconds)
        largest = sorted(((statistics.median(v), k) for k, v in by_step.items()), reverse=True)[:3]
        progress = province_progress(result)
        dagster = "" if result.scenario.one_run else f" and Dagster's run setup {_secs(progress['setup'])} s"
        return (f"- where the time went: a county {'in the one run' if result.scenario.one_run else 'run'} takes "
                f"{_secs(progress['median'])} s (median), of which "
                + ", ".join(f"{step} {_secs(seconds)} s" for seconds, step in largest)
                + f"{dagster}; {result.scenario.counties} counties, "
                f"{result.scenario.workers} at a time (see bench/README.md for why each costs what it does)")
    parts = []
    rows = sorted((row for row in stage_rows(result) if row[1] > 0), key=lambda row: -row[1])[:3]
    for name, seconds, *_ in rows:
        mine = [step for step in result.steps if step.stage == name]
        slowest = max(mine, key=lambda step: step.seconds, default=None)
        detail = f"{seconds / result.run.wall:.0%}" + (f", {slowest.step} {_secs(slowest.seconds)} s" if slowest else "")
        if name == "read" and result.floor["seconds"]:
            detail += f", {seconds / result.floor['seconds']:.1f} x the floor's parse of the same files"
        parts.append(f"{name} {_secs(seconds)} s ({detail})")
    return ("- where the time went, largest stages first: " + "; ".join(parts)
            + " (see bench/README.md for why each costs what it does)")


def _side_by_side_line(result: BenchResult) -> list[str]:
    """The floor with every core, and the run over it: the stricter ratio (none when the floor was not timed so)."""
    side = result.floor.get("side_by_side")
    if not side or not side["seconds"]:
        return []
    return [f"- floor with every core: {_secs(side['seconds'])} s, the same readers parsing {side['threads']} files at "
            f"a time (the floor proper goes one file after the other, while a run may not); run over it "
            f"{result.run.wall / side['seconds']:.2f}"]


def province_progress(result: BenchResult) -> dict | None:
    """For `fangpin province`: county runs done, median seconds per county run (its first event to its end event),
    Dagster's own seconds per county run, and the projected total (median x counties); None for a county."""
    if result.scenario.layout != "province":
        return None
    if result.scenario.one_run:
        return _one_run_progress(result)
    county_runs = [r for r in result.runs if r.job == "county_month"]
    done = [r for r in county_runs if r.ok]
    median = statistics.median(r.seconds for r in done) if done else 0.0
    marts = [r for r in result.runs if r.job == "province_marts"]
    return {"counties": result.scenario.counties, "started": len(county_runs), "done": len(done), "median": median,
            "fastest": min((r.seconds for r in done), default=0.0),
            "slowest": max((r.seconds for r in done), default=0.0),
            "projected": median * result.scenario.counties / result.scenario.workers,
            "overhead": statistics.median(r.overhead for r in done) if done else 0.0,
            "setup": statistics.median(r.start - r.first_event for r in done) if done else 0.0,
            "between": statistics.median(_gaps(result.runs) or [0.0]),
            "marts": marts[0] if marts else None}


def one_run_counties(stderr: Path | None) -> dict[str, tuple[float, dict[str, float]]]:
    """county -> (seconds, seconds per step) for each county done in `fangpin province --one-run`, from the line the
    run logs for it (pipelines.one_run.CountyOutcome.line: `360099: 完成 done (4.9 s; drop_zone 0.31, ...)`)."""
    from pipelines.one_run import DONE

    text = stderr.read_text(encoding="utf-8", errors="replace") if stderr and stderr.exists() else ""
    counties = {}
    for m in re.finditer(rf"(\d+): {re.escape(DONE)} \(([\d.]+) s; ([^)]*)\)", text):
        steps = dict(part.rsplit(" ", 1) for part in m.group(3).split(", ") if part)
        counties[m.group(1)] = (float(m.group(2)), {step: float(sec) for step, sec in steps.items()})
    return counties


def one_run_steps(result_steps: list[StepTime], counties: dict[str, tuple[float, dict[str, float]]],
                  workers: int) -> list[StepTime]:
    """The one run's single Dagster step replaced by its counties' steps, so that the stage table says where the
    time went; with one worker, what the step spent besides the counties (the marts, starting workers) is the
    "province marts" stage (with two or more, the counties' seconds overlap and no remainder can be told apart)."""
    stages = {step: stage for stage, names in stage_steps().items() for step in names}
    whole = next((x for x in result_steps if x.step == "run_province_in_one_run"), None)
    if whole is None or not counties:
        return result_steps
    steps = [StepTime(step, stages.get(step, "other"), whole.start, sec, run=county)
             for county, (_, by_step) in sorted(counties.items()) for step, sec in by_step.items()]
    if workers == 1:
        steps.append(StepTime("provincial marts and the run's own work", "province marts", whole.start,
                              max(0.0, whole.seconds - sum(x.seconds for x in steps))))
    return [x for x in result_steps if x is not whole] + steps


def _one_run_progress(result: BenchResult) -> dict:
    """province_progress for `fangpin province --one-run`: no county runs, so each county's seconds come from the
    line the run logs when the county is done (one_run_counties)."""
    done = [seconds for seconds, _ in one_run_counties(result.run.stderr).values()]  # in the order they finished
    median = statistics.median(done) if done else 0.0
    half = len(done) // 2
    return {"counties": result.scenario.counties, "started": len(done), "done": len(done), "median": median,
            "fastest": min(done, default=0.0), "slowest": max(done, default=0.0),
            "halves": (statistics.median(done[:half]), statistics.median(done[half:])) if half else None,
            "projected": median * result.scenario.counties / result.scenario.workers,
            "overhead": 0.0, "setup": 0.0, "between": 0.0, "marts": None}


def _gaps(runs: list[RunTime]) -> list[float]:
    """Seconds from each run's last step to the first event of the next run that started after it.

    Not simply the next run in start order: with workers side by side, that one often started while this one was
    still going (session 5's table showed a negative gap)."""
    gaps = []
    for run in runs:
        later = [other.first_event - run.last_step_end for other in runs if other.first_event >= run.last_step_end]
        if later:
            gaps.append(min(later))
    return gaps


def _runs(result: BenchResult) -> list[RunTime]:
    """The child's runs; one built from the steps and marks alone when the result has none (hand-made results)."""
    if result.runs:
        return result.runs
    steps, marks = result.steps, result.marks
    start = marks.get("run_start", steps[0].start if steps else result.run.wall)
    return [RunTime("", "", min(marks.get("first_event", start), start), start, marks.get("run_end"), steps)] \
        if steps or marks else []


def stage_rows(result: BenchResult) -> list[tuple[str, float, int, float, float]]:
    """(stage, seconds, steps, pickle seconds, peak RSS bytes) for startup, the seven stages (summed over the runs
    of a province), the provincial marts, other, Dagster's time between steps and between runs, and the exit; they
    add up to the child's wall time."""
    steps, run, runs = result.steps, result.run, _runs(result)
    several = len(runs) > 1
    first = runs[0].first_event if runs else run.wall
    setup = "Dagster run setup (planned events), every run" if several else \
        "startup: Dagster run setup (planned events)"
    imports = "startup: Python and Dagster imports"
    if result.scenario.layout == "county":  # `fangpin run` parses the roster from its start on (fangpin.background)
        imports += " (the roster's parse beside them)"
    rows = [(imports, first, 0, 0.0, 0),
            (setup, sum(r.start - r.first_event for r in runs), 0, 0.0, run.step_peak_rss.get(STARTUP, 0))]
    extra = [n for n in ("province marts", "other") if any(s.stage == n for s in steps)]
    for stage in [*STAGES, *extra]:
        mine = [s for s in steps if s.stage == stage]
        rows.append((stage, sum(s.seconds for s in mine), len(mine), sum(s.load + s.store for s in mine),
                     max((run.step_peak_rss.get(s.step, 0) for s in mine), default=0)))
    if runs:
        rows.append(("Dagster between steps", sum(r.last_step_end - r.start - sum(s.seconds for s in r.steps)
                                                  for r in runs), 0, 0.0, 0))
        if several and result.scenario.workers == 1:  # side by side, the gaps between runs overlap other runs
            rows.append(("between runs (run teardown, the next run's launch)",
                         sum(b.first_event - a.last_step_end for a, b in zip(runs, runs[1:])), 0, 0.0, 0))
        rows.append(("exit (summary, teardown)", run.wall - runs[-1].last_step_end, 0, 0.0, 0))
    return rows


def _gb(value: int) -> str:
    return f"{value / GB:.2f}" if value else "–"


def median_result(results: list[BenchResult]) -> BenchResult:
    """Of repeated runs of the same inputs, the one with the median run/floor (the lower of the middle two), carrying
    every repeat's figures; a failed or stopped repeat is reported instead, so that a median never hides it.

    Why repeat: on the bench machine the floor of the same files moved by up to a third between runs, and the run by
    more than some changes move it (bench/FINDINGS.md, sessions 6-8)."""
    failed = [result for result in results if not result.ok]
    chosen = failed[0] if failed else sorted(results, key=lambda result: result.ratio)[(len(results) - 1) // 2]
    chosen.repeats = [(result.run.wall, result.floor["seconds"]) for result in results]
    return chosen


def repeat_lines(result: BenchResult) -> list[str]:
    """One line with every repeat's figures when the scenario ran more than once."""
    if len(result.repeats) < 2:
        return []
    walls, floors = zip(*result.repeats)
    ratios = [wall / floor if floor else float("inf") for wall, floor in result.repeats]
    return [f"- repeats: {len(result.repeats)} runs of the same inputs, run {' / '.join(_secs(w) for w in walls)} s, "
            f"floor {' / '.join(_secs(f) for f in floors)} s, run/floor {' / '.join(f'{r:.2f}' for r in ratios)}; "
            f"this section is the {'median run by run/floor' if result.ok else 'first repeat that failed'}"]


def section(result: BenchResult) -> str:
    """The scenario's part of bench/results.md."""
    s, run, fl, m, info = result.scenario, result.run, result.floor, result.machine, result.info
    total_rows = result.rows["persons"] + result.rows["list_rows"]
    lines = [
        f"## {s.name}", "",
        f"**{headline(result)}**", "",
        f"- machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']:.1f} GB memory, {m['system']}, "
        f"Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- input: {result.rows['persons']:,} roster rows ({info.get('households', 0):,} households, "
        f"{info.get('roster_format', '?')}), {result.rows['list_rows']:,} department list rows; "
        f"{fl['files']} files, {fl['bytes'] / 1e6:,.1f} MB; seed {s.seed}, {s.counties} "
        f"count{'y' if s.counties == 1 else 'ies'}; generated in {info.get('generated_seconds', '?')} s "
        f"(cached, key {s.key()})",
        f"- run: `fangpin {s.layout.replace('county', 'run')}{' --one-run' if s.one_run else ''} --month {s.month}` through Dagster, exit {run.returncode}"
        + (f", **stopped: {run.stopped}**" if run.stopped else "")
        + f"; wall {_secs(run.wall)} s, CPU {_secs(run.cpu)} s (user + system); peak RSS {run.peak_rss / GB:.2f} GB; "
        + (f"{total_rows / run.wall:,.0f} rows/s (roster + list rows over the run's wall time)" if result.ok
           else "no rows/s: the run did not finish"),
        f"- floor: {_secs(fl['seconds'])} s to parse the same {fl['files']} files ({fl['rows']:,} rows) with the "
        "fastest readers alone: " + ", ".join(f"{k} {_secs(v)} s" for k, v in sorted(fl["by_reader"].items()))
        + f"; CPU {_secs(fl['cpu'])} s",
        f"- run/floor: **{result.ratio:.2f}** (wall); CPU run/floor {run.cpu / max(fl['cpu'], 1e-9):.2f}",
        *_side_by_side_line(result),
        *repeat_lines(result),
        f"- machine load (1-minute average) {run.load[0]:.2f} when the run started, {run.load[1]:.2f} when it ended "
        f"({m['cores']} cores; above {m['cores']} means other work competed for the CPU)",
        *province_lines(result), *target_lines(result), "",
        "| stage | seconds | share | steps | of which pickle IO (s) | peak RSS (GB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, seconds, count, pickle, peak in stage_rows(result):
        if name in STAGES and not count and not result.ok:
            lines.append(f"| {name} | not reached | | | | |")
            continue
        lines.append(f"| {name} | {_secs(seconds)} | {seconds / run.wall:.0%} | {count or ''} | "
                     f"{_secs(pickle) if pickle else ''} | {_gb(peak)} |")
    lines += [f"| **run (wall)** | **{_secs(run.wall)}** | 100% | {len(result.steps)} | "
              f"{_secs(sum(x.load + x.store for x in result.steps))} | **{run.peak_rss / GB:.2f}** |", ""]
    lines += ["Stages: read = drop_zone + roster (the roster asset also validates the roster and builds households; in a "
              "Dagster run its files are parsed in a background thread, from the run's setup on, or from the CLI's "
              "start for a county run (fangpin.background), so the parse overlaps the startup and drop_zone and "
              "shows in them too); "
              "validate = department_lists (every list, one step), warehouse_month, data_quality, expectation_suites "
              "(in a Dagster run data_quality's suites run in a background thread from warehouse_month's end, beside "
              "the link, queue and marts steps, whose seconds include them; the data_quality step collects "
              "them); link = person_links; "
              "queue = warning_queue; marts = submissions, township_risk; workbooks = township_workbooks, "
              "township_feedback (in a Dagster run the workbooks are written in a background thread from "
              "warning_queue's end, beside the marts, data_quality and the dashboard, whose seconds include them; "
              "the township_workbooks step, last, collects them, then encrypts and audits); "
              "dashboard = county_dashboard"
              + ("; province marts = province_risk (the province_marts run, after the counties); a stage's seconds "
                 "are summed over the county runs" if s.layout == "province" else "")
              + (f"; the county runs went {s.workers} at a time, so the stage rows add up to more than the wall "
                 "time" if s.workers > 1 else "")
              + ". Pickle IO: time inside steps spent by Dagster's filesystem IO manager loading inputs and storing "
              "outputs.", ""]
    if s.layout == "province":
        lines += run_table(result)
        return _section_end(result, lines)
    lines += ["<details><summary>every step</summary>", "",
              "| step | stage | start (s) | seconds | load (s) | store (s) | peak RSS (GB) | status |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for x in result.steps:
        lines.append(f"| {x.step} | {x.stage} | {x.start:.1f} | {_secs(x.seconds)} | {x.load:.2f} | {x.store:.2f} | "
                     f"{_gb(run.step_peak_rss.get(x.step, 0))} | {x.status} |")
    lines += ["", "</details>", ""]
    return _section_end(result, lines)


def _section_end(result: BenchResult, lines: list[str]) -> str:
    """Why a run did not finish (or lost rows), and the profile, after the tables."""
    run = result.run
    if result.incomplete:
        lines += [f"**The run exited 0 but is incomplete: {result.incomplete}.** Quarantined files:", "", "```",
                  *quarantined_files(result), "```", ""]
    elif not result.ok:
        tail = run.stderr.read_text(encoding="utf-8", errors="replace").splitlines()[-15:] if run.stderr else []
        where = f"{run.last_run} {run.last_step}".strip()
        lines += [f"The run did not finish: {run.stopped or f'exit code {run.returncode}'} while **{where}** "
                  f"ran; {sum(x.status == 'success' for x in result.steps)} steps had succeeded. Last lines it printed:",
                  "", "```", *tail, "```", ""]
    if result.profile:
        lines += [result.profile, ""]
    return "\n".join(lines)


def province_lines(result: BenchResult) -> list[str]:
    """The province's own lines: counties done, seconds per county run, Dagster's share, the provincial marts, and
    the projection when the run was stopped."""
    p = province_progress(result)
    if p is None:
        return []
    if result.scenario.one_run:
        halves = p["halves"]
        return [f"- counties: **{p['done']} of {p['counties']} counties done** in the one run; per county median "
                f"**{_secs(p['median'])} s** (fastest {_secs(p['fastest'])} s, slowest {_secs(p['slowest'])} s); no "
                "Dagster run per county; the provincial marts inside the same run"
                + (f"; the first half of the counties to finish took {_secs(halves[0])} s a county (median), the "
                   f"second half {_secs(halves[1])} s (bench/FINDINGS.md session 33 found no slowdown of a worker "
                   "over 34 counties: a difference is most likely the machine's speed moving)" if halves else "")]
    marts = p["marts"]
    mart_steps = [x for x in result.steps if x.stage == "province marts"]
    lines = [f"- counties: **{p['done']} of {p['counties']} county runs done** ({p['started']} started); per county "
             f"run (its first Dagster event to its end) median **{_secs(p['median'])} s** (fastest "
             f"{_secs(p['fastest'])} s, slowest {_secs(p['slowest'])} s)",
             f"- Dagster per county run (median): {_secs(p['overhead'])} s of the run's own time outside its steps "
             f"(run setup {_secs(p['setup'])} s, the rest between steps and after the last), plus "
             f"{_secs(p['between'])} s from one run's last step to the first event of the next run started after it",
             "- provincial marts: " + (f"the province_marts run {_secs(marts.seconds)} s, of which the province_risk "
                                       f"step {_secs(sum(x.seconds for x in mart_steps))} s"
                                       + ("" if marts.ok else " (did not finish)") if marts else "not reached")]
    if not result.ok:
        lines.append(f"- **{'stopped at the cap' if result.run.stopped else 'did not finish'} after {p['done']} of "
                     f"{p['counties']} counties; projected total {p['projected']:,.0f} s = median "
                     f"{_secs(p['median'])} s per county run x {p['counties']} counties** (without startup and the "
                     "provincial marts)")
    return lines


def run_table(result: BenchResult) -> list[str]:
    """One row per Dagster run of `fangpin province` (a county each, then the provincial marts)."""
    peak = result.run.step_peak_rss
    lines = ["<details><summary>every run</summary>", "",
             "| run | job | start (s) | seconds | steps | Dagster outside steps (s) | slowest step (s) | status |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in result.runs:
        slowest = max(r.steps, key=lambda x: x.seconds, default=None)
        status = "success" if r.ok else ("stopped" if r.end is None else "failure")
        lines.append(f"| {r.label} | {r.job} | {r.first_event:.1f} | {_secs(r.seconds)} | {len(r.steps)} | "
                     f"{_secs(r.overhead)} | {f'{slowest.step} {_secs(slowest.seconds)}' if slowest else ''} | "
                     f"{status} |")
    lines += ["", f"Peak RSS by step (highest over the counties): "
              + ", ".join(f"{k} {_gb(v)} GB" for k, v in sorted(peak.items(), key=lambda kv: -kv[1])[:8]), "",
              "</details>", ""]
    return lines


RESULTS_INTRO = """# fangpin benchmark (`make bench`)

Generated by `bench/run.py`; each scenario's section is replaced when that scenario runs again. GB = 10⁹ bytes.
The run is the real `fangpin run` in a child process with a fresh Dagster instance and an empty warehouse; the
floor is the fastest readers alone (calamine via fastexcel, DuckDB) parsing the same files in the bench process,
page cache warm for both. See bench/README.md for the method and the bottleneck analysis.
"""


def write_results(path: Path, name: str, text: str) -> None:
    """Replace (or add) one scenario's section of the results file, keeping the others."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    pattern = r"<!-- bench:([\w-]+) -->\n.*?\n<!-- /bench:\1 -->"
    sections = {m.group(1): m.group(0) for m in re.finditer(pattern, old, flags=re.S)}
    sections[name] = block
    order = [n for n in ("county", "province") if n in sections] + sorted(n for n in sections
                                                                         if n not in ("county", "province"))
    path.write_text(RESULTS_INTRO + "\n" + "\n\n".join(sections[n] for n in order) + "\n", encoding="utf-8")


def profile_summary(stats_path: Path, top: int = 20) -> str:
    """Markdown: the project's functions by cumulative time, and all functions by own time, from cProfile."""
    stats = pstats.Stats(str(stats_path)).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    root = str(PROJECT_ROOT)

    def name(key) -> str:
        file, line, func = key
        short = file[len(root) + 1:] if file.startswith(root) and ".venv" not in file else \
            re.sub(r".*site-packages/", "", file)
        return f"`{short}:{line} {func}`"

    ours = [(k, v) for k, v in stats.items() if k[0].startswith(root) and ".venv" not in k[0]
            and "/bench/" not in k[0]]
    lines = ["### cProfile of a separate run (times inflated by the profiler; read the ranking, not the seconds)", "",
             "| project function (cumulative) | calls | cumulative s | own s |", "| --- | ---: | ---: | ---: |"]
    for key, (cc, nc, tt, ct, _) in sorted(ours, key=lambda kv: -kv[1][3])[:top]:
        lines.append(f"| {name(key)} | {nc} | {ct:.1f} | {tt:.1f} |")
    lines += ["", "| any function (own time) | calls | own s | cumulative s |", "| --- | ---: | ---: | ---: |"]
    for key, (cc, nc, tt, ct, _) in sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]:
        lines.append(f"| {name(key)} | {nc} | {tt:.1f} | {ct:.1f} |")
    return "\n".join(lines)


def county_dirs(data_dir: Path) -> list[Path]:
    """The data dirs whose warehouse holds a month: every county's of a province (fangpin's own rule for finding
    them), or the county's own."""
    counties = counties_found(data_dir)
    return [county_dir(data_dir, county) for county in counties] if counties else [Path(data_dir)]


def quarantined_files(result: BenchResult) -> list[str]:
    """File-level problems of the month (quarantine rows without a row number), to say why rows were lost."""
    import duckdb

    found = []
    for folder in county_dirs(Path(result.info.get("data_dir", ""))):
        try:
            con = duckdb.connect(str(folder / "warehouse" / "fangpin.duckdb"), read_only=True)
            rows = con.execute("SELECT source_file, reason_code, reason FROM quarantine.rejected_rows "
                               "WHERE month = ? AND row_number IS NULL ORDER BY 1", [result.scenario.month]).fetchall()
            con.close()
        except Exception as exc:
            found.append(f"({folder.name}: warehouse not readable: {type(exc).__name__})")
            continue
        found += [" | ".join(str(v) for v in row) for row in rows]
    return found


def warehouse_rows(data_dir: Path, month: str) -> dict[str, int] | None:
    """Roster and list rows as the run counted them, summed over a province's counties (None when no warehouse was
    written)."""
    import duckdb

    paths = [d / "warehouse" / "fangpin.duckdb" for d in county_dirs(data_dir)]
    if not any(path.exists() for path in paths):
        return None
    persons = lists = 0
    for path in (p for p in paths if p.exists()):
        try:
            con = duckdb.connect(str(path), read_only=True)
            persons += con.execute("SELECT count(*) FROM roster.persons WHERE month = ?", [month]).fetchone()[0]
            lists += con.execute("SELECT coalesce(sum(rows_read), 0) FROM raw.list_counts WHERE month = ?",
                                 [month]).fetchone()[0]
            con.close()
        except Exception:
            continue  # a county stopped before its warehouse was published: its rows count as not read
    return {"persons": int(persons), "list_rows": int(lists)}


# ----------------------------------------------------------------------------------------------------------------
# Entry
# ----------------------------------------------------------------------------------------------------------------
def bench(scenario: Scenario, cache: Path = CACHE_DIR, results: Path = RESULTS_PATH, profile: bool = False,
          repeat: int = 1) -> BenchResult:
    """Generate (or reuse) the inputs, then `repeat` times: time the floor, run fangpin, read the step events; write
    the median repeat (`median_result`) to the results."""
    data_dir, info = ensure_data(scenario, cache)
    measured = []
    for number in range(1, repeat + 1):
        if repeat > 1:
            _say(f"{scenario.name}: repeat {number} of {repeat}")
        measured.append(_measure(scenario, data_dir, info, cache, profile and number == repeat))
    result = median_result(measured)
    write_results(results, scenario.name, section(result))
    return result


def _measure(scenario: Scenario, data_dir: Path, info: dict, cache: Path, profile: bool) -> BenchResult:
    """One floor and one fangpin run of the scenario's inputs (a fresh instance and warehouse each time)."""
    work = scenario_dir(scenario, cache)
    files = input_files(data_dir, scenario.month)
    _say(f"{scenario.name}: floor over {len(files)} files …")
    fl = floor(files)
    _say(f"{scenario.name}: floor {fl['seconds']:.2f} s; running fangpin (cap {scenario.cap_seconds:.0f} s, "
         f"{scenario.memory_cap_gb:.0f} GB) …")
    command = "run" if scenario.layout == "county" else "province"
    run = run_fangpin(data_dir, scenario.month, work, scenario.cap_seconds, scenario.memory_cap_gb, command=command,
                      workers=scenario.workers, one_run=scenario.one_run)
    runs = run_times(read_runs(work / "dagster_home"), run.spawned, run.wall)
    steps = [step for r in runs for step in r.steps]
    if scenario.one_run:
        steps = one_run_steps(steps, one_run_counties(run.stderr), scenario.workers)
    marks = {"first_event": runs[0].first_event, "run_start": runs[0].start} if runs else {}
    rows = warehouse_rows(data_dir, scenario.month) or {"persons": info["persons"], "list_rows": info["list_rows"]}
    text = ""
    if profile:
        _say(f"{scenario.name}: profiling a second run under cProfile …")
        stats_path = work / "run.prof"
        run_fangpin(data_dir, scenario.month, work / "profile", scenario.cap_seconds * 2, scenario.memory_cap_gb,
                    profile_to=stats_path, command=command, workers=scenario.workers, one_run=scenario.one_run)
        text = profile_summary(stats_path) if stats_path.exists() else ""
    return BenchResult(scenario, {**info, "data_dir": str(data_dir)}, fl, run, steps, marks, rows, machine(), text,
                       runs)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description="fangpin benchmark: run/floor per scenario")
    parser.add_argument("scenarios", nargs="*", help=f"{', '.join(SCENARIOS)} (default: county province province-one-run)")
    parser.add_argument("--profile", action="store_true", help="also profile a second run with cProfile")
    parser.add_argument("--cap-minutes", type=float, help="wall-clock cap of each run (default per scenario)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each scenario this many times and report the median run/floor (default 1)")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH)
    parser.add_argument("--cache", type=Path, default=CACHE_DIR)
    args = parser.parse_args(argv)
    names = args.scenarios or ["county", "province", "province-one-run"]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    lines = []
    for name in names:
        scenario = SCENARIOS[name]
        if args.cap_minutes:
            scenario = Scenario(**{**asdict(scenario), "cap_seconds": args.cap_minutes * 60})
        result = bench(scenario, args.cache, args.results, args.profile, max(1, args.repeat))
        lines.append(headline(result))
        print(section(result), flush=True)
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
