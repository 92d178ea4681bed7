"""Everything one pipeline's engine needs, resolved once from settings.

Flows receive only names (pipeline, tables) as parameters; connection strings with
passwords are built here, inside the worker, so they never appear in flow
parameters, persisted results or the Prefect UI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from dwh.core.blocks import source_settings, warehouse_settings
from dwh.core.catalog import Catalog, load_catalog
from dwh.core.settings import RunSettings, StorageSettings
from dwh.ingest.storage import Location, open_location


@dataclass(frozen=True)
class Progress:
    """A snapshot of a long extract or load, for logs and progress bars."""

    table: str
    phase: str  # "extract" or "load"
    rows: int
    size: int
    seconds: float
    done: bool = False

    def describe(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.table}: {self.phase} {self.rows:,} rows, {self.size / 2**20:,.1f} MB "
            f"in {self.seconds:,.1f} s ({rate:,.0f} rows/s)"
        )


ProgressFn = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """Default progress sink."""


@dataclass
class Throttle:
    """Calls the sink at most every `interval` seconds (plus the final report)."""

    sink: ProgressFn
    table: str
    phase: str
    interval: float = 10.0
    started: float = field(default_factory=time.monotonic)
    _last: float = field(default_factory=time.monotonic)

    def __call__(self, rows: int, size: int, *, done: bool = False) -> None:
        now = time.monotonic()
        if done or now - self._last >= self.interval:
            self._last = now
            self.sink(Progress(self.table, self.phase, rows, size, now - self.started, done))


@dataclass(frozen=True)
class Engine:
    catalog: Catalog
    source_conninfo: str = field(repr=False)
    warehouse_conninfo: str = field(repr=False)
    location: Location
    sql_dir: Path
    timezone: str

    @classmethod
    def from_settings(cls, pipeline: str) -> Engine:
        run = RunSettings()
        catalog = load_catalog(pipeline, run.pipelines_dir)
        return cls(
            catalog=catalog,
            # From the environment, or from the Prefect blocks DWH_*_BLOCK names.
            source_conninfo=source_settings().conninfo(),
            warehouse_conninfo=warehouse_settings().owner_conninfo(pipeline),
            location=open_location(StorageSettings()),
            sql_dir=run.sql_dir,
            timezone=run.timezone,
        )

    @classmethod
    def for_pipeline(cls, pipeline: str) -> Engine:
        """The engine `shared_engine` lends to this chain, else one resolved from settings."""
        shared = _SHARED.get()
        if shared is not None and shared.catalog.pipeline == pipeline:
            return shared
        return cls.from_settings(pipeline)


# Resolving an engine reads the catalog YAML and the settings and may load blocks from
# the Prefect server; a table's chain (recovery, extract, load) resolves it once and
# lends it to its subflows and tasks, which run in the chain's thread and context.
_SHARED: ContextVar[Engine | None] = ContextVar("dwh_shared_engine", default=None)


@contextmanager
def shared_engine(engine: Engine) -> Iterator[Engine]:
    """Within the block, `Engine.for_pipeline(<its pipeline>)` returns `engine`."""
    token = _SHARED.set(engine)
    try:
        yield engine
    finally:
        _SHARED.reset(token)
