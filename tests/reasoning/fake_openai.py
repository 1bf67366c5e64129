"""A scripted OpenAI-compatible server on 127.0.0.1 that streams thinking the way llama-server,
vLLM and DeepSeek's API do: ``reasoning_content`` deltas first, then ``content`` deltas. It
records every request body so tests can see what chatterm sent back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, owned_by: str = "llamacpp") -> None:
        self.owned_by = owned_by
        self.requests: list[dict[str, Any]] = []
        self.script: list[list[dict[str, Any]]] = []  # per request: the deltas to stream
        self.field = "reasoning_content"
        self.finish_reason = "stop"

    def reply(self, thinking: list[str], answer: list[str], field: str | None = None) -> None:
        deltas = [{field or self.field: t} for t in thinking] + [{"content": a} for a in answer]
        self.script.append(deltas)


@contextmanager
def serve(fake: FakeOpenAI) -> Iterator[str]:
    """Run ``fake`` on a free port; yields its ``/v1`` base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, data: Any, status: int = 200) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                self._json({"data": [{"id": "thinker", "owned_by": fake.owned_by}]})
            elif self.path == "/props":
                self._json({"default_generation_settings": {"n_ctx": 4096}})
            else:
                self._json({"error": "not found"}, 404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.requests.append(body)
            deltas = fake.script.pop(0) if fake.script else [{"content": "ok"}]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for delta in deltas:
                chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": fake.finish_reason}]}
            self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
