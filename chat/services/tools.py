"""Function tools: checking a user's definition, the wire shape per API, built-in tools, and
checking the arguments a model sends.

Pure functions (no ORM, no network), so the views, the generation loop and the tests share them.
Everything a model or a user typed is untrusted: errors come back as messages, never exceptions.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import referencing
from django.utils.translation import gettext as _
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, UnknownType, best_match
from referencing.exceptions import Unresolvable

from chat.services import json_schema

__all__ = [
    "BUILTINS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_SCHEMA_BYTES",
    "NAME_PATTERN",
    "BuiltinTool",
    "check_arguments",
    "parse_json_object",
    "run_builtin",
    "schema_error",
    "validate_definition",
]

# The OpenAI function-name rule; gateways reject anything else, so we refuse it when it is typed.
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
_NAME_RE = re.compile(NAME_PATTERN)
# A schema is sent with every request of every thread that offers the tool: keep it small.
MAX_SCHEMA_BYTES = 16_384
MAX_DESCRIPTION_CHARS = 1024
# Arguments come from the model; a bound keeps a runaway generation from costing us a huge parse.
MAX_ARGUMENTS_BYTES = 262_144

# A registry without a ``retrieve`` function: jsonschema's default registry would fetch a remote
# ``$ref`` over HTTP, which lets anyone who can define a tool make the server issue requests.
_NO_REMOTE_REFS = referencing.Registry()

_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

# The metaschema's format checks, with "regex" (every pattern of a schema) compiled by RE2.
_SCHEMA_FORMATS = json_schema.format_checker()


def _where(path: Iterable[Any]) -> str:
    parts = [str(p) for p in path]
    if not parts:
        return _("at the top level")
    return _("at %(path)s") % {"path": "/".join(parts)}


def parse_json_object(
    text: str, subject: str, *, plural: bool = True
) -> tuple[dict[str, Any] | None, str | None]:
    """Parse ``text`` as a JSON object; errors start with ``subject`` ("Parameters are …")."""
    values = {"subject": subject, "depth": json_schema.MAX_DEPTH}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = _("line %(line)s, column %(column)s") % {"line": exc.lineno, "column": exc.colno}
        values |= {"error": exc.msg, "where": where}
        if plural:
            return None, _("%(subject)s are not valid JSON: %(error)s (%(where)s).") % values
        return None, _("%(subject)s is not valid JSON: %(error)s (%(where)s).") % values
    except RecursionError:
        if plural:
            return None, _("%(subject)s are nested too deeply.") % values
        return None, _("%(subject)s is nested too deeply.") % values
    except ValueError:  # a number of more digits than Python converts (int_max_str_digits)
        if plural:
            return None, _("%(subject)s contain a number with too many digits.") % values
        return None, _("%(subject)s contains a number with too many digits.") % values
    if not isinstance(value, dict):
        return None, _("%(subject)s must be a JSON object.") % values
    if json_schema.depth_exceeds(value):
        # Validation recurses per level: refuse before it does.
        if plural:
            return None, _("%(subject)s are nested too deeply (at most %(depth)s levels).") % values
        return None, _("%(subject)s is nested too deeply (at most %(depth)s levels).") % values
    return value, None


def _remote_ref(schema: Any) -> str | None:
    """The first ``$ref`` that does not point inside the schema itself, if any."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                return ref
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def schema_error(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` is not a usable JSON Schema (Draft 2020-12), or None when it is."""
    if json_schema.depth_exceeds(schema):
        return _("The schema is nested too deeply (at most %(depth)s levels).") % {
            "depth": json_schema.MAX_DEPTH
        }
    try:
        Draft202012Validator.check_schema(schema, format_checker=_SCHEMA_FORMATS)
    except SchemaError as error:
        if isinstance(error.cause, json_schema.PatternRefused):
            return _(
                "The pattern %(pattern)s (%(where)s) cannot be used: %(cause)s. Patterns are "
                "matched with RE2, which has no lookahead, lookbehind or backreferences."
            ) % {
                "pattern": repr(error.instance),
                "where": _where(error.absolute_path),
                "cause": error.cause,
            }
        return _("This is not a valid JSON Schema: %(error)s (%(where)s).") % {
            "error": error.message,
            "where": _where(error.absolute_path),
        }
    except RecursionError:
        return _("The schema is nested too deeply.")
    ref = _remote_ref(schema)
    if ref is not None:
        # Only local references: resolving others would mean network access (see _NO_REMOTE_REFS).
        return _(
            'Only references inside the schema (starting with "#") are allowed, not "%(ref)s".'
        ) % {"ref": ref}
    return None


def validate_definition(
    name: str, description: str, parameters_text: str
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Check a tool form. Returns (parameters schema, errors by field name/description/parameters);
    the schema is None when the parameters have an error. Blank parameters mean "no arguments"."""
    errors: dict[str, str] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = _("Enter a name.")
    elif not _NAME_RE.match(name):
        errors["name"] = _(
            "The name may only contain letters, digits, underscores and hyphens "
            "(at most 64 characters)."
        )
    if len(description or "") > MAX_DESCRIPTION_CHARS:
        errors["description"] = _(
            "The description can be at most %(limit)s characters (it has %(count)s)."
        ) % {"limit": MAX_DESCRIPTION_CHARS, "count": len(description)}

    schema: dict[str, Any] | None = None
    text = (parameters_text or "").strip()
    size = len(text.encode("utf-8"))
    if not text:
        # A tool without arguments is common; don't make people type the empty-object schema.
        schema = dict(_EMPTY_SCHEMA)
    elif size > MAX_SCHEMA_BYTES:
        # Checked before parsing so an oversized paste costs nothing.
        errors["parameters"] = _(
            "Parameters can be at most %(limit)s bytes (these are %(size)s)."
        ) % {"limit": MAX_SCHEMA_BYTES, "size": size}
    else:
        parsed, error = parse_json_object(text, _("Parameters"))
        if error:
            errors["parameters"] = error
        elif parsed.get("type") != "object":
            errors["parameters"] = _(
                'Parameters must be a JSON Schema with "type": "object" at the top.'
            )
        elif message := schema_error(parsed):
            errors["parameters"] = message
        else:
            schema = parsed
    return schema, errors


def check_arguments(
    schema: dict[str, Any], arguments_text: str
) -> tuple[dict[str, Any] | None, str | None]:
    """Parse and validate a model's tool-call arguments. Returns (arguments, None), or
    (None, message) where the message is written to be sent back to the model as the result,
    so it can correct itself. Linear-time regexes, bounded size, depth and time; still CPU
    work, so async code runs it in a worker thread (``tool_loop.execute``)."""
    text = (arguments_text or "").strip()
    if len(text.encode("utf-8")) > MAX_ARGUMENTS_BYTES:
        return None, f"The arguments are too long (more than {MAX_ARGUMENTS_BYTES} bytes)."
    # Some models send "" for a function without parameters; that means "no arguments".
    arguments, error = parse_json_object(text or "{}", "The arguments")
    if error:
        return None, error
    # Definitions are checked when saved, but a stored schema may predate a rule: if the schema
    # itself is at fault, say so rather than blame the model's arguments.
    if not isinstance(schema, dict) or schema_error(schema):
        return None, "The tool's parameter schema is invalid, so its arguments cannot be checked."
    try:
        validator = json_schema.validator_for(schema, _NO_REMOTE_REFS)
        problem = json_schema.check_within(
            json_schema.CHECK_SECONDS, lambda: best_match(validator.iter_errors(arguments))
        )
    except (Unresolvable, UnknownType, json_schema.PatternRefused):
        return None, "The tool's parameter schema is invalid, so its arguments cannot be checked."
    except RecursionError:
        return None, "The arguments are nested too deeply."
    except json_schema.OutOfTime:
        return None, (
            f"The arguments could not be checked within {json_schema.CHECK_SECONDS:g} seconds "
            "(the tool's schema is too complex for them)."
        )
    if problem is not None:
        return None, (
            f"The arguments do not match the tool's schema: {problem.message} "
            f"({_where(problem.absolute_path)})."
        )
    return arguments, None


# --- Built-in tools -------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinTool:
    """A tool the server answers itself, so the turn continues without the user."""

    key: str
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any], datetime | None], str]


class _CalcError(Exception):
    """A calculator failure whose message is shown to the model after "Error: "."""


# Bounds for the calculator: an expression is short, and no intermediate integer may grow past
# a few thousand bits, so `9**9**9` or `(10**999)**999` is refused instead of eating CPU/memory.
_MAX_EXPRESSION_CHARS = 1000
_MAX_INT_BITS = 4096

_BINARY_OPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _round(x: float, ndigits: int | None = None) -> float:
    # round(5, -10**9) would compute 10**(10**9); keep the precision argument reasonable.
    if ndigits is None:
        return round(x)
    if not isinstance(ndigits, int) or not -100 <= ndigits <= 100:
        raise _CalcError("round() takes a whole number of digits between -100 and 100")
    return round(x, ndigits)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "floor": math.floor,
    "ceil": math.ceil,
}


def _checked(value: Any) -> int | float:
    if isinstance(value, complex):
        raise _CalcError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise _CalcError("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise _CalcError("the result is too large" if math.isinf(value) else "undefined result")
    return value


def _power(base: int | float, exponent: int | float) -> int | float:
    # (bit_length - 1) * exponent is a lower bound on the result's size: refuse before computing
    # anything that is certainly too big. _checked catches the rest afterwards.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and (abs(base).bit_length() - 1) * exponent > _MAX_INT_BITS
    ):
        raise _CalcError("the result is too large")
    return base**exponent


def _evaluate(node: ast.AST) -> int | float:
    """Walk the parsed expression, allowing only numbers, arithmetic and a few functions."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant):
        # bool is an int subclass and complex literals parse too; neither is arithmetic here.
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _CalcError(f"unsupported value {node.value!r}")
        return _checked(node.value)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.BitXor):
            raise _CalcError("use ** for powers (^ is not supported)")
        op = _BINARY_OPS.get(type(node.op))
        if op is None:
            raise _CalcError(f"unsupported operator {type(node.op).__name__}")
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            return _checked(_power(left, right))
        return _checked(op(left, right))
    if isinstance(node, ast.UnaryOp):
        unary = _UNARY_OPS.get(type(node.op))
        if unary is None:
            raise _CalcError(f"unsupported operator {type(node.op).__name__}")
        return _checked(unary(_evaluate(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise _CalcError(f"unknown name '{node.id}'")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise _CalcError("only simple function calls like sqrt(2) are allowed")
        function = _FUNCTIONS.get(node.func.id)
        if function is None:
            raise _CalcError(f"unknown function '{node.func.id}'")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise _CalcError("functions take plain positional arguments")
        args = [_evaluate(a) for a in node.args]
        try:
            return _checked(function(*args))
        except TypeError as exc:
            raise _CalcError(f"{node.func.id}(): {exc}") from None
    if isinstance(node, ast.Attribute):
        raise _CalcError("attribute access is not allowed")
    raise _CalcError(f"unsupported syntax ({type(node).__name__})")


def _format_number(value: int | float) -> str:
    if isinstance(value, float):
        # 15 significant digits hide binary noise (0.1 + 0.2 gives "0.3", not 0.30000000000000004).
        return format(value, ".15g")
    return str(value)


def calculate(expression: str) -> str:
    """Evaluate arithmetic safely: the expression is parsed with ``ast`` and only numbers,
    + - * / // % **, unary signs, parentheses, pi/e/tau and a few math functions are evaluated.
    Nothing is ever passed to eval. Failures come back as "Error: …"."""
    if not isinstance(expression, str):
        return "Error: the expression must be a string."
    expression = expression.strip()
    if not expression:
        return "Error: the expression is empty."
    if len(expression) > _MAX_EXPRESSION_CHARS:
        return f"Error: the expression is longer than {_MAX_EXPRESSION_CHARS} characters."
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "Error: the expression is not valid arithmetic."
    try:
        return _format_number(_evaluate(tree))
    except _CalcError as exc:
        return f"Error: {exc}."
    except ZeroDivisionError:
        return "Error: division by zero."
    except OverflowError:
        return "Error: the result is too large."
    except ValueError as exc:  # math domain errors: sqrt(-1), log(0)
        return f"Error: {exc}."
    except RecursionError:
        return "Error: the expression is nested too deeply."


def _run_calculator(arguments: dict[str, Any], now: datetime | None) -> str:
    if "expression" not in arguments:
        return "Error: missing the 'expression' argument."
    return calculate(arguments["expression"])


def _run_datetime(arguments: dict[str, Any], now: datetime | None) -> str:
    name = arguments.get("timezone") or "UTC"
    if not isinstance(name, str):
        return "Error: the timezone must be a string such as 'Europe/Paris'."
    try:
        # ZoneInfo refuses absolute paths and ".." itself; OSError covers names that are
        # directories of the tz database ("America").
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"Error: unknown time zone {name[:100]!r}. Use an IANA name such as 'Europe/Paris'."
    moment = (now or datetime.now(zone)).astimezone(zone)
    return f"{moment.isoformat(timespec='seconds')} ({moment:%A}, {name})"


BUILTINS: dict[str, BuiltinTool] = {
    "calculator": BuiltinTool(
        key="calculator",
        name="calculator",
        description=(
            "Evaluate an arithmetic expression exactly. Supports + - * / // % ** and parentheses, "
            "pi, e, and sqrt, exp, log, log10, log2, sin, cos, tan, asin, acos, atan, floor, "
            "ceil, abs, round, min, max."
        ),
        parameters={
            "type": "object",
            "properties": {
                "expression": {"type": "string", "description": "Arithmetic, e.g. (2+3)*4"}
            },
            "required": ["expression"],
        },
        run=_run_calculator,
    ),
    "datetime": BuiltinTool(
        key="datetime",
        name="datetime",
        description="The current date, time and weekday, in a given time zone (UTC by default).",
        parameters={
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "IANA time zone name, e.g. Europe/Paris. Defaults to UTC.",
                }
            },
        },
        run=_run_datetime,
    ),
}


def run_builtin(key: str, arguments: dict[str, Any], *, now: datetime | None = None) -> str:
    """Run a built-in tool and return its result text; never raises. ``now`` (an aware datetime)
    pins the clock for tests."""
    tool = BUILTINS.get(key)
    if tool is None:
        return f"Error: there is no built-in tool '{key}'."
    if not isinstance(arguments, dict):
        return "Error: the arguments must be a JSON object."
    return tool.run(arguments, now)
