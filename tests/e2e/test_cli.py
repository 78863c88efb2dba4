"""The CLI as a user runs it: init gate, program apply, members, keys, events import."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from pointsmith.db import get_engine
from pointsmith.events import importing
from tests.databases import create_database, drop_database
from tests.e2e.conftest import Cli, serving
from tests.factories import SIMPLE_PROGRAM, event

BROKEN = SIMPLE_PROGRAM.replace("threshold: 100", "threshold: 0").replace("floor(event.amount)", "open('x')", 1)


def test_commands_refuse_a_database_that_needs_init(backend: str, tmp_path: Path) -> None:
    url = create_database(backend, tmp_path, migrated=False)
    try:
        r = Cli(url, tmp_path).run("members", "show", "x", check=False)
        assert r.returncode == 1 and "pointsmith init" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert Cli(url, tmp_path).run("init").returncode == 0
        assert Cli(url, tmp_path).run("members", "show", "x", check=False).stderr.startswith("error: no member")
    finally:
        drop_database(url)


def test_a_database_that_cannot_be_reached_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    for url in ("postgresql://postgres@127.0.0.1:1/nothing", f"sqlite:///{tmp_path}/no/such/dir/p.db"):
        r = Cli(url, tmp_path).run("members", "show", "x", check=False)
        assert r.returncode == 1 and r.stderr.startswith("error: database: "), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_usage_error_is_one_line_that_says_where_help_is(cli: Cli) -> None:
    for args, said in [(("events", "import"), "Missing argument 'file'. (see `pointsmith events import --help`)"),
                       (("points", "credit", "m-1", "many"), "Invalid value for 'points'"),
                       (("no-such-command",), "No such command 'no-such-command'. (see `pointsmith --help`)"),
                       (("members", "show", "m-1", "--bogus"), "No such option: --bogus"),
                       (("report", "summary", "--at", "0001-01-01T00:00:00+01:00"),
                        "Invalid value for --at: '0001-01-01T00:00:00+01:00' must be between 1900 and 2999 (UTC)"),
                       (("jobs", "run", "--now", "3001-01-01T00:00:00Z"), "must be between 1900 and 2999")]:
        r = cli.run(*args, check=False)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and said in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    bare = cli.run("members", check=False)  # a command group alone: its help, as before
    assert bare.returncode == 2 and "Usage: pointsmith members" in bare.stdout + bare.stderr
    assert "error" not in bare.stderr


def test_an_invalid_program_lists_every_problem_and_leaves_the_active_version(cli: Cli) -> None:
    good = cli.write("good.yaml", SIMPLE_PROGRAM)
    assert "published version 1" in cli.run("program", "apply", str(good)).stdout
    bad = cli.write("bad.yaml", BROKEN)
    r = cli.run("program", "apply", str(bad), check=False)
    assert r.returncode == 1
    assert "tiers.levels[1].threshold: must be greater than 0" in r.stderr
    assert "rules[0].points: function 'open' is not allowed" in r.stderr
    assert [v["version"] for v in cli.json("program", "versions")] == [1]
    assert cli.json("program", "show")["name"] == "Simple"


def test_dry_run_validates_without_publishing(cli: Cli) -> None:
    path = cli.write("p.yaml", SIMPLE_PROGRAM)
    assert cli.json("program", "apply", str(path), "--dry-run")["valid"] is True
    assert cli.json("program", "versions") == []


def test_effective_time_schedules_a_version(cli: Cli) -> None:
    cli.run("program", "apply", str(cli.write("a.yaml", SIMPLE_PROGRAM)))
    later = cli.write("b.yaml", SIMPLE_PROGRAM.replace("Simple", "Later"))
    cli.run("program", "apply", str(later), "--effective", "2999-01-01T00:00:00Z")
    assert cli.json("program", "show")["name"] == "Simple"
    assert cli.json("program", "show", "--at", "2999-06-01T00:00:00Z")["name"] == "Later"


def test_member_lifecycle_from_the_command_line(cli: Cli) -> None:
    created = cli.json("members", "create", "m-1", "--attr", "city=Lima", "--attr", "years=4")
    assert created["attributes"] == {"city": "Lima", "years": 4}
    assert cli.json("members", "freeze", "m-1", "--reason", "review")["status"] == "frozen"
    r = cli.run("members", "freeze", "m-1", "--reason", "again", check=False)
    assert r.returncode == 1 and r.stderr.startswith("error: cannot freeze")
    missing = cli.run("members", "show", "ghost", check=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: no member with id 'ghost'")


def test_keys_are_shown_once_and_listed_without_secrets(cli: Cli) -> None:
    made = cli.json("keys", "create", "--scope", "client", "--name", "app")
    assert made["scope"] == "client" and made["key"].startswith("psk_")
    listed = cli.json("keys", "list")
    assert [k["id"] for k in listed] == [made["id"]] and made["key"] not in json.dumps(listed)


def test_events_import_reports_rejects_by_line(cli: Cli) -> None:
    lines = [
        {"id": "1", "type": "order.paid", "member_id": "a", "occurred_at": "2026-01-01T00:00:00Z",
         "attributes": {"order_id": "o", "amount": 5}},
        "{broken",
        {"id": "2", "type": "checkin", "member_id": "a", "occurred_at": "later"},
    ]
    path = cli.write("e.ndjson", "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    r = cli.run("events", "import", str(path), "--json", check=False)
    out = json.loads(r.stdout)
    assert r.returncode == 1
    assert (out["accepted"], out["rejected"]) == (1, 2)
    assert [(e["line"], e["code"]) for e in out["errors"]] == [(2, "validation_error"), (3, "validation_error")]
    again = json.loads(cli.run("events", "import", "-", "--json", stdin=json.dumps(lines[0]) + "\n").stdout)
    assert again["duplicate"] == 1


def test_the_contract_example_imported_from_a_hand_made_file_gives_the_hand_calculation(cli: Cli) -> None:
    example = (Path(__file__).resolve().parents[1] / "fixtures" / "contract_example.yaml").read_text()
    cli.run("program", "apply", str(cli.write("example.yaml", example)), "--effective", "2026-01-01T00:00:00Z")
    day = "2026-11-11T0{}:00:00Z"
    path = cli.write("hand-made.ndjson", "".join(json.dumps(e) + "\n" for e in [
        event("e1", member="h", at=day.format(1), order_id="o1", amount=120.50),   # x1: 120 points, 120 growth
        event("e2", member="h", at=day.format(2), order_id="o2", amount=300),      # silver x1.25: 375; growth 80 (cap)
        event("e3", member="h", at=day.format(3), order_id="o3", amount=5000),     # 6250 cut to 5000 - 495 = 4505
        event("e4", member="h", at="2026-11-12T01:00:00Z", order_id="o4", amount=50),  # after the window: 0
        event("e5", "complaint.judged_malicious", member="h", at="2026-11-12T02:00:00Z"),  # -200
        event("e6", "order.refunded", member="h", at="2026-11-13T01:00:00Z", order_id="o2", amount=150),  # -187
        event("e7", "order.refunded", member="h", at="2026-11-13T02:00:00Z", order_id="o2", amount=150),  # -188
    ]))
    assert cli.json("events", "import", str(path)) | {"workers": 1} == {
        "accepted": 7, "duplicate": 0, "rejected": 0, "errors": [], "workers": 1}
    member = cli.json("members", "show", "h")
    assert member["points"]["available"] == 120 + 375 + 4505 - 200 - 187 - 188
    assert (member["growth"]["lifetime"], member["tier"]) == (120 + 80 - 40 - 40, "silver")
    totals = cli.json("report", "summary")["points"]
    assert (totals["issued"], totals["reversed"]) == (120 + 375 + 4505, 200 + 187 + 188)
    assert cli.run("ledger", "verify").returncode == 0


def test_an_import_skips_a_byte_order_mark_and_rejects_only_the_lines_that_are_not_utf8(cli: Cli) -> None:
    good = [json.dumps(event(f"g{i}", member="a", order_id=f"o{i}", amount=5)) for i in range(2)]
    bad = b'{"id": "bad-\xff", "type": "login", "member_id": "a", "occurred_at": "2026-01-01T00:00:00Z"}'
    path = cli.cwd / "e.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + good[0].encode() + b"\n" + bad + b"\n" + good[1].encode() + b"\n")
    out = json.loads(cli.run("events", "import", str(path), "--json", check=False).stdout)
    assert (out["accepted"], out["rejected"]) == (2, 1)
    assert [(e["line"], e["code"]) for e in out["errors"]] == [(2, "validation_error")]
    assert "invalid UTF-8" in out["errors"][0]["message"]


def test_points_grant_checks_the_file_first_and_is_safe_to_run_again(cli: Cli) -> None:
    cli.run("members", "create", "gr-1")
    bad = cli.write("bad.csv", "member_id,points\ngr-1,10\nnobody,5\n")
    failed = cli.run("points", "grant", str(bad), "--key", "g1", "--reason", "promo", check=False)
    assert failed.returncode != 0 and failed.stderr.strip().count("\n") == 0, failed.stderr
    assert "line 3" in failed.stderr
    assert cli.json("points", "balance", "gr-1")["available"] == 0  # nothing was posted
    good = cli.write("good.csv", "member_id,points\ngr-1,10\ngr-1,5\n")
    assert cli.json("points", "grant", str(good), "--key", "g1", "--reason", "promo") == {
        "lines": 2, "credited": 2, "replayed": 0, "points": 15, "points_in_file": 15}
    again = cli.json("points", "grant", str(good), "--key", "g1", "--reason", "promo")
    assert (again["credited"], again["replayed"]) == (0, 2)
    assert cli.json("points", "balance", "gr-1")["available"] == 15


def test_serve_logs_a_line_per_request_unless_told_not_to(cli: Cli) -> None:
    for options, logged in (((), True), (("--no-access-log",), False)):
        with serving(cli.db, cli.cwd, *options) as (server, log):
            assert server.call("GET", "/health").status_code == 200
        assert ('"GET /health HTTP/1.1" 200' in log.read_text()) is logged, options


def _history(members: int = 12) -> list[str]:
    """Orders for several members (some big enough for silver), a partial refund, a resend, bad lines."""
    lines = []
    for i in range(120):
        lines.append(json.dumps({"id": f"p{i}", "type": "order.paid", "member_id": f"pm{i % members}",
                                 "occurred_at": f"2026-01-{1 + i // 5:02d}T{i % 5:02d}:00:00Z",
                                 "attributes": {"order_id": f"o{i}", "amount": 7 + (i * 37) % 60}}))
    lines += [json.dumps({"id": "r1", "type": "order.refunded", "member_id": "pm3",
                          "occurred_at": "2026-02-01T00:00:00Z", "attributes": {"order_id": "o3", "amount": 20}}),
              lines[5], "{broken", json.dumps({"id": "x", "type": "order.paid", "member_id": "pm1"})]
    return lines


def _state(cli: Cli) -> list[object]:
    """Each member's view, but for what is drawn at random or numbered in the order of writing."""
    views = [cli.json("members", "show", f"pm{m}") for m in range(12)]
    for view in views:
        del view["invite_code"]
        for lot in view["points"]["lots"]:
            del lot["id"]
    return views


def test_a_parallel_import_ends_as_one_worker_does(backend: str, tmp_path: Path) -> None:
    if backend != "postgresql":
        return
    results = []
    for workers in ("1", "3"):
        url = create_database(backend, tmp_path)
        try:
            cli = Cli(url, tmp_path)
            cli.run("program", "apply", str(cli.write("p.yaml", SIMPLE_PROGRAM)))
            path = cli.write("events.ndjson", "\n".join(_history()) + "\n")
            with path.open("ab") as f:  # a byte that is not UTF-8 in a member id: its line alone is rejected
                f.write(b'{"id": "u", "type": "login", "member_id": "pm\xff", "occurred_at": "2026-01-01T00:00:00Z"}\n')
            r = cli.run("events", "import", str(path), "--workers", workers, "--json", check=False)
            assert r.returncode == 1, r.stderr  # the bad lines
            results.append((json.loads(r.stdout), _state(cli)))
        finally:
            drop_database(url)
    (one, one_state), (three, three_state) = results
    assert (one["accepted"], one["duplicate"], one["rejected"]) == (121, 1, 3)
    assert (one.pop("workers"), three.pop("workers")) == (1, 3)
    assert one == three and one_state == three_state
    assert [e["line"] for e in three["errors"]] == [123, 124, 125]


def test_a_parallel_import_refuses_what_needs_file_order(cli: Cli) -> None:
    path = cli.write("e.ndjson", json.dumps({"id": "g", "type": "member.registered", "member_id": "new",
                                             "occurred_at": "2026-01-01T00:00:00Z",
                                             "attributes": {"invite_code": "ABC"}}) + "\n")
    r = cli.run("events", "import", str(path), "--workers", "2", check=False)
    assert r.returncode != 0 and r.stderr.count("\n") == 1
    assert ("needs PostgreSQL" in r.stderr) if cli.db.startswith("sqlite") else ("invite code" in r.stderr)
    r = cli.run("events", "import", "-", "--workers", "2", check=False, stdin="")
    assert r.returncode != 0 and "not -" in r.stderr
    if cli.db.startswith("postgresql"):
        budgeted = SIMPLE_PROGRAM.replace('growth: "floor(event.amount)"}',
                                          'growth: "floor(event.amount)", limits: {budget: 1000}}')
        cli.run("program", "apply", str(cli.write("b.yaml", budgeted)))
        orders = cli.write("o.ndjson", "\n".join(_history()[:3]) + "\n")
        r = cli.run("events", "import", str(orders), "--workers", "2", check=False)
        assert r.returncode != 0 and "'order' has a budget" in r.stderr
        assert cli.json("events", "import", str(orders), "--json")["accepted"] == 3  # one worker takes it


def test_a_parallel_import_refuses_an_event_id_that_two_workers_would_race_for(cli: Cli) -> None:
    """The later of two lines with one id is refused, as one process refuses it: only file order says
    which that is, so members of two workers sharing an id need one worker."""
    cli.run("program", "apply", str(cli.write("p.yaml", SIMPLE_PROGRAM)))
    one = "alice"
    other = next(m for m in (f"m{i}" for i in range(100))
                 if importing.worker_of({"member_id": m}, 2) != importing.worker_of({"member_id": one}, 2))
    lines = [event(f"a{i}", member=one, order_id=f"o{i}", amount=1) for i in range(3)]
    lines += [event("x", member=one, order_id="ox", amount=5), event("x", member=other, order_id="oy", amount=9)]
    path = cli.write("ids.ndjson", "\n".join(json.dumps(e) for e in lines) + "\n")
    target = get_engine(cli.db)
    if cli.db.startswith("postgresql"):
        refusal = importing.parallel_refusal(target, path, 2)
        assert refusal is not None and "lines 4 and 5 give event id 'x' to two members" in refusal
        same_worker = cli.write("same.ndjson", "\n".join(json.dumps({**e, "member_id": one}) for e in lines) + "\n")
        assert importing.parallel_refusal(target, same_worker, 2) is None  # one worker keeps file order
        r = cli.run("events", "import", str(path), "--workers", "2", check=False)
        assert r.returncode != 0 and "event id 'x'" in r.stderr
    done = json.loads(cli.run("events", "import", str(path), "--json", check=False).stdout)
    assert (done["accepted"], done["rejected"]) == (4, 1) and done["errors"][0]["line"] == 5


def test_the_import_takes_one_worker_a_core_where_the_file_and_the_database_allow(cli: Cli) -> None:
    cli.run("program", "apply", str(cli.write("p.yaml", SIMPLE_PROGRAM)))
    order = json.dumps(event("e1", order_id="o1", amount=10))
    big = cli.write("big.ndjson", order + "\n" * importing.AUTO_MIN_BYTES)  # blank lines: size, no work
    cores = len(os.sched_getaffinity(0))
    expected = min(cores, importing.AUTO_MAX_WORKERS) if cli.db.startswith("postgresql") and cores > 1 else 1
    target = get_engine(cli.db)
    assert importing.auto_workers(target, big) == expected
    assert importing.auto_workers(target, cli.write("small.ndjson", order + "\n")) == 1
    invite = json.dumps(event("g", "member.registered", member="new", invite_code="ABC"))
    assert importing.auto_workers(target, cli.write("invite.ndjson", invite + "\n" + big.read_text())) == 1
    done = cli.json("events", "import", str(big), "--json")
    assert (done["accepted"], done["workers"]) == (1, expected)
    assert cli.json("events", "import", str(big), "--json", "--workers", "1")["workers"] == 1


def _analyzed(url: str) -> dict[str, int]:
    """How often each table has been analyzed (by hand, not by autovacuum)."""
    with get_engine(url).connect() as conn:
        return dict(conn.execute(sa.text("SELECT relname, analyze_count FROM pg_stat_user_tables")).all())


def test_an_import_that_grows_the_tables_past_a_tenth_brings_the_planner_statistics_up_to_date(cli: Cli) -> None:
    cli.run("program", "apply", str(cli.write("p.yaml", SIMPLE_PROGRAM)))

    def import_orders(prefix: str, count: int) -> None:
        path = cli.write(f"{prefix}.ndjson", "".join(json.dumps(event(f"{prefix}{i}", member=f"m{i % 7}",
                                                                      order_id=f"{prefix}o{i}", amount=3)) + "\n"
                                                     for i in range(count)))
        assert cli.json("events", "import", str(path))["accepted"] == count

    if not cli.db.startswith("postgresql"):
        import_orders("s", 60)
        return  # SQLite keeps no statistics unless asked to (ANALYZE), and plans well without them
    before = _analyzed(cli.db)  # (a migration may have analyzed a table it filled)
    import_orders("a", 120)  # into an empty database: more than 50
    after_first = _analyzed(cli.db)
    assert {t.name for t in importing.FILLED} <= {t for t, n in after_first.items() if n == before.get(t, 0) + 1}
    import_orders("b", 12)  # not a tenth of 120 (and under 50): left to autovacuum
    assert _analyzed(cli.db) == after_first


def test_an_award_of_growth_past_its_bound_refuses_its_event_alone(cli: Cli) -> None:
    cli.run("program", "apply", str(cli.write("p.yaml", SIMPLE_PROGRAM + (
        '  - {key: score, event: game.scored, growth: "event.score"}\n'))))
    lines = [json.dumps(event(f"g{i}", "game.scored", score=score)) for i, score in enumerate((5, 10**20, 7))]
    r = cli.run("events", "import", str(cli.write("g.ndjson", "\n".join(lines) + "\n")), "--json", check=False)
    summary = json.loads(r.stdout)
    assert (summary["accepted"], summary["rejected"]) == (2, 1), r.stderr
    assert summary["errors"][0]["line"] == 2 and "at most" in summary["errors"][0]["message"]


def test_import_line_numbers_are_the_files_own_whatever_the_carriage_returns(cli: Cli) -> None:
    good = json.dumps(event("r1", "login"))
    text = (good + "\r\r\n" + json.dumps(event("r2", "login", note="a\rb")) + "\r\n" + "BROKEN\r\n"
            + json.dumps({**event("r3", "login"), "id": "bad id"}) + "\n")
    path = cli.cwd / "cr.ndjson"
    path.write_bytes(text.encode())  # as written: no newline translation
    summary = json.loads(cli.run("events", "import", str(path), "--json", check=False).stdout)
    assert [e["line"] for e in summary["errors"]] == [3, 4]
    assert summary["accepted"] == 2


def test_a_stopped_parallel_import_stops_its_workers(backend: str, tmp_path: Path) -> None:
    if backend != "postgresql":
        return
    url = create_database(backend, tmp_path)
    try:
        cli = Cli(url, tmp_path)
        cli.run("program", "apply", str(cli.write("p.yaml", SIMPLE_PROGRAM)))
        path = cli.write("many.ndjson", "".join(
            json.dumps(event(f"s{i}", member=f"m{i % 500}", order_id=f"o{i}", amount=10)) + "\n"
            for i in range(200_000)))
        parent = subprocess.Popen([sys.executable, "-m", "pointsmith", "events", "import", str(path), "--workers", "2"],
                                  env={**os.environ, "POINTSMITH_DATABASE_URL": url}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        workers = _children_soon(parent.pid, 2)
        parent.send_signal(signal.SIGTERM)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(w) for w in workers)
    finally:
        drop_database(url)


def _children_soon(pid: int, count: int) -> list[int]:
    """The process's children, once it has `count` of them (within 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
        workers = [c for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
        if len(workers) >= count:
            time.sleep(1)  # at work, past their start
            return workers
        time.sleep(0.1)
    raise AssertionError("the import started no workers")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has stopped; only its exit status waits to be collected


def test_an_import_without_a_program_says_its_events_earn_nothing(cli: Cli) -> None:
    r = cli.run("events", "import", "-", "--json", stdin=json.dumps(event("n1", "login")) + "\n")
    assert json.loads(r.stdout)["accepted"] == 1
    assert r.stderr.startswith("warning: no program is published")


def _wait_for_events(url: str, run: subprocess.Popen[str]) -> None:
    """Until an import running as `run` has committed some events (however long its start took)."""
    engine = get_engine(url)
    for _ in range(600):
        with engine.connect() as conn:
            if conn.execute(sa.text("SELECT count(*) FROM events")).scalar():
                return
        assert run.poll() is None, run.communicate()
        time.sleep(0.1)
    raise AssertionError("the import saved nothing in a minute")


def test_an_interrupted_import_says_what_it_saved_and_going_on_resumes(cli: Cli) -> None:
    cli.run("program", "apply", str(cli.write("p.yaml", SIMPLE_PROGRAM)))
    lines = [json.dumps(event(f"i{i}", member=f"m{i % 300}", order_id=f"o{i}", amount=10)) for i in range(100_000)]
    path = cli.write("many.ndjson", "\n".join(lines) + "\n")
    run = subprocess.Popen([sys.executable, "-m", "pointsmith", "events", "import", str(path)], cwd=cli.cwd,
                           env={**os.environ, "POINTSMITH_DATABASE_URL": cli.db}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_events(cli.db, run)  # started (on PostgreSQL, one worker a core), and some batches in
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    said = re.match(r"error: import interrupted.*: the (\d+) events .* are saved", stderr)
    assert said and 0 < int(said.group(1)) < 100_000, stderr
    saved = int(said.group(1))
    again = cli.json("events", "import", str(path))
    assert (again["duplicate"], again["accepted"]) == (saved, 100_000 - saved)


def test_program_apply_reads_a_json_file_as_json_and_answers_json_when_asked(cli: Cli) -> None:
    bad = cli.write("p.json", '{"program": {"name": "J",}}')  # YAML would take the trailing comma
    r = cli.run("program", "apply", str(bad), "--json", check=False)
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"valid": False, "published": False, "errors": [
        "line 1, column 26: Expecting property name enclosed in double quotes (read as JSON)"]}
    assert cli.json("program", "versions") == []


def test_a_first_version_given_an_effective_time_warns_that_earlier_events_earn_nothing(cli: Cli) -> None:
    r = cli.run("program", "apply", str(cli.write("a.yaml", SIMPLE_PROGRAM)), "--effective", "2026-01-01T00:00:00Z")
    assert "warning: the first version takes effect at 2026-01-01T00:00:00Z" in r.stderr
    r = cli.run("program", "apply", str(cli.write("b.yaml", SIMPLE_PROGRAM.replace("Simple", "B"))),
                "--effective", "2026-02-01T00:00:00Z")
    assert r.stderr == ""


def test_a_command_before_init_leaves_no_database_file_behind(tmp_path: Path) -> None:
    r = Cli(f"sqlite:///{tmp_path}/typo.db", tmp_path).run("report", "summary", check=False)
    assert r.returncode == 1 and "is not initialised; run `pointsmith init`" in r.stderr
    assert not (tmp_path / "typo.db").exists()


def test_an_unsupported_database_url_is_one_line(tmp_path: Path) -> None:
    r = Cli("mysql://x/y", tmp_path).run("report", "summary", check=False)
    assert (r.returncode, r.stderr) == (1, "error: unsupported database URL mysql://…: use sqlite:///PATH or "
                                           "postgresql://USER@HOST:PORT/DB\n")


def test_version_and_a_port_in_use(cli: Cli) -> None:
    from pointsmith import __version__

    assert cli.run("--version").stdout == f"{__version__}\n"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        for command in (["serve", "--port", port], ["demo", "--members", "3", "--port", port]):
            r = cli.run(*command, check=False)
            assert (r.returncode, r.stderr) == (1, f"error: cannot listen on 127.0.0.1:{port} (Address already in use);"
                                                   " choose another with --port\n"), command
    assert cli.json("report", "summary")["members"] == 0  # the demo did not seed before it found the port taken


def test_the_readmes_example_files_do_what_it_says(cli: Cli) -> None:
    root = Path(__file__).resolve().parents[2]
    cli.run("program", "apply", str(root / "src" / "pointsmith" / "demo" / "program.yaml"))
    r = cli.run("events", "import", str(root / "examples" / "events.ndjson"), "--json", check=False)
    summary = json.loads(r.stdout)
    assert (summary["accepted"], [e["line"] for e in summary["errors"]]) == (5, [6])  # "line 6 is refused"
    for member in ("demo-00001", "demo-00002", "demo-00003"):
        cli.run("members", "create", member)
    assert "credited 3 (550 points)" in cli.run("points", "grant", str(root / "examples" / "campaign.csv"),
                                                 "--key", "spring-2026", "--reason", "spring campaign").stdout


def test_the_port_probe_binds_as_the_server_will() -> None:
    from pointsmith.cli import _check_port

    with socket.socket() as server:  # a server that closed its side first leaves the port in TIME_WAIT
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()
    time.sleep(0.1)
    client.close()
    _check_port("127.0.0.1", port)  # free for a server with SO_REUSEADDR, as uvicorn binds
    _check_port("localhost", port)


def test_a_url_that_names_its_driver_is_the_same_database(cli: Cli) -> None:
    cli.run("members", "create", "m-1")
    named = cli.db.replace("sqlite:///", "sqlite+pysqlite:///").replace("postgresql://", "postgresql+psycopg://")
    assert named != cli.db and cli.json("report", "summary", "--db", named)["members"] == 1
