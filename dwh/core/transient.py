"""Which failures of a warehouse step may pass on their own, so that retrying it is worth it.

The transform, the datamart refreshes and the JSON export each run in one transaction
that either commits or leaves nothing behind, so running one again is always safe; it
is only worth doing when the cause was the connection or the server, not the SQL or
the data (those fail the same way again, and a retry would only delay the alert).
"""

from __future__ import annotations

import psycopg

# SQLSTATE classes and codes of failures outside the statement: the connection
# (class 08), the server shutting down or starting (57P01..57P03), a serialization
# failure or deadlock (40001, 40P01), too many connections (53300).
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "40001", "40P01", "53300")


def is_transient(exc: BaseException) -> bool:
    """True for a database failure a retry may get past (a lost connection, a restart)."""
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate is None:  # raised by the client: the connection broke or was refused
        return isinstance(exc, psycopg.OperationalError)
    return exc.sqlstate.startswith(_TRANSIENT_SQLSTATES)


class StepError(RuntimeError):
    """A warehouse step failed with nothing committed; `transient` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
