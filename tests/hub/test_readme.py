"""The README's "Models" examples, run verbatim against the fake Hub, so they stay true."""

from __future__ import annotations

import json
import re
import shlex

from tests.conftest import REPO, run_cli
from tests.hub.conftest import STARTER_REPO


def readme_model_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Models\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the Models section lost its example block"
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line]


def test_readme_model_examples_work_in_order(fake_hub, models_dir):
    commands = readme_model_commands()
    assert [c[:2] for c in commands] == [
        ["chatterm", "pull"],
        ["chatterm", "pull"],
        ["chatterm", "models"],
        ["chatterm", "models"],
        ["chatterm", "ask"],
        ["chatterm", "models"],
        ["chatterm", "models"],
    ]
    outputs = []
    for command in commands:
        result = run_cli(*command[1:])
        assert result.returncode == 0, (command, result.stderr)
        outputs.append(result.stdout)
    q4, q8 = f"{STARTER_REPO}:Q4_K_M", f"{STARTER_REPO}:Q8_0"
    assert f"pulled {q4}" in outputs[0] and f"pulled {q8}" in outputs[1]
    assert q4 in outputs[2] and q8 in outputs[2]
    assert "RAM estimate" in outputs[3] and "--ctx-size 2048" in outputs[3]
    assert outputs[4].strip()
    assert outputs[5].strip() == f"default model: {q4}"
    assert outputs[6].startswith(f"removed {q8}; freed 98.4 MB")
    rows = {r["name"]: r for r in json.loads(run_cli("models", "--json").stdout)}
    assert q8 not in rows and rows[q4]["default"] is True
    assert sorted(p.name for p in models_dir.rglob("*.gguf")) == [
        "SmolLM2-135M-Instruct-Q4_K_M.gguf"
    ]
