"""chatterm against llama.cpp's own llama-server, alone and with every layer on two RPC workers
(built from the same llama.cpp as the local engine): the same answers, tokens, prompt and
probabilities as the local engine, the server's window and statistics, the chat app and the lab.
Each test runs against both setups (the ``real_server`` fixture)."""

from __future__ import annotations

import json

import pytest

from chatterm.config import Endpoint
from chatterm.engine.events import ChatMessage, Token
from chatterm.engine.remote import RemoteEngine
from chatterm.sampling import SamplingSettings
from chatterm.store.conversations import ConversationStore
from tests.conftest import run_cli
from tests.remote.conftest import KEY_ENV
from tests.remote.llama_servers import MODEL, N_CTX
from tests.remote.test_remote_compare import _outputs

REMOTE = f"llama/{MODEL}"
QUESTION = "What is the capital of France?"
GREEDY = ("--temperature", "0", "--seed", "1")


def local_reply(starter_path, messages: list[ChatMessage], max_tokens: int) -> str:
    """The local engine's greedy reply from a fresh context, as the server's is (it runs with
    --no-cache-prompt): the same llama.cpp, template and weights give the same tokens."""
    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(starter_path, n_ctx=N_CTX, threads=1)
    try:
        settings = SamplingSettings().replace(temperature=0, seed=1, max_tokens=max_tokens)
        events = list(engine.generate(messages, settings))
    finally:
        engine.close()
    return "".join(e.text for e in events if isinstance(e, Token))


def test_ask_gives_the_local_engines_greedy_reply(real_home, starter_path):
    result = run_cli("ask", "-m", REMOTE, *GREEDY, "-n", "16", QUESTION, env=real_home)
    assert result.returncode == 0, result.stderr
    local = local_reply(starter_path, [ChatMessage("user", QUESTION)], 16)
    assert local.strip() and result.stdout == local + "\n"


def test_ask_c_continues_the_conversation_on_the_server(real_home, starter_path):
    first = run_cli("ask", "-m", REMOTE, *GREEDY, "-n", "12", "My name is Zed.", env=real_home)
    assert first.returncode == 0, first.stderr
    second = run_cli("ask", "-c", *GREEDY, "-n", "12", "What is my name?", env=real_home)
    assert second.returncode == 0, second.stderr
    with ConversationStore() as store:
        conversation = store.most_recent()
        assert conversation is not None and conversation.model == REMOTE
        path = store.active_path(conversation.id)
    assert [m.role for m in path] == ["user", "assistant", "user", "assistant"]
    history = [ChatMessage(m.role, m.content) for m in path[:3]]
    assert second.stdout == local_reply(starter_path, history, 12) + "\n"


def test_json_stats_come_from_the_server(real_home):
    result = run_cli("ask", "--json", "-m", REMOTE, *GREEDY, "-n", "8", QUESTION, env=real_home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rendered = json.loads(run_cli("render", "--json", QUESTION).stdout)
    stats = data["stats"]
    assert data["model"] == REMOTE and data["finish_reason"] == "length"
    # the server's usage report: its prompt is the one the local chat template renders
    assert stats["prompt_tokens"] == rendered["tokens"]
    assert stats["generated_tokens"] == 8
    assert stats["ttft_s"] > 0 and stats["decode_tps"] > 0


def test_probabilities_match_the_local_engine(real_home):
    args = ("--json", "--logprobs", "3", *GREEDY, "-n", "4", QUESTION)
    remote = run_cli("ask", "-m", REMOTE, *args, env=real_home)
    local = run_cli("ask", *args)
    assert remote.returncode == local.returncode == 0, remote.stderr + local.stderr
    r_tokens = json.loads(remote.stdout)["tokens"]
    l_tokens = json.loads(local.stdout)["tokens"]
    assert len(r_tokens) == len(l_tokens) == 4
    for r, loc in zip(r_tokens, l_tokens):
        assert (r["id"], r["token"]) == (loc["id"], loc["token"])
        assert r["prob"] == pytest.approx(loc["prob"], abs=2e-3)
        assert [t["id"] for t in r["top"]] == [t["id"] for t in loc["top"]]
        assert [t["prob"] for t in r["top"]] == pytest.approx(
            [t["prob"] for t in loc["top"]], abs=2e-3
        )


def test_tokenize_uses_the_servers_tokenizer(real_home):
    text = "Hello, world! 🦙 <|im_end|>"
    for special in ([], ["--special"]):
        remote = run_cli("tokenize", "--json", *special, "-m", REMOTE, text, env=real_home)
        local = run_cli("tokenize", "--json", *special, text)
        assert remote.returncode == local.returncode == 0, remote.stderr + local.stderr
        pieces = [(t["id"], t["piece"]) for t in json.loads(remote.stdout)["tokens"]]
        assert pieces == [(t["id"], t["piece"]) for t in json.loads(local.stdout)["tokens"]]


def test_render_uses_the_servers_chat_template(real_home):
    args = ("render", "--json", "-s", "Answer briefly.", QUESTION)
    remote = run_cli(*args, "-m", REMOTE, env=real_home)
    local = run_cli(*args)
    assert remote.returncode == local.returncode == 0, remote.stderr + local.stderr
    r, loc = json.loads(remote.stdout), json.loads(local.stdout)
    assert r["text"] == loc["text"] and "Answer briefly." in r["text"]
    assert r["token_ids"] == loc["token_ids"]


def test_the_context_window_is_the_servers(real_home, real_server, monkeypatch):
    monkeypatch.setenv("CHATTERM_CTX_SIZE", "4096")  # the configured window does not count
    engine = RemoteEngine(Endpoint("llama", real_server.base_url, KEY_ENV), MODEL, n_ctx=4096)
    try:
        assert (engine.n_ctx, engine.n_ctx_known, engine.kind.name) == (
            N_CTX,
            True,
            "llama-server",
        )
    finally:
        engine.close()
    result = run_cli("render", "--json", "-m", REMOTE, QUESTION, env=real_home)
    assert json.loads(result.stdout)["n_ctx"] == N_CTX


def test_a_wrong_key_is_one_line_and_never_shown(real_home, real_server):
    result = run_cli("ask", "-m", REMOTE, "hi", env={KEY_ENV: "not-the-key"})
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.startswith(
        f"chatterm: error: endpoint 'llama' refused the API key in ${KEY_ENV} (401"
    )
    assert result.stderr.count("\n") == 1
    assert real_server.api_key not in result.stderr and "not-the-key" not in result.stderr


def test_lab_compare_puts_local_and_remote_side_by_side(real_home):
    args = ("lab", "compare", *GREEDY, "--max-tokens", "12", "--no-save")
    variants = ("--variant", "model=smollm2-135m-instruct", "--variant", f"model={REMOTE}")
    result = run_cli(*args, "--json", *variants, QUESTION, env=real_home)
    assert result.returncode == 0, result.stderr
    texts = [run["text"] for run in _outputs(json.loads(result.stdout))]
    assert len(texts) == 2 and texts[0].strip() and texts[0] == texts[1]
    table = run_cli(*args, *variants, QUESTION, env=real_home)
    assert (
        table.returncode == 0 and REMOTE in table.stdout and "smollm2-135m-instruct" in table.stdout
    )
