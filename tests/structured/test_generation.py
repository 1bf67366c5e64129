"""The real SmolLM2 under a schema or grammar: the engine, `ask`, `lab sample` and front matter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatterm import structured
from chatterm.engine.events import ChatMessage, Finished, Token
from chatterm.sampling import SamplingSettings
from tests.conftest import run_cli

BOUNDED = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "happy": {"type": "boolean"},
    },
    "required": ["name", "age", "happy"],
    "additionalProperties": False,
}
QUESTION = [ChatMessage("user", "Describe Bob, who is 41 and cheerful, as JSON.")]


def _reply(
    engine, settings: SamplingSettings, top_logprobs: int = 0
) -> tuple[str, list[Token], Finished]:
    events = list(engine.generate(QUESTION, settings, top_logprobs=top_logprobs))
    tokens = [e for e in events if isinstance(e, Token)]
    finished = events[-1]
    assert isinstance(finished, Finished)
    return "".join(t.text for t in tokens), tokens, finished


def test_greedy_reply_under_a_schema_is_valid_json_with_forced_tokens(real_engine) -> None:
    schema = structured.canonical(BOUNDED)
    settings = SamplingSettings(temperature=0, seed=1, max_tokens=80, schema=schema)
    text, tokens, finished = _reply(real_engine, settings, top_logprobs=2)
    assert finished.reason == "stop" and finished.error is None
    data = structured.validate_reply(text, schema)
    assert set(data) == {"name", "age", "happy"}
    # Fixed keys leave the grammar one choice at many positions; the model chose the rest.
    assert any(t.forced for t in tokens) and not all(t.forced for t in tokens)
    # Without probabilities the full pass is skipped: the same reply, nothing marked forced.
    quick, quick_tokens, _ = _reply(real_engine, settings)
    assert quick == text and not any(t.forced for t in quick_tokens)
    free = _reply(real_engine, SamplingSettings(temperature=0, seed=1, max_tokens=8), 2)[1]
    assert not any(t.forced for t in free)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_sampled_replies_under_a_schema_are_valid_for_every_seed(real_engine, seed: int) -> None:
    schema = structured.canonical(BOUNDED)
    settings = SamplingSettings(temperature=1.0, top_k=0, seed=seed, max_tokens=120, schema=schema)
    text, _, finished = _reply(real_engine, settings)
    assert finished.reason == "stop", text
    structured.validate_reply(text, schema)
    # The seed alone decides the reply: asking for probabilities does not change it.
    assert _reply(real_engine, settings, top_logprobs=1)[0] == text


def test_a_raw_grammar_limits_the_reply_to_its_language(real_engine) -> None:
    grammar = 'root ::= ("yes" | "no")\n'
    for seed in (1, 2, 3):
        settings = SamplingSettings(temperature=1.5, seed=seed, max_tokens=5, grammar=grammar)
        text, tokens, finished = _reply(real_engine, settings)
        assert text in ("yes", "no") and finished.reason == "stop"


def test_ask_with_a_schema_prints_valid_json_and_exits_0() -> None:
    result = run_cli(
        "ask", "--schema", "name, age int", "--temperature", "0", "-n", "60", "--json",
        "Describe Bob, who is 41.",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema_valid"] is True and data["schema_error"] is None
    assert data["data"] == json.loads(data["text"])
    assert isinstance(data["data"]["age"], int)
    assert json.loads(data["settings"]["schema"])["required"] == ["name", "age"]


def test_a_reply_cut_short_is_invalid_and_exits_1() -> None:
    result = run_cli(
        "ask", "--schema", "name, age int", "--temperature", "0", "-n", "3", "--json", "Bob?"
    )
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["schema_valid"] is False and "not valid JSON" in data["schema_error"]
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("chatterm: error: the reply is not valid JSON")
    )


def test_forced_tokens_are_marked_in_the_probability_records() -> None:
    result = run_cli(
        "ask", "--schema", "name, age int", "--temperature", "0", "-n", "60", "--json",
        "--logprobs", "2", "Describe Bob, who is 41.",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)["tokens"]
    forced = [r for r in records if r.get("forced")]
    assert forced and len(forced) < len(records)


@pytest.mark.parametrize("flag", ["--schema", "--grammar"])
def test_an_invalid_schema_or_grammar_fails_before_the_model_loads(
    tmp_path: Path, flag: str
) -> None:
    bad = tmp_path / "bad.gbnf"
    bad.write_text("root ::= missing\n")
    value = '{"type": 5}' if flag == "--schema" else str(bad)
    # The model path does not exist: a model load would exit 3.
    result = run_cli("ask", "-m", "/nonexistent/model.gguf", flag, value, "hi")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"chatterm: error: {flag}")


def test_lab_sample_shows_what_the_grammar_removes() -> None:
    result = run_cli(
        "lab", "sample", "--schema", "name, age int", "--top", "5", "--json", "Describe Bob."
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["stages"][0]["name"] == "grammar" and data["stages"][0]["setting"] == "schema"
    rows = data["candidates"]
    assert [r["rank"] for r in rows[:5]] == [1, 2, 3, 4, 5]
    assert any(r["removed_by"] == "grammar" for r in rows[:5])
    kept = [r for r in rows if r["removed_by"] is None]
    assert kept and all(r["piece"].lstrip().startswith("{") for r in kept)
    assert sum(r["final_prob"] for r in kept) == pytest.approx(1.0, abs=1e-3)
    plain = run_cli("lab", "sample", "--schema", "name, age int", "--top", "5", "Describe Bob.")
    assert "grammar schema:" in plain.stdout and " grammar " in plain.stdout


def test_a_template_can_declare_a_schema_in_its_front_matter() -> None:
    listed = run_cli("paths", "--json")
    templates = Path(json.loads(listed.stdout)["prompts"]) / "templates"
    templates.mkdir(parents=True)
    (templates / "contact.md").write_text(
        '+++\ndescription = "Extract a contact"\nschema = "name, email"\ntemperature = 0\n+++\n'
        "Extract the contact from this text as JSON:\n\n{{ input }}\n"
    )
    result = run_cli(
        "ask", "-t", "contact", "-n", "60", "--json", input="Write to Ann at ann@example.org."
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema_valid"] is True and set(data["data"]) == {"name", "email"}
    (templates / "broken.md").write_text('+++\nschema = "name, age integer"\n+++\n{{ input }}\n')
    broken = run_cli("ask", "-t", "broken", "hi")
    assert broken.returncode == 2
    assert "broken.md:2: --schema: field 'age' has unknown type" in broken.stderr


def test_lab_compare_gives_every_variant_the_schema() -> None:
    result = run_cli(
        "lab", "compare", "--schema", "name, age int", "Describe Bob, who is 41.",
        "--variant", "temperature=0", "--variant", "temperature=1.0,top_k=0",
        "--max-tokens", "60", "--seed", "5", "--json", "--no-save",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert len(runs) == 2
    for run in runs:
        assert run["settings"]["schema"]
        assert set(structured.validate_reply(run["text"], run["settings"]["schema"])) == {
            "name",
            "age",
        }


def test_a_shaped_reply_prints_as_written_on_a_terminal(tmp_path: Path, chatterm_home) -> None:
    from tests.lab.test_cli import run_on_terminal

    grammar = tmp_path / "heading.gbnf"
    grammar.write_text('root ::= "# Heading"\n')
    out, _ = run_on_terminal("ask", "--grammar", str(grammar), "-n", "8", "Hi", home=chatterm_home)
    assert "# Heading" in out  # Markdown would have turned it into a styled heading
