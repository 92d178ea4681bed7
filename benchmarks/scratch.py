"""Fresh databases for one benchmark run, on the dev stack's cluster."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import psycopg
from psycopg import sql


def with_db(url: str, db: str) -> str:
    """URL with its database replaced by `db`."""
    return f"{url.rpartition('/')[0]}/{quote(db)}"


def fresh_databases(stack_env: dict[str, str], *, source: bool = True) -> dict[str, str]:
    """A new warehouse (and source) database; the DWH_* environment pointing at them.

    Each run gets its own, so a benchmark never measures a previous run's leftovers.
    """
    tag = uuid.uuid4().hex[:8]
    src, wh = f"bench_{tag}_src", f"bench_{tag}_wh"
    admin = stack_env["DWH_WAREHOUSE_ADMIN_URL"]
    made = [(src, "source_app")] if source else []
    with psycopg.connect(with_db(admin, "postgres"), autocommit=True) as conn:
        for name, owner in [*made, (wh, "postgres")]:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template_postgis OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(owner)
                )
            )
    env = {
        **stack_env,
        "DWH_WAREHOUSE_URL": with_db(stack_env["DWH_WAREHOUSE_URL"], wh),
        "DWH_WAREHOUSE_ADMIN_URL": with_db(admin, wh),
    }
    if source:
        env |= {
            "DWH_SOURCE_URL": with_db(stack_env["DWH_SOURCE_URL"], src),
            "DWH_SEED_URL": with_db(stack_env["DWH_SEED_URL"], src),
        }
    return env
