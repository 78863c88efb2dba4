"""Validate a program document and list every problem with its path.

Each section is parsed on its own so a type error in one section does not
hide a logic error in another; checks that span fields run on each section
that parsed, and on a rule's fields that parsed. Paths read like
`tiers.levels[2].threshold`.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ValidationError

from pointsmith.bodies import storable
from pointsmith.errors import InvalidProgram
from pointsmith.expressions import ExpressionError, compile_condition, compile_expression, is_number
from pointsmith.program.schema import (
    EVENT_TYPE,
    LIST_SECTIONS,
    REQUIRED,
    SECTIONS,
    ExpiryPolicy,
    PointsConfig,
    Program,
    ProgramInfo,
    Rule,
    TiersConfig,
)

S = TypeVar("S", bound=BaseModel)
Problems = list[str]


def _repeated_keys_in(loader: yaml.SafeLoader, root: yaml.Node | None) -> Problems:
    """Every key written twice in one mapping of the composed document, before anything is built
    (building flattens `<<` merges into the merged nodes): YAML keeps the last silently, so a second
    `rules:` section would drop the first one's rules without a word."""
    found: list[tuple[int, str]] = []
    seen: set[int] = set()  # an anchored node is one object however many aliases name it
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in node.value:
                stack.append(value_node)
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue  # `<<: *base` then overriding a key is meant
                key = loader.construct_object(key_node, deep=True)  # a scalar: 1 and 1.0, on and yes are one
                line = key_node.start_mark.line + 1
                if key in first:
                    found.append((line, f"line {line}: {key!r} is written twice in one mapping "
                                        f"(first on line {first[key]}); YAML would keep only the last"))
                else:
                    first[key] = line
    return [problem for _, problem in sorted(found)]


def parse_text(text: str, *, as_json: bool = False) -> Any:
    """YAML (a superset of JSON) to plain data; a syntax error is a problem with its line. `as_json`:
    the document says it is JSON (a .json file, a JSON body), so it is read as strict JSON: YAML would
    let a trailing comma by."""
    try:
        data = _parse_json(text) if as_json else _parse_yaml(text)
    except RecursionError:
        raise InvalidProgram(["file: nested too deeply"]) from None
    try:
        storable(data)
    except ValueError as e:
        raise InvalidProgram([str(e)]) from None
    return data


def _parse_yaml(text: str) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        repeated = _repeated_keys_in(loader, node)
        data = loader.construct_document(node) if node is not None and not repeated else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        raise InvalidProgram([f"{where}: {e.problem or e}"]) from None
    except yaml.YAMLError as e:
        raise InvalidProgram([f"file: {e}"]) from None
    finally:
        loader.dispose()
    if repeated:
        raise InvalidProgram(repeated)
    return data


def _parse_json(text: str) -> Any:
    repeated: Problems = []

    def mapping(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        repeated.extend(f"{k!r} is written twice in one object; JSON readers keep only the last"
                        for i, k in enumerate(keys) if k in keys[:i])
        return dict(pairs)

    try:
        data = json.loads(text, object_pairs_hook=mapping)
    except json.JSONDecodeError as e:
        raise InvalidProgram([f"line {e.lineno}, column {e.colno}: {e.msg} (read as JSON)"]) from None
    if repeated:
        raise InvalidProgram(repeated)
    return data


def load_program(text: str, *, as_json: bool = False) -> Program:
    return validate_program(parse_text(text, as_json=as_json))


def validate_program(raw: Any, *, stored: bool = False) -> Program:
    """A valid Program, or InvalidProgram listing every problem found.

    A rule's `active` time written without an offset is a time of the program's own time zone, and
    is kept with its offset. `stored`: a document read back from a published version, whose offsets
    are already written (a time without one there was published before this reading and meant UTC,
    as it still does), and which checks added since it was published do not refuse.
    """
    if not isinstance(raw, dict):
        raise InvalidProgram(["(root): must be a mapping with a `program:` section"])
    problems: Problems = []
    parsed: dict[str, Any] = {}
    known = set(SECTIONS) | set(LIST_SECTIONS)
    for name in raw:
        if name not in known:
            problems.append(f"{name}: unknown section (known: {', '.join(sorted(known))})")
    for name in REQUIRED:
        if name not in raw:
            problems.append(f"{name}: section is required")
    for name, model in SECTIONS.items():
        if name in raw:
            section = _parse(model, raw[name], name, problems)
            if section is not None:
                parsed[name] = section
            # the checks that span fields run on what was written, so they run on a section that
            # did not parse too (a bad currency does not hide an unknown time zone)
            problems += [f"{name}{p}" for p in CHECKS.get(name, _no_checks)(raw[name])]
    info: ProgramInfo | None = parsed.get("program")
    zone = UTC if stored or info is None or any(p.startswith("program.timezone") for p in problems) \
        else ZoneInfo(info.timezone)
    for name, model in LIST_SECTIONS.items():
        items = raw.get(name, [])
        if not isinstance(items, list):
            problems.append(f"{name}: must be a list")
            continue
        parsed[name] = [s for i, item in enumerate(items)
                        if (s := _parse_item(model, item, f"{name}[{i}]", problems, zone, new=not stored)) is not None]
        problems += _duplicate_keys(items, name)
    problems += _cross_checks(parsed)
    if problems:
        raise InvalidProgram(problems)
    return Program.model_validate(parsed)


def _parse(model: type[S], data: Any, path: str, problems: Problems) -> S | None:
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems += [f"{_path(path, err['loc'])}: {err['msg']}" for err in e.errors()]
        return None


def _parse_item(model: type[S], item: Any, path: str, problems: Problems, zone: tzinfo, *, new: bool) -> S | None:
    if model is not Rule or not isinstance(item, dict):
        return _parse(model, item, path, problems)
    return cast("S | None", _parse_rule(item, path, problems, zone, new=new))


def _parse_rule(item: dict[Any, Any], path: str, problems: Problems, zone: tzinfo, *, new: bool) -> Rule | None:
    """The rule, or None; its problems are listed all at once: a wrong field does not hide another's."""
    if True in item:
        problems.append(f"{path}: write `event:`, not `on:` (YAML reads a bare `on` as true)")
        item = dict(item)
        item.setdefault("event", item.pop(True))  # checked as the `event:` it was meant to be
    problems += [f"{path}{p}" for p in _check_expressions(item, new=new)]
    try:
        rule = Rule.model_validate(item)
    except ValidationError as e:
        problems += [f"{_path(path, err['loc'])}: {err['msg']}" for err in e.errors()]
        part = _fields_that_parse(item, e)
        if part is not None:
            problems += [f"{path}{p}" for p in _check_rule(_in_zone(part, zone), new=new)]
        return None
    rule = _in_zone(rule, zone)
    problems += [f"{path}{p}" for p in _check_rule(rule, new=new)]
    return rule


def _fields_that_parse(item: dict[Any, Any], error: ValidationError) -> Rule | None:
    """The rule without the fields that did not parse (their problems are listed), so the checks of the others
    still run: those left out are at their defaults, which no check refuses, and a required one is a stand-in."""
    wrong = {err["loc"][0] for err in error.errors() if err["loc"]}
    kept = {k: v for k, v in item.items() if k in Rule.model_fields and k not in wrong}
    try:
        return Rule.model_validate({"key": "rule", "event": "rule", **kept})
    except ValidationError:
        return None


def _in_zone(rule: Rule, zone: tzinfo) -> Rule:
    """The rule with its `active` times given an offset: those written without one are in `zone`."""
    window = rule.active
    if window is None:
        return rule

    def aware(at: datetime | None) -> datetime | None:
        return at.replace(tzinfo=zone) if at is not None and at.tzinfo is None else at

    return rule.model_copy(update={"active": window.model_copy(update={"from_": aware(window.from_),
                                                                       "until": aware(window.until)})})


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if part == "[key]":  # pydantic's marker for a bad mapping key: the key itself is already named
            continue
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _no_checks(_section: Any) -> Iterator[str]:
    return iter(())


def _check_program_info(raw: Any) -> Iterator[str]:
    zone = raw.get("timezone") if isinstance(raw, dict) else None
    if not isinstance(zone, str):
        return  # a missing one is UTC; one of another type is a type error already
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        yield f".timezone: unknown time zone {zone!r} (use an IANA name such as Asia/Shanghai)"


def _check_points(raw: Any) -> Iterator[str]:
    try:
        points = PointsConfig.model_validate(raw or {})
    except ValidationError:
        return  # its type errors are listed; the expiry needs a policy that parsed
    policy = points.expiry.policy
    if policy in (ExpiryPolicy.rolling, ExpiryPolicy.inactivity) and points.expiry.months is None:
        yield f".expiry.months: required for policy {policy.value}"
    if policy is ExpiryPolicy.calendar and points.expiry.years is None:
        yield ".expiry.years: required for policy calendar"


def _check_tiers(raw: Any) -> Iterator[str]:
    levels = raw.get("levels") if isinstance(raw, dict) else None
    if not isinstance(levels, list) or not all(isinstance(level, dict) for level in levels):
        return  # listed as a type error
    try:  # the thresholds as parsed ('300' is 300), else as written
        thresholds: list[Any] = [level.threshold for level in TiersConfig.model_validate(raw).levels]
    except ValidationError:
        thresholds = [level.get("threshold") for level in levels]
    if levels and all(isinstance(t, int | float) and not isinstance(t, bool) for t in thresholds):
        if thresholds[0] != 0:
            yield ".levels[0].threshold: the first level's threshold must be 0"
        for i in range(1, len(levels)):
            if thresholds[i] <= thresholds[i - 1]:
                yield f".levels[{i}].threshold: must be greater than {thresholds[i - 1]}"
    yield from (f".levels{p}" for p in _repeated_keys(levels))


def _check_expressions(raw_rule: dict[str, Any], *, new: bool) -> Iterator[str]:
    for field in ("when", "points", "growth"):
        source = raw_rule.get(field)
        if (field == "when" and isinstance(source, bool)) or not isinstance(source, str | int | float):
            continue  # absent, YAML's true / false, or a type error listed already
        try:
            compile_expression(source, strict=new)
        except ExpressionError as e:
            yield f".{field}: {e}"


def _check_rule(rule: Rule, *, new: bool) -> Iterator[str]:
    """A parsed rule's problems beyond its expressions; `new`: also those a version published before
    the check was added may have."""
    if new and not EVENT_TYPE.match(rule.event):
        yield (f".event: {rule.event!r} can never arrive: event types are lower-case words joined by dots"
               " (e.g. order.paid, video.watched)")
    window = rule.active
    if window and window.from_ and window.until and window.until <= window.from_:  # both aware (_in_zone)
        yield ".active.until: must be later than active.from"
    if not new:
        return
    when = _constant(rule.when) if rule.when is not None else VARIES
    if when is not VARIES and not isinstance(when, bool):
        yield f".when: gives {when!r} whatever the event; a condition must be true or false"
    growth, points = _constant(rule.growth), _constant(rule.points)
    for field, value in (("points", points), ("growth", growth)):
        if value is not VARIES and not is_number(value):
            yield f".{field}: gives {value!r} whatever the event; an award must be a number"
    growth, points = (v if is_number(v) else None for v in (growth, points))
    if growth is not None and growth < 0:
        yield (".growth: a rule cannot take growth value away (only a refund of the order takes back what it"
               " gave); to discourage a behaviour, take points")
    if points is not None and points < 0:  # a deduction: only `times` applies
        if rule.limits.points:
            yield ".limits.points: a deduction (negative points) is limited by how often it happens (times) only"
        if rule.limits.budget is not None:
            yield ".limits.budget: a budget bounds the points a rule gives; this rule takes points"


VARIES = object()  # what _constant gives for an expression with no one value: not None, which one may give


def _constant(source: int | float | str | bool) -> Any:
    """The value of an expression that names nothing (5, "-200", "2 * 50", "1 == 1"), or VARIES."""
    try:
        expression = compile_condition(source, strict=True) if isinstance(source, str | bool) \
            else compile_expression(source, strict=True)
        return VARIES if expression.names else expression.evaluate({})
    except ExpressionError:
        return VARIES  # listed by _check_expressions


def _duplicate_keys(items: list[Any], path: str) -> Iterator[str]:
    return (f"{path}{p}" for p in _repeated_keys(items))


def _repeated_keys(items: list[Any]) -> Iterator[str]:
    """`[i].key` problems of the items (as written) whose key an earlier item has."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        key = item.get("key") if isinstance(item, dict) else None
        if isinstance(key, str):
            if key in seen:
                yield f"[{i}].key: duplicate key {key!r}"
            seen.add(key)


def _cross_checks(parsed: dict[str, Any]) -> Iterator[str]:
    tiers: TiersConfig | None = parsed.get("tiers")
    if tiers and tiers.max_drop is not None and tiers.qualification.value != "period":
        yield "tiers.max_drop: only applies to qualification: period"
    known = {b.key for b in parsed.get("benefits", [])}
    # a file without a benefits section may still name benefits on its levels (CONTRACT §1's example
    # does): they are unlimited benefits named by their key; with the section, every name must resolve
    for i, level in enumerate(tiers.levels if tiers and known else []):
        for j, grant in enumerate(level.grants()):
            if grant.key not in known:
                yield f"tiers.levels[{i}].benefits[{j}]: no benefit {grant.key!r} in the benefits section"
    for i, benefit in enumerate(parsed.get("benefits", [])):
        if benefit.quota is not None and len(benefit.quota) != 1:
            yield f"benefits[{i}].quota: name one period (day, week, month or year) and its limit"
    for i, level in enumerate(tiers.levels if tiers else []):
        for j, grant in enumerate(level.grants()):
            if grant.quota is not None and len(grant.quota) != 1:
                yield f"tiers.levels[{i}].benefits[{j}].quota: name one period and its limit"


CHECKS: dict[str, Callable[[Any], Iterator[str]]] = {
    "program": _check_program_info,
    "points": _check_points,
    "tiers": _check_tiers,
}


def document(program: Program) -> dict[str, Any]:
    """The canonical JSON form stored with a version."""
    data: dict[str, Any] = json.loads(program.model_dump_json(by_alias=True))
    return data
