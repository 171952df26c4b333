"""Per-thread request parameters: form validation, the request fields per API, the form round trip
and the upstream user pseudonym. Pure functions, so no database."""

from __future__ import annotations

import json

import pytest

from chat.services import parameters
from chat.services.parameters import (
    SPECS,
    SPECS_BY_NAME,
    form_values,
    specs_for,
    system_prompt,
    user_identifier,
    validate,
)
from chat.upstream.encoding import encode
from chat.upstream.request import Api, Message, Request, ToolSpec

APIS = ("responses", "chat")


def ok(data: dict[str, str], api: str = "responses", **kwargs) -> dict:
    params, errors = validate(data, api, **kwargs)
    assert errors == {}, errors
    return params


def error(data: dict[str, str], field: str, api: str = "responses", **kwargs) -> str:
    params, errors = validate(data, api, **kwargs)
    assert field in errors, (params, errors)
    assert field not in params
    return errors[field]


# --- The specs -------------------------------------------------------------------------------


def test_every_spec_is_well_formed():
    names = [spec.name for spec in SPECS]
    assert len(names) == len(set(names))
    for spec in SPECS:
        assert spec.apis and spec.apis <= {"responses", "chat"}
        assert spec.group in parameters.GROUPS
        assert spec.label
        assert spec.kind in {
            "float", "int", "choice", "text", "bool", "stop", "json_map", "key_value",
            "json_schema",
        }  # fmt: skip
        if spec.kind in ("choice", "bool"):
            assert spec.choices


def test_specs_cover_the_seed_parameters():
    expected = {
        "instructions", "temperature", "top_p", "max_output_tokens", "max_tokens_field",
        "reasoning_effort", "reasoning_summary", "truncation", "stop", "presence_penalty",
        "frequency_penalty", "seed", "logit_bias", "response_format", "response_schema",
        "tool_choice", "parallel_tool_calls", "store", "metadata", "top_k",
        "repetition_penalty", "n", "modalities", "audio_voice", "audio_format",
    }  # fmt: skip
    assert set(SPECS_BY_NAME) == expected


RESPONSES_ONLY = {"reasoning_summary", "truncation", "store", "metadata", "top_k",
                  "repetition_penalty"}  # fmt: skip
CHAT_ONLY = {"presence_penalty", "frequency_penalty", "logit_bias", "n", "max_tokens_field",
             "modalities", "audio_voice", "audio_format"}  # fmt: skip


def test_specs_for_each_api_hide_the_other_apis_parameters():
    responses = {spec.name for spec in specs_for("responses")}
    chat = {spec.name for spec in specs_for("chat")}
    assert responses >= RESPONSES_ONLY and not RESPONSES_ONLY & chat
    assert chat >= CHAT_ONLY and not CHAT_ONLY & responses
    shared = responses & chat
    assert {"instructions", "temperature", "top_p", "max_output_tokens", "stop", "seed",
            "reasoning_effort", "response_format", "response_schema", "tool_choice",
            "parallel_tool_calls"} == shared  # fmt: skip


def test_specs_for_keeps_form_order():
    order = [spec.name for spec in SPECS]
    for api in APIS:
        names = [spec.name for spec in specs_for(api)]
        assert names == sorted(names, key=order.index)


def test_provider_specific_parameters_are_marked():
    flagged = {spec.name for spec in SPECS if spec.provider_specific}
    assert flagged == {"top_k", "repetition_penalty"}


_ENVELOPE = {"model", "input", "messages", "stream", "stream_options", "tools"}


def request_fields(params, api, *, tool_names=None):
    """The parameter fields of a first request's body (``tool_names``: the tools offered;
    None: whichever tool the choice names, so the choice itself is what is checked)."""
    parameters_ = parameters.request_parameters(params, api)
    if tool_names is None:
        tool_names = [parameters_.forced_function() or "any_tool"]
    tools = [ToolSpec(name, "", {"type": "object"}) for name in tool_names]
    body = encode(Request(Api(api), "m", [Message("user", "hi")], parameters_, tools))
    return {key: value for key, value in body.items() if key not in _ENVELOPE}


def test_unknown_api_is_a_programming_error():
    with pytest.raises(ValueError):
        specs_for("completions")
    with pytest.raises(ValueError):
        validate({}, "completions")
    with pytest.raises(ValueError):
        request_fields({}, "completions")


# --- validate: only what was set -------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_empty_form_sets_nothing(api):
    blank = {spec.name: "" for spec in SPECS}
    assert validate(blank, api) == ({}, {})
    assert validate({}, api) == ({}, {})
    assert validate({spec.name: "   " for spec in SPECS}, api) == ({}, {})


def test_unknown_and_other_api_keys_are_ignored():
    assert ok({"csrfmiddlewaretoken": "x", "api": "chat", "presence_penalty": "9"}) == {}
    assert ok({"truncation": "bogus", "store": "maybe"}, "chat") == {}


def test_none_values_count_as_not_set():
    assert ok({"temperature": None}) == {}  # type: ignore[dict-item]


def test_each_error_is_reported_and_valid_fields_still_parse():
    params, errors = validate({"temperature": "3", "top_p": "0.5", "seed": "abc"}, "responses")
    assert params == {"top_p": 0.5}
    assert set(errors) == {"temperature", "seed"}


# --- floats ----------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("text,value", [("0", 0.0), ("2", 2.0), ("0.7", 0.7), (" 1.5 ", 1.5)])
def test_temperature_in_range(api, text, value):
    params = ok({"temperature": text}, api)
    assert params == {"temperature": value}
    assert isinstance(params["temperature"], float)


@pytest.mark.parametrize("text", ["-0.01", "2.01", "100"])
def test_temperature_out_of_range(text):
    assert error({"temperature": text}, "temperature") == "Temperature must be between 0 and 2."


@pytest.mark.parametrize("text", ["warm", "nan", "inf", "-inf", "1,5", "0x1"])
def test_temperature_not_a_number(text):
    assert error({"temperature": text}, "temperature") == "Temperature must be a number."


def test_top_p_bounds():
    assert ok({"top_p": "0"}) == {"top_p": 0.0}
    assert ok({"top_p": "1"}) == {"top_p": 1.0}
    assert error({"top_p": "1.0001"}, "top_p") == "Top P must be between 0 and 1."
    assert error({"top_p": "-0.1"}, "top_p") == "Top P must be between 0 and 1."


@pytest.mark.parametrize("name", ["presence_penalty", "frequency_penalty"])
def test_penalties_bounds_on_chat(name):
    assert ok({name: "-2"}, "chat") == {name: -2.0}
    assert ok({name: "2"}, "chat") == {name: 2.0}
    label = SPECS_BY_NAME[name].label
    assert error({name: "-2.1"}, name, "chat") == f"{label} must be between -2 and 2."
    assert error({name: "2.5"}, name, "chat") == f"{label} must be between -2 and 2."


def test_repetition_penalty_must_be_positive():
    assert ok({"repetition_penalty": "0.01"}) == {"repetition_penalty": 0.01}
    assert ok({"repetition_penalty": "2"}) == {"repetition_penalty": 2.0}
    message = "Repetition penalty must be greater than 0 and at most 2."
    assert error({"repetition_penalty": "0"}, "repetition_penalty") == message
    assert error({"repetition_penalty": "-1"}, "repetition_penalty") == message
    assert error({"repetition_penalty": "2.1"}, "repetition_penalty") == message


# --- ints ------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_max_output_tokens(api):
    assert ok({"max_output_tokens": "1"}, api) == {"max_output_tokens": 1}
    assert ok({"max_output_tokens": "128000"}, api) == {"max_output_tokens": 128000}
    message = "Max output tokens must be at least 1."
    assert error({"max_output_tokens": "0"}, "max_output_tokens", api) == message
    assert error({"max_output_tokens": "-5"}, "max_output_tokens", api) == message


@pytest.mark.parametrize("text", ["1.5", "10.0", "ten", "1e3", "9" * 5000])
def test_ints_must_be_whole_numbers(text):
    assert error({"max_output_tokens": text}, "max_output_tokens") == (
        "Max output tokens must be a whole number."
    )


def test_n_bounds_on_chat():
    assert ok({"n": "1"}, "chat") == {"n": 1}
    assert ok({"n": "8"}, "chat") == {"n": 8}
    assert error({"n": "0"}, "n", "chat") == "Number of answers must be between 1 and 8."
    assert error({"n": "9"}, "n", "chat") == "Number of answers must be between 1 and 8."


def test_top_k_at_least_one():
    assert ok({"top_k": "1"}) == {"top_k": 1}
    assert error({"top_k": "0"}, "top_k") == "Top K must be at least 1."


@pytest.mark.parametrize("api", APIS)
def test_seed_accepts_any_64_bit_integer(api):
    assert ok({"seed": "0"}, api) == {"seed": 0}
    assert ok({"seed": "-7"}, api) == {"seed": -7}
    assert ok({"seed": str(2**63 - 1)}, api) == {"seed": 2**63 - 1}
    assert "Seed must be between" in error({"seed": str(2**63)}, "seed", api)


# --- choices and booleans --------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_reasoning_effort_choices(api, effort):
    assert ok({"reasoning_effort": effort}, api) == {"reasoning_effort": effort}


def test_choice_outside_the_list_is_refused():
    assert error({"reasoning_effort": "max"}, "reasoning_effort") == (
        "Reasoning effort must be one of: low, medium, high."
    )
    assert error({"reasoning_summary": "verbose"}, "reasoning_summary") == (
        "Reasoning summary must be one of: auto, concise, detailed."
    )
    assert error({"truncation": "yes"}, "truncation") == (
        "Truncation must be one of: auto, disabled."
    )
    assert "must be one of" in error({"max_tokens_field": "limit"}, "max_tokens_field", "chat")


@pytest.mark.parametrize("api", APIS)
def test_booleans_are_tri_state(api):
    assert ok({"parallel_tool_calls": ""}, api) == {}
    assert ok({"parallel_tool_calls": "true"}, api) == {"parallel_tool_calls": True}
    assert ok({"parallel_tool_calls": "false"}, api) == {"parallel_tool_calls": False}
    assert ok({"parallel_tool_calls": "False"}, api) == {"parallel_tool_calls": False}
    assert error({"parallel_tool_calls": "on"}, "parallel_tool_calls", api) == (
        "Parallel tool calls must be yes, no or not set."
    )


def test_store_is_a_responses_boolean():
    assert ok({"store": "false"}) == {"store": False}
    assert ok({"store": "false"}, "chat") == {}


# --- tool choice -----------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_modes(api, choice):
    assert ok({"tool_choice": choice}, api) == {"tool_choice": choice}


@pytest.mark.parametrize("api", APIS)
def test_tool_choice_function_must_be_one_of_the_threads_tools(api):
    data = {"tool_choice": "function:get_weather"}
    assert ok(data, api, tool_names=["get_weather", "calculator"]) == data
    assert ok(data, api, tool_names={"get_weather"}) == data
    message = error(data, "tool_choice", api, tool_names=["calculator"])
    assert message == 'Tool choice: "get_weather" is not one of this thread\'s tools.'
    assert "tool_choice" in validate(data, api)[1]  # no tools at all
    assert "tool_choice" in validate({"tool_choice": "function:"}, api, tool_names=["x"])[1]
    assert "tool_choice" in validate({"tool_choice": "always"}, api)[1]


# --- text, stop, metadata, logit bias, schema ------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_instructions_are_kept_trimmed(api):
    params = ok({"instructions": "  You are terse.\r\nAnswer in French.\n "}, api)
    assert params == {"instructions": "You are terse.\nAnswer in French."}


def test_instructions_have_a_length_limit():
    limit = parameters.MAX_INSTRUCTIONS_CHARS
    assert ok({"instructions": "x" * limit}) == {"instructions": "x" * limit}
    assert "at most" in error({"instructions": "x" * (limit + 1)}, "instructions")


@pytest.mark.parametrize("api", APIS)
def test_stop_sequences_one_per_line(api):
    params = ok({"stop": "END\r\n\r\n###\n"}, api)
    assert params == {"stop": ["END", "###"]}


def test_stop_sequences_keep_spaces_and_decode_escapes():
    params = ok({"stop": " Human:\n\\n\\n\nC:\\\\dir\n\\t|\\d"})
    assert params == {"stop": [" Human:", "\n\n", "C:\\dir", "\t|\\d"]}


def test_stop_sequences_at_most_four():
    assert ok({"stop": "a\nb\nc\nd"}) == {"stop": ["a", "b", "c", "d"]}
    assert error({"stop": "a\nb\nc\nd\ne"}, "stop") == "Stop sequences: at most 4, one per line."


def test_metadata_key_value_lines():
    params = ok({"metadata": "team = search\r\n\nticket=ABC-1=2\nempty="})
    assert params == {"metadata": {"team": "search", "ticket": "ABC-1=2", "empty": ""}}


def test_metadata_limits():
    sixteen = "\n".join(f"k{i}=v" for i in range(16))
    assert len(ok({"metadata": sixteen})["metadata"]) == 16
    seventeen = sixteen + "\nk16=v"
    assert error({"metadata": seventeen}, "metadata") == "Metadata: at most 16 key=value pairs."
    assert ok({"metadata": "k" * 64 + "=v"})
    assert "line 1" in error({"metadata": "k" * 65 + "=v"}, "metadata")
    assert ok({"metadata": "k=" + "v" * 512})
    assert "longer than 512" in error({"metadata": "k=" + "v" * 513}, "metadata")


@pytest.mark.parametrize("text", ["no equals sign", "=value", "  = v"])
def test_metadata_lines_must_be_key_value(text):
    assert error({"metadata": "ok=1\n" + text}, "metadata") == (
        "Metadata: line 2 must look like key=value."
    )


def test_metadata_duplicate_keys():
    assert error({"metadata": "a=1\na=2"}, "metadata") == 'Metadata: the key "a" appears twice.'


def test_logit_bias_on_chat():
    params = ok({"logit_bias": '{"50256": -100, "13": 100, "7": 2.5}'}, "chat")
    assert params == {"logit_bias": {"50256": -100, "13": 100, "7": 2.5}}


@pytest.mark.parametrize(
    "text,fragment",
    [
        ('{"50256": -101}', "between -100 and 100"),
        ('{"50256": 100.5}', "between -100 and 100"),
        ('{"word": 5}', "keys must be token IDs"),
        ('{"-1": 5}', "keys must be token IDs"),
        ('{"5": "5"}', "must be a number"),
        ('{"5": true}', "must be a number"),
        ("[1, 2]", "must be a JSON object"),
        ('{"5": 1', "Logit bias is not valid JSON: Expecting ',' delimiter (line 1, column 8)."),
    ],
)
def test_logit_bias_errors(text, fragment):
    assert fragment in error({"logit_bias": text}, "logit_bias", "chat")


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.mark.parametrize("api", APIS)
def test_json_schema_response_format(api):
    params = ok({"response_format": "json_schema", "response_schema": json.dumps(SCHEMA)}, api)
    assert params == {"response_format": "json_schema", "response_schema": SCHEMA}


@pytest.mark.parametrize("api", APIS)
def test_json_schema_format_requires_a_schema(api):
    assert error({"response_format": "json_schema"}, "response_schema", api) == (
        "Enter the JSON Schema the answer must match."
    )


def test_response_schema_errors_are_inline():
    bad_json = error(
        {"response_format": "json_schema", "response_schema": '{"type": "object",}'},
        "response_schema",
    )
    assert bad_json.startswith("Response schema is not valid JSON: ")
    assert "(line 1, column 19)" in bad_json
    bad_schema = error(
        {"response_schema": '{"type": "object", "properties": {"a": {"type": "text"}}}'},
        "response_schema",
    )
    assert "not a valid JSON Schema" in bad_schema and "properties/a/type" in bad_schema
    assert "must be a JSON object" in error({"response_schema": "[]"}, "response_schema")
    big = json.dumps({"type": "object", "description": "x" * 20_000})
    assert "at most 16384 bytes" in error({"response_schema": big}, "response_schema")


def test_schema_is_kept_when_another_format_is_chosen():
    params = ok({"response_format": "text", "response_schema": json.dumps(SCHEMA)})
    assert params["response_schema"] == SCHEMA
    assert request_fields(params, "responses") == {"text": {"format": {"type": "text"}}}


# --- request_fields: the mapping per API -----------------------------------------------------


def test_only_set_parameters_are_sent():
    assert request_fields({}, "responses") == {}
    assert request_fields({}, "chat") == {}
    assert request_fields({"temperature": 0.2}, "responses") == {"temperature": 0.2}
    assert request_fields({"temperature": 0.2}, "chat") == {"temperature": 0.2}


def test_none_and_empty_values_are_never_emitted():
    stored = {"temperature": None, "stop": [], "metadata": {}, "logit_bias": {}, "seed": None}
    assert request_fields(stored, "responses") == {}
    assert request_fields(stored, "chat") == {}


@pytest.mark.parametrize(
    "name,value",
    [
        ("temperature", 1.2),
        ("top_p", 0.9),
        ("seed", 42),
        ("stop", ["END"]),
        ("parallel_tool_calls", False),
    ],
)
@pytest.mark.parametrize("api", APIS)
def test_shared_parameters_keep_their_name(api, name, value):
    assert request_fields({name: value}, api) == {name: value}


@pytest.mark.parametrize(
    "name,value",
    [
        ("truncation", "disabled"),
        ("store", False),
        ("metadata", {"team": "search"}),
        ("top_k", 40),
        ("repetition_penalty", 1.1),
    ],
)
def test_responses_only_parameters(name, value):
    assert request_fields({name: value}, "responses") == {name: value}
    assert request_fields({name: value}, "chat") == {}


@pytest.mark.parametrize(
    "name,value",
    [
        ("presence_penalty", 0.5),
        ("frequency_penalty", -0.5),
        ("logit_bias", {"50256": -100}),
        ("n", 2),
    ],
)
def test_chat_only_parameters(name, value):
    assert request_fields({name: value}, "chat") == {name: value}
    assert request_fields({name: value}, "responses") == {}


def test_instructions_per_api():
    stored = {"instructions": "Be brief."}
    assert request_fields(stored, "responses") == {"instructions": "Be brief."}
    assert request_fields(stored, "chat") == {}  # sent as the system message instead
    assert system_prompt(stored) == "Be brief."
    assert system_prompt({}) is None
    assert system_prompt({"instructions": "  "}) is None


def test_max_output_tokens_per_api():
    assert request_fields({"max_output_tokens": 500}, "responses") == {"max_output_tokens": 500}
    assert request_fields({"max_output_tokens": 500}, "chat") == {"max_completion_tokens": 500}
    legacy = {"max_output_tokens": 500, "max_tokens_field": "max_tokens"}
    assert request_fields(legacy, "chat") == {"max_tokens": 500}
    assert request_fields(legacy, "responses") == {"max_output_tokens": 500}
    explicit = {"max_output_tokens": 500, "max_tokens_field": "max_completion_tokens"}
    assert request_fields(explicit, "chat") == {"max_completion_tokens": 500}
    # The field choice alone sends nothing.
    assert request_fields({"max_tokens_field": "max_tokens"}, "chat") == {}


def test_reasoning_per_api():
    both = {"reasoning_effort": "high", "reasoning_summary": "detailed"}
    assert request_fields(both, "responses") == {
        "reasoning": {"effort": "high", "summary": "detailed"}
    }
    assert request_fields(both, "chat") == {"reasoning_effort": "high"}
    assert request_fields({"reasoning_effort": "low"}, "responses") == {
        "reasoning": {"effort": "low"}
    }
    assert request_fields({"reasoning_summary": "auto"}, "responses") == {
        "reasoning": {"summary": "auto"}
    }
    assert request_fields({"reasoning_summary": "auto"}, "chat") == {}


def test_response_format_per_api():
    schema = {"response_format": "json_schema", "response_schema": SCHEMA}
    assert request_fields(schema, "responses") == {
        "text": {"format": {"type": "json_schema", "name": "response", "schema": SCHEMA}}
    }
    assert request_fields(schema, "chat") == {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": SCHEMA},
        }
    }
    json_object = {"response_format": "json_object"}
    assert request_fields(json_object, "responses") == {"text": {"format": {"type": "json_object"}}}
    assert request_fields(json_object, "chat") == {"response_format": {"type": "json_object"}}
    assert request_fields({"response_format": "text"}, "chat") == {
        "response_format": {"type": "text"}
    }
    # A schema format without its schema is never sent half-built.
    assert request_fields({"response_format": "json_schema"}, "chat") == {}
    # A schema alone (no format chosen) sends nothing.
    assert request_fields({"response_schema": SCHEMA}, "responses") == {}


def test_tool_choice_per_api():
    for mode in ("auto", "none", "required"):
        assert request_fields({"tool_choice": mode}, "responses") == {"tool_choice": mode}
        assert request_fields({"tool_choice": mode}, "chat") == {"tool_choice": mode}
    forced = {"tool_choice": "function:get_weather"}
    assert request_fields(forced, "responses") == {
        "tool_choice": {"type": "function", "name": "get_weather"}
    }
    assert request_fields(forced, "chat") == {
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
    }


def test_tool_fields_follow_the_offered_tools_when_given():
    stored = {"tool_choice": "function:get_weather", "parallel_tool_calls": True}
    assert request_fields(stored, "chat", tool_names=[]) == {}
    assert request_fields(stored, "responses", tool_names=["calculator"]) == {
        "parallel_tool_calls": True
    }
    assert request_fields(stored, "responses", tool_names=["get_weather"]) == {
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": True,
    }
    assert request_fields({"tool_choice": "required"}, "chat", tool_names=["x"]) == {
        "tool_choice": "required"
    }


def test_unknown_stored_keys_are_not_sent():
    assert request_fields({"temperature": 1.0, "stream": False, "model": "x"}, "chat") == {
        "temperature": 1.0
    }


def test_a_full_form_for_each_api():
    form = {
        "instructions": "Be brief.",
        "temperature": "0.3",
        "top_p": "0.8",
        "max_output_tokens": "256",
        "reasoning_effort": "medium",
        "reasoning_summary": "concise",
        "truncation": "auto",
        "stop": "END",
        "presence_penalty": "0.1",
        "frequency_penalty": "0.2",
        "seed": "7",
        "logit_bias": '{"1": -1}',
        "response_format": "json_object",
        "tool_choice": "auto",
        "parallel_tool_calls": "true",
        "store": "true",
        "metadata": "a=b",
        "top_k": "20",
        "repetition_penalty": "1.05",
        "n": "1",
    }
    responses = request_fields(ok(form, "responses"), "responses")
    assert responses == {
        "instructions": "Be brief.",
        "temperature": 0.3,
        "top_p": 0.8,
        "max_output_tokens": 256,
        "reasoning": {"effort": "medium", "summary": "concise"},
        "truncation": "auto",
        "stop": ["END"],
        "seed": 7,
        "text": {"format": {"type": "json_object"}},
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "store": True,
        "metadata": {"a": "b"},
        "top_k": 20,
        "repetition_penalty": 1.05,
    }
    chat = request_fields(ok(form, "chat"), "chat")
    assert chat == {
        "temperature": 0.3,
        "top_p": 0.8,
        "max_completion_tokens": 256,
        "reasoning_effort": "medium",
        "stop": ["END"],
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "seed": 7,
        "logit_bias": {"1": -1},
        "response_format": {"type": "json_object"},
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "n": 1,
    }
    assert None not in responses.values() and None not in chat.values()


def test_params_stored_under_one_api_are_filtered_for_the_other():
    """A thread may switch API (or a preset be applied) and keep its params."""
    stored = ok({"store": "false", "truncation": "auto", "temperature": "1"}, "responses")
    assert request_fields(stored, "chat") == {"temperature": 1.0}
    stored = ok({"n": "2", "presence_penalty": "1", "top_p": "0.5"}, "chat")
    assert request_fields(stored, "responses") == {"top_p": 0.5}


# --- form_values: the round trip -------------------------------------------------------------


ROUND_TRIP_FORMS = {
    "responses": {
        "instructions": "Line one.\nLine two.",
        "temperature": "0.7",
        "top_p": "1",
        "max_output_tokens": "1024",
        "reasoning_effort": "high",
        "reasoning_summary": "auto",
        "truncation": "disabled",
        "stop": "END\n\\n\\n\n C:\\\\x",
        "seed": "-3",
        "response_format": "json_schema",
        "response_schema": json.dumps(SCHEMA),
        "tool_choice": "function:lookup",
        "parallel_tool_calls": "false",
        "store": "false",
        "metadata": "team=search\nticket=A=1",
        "top_k": "5",
        "repetition_penalty": "1.15",
    },
    "chat": {
        "instructions": "Hi",
        "temperature": "2",
        "max_output_tokens": "10",
        "max_tokens_field": "max_tokens",
        "presence_penalty": "-2",
        "frequency_penalty": "0.25",
        "logit_bias": '{"50256": -100, "11": 0.5}',
        "n": "3",
        "response_format": "json_object",
        "tool_choice": "required",
        "parallel_tool_calls": "true",
        "stop": "\\t",
    },
}


@pytest.mark.parametrize("api", APIS)
def test_form_values_round_trip(api):
    params = ok(ROUND_TRIP_FORMS[api], api, tool_names=["lookup"])
    values = form_values(params)
    assert all(isinstance(v, str) for v in values.values())
    again = ok(values, api, tool_names=["lookup"])
    assert again == params
    assert form_values(again) == values


def test_form_values_shapes():
    values = form_values(
        {
            "temperature": 1.0,
            "top_p": 0.25,
            "seed": 5,
            "stop": ["a", "\n"],
            "metadata": {"k": "v", "x": "y"},
            "logit_bias": {"1": 2},
            "store": False,
            "parallel_tool_calls": True,
        }
    )
    assert values == {
        "temperature": "1",
        "top_p": "0.25",
        "seed": "5",
        "stop": "a\n\\n",
        "metadata": "k=v\nx=y",
        "logit_bias": '{\n  "1": 2\n}',
        "store": "false",
        "parallel_tool_calls": "true",
    }


def test_form_values_skip_unset_and_unknown():
    assert form_values({}) == {}
    assert form_values({"temperature": None, "mystery": 1}) == {}


def test_form_values_accept_a_single_stop_string():
    assert form_values({"stop": "END"}) == {"stop": "END"}


def test_form_values_pretty_print_unicode_schema():
    schema = {"type": "object", "description": "Réponse"}
    text = form_values({"response_schema": schema})["response_schema"]
    assert "Réponse" in text and "\n" in text
    assert json.loads(text) == schema


# --- user_identifier -------------------------------------------------------------------------


def test_user_identifier_is_stable_and_opaque():
    first = user_identifier(123456, "secret")
    assert first == user_identifier(123456, "secret")
    assert first.startswith("u_") and len(first) == 34
    assert all(c in "0123456789abcdef" for c in first[2:])
    assert "123456" not in first


def test_user_identifier_differs_by_user_and_secret():
    ids = {user_identifier(n, "secret") for n in range(1, 200)}
    assert len(ids) == 199
    assert user_identifier(1, "secret") != user_identifier(1, "other secret")


def test_user_identifier_is_an_hmac():
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"42", hashlib.sha256).hexdigest()[:32]
    assert user_identifier(42, "k") == "u_" + expected
