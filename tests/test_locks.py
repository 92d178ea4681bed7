"""Advisory locks: one key format, separate namespaces for tables and flows."""

from __future__ import annotations

import pytest

from dwh.core.names import lock_key
from dwh.ingest.locks import exclusive_run, table_lock
from tests.conftest import Env


def test_a_table_and_a_flow_of_the_same_name_get_different_keys() -> None:
    assert lock_key("osm_notes", "table", "export_json") == "dwh:osm_notes:table:export_json"
    assert lock_key("osm_notes", "flow", "export_json") == "dwh:osm_notes:flow:export_json"
    kinds = ("table", "flow", "step", "datamart", "migrate")
    assert len({lock_key("p", kind, "etl") for kind in kinds}) == len(kinds)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a name"):
        lock_key("p", "table", "")


def test_a_table_named_like_a_flow_is_not_locked_by_that_flow(env: Env) -> None:
    """A table called `etl` (or `datamarts`, `export_json`) must not be skipped while that flow runs."""
    env.migrate()
    engine = env.engine()
    conninfo = engine.warehouse_conninfo
    with exclusive_run(conninfo, lock_key(env.pipeline, "flow", "etl")) as flow_held:
        assert flow_held
        with table_lock(engine, "etl") as table_held:
            assert table_held
        # The same namespace still excludes: a second holder of the table's lock is refused.
        with table_lock(engine, "trips") as first, table_lock(engine, "trips") as second:
            assert (first, second) == (True, False)
        with exclusive_run(conninfo, lock_key(env.pipeline, "flow", "etl")) as second_run:
            assert not second_run
