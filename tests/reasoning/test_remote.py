"""Remote engines: thinking streamed apart by the server (``reasoning_content`` /
``reasoning``) or inside ``content``, and what goes back on the next turn. A scripted
OpenAI-compatible server on 127.0.0.1 stands in for llama-server, vLLM and others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatterm.config import Endpoint
from chatterm.engine.events import ChatMessage, Finished, Token
from chatterm.engine.remote import RemoteEngine
from chatterm.sampling import SamplingSettings
from tests.conftest import run_cli
from tests.reasoning.fake_openai import FakeOpenAI, serve
from tests.remote.conftest import write_config


def _collect(engine: RemoteEngine, messages: list[ChatMessage], **settings: Any) -> Any:
    events = list(engine.generate(messages, SamplingSettings(**settings)))
    tokens = [e for e in events if isinstance(e, Token)]
    finished = events[-1]
    assert isinstance(finished, Finished)
    return tokens, finished


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_thinking_deltas_become_reasoning_tokens(field: str) -> None:
    fake = FakeOpenAI()
    fake.reply(["Let me ", "think."], ["The ", "answer."], field=field)
    with serve(fake) as url:
        engine = RemoteEngine(Endpoint("srv", url), "thinker")
        tokens, finished = _collect(engine, [ChatMessage("user", "q")])
    assert "".join(t.text for t in tokens if t.reasoning) == "Let me think."
    assert "".join(t.text for t in tokens if not t.reasoning) == "The answer."
    assert finished.stats.reasoning_tokens == 2 and not finished.stats.reasoning_open


def test_think_block_inside_content_is_split_too() -> None:
    fake = FakeOpenAI()
    fake.reply([], ["<thi", "nk>hmm</th", "ink>Yes."])
    with serve(fake) as url:
        engine = RemoteEngine(Endpoint("srv", url), "thinker")
        tokens, finished = _collect(engine, [ChatMessage("user", "q")])
    assert "".join(t.text for t in tokens if t.reasoning) == "hmm"
    assert "".join(t.text for t in tokens if not t.reasoning) == "Yes."


def test_a_stream_that_ends_while_thinking_keeps_it_marked_open() -> None:
    fake = FakeOpenAI()
    fake.finish_reason = "length"
    fake.reply(["still ", "going"], [])
    with serve(fake) as url:
        engine = RemoteEngine(Endpoint("srv", url), "thinker")
        tokens, finished = _collect(engine, [ChatMessage("user", "q")])
    assert finished.reason == "length"
    assert all(t.reasoning for t in tokens if t.text)
    assert finished.stats.reasoning_tokens == 2


def test_switch_and_earlier_thinking_reach_llama_server_but_not_others() -> None:
    history = [
        ChatMessage("user", "q"),
        ChatMessage("assistant", "A.", "thought"),
        ChatMessage("user", "q2"),
    ]
    for owner, expect_reasoning in (("llamacpp", True), ("someone", False)):
        fake = FakeOpenAI(owned_by=owner)
        with serve(fake) as url:
            engine = RemoteEngine(Endpoint("srv", url), "thinker")
            _collect(engine, history, think=False, thinking_budget=50)
        sent = fake.requests[-1]
        assert sent["chat_template_kwargs"] == {"enable_thinking": False}
        assistant = sent["messages"][1]
        assert assistant["content"] == "A."
        assert ("reasoning_content" in assistant) is expect_reasoning
        assert any("thinking_budget=50" in note for note in engine.notes)


def test_ask_through_an_endpoint_keeps_stdout_to_the_answer(chatterm_home: Path) -> None:
    fake = FakeOpenAI()
    fake.reply(["Secret ", "plan."], ["Public ", "answer."])
    fake.reply(["Secret ", "plan."], ["Public ", "answer."])
    with serve(fake) as url:
        write_config(chatterm_home, f'[endpoints.srv]\nbase_url = "{url}"\n')
        piped = run_cli("ask", "-m", "srv/thinker", "q")
        as_json = run_cli("ask", "-m", "srv/thinker", "--json", "q")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "Public answer.\n"
    assert "Secret" not in piped.stdout
    data = json.loads(as_json.stdout)
    assert (data["reasoning"], data["text"]) == ("Secret plan.", "Public answer.")
