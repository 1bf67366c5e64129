"""HTTP for the remote engine: the client (httpx2, or httpx on Python 3.10, imported only when
a remote model is used), one-line messages for every failure, ``/models`` listings, and the
streamed request read on a helper thread so that stopping never waits on the network.

Why httpx2 rather than the ``openai`` SDK: it is already installed with huggingface-hub and we
need only plain streaming POSTs; the SDK would add pydantic models that hide the non-standard
fields these servers send (llama-server's ``timings``, vLLM's ``max_model_len``), retries with
backoff that turn "server down" into a long wait, and about half a second of imports.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import queue
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chatterm import __version__
from chatterm.config import Config, Endpoint
from chatterm.errors import ModelError

CONNECT_TIMEOUT = 5.0
LIST_TIMEOUT = 3.0
POLL_S = 0.05  # how often a waiting consumer looks at its cancel event
INSTALL_HINT = "pip install 'chatterm[remote]'"


def httpx_module() -> Any:
    """The HTTP client module; a missing one is a one-line error that says how to install it."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ModelError(f"remote endpoints need an HTTP client: {INSTALL_HINT}")


def api_key(endpoint: Endpoint) -> str | None:
    """The key from the environment variable the endpoint names (never from config.toml)."""
    if not endpoint.api_key_env:
        return None
    value = os.environ.get(endpoint.api_key_env, "").strip()
    if not value:
        raise ModelError(
            f"endpoint {endpoint.name!r} reads its API key from ${endpoint.api_key_env}, "
            "which is not set"
        )
    return value


def make_client(endpoint: Endpoint, read_timeout: float) -> Any:
    httpx = httpx_module()
    headers = {"User-Agent": f"chatterm/{__version__}", "Accept": "application/json"}
    key = api_key(endpoint)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.Client(
        headers=headers, timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT)
    )


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_detail(body: bytes | str) -> str:
    """The server's own words from an error body: OpenAI's ``{"error": {"message"}}``,
    Ollama's ``{"error": "…"}``, FastAPI's ``{"detail": …}``, else the text itself."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return _one_line(text) or "no details"
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("msg") or value
            if isinstance(value, list):  # FastAPI validation errors
                value = "; ".join(
                    f"{'.'.join(map(str, v.get('loc', [])))}: {v.get('msg', v)}"
                    if isinstance(v, dict)
                    else str(v)
                    for v in value
                )
            if value:
                return _one_line(str(value))
    return _one_line(text)


def http_error(endpoint: Endpoint, model: str, status: int, detail: str) -> str:
    """A one-line message for an HTTP error status, saying what to do about it."""
    name = endpoint.name
    if status in (401, 403):
        if endpoint.api_key_env:
            return (
                f"endpoint {name!r} refused the API key in ${endpoint.api_key_env} "
                f"({status}: {detail})"
            )
        return (
            f"endpoint {name!r} needs an API key ({status}: {detail}); set api_key_env under "
            f"[endpoints.{name}] in config.toml to the name of a variable holding it"
        )
    if status == 404:
        return (
            f"endpoint {name!r} answered 404 for model {model!r} ({detail}); check the name "
            "with `chatterm models` and that base_url ends in /v1"
        )
    if status >= 500:
        return f"endpoint {name!r} failed with HTTP {status} ({detail})"
    return f"endpoint {name!r} refused the request with HTTP {status} ({detail})"


def transport_error(endpoint: Endpoint, exc: BaseException, *, mid_answer: bool) -> str:
    """A one-line message for a failed connection, timeout or broken stream."""
    httpx = httpx_module()
    name, url = endpoint.name, endpoint.base_url
    reason = _one_line(str(exc) or type(exc).__name__, 120)
    if isinstance(exc, httpx.ConnectTimeout):
        return (
            f"endpoint {name!r} at {url} did not accept a connection within {CONNECT_TIMEOUT:g} s"
        )
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach endpoint {name!r} at {url} ({reason}); is the server running?"
    if isinstance(exc, httpx.TimeoutException):
        return (
            f"endpoint {name!r} sent nothing for {endpoint.timeout:g} s; for a slow server raise "
            f"timeout under [endpoints.{name}] in config.toml"
        )
    if mid_answer:
        return f"the connection to endpoint {name!r} broke mid-answer ({reason})"
    return f"request to endpoint {name!r} at {url} failed ({reason})"


def get_json(client: Any, endpoint: Endpoint, url: str, timeout: float) -> Any:
    """GET ``url`` and decode JSON, turning every failure into a one-line :class:`ModelError`."""
    httpx = httpx_module()
    try:
        response = client.get(url, timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT))
    except httpx.HTTPError as exc:
        raise ModelError(transport_error(endpoint, exc, mid_answer=False)) from None
    if response.status_code == 404:
        raise ModelError(
            f"endpoint {endpoint.name!r} has no {url} (404); does base_url end in /v1?"
        )
    if response.status_code != 200:
        detail = error_detail(response.content)
        raise ModelError(http_error(endpoint, "", response.status_code, detail))
    try:
        return response.json()
    except ValueError:
        raise ModelError(f"endpoint {endpoint.name!r} sent a non-JSON answer for {url}") from None


def model_entries(data: Any) -> list[dict[str, Any]]:
    entries = data.get("data") if isinstance(data, dict) else None
    return [e for e in entries or [] if isinstance(e, dict) and "id" in e]


def list_remote_models(
    config: Config,
    *,
    timeout: float = LIST_TIMEOUT,
    errors: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """Model ids each configured endpoint serves (``/v1/models``), asked in parallel with a
    short timeout. Use them as ``ENDPOINT/ID``. An endpoint that cannot be listed maps to an
    empty list, and its one-line reason goes into ``errors`` when a dict is given.
    """

    def one(endpoint: Endpoint) -> tuple[list[str], str | None]:
        try:
            client = make_client(endpoint, timeout)
        except ModelError as exc:
            return [], str(exc)
        try:
            data = get_json(client, endpoint, f"{endpoint.base_url}/models", timeout)
            return [str(e["id"]) for e in model_entries(data)], None
        except ModelError as exc:
            return [], str(exc)
        finally:
            client.close()

    endpoints = list(config.endpoints.values())
    if not endpoints:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(endpoints))) as pool:
        results = list(pool.map(one, endpoints))
    listing: dict[str, list[str]] = {}
    for endpoint, (ids, error) in zip(endpoints, results):
        listing[endpoint.name] = ids
        if error and errors is not None:
            errors[endpoint.name] = error
    return listing


class StreamedRequest:
    """One streamed request, read on a helper thread into a queue.

    The consumer waits on the queue in short slices, so a ``cancel`` event set by another
    thread, Ctrl-C, or closing the generator stops it at once even while the server is silent
    (a long prefill); ``close`` then shuts the socket down, which wakes the reader blocked in
    ``recv`` and tells the server to stop generating.
    """

    def __init__(self, client: Any, url: str, body: dict[str, Any]) -> None:
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._closing = threading.Event()
        self._sock: socket.socket | None = None
        self._sock_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._read, args=(client, url, body), name="chatterm-remote", daemon=True
        )
        self._thread.start()

    def _read(self, client: Any, url: str, body: dict[str, Any]) -> None:
        put = self.items.put
        try:
            with client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    put(("status", (response.status_code, response.read())))
                    return
                network = response.extensions.get("network_stream")
                with self._sock_lock:
                    if self._closing.is_set():
                        return
                    self._sock = network.get_extra_info("socket") if network else None
                put(("open", None))
                for line in response.iter_lines():
                    if self._closing.is_set():
                        return
                    put(("line", line))
                with self._sock_lock:  # the connection goes back to the pool intact
                    self._sock = None
            put(("end", None))
        except Exception as exc:  # reported to the consumer, who turns it into one line
            if not self._closing.is_set():
                put(("error", exc))

    def get(self, cancel: threading.Event | None) -> tuple[str, Any] | None:
        """The next item, or ``None`` once ``cancel`` is set."""
        while True:
            if cancel is not None and cancel.is_set():
                return None
            try:
                return self.items.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def drain(self, timeout: float = 1.0) -> None:
        """After ``[DONE]``, let the reader reach the body's end (briefly), so the connection
        returns to the pool instead of being shut down."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, _ = self.items.get(timeout=left)
            except queue.Empty:
                return
            if kind in ("end", "error"):
                return

    def close(self) -> None:
        self._closing.set()
        with self._sock_lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the server
                sock.shutdown(socket.SHUT_RDWR)
