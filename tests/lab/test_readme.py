"""The README's lab examples, run verbatim, so they stay true."""

from __future__ import annotations

import json
import re
import shlex

from tests.conftest import REPO, run_cli


def readme_lab_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## The lab\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the lab section lost its example block"
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line]


def test_readme_lab_examples_work():
    commands = readme_lab_commands()
    assert [c[1] for c in commands] == [
        "tokenize",
        "tokenize",
        "ask",
        "lab",
        "lab",
        "lab",
        "lab",
        "lab",
        "lab",
    ]
    outputs = []
    for command in commands:
        result = run_cli(*command[1:])
        assert result.returncode == 0, (command, result.stderr)
        outputs.append(result.stdout)
    assert outputs[0].splitlines()[-1] == "7 tokens"
    assert json.loads(outputs[1])["tokens"][0] == {
        "id": 1,
        "piece": "<|im_start|>",
        "special": True,
        "byte_fallback": False,
    }
    assert len(json.loads(outputs[2])["tokens"][0]["top"]) == 3
    assert "can be sampled" in outputs[3] and "can be sampled" in outputs[4]
    assert '" Paris"' in outputs[5]
    assert "| persona=teacher | 7 |" in outputs[6] and "| template=eli5 | 7 |" in outputs[6]
    assert "1.2,top_k=5: " in outputs[7] and "distinct of 3 replies" in outputs[7]
    listed = outputs[8].splitlines()
    assert len(listed) == 2  # both comparisons were saved
    newest = listed[0].split("\t")[0]
    assert run_cli("lab", "experiments", "show", newest).returncode == 0
    rerun = run_cli("lab", "experiments", "rerun", newest)
    assert rerun.returncode == 0, rerun.stderr
    assert "6 of 6 replies are identical" in rerun.stderr
