"""What the demo county's townships send back: filled-in verification workbooks (入户核实 results).

After a demo month has run, most townships return their workbook with most households verified; one township
returns nothing, so the next month shows verified, excluded and overdue cases side by side. Deterministic: the
choice of rows and results follows a seeded generator, and verification dates fall within the period.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import openpyxl

from fangpin.cases import issue_date
from fangpin.feedback import find_header, open_workbook
from fangpin.workbooks import RESULTS, sheet_name

RESULT_WEIGHTS = (0.55, 0.30, 0.10, 0.05)  # 存在风险, 不存在风险, 已纳入监测, 查无此户
VERIFIED_SHARE = 0.8  # of the households of a township that answers
VERIFIERS = ("刘核实", "陈网格", "黄驻村", "周专干")


def simulate_feedback(data_dir: Path, month: str, seed: int = 20261123) -> list[Path]:
    """Fill in the month's township workbooks as clerks would and drop them in raw/<month>/feedback/."""
    exports = Path(data_dir) / "exports" / month
    folder = Path(data_dir) / "raw" / month / "feedback"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, int(month.replace("-", ""))])
    workbooks = sorted(exports.glob("*.xlsx"))
    silent = workbooks[-1] if len(workbooks) > 1 else None  # one township does not answer this month
    written = []
    for path in workbooks:
        if path == silent:
            continue
        written.append(_fill_in(path, folder / path.name, rng, issue_date(month)))
    return written


def _fill_in(source: Path, target: Path, rng: np.random.Generator, issued) -> Path:
    name = sheet_name("verification")
    cells = open_workbook(source)[name]
    header_row, columns = find_header(cells, name)
    households = cells[columns["household_id"]].slice(header_row).to_list()
    wb = openpyxl.load_workbook(source)
    ws = wb[name]
    for row, household in enumerate(households, start=header_row + 1):
        if household is None or rng.random() > VERIFIED_SHARE:
            continue
        result = RESULTS[int(rng.choice(len(RESULTS), p=RESULT_WEIGHTS))]
        ws[f"{columns['result']}{row}"].value = result
        ws[f"{columns['verified_on']}{row}"].value = issued + timedelta(days=int(rng.integers(1, 9)))
        ws[f"{columns['verifier']}{row}"].value = VERIFIERS[int(rng.integers(len(VERIFIERS)))]
        if result != RESULTS[0]:
            ws[f"{columns['remarks']}{row}"].value = "入户核实，见核实记录"
    wb.save(target)
    return target
