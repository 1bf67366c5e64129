"""The chat app driving a model on a real OpenAI-compatible server, as it drives a local one."""

from __future__ import annotations

from chatterm import paths
from chatterm.services import EngineOptions
from chatterm.tui.factory import make_app, make_services
from chatterm.tui.messages import ContextMeasured, ContextUnmeasured, ModelLoaded, ReplyFinished
from tests.remote.conftest import MODEL, endpoint_toml, write_config
from tests.remote.fake_server import MODEL as FAKE_MODEL
from tests.remote.fake_server import FakeServer
from tests.remote.llama_servers import MODEL as LLAMA_MODEL
from tests.remote.llama_servers import N_CTX as LLAMA_N_CTX
from tests.tui.helpers import Seen, messages_rows, send, wait_until


async def test_chat_app_talks_to_a_remote_model(remote_home, key_env):
    config = paths.config_file()
    config.write_text(
        config.read_text() + "\n[sampling]\ntemperature = 0\nmax_tokens = 12\nseed = 1\n"
    )
    seen = Seen()
    services = make_services(EngineOptions(model=f"local/{MODEL}"))
    app = make_app(services)
    try:
        async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
            await wait_until(pilot, lambda: seen.of(ModelLoaded))
            await send(pilot, "What is the capital of France?")
    finally:
        services.store.close()
    finished = seen.of(ReplyFinished)[0].finished
    assert finished.reason in ("stop", "length") and finished.error is None
    user, reply = messages_rows()
    assert user["content"] == "What is the capital of France?"
    assert reply["status"] == "complete" and reply["content"].strip()
    assert reply["model"] == f"local/{MODEL}"


async def test_a_server_that_cannot_count_tokens_is_said_once_in_the_meter(chatterm_home):
    """Servers other than llama-server have no /tokenize: the context meter says so in place,
    with the window; no failure notification when the model loads or after a reply."""
    server = FakeServer()  # owned_by "fake": an OpenAI-compatible server without /tokenize
    write_config(chatterm_home, endpoint_toml("fake", server.base_url, None))
    seen = Seen()
    services = make_services(EngineOptions(model=f"fake/{FAKE_MODEL}"))
    app = make_app(services)
    try:
        async with app.run_test(size=(140, 40), message_hook=seen.append) as pilot:
            await wait_until(pilot, lambda: seen.of(ModelLoaded))
            await send(pilot, "Say hello.")
            await wait_until(pilot, lambda: seen.of(ContextUnmeasured))
            meter = app.chat.meter
            shown = str(meter.render())
            errors = [n for n in app._notifications if n.severity == "error"]
    finally:
        services.store.close()
        server.stop()
    assert seen.of(ReplyFinished)[0].finished.error is None
    assert errors == []
    assert shown.startswith("window 4096 (configured; the server does not say)\n")
    assert "token counts unavailable: endpoint 'fake' (openai-compatible) cannot show" in shown


async def test_chat_app_on_llama_server_counts_tokens_against_its_window(real_home):
    config = paths.config_file()
    config.write_text(config.read_text() + "\n[sampling]\ntemperature = 0\nmax_tokens = 8\n")
    seen = Seen()
    services = make_services(EngineOptions(model=f"llama/{LLAMA_MODEL}"))
    app = make_app(services)
    try:
        async with app.run_test(size=(140, 40), message_hook=seen.append) as pilot:
            await wait_until(pilot, lambda: seen.of(ContextMeasured))
            await send(pilot, "What is the capital of France?")
            await wait_until(pilot, lambda: len(seen.of(ContextMeasured)) >= 2)
            errors = [n for n in app._notifications if n.severity == "error"]
    finally:
        services.store.close()
    assert errors == [] and not seen.of(ContextUnmeasured)
    measured = seen.of(ContextMeasured)[-1]
    assert measured.n_ctx == LLAMA_N_CTX  # the server's window, from /props
    assert measured.history_tokens > 0  # counted by the server's /tokenize
    user, reply = messages_rows()
    assert reply["status"] == "complete" and reply["content"].strip()
    assert reply["model"] == f"llama/{LLAMA_MODEL}"
