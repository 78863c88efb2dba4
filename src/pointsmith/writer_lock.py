"""One SQLite writer at a time, across threads and processes, queued outside SQLite's busy handler.

SQLite lets one transaction write at a time. A writer that finds the database
locked sleeps in SQLite's busy handler, which backs off (1, 2, 5, 10 … 100 ms
between tries), so under steady load from several processes (server workers,
an import next to a server) the sleeps overshoot the other writer's commit and
make a long latency tail. Writers queue here instead: on a thread lock within
the process, and across processes on an advisory lock (`flock`) of a file next
to the database (`<database>-lock`), tried every 0.1 ms at most, so the next
writer starts soon after the last one commits. A process that finds others
waiting (they hold a shared lock of `<database>-lock-waiting`) lets them go
first, for up to 5 ms: without that, the writer that has just committed takes
the lock again before a waiting process next tries (one busy with its event
loop, say), and one server worker's requests wait through many of the
other's transactions (a p99 of 870 ms against 35 ms with two workers). Both waits give up after the same
30 s as SQLite's own, with the error SQLite gives.
"""
from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

TIMEOUT = 30.0  # seconds, as the engine's busy timeout
LONGEST_NAP = 0.0001  # seconds between tries of the file lock, at most
COURTESY = 0.005  # how long a writer that finds others waiting lets them go first, at most


class WriterLock:
    def __init__(self, database: str | None, timeout: float = TIMEOUT) -> None:
        path = _file_of(database)
        self.file = path  # the database's file (None: in memory)
        self._path = None if sys.platform == "win32" or path is None else f"{path}-lock"
        self._timeout = timeout
        self._thread_lock = threading.Lock()
        self._files: tuple[int, int] | None = None
        _all.add(self)

    @contextmanager
    def held(self) -> Iterator[None]:
        deadline = time.monotonic() + self._timeout
        if not self._thread_lock.acquire(timeout=self._timeout):
            raise _locked()
        try:
            files = self._open()
            if files is None:
                yield
                return
            lock, waiting = files
            _lock_file(lock, waiting, deadline)
            try:
                yield
            finally:
                _unlock(lock)
        finally:
            self._thread_lock.release()

    def _open(self) -> tuple[int, int] | None:
        """The two lock files, opened once per process."""
        if self._path is None:
            return None
        if self._files is None:
            try:
                self._files = (os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644),
                               os.open(f"{self._path}-waiting", os.O_RDWR | os.O_CREAT, 0o644))
            except OSError:
                # no lock files (a read-only directory): SQLite's own lock still keeps writers apart
                self._path = None
                return None
        return self._files

    def _after_fork(self) -> None:
        """A forked child starts afresh: its parent's threads are gone (a thread lock they held would
        never be released), and flock locks belong to the open file, so a child using its parent's
        would share the parent's lock instead of excluding it (or keep it after the parent ends)."""
        self._thread_lock = threading.Lock()
        if self._files is not None:
            for fd in self._files:
                os.close(fd)
            self._files = None


_all: weakref.WeakSet[WriterLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_all):
        lock._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _file_of(database: str | None) -> str | None:
    """The database's file as an absolute path (the lock must not move with the working directory),
    or None for an in-memory database, which lives in one process (the thread lock is all it needs)."""
    if not database or database.startswith(":memory:"):
        return None
    if database.startswith("file:"):  # a URI filename
        path, _, query = database[len("file:"):].partition("?")
        if not path or path.startswith(":memory:") or "mode=memory" in query:
            return None
        database = path
    return os.path.abspath(database)


if sys.platform != "win32":
    import fcntl

    def _lock_file(lock: int, waiting: int, deadline: float) -> None:
        until = time.monotonic() + COURTESY
        while _others_waiting(waiting) and time.monotonic() < until:
            time.sleep(LONGEST_NAP)  # their turn first: until they have the lock (or are slow to take it)
        if _try(lock):
            return
        _say_waiting(waiting, deadline)
        try:
            nap = 0.00002
            # polled: a blocking flock could not give up at the deadline
            while not _try(lock):
                if time.monotonic() > deadline:
                    raise _locked()
                time.sleep(nap)
                nap = min(nap * 2, LONGEST_NAP)
        finally:
            _unlock(waiting)

    def _say_waiting(waiting: int, deadline: float) -> None:
        """A shared lock of the waiting file: refused only for the moment a peer checks it."""
        while True:
            try:
                fcntl.flock(waiting, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _locked() from None
                time.sleep(LONGEST_NAP)

    def _try(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _others_waiting(waiting: int) -> bool:
        if not _try(waiting):
            return True
        _unlock(waiting)
        return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
else:  # pragma: no cover - the lock files are never opened there
    def _lock_file(lock: int, waiting: int, deadline: float) -> None:
        raise NotImplementedError

    def _unlock(fd: int) -> None:
        raise NotImplementedError


def _locked() -> sa.exc.OperationalError:
    """What SQLite's own wait ends with, so callers handle both alike (HTTP 503, a failed group)."""
    return sa.exc.OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
