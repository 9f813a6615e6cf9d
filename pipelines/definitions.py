"""The code location: every asset, check, job, schedule and sensor, with resources configured once."""
import dagster as dg

from assets.county_risk import COUNTY_ASSETS, COUNTY_CHECKS
from assets.ingestion import INGESTION_ASSETS
from assets.warnings import WARNING_ASSETS
from pipelines.jobs import monthly_run
from pipelines.progress import progress_logger
from pipelines.resources import FangpinData, default_data_dir
from pipelines.schedules import monthly_schedule
from pipelines.sensors import late_files_sensor

# Step outputs (the roster, each list's rows) stay in the run's memory: no pickled copies of names and IDs under
# DAGSTER_HOME/storage, no pickling time. The price: a single step cannot be re-executed from an earlier run's
# outputs; re-run the month (idempotent) instead.
RESOURCES = {"fangpin": FangpinData(data_dir=default_data_dir()), "io_manager": dg.mem_io_manager}

defs = dg.Definitions(
    assets=[*INGESTION_ASSETS, *WARNING_ASSETS, *COUNTY_ASSETS],
    asset_checks=COUNTY_CHECKS,
    jobs=[monthly_run],
    schedules=[monthly_schedule],
    sensors=[late_files_sensor],
    resources=RESOURCES,
    loggers={"progress": progress_logger},
    # One process: steps share memory (no pickling round-trips per step) and Polars never runs in a forked worker.
    executor=dg.in_process_executor,
)
