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
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, quote_plus

from chatterm import __version__
from chatterm.config import Config, Endpoint
from chatterm.engine.remote_wire import ModelEntry, WireError, parse_models
from chatterm.errors import ModelError

CONNECT_TIMEOUT = 5.0
LIST_TIMEOUT = 3.0
POLL_S = 0.05  # how often a waiting consumer looks at its cancel event
INSTALL_HINT = "pip install 'chatterm[remote]'"
MAX_LINE = 16 << 20  # bytes in one line of an answer (a whole non-streamed body fits)
MAX_REDIRECTS = 5
REDACTED = "[redacted]"
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")
_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")


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
    # An HTTP header carries visible ASCII only: say what is wrong, never the key itself.
    bad = next((c for c in value if not 0x21 <= ord(c) <= 0x7E), None)
    if bad is not None:
        what = (
            "a line break"
            if bad in "\r\n"
            else "a space"
            if bad == " "
            else "a non-ASCII character"
            if ord(bad) > 0x7E
            else "a control character"
        )
        raise ModelError(
            f"the API key in ${endpoint.api_key_env} (endpoint {endpoint.name!r}) holds {what}, "
            "which an HTTP header cannot carry; check how the variable is set"
        )
    return value


def redact(text: str, key: str | None) -> str:
    """``text`` without the API key: a server may echo the Authorization header in an error
    body. Removes anything after ``Bearer`` and the key itself in plain, JSON-escaped and
    URL-encoded form (keys shorter than 4 characters only in the first way)."""
    if key and len(key) >= 4:
        forms = {key, json.dumps(key)[1:-1], quote(key, safe=""), quote_plus(key)}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, REDACTED)
    return _BEARER.sub(rf"\1{REDACTED}", text)


def endpoint_key(endpoint: Endpoint) -> str | None:
    """The key to redact from messages; ``None`` when there is none (or it is unusable, in
    which case no request carried it)."""
    try:
        return api_key(endpoint)
    except ModelError:
        return None


def make_client(endpoint: Endpoint, read_timeout: float) -> Any:
    httpx = httpx_module()
    headers = {"User-Agent": f"chatterm/{__version__}", "Accept": "application/json"}
    key = api_key(endpoint)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    # Redirects are followed (httpx drops the Authorization header when one leaves the
    # origin); a POST turned into a GET by a 301/302/303 is refused in StreamedRequest.
    return httpx.Client(
        headers=headers,
        timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
    )


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def html_title(text: str) -> str | None:
    """``"an HTML page (TITLE)"`` when ``text`` is an HTML document, else ``None``."""
    head = text.lstrip()[:512].lower()
    if not head.startswith(("<!doctype html", "<html", "<head", "<body", "<!--")):
        return None
    found = _TITLE.search(text[:65536])
    title = _one_line(found.group(1), 80) if found else ""
    return f"an HTML page ({title})" if title else "an HTML page"


def error_detail(body: bytes | str, key: str | None = None) -> str:
    """The server's own words from an error body: OpenAI's ``{"error": {"message"}}``,
    Ollama's ``{"error": "…"}``, FastAPI's ``{"detail": …}``, an HTML page's title, else the
    text itself; one line, the API key ``key`` redacted before anything is cut short."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = redact(text[:MAX_LINE], key)
    if (page := html_title(text)) is not None:
        return page
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
    reason = _one_line(redact(str(exc), endpoint_key(endpoint)) or type(exc).__name__, 120)
    if isinstance(exc, httpx.TooManyRedirects):
        return f"endpoint {name!r} at {url} redirected more than {MAX_REDIRECTS} times"
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


class Deadline(Exception):
    """A request took longer than its overall time (a server sending a byte at a time)."""


def fetch(
    client: Any, method: str, url: str, timeout: float, payload: Any = None
) -> tuple[int, bytes]:
    """A whole small answer: its status and at most ``MAX_LINE`` bytes of body, within
    ``timeout`` seconds in all (a socket's read timeout alone restarts with every byte).

    Raises httpx's errors, :class:`Deadline`, or :class:`WireError` for a body too large.
    """
    httpx = httpx_module()
    deadline = time.monotonic() + timeout
    kwargs: dict[str, Any] = {"timeout": httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)}
    if payload is not None:
        kwargs["json"] = payload
    with client.stream(method, url, **kwargs) as response:
        body = bytearray()
        for part in response.iter_bytes():
            body += part
            if len(body) > MAX_LINE:
                raise WireError(f"the answer is larger than {MAX_LINE >> 20} MB")
            if time.monotonic() > deadline:
                raise Deadline
        return response.status_code, bytes(body)


def get_json(client: Any, endpoint: Endpoint, url: str, timeout: float) -> Any:
    """GET ``url`` and decode JSON, turning every failure into a one-line :class:`ModelError`."""
    httpx = httpx_module()
    try:
        status, content = fetch(client, "GET", url, timeout)
    except httpx.HTTPError as exc:
        raise ModelError(transport_error(endpoint, exc, mid_answer=False)) from None
    except Deadline:
        raise ModelError(
            f"endpoint {endpoint.name!r} did not send {url} within {timeout:g} s"
        ) from None
    except WireError as exc:
        raise ModelError(f"endpoint {endpoint.name!r}: {exc} for {url}") from None
    if status == 404:
        raise ModelError(
            f"endpoint {endpoint.name!r} has no {url} (404); does base_url end in /v1?"
        )
    if status != 200:
        detail = error_detail(content, endpoint_key(endpoint))
        raise ModelError(http_error(endpoint, "", status, detail))
    try:
        return json.loads(content)
    except ValueError:
        text = content[:65536].decode("utf-8", "replace")
        what = html_title(text) or "a non-JSON answer"
        raise ModelError(
            f"endpoint {endpoint.name!r} sent {what} for {url}; does base_url point at the API?"
        ) from None


def get_models(client: Any, endpoint: Endpoint, timeout: float) -> list[ModelEntry]:
    """``GET base_url/models``, validated; every failure is a one-line :class:`ModelError`."""
    url = f"{endpoint.base_url}/models"
    data = get_json(client, endpoint, url, timeout)
    try:
        return parse_models(data)
    except WireError as exc:
        raise ModelError(
            f"endpoint {endpoint.name!r} sent a malformed model list for {url} ({exc})"
        ) from None


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
            return [e.id for e in get_models(client, endpoint, timeout)], None
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


def split_lines(chunks: Iterator[bytes], limit: int = MAX_LINE) -> Iterator[str]:
    """Lines of a byte stream, ended by LF, CRLF or CR (the line ends SSE allows), decoded as
    UTF-8 once whole (so a character split across reads stays whole; invalid bytes become
    U+FFFD). A line longer than ``limit`` bytes raises :class:`WireError` instead of growing
    without end. The last line is yielded even without a line end."""
    buffer = b""
    pending_cr = False  # a CR ended the last piece: an LF right after it belongs to it
    for chunk in chunks:
        if pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        pending_cr = False
        buffer += chunk
        start = 0
        while True:
            end = _line_end(buffer, start)
            if end < 0:
                break
            yield buffer[start:end].decode("utf-8", "replace")
            if buffer[end] == 13:  # CR, maybe CRLF
                if end + 1 == len(buffer):
                    pending_cr = True
                    start = end + 1
                    break
                start = end + 2 if buffer[end + 1] == 10 else end + 1
            else:
                start = end + 1
        buffer = buffer[start:]
        if len(buffer) > limit:
            raise WireError(f"a line of the answer is longer than {limit >> 20} MB")
    if buffer:
        yield buffer.decode("utf-8", "replace")


def _line_end(buffer: bytes, start: int) -> int:
    lf, cr = buffer.find(b"\n", start), buffer.find(b"\r", start)
    if lf < 0:
        return cr
    if cr < 0:
        return lf
    return min(lf, cr)


class StreamedRequest:
    """One streamed request, read on a helper thread into a queue of items:
    ``("open", content_type)``, ``("redirected", url)``, ``("line", text)`` per line,
    ``("end", None)``; or ``("status", (code, body))``, ``("moved", (code, url))`` for a POST
    that a redirect would turn into a GET, ``("error", exception)``.

    The consumer waits on the queue in short slices, so a ``cancel`` event set by another
    thread, Ctrl-C, or closing the generator stops it at once even while the server is silent
    (a long prefill); ``close`` then shuts the socket down, which wakes the reader blocked in
    ``recv`` and tells the server to stop generating. Timeouts are the consumer's too: time
    without a complete line (a server sending a byte every few seconds never times out a
    socket read) and an overall deadline.
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
                if response.request.method != "POST":
                    moved = response.history[0] if response.history else response
                    put(("moved", (moved.status_code, str(response.url))))
                    return
                if response.status_code != 200:
                    put(("status", (response.status_code, response.read())))
                    return
                network = response.extensions.get("network_stream")
                with self._sock_lock:
                    if self._closing.is_set():
                        return
                    self._sock = network.get_extra_info("socket") if network else None
                if response.history:
                    put(("redirected", str(response.url)))
                put(("open", response.headers.get("content-type", "")))
                for line in split_lines(response.iter_bytes()):
                    if self._closing.is_set():
                        return
                    put(("line", line))
                with self._sock_lock:  # the connection goes back to the pool intact
                    self._sock = None
            put(("end", None))
        except Exception as exc:  # reported to the consumer, who turns it into one line
            if not self._closing.is_set():
                put(("error", exc))

    def get(
        self,
        cancel: threading.Event | None,
        silence: float | None = None,
        deadline: float | None = None,
    ) -> tuple[str, Any] | None:
        """The next item; ``None`` once ``cancel`` is set; ``("timeout", None)`` after
        ``silence`` seconds without one; ``("deadline", None)`` at ``deadline``
        (``time.monotonic()``)."""
        waited_until = None if silence is None else time.monotonic() + silence
        while True:
            if cancel is not None and cancel.is_set():
                return None
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return ("deadline", None)
            if waited_until is not None and now >= waited_until:
                return ("timeout", None)
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
