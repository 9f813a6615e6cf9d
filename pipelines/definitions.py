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

defs = dg.Definitions(
    assets=[*INGESTION_ASSETS, *WARNING_ASSETS, *COUNTY_ASSETS],
    asset_checks=COUNTY_CHECKS,
    jobs=[monthly_run],
    schedules=[monthly_schedule],
    sensors=[late_files_sensor],
    resources={"fangpin": FangpinData(data_dir=default_data_dir())},
    loggers={"progress": progress_logger},
    # One process: steps share memory (no pickling round-trips per step) and Polars never runs in a forked worker.
    executor=dg.in_process_executor,
)
