"""Group commit for events sent one per request.

Each single-event request would otherwise pay for a transaction of its own
(BEGIN, the batch's reads, COMMIT and its log flush) — most of its cost. The
server hands each event to one writer thread instead, which takes every event
waiting at that moment and ingests them together in one transaction by the
same code as a batch (events/service.py), then answers each request with its
own event's outcome. Nobody waits for a batch to fill: an event that arrives
while the writer is busy goes with the next transaction, so under light load
a batch is one event and under heavy load it grows with the queue.

The writer also checks the API key each event came with, every distinct key
of a group in one read inside its transaction: a request's key check would
otherwise be a database round trip of its own, on the server's event loop.

Under load the senders fall into cohorts: the clients one transaction
answers send their next events together, while the writer is already busy
with the events that came in meanwhile, so the groups alternate (6, 2, 6, 2
...) and each pays a transaction's fixed cost. So once a group had more than
one event, the next waits a little for the senders just answered (`_gather`):
until it is as large as the last and no event came for `QUIET`, and never
longer than a share of the last transaction's time. The cohorts merge into
one group a round; a lone sender never waits. (PostgreSQL's `commit_delay`
does the same for log flushes.)

An event's outcome is what it would be alone: rejects are per event (the rest
of the batch goes through), and duplicates within a batch are found as across
batches. If the transaction fails on something one event brought, each event
is tried again alone, so no event fails for a neighbour; a deadlock, or a new
member that another transaction created first, is tried again as a whole; a
database that is locked or gone fails the group at once (one wait, not one
per event).
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

from sqlalchemy.engine import Connection, Engine

from pointsmith.auth import service as auth
from pointsmith.db import unavailable, unit_of_work
from pointsmith.errors import DomainError
from pointsmith.events import service
from pointsmith.events.service import Ingested
from pointsmith.events.validation import Event

MAX_GROUP = 500  # a bound on one transaction's size (and on the first answer's wait)
GATHER_SHARE = 0.5  # of the last transaction's time: the longest a group waits for more events
GATHER_MAX = 0.010  # seconds: and never longer than this
QUIET = 0.0005  # seconds without a new event that end the wait, once the group is as large as the last
_Item = tuple[Event, str, "Future[Ingested]"]  # the event, its sender's API key, its answer


def waiting_queue() -> queue.Queue[_Item | None]:
    """The writer's queue. Not `queue.SimpleQueue`: on CPython 3.11 its `get(timeout=...)`
    blocks for good if the thread is held up inside it (preempted, on a busy machine) past the
    deadline — it then waits on its lock with a negative timeout, which means no timeout — until
    the next event comes. Under load that is a long tail; on a server that went quiet, the
    requests of the group it was gathering were never answered. `queue.Queue` checks the time left
    in Python before each wait."""
    return queue.Queue()


class GroupCommitter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue = waiting_queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_size = 0      # the writer's own: the size and the time of its last transaction
        self._last_seconds = 0.0

    def submit(self, event: Event, token: str) -> Future[Ingested]:
        """The event's outcome, once its transaction has committed (or its DomainError), if `token` is an
        active API key (that may send events: any key)."""
        future: Future[Ingested] = Future()
        self._start()
        self._queue.put((event, token, future))
        return future

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():  # never started (or closed)
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._loop, name="pointsmith-group-commit", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            group: list[_Item] = []
            item = self._queue.get()
            while item is not None:  # take what is waiting now, without waiting for more
                if item[2].set_running_or_notify_cancel():  # a request given up on (cancelled) is dropped
                    group.append(item)
                if len(group) == MAX_GROUP:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            if not stopping and self._last_size > 1:
                patience = min(self._last_seconds * GATHER_SHARE, GATHER_MAX)
                stopping = _gather(self._queue, group, self._last_size, time.monotonic() + patience, QUIET)
            self._last_size = len(group)
            started = time.monotonic()
            try:
                if group:
                    self._commit(group)
                    self._last_seconds = time.monotonic() - started
            except BaseException as e:  # whatever it was, its requests get an answer and the writer goes on
                _fail(group, e)

    def _commit(self, group: list[_Item], *, again: bool = False, keys_checked: bool = False) -> None:
        try:
            with unit_of_work(self._engine) as conn:
                if not keys_checked:
                    group = _with_keys(conn, group)  # (the refused are answered)
                    keys_checked = True
                outcomes = service.apply_all(conn, [event for event, _, _ in group])
        except Exception as e:
            trouble = unavailable(e)
            # a deadlock or serialization failure, or a member another transaction created first
            # (service.raced), is tried once more as a whole
            if not again and (str(getattr(trouble, "sqlstate", "") or "").startswith("40") or service.raced(e)):
                self._commit(group, again=True, keys_checked=keys_checked)
                return
            if trouble is not None:
                # the database's own trouble, not an event's (a lock timeout, a lost connection): the
                # group fails at once (its senders retry safely: the event id is the idempotency key)
                _fail(group, e)
                return
            # the transaction failed on something of one event's: find which
            if len(group) > 1:
                for item in group:
                    self._commit([item], keys_checked=keys_checked)
                return
            _fail(group, e)  # the route answers it (and logs it) as any failed request
            return
        for (_, _, future), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def _gather(waiting: queue.Queue[_Item | None], group: list[_Item], expected: int, deadline: float,
            quiet: float) -> bool:
    """Add events to `group` as they come, until it holds `expected` and `quiet` seconds pass without
    another, or until `deadline` (monotonic) or MAX_GROUP; whether the writer was told to stop."""
    while len(group) < MAX_GROUP:
        wait = deadline - time.monotonic()
        if len(group) >= expected:
            wait = min(wait, quiet)
        if wait <= 0:
            return False
        try:
            item = waiting.get(timeout=wait)
        except queue.Empty:
            return False
        if item is None:
            return True
        if item[2].set_running_or_notify_cancel():
            group.append(item)
    return False


def _with_keys(conn: Connection, group: list[_Item]) -> list[_Item]:
    """The items whose key may send events; the others are answered 401 (or 403)."""
    keys = auth.active_keys(conn, {token for _, token, _ in group})
    out = []
    for item in group:
        try:
            auth.permitted(keys.get(item[1]), auth.Scope.client)
        except DomainError as refused:
            item[2].set_exception(refused)
        else:
            out.append(item)
    return out


def _fail(group: list[_Item], error: BaseException) -> None:
    for _, _, future in group:
        if not future.done():
            future.set_exception(error)
