"""Tool definitions, their wire shapes, built-in tools and argument checking. No database."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from chat.services.tools import (
    BUILTINS,
    MAX_SCHEMA_BYTES,
    NAME_PATTERN,
    check_arguments,
    run_builtin,
    validate_definition,
)
from chat.upstream import chat_completions, responses_api
from chat.upstream.request import ToolSpec


def responses_tool(name: str, description: str, parameters: dict) -> dict:
    return responses_api.tool_body(ToolSpec(name, description, parameters))


def chat_tool(name: str, description: str, parameters: dict) -> dict:
    return chat_completions.tool_body(ToolSpec(name, description, parameters))

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city"],
}


def calc(expression):
    return run_builtin("calculator", {"expression": expression})


# --- validate_definition ---------------------------------------------------------------------


def test_a_valid_definition():
    schema, errors = validate_definition("get_weather", "Weather by city.", json.dumps(WEATHER))
    assert errors == {}
    assert schema == WEATHER


def test_blank_parameters_mean_no_arguments():
    schema, errors = validate_definition("ping", "", "  ")
    assert errors == {}
    assert schema == {"type": "object", "properties": {}}


@pytest.mark.parametrize("name", ["a", "get_weather", "Get-Weather-2", "x" * 64, "_", "-"])
def test_good_names(name):
    assert re.match(NAME_PATTERN, name)
    assert "name" not in validate_definition(name, "", "")[1]


@pytest.mark.parametrize("name", ["x" * 65, "get weather", "météo", "a.b", "a/b", "fn()"])
def test_bad_names(name):
    assert not re.match(NAME_PATTERN, name)
    errors = validate_definition(name, "", "")[1]
    assert errors["name"].startswith("The name may only contain letters, digits")


def test_missing_name():
    assert validate_definition("", "", "")[1]["name"] == "Enter a name."
    assert validate_definition("   ", "", "")[1]["name"] == "Enter a name."


def test_description_length():
    assert validate_definition("f", "d" * 1024, "")[1] == {}
    errors = validate_definition("f", "d" * 1025, "")[1]
    assert errors["description"] == "The description can be at most 1024 characters (it has 1025)."


def test_invalid_json_points_at_line_and_column():
    text = '{\n  "type": "object",\n  "properties": {}\n  "required": []\n}'
    schema, errors = validate_definition("f", "", text)
    assert schema is None
    assert errors["parameters"] == (
        "Parameters are not valid JSON: Expecting ',' delimiter (line 4, column 3)."
    )


def test_multiline_error_example_from_the_form():
    text = '{\n  "type": "object",\n  "properties": {\n    "a": 1\n    "b": 2}}'
    message = validate_definition("f", "", text)[1]["parameters"]
    assert message == "Parameters are not valid JSON: Expecting ',' delimiter (line 5, column 5)."


@pytest.mark.parametrize("text", ["[]", '"object"', "42", "null"])
def test_parameters_must_be_an_object(text):
    assert validate_definition("f", "", text)[1]["parameters"] == (
        "Parameters must be a JSON object."
    )


@pytest.mark.parametrize("schema", [{}, {"type": "string"}, {"properties": {}}])
def test_top_level_type_must_be_object(schema):
    message = validate_definition("f", "", json.dumps(schema))[1]["parameters"]
    assert message == 'Parameters must be a JSON Schema with "type": "object" at the top.'


@pytest.mark.parametrize(
    "schema,path",
    [
        ({"type": "object", "properties": {"n": {"type": "strin"}}}, "properties/n/type"),
        ({"type": "object", "required": "city"}, "required"),
        ({"type": "object", "properties": {"n": {"minimum": "1"}}}, "properties/n/minimum"),
        ({"type": "object", "properties": []}, "properties"),
        ({"type": "object", "minProperties": -1}, "minProperties"),
    ],
)
def test_invalid_schema_names_the_bad_path(schema, path):
    result, errors = validate_definition("f", "", json.dumps(schema))
    assert result is None
    message = errors["parameters"]
    assert message.startswith("This is not a valid JSON Schema: ")
    assert message.endswith(f"(at {path}).")


def test_remote_references_are_refused():
    schema = {"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}
    message = validate_definition("f", "", json.dumps(schema))[1]["parameters"]
    assert "https://example.com/s.json" in message and "starting with" in message


def test_local_references_are_fine():
    schema = {
        "type": "object",
        "$defs": {"day": {"type": "integer"}},
        "properties": {"d": {"$ref": "#/$defs/day"}},
    }
    assert validate_definition("f", "", json.dumps(schema)) == (schema, {})


def test_size_limit():
    padding = "x" * (MAX_SCHEMA_BYTES - 60)
    fits = json.dumps({"type": "object", "description": padding})
    assert len(fits.encode()) <= MAX_SCHEMA_BYTES
    assert validate_definition("f", "", fits)[1] == {}
    too_big = json.dumps({"type": "object", "description": "x" * MAX_SCHEMA_BYTES})
    message = validate_definition("f", "", too_big)[1]["parameters"]
    assert message.startswith(f"Parameters can be at most {MAX_SCHEMA_BYTES} bytes")


def test_size_limit_counts_bytes_not_characters():
    text = json.dumps({"type": "object", "description": "é" * 9000}, ensure_ascii=False)
    assert len(text) < MAX_SCHEMA_BYTES < len(text.encode())
    assert "at most" in validate_definition("f", "", text)[1]["parameters"]


def test_deep_nesting_is_an_error_not_a_crash():
    message = validate_definition("f", "", "[" * 5_000 + "]" * 5_000)[1]["parameters"]
    assert "nested too deeply" in message


def test_a_number_with_thousands_of_digits_is_an_error_not_a_crash():
    text = '{"type": "object", "default": ' + "9" * 5_000 + "}"
    message = validate_definition("f", "", text)[1]["parameters"]
    assert message == "Parameters contain a number with too many digits."
    assert check_arguments({"type": "object"}, '{"n": ' + "1" * 5_000 + "}") == (
        None,
        "The arguments contain a number with too many digits.",
    )


def test_all_errors_at_once():
    schema, errors = validate_definition("bad name", "d" * 2000, "{")
    assert schema is None
    assert set(errors) == {"name", "description", "parameters"}


# --- wire shapes -----------------------------------------------------------------------------


def test_responses_tool_is_flat():
    assert responses_tool("get_weather", "Weather.", WEATHER) == {
        "type": "function",
        "name": "get_weather",
        "description": "Weather.",
        "parameters": WEATHER,
    }


def test_chat_tool_is_nested():
    assert chat_tool("get_weather", "Weather.", WEATHER) == {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather.", "parameters": WEATHER},
    }


def test_empty_description_is_left_out():
    assert "description" not in responses_tool("f", "", WEATHER)
    assert "description" not in chat_tool("f", "", WEATHER)["function"]


# --- built-ins -------------------------------------------------------------------------------


def test_builtins_are_valid_definitions():
    assert {"calculator", "datetime"} <= set(BUILTINS)
    assert BUILTINS["calculator"].name == "calculator"
    assert BUILTINS["calculator"].parameters == {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "Arithmetic, e.g. (2+3)*4"}},
        "required": ["expression"],
    }
    for key, builtin in BUILTINS.items():
        assert builtin.key == key
        schema, errors = validate_definition(
            builtin.name, builtin.description, json.dumps(builtin.parameters)
        )
        assert errors == {} and schema == builtin.parameters


@pytest.mark.parametrize(
    "expression,result",
    [
        ("(2+3)*4", "20"),
        ("2 + 3 * 4", "14"),
        ("10 / 4", "2.5"),
        ("10 / 2", "5"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("7 % 3", "1"),
        ("2 ** 10", "1024"),
        ("2 ** -1", "0.5"),
        ("-3 ** 2", "-9"),
        ("(-3) ** 2", "9"),
        ("+5 - -5", "10"),
        ("0.1 + 0.2", "0.3"),
        ("1e3 * 2", "2000"),
        ("sqrt(16)", "4"),
        ("sqrt(2)", "1.4142135623731"),
        ("abs(-2.5)", "2.5"),
        ("round(2.567, 2)", "2.57"),
        ("round(2.5)", "2"),
        ("min(3, 1, 2) + max(4, 5)", "6"),
        ("floor(2.7) + ceil(2.1)", "5"),
        ("log(e)", "1"),
        ("log(8, 2)", "3"),
        ("log10(1000)", "3"),
        ("log2(1024)", "10"),
        ("exp(0)", "1"),
        ("sin(0) + cos(0)", "1"),
        ("tan(0)", "0"),
        ("atan(1) * 4", "3.14159265358979"),
        ("pi", "3.14159265358979"),
        ("2 ** 100", str(2**100)),
        ("123456789 * 987654321", str(123456789 * 987654321)),
        ("  1 + 1  ", "2"),
    ],
)
def test_calculator(expression, result):
    assert calc(expression) == result


@pytest.mark.parametrize("expression", ["1/0", "1 // 0", "1 % 0", "1.5 / 0", "0 ** -1"])
def test_calculator_division_by_zero(expression):
    assert calc(expression) == "Error: division by zero."


@pytest.mark.parametrize(
    "expression,fragment",
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('echo hacked')", "only simple function calls"),
        ("(1).__class__", "attribute access is not allowed"),
        ("().__class__.__bases__[0].__subclasses__()", "only simple function calls"),
        ("math.sqrt(4)", "only simple function calls"),
        ("eval('1')", "unknown function 'eval'"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("x + 1", "unknown name 'x'"),
        ("__builtins__", "unknown name '__builtins__'"),
        ("'a' * 3", "unsupported value 'a'"),
        ("True + 1", "unsupported value True"),
        ("1j * 1j", "unsupported value 1j"),
        ("[1, 2][0]", "unsupported syntax (Subscript)"),
        ("lambda: 1", "unsupported syntax (Lambda)"),
        ("1 if 1 else 2", "unsupported syntax (IfExp)"),
        ("1 < 2", "unsupported syntax (Compare)"),
        ("not 1", "unsupported operator Not"),
        ("~1", "unsupported operator Invert"),
        ("1 << 10000", "unsupported operator LShift"),
        ("2 ^ 3", "use ** for powers"),
        ("sqrt(x=4)", "plain positional arguments"),
        ("max(*[1, 2])", "plain positional arguments"),
        ("[x for x in (1,)]", "unsupported syntax (ListComp)"),
        ("(y := 2)", "unsupported syntax (NamedExpr)"),
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression, fragment):
    result = calc(expression)
    assert result.startswith("Error: ")
    assert fragment in result


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9",
        "2 ** 10000",
        "10 ** 10 ** 10",
        "(10 ** 999) ** 999",
        "(2 ** 4000) * (2 ** 4000)",
        "exp(1000)",
        "1e308 * 10",
        "10.0 ** 400",
        "sqrt(10 ** 400)",
        "2 ** 4000 * 1.5",
    ],
)
def test_calculator_refuses_huge_results_quickly(expression):
    assert calc(expression) == "Error: the result is too large."


def test_calculator_bounds_round_digits():
    assert "between -100 and 100" in calc("round(5, -10 ** 9)")


@pytest.mark.parametrize(
    "expression,fragment",
    [
        ("sqrt(-1)", "math domain error"),
        ("log(0)", "math domain error"),
        ("(-8) ** (1/3)", "not a real number"),
        ("max()", "max()"),
        ("sqrt(1, 2)", "sqrt()"),
        ("1 +", "not valid arithmetic"),
        ("import os", "not valid arithmetic"),
        ("1; 2", "not valid arithmetic"),
        ("", "empty"),
        ("(" * 200 + "1" + ")" * 200, ""),
        ("1" + "+1" * 600, "longer than 1000 characters"),
        ("-" * 999 + "1", "nested too deeply"),
    ],
)
def test_calculator_errors_are_messages(expression, fragment):
    result = calc(expression)
    if expression.startswith("(((("):
        # Deep but short nesting either evaluates or is refused; it never raises.
        assert result == "1" or result.startswith("Error: ")
        return
    assert result.startswith("Error: ") and fragment in result


def test_calculator_argument_problems():
    assert run_builtin("calculator", {}) == "Error: missing the 'expression' argument."
    assert run_builtin("calculator", {"expression": 5}).startswith("Error: ")
    assert run_builtin("calculator", {"expression": None}).startswith("Error: ")


def test_calculator_never_calls_eval(monkeypatch):
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec must not be used")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert calc("(2+3)*4") == "20"


def test_unknown_builtin():
    assert run_builtin("shell", {"command": "ls"}) == "Error: there is no built-in tool 'shell'."


def test_builtin_arguments_must_be_a_dict():
    assert run_builtin("calculator", ["1+1"]).startswith("Error: ")  # type: ignore[arg-type]


NOW = datetime(2024, 3, 10, 12, 30, 15, tzinfo=UTC)  # a Sunday


def test_datetime_defaults_to_utc():
    assert run_builtin("datetime", {}, now=NOW) == "2024-03-10T12:30:15+00:00 (Sunday, UTC)"


def test_datetime_in_a_zone():
    result = run_builtin("datetime", {"timezone": "Asia/Tokyo"}, now=NOW)
    assert result == "2024-03-10T21:30:15+09:00 (Sunday, Asia/Tokyo)"
    late = datetime(2024, 3, 10, 23, 0, tzinfo=UTC)
    assert run_builtin("datetime", {"timezone": "Pacific/Auckland"}, now=late) == (
        "2024-03-11T12:00:00+13:00 (Monday, Pacific/Auckland)"
    )


def test_datetime_follows_daylight_saving():
    winter = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
    summer = datetime(2024, 7, 15, 12, 0, tzinfo=UTC)
    assert "+01:00" in run_builtin("datetime", {"timezone": "Europe/Paris"}, now=winter)
    assert "+02:00" in run_builtin("datetime", {"timezone": "Europe/Paris"}, now=summer)


def test_datetime_uses_the_real_clock_by_default():
    result = run_builtin("datetime", {"timezone": "UTC"})
    stamp = datetime.fromisoformat(result.split(" ")[0])
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5
    assert result.endswith(f"({stamp:%A}, UTC)")


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "Europe", "../../etc/passwd", "/etc/localtime", "a\x00b", ""]
)
def test_datetime_unknown_zone(zone):
    result = run_builtin("datetime", {"timezone": zone}, now=NOW)
    if zone == "":
        assert result.endswith("(Sunday, UTC)")  # blank means the default
    else:
        assert result.startswith("Error: unknown time zone")


def test_datetime_zone_must_be_a_string():
    assert run_builtin("datetime", {"timezone": 5}, now=NOW).startswith("Error: ")


# --- check_arguments -------------------------------------------------------------------------


def test_good_arguments():
    assert check_arguments(WEATHER, '{"city": "Paris", "days": 3}') == (
        {"city": "Paris", "days": 3},
        None,
    )


def test_empty_arguments_mean_an_empty_object():
    assert check_arguments({"type": "object", "properties": {}}, "") == ({}, None)
    args, problem = check_arguments(WEATHER, "")
    assert args is None and "'city' is a required property" in problem


def test_arguments_not_json():
    args, problem = check_arguments(WEATHER, '{"city": "Paris"')
    assert args is None
    assert problem.startswith("The arguments are not valid JSON: ")
    assert "(line 1, column 17)" in problem


@pytest.mark.parametrize("text", ['["Paris"]', '"Paris"', "3", "null"])
def test_arguments_must_be_an_object(text):
    assert check_arguments(WEATHER, text) == (None, "The arguments must be a JSON object.")


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("{}", "'city' is a required property (at the top level)"),
        ('{"city": 5}', "5 is not of type 'string' (at city)"),
        ('{"city": "Paris", "days": 9}', "9 is greater than the maximum of 7 (at days)"),
        ('{"city": "Paris", "days": "2"}', "'2' is not of type 'integer' (at days)"),
    ],
)
def test_arguments_against_the_schema(text, fragment):
    args, problem = check_arguments(WEATHER, text)
    assert args is None
    assert problem.startswith("The arguments do not match the tool's schema: ")
    assert fragment in problem


def test_nested_paths_are_named():
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
    }
    problem = check_arguments(schema, '{"items": [1, "two"]}')[1]
    assert "(at items/1)" in problem


def test_local_refs_resolve_and_remote_refs_are_not_fetched(monkeypatch):
    local = {
        "type": "object",
        "$defs": {"n": {"type": "integer"}},
        "properties": {"a": {"$ref": "#/$defs/n"}},
    }
    assert check_arguments(local, '{"a": 1}') == ({"a": 1}, None)
    assert "not of type 'integer'" in check_arguments(local, '{"a": "1"}')[1]

    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("no network access while checking arguments")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    remote = {"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/schema.json"}}}
    args, problem = check_arguments(remote, '{"a": 1}')
    assert args is None and "schema is invalid" in problem


@pytest.mark.parametrize(
    "schema", [{"type": "objectz"}, {"type": "object", "required": "x"}, [], "object"]
)
def test_a_broken_stored_schema_is_reported_not_raised(schema):
    args, problem = check_arguments(schema, "{}")  # type: ignore[arg-type]
    assert args is None
    assert problem == "The tool's parameter schema is invalid, so its arguments cannot be checked."


def test_huge_or_deep_arguments_are_refused():
    schema = {"type": "object"}
    args, problem = check_arguments(schema, '{"a": "' + "x" * 300_000 + '"}')
    assert args is None and "too long" in problem
    deep = '{"a": ' + "[" * 50_000 + "]" * 50_000 + "}"
    args, problem = check_arguments(schema, deep)
    assert args is None and "nested too deeply" in problem


def test_builtin_schemas_check_arguments():
    calculator = BUILTINS["calculator"].parameters
    assert check_arguments(calculator, '{"expression": "1+1"}') == ({"expression": "1+1"}, None)
    assert check_arguments(calculator, '{"expression": 2}')[0] is None
    clock = BUILTINS["datetime"].parameters
    assert check_arguments(clock, "{}") == ({}, None)
    assert check_arguments(clock, '{"timezone": "UTC"}') == ({"timezone": "UTC"}, None)
