"""Batches run with Python's cyclic garbage collector paused.

A batch of a thousand events keeps tens of thousands of objects alive until
it commits, and allocates many more. The collector, run every 700 new
objects, promotes the batch's live objects to older generations and scans
them again and again in the full collections that the promotions trigger: a
quarter of an import's time. Paused for the batch, it runs once the batch is
over (on the next allocations), when the batch's objects are gone. What a
batch leaks into reference cycles waits until then. Overlapping batches
(threads of a server) keep it paused until the last one ends, but never past
MAX_PAUSE without a collection: back-to-back batches must not switch it off
for good. A collector switched off by the application stays off.
"""
from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MAX_PAUSE = 10.0  # seconds of overlapping batches after which one collection runs anyway

_lock = threading.Lock()
_batches = 0
_switch_back_on = False
_paused_since = 0.0


@contextmanager
def paused() -> Iterator[None]:
    global _batches, _switch_back_on, _paused_since
    with _lock:
        if _batches == 0:
            _switch_back_on = gc.isenabled()
            _paused_since = time.monotonic()
            gc.disable()
        _batches += 1
    try:
        yield
    finally:
        with _lock:
            _batches -= 1
            if _batches == 0:
                if _switch_back_on:
                    gc.enable()
            elif _switch_back_on and time.monotonic() - _paused_since > MAX_PAUSE:
                gc.collect()
                _paused_since = time.monotonic()
