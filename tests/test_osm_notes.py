"""OSM-notes analytics end to end on real PostGIS: source → bronze → star schema → datamarts.

A small source written here (6 notes, 5 users, 2 countries) has every fact and every
datamart metric computed by hand; a second batch of activity (a reopen, a close, a
comment back-filled with an old timestamp, a rename, an invalid transition) checks the
incremental run against hand values and against a full rebuild, row for row. The
generator (`dwh seed-source osm_notes`) feeds the same checks at a larger scale.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from typer.testing import CliRunner

from dwh.catalog import load_catalog
from dwh.cli import app
from dwh.datamarts import refresh_datamarts
from dwh.engine import Engine
from dwh.extract import extract_table
from dwh.load import load_pending
from dwh.migrate import MigrationError, migrate
from dwh.rebuild_check import RebuildMismatchError
from dwh.seed import seed_source
from dwh.settings import WarehouseSettings
from dwh.transform import TransformError, TransformResult, run_transform
from flows.osm_notes import EtlOutcome, etl_outcome, osm_notes_etl, skipped_message
from tasks.transform import transform_task
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env, app_conninfo
from tests.test_faults import _on_failpoint

pytestmark = pytest.mark.usefixtures("prefect_harness")

PIPELINE = "osm_notes"
DWH = "osm_notes_dwh"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def osm(env: Env) -> Env:
    """The test's own warehouse migrated for osm_notes, and the source tables (empty)."""
    env.pipeline = PIPELINE
    env.migrate()
    source_sql((SQL_DIR / PIPELINE / "source" / "schema.sql").read_text())
    return env


def source_sql(statements: str) -> None:
    """Run statements as the source application role, like the OLTP would."""
    with psycopg.connect(app_conninfo()) as conn:  # type: ignore[call-arg]
        conn.execute(statements.encode())


def owner() -> str:
    return WarehouseSettings().owner_conninfo(PIPELINE)  # type: ignore[call-arg]


def transform(*, rebuild: bool = False) -> TransformResult:
    return run_transform(load_catalog(PIPELINE, PIPELINES_DIR), owner(), SQL_DIR, rebuild=rebuild)


def refresh(*, full_rebuild: bool = False) -> None:
    refresh_datamarts(load_catalog(PIPELINE, PIPELINES_DIR), owner(), SQL_DIR, full_rebuild=full_rebuild)


def sync_bronze(tables: list[str] | None = None) -> None:
    """The engine's extract and load without Prefect (the flow costs ~10 s of subflows)."""
    engine = Engine.from_settings(PIPELINE)
    for spec in engine.catalog.select(tables):
        extract_table(engine, spec)
        load_pending(engine, spec)


def etl() -> TransformResult:
    """One scheduled run of the ETL flow; returns what its transform did."""
    outcome = etl_outcome(osm_notes_etl(return_state=True))
    assert not outcome.skipped
    assert outcome.transform is not None
    return outcome.transform


def rows(env: Env, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(env.warehouse_admin) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query.encode()).fetchall()


def datamart(env: Env, name: str, key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows(env, f"SELECT * FROM {DWH}.datamart_{name} ORDER BY {key}")}


def snapshot(env: Env) -> dict[str, list[dict[str, Any]]]:
    """Every datamart, row for row."""
    return {
        "users": rows(env, f"SELECT * FROM {DWH}.datamart_users ORDER BY user_id"),
        "countries": rows(env, f"SELECT * FROM {DWH}.datamart_countries ORDER BY country_id"),
        "global": rows(env, f"SELECT * FROM {DWH}.datamart_global"),
    }


# ----------------------------------------------------------------------------- fixed data
# Alpha (100) is the square 0..10 x 0..10; Beta (200) a square 20..30 x 0..10 plus an
# island 40..42 x 0..2. Note 3 is at sea. Note 4's second action is missing until the
# second batch back-fills it with its old timestamp.
FIRST_BATCH = """
INSERT INTO public.countries (country_id, name, name_en, iso_alpha2, iso_alpha3, geom) VALUES
    (100, 'Alpha', 'Alpha', 'AA', 'AAA',
     ST_Multi(ST_MakeEnvelope(0, 0, 10, 10, 4326))),
    (200, 'Βήτα', 'Beta', 'BB', 'BBB',
     ST_Multi(ST_Collect(ST_MakeEnvelope(20, 0, 30, 10, 4326), ST_MakeEnvelope(40, 0, 42, 2, 4326))));
INSERT INTO public.users (user_id, username) VALUES
    (11, 'ana'), (22, 'bob'), (33, 'chen'), (55, 'eve');
INSERT INTO public.notes (note_id, geom, created_at, closed_at, status) VALUES
    (1, ST_Point(5, 5, 4326), '2024-01-01 10:00Z', '2024-01-03 10:00Z', 'closed'),
    (2, ST_Point(25, 5, 4326), '2024-01-06 12:00Z', '2024-01-10 00:00Z', 'closed'),
    (3, ST_Point(50, 50, 4326), '2025-03-01 08:00Z', NULL, 'open'),
    (4, ST_Point(41, 1, 4326), '2025-03-02 09:30Z', NULL, 'hidden'),
    (6, ST_Point(22, 2, 4326), '2024-02-01 06:00Z', NULL, 'open');
INSERT INTO public.note_comments (note_id, sequence, action, user_id, created_at, body) VALUES
    (1, 1, 'opened', 11, '2024-01-01 10:00Z', 'Missing shop #Mapathon #fixme via StreetComplete 58.1'),
    (1, 2, 'commented', 22, '2024-01-02 10:00Z', 'Is this still valid? #fixme'),
    (1, 3, 'closed', 22, '2024-01-03 10:00Z', 'Fixed'),
    (1, 4, 'closed', 33, '2024-01-04 10:00Z', 'Fixed again?'),
    (2, 1, 'opened', NULL, '2024-01-06 12:00Z', E'Bridge closed\n#OsmAnd'),
    (2, 2, 'closed', 11, '2024-01-07 12:00Z', NULL),
    (2, 3, 'reopened', 22, '2024-01-08 12:00Z', 'Still wrong'),
    (2, 4, 'closed', 22, '2024-01-10 00:00Z', ''),
    (3, 1, 'opened', 33, '2025-03-01 08:00Z', 'Buoy missing'),
    (4, 1, 'opened', 22, '2025-03-02 09:30Z', 'Pier #地図 #Mapathon'),
    (4, 3, 'hidden', 22, '2025-03-03 09:30Z', NULL),
    (6, 1, 'opened', 55, '2024-02-01 06:00Z', 'Bench #Bänke');
"""

# Note 1 reopened (its opener ana does nothing else: only the opener mark refreshes
# her "still open" count), note 3 closed by a new user,
# note 4's missing comment back-filled with its 2025 timestamp, bob renamed, a new note
# whose second action is invalid (reopening an open note). eve is not touched.
SECOND_BATCH = """
INSERT INTO public.users (user_id, username) VALUES (44, 'dan');
UPDATE public.users SET username = 'robert', updated_at = clock_timestamp() WHERE user_id = 22;
INSERT INTO public.notes (note_id, geom, created_at, status) VALUES
    (5, ST_Point(6, 6, 4326), '2025-06-01 12:00Z', 'open');
UPDATE public.notes SET status = 'open', closed_at = NULL, updated_at = clock_timestamp() WHERE note_id = 1;
UPDATE public.notes SET status = 'closed', closed_at = '2025-03-05 08:00Z', updated_at = clock_timestamp()
WHERE note_id = 3;
INSERT INTO public.note_comments (note_id, sequence, action, user_id, created_at, body) VALUES
    (1, 5, 'reopened', 33, '2025-01-01 00:00Z', 'Not fixed'),
    (3, 2, 'closed', 44, '2025-03-05 08:00Z', 'Buoy is back'),
    (4, 2, 'commented', 33, '2025-03-02 21:30Z', 'Seen from the ferry'),
    (5, 1, 'opened', 44, '2025-06-01 12:00Z', 'New café #mapathon via StreetComplete 60.0'),
    (5, 2, 'reopened', 44, '2025-06-02 12:00Z', NULL);
"""

FACTS = f"""
SELECT
    f.note_id, f.sequence, f.action, f.action_at, actor.user_id AS actor, opener.user_id AS opener,
    c.country_id, a.name AS app, f.action_position, f.days_open, f.days_to_resolution, f.is_opener,
    f.is_valid_transition, f.note_status_after, f.hashtag_count, f.action_date_key,
    f.action_time_of_week_key, f.opened_date_key
FROM {DWH}.facts AS f
JOIN {DWH}.dim_users AS actor ON actor.user_key = f.actor_user_key
JOIN {DWH}.dim_users AS opener ON opener.user_key = f.opener_user_key
JOIN {DWH}.dim_countries AS c ON c.country_key = f.country_key
JOIN {DWH}.dim_applications AS a ON a.application_key = f.application_key
ORDER BY f.note_id, f.sequence
"""

SC, OSMAND, UNKNOWN = "StreetComplete", "OsmAnd", "unknown"
D = Decimal


def facts(env: Env) -> list[tuple[Any, ...]]:
    """Every fact with its keys resolved to natural values, in FACTS' column order."""
    return [tuple(row.values()) for row in rows(env, FACTS)]


# Hand-computed, in FACTS' column order. Time of week: ISO day * 100 + UTC hour; -1 is
# anonymous (users) or international waters (countries).
FIRST_FACTS = [
    (1, 1, "opened", ts("2024-01-01 10:00"), 11, 11, 100, SC, 1, D(0), None, True, True, "open", 2, 20240101, 110, 20240101),
    (1, 2, "commented", ts("2024-01-02 10:00"), 22, 11, 100, SC, 2, D(1), None, False, True, "open", 1, 20240102, 210, 20240101),
    (1, 3, "closed", ts("2024-01-03 10:00"), 22, 11, 100, SC, 3, D(2), D(2), False, True, "closed", 0, 20240103, 310, 20240101),
    (1, 4, "closed", ts("2024-01-04 10:00"), 33, 11, 100, SC, 4, D(3), None, False, False, "closed", 0, 20240104, 410, 20240101),
    (2, 1, "opened", ts("2024-01-06 12:00"), -1, -1, 200, OSMAND, 1, D(0), None, False, True, "open", 1, 20240106, 612, 20240106),
    (2, 2, "closed", ts("2024-01-07 12:00"), 11, -1, 200, OSMAND, 2, D(1), D(1), False, True, "closed", 0, 20240107, 712, 20240106),
    (2, 3, "reopened", ts("2024-01-08 12:00"), 22, -1, 200, OSMAND, 3, D(2), None, False, True, "open", 0, 20240108, 112, 20240106),
    (2, 4, "closed", ts("2024-01-10 00:00"), 22, -1, 200, OSMAND, 4, D("3.5"), D("1.5"), False, True, "closed", 0, 20240110, 300, 20240106),
    (3, 1, "opened", ts("2025-03-01 08:00"), 33, 33, -1, UNKNOWN, 1, D(0), None, True, True, "open", 0, 20250301, 608, 20250301),
    (4, 1, "opened", ts("2025-03-02 09:30"), 22, 22, 200, UNKNOWN, 1, D(0), None, True, True, "open", 2, 20250302, 709, 20250302),
    (4, 3, "hidden", ts("2025-03-03 09:30"), 22, 22, 200, UNKNOWN, 2, D(1), None, True, True, "hidden", 0, 20250303, 109, 20250302),
    (6, 1, "opened", ts("2024-02-01 06:00"), 55, 55, 200, UNKNOWN, 1, D(0), None, True, True, "open", 1, 20240201, 406, 20240201),
]  # fmt: skip


def hours(**counts: int) -> list[int]:
    """A 24-slot UTC hour histogram from h<hour>=count."""
    return [counts.get(f"h{h}", 0) for h in range(24)]


def top_countries(*entries: tuple[int, str, int]) -> list[dict[str, object]]:
    return [
        {"rank": rank, "country_id": cid, "name": name, "actions": n}
        for rank, (cid, name, n) in enumerate(entries, start=1)
    ]


def top_hashtags(*entries: tuple[str, int]) -> list[dict[str, object]]:
    return [{"rank": rank, "hashtag": tag, "actions": n} for rank, (tag, n) in enumerate(entries, start=1)]


def top_users(*entries: tuple[int, str, int]) -> list[dict[str, object]]:
    return [
        {"rank": rank, "user_id": uid, "username": name, "actions": n}
        for rank, (uid, name, n) in enumerate(entries, start=1)
    ]


ALPHA, BETA, SEA = (100, "Alpha"), (200, "Beta"), (-1, "International waters")

FIRST_USERS: dict[int, dict[str, object]] = {
    11: {
        "username": "ana", "actions": 2, "opened": 1, "commented": 0, "closed": 1, "reopened": 0, "hidden": 0,
        "actions_by_year": {"2024": {"opened": 1, "closed": 1}},
        "first_action_at": ts("2024-01-01 10:00"), "last_action_at": ts("2024-01-07 12:00"),
        "notes_opened": 1, "notes_opened_still_open": 0,
        "resolutions": 1, "mean_resolution_days": D(1), "median_resolution_days": D(1),
        "top_countries": top_countries((*ALPHA, 1), (*BETA, 1)),
        "top_hashtags": top_hashtags(("fixme", 1), ("mapathon", 1)),
        "activity_by_hour": hours(h10=1, h12=1), "activity_by_weekday": [1, 0, 0, 0, 0, 0, 1],
        "rank_by_actions": 2, "rank_by_closed": 2,
    },
    22: {
        "username": "bob", "actions": 6, "opened": 1, "commented": 1, "closed": 2, "reopened": 1, "hidden": 1,
        "actions_by_year": {"2024": {"commented": 1, "closed": 2, "reopened": 1}, "2025": {"opened": 1, "hidden": 1}},
        "first_action_at": ts("2024-01-02 10:00"), "last_action_at": ts("2025-03-03 09:30"),
        "notes_opened": 1, "notes_opened_still_open": 0,
        "resolutions": 2, "mean_resolution_days": D("1.75"), "median_resolution_days": D("1.75"),
        "top_countries": top_countries((*BETA, 4), (*ALPHA, 2)),
        "top_hashtags": top_hashtags(("fixme", 1), ("mapathon", 1), ("地図", 1)),
        "activity_by_hour": hours(h0=1, h9=2, h10=2, h12=1), "activity_by_weekday": [2, 1, 2, 0, 0, 0, 1],
        "rank_by_actions": 1, "rank_by_closed": 1,
    },
    33: {
        "username": "chen", "actions": 2, "opened": 1, "commented": 0, "closed": 0, "reopened": 0, "hidden": 0,
        # closing the closed note 1 is an action, not a close
        "actions_by_year": {"2024": {"invalid_close": 1}, "2025": {"opened": 1}},
        "first_action_at": ts("2024-01-04 10:00"), "last_action_at": ts("2025-03-01 08:00"),
        "notes_opened": 1, "notes_opened_still_open": 1,
        "resolutions": 0, "mean_resolution_days": None, "median_resolution_days": None,
        "top_countries": top_countries((*SEA, 1), (*ALPHA, 1)),
        "top_hashtags": [],
        "activity_by_hour": hours(h8=1, h10=1), "activity_by_weekday": [0, 0, 0, 1, 0, 1, 0],
        "rank_by_actions": 2, "rank_by_closed": 3,
    },
    55: {
        "username": "eve", "actions": 1, "opened": 1, "commented": 0, "closed": 0, "reopened": 0, "hidden": 0,
        "actions_by_year": {"2024": {"opened": 1}},
        "first_action_at": ts("2024-02-01 06:00"), "last_action_at": ts("2024-02-01 06:00"),
        "notes_opened": 1, "notes_opened_still_open": 1,
        "resolutions": 0, "mean_resolution_days": None, "median_resolution_days": None,
        "top_countries": top_countries((*BETA, 1)),
        "top_hashtags": top_hashtags(("bänke", 1)),
        "activity_by_hour": hours(h6=1), "activity_by_weekday": [0, 0, 0, 1, 0, 0, 0],
        "rank_by_actions": 4, "rank_by_closed": 3,
    },
}  # fmt: skip

FIRST_COUNTRIES: dict[int, dict[str, object]] = {
    -1: {
        "name": "International waters", "name_en": "International waters", "iso_alpha2": None, "iso_alpha3": None,
        "actions": 1, "opened": 1, "commented": 0, "closed": 0, "reopened": 0, "hidden": 0,
        "actions_by_year": {"2025": {"opened": 1}},
        "first_action_at": ts("2025-03-01 08:00"), "last_action_at": ts("2025-03-01 08:00"),
        "notes_opened": 1, "notes_opened_still_open": 1, "users_active": 1,
        "resolutions": 0, "mean_resolution_days": None, "median_resolution_days": None,
        "top_users": top_users((33, "chen", 1)), "top_hashtags": [],
        "activity_by_hour": hours(h8=1), "activity_by_weekday": [0, 0, 0, 0, 0, 1, 0],
        "rank_by_actions": None, "rank_by_closed": None,  # no country: never ranked
    },
    100: {
        "name": "Alpha", "name_en": "Alpha", "iso_alpha2": "AA", "iso_alpha3": "AAA",
        "actions": 4, "opened": 1, "commented": 1, "closed": 1, "reopened": 0, "hidden": 0,
        "actions_by_year": {"2024": {"opened": 1, "commented": 1, "closed": 1, "invalid_close": 1}},
        "first_action_at": ts("2024-01-01 10:00"), "last_action_at": ts("2024-01-04 10:00"),
        "notes_opened": 1, "notes_opened_still_open": 0, "users_active": 3,
        "resolutions": 1, "mean_resolution_days": D(2), "median_resolution_days": D(2),
        "top_users": top_users((22, "bob", 2), (11, "ana", 1), (33, "chen", 1)),
        "top_hashtags": top_hashtags(("fixme", 2), ("mapathon", 1)),
        "activity_by_hour": hours(h10=4), "activity_by_weekday": [1, 1, 1, 1, 0, 0, 0],
        "rank_by_actions": 2, "rank_by_closed": 2,
    },
    200: {
        "name": "Βήτα", "name_en": "Beta", "iso_alpha2": "BB", "iso_alpha3": "BBB",
        "actions": 7, "opened": 3, "commented": 0, "closed": 2, "reopened": 1, "hidden": 1,
        "actions_by_year": {"2024": {"opened": 2, "closed": 2, "reopened": 1}, "2025": {"opened": 1, "hidden": 1}},
        "first_action_at": ts("2024-01-06 12:00"), "last_action_at": ts("2025-03-03 09:30"),
        "notes_opened": 3, "notes_opened_still_open": 1, "users_active": 3,
        "resolutions": 2, "mean_resolution_days": D("1.25"), "median_resolution_days": D("1.25"),
        "top_users": top_users((22, "bob", 4), (11, "ana", 1), (55, "eve", 1)),
        "top_hashtags": top_hashtags(("bänke", 1), ("mapathon", 1), ("osmand", 1), ("地図", 1)),
        "activity_by_hour": hours(h0=1, h6=1, h9=2, h12=3), "activity_by_weekday": [2, 0, 1, 1, 0, 1, 2],
        "rank_by_actions": 1, "rank_by_closed": 1,
    },
}  # fmt: skip

FIRST_GLOBAL: dict[str, object] = {
    "actions": 12, "opened": 5, "commented": 1, "closed": 3, "reopened": 1, "hidden": 1,
    "actions_by_year": {
        "2024": {"opened": 3, "commented": 1, "closed": 3, "invalid_close": 1, "reopened": 1},
        "2025": {"opened": 2, "hidden": 1},
    },
    "opened_by_month": {"2024-01": 2, "2024-02": 1, "2025-03": 2},
    "closed_by_month": {"2024-01": 3},
    "first_action_at": ts("2024-01-01 10:00"), "last_action_at": ts("2025-03-03 09:30"),
    "notes": 5, "notes_open": 2, "notes_closed": 2, "notes_hidden": 1,
    "users_active": 4, "countries_active": 2, "anonymous_actions": 1, "invalid_transitions": 1,
    "resolutions": 3, "mean_resolution_days": D("1.5"), "median_resolution_days": D("1.5"),
    "top_countries": top_countries((*BETA, 7), (*ALPHA, 4)),  # international waters is no country
    "top_users": top_users((22, "bob", 6), (11, "ana", 2), (33, "chen", 2), (55, "eve", 1)),
    "top_hashtags": top_hashtags(("fixme", 2), ("mapathon", 2), ("bänke", 1), ("osmand", 1), ("地図", 1)),
    "top_applications": [
        {"rank": 1, "application": "unknown", "notes": 3},
        {"rank": 2, "application": "OsmAnd", "notes": 1},
        {"rank": 3, "application": "StreetComplete", "notes": 1},
    ],
    "activity_by_hour": hours(h0=1, h6=1, h8=1, h9=2, h10=4, h12=3),
    "activity_by_weekday": [3, 1, 2, 2, 0, 2, 2],
}  # fmt: skip


def assert_matches(actual: dict[str, Any], expected: dict[str, object], where: str) -> None:
    differences = {k: (actual[k], v) for k, v in expected.items() if actual[k] != v}
    assert not differences, f"{where}: (actual, expected) per column: {differences}"


def first_batch(*, flow: bool = True) -> TransformResult:
    source_sql(FIRST_BATCH)
    if flow:
        result = etl()
    else:
        sync_bronze()
        result = transform()
    refresh()
    return result


# ----------------------------------------------------------------------------- tests


def test_migrate_runs_the_pipeline_bootstrap_so_the_owner_owns_the_dwh_schema(osm: Env) -> None:
    owner_of = osm.query("wh", "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s", (DWH,))
    assert owner_of == [("osm_notes_owner",)]
    tables = {r[0] for r in osm.query("wh", "SELECT tablename FROM pg_tables WHERE schemaname = %s", (DWH,))}
    assert {
        "facts",
        "fact_hashtags",
        "dim_users",
        "dim_countries",
        "datamart_users",
        "datamart_global",
    } <= tables
    migrate(osm.catalog(), WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]  # idempotent
    with psycopg.connect(WarehouseSettings().ro_conninfo(PIPELINE), autocommit=True) as ro:  # type: ignore[call-arg]
        ro.execute(f"SELECT count(*) FROM {DWH}.datamart_users JOIN {DWH}.facts ON false")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ro.execute(f"SELECT count(*) FROM {DWH}.datamart_dirty_users")


def test_broken_pipeline_bootstrap_fails_migrate_naming_its_file(env: Env, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    (sql_dir / PIPELINE / "bootstrap.sql").write_text("CREATE SCHEMA {dwh} AUTHORIZATION no_such_role;\n")
    env.pipeline = PIPELINE

    with pytest.raises(MigrationError, match=r"osm_notes/bootstrap\.sql.*no_such_role"):
        migrate(env.catalog(), WarehouseSettings(), sql_dir)  # type: ignore[call-arg]


def test_facts_dimensions_and_every_datamart_metric_match_hand_computed_values(osm: Env) -> None:
    result = first_batch()

    assert result.first_run
    assert (result.comments_in_window, result.facts_inserted, result.facts_updated) == (12, 12, 0)
    assert result.invalid_transitions == 1
    assert [t.describe() for t in result.invalid_examples] == ["note 1 #4: closed while closed"]
    assert result.status_mismatches == 0
    assert facts(osm) == FIRST_FACTS
    hashtags = rows(
        osm,
        f"""SELECT f.note_id, f.sequence, array_agg(h.hashtag ORDER BY b.position) AS tags
        FROM {DWH}.fact_hashtags AS b JOIN {DWH}.facts AS f USING (fact_id)
        JOIN {DWH}.dim_hashtags AS h USING (hashtag_key) GROUP BY 1, 2 ORDER BY 1, 2""",
    )
    assert [(h["note_id"], h["sequence"], h["tags"]) for h in hashtags] == [
        (1, 1, ["mapathon", "fixme"]),
        (1, 2, ["fixme"]),
        (2, 1, ["osmand"]),
        (4, 1, ["地図", "mapathon"]),
        (6, 1, ["bänke"]),
    ]
    notes = rows(osm, f"SELECT note_id, status, closed_at, actions FROM {DWH}.dim_notes ORDER BY note_id")
    assert [tuple(n.values()) for n in notes] == [
        (1, "closed", ts("2024-01-03 10:00"), 4),
        (2, "closed", ts("2024-01-10 00:00"), 4),
        (3, "open", None, 1),
        (4, "hidden", None, 2),
        (6, "open", None, 1),
    ]
    days = rows(osm, f"SELECT * FROM {DWH}.dim_dates WHERE date_key = 20240106")
    assert (days[0]["day_name"], days[0]["iso_day_of_week"], days[0]["is_weekend"]) == ("Saturday", 6, True)

    users = datamart(osm, "users", "user_id")
    assert set(users) == set(FIRST_USERS)  # keyed by the OSM uid; anonymous has no row
    for user_id, expected in FIRST_USERS.items():
        assert_matches(users[user_id], expected, f"datamart_users {user_id}")
    countries = datamart(osm, "countries", "country_id")
    assert set(countries) == set(FIRST_COUNTRIES)
    for country_id, expected in FIRST_COUNTRIES.items():
        assert_matches(countries[country_id], expected, f"datamart_countries {country_id}")
    (global_row,) = rows(osm, f"SELECT * FROM {DWH}.datamart_global")
    assert_matches(global_row, FIRST_GLOBAL, "datamart_global")
    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.datamart_dirty_users") == [(0,)]


def profile(env: Env, name: str, key: str, entity_id: int) -> dict[str, Any]:
    (row,) = rows(env, f"SELECT profile FROM {DWH}.datamart_{name} WHERE {key} = {entity_id}")
    return dict(row["profile"])


def ranked(*entries: tuple[object, ...], keys: tuple[str, ...]) -> list[dict[str, object]]:
    return [{"rank": rank, **dict(zip(keys, e, strict=True))} for rank, e in enumerate(entries, start=1)]


def test_viewer_profile_fields_match_hand_computed_values(osm: Env) -> None:
    first_batch(flow=False)
    year = datetime.now(UTC).year  # every fixed action is in 2024 or 2025: this year counts 0

    bob = profile(osm, "users", "user_id", 22)
    expected_bob: dict[str, object] = {
        "history_whole_open": 1, "history_whole_commented": 1, "history_whole_closed": 2,
        "history_whole_reopened": 1, "history_year_open": 0, "history_month_closed": 0, "history_day_commented": 0,
        "history_2013_open": 0, "history_2024_commented": 1, "history_2024_closed": 2, "history_2024_reopened": 1,
        "history_2025_open": 1, "history_2025_closed": 0, f"history_{year}_open": 0,
        "first_open_note_id": 4, "latest_open_note_id": 4, "first_commented_note_id": 1,
        "first_closed_note_id": 1, "latest_closed_note_id": 2, "first_reopened_note_id": 2,
        "date_starting_creating_notes": "2025-03-02", "date_starting_solving_notes": "2024-01-03",
        "avg_days_to_resolution": 1.75, "median_days_to_resolution": 1.75,
        # bob opened note 4 only, and it is hidden: neither resolved nor open
        "notes_resolved_count": 0, "notes_still_open_count": 0, "resolution_rate": 0,
        "notes_opened_but_not_closed_by_user": 1,
        "countries_open_notes": ranked((200, "Beta", 1), keys=("country_id", "country", "quantity")),
        "countries_solving_notes": ranked(
            (100, "Alpha", 1), (200, "Beta", 1), keys=("country_id", "country", "quantity")
        ),
        "ranking_countries_opening_2025": ranked((200, "Beta", 1), keys=("country_id", "country", "quantity")),
        "ranking_countries_closing_2024": ranked(
            (100, "Alpha", 1), (200, "Beta", 1), keys=("country_id", "country", "quantity")
        ),
        "working_hours_of_week_opening": [{"day_of_week": 7, "hour_of_day": 9, "count": 1}],
        "working_hours_of_week_commenting": [{"day_of_week": 2, "hour_of_day": 10, "count": 1}],
        "working_hours_of_week_closing": [
            {"day_of_week": 3, "hour_of_day": 0, "count": 1},
            {"day_of_week": 3, "hour_of_day": 10, "count": 1},
        ],
        "dates_most_open": [{"date": "2025-03-02", "quantity": 1}],
        "dates_most_closed": [{"date": "2024-01-10", "quantity": 1}, {"date": "2024-01-03", "quantity": 1}],
        "hashtags": ranked(("fixme", 1), ("mapathon", 1), ("地図", 1), keys=("hashtag", "quantity")),
        "hashtags_opening": ranked(("mapathon", 1), ("地図", 1), keys=("hashtag", "quantity")),
        "hashtags_comments": ranked(("fixme", 1), keys=("hashtag", "quantity")),
        "favorite_opening_hashtag": "mapathon", "opening_hashtag_count": 2, "resolution_hashtag_count": 0,
        "last_year_activity": "0" * 371,  # nothing in the last 53 weeks
    }  # fmt: skip
    assert_matches(bob, expected_bob, "bob's profile")
    assert "hashtags_resolution" not in bob  # no hashtag in his closes: left out, never null
    assert "ranking_countries_opening_2024" not in bob
    assert [(a["application_name"], a["usage_count"]) for a in bob["applications_used"]] == [(UNKNOWN, 1)]

    beta = profile(osm, "countries", "country_id", 200)
    expected_beta: dict[str, object] = {
        "history_whole_open": 3, "history_whole_closed": 2, "history_whole_reopened": 1,
        "history_2024_open": 2, "history_2025_open": 1,
        "first_open_note_id": 2, "latest_open_note_id": 4, "first_closed_note_id": 2, "latest_closed_note_id": 2,
        # notes 2 (closed), 4 (hidden), 6 (open); closes in Beta took 1 and 1.5 days
        "notes_resolved_count": 1, "notes_still_open_count": 1, "resolution_rate": 33.33,
        "avg_days_to_resolution": 1.25, "median_days_to_resolution": 1.25,
        # opens: anonymous (in no user list), bob, eve; closes: ana and bob, one each (ties: by id)
        "users_open_notes": ranked((22, "bob", 1), (55, "eve", 1), keys=("user_id", "username", "quantity")),
        "users_solving_notes": ranked((11, "ana", 1), (22, "bob", 1), keys=("user_id", "username", "quantity")),
        "dates_most_open": [
            {"date": "2025-03-02", "quantity": 1}, {"date": "2024-02-01", "quantity": 1},
            {"date": "2024-01-06", "quantity": 1},
        ],
    }  # fmt: skip
    assert_matches(beta, expected_beta, "Beta's profile")

    world = profile(osm, "global", "id", 1)
    expected_world: dict[str, object] = {
        "dimension_global_id": 1, "history_whole_open": 5, "history_whole_closed": 3,
        "currently_open_count": 2, "currently_closed_count": 2, "notes_resolved_count": 2, "resolution_rate": 40,
        "notes_backlog_size": 2,  # notes 3 and 6: open, and far older than 7 days
        "notes_age_distribution": {"0-7_days": 0, "8-30_days": 0, "31-90_days": 0, "90_plus_days": 2},
        "avg_days_to_resolution": 1.5, "median_days_to_resolution": 1.5, "active_users_count": 0,
        "first_open_note_id": 1, "latest_open_note_id": 4, "latest_closed_note_id": 2,
        "top_countries": [
            {"country_id": 200, "country_name": "Beta", "total_actions": 7},
            {"country_id": 100, "country_name": "Alpha", "total_actions": 4},
        ],  # international waters is no country: not ranked
    }  # fmt: skip
    assert_matches(world, expected_world, "global profile")
    assert set(world) <= set(json.loads((SQL_DIR / PIPELINE / "export" / "global_stats.schema.json").read_text())[
        "properties"
    ])  # fmt: skip

    # Actions today: the relative fields count them (eve opens note 7 in Alpha and closes
    # her note 6, so of the two notes she opened one was closed by herself).
    source_sql(
        "INSERT INTO public.notes (note_id, geom, created_at, status) "
        "VALUES (7, ST_Point(3, 3, 4326), now(), 'open');"
        "UPDATE public.notes SET status = 'closed', closed_at = now(), updated_at = clock_timestamp() "
        "WHERE note_id = 6;"
        "INSERT INTO public.note_comments (note_id, sequence, action, user_id, created_at, body) "
        "VALUES (7, 1, 'opened', 55, now(), 'Bench again'), (6, 2, 'closed', 55, now(), 'Gone');"
    )
    sync_bronze()
    transform()
    refresh()
    eve = profile(osm, "users", "user_id", 55)
    assert [eve[f"history_{p}_open"] for p in ("whole", "year", "month", "day")] == [2, 1, 1, 1]
    assert [eve[f"history_{p}_closed"] for p in ("whole", "year", "month", "day")] == [1, 1, 1, 1]
    assert eve[f"history_{year}_open"] == 1
    assert eve["last_year_activity"] == "0" * 370 + "1"  # today is the last tile: 2 actions -> 1
    assert (eve["notes_opened_but_not_closed_by_user"], eve["notes_resolved_count"]) == (1, 1)
    world = profile(osm, "global", "id", 1)
    assert (world["notes_created_last_30_days"], world["notes_resolved_last_30_days"]) == (1, 1)
    assert world["active_users_count"] == 1
    assert world["notes_age_distribution"]["0-7_days"] == 1


def test_a_refresh_on_a_new_day_recomputes_the_relative_fields_of_recently_active_entities_only(
    osm: Env,
) -> None:
    first_batch(flow=False)
    before = datamart(osm, "users", "user_id")
    # As if the last refresh ran on 2025-06-01: users active since 2025-01-01 (that year) or
    # 2024-05-26 (its 53 weeks) may show stale relative fields: bob and chen, not ana or eve.
    osm.query("wh", f"UPDATE {DWH}.datamart_periods SET as_of = '2025-06-01' WHERE datamart = 'users'")
    osm.query("wh", f"UPDATE {DWH}.datamart_users SET profile = profile || '{{\"history_day_open\": 99}}'")

    refresh()

    after = datamart(osm, "users", "user_id")
    assert {u: after[u]["profile"]["history_day_open"] for u in after} == {11: 99, 22: 0, 33: 0, 55: 99}
    assert after[22] == before[22]
    assert after[33] == before[33]
    assert osm.query("wh", f"SELECT as_of = (now() AT TIME ZONE 'UTC')::date FROM {DWH}.datamart_periods "
                     "WHERE datamart = 'users'") == [(True,)]  # fmt: skip


def test_new_activity_updates_only_what_changed_and_equals_a_full_rebuild(osm: Env) -> None:
    first_batch(flow=False)
    source_sql(SECOND_BATCH)
    sync_bronze()

    result = transform()

    assert not result.first_run
    assert (result.comments_in_window, result.facts_inserted) == (5, 5)
    assert result.facts_updated == 1  # note 4's hidden moved from position 2 to 3
    assert [t.describe() for t in result.invalid_examples] == ["note 5 #2: reopened while open"]
    by_key = {(f[0], f[1]): f for f in facts(osm)}
    assert len(by_key) == 17
    expected = {
        (1, 5): (1, 5, "reopened", ts("2025-01-01 00:00"), 33, 11, 100, SC, 5, D("365.5833"), None, False, True, "open", 0, 20250101, 300, 20240101),
        (3, 2): (3, 2, "closed", ts("2025-03-05 08:00"), 44, 33, -1, UNKNOWN, 2, D(4), D(4), False, True, "closed", 0, 20250305, 308, 20250301),
        (4, 2): (4, 2, "commented", ts("2025-03-02 21:30"), 33, 22, 200, UNKNOWN, 2, D("0.5"), None, False, True, "open", 0, 20250302, 721, 20250302),
        (4, 3): (4, 3, "hidden", ts("2025-03-03 09:30"), 22, 22, 200, UNKNOWN, 3, D(1), None, True, True, "hidden", 0, 20250303, 109, 20250302),
        (5, 1): (5, 1, "opened", ts("2025-06-01 12:00"), 44, 44, 100, SC, 1, D(0), None, True, True, "open", 1, 20250601, 712, 20250601),
        (5, 2): (5, 2, "reopened", ts("2025-06-02 12:00"), 44, 44, 100, SC, 2, D(1), None, True, False, "open", 0, 20250602, 112, 20250601),
    }  # fmt: skip
    for key, row in expected.items():
        assert by_key[key] == row, key
    unchanged = [f for f in FIRST_FACTS if f[:2] != (4, 3)]
    assert [by_key[f[:2]] for f in unchanged] == unchanged
    # Marked: actors (chen, dan), the opener of the reopened note (ana), the renamed bob;
    # eve's facts did not change.
    assert osm.query("wh", f"SELECT user_id FROM {DWH}.datamart_dirty_users ORDER BY 1") == [
        (11,),
        (22,),
        (33,),
        (44,),
    ]
    bob = osm.query(
        "wh", f"SELECT username, is_current FROM {DWH}.dim_users WHERE user_id = 22 ORDER BY valid_from"
    )
    assert bob == [("bob", False), ("robert", True)]

    refresh()

    users = datamart(osm, "users", "user_id")
    assert users[11]["notes_opened_still_open"] == 1  # ana's note 1 was reopened by chen
    assert users[22]["username"] == "robert"
    assert_matches(
        users[33],
        {
            "actions": 4, "opened": 1, "commented": 1, "closed": 0, "reopened": 1,
            "actions_by_year": {"2024": {"invalid_close": 1}, "2025": {"opened": 1, "reopened": 1, "commented": 1}},
            "last_action_at": ts("2025-03-02 21:30"), "notes_opened": 1, "notes_opened_still_open": 0,
            "top_countries": top_countries((*ALPHA, 2), (*SEA, 1), (*BETA, 1)),
        },
        "chen",
    )  # fmt: skip
    assert_matches(
        users[44],
        {
            "username": "dan", "actions": 3, "actions_by_year": {"2025": {"closed": 1, "opened": 1, "reopened": 1}},
            "resolutions": 1, "mean_resolution_days": D(4), "median_resolution_days": D(4),
            "notes_opened": 1, "notes_opened_still_open": 1,
            "top_countries": top_countries((*ALPHA, 2), (*SEA, 1)), "top_hashtags": top_hashtags(("mapathon", 1)),
        },
        "dan",
    )  # fmt: skip
    # eve was not refreshed, yet her ranks moved: actions bob 6, chen 4, dan 3, ana 2, eve 1;
    # valid closes bob 2, ana 1, dan 1, chen 0, eve 0.
    assert_matches(users[55], {**FIRST_USERS[55], "rank_by_actions": 5, "rank_by_closed": 4}, "eve")
    countries = datamart(osm, "countries", "country_id")
    assert {c: (r["actions"], r["rank_by_actions"]) for c, r in countries.items()} == {
        -1: (2, None),
        100: (7, 2),
        200: (8, 1),
    }
    incremental = snapshot(osm)

    refresh(full_rebuild=True)

    assert snapshot(osm) == incremental
    before = facts(osm)
    rebuilt = transform(rebuild=True)
    assert rebuilt.first_run
    assert rebuilt.facts_inserted == 17
    assert facts(osm) == before


def test_generated_source_incremental_run_equals_rebuild_from_scratch(
    osm: Env, caplog: pytest.LogCaptureFixture
) -> None:
    conninfo = app_conninfo()
    first = seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=1500)
    sync_bronze()
    assert transform().facts_inserted == first["note_comments"]
    refresh()
    second = seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=300)
    sync_bronze()

    with caplog.at_level("WARNING", logger="dwh.transform"):
        result = transform()

    assert result.comments_in_window == second["note_comments"] - first["note_comments"]
    assert result.invalid_transitions > 0  # the generator closes some closed notes
    assert f"{result.invalid_transitions} invalid state transition(s)" in caplog.text
    assert result.facts_updated > 0  # back-filled comments moved later positions
    assert result.status_mismatches == 0
    consistency = osm.query(
        "wh",
        f"""SELECT
            (SELECT count(*) FROM osm_notes_bronze.note_comments AS c
             WHERE NOT EXISTS (SELECT FROM {DWH}.facts AS f
                               WHERE f.note_id = c.note_id AND f.sequence = c.sequence)),
            (SELECT count(*) FROM {DWH}.facts) - (SELECT count(*) FROM osm_notes_bronze.note_comments),
            (SELECT count(*) FROM {DWH}.dim_notes AS d JOIN osm_notes_bronze.notes AS n USING (note_id)
             WHERE (d.status, d.closed_at) IS DISTINCT FROM (n.status, n.closed_at))""",
    )
    assert consistency == [(0, 0, 0)]  # every comment once; the generator's statuses agree
    refresh()
    incremental = snapshot(osm)
    assert len(incremental["users"]) > 100

    refresh(full_rebuild=True)

    assert snapshot(osm) == incremental
    before = facts(osm)
    transform(rebuild=True)
    assert facts(osm) == before


def test_comments_wait_for_their_note_row_then_are_built(osm: Env, caplog: pytest.LogCaptureFixture) -> None:
    source_sql(FIRST_BATCH)
    sync_bronze(["countries", "users", "note_comments"])

    with caplog.at_level("WARNING", logger="dwh.transform"):
        waiting = transform()

    assert (waiting.comments_waiting, waiting.facts_inserted) == (12, 0)
    assert "12 comment(s) wait for their note row" in caplog.text
    sync_bronze(["notes"])
    built = transform()
    assert (built.comments_waiting, built.facts_inserted) == (0, 12)
    assert facts(osm) == FIRST_FACTS


def test_overlapping_etl_run_is_skipped_not_doubled(osm: Env) -> None:
    source_sql(FIRST_BATCH)
    first: list[Any] = []
    with psycopg.connect(osm.warehouse_admin) as blocker:
        # Hold facts so the first run stops inside its transform, holding the ETL lock.
        blocker.execute(f"LOCK TABLE {DWH}.facts IN ACCESS EXCLUSIVE MODE")
        runner = threading.Thread(target=lambda: first.append(osm_notes_etl(return_state=True)))
        runner.start()
        deadline = time.monotonic() + 120
        while not osm.query(
            "wh",
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
            " AND usename = 'osm_notes_owner' AND wait_event_type = 'Lock'",
        ):
            assert runner.is_alive(), "the first run ended before reaching the transform"
            assert time.monotonic() < deadline, "the first run never reached the transform"
            time.sleep(0.2)

        second = osm_notes_etl(return_state=True)

        assert second.is_completed()
        assert (
            second.message == skipped_message(PIPELINE) == "skipped: another osm_notes_etl run is in progress"
        )
        assert etl_outcome(second).skipped
        blocker.commit()
    runner.join(timeout=120)

    assert etl_outcome(first[0]).transform is not None
    assert osm.query("wh", "SELECT count(*) FROM osm_notes_control.extract_runs") == [(4,)]  # one ingest
    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.facts") == [(12,)]
    runs = osm.query("wh", "SELECT status, comments_in_window FROM osm_notes_control.transform_runs")
    assert runs == [("succeeded", 12)]


def test_cli_seeds_runs_the_etl_and_refreshes_datamarts(osm: Env) -> None:
    cli = CliRunner()

    seeded = cli.invoke(app, ["seed-source", PIPELINE, "--notes", "200"])
    ran = cli.invoke(app, ["run", PIPELINE])
    marts = cli.invoke(app, ["datamarts", PIPELINE, "--full-rebuild"])

    assert seeded.exit_code == 0, seeded.output
    assert "note_comments" in seeded.output
    assert ran.exit_code == 0, ran.output
    assert "osm_notes transform (first build)" in " ".join(ran.output.split())
    assert marts.exit_code == 0, marts.output
    assert "full rebuild" in marts.output
    assert osm.query("wh", f"SELECT count(*) > 0 FROM {DWH}.datamart_users") == [(True,)]
    runs = osm.query(
        "wh",
        "SELECT datamart, full_rebuild, status FROM osm_notes_control.datamart_runs ORDER BY started_at, 1",
    )
    # `dwh run` refreshed the marked rows, then `dwh datamarts --full-rebuild` every row.
    assert runs == [
        (m, full, "succeeded") for full in (False, True) for m in ("countries", "global", "users")
    ]


def test_seed_source_builds_realistic_notes_then_adds_newer_activity(osm: Env) -> None:
    conninfo = app_conninfo()

    first = seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=2000)

    assert (first["countries"], first["notes"], first["users"]) == (36, 2000, 250)
    assert 2.3 < (first["note_comments"] + first["note_comments_missing"]) / first["notes"] < 2.8
    assert first["note_comments_missing"] > 0  # withheld, back-filled by the next call
    (shape,) = osm.query(
        "source",
        """SELECT
            (SELECT array_agg(DISTINCT status ORDER BY status) FROM notes),
            (SELECT array_agg(DISTINCT action ORDER BY action) FROM note_comments),
            (SELECT count(*) FILTER (WHERE user_id IS NULL) > 0 FROM note_comments),
            (SELECT count(*) FROM countries
             WHERE NOT (ST_IsValid(geom) AND ST_SRID(geom) = 4326 AND GeometryType(geom) = 'MULTIPOLYGON'
                        AND iso_alpha2 ~ '^[A-Z]{2}$' AND iso_alpha3 ~ '^[A-Z]{3}$')),
            (SELECT round(avg((EXISTS (SELECT FROM countries AS c WHERE ST_Intersects(c.geom, n.geom)))::int), 2)
             FROM notes AS n)""",
    )
    assert shape[:4] == (
        ["closed", "hidden", "open"],
        ["closed", "commented", "hidden", "opened", "reopened"],
        True,
        0,
    )
    assert Decimal("0.9") < shape[4] < 1  # some notes are at sea
    scripts = {
        "cyrillic": "[а-я]", "cjk": "[一-龥]", "arabic": "[ء-ي]", "greek": "[α-ω]", "emoji": "[🍜🚲🥐👍✅]",  # noqa: RUF001
        "hashtag": "#[^ ]", "streetcomplete": "via StreetComplete", "organic maps": "#organicmaps",
        "crlf": "\r\n",
    }  # fmt: skip
    for kind, pattern in scripts.items():
        found = osm.query("source", "SELECT count(*) FROM note_comments WHERE body ~ %s", (pattern,))
        assert found[0][0] > 0, kind
    before = osm.query("source", "SELECT max(created_at), max(inserted_at) FROM note_comments")[0]

    second = seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=100)

    assert (second["notes"], second["users"]) == (2100, 262)
    (activity,) = osm.query(
        "source",
        """SELECT
            count(*) FILTER (WHERE c.note_id <= 2000 AND c.action = 'closed'),
            count(*) FILTER (WHERE c.note_id <= 2000 AND c.action = 'reopened'),
            count(*) FILTER (WHERE c.note_id <= 2000 AND c.created_at <= %s),
            count(*) FILTER (WHERE c.note_id > 2000 AND c.created_at <= %s)
        FROM note_comments AS c
        WHERE c.inserted_at > %s""",
        (before[0], before[0], before[1]),
    )
    closes, reopens, backfilled, new_but_old = activity
    assert closes > 0  # existing notes closed ...
    assert reopens > 0  # ... and reopened
    assert backfilled == first["note_comments_missing"]  # old timestamps, new inserted_at
    assert new_but_old == 0  # new notes happen after everything already stored
    renamed = osm.query("source", "SELECT count(*) FROM users WHERE updated_at > inserted_at")
    assert renamed == [(2,)]  # greatest(1, 250 / 100)
    changed = osm.query(
        "source", "SELECT count(*) FROM notes WHERE note_id <= 2000 AND updated_at > %s", (before[1],)
    )
    assert changed[0][0] > 0  # status changes reach the notes rows (merge watermark)


def test_failed_transform_step_names_file_and_line_and_commits_nothing(osm: Env, tmp_path: Path) -> None:
    source_sql(FIRST_BATCH)
    sync_bronze()
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    step = sql_dir / PIPELINE / "transform" / "22_stage_facts.sql"
    lines = step.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if "c.created_at AS action_at" in line)
    lines[number - 1] = lines[number - 1].replace("c.created_at", "c.no_such_column")
    step.write_text("\n".join(lines) + "\n")

    with pytest.raises(TransformError, match=rf"22_stage_facts\.sql:{number}: .*no_such_column"):
        run_transform(load_catalog(PIPELINE, PIPELINES_DIR), owner(), sql_dir)

    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.facts") == [(0,)]
    runs = osm.query("wh", "SELECT status, error_message FROM osm_notes_control.transform_runs")
    assert len(runs) == 1
    assert runs[0][0] == "failed"
    assert "22_stage_facts.sql" in str(runs[0][1])
    assert transform().facts_inserted == 12  # the real files still build everything


def test_transform_that_loses_its_connection_is_retried_and_builds_once(
    osm: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_sql(FIRST_BATCH)
    terminated: list[object] = []

    def drop_the_transform_connection() -> None:
        """After 40_write_facts wrote the facts, uncommitted: the server ends the session."""
        terminated.extend(
            osm.query(
                "wh",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND usename = 'osm_notes_owner' AND state = 'idle in transaction'",
            )
        )

    _on_failpoint(monkeypatch, "dwh.transform", "step:41_dim_notes.sql", drop_the_transform_connection)
    monkeypatch.setattr("flows.osm_notes.transform_task", transform_task.with_options(retry_delay_seconds=0))

    result = etl()

    assert terminated == [(True,)]
    assert (result.first_run, result.facts_inserted) == (True, 12)
    assert facts(osm) == FIRST_FACTS
    runs = osm.query(
        "wh", "SELECT status, error_message FROM osm_notes_control.transform_runs ORDER BY started_at"
    )
    assert [status for status, _ in runs] == ["failed", "succeeded"]
    assert "41_dim_notes.sql" in str(runs[0][1])
    assert "terminat" in str(runs[0][1]) or "closed" in str(runs[0][1])


def test_a_broken_step_fails_the_etl_at_once_without_a_retry(
    osm: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_sql(FIRST_BATCH)
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    step = sql_dir / PIPELINE / "transform" / "41_dim_notes.sql"
    step.write_text(step.read_text().replace("l.last_action_at\nFROM", "l.no_such_column\nFROM"))
    monkeypatch.setenv("DWH_SQL_DIR", str(sql_dir))

    with pytest.raises(TransformError, match=r"41_dim_notes\.sql:\d+: .*no_such_column") as failed:
        etl()

    assert not failed.value.transient
    runs = osm.query("wh", "SELECT status FROM osm_notes_control.transform_runs")
    assert runs == [("failed",)]  # retries are configured, but this would fail the same way again
    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.facts") == [(0,)]


def test_renamed_user_or_country_refreshes_every_datamart_row_that_shows_the_name(osm: Env) -> None:
    first_batch(flow=False)
    source_sql(
        "UPDATE public.users SET username = 'eva', updated_at = clock_timestamp() WHERE user_id = 55;"
        "UPDATE public.countries SET name_en = 'Alfa', updated_at = clock_timestamp() WHERE country_id = 100;"
    )
    sync_bronze()

    result = transform()

    assert result.facts_inserted + result.facts_updated == 0
    # eve acted only in Beta; Alpha's name is in the top-countries list of ana, bob, chen.
    assert osm.query("wh", f"SELECT user_id FROM {DWH}.datamart_dirty_users ORDER BY 1") == [
        (11,),
        (22,),
        (33,),
        (55,),
    ]
    assert osm.query("wh", f"SELECT country_id FROM {DWH}.datamart_dirty_countries ORDER BY 1") == [
        (100,),
        (200,),
    ]
    refresh()
    countries = datamart(osm, "countries", "country_id")
    assert countries[100]["name_en"] == "Alfa"
    assert countries[200]["top_users"] == top_users((22, "bob", 4), (11, "ana", 1), (55, "eva", 1))
    users = datamart(osm, "users", "user_id")
    assert users[11]["top_countries"] == top_countries((100, "Alfa", 1), (*BETA, 1))
    incremental = snapshot(osm)
    refresh(full_rebuild=True)
    assert snapshot(osm) == incremental


def test_rows_a_still_open_load_stamped_earlier_are_processed_by_the_next_run(osm: Env) -> None:
    first_batch(flow=False)
    late = psycopg.connect(owner())
    try:
        # A load in flight: its rows carry _dwh_loaded_at = its start, before the next
        # transform's clock, but become visible only when it commits, after that run.
        late.execute(
            "INSERT INTO osm_notes_bronze.note_comments"
            " (note_id, sequence, action, user_id, created_at, body, inserted_at)"
            " VALUES (6, 2, 'commented', 11, '2024-02-02 06:00Z', 'late load', now())"
        )
        during = transform()
        late.commit()
    finally:
        late.close()

    after = transform()

    assert (during.comments_in_window, during.facts_inserted) == (0, 0)
    assert (after.comments_in_window, after.facts_inserted) == (1, 1)
    assert osm.query("wh", f"SELECT action_position FROM {DWH}.facts WHERE note_id = 6 AND sequence = 2") == [
        (2,)
    ]


# ----------------------------------------------------------------------------- metrics that can fail
# Resolution times chosen so the wrong formula gives a different answer: bob's closes
# took 1, 2 and 9 days (median 2, mean 4), dan's 4, 1, 1 and 10 (a tie, an even count:
# median 2.5, mean 4), ana's one close 3 days (a single value); chen's only close
# closes a closed note (invalid: no close, no resolution: an empty set). Gamma has an
# open note and no close at all. Note 16 is at sea.
METRICS_BATCH = """
INSERT INTO public.countries (country_id, name, name_en, iso_alpha2, iso_alpha3, geom) VALUES
    (100, 'Alpha', 'Alpha', 'AA', 'AAA', ST_Multi(ST_MakeEnvelope(0, 0, 10, 10, 4326))),
    (200, 'Beta', 'Beta', 'BB', 'BBB', ST_Multi(ST_MakeEnvelope(20, 0, 30, 10, 4326))),
    (300, 'Gamma', 'Gamma', 'GG', 'GGG', ST_Multi(ST_MakeEnvelope(60, 0, 70, 10, 4326)));
INSERT INTO public.users (user_id, username) VALUES (11, 'ana'), (22, 'bob'), (33, 'chen'), (44, 'dan');
INSERT INTO public.notes (note_id, geom, created_at, closed_at, status) VALUES
    (10, ST_Point(1, 1, 4326), '2024-01-01 00:00Z', '2024-01-02 00:00Z', 'closed'),
    (11, ST_Point(2, 2, 4326), '2024-01-01 00:00Z', '2024-01-03 00:00Z', 'closed'),
    (12, ST_Point(3, 3, 4326), '2024-01-01 00:00Z', '2024-01-10 00:00Z', 'closed'),
    (13, ST_Point(21, 1, 4326), '2024-02-01 00:00Z', '2024-02-05 00:00Z', 'closed'),
    (14, ST_Point(22, 2, 4326), '2024-02-01 00:00Z', '2024-02-04 00:00Z', 'closed'),
    (15, ST_Point(23, 3, 4326), '2024-02-01 00:00Z', '2024-02-11 00:00Z', 'closed'),
    (16, ST_Point(50, 50, 4326), '2024-03-01 00:00Z', '2024-03-04 00:00Z', 'closed'),
    (17, ST_Point(61, 1, 4326), '2024-04-01 00:00Z', NULL, 'open');
INSERT INTO public.note_comments (note_id, sequence, action, user_id, created_at, body) VALUES
    (10, 1, 'opened', 11, '2024-01-01 00:00Z', 'a'), (10, 2, 'closed', 22, '2024-01-02 00:00Z', NULL),
    (11, 1, 'opened', 11, '2024-01-01 00:00Z', 'b'), (11, 2, 'closed', 22, '2024-01-03 00:00Z', NULL),
    (12, 1, 'opened', 11, '2024-01-01 00:00Z', 'c'), (12, 2, 'closed', 22, '2024-01-10 00:00Z', NULL),
    (13, 1, 'opened', 33, '2024-02-01 00:00Z', 'd'), (13, 2, 'closed', 44, '2024-02-05 00:00Z', NULL),
    (13, 3, 'closed', 33, '2024-02-06 00:00Z', 'closed again'),
    (14, 1, 'opened', 33, '2024-02-01 00:00Z', 'e'), (14, 2, 'closed', 44, '2024-02-02 00:00Z', NULL),
    (14, 3, 'reopened', 33, '2024-02-03 00:00Z', NULL), (14, 4, 'closed', 44, '2024-02-04 00:00Z', NULL),
    (15, 1, 'opened', 33, '2024-02-01 00:00Z', 'f'), (15, 2, 'closed', 44, '2024-02-11 00:00Z', NULL),
    (16, 1, 'opened', 44, '2024-03-01 00:00Z', 'g'), (16, 2, 'closed', 11, '2024-03-04 00:00Z', NULL),
    (17, 1, 'opened', 11, '2024-04-01 00:00Z', 'h');
"""


def resolution(row: dict[str, Any]) -> tuple[object, ...]:
    return (row["closed"], row["resolutions"], row["mean_resolution_days"], row["median_resolution_days"])


def test_median_is_the_middle_value_not_the_mean_with_ties_single_values_and_empty_sets(osm: Env) -> None:
    source_sql(METRICS_BATCH)
    sync_bronze()
    transform()
    refresh()

    users = datamart(osm, "users", "user_id")
    assert {u: resolution(r) for u, r in users.items()} == {
        11: (1, 1, D(3), D(3)),  # a single value
        22: (3, 3, D(4), D(2)),  # 1, 2, 9
        33: (0, 0, None, None),  # no valid close: an empty set, not 0
        44: (4, 4, D(4), D("2.5")),  # 1, 1, 4, 10
    }
    countries = datamart(osm, "countries", "country_id")
    assert {c: resolution(r) for c, r in countries.items()} == {
        -1: (1, 1, D(3), D(3)),
        100: (3, 3, D(4), D(2)),
        200: (4, 4, D(4), D("2.5")),
        300: (0, 0, None, None),
    }
    (world,) = rows(osm, f"SELECT * FROM {DWH}.datamart_global")
    assert resolution(world) == (8, 8, D("3.875"), D("2.5"))  # 1, 1, 1, 2, 3, 4, 9, 10
    # The viewer's fields (two decimals; an empty set is left out, never null).
    bob, dan, chen = (profile(osm, "users", "user_id", u) for u in (22, 44, 33))
    assert (bob["avg_days_to_resolution"], bob["median_days_to_resolution"]) == (4, 2)
    assert (dan["avg_days_to_resolution"], dan["median_days_to_resolution"]) == (4, 2.5)
    assert "median_days_to_resolution" not in chen
    beta = profile(osm, "countries", "country_id", 200)
    assert (beta["avg_days_to_resolution"], beta["median_days_to_resolution"]) == (4, 2.5)
    assert "median_days_to_resolution" not in profile(osm, "countries", "country_id", 300)
    world_profile = profile(osm, "global", "id", 1)
    assert (world_profile["avg_days_to_resolution"], world_profile["median_days_to_resolution"]) == (
        3.88,
        2.5,
    )
    incremental = snapshot(osm)
    refresh(full_rebuild=True)
    assert snapshot(osm) == incremental


def test_invalid_closes_are_no_closes_and_rank_nobody(osm: Env) -> None:
    source_sql(METRICS_BATCH)
    sync_bronze()
    transform()
    refresh()

    users = datamart(osm, "users", "user_id")
    # Actions: ana, chen (one an invalid close) and dan 5 each share the first rank, bob 3.
    # Valid closes: dan 4, bob 3, ana 1, chen 0 (her close of the closed note 13 is none).
    assert {
        u: (r["actions"], r["closed"], r["rank_by_actions"], r["rank_by_closed"]) for u, r in users.items()
    } == {
        11: (5, 1, 1, 3),
        22: (3, 3, 4, 2),
        33: (5, 0, 1, 4),
        44: (5, 4, 1, 1),
    }
    assert users[33]["actions_by_year"] == {"2024": {"opened": 3, "reopened": 1, "invalid_close": 1}}
    chen = profile(osm, "users", "user_id", 33)
    assert chen["history_whole_closed"] == 0
    assert "first_closed_note_id" not in chen
    assert "countries_solving_notes" not in chen
    assert "working_hours_of_week_closing" not in chen
    beta = datamart(osm, "countries", "country_id")[200]
    assert (beta["actions"], beta["closed"]) == (9, 4)
    assert profile(osm, "countries", "country_id", 200)["history_whole_closed"] == 4
    (world,) = rows(osm, f"SELECT closed, invalid_transitions FROM {DWH}.datamart_global")
    assert (world["closed"], world["invalid_transitions"]) == (8, 1)
    assert profile(osm, "global", "id", 1)["history_whole_closed"] == 8


def test_international_waters_keeps_its_row_but_is_never_ranked_as_a_country(osm: Env) -> None:
    source_sql(METRICS_BATCH)
    sync_bronze()
    transform()
    refresh()

    countries = datamart(osm, "countries", "country_id")
    # Actions: Beta 9, Alpha 6, international waters 2, Gamma 1; valid closes 4, 3, 1, 0.
    assert {c: (r["actions"], r["rank_by_actions"], r["rank_by_closed"]) for c, r in countries.items()} == {
        -1: (2, None, None),
        100: (6, 2, 2),
        200: (9, 1, 1),
        300: (1, 3, 3),
    }
    assert countries[-1]["profile"]["history_whole_open"] == 1  # its profile stays
    (world,) = rows(osm, f"SELECT top_countries, countries_active FROM {DWH}.datamart_global")
    assert world["top_countries"] == top_countries((200, "Beta", 9), (100, "Alpha", 6), (300, "Gamma", 1))
    assert world["countries_active"] == 3
    assert [c["country_id"] for c in profile(osm, "global", "id", 1)["top_countries"]] == [200, 100, 300]
    incremental = snapshot(osm)
    refresh(full_rebuild=True)
    assert snapshot(osm) == incremental


# ----------------------------------------------------------------------------- datamarts in every run, rebuild
def test_every_etl_run_refreshes_the_datamart_rows_its_facts_touched(osm: Env) -> None:
    source_sql(FIRST_BATCH)

    etl()  # no separate datamarts run: the export reads these rows next

    users = datamart(osm, "users", "user_id")
    assert set(users) == set(FIRST_USERS)
    for user_id, expected in FIRST_USERS.items():
        assert_matches(users[user_id], expected, f"datamart_users {user_id}")
    (global_row,) = rows(osm, f"SELECT * FROM {DWH}.datamart_global")
    assert_matches(global_row, FIRST_GLOBAL, "datamart_global")
    source_sql(SECOND_BATCH)

    etl()

    users = datamart(osm, "users", "user_id")
    assert (users[22]["username"], users[11]["notes_opened_still_open"]) == ("robert", 1)
    assert users[44]["actions"] == 3
    assert datamart(osm, "countries", "country_id")[100]["actions"] == 7
    marks = f"SELECT (SELECT count(*) FROM {DWH}.datamart_dirty_users) + (SELECT count(*) FROM {DWH}.datamart_dirty_countries)"
    assert osm.query("wh", marks) == [(0,)]  # every mark handled within the run
    runs = osm.query(
        "wh", "SELECT datamart, full_rebuild FROM osm_notes_control.datamart_runs ORDER BY started_at, 1"
    )
    assert runs == [(m, False) for m in ("countries", "global", "users")] * 2
    incremental = snapshot(osm)
    refresh(full_rebuild=True)
    assert snapshot(osm) == incremental


def test_rebuild_on_demand_checks_incremental_equals_rebuild_and_fails_naming_entities(osm: Env) -> None:
    source_sql(FIRST_BATCH)

    ran = CliRunner().invoke(app, ["run", PIPELINE, "--rebuild"])

    assert ran.exit_code == 0, ran.output
    said = " ".join(ran.output.split())
    assert "rebuilt from bronze" in said
    assert "incremental equals rebuild" in said
    assert facts(osm) == FIRST_FACTS
    runs = osm.query(
        "wh", "SELECT full_rebuild, count(*) FROM osm_notes_control.datamart_runs GROUP BY 1 ORDER BY 1"
    )
    assert runs == [(False, 3), (True, 3)]
    # An incremental path gone wrong: eve's row and note 6's place no longer match bronze.
    osm.query("wh", f"UPDATE {DWH}.datamart_users SET top_hashtags = '[]' WHERE user_id = 55")
    osm.query(
        "wh",
        f"UPDATE {DWH}.facts SET country_key = (SELECT country_key FROM {DWH}.dim_countries WHERE country_id = 100) "
        "WHERE note_id = 6",
    )
    # The global row is computed from the datamart state, which the transform derives
    # from the facts it writes: a transform gone wrong derives it from the wrong facts.
    osm.query("wh", f"UPDATE {DWH}.mart_state_built SET built = false")

    with pytest.raises(RebuildMismatchError) as failed:
        etl_outcome(osm_notes_etl(rebuild=True, return_state=True))

    message = str(failed.value)
    assert "1 note(s): 6" in message
    assert "1 user(s): 55" in message
    assert "country" not in message  # no country row was refreshed from the wrong facts
    assert {d.kind for d in failed.value.differences} == {"note", "user", "global"}
    assert datamart(osm, "users", "user_id")[55]["top_hashtags"] == top_hashtags(
        ("bänke", 1)
    )  # rebuilt rows stay
    assert facts(osm) == FIRST_FACTS
    assert_matches(datamart(osm, "countries", "country_id")[200], FIRST_COUNTRIES[200], "Beta")

    again = etl_outcome(osm_notes_etl(rebuild=True, return_state=True))

    assert "incremental equals rebuild" in again.message


# ----------------------------------------------------------------------------- places that move
def note_countries(env: Env) -> dict[int, int]:
    """Each built note's country id, from dim_notes and (all alike) from its facts."""
    found = rows(
        env,
        f"""SELECT n.note_id, dc.country_id AS note_country, array_agg(DISTINCT fc.country_id) AS fact_countries
        FROM {DWH}.dim_notes AS n
        JOIN {DWH}.dim_countries AS dc ON dc.country_key = n.country_key
        JOIN {DWH}.facts AS f USING (note_id)
        JOIN {DWH}.dim_countries AS fc ON fc.country_key = f.country_key
        GROUP BY 1, 2 ORDER BY 1""",
    )
    assert all(r["fact_countries"] == [r["note_country"]] for r in found), found
    return {r["note_id"]: r["note_country"] for r in found}


def rebuild_checked() -> EtlOutcome:
    """An ETL run with the nightly check: raises RebuildMismatchError if incremental != rebuild."""
    outcome = etl_outcome(osm_notes_etl(rebuild=True, return_state=True))
    assert "incremental equals rebuild" in outcome.message
    return outcome


def test_notes_follow_moved_borders_new_and_removed_countries_as_a_rebuild_would(osm: Env) -> None:
    source_sql(FIRST_BATCH)
    etl()
    assert note_countries(osm) == {1: 100, 2: 200, 3: -1, 4: 200, 6: 200}

    # A moved border: Alpha shrinks west of x = 4, Beta grows to x = 4.5; note 1 (5, 5) is Beta's now.
    source_sql(
        "UPDATE public.countries SET geom = ST_Multi(ST_MakeEnvelope(0, 0, 4, 10, 4326)), "
        "updated_at = clock_timestamp() WHERE country_id = 100;"
        "UPDATE public.countries SET geom = ST_Multi(ST_Collect(ST_MakeEnvelope(4.5, 0, 30, 10, 4326), "
        "ST_MakeEnvelope(40, 0, 42, 2, 4326))), updated_at = clock_timestamp() WHERE country_id = 200;"
    )
    rebuild_checked()
    assert note_countries(osm) == {1: 200, 2: 200, 3: -1, 4: 200, 6: 200}
    countries = datamart(osm, "countries", "country_id")
    assert 100 not in countries  # no note left in Alpha: no row, as a full rebuild gives
    assert countries[200]["actions"] == 11
    assert [c["country_id"] for c in datamart(osm, "users", "user_id")[11]["top_countries"]] == [200]

    # A new country over former sea: note 3 (50, 50) leaves international waters.
    source_sql(
        "INSERT INTO public.countries (country_id, name, name_en, iso_alpha2, iso_alpha3, geom) "
        "VALUES (400, 'Delta', 'Delta', 'DD', 'DDD', ST_Multi(ST_MakeEnvelope(45, 45, 55, 55, 4326)));"
    )
    rebuild_checked()
    assert note_countries(osm) == {1: 200, 2: 200, 3: 400, 4: 200, 6: 200}
    countries = datamart(osm, "countries", "country_id")
    assert (countries[400]["actions"], -1 in countries) == (1, False)

    # A removed country: Beta's notes go to international waters, and a new note where
    # Beta was is not placed in it.
    source_sql(
        "DELETE FROM public.countries WHERE country_id = 200;"
        "INSERT INTO public.notes (note_id, geom, created_at, status) "
        "VALUES (8, ST_Point(25, 6, 4326), '2025-07-01 00:00Z', 'open');"
        "INSERT INTO public.note_comments (note_id, sequence, action, user_id, created_at, body) "
        "VALUES (8, 1, 'opened', 55, '2025-07-01 00:00Z', 'Gone?');"
    )
    rebuild_checked()
    assert note_countries(osm) == {1: -1, 2: -1, 3: 400, 4: -1, 6: -1, 8: -1}
    countries = datamart(osm, "countries", "country_id")
    assert set(countries) == {-1, 400}
    assert countries[-1]["actions"] == 12  # notes 1 (4 actions), 2 (4), 4 (2), 6 and 8
    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.country_areas AS a JOIN {DWH}.dim_countries AS d "
                     "USING (country_key) WHERE d.country_id = 200") == [(0,)]  # fmt: skip


# ----------------------------------------------------------------------------- deletes
def test_comments_and_notes_deleted_in_the_source_leave_facts_and_datamarts_in_one_run(osm: Env) -> None:
    source_sql(FIRST_BATCH)
    etl()
    # bob's comment on note 1 (with its #fixme) and eve's note 6 (her only action) go.
    source_sql(
        "DELETE FROM public.note_comments WHERE (note_id, sequence) = (1, 2) OR note_id = 6;"
        "DELETE FROM public.notes WHERE note_id = 6;"
    )

    outcome = rebuild_checked()  # the incremental run, then a rebuild that must agree

    assert outcome.transform is not None
    assert outcome.transform.facts_deleted == 2
    by_key = {(f[0], f[1]): f for f in facts(osm)}
    assert sorted(by_key) == [(1, 1), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (2, 4), (3, 1), (4, 1), (4, 3)]
    assert [by_key[(1, s)][8] for s in (1, 3, 4)] == [1, 2, 3]  # positions without the deleted comment
    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.dim_notes WHERE note_id = 6") == [(0,)]
    users = datamart(osm, "users", "user_id")
    assert 55 not in users  # eve has no action left
    assert (users[22]["actions"], users[22]["commented"]) == (5, 0)
    assert users[22]["top_hashtags"] == top_hashtags(("mapathon", 1), ("地図", 1))
    countries = datamart(osm, "countries", "country_id")
    assert (countries[200]["actions"], countries[200]["notes_opened"]) == (6, 2)
    assert countries[100]["actions"] == 3
    # Bronze keeps the rows, marked; the run log counts them.
    marked = """SELECT
        (SELECT count(*) FROM osm_notes_bronze.notes WHERE _dwh_deleted_at IS NOT NULL),
        (SELECT count(*) FROM osm_notes_bronze.note_comments WHERE _dwh_deleted_at IS NOT NULL),
        (SELECT count(*) FROM osm_notes_bronze.note_comments)"""
    assert osm.query("wh", marked) == [(1, 2, 12)]
    runs = osm.query(
        "wh",
        "SELECT table_name, marked_deleted FROM osm_notes_control.reconcile_runs "
        "WHERE marked_deleted > 0 ORDER BY 1",
    )
    assert runs == [("note_comments", 2), ("notes", 1)]


# ----------------------------------------------------------------------------- datamart state
MART_STATE = ("mart_totals", "mart_days", "mart_hours", "mart_peers", "mart_hashtags", "mart_opened_unclosed")


def mart_state(env: Env) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the datamart state tables, in key order."""
    return {
        table: env.query("wh", f"SELECT * FROM {DWH}.{table} AS t ORDER BY t::text") for table in MART_STATE
    }


def test_datamart_state_kept_from_increments_equals_one_built_from_all_facts(osm: Env) -> None:
    conninfo = app_conninfo()
    seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=600)
    sync_bronze()
    transform()
    seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=150)
    sync_bronze()
    # Back-filled comments move later facts, closes of closed notes are invalid closes.
    result = transform()
    assert result.facts_updated > 0
    assert result.invalid_transitions > 0
    # A comment and a whole note deleted in the source: their counts must go.
    source_sql(
        "DELETE FROM public.note_comments WHERE (note_id, sequence) = (5, 2) OR note_id = 7;"
        "DELETE FROM public.notes WHERE note_id = 7;"
    )
    assert etl().facts_deleted > 0
    kept = mart_state(osm)
    assert len(kept["mart_days"]) > 1000
    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.mart_totals WHERE n = 0") == [(0,)]  # zeros go

    transform(rebuild=True)  # facts emptied: the state is built from all facts again

    assert mart_state(osm) == kept
    # A warehouse that had facts before the state existed fills it in its next run.
    osm.query("wh", f"TRUNCATE {', '.join(f'{DWH}.{t}' for t in MART_STATE)}")
    osm.query("wh", f"UPDATE {DWH}.mart_state_built SET built = false")
    transform()
    assert mart_state(osm) == kept
