"""Names of CSV parts in object storage (seed §4 Phase B).

`<prefix>/<pipeline>/exports/<table>/<YYYYMMDD_HHMM>_<TZ>_<run_id>_<part>.csv`: the
timestamp is the extract's upper bound on the source clock, with the timezone in the
name because "08:00" means nothing a year later; the run id ties every part to its
row in extract_runs, which is what recovery keys on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from dwh.ingest.storage import Location

_PART = re.compile(r"^(?P<stamp>\d{8}_\d{4})_(?P<tz>[A-Za-z0-9+-]+)_(?P<run_id>\d+)_(?P<part>\d{4,})\.csv$")


@dataclass(frozen=True, order=True)
class PartName:
    run_id: int
    part: int
    filename: str


def part_filename(moment: datetime, timezone: str, run_id: int, part: int) -> str:
    local = moment.astimezone(ZoneInfo(timezone))
    tz = re.sub(r"[^A-Za-z0-9+-]", "", local.strftime("%Z")) or "UTC"
    return f"{local:%Y%m%d_%H%M}_{tz}_{run_id}_{part:04d}.csv"


def run_glob(moment: datetime, timezone: str, run_id: int) -> str:
    """The csv_path recorded for a run: one pattern naming all of its parts."""
    return part_filename(moment, timezone, run_id, 0).replace("_0000.csv", "_*.csv")


def parse_part(filename: str) -> PartName | None:
    match = _PART.match(filename)
    if match is None:
        return None
    return PartName(int(match["run_id"]), int(match["part"]), filename)


def exports_prefix(location: Location, pipeline: str, table: str) -> str:
    return location.key(pipeline, "exports", table)


def processed_prefix(location: Location, pipeline: str, table: str) -> str:
    return location.key(pipeline, "processed", table)


def rejected_prefix(location: Location, pipeline: str, table: str) -> str:
    """Parts of extracts that never finished: kept for audit, never loaded."""
    return location.key(pipeline, "rejected", table)
