"""SQLite writers in several processes queue on our lock file, not in SQLite's busy handler."""
from __future__ import annotations

import fcntl
import gc
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
import sqlalchemy as sa

from pointsmith import writer_lock
from pointsmith.app import create_server_app
from pointsmith.db import get_engine, migrate, unit_of_work
from pointsmith.writer_lock import WriterLock

HOLDER = """
import sys, time
from pointsmith import writer_lock
from pointsmith.writer_lock import WriterLock
with WriterLock(sys.argv[1]).held():
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    print(time.time(), flush=True)
"""

UNIT_OF_WORK = """
import sys, time
from pointsmith.db import get_engine, unit_of_work
with unit_of_work(get_engine(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


WAITER = """
import sys, time
from pointsmith import writer_lock
from pointsmith.writer_lock import WriterLock
with WriterLock(sys.argv[1]).held():
    print(time.time(), flush=True)
    time.sleep(float(sys.argv[2]))
"""


@contextmanager
def holding(script: str, target: str, seconds: float) -> Iterator[IO[str]]:
    """A child process that holds the lock for `seconds`; its output, once it holds it."""
    with subprocess.Popen([sys.executable, "-c", script, target, str(seconds)], stdout=subprocess.PIPE,
                          text=True) as child:
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "held"
            yield child.stdout
        finally:
            child.kill()


def test_a_writer_in_another_process_waits_its_turn_and_starts_when_it_ends(tmp_path: Path) -> None:
    database = str(tmp_path / "p.db")
    with holding(HOLDER, database, 0.5) as output:
        with WriterLock(database).held():
            acquired = time.time()
        released = float(output.readline())
    assert acquired >= released
    assert acquired - released < 0.2  # soon: the file lock is tried every 0.1 ms


def test_a_writer_that_finds_another_process_waiting_lets_it_go_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # as long as it takes the waiter to take the lock (a loaded machine may be slow to wake it)
    monkeypatch.setattr(writer_lock, "COURTESY", 20.0)
    database = str(tmp_path / "p.db")
    lock = WriterLock(database)
    with lock.held():
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, database, "0.3"], stdout=subprocess.PIPE, text=True)
        with open(f"{database}-lock-waiting") as flag:  # the waiter says it waits
            deadline = time.monotonic() + 20
            while _free(flag) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not _free(flag)
    try:
        with lock.held():  # at once again, as a busy writer would
            again = time.time()
        took = float(waiter.communicate(timeout=30)[0])
    finally:
        waiter.kill()
        waiter.wait()
    assert took < again - 0.25  # the waiter had its turn (0.3 s) in between


def _free(file: IO[str]) -> bool:
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(file, fcntl.LOCK_UN)
    return True


def test_the_wait_gives_up_with_sqlites_own_error(tmp_path: Path) -> None:
    database = str(tmp_path / "p.db")
    with holding(HOLDER, database, 3):
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="database is locked"), \
                WriterLock(database, timeout=0.3).held():
            pass
        assert 0.3 <= time.monotonic() - started < 2


def test_threads_of_one_process_queue_on_the_thread_lock_first(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "p.db"), timeout=0.2)

    def second_writer() -> None:
        with lock.held():
            pass

    with lock.held(), ThreadPoolExecutor(1) as pool, pytest.raises(sa.exc.OperationalError):
        pool.submit(second_writer).result()
    with lock.held():
        pass


def test_a_unit_of_work_on_a_sqlite_file_holds_the_lock_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate(get_engine(url))
    with holding(UNIT_OF_WORK, url, 3), open(tmp_path / "p.db-lock") as lock_file, \
            pytest.raises(BlockingIOError):
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with unit_of_work(get_engine(url)) as conn:  # the holder's end (even a killed one) frees the lock
        conn.exec_driver_sql("SELECT 1")


def test_an_in_memory_database_needs_no_lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with WriterLock(":memory:").held(), WriterLock(None, timeout=0.1).held():
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_lock_file_is_the_database_files_wherever_the_process_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lock = WriterLock("p.db")
    monkeypatch.chdir("/")
    with lock.held():
        pass
    assert (tmp_path / "p.db-lock").exists()
    with WriterLock(f"file:{tmp_path / 'q.db'}?cache=shared").held():  # a URI filename
        pass
    assert (tmp_path / "q.db-lock").exists()
    with WriterLock("file::memory:?cache=shared").held(), WriterLock(f"file:{tmp_path}/m?mode=memory").held():
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.db-lock", "p.db-lock-waiting", "q.db-lock",
                                                          "q.db-lock-waiting"]


def test_a_forked_child_does_not_share_its_parents_lock(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "p.db"), timeout=0.3)
    with lock.held():
        pass  # the lock files are open in this process now
    parent_holds, tell_child = os.pipe()
    child = os.fork()
    if child == 0:  # must wait for the parent, not hold the lock through the parent's open file
        os.read(parent_holds, 1)
        try:
            with lock.held():
                os._exit(1)
        except sa.exc.OperationalError:
            os._exit(0)
    with lock.held():
        os.write(tell_child, b"!")
        _, status = os.waitpid(child, 0)
    os.close(parent_holds)
    os.close(tell_child)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_served_app_freezes_its_startup_objects_out_of_full_collections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate(get_engine(url))
    monkeypatch.setenv("POINTSMITH_DATABASE_URL", url)
    gc.unfreeze()
    try:
        create_server_app()
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
