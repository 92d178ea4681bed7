"""Freshness from the schedule: when a table's next load is due, from the deployment's cron.

A schedule that runs every 3 h by day and leaves a 6 h gap at night has no single
right "cadence": 2 x the night gap never flags a missed daytime run, a fixed 4 h
flags every night. The rule here: a table loaded at L is due by the first scheduled
run after L plus a grace for the run itself. Health, verify, the stored `due_at`
(Grafana) and the automations all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from cronsim import CronSim

from dwh.core.catalog import Catalog, Schedule, TableSpec

_WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Due:
    """A table loaded at `last` is stale after `by`; `rule` says why, for messages."""

    last: datetime
    by: datetime
    rule: str

    def stale(self, now: datetime) -> bool:
        return now > self.by


def _schedule_for(catalog: Catalog, table: TableSpec) -> Schedule | None:
    # A table with its own cadence runs on its own schedule: keep its cadence rule.
    return None if table.cadence_minutes is not None else catalog.schedule


def next_run(schedule: Schedule, after: datetime) -> datetime:
    zone = ZoneInfo(schedule.timezone)
    return next(iter(CronSim(schedule.cron, after.astimezone(zone))))


def load_due(catalog: Catalog, table: TableSpec, last: datetime) -> Due:
    """When the load after one at `last` is due (seed §9: freshness per the schedule)."""
    schedule = _schedule_for(catalog, table)
    if schedule is None:
        limit = 2 * catalog.cadence_for(table)
        return Due(last, last + timedelta(minutes=limit), f"2 x cadence ({limit} min)")
    upcoming = next_run(schedule, last)
    return Due(
        last,
        upcoming + timedelta(minutes=schedule.grace_minutes),
        f"next scheduled run {upcoming:%Y-%m-%d %H:%M %Z} + {schedule.grace_minutes:g} min grace",
    )


def longest_wait(catalog: Catalog, table: TableSpec, start: datetime) -> timedelta:
    """The longest a table may go without a load under the rule, over a week of the schedule.

    A fixed window (a proactive automation) can only be a backstop: the longest gap
    between two runs plus the grace.
    """
    schedule = _schedule_for(catalog, table)
    if schedule is None:
        return timedelta(minutes=2 * catalog.cadence_for(table))
    fires = [start.astimezone(ZoneInfo(schedule.timezone))]
    for moment in CronSim(schedule.cron, fires[0]):
        fires.append(moment)
        if moment - fires[0] > _WEEK:
            break
    gap = max(b - a for a, b in pairwise(fires[1:]))
    return gap + timedelta(minutes=schedule.grace_minutes)
