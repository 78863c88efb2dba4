"""How the group commit's writer gathers a group: it waits for the senders it just answered, briefly."""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from pointsmith.events import group_commit
from pointsmith.events.group_commit import _gather


def _item(name: str) -> Any:
    return (name, "token", Future())


def _feed(waiting: queue.SimpleQueue[Any], items: list[Any], every: float) -> threading.Thread:
    def run() -> None:
        for item in items:
            time.sleep(every)
            waiting.put(item)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_group_waits_for_as_many_senders_as_the_last_group_had_and_for_stragglers_close_behind() -> None:
    waiting: queue.SimpleQueue[Any] = queue.SimpleQueue()
    group = [_item("first")]
    feeder = _feed(waiting, [_item(f"e{i}") for i in range(4)], every=0.02)
    started = time.monotonic()
    stopping = _gather(waiting, group, expected=3, deadline=started + 5, quiet=0.5)
    feeder.join()
    # the fourth came within `quiet` of the third: taken too; then half a second of quiet ends the wait
    assert not stopping and [name for name, _, _ in group] == ["first", "e0", "e1", "e2", "e3"]
    assert 0.5 <= time.monotonic() - started < 3


def test_a_group_waits_no_longer_than_its_deadline_when_the_senders_do_not_come() -> None:
    waiting: queue.SimpleQueue[Any] = queue.SimpleQueue()
    group = [_item("first")]
    started = time.monotonic()
    assert not _gather(waiting, group, expected=8, deadline=started + 0.2, quiet=0.05)
    assert len(group) == 1 and 0.19 <= time.monotonic() - started < 2


def test_a_group_as_large_as_the_last_waits_only_for_the_quiet_spell() -> None:
    waiting: queue.SimpleQueue[Any] = queue.SimpleQueue()
    group = [_item("a"), _item("b")]
    started = time.monotonic()
    assert not _gather(waiting, group, expected=2, deadline=started + 5, quiet=0.05)
    assert len(group) == 2 and time.monotonic() - started < 2


def test_gathering_drops_requests_given_up_on_and_hears_the_stop_signal() -> None:
    waiting: queue.SimpleQueue[Any] = queue.SimpleQueue()
    given_up = _item("gone")
    given_up[2].cancel()
    waiting.put(given_up)
    waiting.put(_item("kept"))
    waiting.put(None)  # close(): the writer stops once this group is committed
    group = [_item("first")]
    assert _gather(waiting, group, expected=5, deadline=time.monotonic() + 5, quiet=1)
    assert [name for name, _, _ in group] == ["first", "kept"]


def test_a_group_never_grows_past_the_bound(monkeypatch: Any) -> None:
    monkeypatch.setattr(group_commit, "MAX_GROUP", 3)
    waiting: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for i in range(5):
        waiting.put(_item(f"e{i}"))
    group = [_item("first")]
    assert not _gather(waiting, group, expected=10, deadline=time.monotonic() + 5, quiet=1)
    assert len(group) == 3 and waiting.qsize() == 3
