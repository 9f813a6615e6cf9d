"""Micro-benchmark: reading the township workbooks back when they return (`feedback.read_feedback_dir`).

    .venv/bin/python -m bench.feedback [--households 50000] [--runs 3] [--no-reference]

Why: in a month after the first, every township returns its workbook, one row per warned household (the bench county
has ~48,600 over its townships), and the run reads them all in `township_feedback`. The workbooks are written by the
real writer from `bench.workbooks.queue_frame` (20 townships) and returned as sent, without results: reading costs the
same per row whether the clerk filled it in or not (every row is parsed and checked against the queue). Prints the
median of `--runs` reads with fangpin's reader (calamine), and, as the reference, openpyxl loading the same files
(`load_workbook(data_only=True)`, what the reader used before session 13) without any checking.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import openpyxl
import polars as pl

from bench.workbooks import MONTH, median_seconds, queue_frame, unmatched_frame
from fangpin.feedback import read_feedback_dir
from fangpin.workbooks import write_workbooks_by_township


def returned_workbooks(queue: pl.DataFrame, folder: Path) -> Path:
    """The month's township workbooks for the warning queue, copied into a feedback folder as if returned."""
    written = write_workbooks_by_township(queue, unmatched_frame(0), MONTH, folder / "exports")
    returned = folder / "raw" / MONTH / "feedback"
    returned.mkdir(parents=True)
    for path in written.values():
        shutil.copy(path, returned / path.name)
    return returned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true", help="skip openpyxl loading the same workbooks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fangpin-bench-feedback-") as folder:
        queue = queue_frame(args.households)
        returned = returned_workbooks(queue, Path(folder))
        files = sorted(returned.glob("*.xlsx"))
        print(f"{args.households:,} households in {len(files)} returned workbooks "
              f"({sum(p.stat().st_size for p in files) / 1e6:.1f} MB); median of {args.runs} runs")
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        _, rejections = read_feedback_dir(returned, queue)
        if not rejections.is_empty():
            raise SystemExit(f"the returned workbooks were rejected: {rejections['reason'].head(3).to_list()}")
        fast, fast_cpu = median_seconds(lambda: read_feedback_dir(returned, queue), args.runs)
        print(f"read_feedback_dir (calamine):       wall {fast:6.2f} s   cpu {fast_cpu:6.2f} s")
        if not args.no_reference:
            def load_all() -> None:
                for path in files:
                    openpyxl.load_workbook(path, data_only=True).close()

            plain, plain_cpu = median_seconds(load_all, args.runs)
            print(f"openpyxl load_workbook, no checks:  wall {plain:6.2f} s   cpu {plain_cpu:6.2f} s   "
                  f"(wall {plain / fast:.1f}x, cpu {plain_cpu / fast_cpu:.1f}x)")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
