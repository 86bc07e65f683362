"""The session a log line belongs to, carried in a context variable.

A session's tasks run in a context where ``session_id`` is set, so every line they log (ours,
aiortc's, aioice's) can carry it; ``SessionFilter`` puts it on each record.
"""

from __future__ import annotations

import contextvars
import logging

session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("livecart_session", default=None)


def context_for(session: str) -> contextvars.Context:
    """A copy of the current context with ``session_id`` set: pass it to ``create_task``.

    Only the first 8 characters are logged: the whole id is the session URL's secret (its
    DELETE needs nothing else), and logs are read by more people than should hold it.
    """
    ctx = contextvars.copy_context()
    ctx.run(session_id.set, session[:8])
    return ctx


class SessionFilter(logging.Filter):
    """Adds ``record.session`` (the current session id, or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.session = session_id.get() or "-"
        return True
