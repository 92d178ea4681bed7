"""OSM-notes test data and helpers: a small source computed by hand, and ways to run its steps.

A small source (6 notes, 5 users, 2 countries) has every fact and every datamart metric
computed by hand; a second batch of activity (a reopen, a close, a comment back-filled
with an old timestamp, a rename, an invalid transition) checks the incremental run
against hand values and against a full rebuild, row for row. Used by the
tests/test_osm_notes_*.py files and the export tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from dwh.analytics.datamarts import refresh_datamarts
from dwh.analytics.transform import TransformResult, run_transform
from dwh.core.catalog import load_catalog
from dwh.core.settings import WarehouseSettings
from dwh.ingest.engine import Engine
from dwh.ingest.extract import extract_table
from dwh.ingest.load import load_pending
from flows.etl import EtlOutcome, etl_outcome
from flows.etl import etl as etl_flow
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env, app_conninfo

PIPELINE = "osm_notes"


DWH = "osm_notes_dwh"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


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
    outcome = etl_outcome(etl_flow(PIPELINE, return_state=True))
    assert not outcome.skipped
    assert outcome.transform is not None
    return outcome.transform


def rows(env: Env, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(env.warehouse_admin) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query.encode()).fetchall()


# A user's ranks come from the view datamart_user_ranks (migrations/0520_user_ranks.sql);
# read with the row, as a consumer of the users datamart does.
RELATIONS = {
    "users": f"(SELECT d.*, r.rank_by_actions, r.rank_by_closed FROM {DWH}.datamart_users AS d "
    f"LEFT JOIN {DWH}.datamart_user_ranks AS r USING (user_id)) AS users",
}


def datamart(env: Env, name: str, key: str) -> dict[Any, dict[str, Any]]:
    relation = RELATIONS.get(name, f"{DWH}.datamart_{name}")
    return {row[key]: row for row in rows(env, f"SELECT * FROM {relation} ORDER BY {key}")}


def snapshot(env: Env) -> dict[str, list[dict[str, Any]]]:
    """Every datamart, row for row."""
    return {
        "users": rows(env, f"SELECT * FROM {RELATIONS['users']} ORDER BY user_id"),
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


def profile(env: Env, name: str, key: str, entity_id: int) -> dict[str, Any]:
    (row,) = rows(env, f"SELECT profile FROM {DWH}.datamart_{name} WHERE {key} = {entity_id}")
    return dict(row["profile"])


def ranked(*entries: tuple[object, ...], keys: tuple[str, ...]) -> list[dict[str, object]]:
    return [{"rank": rank, **dict(zip(keys, e, strict=True))} for rank, e in enumerate(entries, start=1)]


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
    outcome = etl_outcome(etl_flow(PIPELINE, rebuild=True, return_state=True))
    assert "incremental equals rebuild" in outcome.message
    return outcome
