"""The other issues' remote cases on llama.cpp's own llama-server: a schema sent as
``response_format``, and a reasoning model's thinking as llama-server's ``--reasoning-format``
separates it (``reasoning_content``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.reasoning.ggufs import R1_STYLE_TEMPLATE, copy_with_template
from tests.remote.conftest import KEY_ENV, MODEL, _key, _started, endpoint_toml, write_config
from tests.remote.llama_servers import LlamaServer, start_llama_server


@pytest.fixture(scope="module")
def reasoning_server(
    starter_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """llama-server on SmolLM2 with a DeepSeek-R1-style template (every reply starts inside
    ``<think>``), parsing thinking out as DeepSeek's API does."""
    folder = tmp_path_factory.mktemp("r1-server")
    model = copy_with_template(starter_path, folder / "smollm2-r1.gguf", R1_STYLE_TEMPLATE)
    server = _started(
        lambda: start_llama_server(
            model,
            folder / "server.log",
            api_key=_key(),
            extra=("--jinja", "--reasoning-format", "deepseek"),
        )
    )
    yield server
    server.stop()


def _home(home: Path, server: LlamaServer) -> dict[str, str]:
    assert server.api_key
    write_config(home, endpoint_toml("llama", server.base_url) + "timeout = 120\n")
    return {KEY_ENV: server.api_key, "CHATTERM_HOME": str(home)}


def test_a_schema_reaches_llama_server_as_response_format(chatterm_home, llama_cpp_server):
    env = _home(chatterm_home, llama_cpp_server)
    done = run_cli(
        "ask", "-m", f"llama/{MODEL}", "--schema", "name, age int", "--temperature", "0",
        "-n", "60", "--json", "Describe Bob, who is 41.", env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["schema_valid"] is True
    assert set(reply["data"]) == {"name", "age"}


def test_llama_servers_reasoning_output_is_kept_apart(chatterm_home, reasoning_server):
    env = _home(chatterm_home, reasoning_server)
    done = run_cli(
        "ask", "-m", f"llama/{MODEL}", "--temperature", "0", "-n", "24", "--json",
        "Why is the sky blue?", env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    # SmolLM2 never closes the block the template opened: everything it wrote is thinking,
    # which the server sent as reasoning_content and chatterm kept apart from the answer.
    assert reply["reasoning"].strip()
    assert "<think>" not in reply["text"]
    assert reply["stats"]["reasoning_tokens"] > 0
