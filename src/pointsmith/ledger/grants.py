"""Bulk grants: credit many members at once (a campaign, a migration from another system).

Batches of credits run as separate transactions on `workers` connections at
once: while one batch waits for the database, the next is built. That is
safe because every batch locks its members (in member order, so two batches
never deadlock) and every credit is idempotent by its key, so a grant that
fails half-way is simply run again. SQLite has one writer: there one worker
is all there can be.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice

from sqlalchemy.engine import Engine

from pointsmith.db import unit_of_work
from pointsmith.ledger.service import CreditRequest, post_credits

BATCH = 1000


@dataclass
class GrantResult:
    credited: int = 0   # new credits
    replayed: int = 0   # credits whose key had already been used (a grant run again)
    points: int = 0     # points the new credits gave


def default_workers(engine: Engine) -> int:
    return 1 if engine.dialect.name == "sqlite" else 2


def grant(engine: Engine, requests: Iterable[CreditRequest], *, batch: int = BATCH, workers: int | None = None,
          progress: Callable[[int], None] | None = None) -> GrantResult:
    """Post every request, `batch` a transaction, on `workers` connections; at most two batches per
    worker are in memory at a time, however long `requests` is."""
    workers = workers or default_workers(engine)
    result = GrantResult()

    def run(chunk: list[CreditRequest]) -> GrantResult:
        with unit_of_work(engine) as conn:
            done = post_credits(conn, chunk)
        new = [(c, r) for c, r in zip(done, chunk, strict=True) if not c.replayed]
        return GrantResult(len(new), len(chunk) - len(new), sum(r.points for _, r in new))

    def collect(future: Future[GrantResult]) -> None:
        part = future.result()
        result.credited += part.credited
        result.replayed += part.replayed
        result.points += part.points
        if progress is not None:
            progress(part.credited + part.replayed)

    with ThreadPoolExecutor(workers) as pool:
        pending: set[Future[GrantResult]] = set()
        for chunk in _chunks(iter(requests), batch):
            if len(pending) >= 2 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    collect(future)
            pending.add(pool.submit(run, chunk))
        for future in pending:
            collect(future)
    return result


def _chunks(items: Iterator[CreditRequest], size: int) -> Iterator[list[CreditRequest]]:
    while chunk := list(islice(items, size)):
        yield chunk
