"""The ETL flow's old entrypoint, `flows/osm_notes.py:osm_notes_etl`, kept for one release.

The flow is generic and now lives in `flows/etl.py` as `etl`; a deployment registered
with the old entrypoint before an upgrade still finds its flow here. Re-register it
(`prefect deploy --all`) to move it to the new one.
"""

from __future__ import annotations

from flows.etl import etl

osm_notes_etl = etl

__all__ = ["osm_notes_etl"]
