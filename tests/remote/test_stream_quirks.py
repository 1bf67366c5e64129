"""Every way a server strays from a clean event stream, each against a fake server that sends
exactly those bytes: the remote engine either reads the whole answer or ends it with one line
saying what went wrong, keeping what arrived."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from chatterm.config import Endpoint
from chatterm.engine.events import ChatMessage, Finished, Token
from chatterm.engine.remote import RemoteEngine
from chatterm.errors import ModelError
from chatterm.sampling import SamplingSettings
from tests.remote.fake_server import (
    MODEL,
    FakeServer,
    Request,
    Send,
    answer,
    chunk,
    drip,
    head,
    sse,
    stream,
    whole,
)

QUESTION = [ChatMessage("user", "Say hello.")]
SETTINGS = SamplingSettings(temperature=0, seed=1, max_tokens=50)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.stop()


def connect(fake: FakeServer, **endpoint: float) -> RemoteEngine:
    return RemoteEngine(Endpoint("fake", fake.base_url, **endpoint), MODEL)


def run(engine: RemoteEngine, settings: SamplingSettings = SETTINGS) -> tuple[str, Finished]:
    try:
        events = list(engine.generate(QUESTION, settings))
    finally:
        engine.close()
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert all(isinstance(e, Token) for e in events[1:-1])
    return "".join(e.text for e in events if isinstance(e, Token)), finished


def test_a_clean_stream_is_read_whole(fake):
    text, finished = run(connect(fake))
    assert (text, finished.reason, finished.error) == ("Hello there.", "stop", None)
    assert fake.chats()[0].json()["stream"] is True


def test_the_finish_chunk_ends_the_answer_without_done_or_close(fake):
    def script(send: Send, request: Request) -> None:
        send(head() + sse(*answer("Hello", " there."), done=False))
        fake.hold()  # neither [DONE] nor a closed connection

    fake.chat = script
    # timeout is what the answer would wait for if the finish chunk did not end it
    text, finished = run(connect(fake, timeout=600))
    assert (text, finished.reason, finished.error) == ("Hello there.", "stop", None)


def test_a_usage_chunk_after_the_finish_chunk_is_still_read(fake):
    usage = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}

    def script(send: Send, request: Request) -> None:
        send(head() + sse(*answer("Hello", " there."), done=False))
        time.sleep(0.3)  # the usage report comes a moment later, and no [DONE] after it
        send(sse(chunk(usage=usage, choices=False), done=False))
        fake.hold()

    fake.chat = script
    text, finished = run(connect(fake, timeout=600))
    assert text == "Hello there." and finished.reason == "stop"
    assert (finished.stats.prompt_tokens, finished.stats.generated_tokens) == (11, 2)


def test_a_usage_only_final_chunk_gives_the_token_counts(fake):
    usage = {"prompt_tokens": 21, "completion_tokens": 2, "prompt_tokens_details": None}
    fake.chat = stream(sse(*answer("Hi", "!"), chunk(usage=usage, choices=False)))
    text, finished = run(connect(fake))
    assert text == "Hi!"
    assert (finished.stats.prompt_tokens, finished.stats.generated_tokens) == (21, 2)


def test_a_server_ignoring_stream_true_answers_with_one_json_body(fake):
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello in one piece."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5},
    }
    fake.chat = lambda send, request: send(whole(200, json.dumps(body).encode()))
    text, finished = run(connect(fake))
    assert (text, finished.reason, finished.error) == ("Hello in one piece.", "stop", None)
    assert finished.stats.generated_tokens == 5


def test_sse_comments_keep_alives_and_other_fields_are_skipped(fake):
    events = answer("Hello", " there.")
    body = (
        b": this stream is served by a fake\n\n"
        b":\n\n"  # llama-server's keep-alive while it waits
        + sse(events[0], done=False)
        + b": ping\n\nevent: message\nid: 7\nretry: 1000\n"
        + sse(*events[1:])
    )
    fake.chat = stream(body)
    text, finished = run(connect(fake))
    assert (text, finished.reason) == ("Hello there.", "stop")


def test_data_lines_split_across_reads_are_joined(fake):
    body = sse(*answer("Grüße ", "🦙", " and €."))
    parts = [body[i : i + 3] for i in range(0, len(body), 3)]  # splits inside characters too
    fake.chat = stream(*parts, pause=0.002)
    text, finished = run(connect(fake))
    assert (text, finished.reason) == ("Grüße 🦙 and €.", "stop")


@pytest.mark.parametrize("eol", ["\r\n", "\r"])
def test_crlf_and_cr_line_ends(fake, eol):
    fake.chat = stream(sse(*answer("one", " two"), eol=eol))
    text, finished = run(connect(fake))
    assert (text, finished.reason) == ("one two", "stop")


def test_events_without_blank_lines_between_them(fake):
    body = "".join(f"data: {json.dumps(c)}\n" for c in answer("a", "b")) + "data: [DONE]\n"
    fake.chat = stream(body.encode())
    text, finished = run(connect(fake))
    assert (text, finished.reason) == ("ab", "stop")


@pytest.mark.parametrize(
    "error_event",
    [
        sse({"error": {"message": "the model crashed", "type": "server_error"}}, done=False),
        b'event: error\ndata: {"message": "the model crashed"}\n\n',
    ],
    ids=["error-object", "error-event"],
)
def test_an_error_in_the_middle_of_a_stream_keeps_the_partial_answer(fake, error_event):
    fake.chat = stream(sse(chunk("Hello"), chunk(" wor"), done=False) + error_event)
    text, finished = run(connect(fake))
    assert text == "Hello wor"
    assert finished.reason == "error"
    assert finished.error == "endpoint 'fake': the model crashed"


def test_a_307_redirect_is_followed_and_reported_once(fake):
    def moved(send: Send, request: Request) -> None:
        send(whole(307, b"", "text/plain", Location="/v2/chat/completions"))

    fake.routes["/v1/chat/completions"] = moved
    fake.routes["/v2/chat/completions"] = fake.chat
    engine = connect(fake)
    try:
        text, finished = run(engine)
        assert (text, finished.reason) == ("Hello there.", "stop")
        (note,) = engine.pop_notes()
    finally:
        engine.close()
    assert note == (
        f"endpoint 'fake' redirects to http://127.0.0.1:{fake.port}/v2/chat/completions; "
        "set its base_url to that address to save a round trip"
    )
    assert fake.requests[-1].method == "POST" and fake.requests[-1].json()["messages"]


def test_a_redirect_that_would_drop_the_request_body_is_an_error(fake):
    def moved(send: Send, request: Request) -> None:
        send(whole(301, b"", "text/plain", Location="/v2/chat/completions"))

    fake.routes["/v1/chat/completions"] = moved
    text, finished = run(connect(fake))
    assert text == "" and finished.reason == "error"
    assert finished.error == (
        f"endpoint 'fake' redirects requests to http://127.0.0.1:{fake.port}"
        "/v2/chat/completions (HTTP 301), which would turn the POST into a GET; set its "
        "base_url to the new address"
    )


def test_an_html_page_with_status_200_is_an_error_naming_it(fake):
    page = b"<!DOCTYPE html><html><head><title>Sign in - Corp Proxy</title></head></html>"
    fake.chat = lambda send, request: send(whole(200, page, "text/html; charset=utf-8"))
    text, finished = run(connect(fake))
    assert text == "" and finished.reason == "error"
    assert finished.error == (
        "endpoint 'fake' answered with an HTML page (Sign in - Corp Proxy) instead of an "
        "event stream; check its base_url (a proxy or login page?)"
    )


def test_an_html_page_sent_as_an_event_stream_is_recognised_too(fake):
    def script(send: Send, request: Request) -> None:
        send(head() + b"<html>\n<head><title>502 Bad Gateway</title></head>\n")
        fake.hold()  # the page is named without waiting for the connection to close

    fake.chat = script
    _, finished = run(connect(fake))
    assert finished.error is not None and "an HTML page (502 Bad Gateway)" in finished.error


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"choices": 5}, '"choices" is the number 5, not a list'),
        ({"choices": [{"index": 0, "delta": "abc"}]}, "\"delta\" is the string 'abc'"),
        ({"choices": [{"index": 0, "delta": {"content": 5}}]}, '"content" is the number 5'),
        (
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": "x"},
                        "logprobs": {"content": [{"token": "x", "logprob": 1000}]},
                    }
                ]
            },
            '"logprob" is 1000, not a log-probability',
        ),
        ({"choices": ["x"]}, "a choice is the string 'x', not an object"),
        ([1, 2], "the event is a list, not an object"),
    ],
)
def test_a_malformed_chunk_ends_the_answer_with_one_line(fake, event, says):
    fake.chat = stream(sse(chunk("Kept"), event))
    text, finished = run(connect(fake))
    assert text == "Kept" and finished.reason == "error"
    assert finished.error is not None and "\n" not in finished.error
    assert finished.error.startswith("endpoint 'fake' sent a malformed chunk (")
    assert says in finished.error


def test_a_server_ignoring_max_tokens_is_cut_at_the_limit(fake):
    def endless(send: Send, request: Request) -> None:
        send(head())
        while not fake.stopping.is_set():
            send(sse(chunk("word "), done=False))
            time.sleep(0.01)

    fake.chat = endless
    engine = connect(fake)
    try:
        text, finished = run(engine, SETTINGS.replace(max_tokens=5))
        (note,) = engine.pop_notes()
    finally:
        engine.close()
    assert text == "word " * 5
    assert finished.reason == "length" and finished.stats.generated_tokens == 5
    assert "ignores max_tokens" in note


def test_a_slow_loris_server_times_out_on_the_missing_line(fake):
    fake.chat = drip(sse(chunk("Hello")) * 50, every=0.1)  # bytes keep coming, lines do not
    text, finished = run(connect(fake, timeout=1))
    assert finished.reason == "error"
    assert finished.error == (
        "endpoint 'fake' sent no complete line for 1 s; for a slow server raise timeout under "
        "[endpoints.fake] in config.toml"
    )


def test_an_answer_past_its_deadline_is_cut(fake):
    def keepalives(send: Send, request: Request) -> None:
        send(head() + sse(chunk("Hello"), done=False))
        while not fake.stopping.is_set():
            send(b":\n\n")
            time.sleep(0.1)

    fake.chat = keepalives
    text, finished = run(connect(fake, timeout=60, answer_timeout=1.5))
    assert text == "Hello" and finished.reason == "error"
    assert finished.error == (
        "endpoint 'fake' did not finish the answer within 1.5 s; for longer answers raise "
        "answer_timeout under [endpoints.fake] in config.toml"
    )


def test_a_slow_loris_model_list_is_cut_at_its_deadline(fake):
    body = json.dumps(fake.models).encode()

    def slow(send: Send, request: Request) -> None:
        send(head(200, "application/json", Content_Length=str(len(body))))
        for i in range(len(body)):
            send(body[i : i + 1])
            time.sleep(0.1)

    fake.routes["/v1/models"] = slow
    with pytest.raises(ModelError) as info:
        connect(fake, timeout=1)
    assert str(info.value) == f"endpoint 'fake' did not send {fake.base_url}/models within 1 s"
