"""The remote engine against a real OpenAI-compatible server (llama-cpp-python's)."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from chatterm.config import Endpoint, load_config
from chatterm.engine.events import ChatMessage, Finished, PromptReady, Token
from chatterm.engine.remote import KINDS, RemoteEngine, RemoteFeatureError, list_remote_models
from chatterm.errors import ModelError
from chatterm.sampling import SamplingSettings
from tests.remote.conftest import KEY_ENV, MODEL

QUESTION = [ChatMessage("user", "What is the capital of France?")]
STORY = [ChatMessage("user", "Write a long story about a dragon.")]  # greedy: loops for long
GREEDY = SamplingSettings(temperature=0, seed=1, max_tokens=8)


@pytest.fixture
def engine(llama_server, key_env):
    engine = RemoteEngine(Endpoint("local", llama_server.base_url, KEY_ENV), MODEL, n_ctx=2048)
    yield engine
    engine.close()


def test_imports_no_http_client_until_used():
    code = "import chatterm.engine.remote, sys; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert not loaded & {"httpx", "httpx2", "textual", "rich", "llama_cpp"}


def test_events_follow_the_engine_contract(engine):
    events = list(engine.generate(QUESTION, GREEDY))
    assert isinstance(events[0], PromptReady)
    assert all(isinstance(e, Token) for e in events[1:-1])
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.reason == "length"
    assert finished.stats.generated_tokens == len(events) - 2 == 8
    assert finished.stats.ttft_s > 0
    assert engine.kind.name == "llama-cpp-python"


def test_probabilities_through_the_api_match_the_local_engine(engine, starter_path):
    from chatterm.engine.llama_engine import LlamaEngine

    settings = GREEDY.replace(max_tokens=4)  # the server ranks the whole vocabulary in Python
    remote = [e for e in engine.generate(QUESTION, settings, top_logprobs=3)]
    remote = [e for e in remote if isinstance(e, Token)]
    # A fresh local context like the server's: a long-reused KV cache drifts the logits slightly.
    fresh = LlamaEngine(starter_path, n_ctx=2048)
    try:
        local = list(fresh.generate(QUESTION, settings, top_logprobs=3))
    finally:
        fresh.close()
    local = [e for e in local if isinstance(e, Token) and e.token_id >= 0]
    assert [t.text for t in remote] == [t.text for t in local]
    for r, loc in zip(remote, local):
        assert r.prob == pytest.approx(loc.prob, abs=1e-3)
        assert [c.piece for c in r.top] == [c.piece for c in loc.top]
        assert [c.prob for c in r.top] == pytest.approx([c.prob for c in loc.top], abs=1e-3)
        assert r.top[0].prob == pytest.approx(r.prob)  # greedy picks the likeliest
    assert len(remote) == 4


def test_cancel_stops_the_stream_and_keeps_the_partial_reply(engine, llama_server):
    disconnects = llama_server.disconnects()
    cancel = threading.Event()
    texts = []
    settings = SamplingSettings(temperature=0, max_tokens=1000)
    for event in engine.generate(STORY, settings, cancel=cancel):
        if isinstance(event, Token):
            texts.append(event.text)
            if len(texts) == 3:
                cancel.set()
        elif isinstance(event, Finished):
            finished = event
    assert finished.reason == "cancelled" and finished.error is None
    # Every token read before the cancel is shown and counted: 3, or 4 when the 4th had been
    # read but held back because its text ended like the start of the API key (KeyFilter).
    assert len(texts) in (3, 4) and finished.stats.generated_tokens == len(texts)
    llama_server.wait_for_disconnect(disconnects)  # the server stopped generating
    assert list(engine.generate(QUESTION, GREEDY))[-1].reason == "length"


def test_closing_the_generator_mid_stream_leaves_the_engine_usable(engine, llama_server):
    disconnects = llama_server.disconnects()
    stream = engine.generate(STORY, SamplingSettings(temperature=0, max_tokens=1000))
    assert isinstance(next(stream), PromptReady)
    assert isinstance(next(stream), Token)
    stream.close()
    llama_server.wait_for_disconnect(disconnects)
    assert list(engine.generate(QUESTION, GREEDY))[-1].reason == "length"


def test_settings_a_server_ignores_are_reported_once(engine):
    engine.kind = KINDS["ollama"]  # Ollama's /v1 API drops top_k, min_p and repeat_penalty
    settings = GREEDY.replace(top_k=40, min_p=0.0, repeat_penalty=1.1)
    body, unapplied = engine.request_body(QUESTION, settings, 0)
    assert not {"top_k", "min_p", "repeat_penalty"} & set(body)
    assert list(engine.generate(QUESTION, settings))[-1].reason == "length"
    (note,) = engine.pop_notes()
    assert "top_k=40" in note and "repeat_penalty=1.1" in note and "min_p" not in note
    list(engine.generate(QUESTION, settings))
    assert engine.pop_notes() == []


def test_tokens_and_prompt_are_a_clear_error_where_the_server_cannot_show_them(engine):
    with pytest.raises(RemoteFeatureError, match="cannot show tokens.*llama-server"):
        engine.tokenize("hello")
    with pytest.raises(RemoteFeatureError, match="cannot show the rendered prompt"):
        engine.render(QUESTION)


@pytest.mark.parametrize(
    ("key_env_name", "key", "message"),
    [
        (KEY_ENV, "wrong-key", rf"refused the API key in \${KEY_ENV} \(401"),
        (KEY_ENV, None, rf"\${KEY_ENV}, which is not set"),
        (None, None, r"needs an API key \(401.*api_key_env"),
    ],
)
def test_api_key_problems_are_one_line_model_errors(
    llama_server, monkeypatch, key_env_name, key, message
):
    if key is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, key)
    with pytest.raises(ModelError, match=message) as info:
        RemoteEngine(Endpoint("local", llama_server.base_url, key_env_name), MODEL)
    assert "\n" not in str(info.value)
    assert llama_server.api_key not in str(info.value)


def test_models_are_listed_per_endpoint_with_reasons_for_failures(remote_home):
    errors: dict[str, str] = {}
    listing = list_remote_models(load_config(), errors=errors)
    assert listing == {"local": [MODEL], "down": []}
    assert list(errors) == ["down"] and "cannot reach endpoint 'down'" in errors["down"]


def test_a_missing_http_client_says_how_to_install_it():
    code = (
        "import sys\n"
        "sys.modules['httpx2'] = sys.modules['httpx'] = None  # as if neither were installed\n"
        "from chatterm.config import Endpoint\n"
        "from chatterm.engine.remote import RemoteEngine\n"
        "from chatterm.errors import ModelError\n"
        "try:\n"
        "    RemoteEngine(Endpoint('gpu', 'http://127.0.0.1:9/v1'), 'm')\n"
        "except ModelError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "remote endpoints need an HTTP client: pip install 'chatterm[remote]'\n"
