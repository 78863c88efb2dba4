"""The garbage collector is paused for batches and comes back when the last one ends."""
from __future__ import annotations

import gc
import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pointsmith import collector
from pointsmith.db import get_engine, unit_of_work
from pointsmith.events import importing, service
from tests.factories import SIMPLE_PROGRAM, event, publish


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_off_during_a_batch_and_on_after_it() -> None:
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_on_again_after_a_batch_that_failed() -> None:
    with pytest.raises(ValueError, match="batch failed"), collector.paused():
        raise ValueError("batch failed")
    assert gc.isenabled()


def test_nested_and_overlapping_batches_keep_it_off_until_the_last_ends() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with collector.paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with collector.paused():
        second_in.set()
        first_out.wait(5)
        thread.join(5)
        assert not gc.isenabled()  # the other thread's batch ended, this one has not
        with collector.paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_back_to_back_batches_do_not_keep_it_off_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "MAX_PAUSE", 0.0)
    collections: list[str] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            collections.append("full")

    gc.callbacks.append(seen)
    try:
        with collector.paused():  # one batch runs on while others start and end
            with collector.paused():
                pass
            assert collections == ["full"] and not gc.isenabled()
    finally:
        gc.callbacks.remove(seen)
    assert gc.isenabled()


def test_a_collector_the_application_switched_off_stays_off() -> None:
    gc.disable()
    with collector.paused():
        pass
    assert not gc.isenabled()


def test_an_import_runs_its_batches_with_the_collector_paused(
        fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = get_engine(fresh_database)
    with unit_of_work(engine) as conn:
        publish(conn, SIMPLE_PROGRAM)
    seen = []
    ingest_many = service.ingest_many

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return ingest_many(*args, **kwargs)

    monkeypatch.setattr(service, "ingest_many", spy)
    lines = "".join(json.dumps(event(f"e{i}", order_id=f"o{i}", amount=3)) + "\n" for i in range(3))
    totals, _ = importing.import_stream(engine, io.StringIO(lines), lambda _: None)
    assert totals["accepted"] == 3 and seen == [False]
    assert gc.isenabled()
