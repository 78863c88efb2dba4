"""Instructions an imported event costs on SQLite, counted by valgrind: figures the machine's speed does not move.

    python -m bench.instructions [--events 2000]

The wall-clock figures of bench/events.py move by half between runs on a shared
virtual machine, more than most changes to the code do. Here the import of
`bench.events`' history (same program, same events) runs in-process on SQLite,
where all of its work is in one process, under `valgrind --tool=cachegrind`,
which counts the instructions executed; the same count for the raw-insert
floors (the driver's executemany of the rows the import left, into twins with
no index and with the same indexes) is the baseline of the same run.

Each figure is the difference between two runs of one child process that do
the same setup and differ only in the work measured, so the interpreter's
start, imports and reading the rows back count in neither:
- import: `import_stream` of the file, against an empty file; both runs first
  import one event of another member, so modules loaded on first use and the
  program's compiled rules count in neither;
- floors: reading the rows and inserting them, against reading them only.

Needs valgrind (Debian: `apt-get install valgrind`); the six runs under it
took about two minutes for 300 events here, and grow with the events. Counts
repeat within half a percent from run to run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import machine
from bench.events import PROGRAM, cli, event, raw_floor, row_counts

VALGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]


def counted(*args: str) -> int:
    """Instructions executed by `python -m bench.instructions --child ARGS` under valgrind."""
    done = subprocess.run([*VALGRIND, sys.executable, "-m", "bench.instructions", "--child", *args],
                          capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def child(args: list[str]) -> None:
    """The measured process: an import (`import URL WARM FILE`) or a floor (`floor URL N PREFIX bare|indexed
    write|read`)."""
    from pointsmith.db import get_engine
    from pointsmith.events.importing import import_stream

    if args[0] == "import":
        url, warm, path = args[1:]
        engine = get_engine(url)
        for name in (warm, path):
            with open(name, encoding="utf-8") as stream:
                import_stream(engine, stream, lambda _: None)
        engine.dispose()  # the last connection's checkpoint is part of the import's work
    else:
        url, n, prefix, kind, mode = args[1:]
        raw_floor(url, int(n), row_counts(url), prefix, indexed=kind == "indexed", write=mode == "write")


def measure(n: int, tmp: Path) -> dict[str, Any]:
    program, events, warm, empty = tmp / "program.yaml", tmp / "events.ndjson", tmp / "warm.ndjson", tmp / "empty"
    program.write_text(PROGRAM)
    events.write_text("".join(json.dumps(event(i)) + "\n" for i in range(n)))
    warm.write_text(json.dumps({**event(0, "warm"), "member_id": "warm-up"}) + "\n")
    empty.write_text("")
    base = tmp / "base.db"
    cli(f"sqlite:///{base}", "init")
    cli(f"sqlite:///{base}", "program", "apply", str(program))
    runs = {}
    for name, path in (("empty", empty), ("full", events)):
        shutil.copy(base, tmp / f"{name}.db")
        runs[name] = counted("import", f"sqlite:///{tmp / name}.db", str(warm), str(path))
    imported = f"sqlite:///{tmp / 'full.db'}"
    floors = {kind: counted("floor", imported, str(n), f"w{kind}_", kind, "write")
              - counted("floor", imported, str(n), f"r{kind}_", kind, "read") for kind in ("bare", "indexed")}
    per_event = (runs["full"] - runs["empty"]) / n
    rows = sum(row_counts(imported).values())
    return {"events": n, "rows_written": rows, "import_instructions_per_event": round(per_event),
            "raw_instructions_per_event": round(floors["bare"] / n),
            "raw_indexed_instructions_per_event": round(floors["indexed"] / n),
            "import_vs_raw": round(per_event * n / floors["bare"], 2),
            "import_vs_raw_indexed": round(per_event * n / floors["indexed"], 2)}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("bench.instructions needs valgrind (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.events, Path(tmp))
    print(json.dumps({"machine": machine(), "backend": "sqlite", **result}, indent=2))


if __name__ == "__main__":
    main()
