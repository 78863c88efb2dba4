"""How the group commit's writer gathers a group: it waits for the senders it just answered, briefly."""
from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any

from pointsmith.events import group_commit
from pointsmith.events.group_commit import _gather


def _item(name: str) -> Any:
    return (name, "token", Future())


def _feed(waiting: queue.Queue[Any], items: list[Any], every: float) -> threading.Thread:
    def run() -> None:
        for item in items:
            time.sleep(every)
            waiting.put(item)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_group_waits_for_as_many_senders_as_the_last_group_had_and_for_stragglers_close_behind() -> None:
    waiting: queue.Queue[Any] = queue.Queue()
    group = [_item("first")]
    feeder = _feed(waiting, [_item(f"e{i}") for i in range(4)], every=0.02)
    started = time.monotonic()
    stopping = _gather(waiting, group, expected=3, deadline=started + 5, quiet=0.5)
    feeder.join()
    # the fourth came within `quiet` of the third: taken too; then half a second of quiet ends the wait
    assert not stopping and [name for name, _, _ in group] == ["first", "e0", "e1", "e2", "e3"]
    assert 0.5 <= time.monotonic() - started < 3


def test_a_group_waits_no_longer_than_its_deadline_when_the_senders_do_not_come() -> None:
    waiting: queue.Queue[Any] = queue.Queue()
    group = [_item("first")]
    started = time.monotonic()
    assert not _gather(waiting, group, expected=8, deadline=started + 0.2, quiet=0.05)
    assert len(group) == 1 and 0.19 <= time.monotonic() - started < 2


def test_a_group_as_large_as_the_last_waits_only_for_the_quiet_spell() -> None:
    waiting: queue.Queue[Any] = queue.Queue()
    group = [_item("a"), _item("b")]
    started = time.monotonic()
    assert not _gather(waiting, group, expected=2, deadline=started + 5, quiet=0.05)
    assert len(group) == 2 and time.monotonic() - started < 2


def test_gathering_drops_requests_given_up_on_and_hears_the_stop_signal() -> None:
    waiting: queue.Queue[Any] = queue.Queue()
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
    waiting: queue.Queue[Any] = queue.Queue()
    for i in range(5):
        waiting.put(_item(f"e{i}"))
    group = [_item("first")]
    assert not _gather(waiting, group, expected=10, deadline=time.monotonic() + 5, quiet=1)
    assert len(group) == 3 and waiting.qsize() == 3


# Holds the gathering thread up wherever a signal lands: a C-level handler (libc's usleep, which
# gets the signal number as microseconds) stalls it for 54 µs, as a preemption on a busy machine
# would, also inside the queue's own wait. It reports whether the thread still returns from its
# waits: with `queue.SimpleQueue` it stopped within the first 200 signals, every time.
HELD_UP = """
import ctypes, ctypes.util, signal, sys, threading, time
from pointsmith.events.group_commit import _gather, waiting_queue
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.signal.restype, libc.signal.argtypes = ctypes.c_void_p, [ctypes.c_int, ctypes.c_void_p]
stall = int(signal.SIGRTMIN) + 20
libc.signal(stall, ctypes.cast(libc.usleep, ctypes.c_void_p).value)
waiting, gathered, writer_thread = waiting_queue(), [0], []
def writer():
    writer_thread.append(threading.get_ident())
    while True:
        now = time.monotonic()
        _gather(waiting, [], 1, now + 0.00001, 0.00001)
        gathered[0] += 1
threading.Thread(target=writer, daemon=True).start()
time.sleep(0.1)
last = -1
for sent in range(1, 1001):
    signal.pthread_kill(writer_thread[0], stall)
    time.sleep(0.001)
    if sent % 100 == 0:
        if gathered[0] == last:
            sys.exit(f"the writer stopped returning after {sent} signals")
        last = gathered[0]
"""


def test_the_writer_returns_from_its_wait_even_when_held_up_inside_it() -> None:
    done = subprocess.run([sys.executable, "-c", HELD_UP], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
