"""Parameters renamed in a release: the old name keeps working, with a warning, for one more.

"Redo everything" is `full_refresh` on every flow and command (it was also `full_rebuild`
on datamarts and `full` on the export). Deployments registered with the old names pass
them as flow parameters, so the flows still accept them until the next release.
"""

from __future__ import annotations

import logging
import warnings

log = logging.getLogger(__name__)


def renamed_flag(new_value: bool, old_value: bool | None, *, old: str, new: str, where: str) -> bool:
    """The flag's value under its new name, or under the old one (warning that it goes away)."""
    if old_value is None:
        return new_value
    message = (
        f"{where}: parameter {old!r} is deprecated and will be removed in the next release; "
        f"use {new!r} (a deployment that passes {old!r} should pass {new!r} instead)"
    )
    warnings.warn(message, DeprecationWarning, stacklevel=3)
    log.warning(message)
    return new_value or old_value
