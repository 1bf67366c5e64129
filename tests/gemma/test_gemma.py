"""ask, render, tokenize, lab sample and one chat-app exchange on Gemma 3 270M.

A base model without a chat template: chatterm must render plain text (not a chat format it
was never tuned for), say so in ``models show``, ``render`` and ``--json`` alike, and answer,
sample and chat on it like on SmolLM2.
"""

from __future__ import annotations

import json

import pytest

from chatterm import paths
from tests.conftest import TEST_THREADS, run_cli

pytestmark = pytest.mark.slow

GEMMA_VOCAB = 262_144
PROMPT = "The capital of France is"


def test_render_is_plain_text_for_a_base_model_and_says_so(gemma_path):
    result = run_cli("render", "-m", str(gemma_path), "--json", PROMPT)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["format"] == "plain" and data["text"] == PROMPT
    assert data["token_ids"][0] == 2, "Gemma wants <bos> first"
    card = json.loads(run_cli("models", "show", str(gemma_path), "--json").stdout)
    assert card["chat_format"] == "plain" and card["vocab_size"] == GEMMA_VOCAB
    assert card["architecture"] == "gemma3"


def test_tokenize_with_the_262k_vocabulary(gemma_path):
    text = "Hello <start_of_turn> wörld"
    plain = json.loads(run_cli("tokenize", "-m", str(gemma_path), "--json", text).stdout)
    special = json.loads(
        run_cli("tokenize", "-m", str(gemma_path), "--special", "--json", text).stdout
    )
    assert "".join(t["piece"] for t in plain["tokens"]) == text
    assert not any(t["special"] for t in plain["tokens"])
    marked = [t for t in special["tokens"] if t["special"]]
    assert [t["piece"] for t in marked] == ["<start_of_turn>"]
    assert max(t["id"] for t in plain["tokens"]) > 200_000, "ids from the large vocabulary"


def test_ask_answers_and_saves(gemma_path):
    args = ("ask", "-m", str(gemma_path), "--temperature", "0", "-n", "8", "--json", PROMPT)
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["text"].strip()
    again = run_cli(*args)
    assert json.loads(again.stdout)["text"] == data["text"], "greedy: the same reply twice"
    listed = json.loads(run_cli("history", "--json").stdout)
    assert len(listed) == 2


def test_lab_sample_shows_the_distribution(gemma_path):
    result = run_cli("lab", "sample", "-m", str(gemma_path), "--json", "-n", "5", PROMPT)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["vocab_size"] == GEMMA_VOCAB and data["prompt_tokens"] == 6
    probs = [c["prob"] for c in data["candidates"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1


async def test_chat_app_exchanges(gemma_path, chatterm_home):
    from chatterm.engine.llama_engine import LlamaEngine
    from chatterm.tui.factory import make_app, make_services
    from chatterm.tui.messages import ReplyFinished
    from chatterm.tui.widgets.message_view import AssistantMessage
    from tests.tui.helpers import Seen, messages_rows, send

    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[sampling]\ntemperature = 0\nmax_tokens = 12\n", encoding="utf-8")
    engine = LlamaEngine(
        gemma_path, n_ctx=1024, threads=int(TEST_THREADS) if TEST_THREADS else None
    )
    seen = Seen()
    services = make_services(engine=engine)
    try:
        app = make_app(services)
        async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
            await send(pilot, PROMPT)
            view = list(app.chat.transcript.query(AssistantMessage))[-1]
            shown = view.text
            # A second turn on the sliding-window KV cache (reused, or re-evaluated when
            # llama.cpp cannot trim it): it must answer all the same.
            await send(pilot, "And the capital of Italy is")
            second = list(app.chat.transcript.query(AssistantMessage))[-1].text
    finally:
        services.store.close()
        engine.close()
    for message in seen.of(ReplyFinished):
        assert message.finished.reason in ("stop", "length") and message.finished.error is None
    user, reply, user2, reply2 = messages_rows()
    assert user["content"] == PROMPT and reply["content"] == shown and shown.strip()
    assert reply2["content"] == second and second.strip()
