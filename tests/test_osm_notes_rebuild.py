"""OSM-notes datamarts in every run, the rebuild check, places that move and deletes, on real PostGIS."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from dwh.analytics.rebuild_check import RebuildMismatchError
from dwh.cli import app
from dwh.onboarding.seed import seed_source
from flows.etl import etl as etl_flow
from flows.etl import etl_outcome
from tests.conftest import SQL_DIR, Env, app_conninfo
from tests.osm_notes import (
    DWH,
    FIRST_BATCH,
    FIRST_COUNTRIES,
    FIRST_FACTS,
    FIRST_GLOBAL,
    FIRST_USERS,
    PIPELINE,
    SECOND_BATCH,
    assert_matches,
    datamart,
    etl,
    facts,
    note_countries,
    rebuild_checked,
    refresh,
    rows,
    snapshot,
    source_sql,
    sync_bronze,
    top_hashtags,
    transform,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


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
        etl_outcome(etl_flow(PIPELINE, rebuild=True, return_state=True))

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

    again = etl_outcome(etl_flow(PIPELINE, rebuild=True, return_state=True))

    assert "incremental equals rebuild" in again.message


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
MART_STATE = (
    "mart_totals",
    "mart_days",
    "mart_hours",
    "mart_peers",
    "mart_hashtags",
    "mart_opened_unclosed",
    "mart_notes",
)


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
    # The seed's later actions follow its clock, so the test closes a closed note itself.
    source_sql(
        "INSERT INTO public.note_comments (note_id, sequence, action, user_id, created_at, body) "
        "SELECT note_id, sequence + 1, 'closed', user_id, created_at + interval '1 hour', 'again' "
        "FROM (SELECT DISTINCT ON (note_id) * FROM public.note_comments WHERE note_id > 10 "
        "      ORDER BY note_id, sequence DESC) AS latest "
        "WHERE action = 'closed' ORDER BY note_id LIMIT 1"
    )
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
