"""Reading schemas and grammars, and validating replies: no model needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatterm import structured
from chatterm.structured import (
    ReplyInvalidError,
    StructureError,
    check_grammar,
    concise_schema,
    parse_schema,
    read_grammar,
    validate_reply,
)

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


def test_the_concise_form_is_an_object_with_required_typed_fields() -> None:
    schema = concise_schema("name, age int, tags list, score float: how sure, ok bool")
    assert schema["required"] == ["name", "age", "tags", "score", "ok"]
    assert schema["properties"]["name"] == {"type": "string"}
    assert schema["properties"]["age"] == {"type": "integer"}
    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert schema["properties"]["score"] == {"type": "number", "description": "how sure"}
    assert schema["additionalProperties"] is False


def test_the_concise_form_may_use_one_field_per_line() -> None:
    schema = concise_schema("name: the full name, as written\nage int\n")
    assert schema["properties"]["name"]["description"] == "the full name, as written"


def test_inline_json_and_a_file_give_the_same_schema(tmp_path: Path) -> None:
    path = tmp_path / "person.json"
    path.write_text(json.dumps(PERSON))
    assert parse_schema(json.dumps(PERSON)) == PERSON == parse_schema(str(path))
    assert parse_schema("person.json", base=tmp_path) == PERSON


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"type": "objekt"}', "not a valid JSON Schema: 'objekt' is not valid"),
        ("{oops", "--schema: not valid JSON"),
        ("[1, 2]", r"a JSON Schema is an object \(\{…\}\)"),
        ("name, age integer", "field 'age' has unknown type 'integer'"),
        ("name, name", "field 'name' is given twice"),
        ("missing.json", "--schema missing.json: no such file"),
        ("9lives", "cannot read field '9lives'"),
    ],
)
def test_bad_schemas_are_one_line_usage_errors(value: str, message: str) -> None:
    with pytest.raises(StructureError, match=message) as caught:
        parse_schema(value)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


def test_a_construct_llama_cpp_cannot_convert_is_named() -> None:
    schema = structured.canonical({"type": "string", "pattern": "a+"})
    with pytest.raises(StructureError, match="cannot turn this schema into a grammar: Pattern"):
        structured.schema_grammar(schema)


def test_a_schema_becomes_a_gbnf_grammar_llama_cpp_parses() -> None:
    gbnf = structured.schema_grammar(structured.canonical(PERSON))
    assert "root ::=" in gbnf
    check_grammar(gbnf)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('root ::= "yes" | "no', "not a valid GBNF grammar: unexpected end of input"),
        ("root ::= answer\n", "Undefined rule identifier 'answer'"),
        ('start ::= "a"\n', "no 'root' rule"),
        ("   \n", "the grammar is empty"),
    ],
)
def test_bad_grammars_carry_llama_cpps_own_message(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "g.gbnf"
    path.write_text(text)
    with pytest.raises(StructureError, match=message):
        read_grammar(str(path))


def test_a_good_grammar_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "yes-no.gbnf"
    path.write_text('root ::= ("yes" | "no")\n')
    assert read_grammar(str(path)) == 'root ::= ("yes" | "no")\n'


def test_replies_are_validated_against_the_schema() -> None:
    schema = structured.canonical(PERSON)
    assert validate_reply('{"name": "Ann", "age": 30}', schema) == {"name": "Ann", "age": 30}
    with pytest.raises(ReplyInvalidError, match="at age: -1 is less than the minimum of 0"):
        validate_reply('{"name": "Ann", "age": -1}', schema)
    with pytest.raises(ReplyInvalidError, match="not valid JSON.*--max-tokens"):
        validate_reply('{"name": "An', schema)


def test_remote_servers_get_response_format() -> None:
    schema = structured.canonical(PERSON)
    assert structured.response_format(schema) == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": PERSON, "strict": True},
    }
    assert structured.response_format(schema, json_object=True) == {
        "type": "json_object",
        "schema": PERSON,
    }


def test_schema_and_grammar_together_are_refused_before_the_model_loads(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    grammar = tmp_path / "yes-no.gbnf"
    grammar.write_text('root ::= "yes" | "no"\n')
    done = run_cli("ask", "--grammar", str(grammar), "--schema", "a", "Is water wet?")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "chatterm: error: --schema and --grammar both constrain the reply: give one (a schema "
        "becomes a grammar itself)"
    ]
