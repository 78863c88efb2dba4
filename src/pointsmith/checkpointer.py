"""SQLite's checkpoints, mostly on a thread of their own rather than inside a writer's commit.

In WAL mode a commit appends the pages it changed to the write-ahead log, and a
checkpoint copies the log's pages into the database file and syncs it. SQLite
runs the checkpoint inside the commit that takes the log past
`wal_autocheckpoint` pages, so that one writer (an import batch, or the
requests a server's group commit carries) waits for the copy of every page: at
a million events an import batch changes some 30 MB of pages (a leaf of each
member-keyed index for each of its members), and the checkpoints were a third
of the import's time. Here a thread of each writing process runs a passive
checkpoint (which blocks no writer and no reader) whenever the log has grown
past LOG_LIMIT since it last looked, so the pages are copied while the writer
works on its next transaction. Only a writer can start the log afresh, and
only when its transaction begins on a fully copied log, which a busy writer
never finds (it begins as soon as it has committed); so the writers' own
checkpoint stays, at BACKSTOP_PAGES, to keep the log short (a long one slows
every page read). It then finds all but the last transaction's pages copied.
`journal_size_limit` cuts the log file back to LOG_LIMIT when it starts afresh.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse

LOG_LIMIT = 4 * 1024 * 1024  # bytes of log past which the thread checkpoints what was added since it last did
BACKSTOP_PAGES = 40_000  # the connections' wal_autocheckpoint (see the note): a log of about 160 MB
LOOK_EVERY = 0.05  # seconds between looks at the log's size
QUIET = 10.0  # seconds after its last write transaction began that a database is no longer watched

_lock = threading.Lock()
_written: dict[str, float] = {}  # database file -> when its last write transaction began (monotonic)
_thread: threading.Thread | None = None
checkpoints = 0  # how many this process has run (for tests and benchmarks)


def writing(path: str | None) -> None:
    """A write transaction begins on the database at `path` (None: one in memory, with no log)."""
    global _thread
    if path is None:
        return
    _written[path] = time.monotonic()  # (one store: atomic under the GIL, no lock needed)
    if _thread is None:
        with _lock:
            if _thread is None:
                _thread = threading.Thread(target=_run, name="pointsmith-checkpointer", daemon=True)
                _thread.start()


def _run() -> None:
    connections: dict[str, sqlite3.Connection] = {}
    seen: dict[str, tuple[int, int]] = {}  # the log's (size, mtime) when last checkpointed
    while True:
        time.sleep(LOOK_EVERY)
        now = time.monotonic()
        for path, last in list(_written.items()):
            if now - last > QUIET:
                _written.pop(path, None)
                seen.pop(path, None)
                if path in connections:
                    connections.pop(path).close()
                continue
            try:
                log = os.stat(path + "-wal")
                if log.st_size > LOG_LIMIT and seen.get(path) != (log.st_size, log.st_mtime_ns):
                    _checkpoint(connections, path)
                    seen[path] = (log.st_size, log.st_mtime_ns)
            except (OSError, sqlite3.Error):
                continue  # the database went away or is being changed (a migration): look again later


def _checkpoint(connections: dict[str, sqlite3.Connection], path: str) -> None:
    global checkpoints
    if path not in connections:  # read-write but never create: the file exists (it has a log)
        uri = "file:" + urllib.parse.quote(path) + "?mode=rw"
        connections[path] = sqlite3.connect(uri, uri=True, timeout=1, check_same_thread=False,
                                            isolation_level=None)
    connections[path].execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    checkpoints += 1


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: it starts its own when it first writes."""
    global _thread, _lock
    _thread, _lock = None, threading.Lock()
    _written.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
