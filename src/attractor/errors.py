"""User-facing errors.

Any problem with what a user asked for (bad arguments, a directory that is not a run, a corpus
that cannot be read) is raised as :class:`UserError` with an actionable one-line message. The CLI
prints it as ``attractor: error: <message>`` and exits with status 2; it never shows a traceback
for these. Internal invariants use ``assert``.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user; the message is shown as one line, without a traceback."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`UserError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise UserError(message)
