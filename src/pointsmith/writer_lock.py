"""One SQLite writer at a time, across threads and processes, queued outside SQLite's busy handler.

SQLite lets one transaction write at a time. A writer that finds the database
locked sleeps in SQLite's busy handler, which backs off (1, 2, 5, 10 … 100 ms
between tries), so under steady load from several processes (server workers,
an import next to a server) the sleeps overshoot the other writer's commit and
make a long latency tail. Writers queue here instead: on a thread lock within
the process, and across processes on an advisory lock (`flock`) of a file next
to the database (`<database>-lock`), tried every half millisecond at most, so
the next writer starts soon after the last one commits. Both waits give up
after the same 30 s as SQLite's own, with the error SQLite gives.
"""
from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

TIMEOUT = 30.0  # seconds, as the engine's busy timeout
LONGEST_NAP = 0.0005  # seconds between tries of the file lock, at most


class WriterLock:
    def __init__(self, database: str | None, timeout: float = TIMEOUT) -> None:
        # an in-memory database lives in one process: the thread lock is all it needs
        self._path = None if sys.platform == "win32" or not database or database.startswith(":memory:") \
            else f"{database}-lock"
        self._timeout = timeout
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._fd_pid = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        deadline = time.monotonic() + self._timeout
        if not self._thread_lock.acquire(timeout=self._timeout):
            raise _locked()
        try:
            fd = self._file()
            if fd is None:
                yield
                return
            _lock_file(fd, deadline)
            try:
                yield
            finally:
                _unlock_file(fd)
        finally:
            self._thread_lock.release()

    def _file(self) -> int | None:
        """The lock file, opened once per process (a forked child must not share its parent's open
        file: flock locks belong to the open file, so the two would not exclude each other)."""
        if self._path is None:
            return None
        if self._fd is None or self._fd_pid != os.getpid():
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                # no lock file (a read-only directory): SQLite's own lock still keeps writers apart
                self._path = None
                return None
            self._fd_pid = os.getpid()
        return self._fd


if sys.platform != "win32":
    import fcntl

    def _lock_file(fd: int, deadline: float) -> None:
        nap = 0.00005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                # polled: a blocking flock could not give up at the deadline
                if time.monotonic() > deadline:
                    raise _locked() from None
                time.sleep(nap)
                nap = min(nap * 2, LONGEST_NAP)

    def _unlock_file(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
else:  # pragma: no cover - the lock file is never opened there
    def _lock_file(fd: int, deadline: float) -> None:
        raise NotImplementedError

    def _unlock_file(fd: int) -> None:
        raise NotImplementedError


def _locked() -> sa.exc.OperationalError:
    """What SQLite's own wait ends with, so callers handle both alike (HTTP 503, a failed group)."""
    return sa.exc.OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
