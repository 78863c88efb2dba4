"""The rule expression language: a safe subset of Python expression syntax.

An expression is parsed once, checked against an allow-list of syntax and
names, and turned into a tree of small closures. Nothing is ever passed to
`eval`, so only what is listed here can run: numbers, strings, booleans,
`+ - * / // %`, comparisons, `and or not`, `x if c else y`, `in`, the
functions floor ceil round min max abs, and the names `event.<attr>`,
`member.<attr>`, `tier.key` and `tier.multiplier`.

Arithmetic is exact: floats in the source and in the data become `Decimal`,
and a quotient is a `Fraction` (so `event.amount / 3 * 3` is the amount
again, not 9.999...). Results are bounded so no input can blow up memory or
time. `round` rounds halves away from zero (2.5 to 3), as prices are rounded,
not to even as Python's does; `and` / `or` give an operand, as Python's do.
"""
from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

MAX_SOURCE = 1000
MAX_NUMBER = Decimal(10) ** 18
MAX_STRING = 10_000
MAX_DEPTH = 100  # nesting of the syntax tree: compiling (and running) it recurses once a level
ROOTS = {"event", "member", "tier"}
TIER_NAMES = {"key", "multiplier"}

Env = Mapping[str, Mapping[str, Any]]
Node = Callable[[Env], Any]


class ExpressionError(ValueError):
    """The expression is not allowed (at compile time) or cannot be evaluated (at run time)."""


@dataclass(frozen=True)
class Expression:
    source: str
    names: frozenset[str]  # e.g. {"event.amount", "tier.multiplier"}
    _run: Node

    def evaluate(self, env: Env) -> Any:
        try:
            return self._run(env)
        except ExpressionError:
            raise
        except (ArithmeticError, InvalidOperation, TypeError, ValueError) as e:
            raise ExpressionError(f"cannot evaluate {self.source!r}: {e}") from None


def number(value: Any) -> Any:
    """Data to the numbers the language computes with: floats become exact Decimals."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def to_points(value: Any) -> int:
    """An award: the result rounded down to an integer."""
    if not is_number(value):
        raise ExpressionError(f"an award must be a number, not {_kind(value)}")
    if isinstance(value, int):
        return value
    return math.floor(value) if isinstance(value, Fraction) else int(value.to_integral_value(ROUND_FLOOR))


def to_truth(value: Any) -> bool:
    """A condition's result, which must be true or false: a truthy "no" is not a yes. Nothing (an
    attribute the event does not carry, as in `event.vip and ...`) is false."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ExpressionError(f"a condition must be true or false, not {_kind(value)}")
    return value


def compile_condition(source: str | bool, *, strict: bool = False) -> Expression:
    """A `when`: an expression, or YAML's own true / false."""
    if isinstance(source, bool):
        return Expression(str(source).lower(), frozenset(), lambda _env: source)
    return compile_expression(source, strict=strict)


def compile_expression(source: str | int | float, *, strict: bool = False) -> Expression:
    """Parse and check `source`; raise ExpressionError naming what is not allowed.

    `strict`: for a program being applied, which is also refused the constant None (not in the language)
    and a constant digit count round() does not take: either could only skip its rule at every event. A
    version published before they were refused may hold them, and must still load and run.
    """
    if isinstance(source, bool):
        raise ExpressionError("must be a number or an expression, not a boolean")
    if isinstance(source, int | float):
        value = _num(number(source))
        return Expression(str(source), frozenset(), lambda _env: value)
    if not isinstance(source, str):
        raise ExpressionError("must be a number or an expression")
    if len(source) > MAX_SOURCE:
        raise ExpressionError(f"expression longer than {MAX_SOURCE} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"syntax error: {e.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("expression too deeply nested") from None
    _check_depth(tree.body)
    names: set[str] = set()
    try:
        run = _Compiler(names, strict).visit(tree.body)
    except RecursionError:
        raise ExpressionError("expression too deeply nested") from None
    expression = Expression(source, frozenset(names), run)
    if not names:
        expression.evaluate({})  # a constant expression must evaluate now, not fail at the first event
    return expression


def _check_depth(root: ast.AST) -> None:
    """Refuse a tree nested deeper than MAX_DEPTH, walked without recursion: the compiler and the
    closures it builds recurse once a level, and a version is compiled again wherever it is used
    (a deeper stack than `program apply`'s), so the bound must not depend on the stack."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


# --- checked operations ------------------------------------------------------


def _kind(v: Any) -> str:
    if v is None:
        return "nothing (an attribute the event or member does not have)"
    return {str: "text", bool: "true/false", tuple: "a list", list: "a list", dict: "an object"}.get(
        type(v), type(v).__name__)


def is_number(v: Any) -> bool:
    return isinstance(v, int | Decimal | Fraction) and not isinstance(v, bool)


def _num(v: Any) -> Any:
    if not is_number(v):
        raise ExpressionError(f"expected a number, got {_kind(v)}")
    if (isinstance(v, Decimal) and not v.is_finite()) or not -MAX_NUMBER <= v <= MAX_NUMBER:
        raise ExpressionError("number out of range")
    return v


def _same_kind(a: Any, b: Any) -> tuple[Any, Any]:
    """Two numbers made one kind, exactly: Fraction if either is one, else Decimal if either is one."""
    a, b = _num(a), _num(b)
    if isinstance(a, Fraction) or isinstance(b, Fraction):
        return Fraction(a), Fraction(b)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return Decimal(a), Decimal(b)
    return a, b


def _arith(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def run(a: Any, b: Any) -> Any:
        return _num(op(*_same_kind(a, b)))

    return run


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_STRING:
            raise ExpressionError("string too long")
        return a + b
    return _arith(operator.add)(a, b)


def _div(a: Any, b: Any) -> Any:
    a, b = _num(a), _num(b)
    if b == 0:
        raise ExpressionError("division by zero")
    return _num(Fraction(a) / Fraction(b))  # exact: 10 / 3 * 3 is 10


def _divmod(a: Any, b: Any) -> tuple[Any, Any]:
    """Python's floor division and modulo. Decimal's own truncate toward zero (-7.5 // 2 would be -3,
    -7 % 3 would be -1); the language's numbers follow Python's (-4 and 2), as for ints."""
    a, b = _same_kind(a, b)
    if b == 0:
        raise ExpressionError("division by zero")
    if not isinstance(a, Decimal):  # ints and Fractions divide as Python's do
        exact: tuple[Any, Any] = divmod(a, b)
        return exact
    q, r = divmod(a, b)
    if r and (r < 0) != (b < 0):
        q, r = q - 1, r + b
    return q, r


def _floordiv(a: Any, b: Any) -> Any:
    return _num(_divmod(a, b)[0])


def _mod(a: Any, b: Any) -> Any:
    return _num(_divmod(a, b)[1])


def _floor(x: Any) -> int:
    value: int = math.floor(_num(x))
    return value


def _ceil(x: Any) -> int:
    value: int = math.ceil(_num(x))
    return value


def _round(x: Any, digits: Any = 0) -> Any:
    """Halves away from zero (2.5 to 3, -2.5 to -3), to `digits` places."""
    x = _num(x)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 12:
        raise ExpressionError("round() takes 0 to 12 digits")
    whole = math.floor(abs(Fraction(x)) * 10**digits + Fraction(1, 2))
    whole = whole if x >= 0 else -whole
    return whole if digits == 0 else Decimal(whole).scaleb(-digits)


def _min(*args: Any) -> Any:
    return min(_num(a) for a in args)


def _max(*args: Any) -> Any:
    return max(_num(a) for a in args)


def _abs(x: Any) -> Any:
    return abs(_num(x))


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "floor": (_floor, 1, 1), "ceil": (_ceil, 1, 1), "round": (_round, 1, 2),
    "min": (_min, 1, 20), "max": (_max, 1, 20), "abs": (_abs, 1, 1),
}
BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _add, ast.Sub: _arith(operator.sub), ast.Mult: _arith(operator.mul),
    ast.Div: _div, ast.FloorDiv: _floordiv, ast.Mod: _mod,
}


def _compare_values(op: ast.cmpop, a: Any, b: Any) -> bool:
    if isinstance(op, ast.Eq):
        return bool(a == b)
    if isinstance(op, ast.NotEq):
        return bool(a != b)
    if isinstance(op, ast.In | ast.NotIn):
        if not isinstance(b, str | tuple | list | frozenset):
            raise ExpressionError("`in` needs a string or a literal list on its right")
        found = a in b
        return found if isinstance(op, ast.In) else not found
    if a is None or b is None:
        raise ExpressionError("cannot order a missing value")
    if not ((isinstance(a, str) and isinstance(b, str)) or (is_number(a) and is_number(b))):
        raise ExpressionError(f"cannot order {_kind(a)} and {_kind(b)} (text with text, numbers with numbers)")
    ordering = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
    return bool(ordering[type(op)](a, b))


class _Compiler:
    """Turns an allowed AST into closures; any node not handled here is refused."""

    def __init__(self, names: set[str], strict: bool) -> None:
        self.names = names
        self.strict = strict

    def visit(self, node: ast.AST) -> Node:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise ExpressionError(f"{_describe(node)} is not allowed")
        result: Node = method(node)
        return result

    def visit_Constant(self, node: ast.Constant) -> Node:
        value = node.value
        if not isinstance(value, bool | int | float | str) and (self.strict or value is not None):
            raise ExpressionError(f"constant {value!r} is not allowed (numbers, strings, True and False are)")
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise ExpressionError("string too long")
        value = number(value)
        if is_number(value):
            _num(value)  # 1e999 is Infinity; 10**30 is past any award
        return lambda _env: value

    def visit_Attribute(self, node: ast.Attribute) -> Node:
        if not isinstance(node.value, ast.Name) or node.value.id not in ROOTS:
            raise ExpressionError("only event.<name>, member.<name> and tier.key / tier.multiplier are allowed")
        root, attr = node.value.id, node.attr
        if attr.startswith("_"):
            raise ExpressionError(f"name '{root}.{attr}' is not allowed")
        if root == "tier" and attr not in TIER_NAMES:
            raise ExpressionError(f"name 'tier.{attr}' is not allowed (tier.key, tier.multiplier)")
        self.names.add(f"{root}.{attr}")
        return lambda env: number(env[root].get(attr))

    def visit_Name(self, node: ast.Name) -> Node:
        raise ExpressionError(f"name '{node.id}' is not allowed")

    def visit_BinOp(self, node: ast.BinOp) -> Node:
        fn = BINARY.get(type(node.op))
        if fn is None:
            raise ExpressionError(f"operator {_describe(node.op)} is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        return lambda env: fn(left(env), right(env))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Node:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
        if isinstance(node.op, ast.USub):
            return lambda env: -_num(operand(env))
        if isinstance(node.op, ast.UAdd):
            return lambda env: _num(operand(env))
        raise ExpressionError(f"operator {_describe(node.op)} is not allowed")

    def visit_BoolOp(self, node: ast.BoolOp) -> Node:
        """As Python's: the first operand that settles it (`event.bonus or 10` is 10 without a bonus)."""
        parts = [self.visit(v) for v in node.values]
        settles = bool if isinstance(node.op, ast.Or) else (lambda value: not value)

        def run(env: Env) -> Any:
            value = None
            for part in parts:
                value = part(env)
                if settles(value):
                    return value
            return value

        return run

    def visit_Compare(self, node: ast.Compare) -> Node:
        allowed = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
        for op in node.ops:
            if not isinstance(op, allowed):
                raise ExpressionError(f"comparison '{_describe(op)}' is not allowed (==, !=, <, <=, >, >=, in, not in)")
        first = self.visit(node.left)
        rest = [(op, self.visit(c)) for op, c in zip(node.ops, node.comparators, strict=True)]

        def run(env: Env) -> bool:
            left = first(env)
            for op, right_node in rest:
                right = right_node(env)
                if not _compare_values(op, left, right):
                    return False
                left = right
            return True

        return run

    def visit_IfExp(self, node: ast.IfExp) -> Node:
        test, body, orelse = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)

    def visit_Call(self, node: ast.Call) -> Node:
        if isinstance(node.func, ast.Attribute):
            raise ExpressionError(f"calling a method (.{node.func.attr}()) is not allowed; the functions are "
                                  "floor, ceil, round, min, max, abs")
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else _describe(node.func)
            raise ExpressionError(f"function '{name}' is not allowed (floor, ceil, round, min, max, abs)")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError("keyword and * arguments are not allowed")
        fn, least, most = FUNCTIONS[node.func.id]
        if not least <= len(node.args) <= most:
            raise ExpressionError(f"{node.func.id}() takes {least} to {most} arguments")
        args = [self.visit(a) for a in node.args]
        if self.strict and fn is _round and len(args) == 2 and \
                not any(isinstance(n, ast.Attribute) for n in ast.walk(node.args[1])):
            # a digit count that names nothing is the same at every event: check it now
            _round(0, Expression(ast.unparse(node.args[1]), frozenset(), args[1]).evaluate({}))
        return lambda env: fn(*(a(env) for a in args))

    def _literal_sequence(self, node: ast.Tuple | ast.List) -> Node:
        if len(node.elts) > 1000:
            raise ExpressionError("list too long")
        items = [self.visit(e) for e in node.elts]
        return lambda env: tuple(i(env) for i in items)

    visit_Tuple = _literal_sequence
    visit_List = _literal_sequence


def _describe(node: ast.AST) -> str:
    names = {
        "Pow": "**", "BitAnd": "&", "BitOr": "|", "BitXor": "^", "LShift": "<<", "RShift": ">>",
        "MatMult": "@", "Invert": "~", "Is": "is", "IsNot": "is not", "Lambda": "lambda",
        "ListComp": "a comprehension", "GeneratorExp": "a generator", "SetComp": "a comprehension",
        "DictComp": "a comprehension", "Subscript": "indexing", "NamedExpr": ":=",
        "JoinedStr": "an f-string", "Dict": "a dict", "Set": "a set", "Await": "await", "Starred": "*",
    }
    kind = type(node).__name__
    return names.get(kind, kind)
