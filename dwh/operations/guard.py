"""Start-up check that the flows run with the pipeline's own rights and no more (seed §12).

A superuser (or a role that may create roles, read other pipelines' schemas or write
outside its own) turns a bug in a catalog expression or a migration into damage far
beyond the pipeline, so the parent flow refuses to start with one and says why. The
source is somebody else's OLTP: the extract only reads it, so a superuser, or a role that
may write (or owns) any of the catalog's source tables, is refused there;
DWH_ALLOW_WRITABLE_SOURCE=true turns the second refusal into a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from dwh.core.catalog import Catalog
from dwh.core.settings import RunSettings, redact_conninfo
from dwh.core.sqlfiles import read_sql
from dwh.ingest.engine import Engine

_SUPERUSER = "it is a superuser"
_MAX_LISTED = 20
log = logging.getLogger(__name__)


class RoleRightsError(RuntimeError):
    """A connection's role has more rights than the pipeline needs; the message lists them."""


def pipeline_schemas(catalog: Catalog) -> list[str]:
    """The schemas a pipeline's owner may own: bronze, control and its analytical schema."""
    return [catalog.bronze_schema, catalog.control_schema, catalog.dwh_schema, catalog.ledger_schema]


def excess_rights(conn: psycopg.Connection[Any], catalog: Catalog, sql_dir: Path) -> list[str]:
    """What the connected role may do beyond the pipeline's needs; empty when it is fit."""
    params = {
        "schemas": pipeline_schemas(catalog),
        "roles": [catalog.owner_role],
        "ledger": catalog.ledger_schema,
    }
    rows = conn.execute(read_sql(sql_dir / "engine" / "role_rights.sql"), params).fetchall()
    problems = [str(problem) for _, problem in rows]
    if _SUPERUSER in problems:
        return [_SUPERUSER]  # it may do anything: listing what follows from that is noise
    return problems


def source_write_rights(conn: psycopg.Connection[Any], catalog: Catalog, sql_dir: Path) -> list[str]:
    """`schema.table: rights` for each catalog source table the connected role may write."""
    params = {
        "schemas": [catalog.source_schema_of(t) for t in catalog.tables],
        "tables": [t.source_table for t in catalog.tables],
    }
    rows = conn.execute(read_sql(sql_dir / "engine" / "source_write_rights.sql"), params).fetchall()
    return [f"{relation}: {rights}" for relation, rights in rows]


def _listed(problems: list[str]) -> str:
    shown = [f"  - {p}" for p in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        shown.append(f"  - ... and {len(problems) - _MAX_LISTED} more")
    return "\n".join(shown)


def check_roles(engine: Engine) -> None:
    """Refuse to run unless both connections are within the pipeline's rights."""
    catalog = engine.catalog
    refusal = f"refusing to run pipeline {catalog.pipeline}"
    with psycopg.connect(engine.source_conninfo, autocommit=True) as source:
        if source.info.parameter_status("is_superuser") == "on":
            msg = (
                f"{refusal}: the source connection {redact_conninfo(engine.source_conninfo)} is a "
                "superuser; connect as a role that can read the source tables and holds "
                "pg_read_all_stats, nothing more"
            )
            raise RoleRightsError(msg)
        writable = source_write_rights(source, catalog, engine.sql_dir)
    if writable:
        user = conninfo_to_dict(engine.source_conninfo).get("user", "?")
        what = f"the source role {user!r} may write the tables it extracts:\n{_listed(writable)}\n"
        fix = "Connect as a role with SELECT on them (and pg_read_all_stats), nothing more"
        if not RunSettings().allow_writable_source:
            msg = f"{refusal}: {what}{fix}, or set DWH_ALLOW_WRITABLE_SOURCE=true to run with a warning."
            raise RoleRightsError(msg)
        log.warning("pipeline %s: %s%s (DWH_ALLOW_WRITABLE_SOURCE is set)", catalog.pipeline, what, fix)
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as warehouse:
        problems = excess_rights(warehouse, catalog, engine.sql_dir)
    if problems:
        user = conninfo_to_dict(engine.warehouse_conninfo).get("user", "?")
        msg = (
            f"{refusal}: the warehouse role {user!r} "
            f"({redact_conninfo(engine.warehouse_conninfo)}) has rights beyond the pipeline's:\n"
            f"{_listed(problems)}\nThe flows must connect as {catalog.owner_role} (DWH_WAREHOUSE_URL without "
            f"a user) holding only what `dwh migrate {catalog.pipeline}` grants it."
        )
        raise RoleRightsError(msg)


def guarded_engine(pipeline: str, *, tolerate_unreachable: bool = False) -> Engine:
    """The engine every flow and command starts from, after the role check (seed §12).

    `tolerate_unreachable` is for health, whose job is to report a database that does
    not answer: then the check is left to the reachability checks that follow.
    """
    engine = Engine.from_settings(pipeline)
    try:
        check_roles(engine)
    except psycopg.OperationalError:
        if not tolerate_unreachable:
            raise
    return engine
