"""The county code location: every asset, check, job, schedule and sensor, with resources configured once.

`county_assets` and `RUN_SETTINGS` are shared with the provincial code location (pipelines.province), which builds the
same assets for months x counties.
"""
import dagster as dg

from assets.county_risk import COUNTY_BODIES, build_expectation_suites
from assets.ingestion import build_ingestion_assets
from assets.partitions import MONTHLY, build_assets
from assets.warnings import WARNING_BODIES
from pipelines.jobs import monthly_run
from pipelines.progress import progress_logger
from pipelines.resources import FangpinData, default_data_dir
from pipelines.schedules import monthly_schedule
from pipelines.sensors import late_files_sensor


def county_assets(partitions: dg.PartitionsDefinition) -> tuple[list[dg.AssetsDefinition], list]:
    """(assets, asset checks) of a county's month, for months (a county) or months x counties (a province)."""
    assets = [*build_ingestion_assets(partitions), *build_assets(WARNING_BODIES, partitions),
              *build_assets(COUNTY_BODIES, partitions)]
    return assets, [build_expectation_suites(partitions)]


RUN_SETTINGS = dict(
    # Step outputs (the roster, each list's rows) stay in the run's memory: no pickled copies of names and IDs under
    # DAGSTER_HOME/storage, no pickling time. The price: a single step cannot be re-executed from an earlier run's
    # outputs; re-run the month (idempotent) instead.
    resources={"fangpin": FangpinData(data_dir=default_data_dir()), "io_manager": dg.mem_io_manager},
    loggers={"progress": progress_logger},
    # One process: steps share memory (no pickling round-trips per step) and Polars never runs in a forked worker.
    executor=dg.in_process_executor,
)

ASSETS, CHECKS = county_assets(MONTHLY)

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[monthly_run],
    schedules=[monthly_schedule],
    sensors=[late_files_sensor],
    **RUN_SETTINGS,
)
