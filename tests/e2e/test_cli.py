"""The CLI as a user runs it: init gate, program apply, members, keys, events import."""
from __future__ import annotations

import json
from pathlib import Path

from tests.databases import create_database, drop_database
from tests.e2e.conftest import Cli, serving
from tests.factories import SIMPLE_PROGRAM

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
