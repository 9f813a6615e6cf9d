"""Resources, configured once in `Definitions`: where the data lives and the one warehouse writer."""

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb

from fangpin import warehouse
from fangpin.config import PROJECT_ROOT


def default_data_dir() -> str:
    """`FANGPIN_DATA_DIR`, else the project's `data/` folder."""
    return os.environ.get("FANGPIN_DATA_DIR", str(PROJECT_ROOT / "data"))


class FangpinData(dg.ConfigurableResource):
    """The data directory: `raw/` drop zone, `warehouse/fangpin.duckdb`, `exports/`."""

    data_dir: str

    @property
    def root(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def warehouse_path(self) -> Path:
        return warehouse.warehouse_path(self.root)

    def exports_dir(self, month: str) -> Path:
        return self.root / "exports" / month

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single writing connection (waits a bounded time for another writer, then says who holds it)."""
        with warehouse.writer(self.root) as con:
            yield con
