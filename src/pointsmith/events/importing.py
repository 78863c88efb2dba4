"""Importing an NDJSON stream of events in batches, by one process or by several.

Several worker processes (PostgreSQL only) each read the whole file and take
the lines of their own members (a stable hash of `member_id`), so each
member's events keep their file order and no two workers ever lock the same
member. Across members the file order is not kept, which matters only where
members share something: a rule's budget (awarded in the order the workers
reach it), a registration's invite code (the inviter may not be there yet)
and an event id given to members of two workers (the later line is the one
to refuse). Where any could apply, an explicit `--workers N` is refused and
the default (`auto_workers`) takes one process.
"""
from __future__ import annotations

import ctypes
import io
import multiprocessing
import os
import signal
import sqlite3
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsmith import collector
from pointsmith.db import get_engine, in_transaction, is_postgres, read_only, unit_of_work
from pointsmith.errors import DomainError, ImportInterrupted, ImportStopped, ValidationFailed
from pointsmith.events import service
from pointsmith.events.replay import ReplayClock
from pointsmith.events.tables import events
from pointsmith.events.validation import parse_line
from pointsmith.growth.tables import growth_entries, growth_totals
from pointsmith.ledger.tables import ledger_lots, ledger_postings, ledger_transactions, point_balances
from pointsmith.members.tables import members
from pointsmith.program import service as programs
from pointsmith.rules.tables import orders, rule_awards
from pointsmith.tiers.tables import member_tiers, tier_changes

BATCH = 1000
Totals = dict[str, int]
Errors = list[dict[str, Any]]


def open_events(path: Path | None) -> IO[str]:
    """An NDJSON file (or standard input, for None) as text. A leading byte-order mark is skipped; bytes
    that are not UTF-8 are read as lone surrogates, so their line alone is rejected (validation refuses
    such text), not the whole import. Lines end at `\n` only (a `\r\n` ending is whitespace to JSON),
    so line numbers are those of `wc -l` and editors: a stray `\r` does not start a line."""
    if path is None:
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="surrogateescape", newline="\n")
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="\n")


def import_stream(target: Engine, stream: IO[str], advance: Callable[[int], Any], *,
                  replay: ReplayClock | None = None, mine: Callable[[Any], bool] | None = None,
                  stop: Callable[[], bool] | None = None) -> tuple[Totals, Errors]:
    """Ingest `stream` in batches of BATCH lines, a transaction each (only the lines `mine` takes, if
    given); the totals, and the rejects by line number. Ctrl-C, or `stop` saying so, ends it after
    the batch in hand (ImportInterrupted)."""
    totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
    errors: Errors = []
    with _interrupt_between_batches() as interrupted:
        for batch in _batches(_lines(stream, advance, mine)):
            done = _import_batch(target, batch, replay, totals, errors)
            if interrupted or (stop is not None and stop()):
                stopped = ImportInterrupted(
                    f"import interrupted after line {done}: the {totals['accepted']} events this process accepted "
                    "up to it are saved, and importing the file again counts them as duplicates")
                stopped.totals, stopped.errors = totals, errors
                raise stopped
    if replay is not None:
        with unit_of_work(target) as conn:
            replay.finish(conn)
    return totals, errors


class _Interrupted:
    def __init__(self) -> None:
        self.asked = False

    def __bool__(self) -> bool:
        return self.asked


@contextmanager
def _interrupt_between_batches() -> Iterator[_Interrupted]:
    """Ctrl-C (SIGINT) stops the import once the batch in hand is committed, so what it says it saved is
    exactly what it saved; a second Ctrl-C stops it at once (the open batch is rolled back)."""
    interrupted = _Interrupted()
    if threading.current_thread() is not threading.main_thread():  # only the main thread takes signals
        yield interrupted
        return

    def ask(_signum: int, _frame: Any) -> None:
        interrupted.asked = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    before = signal.signal(signal.SIGINT, ask)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, before)


def _import_batch(target: Engine, batch: list[tuple[int, Any]], replay: ReplayClock | None, totals: Totals,
                  errors: Errors) -> int:
    """Ingest one batch in a transaction of its own, adding to `totals` and `errors`; its last line."""
    numbers = [n for n, _ in batch]
    try:
        result = in_transaction(target, partial(_ingest, raws=[raw for _, raw in batch], replay=replay),
                                again_if=service.raced)
    except DomainError:
        raise
    except Exception as e:  # each batch commits alone: say what is saved and how to go on
        why = (str(e).strip().splitlines() or [""])[0]
        raise ImportStopped(
            f"import stopped in lines {numbers[0]}-{numbers[-1]} ({type(e).__name__}: {why}); the "
            f"{totals['accepted']} events this process accepted before them are saved, and importing the "
            "file again counts them as duplicates") from e
    for key in totals:
        totals[key] += getattr(result, key)
    errors += [{"line": numbers[r.index], "id": r.id, "code": r.code, "message": r.message}
               for r in result.errors]
    return numbers[-1]


def _ingest(conn: Connection, *, raws: list[Any], replay: ReplayClock | None) -> service.BatchResult:
    if replay is not None:
        replay.changed()  # a try that was rolled back may have run jobs: look for due work afresh
    with collector.paused():  # paused once the writer lock is ours
        return service.ingest_many(conn, raws, replay=replay, outcomes=False)


# the tables an import fills (the per-event path's rarer ones aside)
FILLED = (events, members, ledger_transactions, ledger_postings, ledger_lots, point_balances, growth_entries,
          growth_totals, rule_awards, orders, member_tiers, tier_changes)


def without_program(target: Engine) -> bool:
    """Whether no program is published yet: events are then recorded, and earn nothing for good (a
    later import of them is a duplicate)."""
    with read_only(target) as conn:
        return not programs.timeline(conn)


def refresh_statistics(target: Engine, accepted: int) -> bool:
    """After an import on PostgreSQL, bring the planner's statistics of the tables it filled up to date
    (ANALYZE) if it added more than autovacuum's own threshold (50 rows and a tenth of the table);
    whether it did. Autovacuum would, but only on its next round (and never where it is off), and
    until then the planner sizes the tables as they were: on statistics from an empty database it
    scans a whole table for each member's history that its index would find at once (bench/README.md)."""
    if accepted == 0 or not is_postgres(target):
        return False
    with target.begin() as conn:
        rows = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass('events')")).scalar()
        if accepted <= 50 + 0.1 * max(rows or 0, 0):
            return False
        conn.execute(sa.text("ANALYZE " + ", ".join(t.name for t in FILLED)))  # our own table names
    return True


def _lines(stream: IO[str], advance: Callable[[int], Any], mine: Callable[[Any], bool] | None
           ) -> Iterator[tuple[int, Any]]:
    """(line number from 1, parsed object or the error), skipping blank lines."""
    for number, line in enumerate(stream, 1):
        advance(len(line))
        if not line.strip():
            continue
        try:
            raw = parse_line(line)
        except DomainError as e:
            raw = e
        if mine is None or mine(raw):
            yield number, raw


def _batches(items: Iterator[tuple[int, Any]]) -> Iterator[list[tuple[int, Any]]]:
    batch: list[tuple[int, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def worker_of(raw: Any, workers: int) -> int:
    """Which worker takes a line: by a hash of its member id that is the same in every process (a
    line without one, which will be rejected, goes to the first)."""
    member_id = raw.get("member_id") if isinstance(raw, dict) else None
    # surrogateescape: an undecodable byte read from the file (the line is rejected by its worker)
    return zlib.crc32(member_id.encode("utf-8", "surrogateescape")) % workers if isinstance(member_id, str) else 0


def check_parallel(target: Engine, path: Path, workers: int) -> None:
    """Refuse a parallel import where the order across members could change an outcome."""
    refusal = parallel_refusal(target, path, workers)
    if refusal is not None:
        raise ValidationFailed(refusal)


def parallel_refusal(target: Engine, path: Path, workers: int) -> str | None:
    """Why `path` must be imported by one process into `target`, if it must."""
    if not is_postgres(target):
        return "--workers needs PostgreSQL: SQLite has a single writer"
    with read_only(target) as conn:
        budgeted = sorted({r.key for v in programs.timeline(conn) for r in v.program.rules
                           if r.limits.budget is not None})
    if budgeted:
        return (f"--workers: rule {budgeted[0]!r} has a budget shared by all members in file order; "
                "import with one worker")
    with open_events(path) as stream, _ids_by_worker() as ids:
        for number, line in enumerate(stream, 1):
            if '"member.registered"' in line and '"invite_code"' in line:
                return (f"--workers: line {number} registers a member with an invite code, whose inviter "
                        "must come first in file order; import with one worker")
            ids.add(number, line, workers)
        shared = ids.first_shared()
    if shared is not None:
        event_id, first, second = shared
        return (f"--workers: lines {first} and {second} give event id {event_id!r} to two members, and the first "
                "must be the one kept (the other is refused); import with one worker")
    return None


class _IdsByWorker:
    """Each line's event id and the worker its member goes to, in a temporary SQLite file (memory stays
    flat whatever the file's size), to find an id that two workers would race for: a second line with
    an id is refused (`idempotency_conflict`), and only file order may say which line that is."""

    CHUNK = 10_000

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.rows = db, list[tuple[str, int, int]]()
        db.execute("CREATE TABLE ids (id TEXT NOT NULL, worker INTEGER NOT NULL, line INTEGER NOT NULL)")

    def add(self, number: int, line: str, workers: int) -> None:
        if not line.strip():
            return
        try:
            raw = orjson.loads(line)  # ids only: faster than the import's own reading (Decimal amounts)
        except orjson.JSONDecodeError:
            try:
                raw = parse_line(line)  # (an integer past 64 bits, say)
            except DomainError:
                return  # rejected by its worker whichever it is
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            self.rows.append((raw["id"], worker_of(raw, workers), number))
            if len(self.rows) >= self.CHUNK:
                self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT INTO ids VALUES (?, ?, ?)", self.rows)
        self.rows.clear()

    def first_shared(self) -> tuple[str, int, int] | None:
        """(id, its first line, its first line in another worker) of the earliest id two workers share."""
        self._flush()
        found = self.db.execute("SELECT id, MIN(line) FROM ids GROUP BY id HAVING MIN(worker) <> MAX(worker) "
                                "ORDER BY MIN(line) LIMIT 1").fetchone()
        if found is None:
            return None
        event_id, first = found
        second = self.db.execute("SELECT MIN(line) FROM ids WHERE id = ? AND worker <> "
                                 "(SELECT worker FROM ids WHERE id = ? AND line = ?)",
                                 (event_id, event_id, first)).fetchone()[0]
        return str(event_id), int(first), int(second)


@contextmanager
def _ids_by_worker() -> Iterator[_IdsByWorker]:
    db = sqlite3.connect("")  # "": a temporary database on disk, deleted when closed
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        yield _IdsByWorker(db)
    finally:
        db.close()


# a file smaller than this is imported by one process: starting a worker costs about a second
AUTO_MIN_BYTES = 1 << 20
AUTO_MAX_WORKERS = 8


def auto_workers(target: Engine, path: Path) -> int:
    """How many processes import `path` when the user did not say: one a core (up to AUTO_MAX_WORKERS)
    on PostgreSQL for a file of some size that allows it, else one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(cores, AUTO_MAX_WORKERS)
    if cores < 2 or path.stat().st_size < AUTO_MIN_BYTES or parallel_refusal(target, path, workers) is not None:
        return 1
    return workers


_positions: Any = None  # the bytes each worker has read (shared memory), for the progress bar


_stop: Any = None  # set (shared memory) when the import is interrupted: each worker stops after its batch


def _share(positions: Any, stop: Any) -> None:
    global _positions, _stop
    _positions, _stop = positions, stop
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the import that started it ends, however it ends (a
    stopped import must not go on writing unseen; its open batch is rolled back)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent was gone before the call: nobody to send it
            os.kill(os.getpid(), signal.SIGTERM)


PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


def _work(url: str, path: str, index: int, workers: int) -> tuple[Totals, Errors, bool]:
    """A worker's import of its own members' lines: its totals, its rejects, whether it was interrupted."""
    read = 0

    def advance(n: int) -> None:
        nonlocal read
        read += n
        if read - _positions[index] > 1 << 20:  # now and then: the bar needs no more
            _positions[index] = read

    try:
        with open_events(Path(path)) as stream:
            totals, errors = import_stream(get_engine(url), stream, advance, stop=lambda: bool(_stop.value),
                                           mine=lambda raw: worker_of(raw, workers) == index)
    except ImportInterrupted as stopped:
        return stopped.totals, stopped.errors, True
    finally:
        _positions[index] = read
    return totals, errors, False


@contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Workers started here ignore Ctrl-C until their import loop takes it (an ignored signal stays
    ignored across exec): one that came while a worker was still importing its modules would kill
    it with a traceback. The parent, which takes it, tells them to stop through `_stop` anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def import_parallel(url: str, path: Path, workers: int, progress: Callable[[int], Any]) -> tuple[Totals, Errors]:
    """`import_stream` of a file by `workers` processes (see the module's note); `progress` is told how
    far the slowest worker has read."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no connection is inherited
    positions, stop = context.RawArray("q", workers), context.RawValue("b", 0)
    with (_interrupt_between_batches() as interrupted,
          ProcessPoolExecutor(workers, mp_context=context, initializer=_share, initargs=(positions, stop)) as pool):
        with _children_ignore_sigint():
            futures = [pool.submit(_work, url, str(path), i, workers) for i in range(workers)]
        while not all(f.done() for f in futures):
            wait(futures, timeout=0.2)
            stop.value = stop.value or bool(interrupted)  # (a terminal's Ctrl-C reaches the workers too)
            progress(min(positions))
        results = [f.result() for f in futures]  # a worker's failure is raised here
    totals = {key: sum(t[key] for t, _, _ in results) for key in results[0][0]}
    errors = sorted((e for _, errs, _ in results for e in errs), key=lambda e: e["line"])
    if any(stopped for _, _, stopped in results):
        stopped_all = ImportInterrupted(
            f"import interrupted: the {totals['accepted']} events its workers accepted are saved, and importing "
            "the file again counts them as duplicates")
        stopped_all.totals, stopped_all.errors = totals, errors
        raise stopped_all
    return totals, errors
