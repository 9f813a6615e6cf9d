"""`fangpin`: run a month through Dagster, or generate and run the demo county.

    fangpin run --month 2026-10 [--data-dir DIR]
    fangpin province --month 2026-10 [--data-dir DIR] [--workers 2] [--one-run]
    fangpin demo [--data-dir DIR] [--persons 60000]
    fangpin snapshot [--data-dir DIR] [--out PATH] [--new-key]

Runs go through the real Dagster job against the persistent instance (fangpin.instance), so they appear in the UI.
Exit code 1 only when the run as a whole failed; a bad department file is quarantined and reported, not fatal.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fangpin import framestack
from fangpin.config import PROJECT_ROOT, check_month


def _data_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("FANGPIN_DATA_DIR") or PROJECT_ROOT / "data").resolve()


def _existing_data_dir(arg: str | None) -> Path:
    """`_data_dir`, refused (exit 2) when it is not a folder: a mistyped --data-dir would otherwise run every step
    and end in 'no roster'."""
    path = _data_dir(arg)
    if not path.is_dir():
        raise ValueError(f"数据目录 {path} 不存在或不是文件夹（--data-dir 或 FANGPIN_DATA_DIR）。"
                         f" The data directory does not exist.")
    return path


def run_month(month: str, data_dir: Path, assets: list[str] | None = None) -> bool:
    """Materialise every asset of `month` (or only `assets`) through Dagster; print progress and the summary.

    The roster's files are being parsed while Dagster loads (fangpin.background): the run takes that read over."""
    if assets is None or "roster" in assets:
        from fangpin import background

        background.read_roster_ahead(data_dir, month)
    result = _execute("pipelines.definitions", "monthly_run", month, data_dir, assets)
    from fangpin.summary import print_summary

    print_summary(data_dir, month, run_id=result.run_id, success=result.success, only=assets)
    return result.success


def _execute(location: str, job_name: str, partition_key, data_dir: Path, assets: list[str] | None = None,
             instance=None, ops: dict | None = None):
    """One run of `job_name` from the code location `location`, on the persistent instance (seen in the UI):
    `instance` when given (a caller running many), else one opened for this run."""
    from fangpin.instance import dagster_home

    dagster_home()
    os.environ["FANGPIN_DATA_DIR"] = str(data_dir)
    import importlib

    from fangpin.collector import loading_modules

    with loading_modules():  # Dagster, the code location and the instance's storage: no full collections
        import dagster as dg

        defs = importlib.import_module(location).defs
        from assets.partitions import check_runnable_month, month_of_key

        check_runnable_month(month_of_key(partition_key))  # a month not yet over: a message, not Dagster's traceback
        opened = dg.DagsterInstance.get() if instance is None else None
    if opened is not None:
        # Disposed of when the run ends: closes the event log's kept connections (pipelines.event_log), so SQLite
        # folds its write-ahead log into the run's history file before the CLI exits without interpreter teardown.
        with opened:
            return _execute(location, job_name, partition_key, data_dir, assets, opened, ops)
    print(f"fangpin: {job_name} {partition_key} ← {data_dir}", file=sys.stderr)
    return defs.resolve_job_def(job_name).execute_in_process(
        partition_key=partition_key,
        instance=instance,
        run_config={"loggers": {"progress": {}},
                    "resources": {"fangpin": {"config": {"data_dir": str(data_dir)}}},
                    **({"ops": ops} if ops else {})},
        raise_on_error=False,
        asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
    )


def run_province(month: str, province_dir: Path, workers: int = 1, only: list[str] | None = None,
                 marts: bool = True) -> bool:
    """Every county's month as its own month x county partition (one run each), then the provincial marts.

    `workers` > 1 splits the counties over that many child processes (each county file has one writer, so
    counties may run side by side); `only` and `marts=False` are how a parent hands a child its share."""
    import dagster as dg

    from assets.partitions import check_runnable_month
    from fangpin import province
    from fangpin.instance import dagster_home

    check_runnable_month(month)  # before any county's run starts (each would refuse it)
    dagster_home()
    found = province.counties_found(province_dir)
    unknown = [c for c in only or [] if c not in found]
    if unknown:
        raise ValueError(province.unknown_counties_message(province_dir, unknown))
    counties = [c for c in found if only is None or c in only]
    if not counties:
        raise ValueError(province.no_counties_message(province_dir, month))
    # Disposed of at once, like each run's (see _execute): dynamic partitions live in the event log's index file.
    from assets.partitions import register_counties

    with dg.DagsterInstance.get() as instance:
        register_counties(instance, counties)
    in_workers = workers > 1 and len(counties) > 1
    if in_workers:
        sizes = province.month_bytes(province_dir, month, counties)
        _counties_in_workers(month, province_dir, balanced_shares(sizes, workers))
    # One instance for this process's counties, the check of every county's run and the marts (~0.1 s per instance
    # saved); opened after any workers have ended, so no instance of this process is open while they write.
    with dg.DagsterInstance.get() as instance:
        for county in [] if in_workers else counties:
            _execute("pipelines.province", "county_month", dg.MultiPartitionKey({"month": month, "county": county}),
                     province_dir, instance=instance)
        failed = [c for c in counties if not county_month_succeeded(instance, month, c)]
        if not marts:
            return not failed
        built = _execute("pipelines.province", "province_marts", month, province_dir, instance=instance).success
    done = len(counties) - len(failed)
    print(f"\n== fangpin province {month}: {done}/{len(counties)} 个县完成 counties done"
          f"{'；未完成 failed: ' + '、'.join(failed) if failed else ''}；"
          f"省级汇总 provincial marts {'完成 done' if built else '失败 FAILED'} ==")
    return not failed and built


def run_province_in_one_run(month: str, province_dir: Path, workers: int) -> bool:
    """Every county's month and the provincial marts in ONE Dagster run (`province_one_run`, pipelines.one_run):
    no run per county (so no per-county checks and step logs in the UI), and the province done sooner."""
    from assets.partitions import check_runnable_month
    from fangpin import province

    check_runnable_month(month)
    if not province.counties_found(province_dir):
        raise ValueError(province.no_counties_message(province_dir, month))
    result = _execute("pipelines.province", "province_one_run", month, province_dir,
                      ops={"run_province_in_one_run": {"config": {"workers": workers}}})
    print(f"\n== fangpin province {month} (one run 一次运行): {'完成 done' if result.success else '失败 FAILED'} ==")
    return result.success


def _counties_in_workers(month: str, province_dir: Path, shares: list[list[str]]) -> None:
    """One child process per share of the counties (`fangpin province --counties ... --no-marts`), each running its
    share one county at a time; their progress lines go straight to this process's output."""
    import subprocess

    from fangpin.cores import worker_environment

    children = [subprocess.Popen([sys.executable, "-m", "fangpin.cli", "province", "--month", month,
                                  "--data-dir", str(province_dir), "--counties", ",".join(share), "--no-marts",
                                  "--workers", "1"],  # a worker runs its share itself: it never splits again
                                 env=os.environ | worker_environment(len(shares)))  # and with its cores' share
                for share in shares]
    for child in children:
        child.wait()


def balanced_shares(sizes: dict[str, int], workers: int) -> list[list[str]]:
    """Counties split over `workers` so that the shares' sizes are close: largest first, each to the share with the
    least so far (of equal ones, the one with fewer counties).

    Why: counties differ tenfold in size, and with a fixed deal (every other county) one worker can be left running
    big counties alone at the end while the other core idles. Size is the month's drop-zone bytes, a fair measure
    of a county's work when the counties export in the same formats."""
    shares: list[list[str]] = [[] for _ in range(max(1, workers))]
    loads = [0] * len(shares)
    for county in sorted(sizes, key=lambda c: (-sizes[c], c)):
        least = min(range(len(shares)), key=lambda i: (loads[i], len(shares[i])))  # equal: the shorter share
        shares[least].append(county)
        loads[least] += sizes[county]
    return [sorted(share) for share in shares if share]


def county_month_succeeded(instance, month: str, county: str) -> bool:
    """Whether the latest run of the county's month partition succeeded (the instance is the record, whichever
    process ran it)."""
    import dagster as dg

    from assets.partitions import latest_county_run

    run = latest_county_run(instance, month, county)
    return run is not None and run.status == dg.DagsterRunStatus.SUCCESS


def cmd_run(args: argparse.Namespace) -> int:
    return 0 if run_month(check_month(args.month), _existing_data_dir(args.data_dir)) else 1


def cmd_province(args: argparse.Namespace) -> int:
    from fangpin.instance import side_by_side_runs

    only = [c for c in args.counties.split(",") if c] if args.counties else None
    workers = args.workers if args.workers is not None else side_by_side_runs()
    if args.one_run:
        if only or args.no_marts:
            raise ValueError("--one-run runs every county and the provincial marts: no --counties or --no-marts")
        ok = run_province_in_one_run(check_month(args.month), _existing_data_dir(args.data_dir), workers)
    else:
        ok = run_province(check_month(args.month), _existing_data_dir(args.data_dir), workers=workers, only=only,
                          marts=not args.no_marts)
    return 0 if ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from fangpin import demo

    data_dir = _data_dir(args.data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise ValueError(f"数据目录 {data_dir} 是一个文件，不是文件夹（--data-dir 或 FANGPIN_DATA_DIR）。"
                         f" The data directory is a file.")
    summary = demo.generate(data_dir, persons=args.persons)
    months = summary.get("months", demo.DEFAULT_MONTHS)
    print(f"demo county: {summary.get('persons')} persons, months {', '.join(months)} → {data_dir / 'raw'}", file=sys.stderr)
    ok = True
    for month in months:
        ok = run_month(month, data_dir) and ok
        if month != months[-1]:
            ok = return_demo_feedback(month, data_dir) and ok
    return 0 if ok else 1


def return_demo_feedback(month: str, data_dir: Path) -> bool:
    """The demo townships answer `month`'s workbooks; read them back (the township_feedback asset only)."""
    from fangpin.demo_feedback import simulate_feedback

    files = simulate_feedback(data_dir, month)
    print(f"demo: {len(files)} 个乡镇报回了{month}的核实结果 → {data_dir / 'raw' / month / 'feedback'}", file=sys.stderr)
    return run_month(month, data_dir, assets=["township_feedback"])


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Write the analysts' pseudonymised snapshot (fangpin.snapshot); --new-key first creates the county key."""
    from fangpin import snapshot
    from fangpin.warehouse import WarehouseUnavailable

    data_dir = _existing_data_dir(args.data_dir)
    if args.new_key:
        path = snapshot.create_key(data_dir=data_dir)
        print(f"fangpin: 已生成化名密钥 new pseudonym key → {path}（仅本人可读；请离线备份，丢失后新快照的化名与旧快照"
              f"对不上 — back it up offline）", file=sys.stderr)
        if os.environ.get(snapshot.KEY_ENV):
            print(f"fangpin: 注意 {snapshot.KEY_ENV} 已设置，本次仍使用环境变量中的密钥", file=sys.stderr)
    try:
        result = snapshot.build_snapshot(data_dir, out=Path(args.out) if args.out else None)
    except WarehouseUnavailable as error:
        print(f"fangpin: {error}", file=sys.stderr)
        return 1
    print(f"analyst snapshot: {result.path}")
    print(f"  months: {', '.join(result.months) or '—'}   key fingerprint: {result.key_fingerprint}")
    for relation, rows in result.tables.items():
        print(f"  {relation:<34} {rows:>10,} rows")
    if result.omitted:
        print(f"  not copied (not reviewed for personal data): {', '.join(result.omitted)}")
    print(f"  open read-only: duckdb.connect({str(result.path)!r}, read_only=True)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fangpin", description="防返贫动态监测: department lists → township warnings")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one month (all assets of its partition)")
    run.add_argument("--month", required=True, help="the month the lists are about, YYYY-MM")
    run.add_argument("--data-dir", help="data directory (default: $FANGPIN_DATA_DIR or ./data)")
    run.set_defaults(handler=cmd_run)
    prov = commands.add_parser("province", help="run one month of every county under DIR/counties/, then the provincial marts")
    prov.add_argument("--month", required=True, help="the month the lists are about, YYYY-MM")
    prov.add_argument("--data-dir", help="province directory with counties/<county>/raw/ (default: $FANGPIN_DATA_DIR)")
    prov.add_argument("--workers", type=int, default=None,
                      help="counties run side by side in this many processes (default: one per core, as many as "
                           "memory holds at ~3 GB each)")
    prov.add_argument("--counties", help="only these counties, comma-separated (default: every folder)")
    prov.add_argument("--no-marts", action="store_true", help="run the counties only, not the provincial marts")
    prov.add_argument("--one-run", action="store_true",
                      help="the whole province as one Dagster run, without a run per county (faster; no per-county "
                           "checks and step logs in the UI)")
    prov.set_defaults(handler=cmd_province)
    demo_cmd = commands.add_parser("demo", help="generate the demo county and run its months")
    demo_cmd.add_argument("--data-dir", help="data directory (default: $FANGPIN_DATA_DIR or ./data)")
    demo_cmd.add_argument("--persons", type=int, default=60_000, help="roster size (default 60,000)")
    demo_cmd.set_defaults(handler=cmd_demo)
    snap = commands.add_parser("snapshot", help="write the analysts' pseudonymised read-only snapshot")
    snap.add_argument("--data-dir", help="data directory (default: $FANGPIN_DATA_DIR or ./data)")
    snap.add_argument("--out", help="snapshot file (default: DIR/warehouse/analyst_snapshot.duckdb)")
    snap.add_argument("--new-key", action="store_true",
                      help="create the county pseudonym key first ($FANGPIN_KEY_FILE or ~/.config/fangpin/key)")
    snap.set_defaults(handler=cmd_snapshot)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as error:
        print(f"fangpin: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a read-only data directory, a full disk: the path and what to do, not a traceback
        from fangpin.files import os_error_words

        where = f"{error.filename}：" if error.filename else ""
        print(f"fangpin: {where}{os_error_words(error)}", file=sys.stderr)
        return 1


def entry() -> None:
    """Console-script entry. Exits without interpreter teardown once the run is finished and flushed: DuckDB 2.0's
    nanobind bindings print dozens of spurious "leaked type" lines at teardown after a Dagster run (its own module
    constants, no connection is left open), which would bury the summary a county officer reads."""
    code = framestack.with_room(main)  # imports and the run's steps: see fangpin.framestack
    readcache = sys.modules.get("fangpin.readcache")  # imported by the commands that read a drop zone
    if readcache is not None:  # entries a scan left its writer thread to store: os._exit would cut them short
        readcache.wait_for_writes()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
