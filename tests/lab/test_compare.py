"""Compare: variants parse strictly, plans resolve settings and seeds, runs are deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatterm.errors import ModelError, SettingError, UsageError
from chatterm.lab.compare import EnginePool, Variant, plan, stream, summarise

PROMPT = "Tell me about the moon."


def write_prompt(home: Path, kind: str, name: str, text: str) -> None:
    directory = home / "config" / "prompts" / f"{kind}s"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.md").write_text(text, encoding="utf-8")


@pytest.fixture
def pool(real_engine):
    """Every model name maps to the session's engine, which the pool must not close."""
    return EnginePool(lambda model: real_engine, close_on_switch=False)


def test_variant_parses_settings_and_prompt_keys():
    v = Variant.parse("temperature=1.2,top_k=5")
    assert v.settings == {"temperature": 1.2, "top_k": 5} and v.label == "temperature=1.2,top_k=5"
    assert Variant.parse("persona=teacher").persona == "teacher"
    assert Variant.parse("top-p=0.5").settings == {"top_p": 0.5}
    # commas inside a value stay there unless they start another key
    assert Variant.parse("system=Be brief, please").system == "Be brief, please"


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("temprature=1", UsageError, "unknown key 'temprature'"),
        ("temperature=hot", SettingError, "must be a float"),
        ("temperature=9", SettingError, "between 0 and 5"),
        ("temperature", UsageError, "expected key=value"),
        ("persona=", UsageError, "needs a value"),
    ],
)
def test_bad_variants_are_usage_errors(spec, error, message):
    with pytest.raises(error, match=message):
        Variant.parse(spec)


def test_plan_gives_each_run_its_seed_and_lets_the_variant_win():
    runs = plan(
        PROMPT,
        [Variant.parse("temperature=0"), Variant.parse("top_k=3")],
        seed=10,
        runs=2,
        overrides={"temperature": 0.9, "max_tokens": 8},
    )
    assert [(r.variant, r.run, r.settings.seed) for r in runs] == [
        (0, 0, 10),
        (0, 1, 11),
        (1, 0, 10),
        (1, 1, 11),
    ]
    assert runs[0].settings.temperature == 0 and runs[2].settings.temperature == 0.9
    assert runs[2].settings.top_k == 3 and all(r.settings.max_tokens == 8 for r in runs)
    assert all(r.messages[-1].content == PROMPT for r in runs)


def test_persona_and_template_variants_use_the_prompt_files(chatterm_home):
    write_prompt(
        chatterm_home,
        "persona",
        "teacher",
        "+++\ntemperature = 0.3\n+++\nYou are a patient teacher.\n",
    )
    write_prompt(chatterm_home, "template", "eli5", "Explain like I'm five: {{ input }}\n")
    runs = plan(
        PROMPT,
        [Variant.parse("persona=teacher"), Variant.parse("template=eli5")],
        seed=1,
        system="Be terse.",
    )
    teacher, eli5 = runs
    assert teacher.messages[0].role == "system"
    assert teacher.messages[0].content == "You are a patient teacher."
    assert teacher.settings.temperature == 0.3
    assert [m.content for m in eli5.messages] == ["Be terse.", f"Explain like I'm five: {PROMPT}"]


def test_unknown_persona_or_model_fails_before_anything_runs():
    with pytest.raises(UsageError, match="no persona named 'nobody'"):
        plan(PROMPT, [Variant.parse("persona=nobody")], seed=1)
    with pytest.raises(ModelError, match="unknown model"):
        plan(PROMPT, [Variant.parse("model=no-such-model")], seed=1)


def test_same_seed_gives_identical_replies_and_seeds_give_spread(pool):
    variants = [Variant.parse("temperature=0"), Variant.parse("temperature=1.5,top_k=0,min_p=0")]

    def once():
        runs = plan(PROMPT, variants, seed=7, runs=2, overrides={"max_tokens": 8})
        for _ in stream(runs, pool):
            pass
        return runs

    first, second = once(), once()
    assert all(r.done and r.text.strip() and r.model_name for r in first)
    assert [r.text for r in first] == [r.text for r in second]
    greedy, hot = summarise(first)
    assert greedy.distinct == 1 and greedy.runs == 2  # the seed does not matter at T=0
    assert hot.distinct == 2  # two seeds at T=1.5 spread
    assert greedy.mean_tokens > 0 and greedy.models == ("smollm2-135m-instruct",)


def test_pool_loads_one_model_at_a_time():
    loaded, closed = [], []

    class Stub:
        def __init__(self, name):
            self.name = name

        def close(self):
            closed.append(self.name)

    def loader(model):
        loaded.append(model)
        return Stub(model)

    pool = EnginePool(loader)
    assert pool.get(None) is pool.get(None)
    pool.get("other")
    pool.close()
    assert loaded == [None, "other"] and closed == [None, "other"]
