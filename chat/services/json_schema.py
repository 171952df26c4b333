"""JSON Schema (Draft 2020-12) checks that cost linear time, whatever a user or a model sends.

jsonschema matches ``pattern`` and ``patternProperties`` with Python's backtracking ``re``: a
tool schema's ``"^(a+)+$"`` and a model's ``"aaaa…!"`` took seconds, doubling per character.
Here every regular expression of a schema is compiled and matched by RE2 (linear in the text,
no backtracking), a pattern RE2 cannot compile (lookaround, backreferences) is refused when the
tool is saved, ``uniqueItems`` is checked by hashing instead of comparing every pair, and a
validation that still runs long (a schema whose ``anyOf``/``$ref`` branches multiply) is stopped
after ``CHECK_SECONDS``. Sizes and nesting are bounded by the callers (``tools``) before parsing.
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import re2
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

__all__ = [
    "CHECK_SECONDS",
    "MAX_DEPTH",
    "ArgumentsValidator",
    "OutOfTime",
    "PatternRefused",
    "check_within",
    "compile_pattern",
    "depth_exceeds",
    "format_checker",
    "validator_for",
]

# A tool's arguments or schema nested deeper than this is refused before it is validated
# (jsonschema recurses several frames per level; real tool arguments are a few levels deep).
MAX_DEPTH = 64
# A validation still running after this long is abandoned (its caller reports it).
CHECK_SECONDS = 2.0
# RE2's memory budget per pattern: also bounds how long one match can take.
_RE2_MAX_MEM = 8 << 20


class PatternRefused(ValueError):
    """A pattern RE2 cannot compile; the message says why, for the person who typed it."""


class OutOfTime(Exception):
    """Validation took longer than ``CHECK_SECONDS``."""


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.max_mem = _RE2_MAX_MEM
    return options


# ECMA-262 (what JSON Schema patterns are written in) spells a code point \uXXXX; RE2 \x{XXXX}.
# An escaped backslash is matched first so that "\\u0041" stays a backslash and "u0041".
_ECMA_ESCAPE = re.compile(r"\\\\|\\u([0-9A-Fa-f]{4})")


def _to_re2_syntax(pattern: str) -> str:
    return _ECMA_ESCAPE.sub(lambda m: "\\x{" + m[1] + "}" if m[1] else m[0], pattern)


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re2._Regexp:
    """``pattern`` compiled by RE2 (cached); raises PatternRefused with RE2's reason."""
    try:
        return re2.compile(_to_re2_syntax(pattern), _re2_options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "it cannot be compiled"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternRefused(str(reason)) from None
    except (TypeError, ValueError) as exc:  # e.g. a lone surrogate that UTF-8 cannot encode
        raise PatternRefused(str(exc)) from None


def _search(pattern: str, text: str) -> bool:
    return compile_pattern(pattern).search(text) is not None


def _check_regex_format(instance: object) -> bool:
    if isinstance(instance, str):
        compile_pattern(instance)
    return True


def format_checker() -> FormatChecker:
    """The metaschema's format checks with ``regex`` done by RE2: checking a schema with it
    refuses every ``pattern`` and ``patternProperties`` key RE2 cannot compile."""
    checker = FormatChecker()
    checker.checks("regex", raises=PatternRefused)(_check_regex_format)
    return checker


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` (parsed JSON) nests objects/arrays deeper than ``limit``; iterative,
    so it cannot itself run out of stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# -- keyword functions (the same behaviour and messages as jsonschema's, with RE2) ---------------


def _pattern(validator: Validator, pattern: str, instance: Any, schema: dict) -> Iterator:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Validator, patterns: dict, instance: Any, schema: dict
) -> Iterator:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _matches_a_pattern(schema: dict, key: str) -> bool:
    patterns = schema.get("patternProperties") or {}
    return any(_search(pattern, key) for pattern in patterns)


def _additional_properties(
    validator: Validator, additional: Any, instance: Any, schema: dict
) -> Iterator:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    extras = {
        key for key in instance if key not in properties and not _matches_a_pattern(schema, key)
    }
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        names = ", ".join(repr(extra) for extra in sorted(extras, key=str))
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            patterns = ", ".join(repr(p) for p in sorted(schema["patternProperties"]))
            yield ValidationError(f"{names} {verb} not match any of the regexes: {patterns}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({names} {verb} unexpected)"
            )


def _is_valid(errors: Iterator) -> bool:
    return next(errors, None) is None


def _evaluated_keys(validator: Validator, instance: dict, schema: Any) -> set[str]:
    """The keys of ``instance`` that ``schema`` evaluates (for ``unevaluatedProperties``):
    jsonschema's ``find_evaluated_property_keys_by_schema`` with RE2 for patternProperties."""
    if not isinstance(schema, dict):
        return set()
    keys: set[str] = set()
    for ref_keyword in ("$ref", "$dynamicRef"):
        ref = schema.get(ref_keyword)
        if ref is not None:
            resolved = validator._resolver.lookup(ref)
            evolved = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated_keys(evolved, instance, resolved.contents)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        subschema = schema.get(keyword)
        if subschema is not None:
            keys |= {
                key
                for key, value in instance.items()
                if _is_valid(validator.descend(value, subschema))
            }
    if "patternProperties" in schema:
        keys |= {key for key in instance if _matches_a_pattern(schema, key)}
    for key, subschema in (schema.get("dependentSchemas") or {}).items():
        if key in instance:
            keys |= _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _is_valid(validator.descend(instance, subschema)):
                keys |= _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                keys |= _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            keys |= _evaluated_keys(validator, instance, schema["else"])
    return keys


def _unevaluated_properties(
    validator: Validator, unevaluated: Any, instance: Any, schema: dict
) -> Iterator:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    failing = [
        key
        for key in instance
        if key not in evaluated
        and not _is_valid(validator.descend(instance[key], unevaluated, path=key, schema_path=key))
    ]
    if failing:
        names = ", ".join(repr(key) for key in sorted(failing, key=str))
        verb = "was" if len(failing) == 1 else "were"
        if unevaluated is False:
            yield ValidationError(
                f"Unevaluated properties are not allowed ({names} {verb} unexpected)"
            )
        else:
            yield ValidationError(
                f"Unevaluated properties are not valid under the given schema "
                f"({names} {verb} unevaluated and invalid)"
            )


def _hashable(value: Any) -> Any:
    """A hashable stand-in equal exactly when JSON Schema calls two values equal (1 == 1.0,
    but true != 1; objects ignore key order)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, dict):
        return ("object", frozenset((key, _hashable(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_hashable(item) for item in value))
    return ("value", value)


def _unique_items(validator: Validator, unique: Any, instance: Any, schema: dict) -> Iterator:
    # jsonschema compares every pair of unsortable items (objects): quadratic in the array.
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _hashable(item)
        if key in seen:
            yield ValidationError(f"{instance!r} has non-unique elements")
            return
        seen.add(key)


_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("json_schema_deadline")


def _timed(keyword: Callable) -> Callable:
    """Every keyword checks the clock first: whatever makes a validation long (branches that
    multiply through ``anyOf`` and ``$ref``) goes through keyword after keyword."""

    @functools.wraps(keyword)
    def check(validator: Validator, value: Any, instance: Any, schema: Any) -> Any:
        if time.monotonic() > _DEADLINE.get(float("inf")):
            raise OutOfTime()
        return keyword(validator, value, instance, schema)

    return check


_LINEAR_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "unevaluatedProperties": _unevaluated_properties,
    "uniqueItems": _unique_items,
}

ArgumentsValidator = validators.extend(
    Draft202012Validator,
    validators={
        name: _timed(function)
        for name, function in (Draft202012Validator.VALIDATORS | _LINEAR_KEYWORDS).items()
    },
)


# Keywords whose value is a schema, a list of schemas, or an object of schemas: where
# ``$schema`` may appear. A subschema naming another draft would make jsonschema switch to
# that draft's validator, with Python ``re`` again; tool schemas are read as 2020-12 anyway.
_SCHEMA_VALUED = frozenset(
    {
        "additionalProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
        "items",
        "contains",
        "propertyNames",
        "not",
        "if",
        "then",
        "else",
        "additionalItems",
    }
)
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)


def _without_dialects(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    copy: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$schema":
            continue
        if key in _SCHEMA_VALUED:
            value = _without_dialects(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            value = [_without_dialects(item) for item in value]
        elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
            value = {name: _without_dialects(item) for name, item in value.items()}
        copy[key] = value
    return copy


def validator_for(schema: dict[str, Any], registry: Any) -> Validator:
    """A validator of arguments against ``schema`` with RE2 patterns and the time bound (apply
    it with ``check_within``)."""
    return ArgumentsValidator(_without_dialects(schema), registry=registry)


def check_within(seconds: float, run: Callable[[], Any]) -> Any:
    """Run ``run`` (a validation) with a deadline ``seconds`` from now; OutOfTime past it."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        return run()
    finally:
        _DEADLINE.reset(token)
