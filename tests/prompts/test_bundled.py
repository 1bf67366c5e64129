"""Every bundled persona and template renders and runs on the real model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatterm import prompts
from chatterm.engine.events import Finished, PromptReady, Token
from chatterm.sampling import SamplingSettings

# A realistic input per file; files added later fall back to the generic ones.
PERSONA_INPUT = {
    "code-reviewer": "def avg(xs):\n    return sum(xs) / len(xs)",
    "shell": "How do I find the ten largest files in a directory?",
    "translator": "Good morning, how are you?",
    "socratic": "Why do heavy and light objects fall at the same speed?",
    "storyteller": "A lighthouse keeper finds a message in a bottle.",
}
TEMPLATE_INPUT = {
    "summarize": "Large language models predict the next token from the previous ones. They are "
    "trained on huge amounts of text and can then answer questions, translate and write code.",
    "explain-code": "print(sum(x * x for x in range(10)))",
    "commit-message": "--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-print('helo')\n+print('hello')",
    "translate": "The weather is nice today.",
    "proofread": "Their going too the park tomorow.",
    "eli5": "the internet",
}
GENERIC_INPUT = "Why is the sky blue?"


def bundled(kind: prompts.Kind) -> list[Path]:
    # Read the bundled directory itself: at collection time CHATTERM_HOME is not yet set, so
    # list_prompts() could mix in the developer's own files.
    return sorted((prompts.bundled_dir() / prompts.SUBDIRS[kind]).glob("*.md"))


CASES = [
    pytest.param(kind, path, id=f"{kind}-{path.stem}")
    for kind in prompts.KINDS
    for path in bundled(kind)
]


def test_enough_files_are_bundled():
    assert len(bundled("persona")) >= 6 and len(bundled("template")) >= 6


@pytest.mark.parametrize(("kind", "path"), CASES)
def test_bundled_file_renders_and_runs_on_the_real_model(real_engine, kind, path):
    item = prompts.read_prompt(path, kind, "bundled")
    assert item.ok, item.error
    assert item.description, f"{path} needs a description for the pickers"
    if kind == "persona":
        composed = prompts.compose(PERSONA_INPUT.get(item.name, GENERIC_INPUT), persona=item)
        assert composed.system and "{{" not in composed.system
    else:
        text = TEMPLATE_INPUT.get(item.name, GENERIC_INPUT) if item.needs_input else ""
        composed = prompts.compose(text, template=item)
        assert not item.missing(input=text), "bundled templates need defaults for variables"
        assert "{{" not in composed.user and (not text or text in composed.user)

    messages = composed.messages()
    rendered = real_engine.render(messages)
    assert "<|im_start|>" in rendered.text and composed.user in rendered.text

    settings = (
        SamplingSettings().merge(composed.settings).replace(temperature=0.0, seed=1, max_tokens=8)
    )
    events = list(real_engine.generate(messages, settings))
    assert isinstance(events[0], PromptReady)
    assert events[0].prompt_tokens == len(rendered.tokens)
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.error is None
    assert finished.reason in ("stop", "length")
    reply = "".join(e.text for e in events if isinstance(e, Token))
    assert reply.strip(), f"empty reply for {path.name}"


def readme_section() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = text.index("## Personas and templates")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_readme_lists_exactly_the_bundled_files():
    section = readme_section()
    for kind, label in (("persona", "Bundled personas:"), ("template", "Bundled templates:")):
        listed = section[section.index(label) :].split(".")[0]
        names = set(re.findall(r"`([\w.-]+)`", listed))
        assert names == {p.stem for p in bundled(kind)}, kind


def test_readme_examples_name_existing_personas_and_templates():
    section = readme_section()
    used = re.findall(r"(?:-p|personas show) ([\w-]+)", section)
    used_templates = re.findall(r"(?:-t|templates edit) ([\w-]+)", section)
    assert used and used_templates
    assert set(used) <= {p.stem for p in bundled("persona")}
    assert set(used_templates) <= {p.stem for p in bundled("template")}
