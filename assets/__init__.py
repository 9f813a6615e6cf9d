"""Dagster asset definitions, one module per domain area."""
import fangpin  # noqa: F401 - first: its Polars allocator options must be set before anything loads Polars
