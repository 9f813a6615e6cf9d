"""The end-of-run summary a county officer reads at a glance: per list, rows read / accepted / rejected, and paths."""
from __future__ import annotations

import sys
from pathlib import Path

from fangpin.config import registry
from fangpin.warehouse import WarehouseUnavailable, reader, warehouse_path
from schemas.reasons import ignored


def _fetch(con, query: str, month: str, *values: object) -> list[tuple]:
    return con.execute(query, [month, *values]).fetchall()


def summary_lines(con, month: str) -> list[str]:
    """Lines of the summary table, read from the warehouse."""
    names = {d.slug: d.name for d in registry().departments.values()}
    lines = [f"{'部门 department':<22}{'名单 list':<36}{'读取':>8}{'接收':>8}{'拒收':>8}"]
    for list_key, department, files, read, accepted, rejected, problems in _fetch(
        con, "SELECT list_key, department, files, rows_read, rows_accepted, rows_rejected, file_problems "
             "FROM raw.list_counts WHERE month = ? ORDER BY list_key", month):
        flag = "  未报送 not received" if files == 0 and problems == 0 else (f"  {problems} 个文件无法处理" if problems else "")
        lines.append(f"{names.get(department, department):<20}{list_key:<36}{read:>10}{accepted:>10}{rejected:>10}{flag}")
    roster = _fetch(con, "SELECT count(*), count(DISTINCT household_id) FROM roster.persons WHERE month = ?", month)[0]
    unassigned = _fetch(con, "SELECT count(*) FROM quarantine.rejected_rows WHERE month = ? AND list_key IS NULL", month)[0][0]
    lines.append(f"花名册 roster: {roster[0]} 人 persons, {roster[1]} 户 households")
    refused = _fetch(con, "SELECT count(*) FROM quarantine.rejected_rows WHERE month = ? AND list_key = 'roster' "
                          "AND row_number IS NULL", month)[0][0]
    if refused:
        lines.append(f"  花名册文件或工作表无法处理 roster files or sheets refused: {refused}（其中的人员未读入，"
                     "见 quarantine.rejected_rows）")
    if unassigned:
        lines.append(f"无法识别或无法读取的文件 unrecognised/unreadable files: {unassigned}（见 quarantine.rejected_rows）")
    documents = [row[0] for row in _fetch(
        con, "SELECT source_file FROM raw.received_files WHERE month = ? AND note = ? ORDER BY source_file",
        month, ignored("not_spreadsheet"))]
    if documents:  # a department's cover note, or a list sent as .txt or .pdf: the clerk decides which
        named = "、".join(path.split("/", 2)[-1] for path in documents[:3]) + ("等" if len(documents) > 3 else "")
        lines.append(f"不是Excel或CSV、未读取的文件 files not read (no spreadsheet): {len(documents)}（{named}；"
                     "见 raw.received_files）")
    taken = _fetch(con, "SELECT count(*), count(DISTINCT source_file) FROM cases.verifications WHERE month = ?",
                   month)[0]
    refused = _fetch(con, "SELECT count(*), count(DISTINCT source_file) FROM quarantine.rejected_rows "
                          "WHERE month = ? AND list_key = 'feedback'", month)[0]
    if taken[0] or refused[0]:  # what the townships sent back for this month, and what of it was not taken
        lines.append(f"乡镇报回 township returns: 采用核实结果 {taken[0]} 户（{taken[1]} 个文件），拒收 {refused[0]} 条"
                     f"（{refused[1]} 个文件，见 quarantine.rejected_rows，list_key = 'feedback'）")
    try:
        warned, unrouted = _fetch(con, "SELECT count(*), count(*) FILTER (township IS NULL) "
                                       "FROM marts.warning_queue WHERE month = ?", month)[0]
        lines.append(f"预警户 warned households: {warned}")
        if unrouted:
            lines.append(f"  其中 {unrouted} 户没有乡镇，未写入任何乡镇工作簿，请县里核实后分派（marts.warning_queue 中乡镇为空的行）"
                         f" / {unrouted} warned households have no township and are in no township's workbook")
    except Exception:  # the warnings mart does not exist before the first full run
        pass
    return lines


def print_summary(data_dir: Path, month: str, run_id: str, success: bool, only: list[str] | None = None) -> None:
    out = sys.stdout
    scope = f" [{', '.join(only)}]" if only else ""
    print(f"\n== fangpin {month}{scope}: {'完成 done' if success else '失败 FAILED'} (Dagster run {run_id}) ==", file=out)
    path = warehouse_path(data_dir)
    if not success:
        print("本次运行失败，下表为数据仓库中该月上一次成功运行的结果 (the run failed: figures below are from the last "
              "successful run of this month; see the ✗ lines above for why)", file=out)
    if path.exists():
        try:
            with reader(data_dir, wait_seconds=10) as con:
                for line in summary_lines(con, month):
                    print(line, file=out)
        except WarehouseUnavailable as error:  # held by another process, or damaged: say so, not a traceback
            print(error, file=out)
    print(f"warehouse: {path}", file=out)
    print(f"exports:   {Path(data_dir) / 'exports' / month}", file=out)
