"""Every name derived from a pipeline's name: schemas, roles and advisory-lock keys.

One place, so two spellings cannot drift apart, and lock keys in separate namespaces:
a table named `export` or `etl` must not take the lock of the flow of that name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

# A pipeline, table, column or document name: a plain lower-case SQL identifier.
IDENT_PATTERN = r"^[a-z_][a-z0-9_]*$"
Ident = Annotated[str, Field(pattern=IDENT_PATTERN, max_length=40)]

# What a lock guards: one table's chain (extract, load, import); one run of a flow
# (etl, datamarts, export_json); one transaction of a step inside a run (transform);
# one datamart's refresh; `dwh migrate`.
LockKind = Literal["table", "flow", "step", "datamart", "migrate"]


def bronze_schema(pipeline: str) -> str:
    return f"{pipeline}_bronze"


def control_schema(pipeline: str) -> str:
    return f"{pipeline}_control"


def ledger_schema(pipeline: str) -> str:
    """Owned by the admin: the owner may add lines, never change them (backups)."""
    return f"{pipeline}_ledger"


def dwh_schema(pipeline: str) -> str:
    """The analytical schema (star schema, datamarts) of a pipeline that has one."""
    return f"{pipeline}_dwh"


def owner_role(pipeline: str) -> str:
    """The role the flows connect as: owns bronze, control and the analytical schema."""
    return f"{pipeline}_owner"


def ro_role(pipeline: str) -> str:
    """Reads bronze and the views only (dashboards)."""
    return f"{pipeline}_ro"


def lock_key(pipeline: str, kind: LockKind, name: str) -> str:
    """The advisory-lock key (hashed by `hashtext` in SQL): `dwh:<pipeline>:<kind>:<name>`."""
    if not name:
        msg = f"a {kind} lock of pipeline {pipeline!r} needs a name"
        raise ValueError(msg)
    return f"dwh:{pipeline}:{kind}:{name}"
