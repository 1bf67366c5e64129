"""Every template render, from a model file or a prompt file, finishes or is refused within a
fixed budget of work and memory, whatever the template does (issue 16, part 2).

The hostile templates run in a child process under a memory cap (``RLIMIT_AS``) and a time
limit, so a regression fails here instead of hanging or swapping the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, run_cli

HOSTILE = {
    "nested empty loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ),
    "center": "{{ 'x' | center(3000000000) }}",
    "indent": "{{ ('a\\n' * 100000) | indent(100000) }}",
    "lipsum": "{{ lipsum(10**6) }}",
    "replace empty": (
        "{% set ns = namespace(s='abcdefghij' * 1000) %}{% for i in range(20) %}"
        "{% set ns.s = ns.s | replace('', ns.s) %}{% endfor %}{{ ns.s }}"
    ),
    "string doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s }}"
    ),
    "plus doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}{{ ns.s }}"
    ),
    "list nesting": (
        "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = [ns.l, ns.l] %}"
        "{% endfor %}{{ ns.l | tojson }}"
    ),
    "list nesting compared": (
        "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(100) %}"
        "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}"
        "{{ ns.a == ns.b }}"
    ),
    "dict nesting": (
        "{% set ns = namespace(d={}) %}{% for i in range(100) %}"
        "{% set ns.d = dict(a=ns.d, b=ns.d) %}{% endfor %}{{ ns.d is mapping }}"
    ),
    "range 10**9": "{% for i in range(10**9) %}{% endfor %}",
    "recursive macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "branching macro": (
        "{% macro f(n) %}{% if n < 60 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
        "{{ f(0) }}"
    ),
    "1/0": "{{ 1 / 0 }}",
    "1+'a'": "{{ 1 + 'a' }}",
    "include": "{% include 'secrets.txt' %}",
    "import": "{% import 'x.j2' as x %}",
    "big power": "{{ 7 ** 999999999 }}",
    "big repetition": "{{ 'a' * 10**9 }}",
    "format width": "{{ '%999999999s' % 'a' }}",
    "format method": "{{ '{:>999999999}'.format('a') }}",
    "ljust": "{{ 'a'.ljust(10**9) }}",
    "captured block": (
        "{% set x %}{% for i in range(100000) %}{% for j in range(10) %}"
        + "y" * 1000
        + "{% endfor %}{% endfor %}{% endset %}{{ x | length }}"
    ),
    "attribute escape": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "deep nesting": "{% if true %}" * 3000 + "x" + "{% endif %}" * 3000,
    "renders nothing": "{# nothing at all #}",
}

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
    from chatterm.engine.chat_template import render_conversation
    from chatterm.engine.events import ChatMessage
    from chatterm.errors import ChattermError
    cases = json.loads(sys.stdin.read())
    for name, source in cases.items():
        start = time.monotonic()
        try:
            render_conversation(source, [ChatMessage("user", "hi")], origin="hostile.gguf")
            outcome, message = "rendered", ""
        except ChattermError as exc:
            outcome, message = f"exit {exc.exit_code}", str(exc)
        except BaseException as exc:
            outcome, message = "crash", f"{type(exc).__name__}: {exc}"
        took = time.monotonic() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(json.dumps([name, outcome, message, took, peak]), flush=True)
    """
)


def test_hostile_chat_templates_are_refused_in_one_line_within_the_budget():
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(HOSTILE),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = {row[0]: row[1:] for row in map(json.loads, done.stdout.splitlines())}
    assert set(results) == set(HOSTILE)
    for name, (outcome, message, _took, _peak) in results.items():
        assert outcome == "exit 3", (name, outcome, message)
        assert message.startswith("hostile.gguf: the chat template ") and "\n" not in message
    assert "would build" in results["center"][1]
    assert (
        "steps" in results["nested empty loops"][1] or "longer" in results["nested empty loops"][1]
    )
    assert "cannot include" in results["include"][1]
    assert "ZeroDivisionError" in results["1/0"][1]
    assert "rendered nothing" in results["renders nothing"][1]


def test_a_legitimate_long_conversation_stays_well_inside_the_budget():
    from chatterm.engine.chat_template import render_conversation
    from chatterm.engine.events import ChatMessage

    source = (
        "{% for m in messages %}{% for n in messages %}{% endfor %}"
        "<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}"
    )
    turns = [
        ChatMessage("user" if i % 2 == 0 else "assistant", f"turn {i} " * 50) for i in range(400)
    ]
    text = render_conversation(source, turns).text
    assert text.count("<|im_start|>") == 400


def _write(home, kind, name, text):
    from chatterm import paths

    folder = paths.user_prompts_dir() / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "body",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        "{{ input }}",
        "{{ input | center(3000000000) }}",
        "{{ lipsum(10**6) }}{{ input }}",
        "{{ 1 / 0 }}{{ input }}",
        "{% include 'x' %}{{ input }}",
    ],
    ids=["nested loops", "center", "lipsum", "division by zero", "include"],
)
def test_hostile_prompt_files_fail_in_one_line_naming_the_file(chatterm_home, body):
    path = _write(chatterm_home, "templates", "hostile", body + "\n")
    result = run_cli("render", "-t", "hostile", "hello", timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], result.stderr


@pytest.mark.parametrize(
    "front",
    [
        "a = " + "[" * 100000 + "]" * 100000,
        "a = " + "{b = " * 100000 + "1" + "}" * 100000,
        "[variables]\nx = " + "[" * 100000 + "]" * 100000,
    ],
    ids=["arrays", "inline tables", "variables"],  # long ids would overflow the environment
)
def test_front_matter_nested_deep_breaks_only_its_own_file(chatterm_home, front):
    bad = _write(chatterm_home, "personas", "deep", f"+++\n{front}\n+++\nYou are deep.\n")
    _write(chatterm_home, "personas", "fine", "+++\ndescription = 'fine one'\n+++\nYou are fine.\n")
    listed = run_cli("personas", "--json", timeout=60)
    assert listed.returncode == 0, listed.stderr
    items = {i["name"]: i for i in json.loads(listed.stdout)}
    assert items["fine"]["error"] is None and items["fine"]["description"] == "fine one"
    assert str(bad) in items["deep"]["error"]
    used = run_cli("render", "-p", "deep", "hi", timeout=60)
    assert used.returncode == 2 and len(used.stderr.strip().splitlines()) == 1
