"""`chatterm lab compare` with a remote model as one of its variants, against a real server."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.remote.conftest import MODEL


def test_compare_runs_a_remote_variant_beside_the_local_model(remote_home, key_env):
    result = run_cli(
        "lab", "compare", "--json", "--seed", "1", "--max-tokens", "12", "--temperature", "0",
        "--variant", "model=smollm2-135m-instruct", "--variant", f"model=local/{MODEL}",
        "What is the capital of France?",
        env=key_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    text = json.dumps(data)
    assert f"local/{MODEL}" in text
    replies = [o["text"] for o in _outputs(data)]
    assert len(replies) == 2 and all(r.strip() for r in replies)
    # greedy on the same llama.cpp from a fresh context: the same reply locally and remotely
    assert replies[0] == replies[1]


def _outputs(data):
    """Each variant's outputs, whatever the nesting of the JSON (variants → runs → output)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "text" in node and "stats" in node:
                found.append(node)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    return found
