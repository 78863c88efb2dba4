"""Program files are validated whole, and every problem is listed with its path."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from pointsmith.errors import InvalidProgram
from pointsmith.program.schema import RuleLimits
from pointsmith.program.validation import document, load_program, validate_program
from tests.factories import SIMPLE_PROGRAM

CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "spec" / "CONTRACT.md"


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidProgram) as caught:
        load_program(text)
    return caught.value.problems


@pytest.mark.skipif(not CONTRACT.exists(), reason="the shared spec is not beside this checkout")
def test_the_contract_example_is_valid() -> None:
    source = re.search(r"```yaml\n(.*?)```", CONTRACT.read_text(), re.S)
    assert source
    program = load_program(source.group(1))
    assert [level.key for level in program.tiers.levels] == ["member", "silver", "gold", "platinum"]
    assert program.rules[0].active and program.rules[0].active.from_ is not None


def test_the_demo_program_is_valid() -> None:
    from pointsmith.demo import demo_program_source

    assert load_program(demo_program_source()).program.name == "Demo Shop"


def test_lists_every_problem_across_sections_at_once() -> None:
    text = SIMPLE_PROGRAM.replace("threshold: 100", "threshold: 0").replace(
        '"floor(event.amount)", growth', '"event.__class__", growth').replace("timezone: UTC", "timezone: Mars/Base")
    found = problems_of(text)
    assert "tiers.levels[1].threshold: must be greater than 0" in found
    assert any(p.startswith("rules[0].points: name 'event.__class__'") for p in found)
    assert any(p.startswith("program.timezone: unknown time zone") for p in found)


def test_type_errors_carry_their_full_path() -> None:
    found = problems_of(SIMPLE_PROGRAM.replace("point_value: 0.01", "point_value: -1"))
    assert any(p.startswith("program.point_value:") for p in found), found


def test_a_bare_on_key_is_explained() -> None:
    found = problems_of(SIMPLE_PROGRAM.replace("event: order.paid", "on: order.paid"))
    assert any("write `event:`" in p and p.startswith("rules[0]") for p in found), found


def test_unknown_sections_and_duplicate_keys_are_problems() -> None:
    text = SIMPLE_PROGRAM + "  - {key: order, event: checkin, points: 1}\nrewardz: {}\n"
    found = problems_of(text)
    assert any(p.startswith("rewardz: unknown section") for p in found), found
    assert "rules[1].key: duplicate key 'order'" in found


def test_expiry_policies_need_their_parameter() -> None:
    found = problems_of(SIMPLE_PROGRAM.replace("policy: none", "policy: rolling"))
    assert found == ["points.expiry.months: required for policy rolling"]


def test_a_limit_period_must_be_known() -> None:
    found = problems_of(SIMPLE_PROGRAM.replace('growth: "floor(event.amount)"}',
                                               'growth: "floor(event.amount)", limits: {points: {dya: 5}}}'))
    assert len(found) == 1 and found[0].startswith("rules[0].limits.points.dya:"), found


def test_an_active_window_must_end_after_it_starts() -> None:
    found = problems_of(SIMPLE_PROGRAM.replace(
        'growth: "floor(event.amount)"}',
        'growth: "floor(event.amount)", active: {from: "2026-02-01T00:00:00Z", until: "2026-01-01T00:00:00Z"}}'))
    assert found == ["rules[0].active.until: must be later than active.from"]


def test_a_constant_expression_that_cannot_run_is_refused_now() -> None:
    found = problems_of(SIMPLE_PROGRAM.replace('points: "floor(event.amount)"', "points: \"'a' * 3\""))
    assert any(p.startswith("rules[0].points:") for p in found), found


def test_yaml_syntax_errors_name_the_line() -> None:
    assert problems_of("program: {name: x\nrules: [")[0].startswith("line ")


def test_the_root_must_be_a_mapping() -> None:
    assert problems_of("- 1\n- 2\n") == ["(root): must be a mapping with a `program:` section"]


def test_the_fixture_copy_of_the_contract_example_is_current() -> None:
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "contract_example.yaml"
    if CONTRACT.exists():
        source = re.search(r"```yaml\n(.*?)```", CONTRACT.read_text(), re.S)
        assert source and source.group(1) == fixture.read_text()
    load_program(fixture.read_text())


def windowed(start: str, end: str) -> str:
    """The simple program in Shanghai's time, its rule active from `start` until `end`."""
    return SIMPLE_PROGRAM.replace("timezone: UTC", "timezone: Asia/Shanghai").replace(
        'growth: "floor(event.amount)"}',
        f'growth: "floor(event.amount)", active: {{from: "{start}", until: "{end}"}}}}')


def test_an_active_time_without_an_offset_is_in_the_programs_time_zone() -> None:
    window = load_program(windowed("2026-11-11T00:00:00", "2026-11-12T00:00:00+00:00")).rules[0].active
    assert window and window.from_ == datetime(2026, 11, 10, 16, tzinfo=UTC)  # Shanghai's midnight
    assert window.until == datetime(2026, 11, 12, tzinfo=UTC)  # an offset given is kept
    assert document(load_program(windowed("2026-11-11T00:00:00", "2026-11-12T00:00:00")))["rules"][0][
        "active"] == {"from": "2026-11-11T00:00:00+08:00", "until": "2026-11-12T00:00:00+08:00"}


def test_a_stored_document_keeps_reading_a_time_without_an_offset_as_utc() -> None:
    # a version published before local times were read so: its document holds the naive time it meant as UTC
    stored = document(load_program(SIMPLE_PROGRAM))
    stored["program"]["timezone"] = "Asia/Shanghai"
    stored["rules"][0]["active"] = {"from": "2026-11-11T00:00:00", "until": None}
    window = validate_program(stored, stored=True).rules[0].active
    assert window and window.from_ == datetime(2026, 11, 11, tzinfo=UTC)
    assert validate_program(stored).rules[0].active.from_ == datetime(2026, 11, 10, 16, tzinfo=UTC)  # type: ignore[union-attr]


def test_an_active_window_is_ordered_in_the_programs_time_zone() -> None:
    # 08:00 in Shanghai is midnight UTC: before 00:30Z, though a UTC reading of it would be after
    found = problems_of(windowed("2026-11-11T00:30:00Z", "2026-11-11T08:00:00"))
    assert found == ["rules[0].active.until: must be later than active.from"]
    # 07:00 in Shanghai is 23:00 UTC the day before: a window of one hour
    window = load_program(windowed("2026-11-11T07:00:00", "2026-11-11T00:00:00Z")).rules[0].active
    assert window and window.until and window.from_ and window.until - window.from_ == timedelta(hours=1)


def test_a_deduction_takes_no_points_limit_or_budget_which_would_never_apply() -> None:
    found = problems_of(SIMPLE_PROGRAM + ("  - {key: fine, event: complaint, points: -200,"
                                          " limits: {points: {day: 400}, budget: 1000, times: {day: 1}}}\n"))
    assert found == [
        "rules[1].limits.points: a deduction (negative points) is limited by how often it happens (times) only",
        "rules[1].limits.budget: a budget bounds the points a rule gives; this rule takes points"]


def test_a_stored_version_with_a_deductions_points_limit_still_loads() -> None:
    stored = document(load_program(SIMPLE_PROGRAM + "  - {key: fine, event: complaint, points: -200}\n"))
    stored["rules"][1]["limits"]["points"] = {"day": 400}  # published before such limits were refused
    assert validate_program(stored, stored=True).rules[1].limits.points == {"day": 400}


def test_a_key_written_twice_is_refused_not_silently_replaced() -> None:
    # YAML keeps the last of two equal keys: a second `rules:` would drop every rule of the first
    text = SIMPLE_PROGRAM.replace('points: "floor(event.amount)"', 'points: 5, points: 500') + \
        "rules:\n  - {key: other, event: checkin, points: 1}\n"
    assert problems_of(text) == [
        "line 11: 'points' is written twice in one mapping (first on line 11); YAML would keep only the last",
        "line 12: 'rules' is written twice in one mapping (first on line 10); YAML would keep only the last"]


def test_a_yaml_merge_that_overrides_a_key_is_not_a_repeat() -> None:
    program = load_program(SIMPLE_PROGRAM + "  - &r {key: a, event: checkin, points: 5}\n  - {<<: *r, key: b}\n")
    assert [(r.key, r.points) for r in program.rules] == [("order", "floor(event.amount)"), ("a", 5), ("b", 5)]


def test_a_json_file_is_read_as_strict_json() -> None:
    with pytest.raises(InvalidProgram) as caught:
        load_program('{"program": {"name": "J",}}', as_json=True)
    assert caught.value.problems[0].startswith("line 1, column 26: Expecting property name")
    with pytest.raises(InvalidProgram) as caught:
        load_program('{"program": {"name": "J"}, "program": {"name": "K"}}', as_json=True)
    assert caught.value.problems == ["'program' is written twice in one object; JSON readers keep only the last"]
    assert load_program('{"program": {"name": "J"}}', as_json=True).program.name == "J"


def test_a_section_that_does_not_parse_still_has_its_other_problems_listed() -> None:
    text = """\
program: {name: X, currency: usd, timezone: Mars/Olympus}
tiers:
  qualification: sometimes
  levels:
    - {key: a, name: A, threshold: 5}
    - {key: a, name: B, threshold: 1}
rules:
  - {key: r, event: login, points: "tier.name", pending: maybe}
  - {key: r, event: login, points: 1}
"""
    found = problems_of(text)
    for expected in ("program.timezone: unknown time zone 'Mars/Olympus'",  # beside the bad currency
                     "tiers.levels[0].threshold: the first level's threshold must be 0",  # beside the qualification
                     "tiers.levels[1].threshold: must be greater than 5", "tiers.levels[1].key: duplicate key 'a'",
                     "rules[0].points: name 'tier.name' is not allowed",  # beside the bad `pending`
                     "rules[1].key: duplicate key 'r'"):  # though rules[0] did not parse
        assert any(p.startswith(expected) for p in found), (expected, found)
    assert len(found) == 9, found  # those six and three type errors: currency, qualification, pending


def test_a_rule_for_an_event_type_that_can_never_arrive_is_refused() -> None:
    found = problems_of(SIMPLE_PROGRAM + "  - {key: v, event: Video-Watched, points: 1}\n")
    assert found == ["rules[1].event: 'Video-Watched' can never arrive: event types are lower-case words joined by "
                     "dots (e.g. order.paid, video.watched)"]
    assert load_program(SIMPLE_PROGRAM + "  - {key: v, event: video.watched_2, points: 1}\n").rules[1].event == \
        "video.watched_2"


def test_a_rule_cannot_take_growth_away() -> None:
    found = problems_of(SIMPLE_PROGRAM + "  - {key: bad, event: complaint.judged_malicious, growth: -50}\n")
    assert len(found) == 1 and found[0].startswith("rules[1].growth: a rule cannot take growth value away"), found


def test_a_merge_inside_an_anchored_mapping_merged_again_is_not_a_repeat() -> None:
    # building flattens `<<` into the merged node itself: the check reads the document before that
    text = SIMPLE_PROGRAM + "base: &r {a: 1}\nd:\n  l:\n    - &b {<<: *r, a: 2}\nx: {<<: *b}\n"
    assert problems_of(text) == ["base: unknown section (known: benefits, growth, members, points, program, rules, "
                                 "tiers)", "d: unknown section (known: benefits, growth, members, points, program, "
                                 "rules, tiers)", "x: unknown section (known: benefits, growth, members, points, "
                                 "program, rules, tiers)"]


def test_constants_of_the_wrong_kind_are_problems_not_crashes() -> None:
    found = problems_of(SIMPLE_PROGRAM + "  - {key: a, event: checkin, points: \"'abc'\", growth: \"(1, 2)\","
                                         " when: \"'yes'\"}\n")
    assert found == ["rules[1].when: gives 'yes' whatever the event; a condition must be true or false",
                     "rules[1].points: gives 'abc' whatever the event; an award must be a number",
                     "rules[1].growth: gives (1, 2) whatever the event; an award must be a number"], found
    found = problems_of(SIMPLE_PROGRAM + "  - {key: a, event: checkin, points: 1, when: 1}\n")  # not read as true
    assert found and all(p.startswith("rules[1].when") for p in found), found


def test_thresholds_written_as_text_are_ordered_as_the_numbers_they_are_read_as() -> None:
    found = problems_of(SIMPLE_PROGRAM.replace("threshold: 100", "threshold: '100'") .replace(
        "    - {key: silver", "    - {key: gold, name: Gold, threshold: '300'}\n    - {key: silver"))
    assert found == ["tiers.levels[2].threshold: must be greater than 300"], found


def test_a_cooldown_is_a_duration_kept_as_written_and_a_bad_one_is_a_problem_with_its_path() -> None:
    with_cooldown = SIMPLE_PROGRAM + '  - {key: share, event: content.shared, points: 5, limits: {cooldown: "90m"}}\n'
    program = load_program(with_cooldown)
    assert program.rules[1].limits.cooldown == timedelta(minutes=90)
    assert document(program)["rules"][1]["limits"]["cooldown"] == "90m"
    assert validate_program(document(program), stored=True) == program  # the stored form reads back the same
    assert "cooldown" not in document(load_program(SIMPLE_PROGRAM))["rules"][0]["limits"]  # checksums kept
    for bad in ('"10 minutes"', "0", '"400d"'):
        found = problems_of(with_cooldown.replace('"90m"', bad))
        assert [p.split(":")[0] for p in found] == ["rules[1].limits.cooldown"], found
    assert problems_of(with_cooldown.replace('"90m"', '"10 minutes"')) == [
        'rules[1].limits.cooldown: a duration such as "30s", "10m", "2h" or "1d", or a whole number of seconds above 0']
    for odd in (timedelta(0), timedelta(days=400), timedelta(seconds=90.5)):  # from Python: held to the same
        with pytest.raises(ValidationError):
            RuleLimits(cooldown=odd)


def test_expressions_that_could_only_skip_their_rule_are_refused_with_the_rules_path() -> None:
    rules = ('  - {key: r, event: checkin, points: "None"}\n'
             '  - {key: s, event: checkin, points: 5, growth: "round(event.x, 13)"}\n'
             '  - {key: t, event: checkin, when: "None", points: 1}\n'
             '  - {key: u, event: checkin, points: "event.x if event.y else None"}\n')
    assert problems_of(SIMPLE_PROGRAM + rules) == [
        "rules[1].points: constant None is not allowed (numbers, strings, True and False are)",
        "rules[2].growth: round() takes 0 to 12 digits",
        "rules[3].when: constant None is not allowed (numbers, strings, True and False are)",
        "rules[4].points: constant None is not allowed (numbers, strings, True and False are)"]
    assert load_program(SIMPLE_PROGRAM + '  - {key: s, event: checkin, growth: "round(event.x, 12)"}\n')


def test_a_stored_version_that_uses_none_or_a_digit_count_round_cannot_take_still_loads() -> None:
    stored = document(load_program(SIMPLE_PROGRAM + "  - {key: r, event: checkin, points: 1}\n"))
    stored["rules"][1].update(when="event.coupon != None", growth="round(event.x, 13)")  # published before refused
    assert validate_program(stored, stored=True).rules[1].when == "event.coupon != None"


def test_every_problem_of_every_rule_is_listed_at_once() -> None:
    found = problems_of(SIMPLE_PROGRAM + "  - {key: a, on: checkin, points: 'foo'}\n"
                                         "  - {key: b, event: checkin, growth: -5, limits: {points: {day: 0}}}\n")
    assert found == [
        "rules[1]: write `event:`, not `on:` (YAML reads a bare `on` as true)",
        "rules[1].points: name 'foo' is not allowed",
        "rules[2].limits.points.day: Input should be greater than or equal to 1",
        "rules[2].growth: a rule cannot take growth value away (only a refund of the order takes back what it gave);"
        " to discourage a behaviour, take points"]


def test_a_rule_written_with_on_is_checked_as_if_it_said_event() -> None:
    found = problems_of(SIMPLE_PROGRAM + "  - {key: a, on: Video-Watched, points: \"'x'\", pending: maybe}\n")
    assert found == [
        "rules[1]: write `event:`, not `on:` (YAML reads a bare `on` as true)",
        "rules[1].pending: Input should be a valid boolean, unable to interpret input",  # not `event` missing
        "rules[1].event: 'Video-Watched' can never arrive: event types are lower-case words joined by dots "
        "(e.g. order.paid, video.watched)",
        "rules[1].points: gives 'x' whatever the event; an award must be a number"]


def test_a_field_that_does_not_parse_leaves_the_checks_of_the_others_and_adds_none() -> None:
    # the bad event, key and limits are listed once each; the checks on them do not run on a stand-in
    found = problems_of(SIMPLE_PROGRAM + "  - {key: '', event: 5, points: -5, when: 1, limits: {budget: 0}}\n")
    assert [p.split(":")[0] for p in found] == ["rules[1].key", "rules[1].event", "rules[1].when.str",
                                                "rules[1].when.bool", "rules[1].limits.budget"], found
    found = problems_of(SIMPLE_PROGRAM + "  - {key: d, event: x, points: -5, limits: {points: {day: 4}}, pending: 2}\n")
    assert found == ["rules[1].pending: Input should be a valid boolean, unable to interpret input",
                     "rules[1].limits.points: a deduction (negative points) is limited by how often it happens (times)"
                     " only"]
