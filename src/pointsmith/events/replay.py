"""Replaying a history: the engine clock follows event time, and scheduled work runs as time passes.

Before each event, every job due by the event's time runs (each item at the
time it was due), so a replayed history ends in the state that living
through it would have left.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.jobs.service import next_due, run_due_within


class ReplayClock:
    def __init__(self) -> None:
        self.now: datetime | None = None
        self._next: datetime | None = None
        self._known = False

    def advance(self, conn: Connection, to: datetime) -> None:
        """Move the clock to `to`, running whatever fell due on the way."""
        if self.now is None or to > self.now:
            self.now = to
        if not self._known:
            self._next, self._known = next_due(conn), True
        if self._next is not None and self._next <= self.now:
            with clock.frozen(self.now):
                run_due_within(conn, self.now)
            self._next = next_due(conn)

    def changed(self) -> None:
        """An event was applied: it may have created earlier work (look again next time)."""
        self._known = False

    def finish(self, conn: Connection) -> None:
        if self.now is not None:
            with clock.frozen(self.now):
                run_due_within(conn, self.now)
