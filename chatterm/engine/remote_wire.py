"""The OpenAI-compatible wire formats, each read once, typed, at the edge.

Everything a server sends (a streamed chunk, a whole completion, ``/models``, llama-server's
``/props``, ``/tokenize`` and ``/apply-template``) passes through one function here that either
returns frozen dataclasses the rest of the remote engine trusts, or raises :class:`WireError`
with a short description of the first thing wrong. Callers add the endpoint's name and turn it
into one line for the user.

Shapes follow OpenAI's chat-completions reference (``chat.completion.chunk`` with
``choices[].delta``, ``usage`` with ``prompt_tokens_details.cached_tokens``, ``logprobs.content``
entries with ``token``, ``logprob`` and ``top_logprobs``) plus the fields other servers add:
``reasoning_content`` (llama-server, vLLM) or ``reasoning`` (Ollama, OpenRouter) in a delta,
token ``id`` in logprob entries and ``timings`` (llama-server), ``max_model_len`` in a model
entry (vLLM). Unknown fields are ignored; known fields of the wrong type are errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chatterm.engine.events import Candidate

# A logprob is log(p) <= 0; servers round, so a hair above 0 is accepted (as 0).
LOGPROB_SLACK = 1e-3
MAX_N_CTX = 1 << 24  # no server has a larger window; a bigger number is a broken answer


class WireError(ValueError):
    """A server's answer does not have the documented shape; ``str()`` says what is wrong."""


@dataclass(frozen=True)
class LogprobEntry:
    """One generated token with its probability and the likeliest alternatives."""

    token: str
    token_id: int  # -1 where the server sends text only
    prob: float
    top: tuple[Candidate, ...]


@dataclass(frozen=True)
class Delta:
    """What one chunk adds to choice 0: answer text, reasoning text, their tokens'
    probabilities, and the finish reason when this chunk ends the answer."""

    content: str = ""
    reasoning: str = ""
    logprobs: tuple[LogprobEntry, ...] = ()
    finish_reason: str | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class Chunk:
    """One event of a streamed answer (or a whole non-streamed answer)."""

    delta: Delta | None = None  # None: the chunk has no choice 0 (a usage-only chunk)
    usage: Usage | None = None
    cached_tokens: int = 0  # llama-server's timings.cache_n
    error: str | None = None  # the server's own words, when it reports an error


@dataclass(frozen=True)
class ModelEntry:
    id: str
    owned_by: str = ""
    max_model_len: int | None = None  # vLLM's window


# -- helpers ---------------------------------------------------------------------------------


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise WireError(f"{what} is {_kind(value)}, not an object")
    return value


def _opt_obj(value: Any, what: str) -> Mapping[str, Any]:
    return {} if value is None else _obj(value, what)


def _opt_str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WireError(f"{what} is {_kind(value)}, not a string")
    return value


def _opt_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise WireError(f"{what} is {_kind(value)}, not a list")
    return value


def _count(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"{what} is {_kind(value)}, not a count")
    return value


def _token_id(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else -1


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:19] + "…"
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _prob(value: Any, what: str) -> float:
    """``exp(logprob)``, refusing what is not a log-probability (a positive number would be a
    probability above 1; ``exp(1000)`` overflows)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise WireError(f"{what} is {_kind(value)}, not a log-probability")
    if value > LOGPROB_SLACK:
        raise WireError(f"{what} is {value!r}, not a log-probability (they are at most 0)")
    return math.exp(min(value, 0.0))


# -- chunks ----------------------------------------------------------------------------------


def _logprob_entry(entry: Any) -> LogprobEntry:
    entry = _obj(entry, "a logprobs entry")
    top = []
    for alt in _opt_list(entry.get("top_logprobs"), '"top_logprobs"'):
        alt = _obj(alt, 'a "top_logprobs" entry')
        prob = _prob(alt.get("logprob"), '"logprob"')
        top.append(Candidate(_token_id(alt.get("id")), _opt_str(alt.get("token"), '"token"'), prob))
    return LogprobEntry(
        _opt_str(entry.get("token"), '"token"'),
        _token_id(entry.get("id")),
        _prob(entry.get("logprob"), '"logprob"'),
        tuple(top),
    )


def _choice(choice: Any, field: str) -> Delta:
    choice = _obj(choice, "a choice")
    delta = _opt_obj(choice.get(field), f'"{field}"')
    reasoning = _opt_str(delta.get("reasoning_content"), '"reasoning_content"') or _opt_str(
        delta.get("reasoning"), '"reasoning"'
    )
    logprobs = _opt_obj(choice.get("logprobs"), '"logprobs"')
    entries = _opt_list(logprobs.get("content"), '"logprobs.content"')
    finish = choice.get("finish_reason")
    return Delta(
        content=_opt_str(delta.get("content"), '"content"'),
        reasoning=reasoning,
        logprobs=tuple(_logprob_entry(e) for e in entries),
        finish_reason=_opt_str(finish, '"finish_reason"') or None,
    )


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message") or error.get("msg")
        return str(message) if message else str(error)
    return str(error)


def parse_chunk(data: Any, *, field: str = "delta") -> Chunk:
    """One decoded ``chat.completion.chunk`` (``field="message"``: a whole, non-streamed
    ``chat.completion``). Choices other than index 0 are skipped (chatterm asks for one).

    Raises :class:`WireError` for a chunk of the wrong shape: ``"choices": 5``,
    ``"delta": "abc"``, ``"content": 5``, ``"logprob": 1000``…
    """
    data = _obj(data, "the event")
    if data.get("error"):
        return Chunk(error=_error_text(data["error"]))
    delta = None
    for choice in _opt_list(data.get("choices"), '"choices"'):
        index = _obj(choice, "a choice").get("index", 0)
        if index in (0, None) and delta is None:
            delta = _choice(choice, field)
    usage = None
    if data.get("usage") is not None:
        raw = _obj(data["usage"], '"usage"')
        details = _opt_obj(raw.get("prompt_tokens_details"), '"prompt_tokens_details"')
        usage = Usage(
            _count(raw.get("prompt_tokens"), '"prompt_tokens"'),
            _count(raw.get("completion_tokens"), '"completion_tokens"'),
            _count(details.get("cached_tokens"), '"cached_tokens"'),
        )
    timings = data.get("timings")
    cached = _count(timings.get("cache_n"), '"cache_n"') if isinstance(timings, dict) else 0
    return Chunk(delta, usage, cached)


# -- other endpoints -------------------------------------------------------------------------


def parse_models(data: Any) -> list[ModelEntry]:
    """``GET /v1/models``: ``{"data": [{"id", "owned_by"?, "max_model_len"?}, …]}``."""
    data = _obj(data, "the answer")
    if "data" not in data:
        raise WireError('the answer has no "data" list')
    entries = []
    for entry in _opt_list(data["data"], '"data"'):
        entry = _obj(entry, 'a "data" entry')
        model_id = entry.get("id")
        if not isinstance(model_id, str) or not model_id:
            raise WireError(f'a model "id" is {_kind(model_id)}, not a name')
        window = entry.get("max_model_len")
        ok = isinstance(window, int) and not isinstance(window, bool) and 0 < window <= MAX_N_CTX
        owner = entry.get("owned_by")
        entries.append(
            ModelEntry(model_id, owner if isinstance(owner, str) else "", window if ok else None)
        )
    return entries


def parse_props_n_ctx(data: Any) -> int | None:
    """llama-server's ``GET /props``: the window of one slot
    (``default_generation_settings.n_ctx``), or ``None`` when it does not say."""
    if not isinstance(data, dict):
        return None
    for source in (data.get("default_generation_settings"), data):
        value = source.get("n_ctx") if isinstance(source, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_N_CTX:
            return value
    return None


@dataclass(frozen=True)
class WirePiece:
    token_id: int
    piece: str
    byte_fallback: bool = False


def parse_tokenize(data: Any) -> list[WirePiece]:
    """llama-server's ``POST /tokenize``: ``{"tokens": [id, …]}``, or with ``with_pieces``
    ``[{"id", "piece"}, …]`` where a piece that is not valid UTF-8 on its own comes as a list
    of byte values (shown as ``<0xF0>``, as the local engine shows them)."""
    data = _obj(data, "the answer")
    pieces = []
    for item in _opt_list(data.get("tokens"), '"tokens"'):
        if isinstance(item, int) and not isinstance(item, bool):
            pieces.append(WirePiece(item, ""))
            continue
        item = _obj(item, "a token")
        token_id = item.get("id")
        if not isinstance(token_id, int) or isinstance(token_id, bool) or token_id < 0:
            raise WireError(f'a token "id" is {_kind(token_id)}, not a token id')
        piece = item.get("piece")
        if isinstance(piece, list):
            if not all(isinstance(b, int) and 0 <= b <= 255 for b in piece):
                raise WireError('a token "piece" holds something other than byte values')
            pieces.append(WirePiece(token_id, _show_bytes(bytes(piece)), True))
        else:
            pieces.append(WirePiece(token_id, _opt_str(piece, 'a token "piece"')))
    return pieces


def _show_bytes(raw: bytes) -> str:
    """Text where the bytes are valid UTF-8, ``<0xF0>`` for each byte that is not (as the
    local engine shows a character split across tokens)."""
    text = raw.decode("utf-8", "surrogateescape")
    return "".join(f"<0x{ord(c) - 0xDC00:02X}>" if "\udc80" <= c <= "\udcff" else c for c in text)


def parse_template(data: Any) -> str:
    """llama-server's ``POST /apply-template``: ``{"prompt": "…"}``."""
    data = _obj(data, "the answer")
    if not isinstance(data.get("prompt"), str):
        raise WireError(f'"prompt" is {_kind(data.get("prompt"))}, not a string')
    return str(data["prompt"])
