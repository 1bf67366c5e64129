"""Parsing, overriding, variables and errors of persona and template files (no model)."""

from __future__ import annotations

import pytest

from chatterm import prompts
from chatterm.errors import TemplateError, UsageError
from chatterm.sampling import SamplingSettings

TRANSLATE = """\
+++
description = "Translate text"
temperature = 0.2
stop = ["\\n\\n"]

[variables]
lang = "French"
+++
Translate into {{ lang }}:

{{ input }}
"""


def test_front_matter_and_body_are_parsed(write_user):
    path = write_user("template", "tr", TRANSLATE)
    item = prompts.load_prompt("template", "tr")
    assert item.path == path and item.origin == "user" and item.ok
    assert item.description == "Translate text"
    assert item.settings == {"temperature": 0.2, "stop": ["\n\n"]}
    assert item.variables == {"lang": "French"}
    assert item.uses == {"lang", "input"} and item.needs_input
    assert item.body_line == 9
    assert item.render("Hello") == "Translate into French:\n\nHello"


def test_a_file_without_front_matter_is_all_body(write_user):
    write_user("persona", "plain", "You are terse.\n")
    item = prompts.load_prompt("persona", "plain")
    assert item.description == "" and item.settings == {} and item.variables == {}
    assert item.render() == "You are terse."


def test_variables_override_defaults_and_input_is_not_a_template(write_user):
    write_user("template", "tr", TRANSLATE)
    item = prompts.load_prompt("template", "tr")
    # input is data, not template source: braces in it stay as they are
    assert item.render("{{ lang }}", {"lang": "German"}) == "Translate into German:\n\n{{ lang }}"


def test_number_defaults_become_strings(write_user):
    write_user("template", "n", "+++\n[variables]\ncount = 3\n+++\n{{ count }} {{ input }}")
    assert prompts.load_prompt("template", "n").render("x") == "3 x"


def test_missing_variable_names_it_and_the_file(write_user):
    path = write_user("template", "needs", "Write about {{ topic }}.\n")
    item = prompts.load_prompt("template", "needs")
    assert item.missing() == ["topic"]
    with pytest.raises(TemplateError) as err:
        item.render()
    assert str(path) in str(err.value) and "'topic'" in str(err.value)
    assert "-v topic=VALUE" in str(err.value)
    assert item.render(variables={"topic": "bees"}) == "Write about bees."


def test_missing_input_is_reported_as_input(write_user):
    write_user("template", "tr", TRANSLATE)
    with pytest.raises(TemplateError, match="needs input"):
        prompts.load_prompt("template", "tr").render("")


def test_bad_front_matter_toml_reports_path_and_file_line(write_user):
    path = write_user("persona", "bad", "+++\ndescription = 'ok'\ntemperature = \n+++\nHi\n")
    item = prompts.find_prompt("persona", "bad")
    assert not item.ok
    assert item.error.startswith(f"{path}:3: invalid front matter")
    with pytest.raises(TemplateError, match=r"bad\.md:3:"):
        prompts.load_prompt("persona", "bad")


def test_unclosed_front_matter_is_reported_at_line_one(write_user):
    path = write_user("persona", "open", "+++\ndescription = 'x'\nHi\n")
    assert prompts.find_prompt("persona", "open").error.startswith(f"{path}:1: ")


def test_out_of_range_setting_reports_its_line(write_user):
    path = write_user("persona", "hot", "+++\ndescription = 'x'\n\ntemperature = 9\n+++\nHi\n")
    error = prompts.find_prompt("persona", "hot").error
    assert error.startswith(f"{path}:4: ") and "temperature must be between 0 and 5" in error


def test_unknown_key_reports_its_line_and_the_known_keys(write_user):
    path = write_user("persona", "typo", "+++\ntempurature = 0.5\n+++\nHi\n")
    error = prompts.find_prompt("persona", "typo").error
    assert error.startswith(f"{path}:2: unknown key 'tempurature'") and "temperature" in error


def test_jinja_syntax_error_reports_the_file_line(write_user):
    text = "+++\ndescription = 'x'\n+++\nline one\n\n{% if input %}unclosed\n"
    path = write_user("template", "syntax", text)
    error = prompts.find_prompt("template", "syntax").error
    # Jinja reports an unclosed block on the template's last line
    assert error.startswith(f"{path}:6: template syntax error")


def test_jinja_syntax_error_line_counts_front_matter(write_user):
    path = write_user("template", "expr", "+++\n[variables]\nx = '1'\n+++\nok\n{{ x + }}\n")
    assert prompts.find_prompt("template", "expr").error.startswith(f"{path}:6: ")


def test_runtime_error_reports_the_file_line(write_user):
    path = write_user("template", "rt", "+++\n+++\nfine {{ input }}\n{{ input.nope.deeper }}\n")
    with pytest.raises(TemplateError) as err:
        prompts.load_prompt("template", "rt").render("text")
    assert str(err.value).startswith(f"{path}:4: ")


def test_a_persona_cannot_use_input(write_user):
    write_user("persona", "echo", "Repeat {{ input }}\n")
    assert "has no {{ input }}" in prompts.find_prompt("persona", "echo").error


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ input.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_reaching_python_internals_fails_safely(write_user, body):
    path = write_user("template", "escape", f"{{{{ input }}}}\n{body}\n")
    item = prompts.load_prompt("template", "escape")
    with pytest.raises(TemplateError) as err:
        item.render("x")
    message = str(err.value)
    assert message.startswith(f"{path}:2: ") and "unsafe" in message


def test_huge_repetition_is_refused_before_it_allocates(write_user):
    write_user("template", "big", "{{ input * 100000000 }}\n")
    with pytest.raises(TemplateError, match="would build a repetition"):
        prompts.load_prompt("template", "big").render("abc")


def test_templates_cannot_mutate_their_values(write_user):
    write_user("template", "mut", "{% set x = [1] %}{{ x.append(2) }}{{ input }}\n")
    with pytest.raises(TemplateError, match="unsafe"):
        prompts.load_prompt("template", "mut").render("a")


def test_user_file_overrides_the_bundled_one(write_user):
    bundled = prompts.load_prompt("persona", "concise")
    assert bundled.origin == "bundled" and not bundled.overrides_bundled
    path = write_user("persona", "concise", "+++\ndescription = 'mine'\n+++\nBe brief.\n")
    mine = prompts.load_prompt("persona", "concise")
    assert mine.path == path and mine.origin == "user" and mine.overrides_bundled
    listed = {p.name: p for p in prompts.list_prompts("persona")}
    assert listed["concise"].description == "mine" and listed["concise"].overrides_bundled
    assert listed["teacher"].origin == "bundled"


def test_a_broken_file_is_listed_and_every_other_file_still_loads(write_user):
    write_user("template", "broken", "+++\nnot toml at all\n+++\nx\n")
    write_user("template", "broken2", "{% for %}\n")
    write_user("template", "fine", "Say {{ input }}\n")
    items = {p.name: p for p in prompts.list_prompts("template")}
    assert items["broken"].error and items["broken2"].error
    assert items["fine"].ok and items["summarize"].ok
    assert sum(1 for p in items.values() if not p.ok) == 2


def test_a_badly_named_file_is_listed_as_broken(write_user):
    write_user("persona", "has space", "Hi\n")
    items = {p.name: p for p in prompts.list_prompts("persona")}
    assert "rename it" in items["has space"].error


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(UsageError) as err:
        prompts.load_prompt("template", "nope")
    assert "no template named 'nope'" in str(err.value) and "summarize" in str(err.value)


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", ".hidden", "", "x y"])
def test_names_with_path_separators_are_refused(name):
    with pytest.raises(UsageError, match="invalid name"):
        prompts.check_name(name)
    with pytest.raises(UsageError):
        prompts.new_prompt("persona", name)


def test_parse_variables():
    assert prompts.parse_variables(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}


@pytest.mark.parametrize("pair", ["novalue", "=x", "1a=x", "a-b=x", "input=x"])
def test_parse_variables_refuses_bad_pairs(pair):
    with pytest.raises(UsageError):
        prompts.parse_variables([pair])


# -- compose -------------------------------------------------------------------------------


def test_compose_persona_and_template(write_user):
    write_user("persona", "p", "+++\ntemperature = 0.9\ntop_k = 5\n+++\nYou speak {{ lang }}.\n")
    write_user("template", "tr", TRANSLATE)
    persona = prompts.load_prompt("persona", "p")
    template = prompts.load_prompt("template", "tr")
    composed = prompts.compose(
        "Hi", persona=persona, template=template, variables={"lang": "Czech"}
    )
    assert composed.system == "You speak Czech."
    assert composed.user == "Translate into Czech:\n\nHi"
    # the template's defaults win over the persona's, and both reach SamplingSettings
    assert composed.settings == {"temperature": 0.2, "top_k": 5, "stop": ["\n\n"]}
    settings = SamplingSettings().merge(composed.settings)
    assert settings.temperature == 0.2 and settings.top_k == 5 and settings.stop == ("\n\n",)
    assert [m.role for m in composed.messages()] == ["system", "user"]


def test_explicit_system_prompt_wins_over_the_persona():
    persona = prompts.load_prompt("persona", "concise")
    composed = prompts.compose("Q", persona=persona, system="Be a pirate.")
    assert composed.system == "Be a pirate." and composed.settings == dict(persona.settings)


def test_a_template_without_input_needs_none():
    composed = prompts.compose("", template=prompts.load_prompt("template", "quiz"))
    assert "quiz questions about how language models" in composed.user


def test_input_a_template_would_ignore_is_an_error():
    with pytest.raises(UsageError, match="does not use"):
        prompts.compose("lost text", template=prompts.load_prompt("template", "quiz"))


def test_a_variable_no_file_uses_is_an_error():
    template = prompts.load_prompt("template", "translate")
    with pytest.raises(UsageError, match="has no variable 'lnag'.*variables: lang"):
        prompts.compose("Hi", template=template, variables={"lnag": "German"})
    with pytest.raises(UsageError, match="choose a template"):
        prompts.compose("Hi", variables={"lang": "German"})


# -- new and edit --------------------------------------------------------------------------


def test_new_writes_a_valid_skeleton_in_the_user_dir():
    for kind in prompts.KINDS:
        path = prompts.new_prompt(kind, "mine")
        assert path.parent == prompts.user_dir(kind)
        item = prompts.load_prompt(kind, "mine")
        assert item.ok and item.description
        with pytest.raises(UsageError, match="already exists"):
            prompts.new_prompt(kind, "mine")


def test_new_refuses_a_bundled_name():
    with pytest.raises(UsageError, match="edit teacher"):
        prompts.new_prompt("persona", "teacher")


def test_editable_path_copies_the_bundled_file_once():
    bundled = prompts.find_prompt("template", "eli5").path
    path, copied = prompts.editable_path("template", "eli5")
    assert copied and path.parent == prompts.user_dir("template")
    assert path.read_text() == bundled.read_text()
    path.write_text("changed {{ input }}")
    again, copied_again = prompts.editable_path("template", "eli5")
    assert again == path and not copied_again and path.read_text() == "changed {{ input }}"
    with pytest.raises(UsageError, match="new nope"):
        prompts.editable_path("template", "nope")


def test_editor_command_order(monkeypatch):
    monkeypatch.setenv("EDITOR", "code --wait")
    monkeypatch.setenv("VISUAL", "vim")
    assert prompts.editor_command() == ["code", "--wait"]
    monkeypatch.delenv("EDITOR")
    assert prompts.editor_command() == ["vim"]


def test_prompts_module_imports_no_ui_and_jinja_only_when_used():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from chatterm import prompts\n"
        "assert 'jinja2' not in sys.modules, 'jinja2 at import'\n"
        "prompts.list_prompts('template')\n"
        "assert 'jinja2' in sys.modules\n"
        "bad = sorted(m for m in ('textual', 'rich', 'llama_cpp') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
