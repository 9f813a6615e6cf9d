"""Micro-benchmark: township workbooks for one month, the fast path against openpyxl writing every cell.

    .venv/bin/python -m bench.workbooks [--households 50000] [--runs 3] [--no-reference]

Why: a county bench month has ~48,600 warned households (~1.7 M cells over ~20 townships); openpyxl's per-cell
writer took ~30 s for it. The queue is built here, seeded, in the shape `marts.warning_queue` delivers (per-capita
incomes as unrounded divisions, lists of members, sources and findings, dates), spread over 20 townships, with
unmatched persons and earlier cases in proportion. Prints the median of `--runs` runs of
`write_workbooks_by_township` for each path, and the number of cells written.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from fangpin.workbooks import column_specs, write_workbooks_by_township

MONTH = "2026-10"
TOWNSHIPS = [f"{stem}{kind}" for stem in ("青山", "向阳", "金盆", "红旗", "玉泉", "白沙", "长岭", "石门", "桃源", "梅林")
             for kind in ("镇", "乡")]
SURNAMES = list("赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张")
SOURCES = ["civil_affairs.dibao", "health.major_disease", "disabled.severe", "education.dropout"]
RISKS = ["因病", "因残", "因学", "因灾", "因意外事故", "缺劳力"]


def queue_frame(households: int, seed: int = 7) -> pl.DataFrame:
    """`households` warning-queue rows for MONTH, spread over TOWNSHIPS, 30 villages each."""
    rng = np.random.default_rng(seed)
    index = np.arange(households)
    size = rng.integers(1, 7, households)
    surname = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), households)]
    township = np.array(TOWNSHIPS)[rng.integers(0, len(TOWNSHIPS), households)]
    frame = pl.DataFrame({
        "household_id": [f"36079900{i:010d}" for i in index],
        "township": township,
        "village": [f"第{v}村" for v in rng.integers(1, 31, households)],
        "head_name": [f"{s}户主{i % 97}" for s, i in zip(surname, index)],
        "head_id_number": [f"3607991{1950 + i % 50}0101{i % 10000:04d}" for i in index],
        "household_size": size,
        "a34_per_capita": rng.integers(3_000, 40_000, households) / size,
        "a38_per_capita": rng.integers(3_000, 40_000, households) / size,
        "a38_after_event": np.where(rng.random(households) < 0.3, rng.integers(0, 20_000, households) / size, np.nan),
        "priority": rng.random(households) * 10,
    })
    sources = [[SOURCES[j] for j in range(len(SOURCES)) if mask >> j & 1] or SOURCES[:1]
               for mask in rng.integers(1, 16, households)]
    return frame.with_columns(
        pl.lit(MONTH).alias("month"), pl.lit("脱贫户").alias("household_type"),
        pl.lit(None, pl.String).alias("monitoring_category"),
        pl.concat_list(pl.format("{}（新增农村低保人员名单）", "head_name"),
                       pl.format("{}之子（新增30种大病人员名单：白血病）", "head_name")).alias("members"),
        pl.Series("risk_types", [[RISKS[i % len(RISKS)]] for i in index]),
        pl.lit(["基本医疗保险"]).alias("assurance_gaps"), pl.Series("sources", sources),
        pl.lit(["名下有机动车（公安局）"]).alias("findings"), pl.lit("突发严重困难户").alias("suggested_category"),
        pl.when(pl.col("a38_after_event").is_nan()).then(None).otherwise(pl.col("a38_after_event"))
        .alias("a38_after_event"),
        pl.lit(11160.0).alias("monitoring_line"), pl.lit("大病；收入接近监测线").alias("priority_reasons"),
        pl.lit("新预警").alias("case_status"), pl.lit(date(2026, 11, 11)).alias("first_warned_on"),
        pl.lit(date(2026, 11, 21)).alias("due_date"), pl.lit("身份证号码一致").alias("match_rule"),
        pl.lit("王帮扶").alias("cadre"),
    )


def unmatched_frame(persons: int, seed: int = 8) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "month": MONTH, "id_number": [f"36079919900101{i % 10000:04d}" for i in range(persons)],
        "name": [f"未匹配{i}" for i in range(persons)],
        "sources": [[SOURCES[i % len(SOURCES)]] for i in range(persons)],
        "township": np.array(TOWNSHIPS)[rng.integers(0, len(TOWNSHIPS), persons)],
        "village": [f"第{v}村" for v in rng.integers(1, 31, persons)],
    })


def case_frame(cases: int, seed: int = 9) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    group = np.array(["overdue", "pending", "verified"])[rng.integers(0, 3, cases)]
    return pl.DataFrame({
        "month": MONTH, "township": np.array(TOWNSHIPS)[rng.integers(0, len(TOWNSHIPS), cases)],
        "village": [f"第{v}村" for v in rng.integers(1, 31, cases)], "head_name": [f"旧户{i}" for i in range(cases)],
        "household_id": [f"36079901{i:010d}" for i in range(cases)], "first_month": "2026-09",
        "first_warned_on": date(2026, 10, 11), "due_date": date(2026, 10, 21), "status": group,
        "status_group": group, "days_overdue": np.where(group == "overdue", rng.integers(1, 30, cases), 0),
        "verified_on": [date(2026, 10, 15) + timedelta(days=int(d)) for d in rng.integers(0, 5, cases)],
        "verifier": "张核", "warned_again": rng.random(cases) < 0.2,
    })


def median_seconds(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds (all threads of this process) of `runs` calls of `action`. CPU seconds matter on
    a shared machine, where the wall time depends on the load."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def timed(queue, unmatched, cases, runs: int, reference: bool) -> tuple[float, float]:
    """`median_seconds` of write_workbooks_by_township, each run into a fresh folder."""
    def write() -> None:
        with tempfile.TemporaryDirectory(prefix="fangpin-bench-workbooks-") as folder:
            write_workbooks_by_township(queue, unmatched, MONTH, Path(folder), cases, reference=reference)

    return median_seconds(write, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true", help="skip the slow openpyxl per-cell path")
    args = parser.parse_args()
    queue = queue_frame(args.households)
    unmatched, cases = unmatched_frame(args.households // 25), case_frame(args.households // 10)
    cells = sum(frame.height * len(column_specs(sheet)) for frame, sheet in (
        (queue, "verification"), (queue, "public"), (unmatched, "unmatched"), (cases, "earlier_cases")))
    print(f"{args.households:,} households, {unmatched.height:,} unmatched, {cases.height:,} earlier cases, "
          f"{cells:,} data cells, {len(TOWNSHIPS)} townships; median of {args.runs} runs")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    fast, fast_cpu = timed(queue, unmatched, cases, args.runs, reference=False)
    print(f"fast (Polars XML rows):   wall {fast:6.2f} s   cpu {fast_cpu:6.2f} s")
    if not args.no_reference:
        plain, plain_cpu = timed(queue, unmatched, cases, args.runs, reference=True)
        print(f"openpyxl cell by cell:    wall {plain:6.2f} s   cpu {plain_cpu:6.2f} s   "
              f"(wall {plain / fast:.1f}x, cpu {plain_cpu / fast_cpu:.1f}x)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
