"""Warning assets: link persons to households, rank the warned households, write each township's workbook, and
read the workbooks the townships send back.

Every step is SQL in DuckDB (fangpin.linkage, fangpin.warnings, fangpin.cases) or a writer of the township files;
each replaces only its own month.
"""

import getpass
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple

import dagster as dg
import polars as pl

from assets.partitions import month_of, partitioned_asset
from fangpin import feedback, linkage, protect, warnings, workbooks
from fangpin.files import fsync
from fangpin.warehouse import as_arrow, replace_month, transaction
from pipelines.resources import FangpinData


@partitioned_asset(group_name="warnings", kinds={"duckdb"}, deps=["warehouse_month"])
def person_links(context: dg.AssetExecutionContext, fangpin: FangpinData) -> dg.MaterializeResult:
    """Each accepted list row linked to a roster person by ID (or offered as a probable match by name)."""
    with fangpin.writer() as con, transaction(con):
        counts = linkage.link_month(con, month_of(context))
    context.log.info("匹配：" + "，".join(f"{rule} {n}" for rule, n in counts.items()))
    return dg.MaterializeResult(metadata={str(k): v for k, v in counts.items()})


@partitioned_asset(group_name="warnings", kinds={"duckdb"}, deps=["person_links"])
def warning_queue(context: dg.AssetExecutionContext, fangpin: FangpinData) -> dg.MaterializeResult:
    """marts.warning_queue: one row per warned household, with category, priority, reasons and due date."""
    month = month_of(context)
    with fangpin.writer() as con, transaction(con):
        counts = warnings.build_warning_queue(con, month)
    fangpin.start_ahead("township_workbooks", month, lambda: _workbooks_writer(fangpin, month))
    context.log.info("预警：" + "，".join(f"{k} {v}" for k, v in counts.items()))
    return dg.MaterializeResult(metadata={str(k): v for k, v in counts.items()})


def _month_frames(fangpin: FangpinData, month: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The month's warning queue, unmatched persons and earlier cases, as the township workbooks need them."""
    with fangpin.writer() as con:
        frames = tuple(con.sql(f"SELECT * FROM {table} WHERE month = ?", params=[month]).pl()
                       for table in ("marts.warning_queue", "marts.unmatched_persons", "marts.case_status"))
    return frames


class _WrittenWorkbooks(NamedTuple):
    """What the workbooks' writing gives the step: the queue they show, {township: workbook written}, and the
    passwords read before writing (None: encryption not configured), so the passwords file is read once."""

    queue: pl.DataFrame
    by_township: dict[str, Path]
    passwords: dict[str, str] | None


def _workbooks_writer(fangpin: FangpinData, month: str) -> Callable[[], _WrittenWorkbooks]:
    """What writing the month's township workbooks needs, read now: the passwords file (a bad one writes nothing),
    the month's queue, unmatched persons and earlier cases, the owner-only exports folder. Returns the writing
    itself (no warehouse access)."""
    passwords = protect.load_passwords(fangpin.root)
    queue, unmatched, case_status = _month_frames(fangpin, month)
    staging = _staging_dir(fangpin, month)
    shutil.rmtree(staging, ignore_errors=True)  # an interrupted run's, never published
    protect.restrict_exports(staging, fangpin.root / "exports")

    def write() -> _WrittenWorkbooks:
        by_township = workbooks.write_workbooks_by_township(queue, unmatched, month, staging, case_status=case_status)
        return _WrittenWorkbooks(queue, by_township, passwords)

    return write


def _staging_dir(fangpin: FangpinData, month: str) -> Path:
    """Where a run writes and encrypts the month's workbooks before they replace those in exports/<month>/: a run
    interrupted before its workbooks step (the warehouse then stays as before it) leaves the exports as they were,
    never this run's files, nor plaintext ones meant to be encrypted."""
    return fangpin.root / "exports" / f".{month}.writing"


def _publish_workbooks(paths: list[Path], out_dir: Path, staging: Path) -> dict[Path, Path]:
    """Move the finished (encrypted) workbooks from the staging folder into exports/<month>/; {staged: published}."""
    published = {}
    for path in paths:
        target = out_dir / path.name
        os.replace(path, target)
        published[path] = target
    shutil.rmtree(staging, ignore_errors=True)
    fsync(out_dir)
    return published


# Last among the steps ready beside it (priority -2, after data_quality's -1): warning_queue started the writing
# (FangpinData.start_ahead) in a thread, which runs beside the risk marts, the suites and the dashboard; this step
# collects it, then encrypts and audits. The tables it reads are not written by the steps between.
@partitioned_asset(group_name="exports", kinds={"excel"}, deps=["warning_queue"], op_tags={"dagster/priority": "-2"})
def township_workbooks(context: dg.AssetExecutionContext, fangpin: FangpinData) -> dg.MaterializeResult:
    """exports/<month>/<township>.xlsx: each township's own households only, encrypted with the township's password
    when passwords are configured (fangpin.protect), owner-only files, and an audit row per file."""
    month = month_of(context)
    out_dir = fangpin.exports_dir(month)

    def write_now() -> _WrittenWorkbooks:  # when warning_queue did not start the writing
        return _workbooks_writer(fangpin, month)()

    (queue, by_township, passwords), beside = fangpin.collect("township_workbooks", month, write_now)
    protect.restrict_exports(out_dir, fangpin.root / "exports")
    paths = sorted(by_township.values())
    townships = {path: township for township, path in by_township.items()}
    missing: protect.MissingWorkbookPasswords | None = None
    if passwords is None:
        context.log.warning(f"未配置工作簿密码（{protect.PASSWORDS_ENV}），乡镇工作簿未加密 → {out_dir}")
        encrypted = {path: False for path in paths}
    else:
        try:
            encrypted = protect.encrypt_workbooks(paths, passwords, townships)
        except protect.MissingWorkbookPasswords as error:
            encrypted = error.encrypted
            if set(error.townships) & _roster_townships(fangpin, month):
                missing = error  # a real township without its workbook: the run must say so
            else:  # only names a department list used, not in the roster: nobody would receive these
                context.log.warning(f"乡镇 {'、'.join(error.townships)} 不在花名册中且没有密码，未生成工作簿")
    published = _publish_workbooks([path for path in paths if path.exists()], out_dir, _staging_dir(fangpin, month))
    written = list(published.values())
    townships = {published[path]: township for path, township in townships.items() if path in published}
    encrypted = {published[path]: done for path, done in encrypted.items() if path in published}
    audit = _audit_rows(written, townships, encrypted, queue, month)
    with fangpin.writer() as con, transaction(con):
        if audit.height:
            con.register("_audit", as_arrow(audit))
            columns = ", ".join(audit.columns)
            con.execute(f"INSERT INTO audit.exports ({columns}) SELECT {columns} FROM _audit")
            con.unregister("_audit")
    if missing is not None:
        raise dg.Failure(description=str(missing))
    where = "在前面步骤旁写出 written beside the steps before" if beside else "在本步骤中写出 written in this step"
    context.log.info(f"{len(written)} 个乡镇工作簿（加密 {sum(encrypted.values())} 个，{where}）→ {out_dir}")
    unrouted = queue.filter((pl.col("month") == month) & pl.col("township").is_null()).height
    if unrouted:  # in no township's workbook: the county office must route them (the summary says so too)
        context.log.warning(f"{unrouted} 户预警没有乡镇（花名册中乡镇为空），未写入任何乡镇工作簿；"
                            "请按 marts.warning_queue 中乡镇为空的行核实后分派")
    return dg.MaterializeResult(metadata={"workbooks": len(written), "encrypted": sum(encrypted.values()),
                                          "households": queue.height, "households_without_township": unrouted,
                                          "written_in_background": beside,
                                          "exports_dir": dg.MetadataValue.path(str(out_dir))})


def _roster_townships(fangpin: FangpinData, month: str) -> set[str]:
    """Townships of the roster in force for `month` (the latest roster month at or before it)."""
    with fangpin.writer() as con:
        rows = con.execute("SELECT DISTINCT township FROM roster.townships WHERE month = "
                           "(SELECT max(month) FROM roster.townships WHERE month <= ?)", [month]).fetchall()
    return {row[0] for row in rows}


def _audit_rows(paths: list[Path], townships: dict[Path, str], encrypted: dict[Path, bool], queue: pl.DataFrame,
                month: str) -> pl.DataFrame:
    """One audit.exports row per workbook written: when, month, township, households, OS user, encrypted."""
    per_township = dict(queue.group_by("township").len().iter_rows()) if queue.height else {}
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    user = getpass.getuser()
    return pl.DataFrame(
        [{"exported_at": now, "month": month, "township": townships.get(p, p.stem), "path": str(p),
          "households": per_township.get(townships.get(p, p.stem), 0), "os_user": user,
          "encrypted": encrypted.get(p, False), "kind": "township_workbook"} for p in paths],
        schema={"exported_at": pl.Datetime("us"), "month": pl.String, "township": pl.String, "path": pl.String,
                "households": pl.Int32, "os_user": pl.String, "encrypted": pl.Boolean, "kind": pl.String},
    )


@partitioned_asset(group_name="exports", kinds={"excel"}, deps=["warning_queue"])
def township_feedback(context: dg.AssetExecutionContext, fangpin: FangpinData) -> dg.MaterializeResult:
    """Verification results returned in raw/<month>/feedback/: recorded per case; altered workbooks rejected."""
    month = month_of(context)
    folder = fangpin.root / "raw" / month / "feedback"
    files = feedback.returned_files(folder)
    # What a returned workbook is checked against: read only when something came back
    queue = _month_frames(fangpin, month)[0] if files else pl.DataFrame()
    passwords = protect.load_passwords(fangpin.root)
    verifications, rejections = feedback.read_feedback_files(files, queue, month,
                                                             lambda path: protect.open_returned(path, passwords))
    with fangpin.writer() as con, transaction(con):
        earlier = con.sql("SELECT * FROM cases.verifications WHERE month = $month", params={"month": month}).pl()
        recorded = feedback.with_earlier_answers(verifications, earlier)
        replace_month(con, "cases.verifications", month, recorded)
        replace_month(con, "quarantine.rejected_rows", month, rejections, keep="list_key = 'feedback'")
    kept = recorded.height - verifications.height
    context.log.info(f"{len(files)} 个回传工作簿：核实 {verifications.height} 户，拒收 {rejections.height} 条"
                     + (f"；保留此前已采用、本次文件中没有的 {kept} 户核实结果" if kept else ""))
    return dg.MaterializeResult(metadata={"files": len(files), "verifications": verifications.height,
                                          "kept_from_earlier_runs": kept, "rejected": rejections.height})


WARNING_BODIES = [person_links, warning_queue, township_workbooks, township_feedback]
