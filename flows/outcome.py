"""How the one-at-a-time flows end: Completed, with a state message that says what happened.

`osm_notes_etl`, `datamarts` and `export_json` skip a run that overlaps another one
(under a warehouse advisory lock) instead of failing it; the skip and the work done
both show in the Prefect UI as the state message, and callers get the outcome back
from the state.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from prefect import get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Completed


class Outcome(Protocol):
    @property
    def message(self) -> str: ...


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


def finished(outcome: Outcome, *, skipped: bool = False) -> State[Any]:
    """The flow's final state; a skipped run also logs why, as a warning."""
    if skipped:
        get_run_logger().warning("%s", outcome.message)
    return Completed(message=outcome.message, data=outcome)


def outcome_of(state: State[Any], kind: type[OutcomeT]) -> OutcomeT:
    """The outcome of a finished run (raises what the run raised)."""
    outcome = state.result()
    if not isinstance(outcome, kind):
        msg = f"the flow returned {type(outcome).__name__}, expected {kind.__name__}"
        raise TypeError(msg)
    return outcome
