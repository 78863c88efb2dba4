"""SQLite's checkpoints run on the writing process's own thread, not inside the writers' commits."""
from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pointsmith import checkpointer
from pointsmith.db import get_engine, unit_of_work
from tests.databases import create_database, drop_database


def _log_and_copied(database: str) -> tuple[int, int]:
    """The log's frames (mxFrame) and how many of them a checkpoint has copied (nBackfill), from the
    wal-index header that SQLite keeps in the `-shm` file (sqlite.org/walformat.html)."""
    shm = Path(database + "-shm").read_bytes()
    return struct.unpack_from("=I", shm, 16)[0], struct.unpack_from("=I", shm, 96)[0]


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = create_database("sqlite", tmp_path)
    yield url
    drop_database(url)


def test_the_thread_copies_the_log_while_commits_leave_it_alone(sqlite_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpointer, "QUIET", 60.0)
    engine = get_engine(sqlite_url)
    database = os.path.abspath(engine.url.database or "")
    with unit_of_work(engine) as conn:
        conn.exec_driver_sql("CREATE TABLE filler (x BLOB)")
    before = checkpointer.checkpoints
    for _ in range(6):  # 6 MB of pages: past LOG_LIMIT, far below the commits' own BACKSTOP_PAGES
        with unit_of_work(engine) as conn:
            conn.execute(sa.text("INSERT INTO filler VALUES (randomblob(1000000))"))

    def all_copied() -> bool:  # the thread may have copied part of the log before the last commits
        log, copied = _log_and_copied(database)
        return checkpointer.checkpoints > before and 0 < copied == log

    _wait_for(all_copied)
    log, copied = _log_and_copied(database)
    assert checkpointer.checkpoints > before
    assert 1000 < log < checkpointer.BACKSTOP_PAGES and copied == log  # every frame copied, by the thread
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), sum(length(x)) FROM filler").one() == (6, 6_000_000)


def test_a_database_no_longer_written_is_no_longer_watched(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpointer, "QUIET", 0.2)
    engine = get_engine(sqlite_url)
    with unit_of_work(engine) as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    database = os.path.abspath(engine.url.database or "")
    assert database in checkpointer._written
    _wait_for(lambda: database not in checkpointer._written, 3.0)
    assert database not in checkpointer._written
    with unit_of_work(engine) as conn:  # written again: watched again
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert database in checkpointer._written
