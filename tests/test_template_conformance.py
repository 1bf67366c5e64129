"""chatterm renders llama.cpp's ~70 real chat templates exactly as transformers would.

The templates come from the installed llama-cpp-python's source distribution (fetched by pip
at test time, never committed: see ``tests/llama_sdist.py``). Each is rendered with chatterm and
with the independent reference renderer of ``tests/template_reference.py`` for five
conversations; every case must give identical text, or both must refuse.
"""

from __future__ import annotations

import pytest

from tests import llama_sdist
from tests.template_reference import CONVERSATIONS, compare


def _chatterm(source, messages, **tokens):
    from chatterm.engine.chat_template import render_text

    return render_text(source, messages, **tokens)


@pytest.fixture(scope="module")
def templates():
    try:
        found = llama_sdist.chat_templates()
    except RuntimeError as exc:  # no network and no pip cache: say so, do not pass silently
        pytest.fail(f"cannot fetch llama.cpp's templates: {exc}")
    assert len(found) >= 60, "llama.cpp ships about 70 templates"
    return found


def test_every_real_template_renders_as_transformers_does(templates):
    failures = []
    total = agree = refused = 0
    for path in templates:
        source = path.read_text(encoding="utf-8")
        for result in compare(source, _chatterm):
            total += 1
            agree += result.agree
            refused += result.outcome == "both refuse"
            if not result.agree:
                failures.append(
                    f"{path.name} / {result.conversation}: {result.outcome} {result.detail}"
                )
    print(
        f"\ntemplate conformance: {agree}/{total} cases agree ({len(templates)} templates; "
        f"{refused} of them both refuse)"
    )
    assert total == len(templates) * len(CONVERSATIONS)
    assert not failures, "\n".join(failures)


def test_the_check_catches_a_renderer_that_differs(templates):
    """The comparison itself can fail: a renderer that strips whitespace is caught."""

    def sloppy(source, messages, **tokens):
        return _chatterm(source, messages, **tokens).strip() + " "

    results = compare(templates[0].read_text(encoding="utf-8"), sloppy)
    assert any(not r.agree for r in results)


def test_the_user_facing_check_on_a_gguf_and_on_a_template_file(starter_path, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    def check(path):
        return subprocess.run(
            [sys.executable, "scripts/template_check.py", str(path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )

    ok = check(starter_path)
    assert ok.returncode == 0, ok.stderr
    assert "chat format: template" in ok.stdout and "5/5 conversations" in ok.stdout
    # Past chatterm's work budget but fine for the reference: reported, exit 1.
    heavy = tmp_path / "heavy.jinja"
    heavy.write_text(
        "{% for i in range(100000) %}{% for j in range(21) %}{% endfor %}{% endfor %}"
        "{{ messages[0].content }}",
        encoding="utf-8",
    )
    differs = check(heavy)
    assert differs.returncode == 1, differs.stderr
    assert "DIFF" in differs.stdout and "only chatterm refuses" in differs.stdout
    missing = check(tmp_path / "missing.jinja")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
