"""The Dagster code location: definitions, jobs, schedules, sensors, resources."""
import fangpin  # noqa: F401 - first: its Polars allocator options must be set before anything loads Polars
