"""The monthly run: every asset of one month's partition, one writer at a time."""
import dagster as dg

# Runs carrying this tag are limited to one at a time by the run queue (see .dagster_home/dagster.yaml), so a
# scheduled run and a sensor run never write the warehouse together; fangpin's own file lock backs this up.
WRITER_TAG_KEY = "fangpin/warehouse"
WRITER_TAG = {WRITER_TAG_KEY: "writer"}  # a province's county runs carry their county instead (pipelines.province)

monthly_run = dg.define_asset_job(
    "monthly_run",
    selection=dg.AssetSelection.all(),
    tags=WRITER_TAG,
    description="Ingest a month's department lists and roster, link, warn, export (one month partition).",
)
