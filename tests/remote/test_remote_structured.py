"""A schema reaches a real OpenAI-compatible server as ``response_format`` and shapes its reply."""

from __future__ import annotations

from chatterm import structured
from chatterm.config import Endpoint
from chatterm.engine.events import ChatMessage, Finished, Token
from chatterm.engine.remote import RemoteEngine
from chatterm.sampling import SamplingSettings
from tests.remote.conftest import KEY_ENV, MODEL

SCHEMA = structured.canonical(structured.concise_schema("name, age int"))


def test_the_server_constrains_the_reply_to_the_schema(llama_server, key_env) -> None:
    engine = RemoteEngine(Endpoint("local", llama_server.base_url, KEY_ENV), MODEL, n_ctx=2048)
    try:
        settings = SamplingSettings(temperature=0, seed=1, max_tokens=60, schema=SCHEMA)
        body, _ = engine.request_body([ChatMessage("user", "Bob, 41?")], settings, 0)
        assert body["response_format"]["type"] == "json_object"  # llama-cpp-python's form
        events = list(engine.generate([ChatMessage("user", "Describe Bob, who is 41.")], settings))
    finally:
        engine.close()
    assert isinstance(events[-1], Finished) and events[-1].error is None
    text = "".join(e.text for e in events if isinstance(e, Token))
    assert set(structured.validate_reply(text, SCHEMA)) == {"name", "age"}
