"""OSM-notes datamart metrics on real PostGIS, against values computed by hand (tests/osm_notes.py)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from tests.conftest import SQL_DIR, Env
from tests.osm_notes import (
    ALPHA,
    BETA,
    DWH,
    FIRST_COUNTRIES,
    FIRST_FACTS,
    FIRST_GLOBAL,
    FIRST_USERS,
    METRICS_BATCH,
    PIPELINE,
    SC,
    SEA,
    SECOND_BATCH,
    UNKNOWN,
    D,
    assert_matches,
    datamart,
    facts,
    first_batch,
    profile,
    ranked,
    refresh,
    resolution,
    rows,
    snapshot,
    source_sql,
    sync_bronze,
    top_countries,
    top_hashtags,
    top_users,
    transform,
    ts,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


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

    # The next day's first refresh computes the relative fields of eve and Alpha again,
    # alone (nothing else of theirs changed), and gets what the whole build above got.
    users, countries = datamart(osm, "users", "user_id"), datamart(osm, "countries", "country_id")
    stale = '\'{"history_day_open": 99, "history_year_closed": 99, "last_year_activity": "9"}\''
    for name, key, entity in (("users", "user_id", 55), ("countries", "country_id", 100)):
        osm.query("wh", f"UPDATE {DWH}.datamart_periods SET as_of = as_of - 1 WHERE datamart = '{name}'")
        osm.query(
            "wh", f"UPDATE {DWH}.datamart_{name} SET profile = profile || {stale} WHERE {key} = {entity}"
        )

    refresh()

    assert datamart(osm, "users", "user_id") == users
    assert datamart(osm, "countries", "country_id") == countries


def test_a_refresh_on_a_new_day_recomputes_the_relative_fields_of_recently_active_entities_only(
    osm: Env,
) -> None:
    today = datetime.now(UTC).date()
    if (today.month, today.day) == (1, 1):
        pytest.skip("no earlier day of this year to have refreshed on: the new-year test covers today")
    first_batch(flow=False)
    before = datamart(osm, "users", "user_id")
    # As if the last refresh ran yesterday and bob and chen had been active in the 53
    # weeks before it (the selection reads the row's own last_action_at; the data's
    # dates are fixed): their relative fields may be stale, ana's and eve's cannot be.
    osm.query(
        "wh",
        f"UPDATE {DWH}.datamart_periods SET as_of = (now() AT TIME ZONE 'UTC')::date - 1 WHERE datamart = 'users'",
    )
    osm.query(
        "wh",
        f"UPDATE {DWH}.datamart_users SET last_action_at = now() - interval '300 days' WHERE user_id IN (22, 33)",
    )
    osm.query("wh", f"UPDATE {DWH}.datamart_users SET profile = profile || '{{\"history_day_open\": 99}}'")

    refresh()

    after = datamart(osm, "users", "user_id")
    assert {u: after[u]["profile"]["history_day_open"] for u in after} == {11: 99, 22: 0, 33: 0, 55: 99}
    # Their relative fields were computed again, and are what a whole build gives; the
    # rest of the row stays (last_action_at is the test's own).
    for user in (22, 33):
        assert {**after[user], "last_action_at": None} == {**before[user], "last_action_at": None}, user
    assert osm.query("wh", f"SELECT as_of = (now() AT TIME ZONE 'UTC')::date FROM {DWH}.datamart_periods "
                     "WHERE datamart = 'users'") == [(True,)]  # fmt: skip


def test_the_first_refresh_of_a_new_year_gives_every_profile_that_years_keys(osm: Env) -> None:
    first_batch(flow=False)
    before = datamart(osm, "users", "user_id")
    year = datetime.now(UTC).year
    # As if every row was built last year: the profiles list history_<YYYY>_* up to that
    # year. Ana and eve were last active in early 2024, long before its 53 weeks.
    osm.query(
        "wh",
        f"UPDATE {DWH}.datamart_periods SET as_of = make_date({year - 1}, 12, 31) WHERE datamart = 'users'",
    )
    osm.query(
        "wh",
        f"UPDATE {DWH}.datamart_users SET profile = profile - ARRAY['history_{year}_open', "
        f"'history_{year}_commented', 'history_{year}_closed', 'history_{year}_reopened']",
    )

    refresh()  # nothing marked

    after = datamart(osm, "users", "user_id")
    assert {u: after[u]["profile"].get(f"history_{year}_open") for u in after} == {11: 0, 22: 0, 33: 0, 55: 0}
    assert after == before
    refresh(full_rebuild=True)
    assert datamart(osm, "users", "user_id") == after


def test_the_global_row_counts_whole_days_so_two_refreshes_of_a_day_agree(osm: Env) -> None:
    first_batch(flow=False)
    # A note opened 30 days ago and 2 seconds: a window to the second counts it in "the
    # last 30 days" now and not in a refresh 3 seconds later (nor in the nightly rebuild
    # check's); whole UTC days count it all day.
    opened_at = "now() - interval '30 days' + interval '2 seconds'"
    source_sql(
        f"INSERT INTO public.notes (note_id, geom, created_at, status) VALUES (90, ST_Point(5, 5, 4326), {opened_at}, "
        "'open'); INSERT INTO public.note_comments (note_id, sequence, action, user_id, created_at, body) "
        f"VALUES (90, 1, 'opened', 11, {opened_at}, 'Bench missing');"
    )
    sync_bronze()
    transform()
    refresh()
    world = datamart(osm, "global", "id")[1]

    time.sleep(3)
    refresh()

    assert datamart(osm, "global", "id")[1] == world
    assert world["profile"]["notes_created_last_30_days"] == 1
    assert world["profile"]["notes_age_distribution"]["8-30_days"] == 1


def test_rows_from_before_profiles_get_theirs_on_the_next_refresh(osm: Env) -> None:
    first_batch(flow=False)
    users, countries = datamart(osm, "users", "user_id"), datamart(osm, "countries", "country_id")
    # A warehouse just migrated to profiles (0310): rows with '{}', no period recorded yet.
    osm.query("wh", f"TRUNCATE {DWH}.datamart_periods")
    osm.query("wh", f"UPDATE {DWH}.datamart_users SET profile = '{{}}'")
    osm.query("wh", f"UPDATE {DWH}.datamart_countries SET profile = '{{}}'")

    refresh()  # nothing marked

    assert datamart(osm, "users", "user_id") == users
    assert datamart(osm, "countries", "country_id") == countries


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
