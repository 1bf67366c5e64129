"""A small OpenAI-compatible server on 127.0.0.1 that answers byte by byte as a test scripts it,
for the stream quirks real servers show (split reads, CRLF, keep-alives, no ``[DONE]``, a held
connection, HTML with status 200, a slow-loris drip…). Raw sockets rather than an HTTP
framework, so every byte, pause and close is the test's choice.

``GET /v1/models`` answers ``models`` (a JSON value, so malformed listings can be served too);
``POST /v1/chat/completions`` runs ``server.chat(send, request)``, a function that writes the
answer with ``send(bytes)`` and may sleep between writes. Every request is recorded.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MODEL = "fake-model"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Send = Callable[[bytes], None]
Script = Callable[[Send, Request], None]


def head(status: int = 200, content_type: str = "text/event-stream", **extra: str) -> bytes:
    """A response head for a body that runs until the connection closes."""
    reason = {200: "OK", 401: "Unauthorized", 500: "Internal Server Error"}.get(status, "X")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", "Connection: close"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def whole(status: int, body: bytes, content_type: str = "application/json", **extra: str) -> bytes:
    """A complete response with a Content-Length."""
    return head(status, content_type, Content_Length=str(len(body)), **extra) + body


def chunk(
    content: str | None = None,
    *,
    finish: str | None = None,
    reasoning: str | None = None,
    logprob: float | None = None,
    usage: dict[str, int] | None = None,
    choices: bool = True,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` as OpenAI documents it."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    if logprob is not None:
        entry = {"token": content, "logprob": logprob, "top_logprobs": []}
        choice["logprobs"] = {"content": [entry]}
    data: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [choice] if choices else [],
    }
    if usage is not None:
        data["usage"] = usage
    return data


def sse(*events: Any, done: bool = True, eol: str = "\n") -> bytes:
    """Events as ``data:`` lines (a dict is JSON-encoded), each followed by a blank line."""
    out = []
    for event in events:
        text = event if isinstance(event, str) else json.dumps(event)
        out.append(f"data: {text}{eol}{eol}")
    if done:
        out.append(f"data: [DONE]{eol}{eol}")
    return "".join(out).encode()


def answer(*pieces: str, finish: str = "stop") -> list[dict[str, Any]]:
    """Chunks for a reply of these pieces, the last one carrying the finish reason."""
    chunks = [chunk(p) for p in pieces]
    chunks.append(chunk(finish=finish))
    return chunks


def stream(*parts: bytes, pause: float = 0.0) -> Script:
    """A script that sends the SSE head, then each part (pausing between), then closes."""

    def script(send: Send, request: Request) -> None:
        send(head())
        for part in parts:
            send(part)
            if pause:
                time.sleep(pause)

    return script


@dataclass
class FakeServer:
    models: Any = field(default_factory=lambda: {"data": [{"id": MODEL, "owned_by": "fake"}]})
    chat: Script = field(default_factory=lambda: stream(sse(*answer("Hello", " there."))))
    requests: list[Request] = field(default_factory=list)
    routes: dict[str, Script] = field(default_factory=dict)  # other paths, e.g. a redirect
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def chats(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def hold(self) -> None:
        """Keep the connection open, silent, until the server stops (or the client leaves)."""
        self.stopping.wait(120)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            request = _read_request(conn)
            if request is None:
                return
            self.requests.append(request)
            path = request.path.split("?")[0]
            if path in self.routes:
                self.routes[path](conn.sendall, request)
            elif path.endswith("/models") and request.method == "GET":
                body = json.dumps(self.models).encode()
                conn.sendall(whole(200, body))
            elif path.endswith("/chat/completions") and request.method == "POST":
                self.chat(conn.sendall, request)
            else:
                conn.sendall(whole(404, b'{"error": {"message": "no such route"}}'))
        except OSError:
            pass  # the client went away
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(5)
        self._sock.close()


def _read_request(conn: socket.socket) -> Request | None:
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return None
        data += more
    header_block, _, body = data.partition(b"\r\n\r\n")
    first, *lines = header_block.decode("latin-1").split("\r\n")
    method, path, _ = first.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            break
        body += more
    conn.settimeout(None)
    return Request(method, path, headers, body)


def drip(data: bytes, every: float) -> Script:
    """A slow-loris: the SSE head, then ``data`` one byte at a time, ``every`` seconds apart."""

    def script(send: Send, request: Request) -> None:
        send(head())
        for i in range(len(data)):
            send(data[i : i + 1])
            time.sleep(every)

    return script


def pieces(parts: Iterable[bytes], pause: float) -> Script:
    return stream(*parts, pause=pause)
