"""User configuration from ``config.toml``: defaults < file < environment < command-line flags.

Read lazily (never at import) and frozen, so every front end sees the same values.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatterm import cache_types, paths
from chatterm.errors import UsageError

DEFAULT_ENDPOINT_TIMEOUT = 300.0
DEFAULT_ANSWER_TIMEOUT = 3600.0

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server (llama-server, vLLM, Ollama…) whose models are addressed as
    ``NAME/MODEL``. Its API key is read from the environment variable named by ``api_key_env``
    and never from the file, so config.toml can be shared and the key never reaches history.
    ``timeout`` is how long to wait for the next line of an answer (a long prefill on a big
    model sends nothing for a while); ``answer_timeout`` bounds a whole answer, so a server
    that trickles bytes or keep-alives forever is still cut off. Both in seconds."""

    name: str
    base_url: str
    api_key_env: str | None = None
    timeout: float = DEFAULT_ENDPOINT_TIMEOUT
    answer_timeout: float = DEFAULT_ANSWER_TIMEOUT


@dataclass(frozen=True)
class Config:
    default_model: str | None = None
    ctx_size: int = 4096
    threads: int | None = None
    gpu_layers: int = 0
    flash_attn: bool = True
    sampling: dict[str, Any] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    kv_cache_mb: int = 1024
    cache_type: str = "f16"
    """The KV cache's number format: f16, q8_0 or q4_0 (see chatterm/cache_types.py)."""
    source: Path | None = None

    def remote_model(self, spec: str | None) -> tuple[Endpoint, str] | None:
        """Split ``NAME/MODEL`` when NAME is a configured endpoint; ``None`` otherwise.

        Hub names (``bartowski/X-GGUF:Q4_K_M``) and relative paths hold a slash too, so only a
        first part that names an endpoint counts; the model id may itself contain slashes
        (vLLM serves ``meta-llama/Llama-3.1-8B``), so the split is at the first one.
        """
        if not spec or "/" not in spec:
            return None
        name, _, model = spec.partition("/")
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return None
        if not model.strip():
            raise UsageError(
                f"name a model after {name}/ (see `chatterm models` for what {name} serves)"
            )
        return endpoint, model


ENGINE_KEYS = ("ctx_size", "threads", "gpu_layers", "flash_attn", "kv_cache_mb", "cache_type")
MAX_CONFIG_BYTES = 1 << 20
"""A config file is a few hundred bytes; a larger one is a mistake, refused before reading."""


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML table in ``path`` (``{}`` when there is none), read through the one checked
    path: a regular file only (a FIFO would block), at most :data:`MAX_CONFIG_BYTES`, UTF-8,
    valid TOML, nested no deeper than the parser can go. Raises :class:`UsageError` naming the
    file (a config the user can fix is a usage error, exit 2)."""
    from chatterm.safe_files import NotRegularFileError, read_bytes

    try:
        raw = read_bytes(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return {}
    except NotRegularFileError as exc:
        raise UsageError(f"{path} is {exc.strerror}, not a config file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a config file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{path}: invalid TOML: nested too deeply") from None


def _table(data: dict[str, Any], key: str, where: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{where}: {key} must be a table ([{key}]), not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "text"}
    return names.get(type(value), "a list" if isinstance(value, list) else type(value).__name__)


def _whole(value: Any, source: str, minimum: int, maximum: int, *, text_ok: bool = False) -> int:
    """A whole number in [minimum, maximum] from TOML (or, with ``text_ok``, the environment)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif text_ok and isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None:
        raise UsageError(f"{source} must be a whole number, got {value!r}")
    if not minimum <= number <= maximum:
        raise UsageError(f"{source} must be between {minimum} and {maximum:,}, got {number:,}")
    return number


def load_config(path: Path | None = None) -> Config:
    """Read ``config.toml`` (missing is fine) and apply ``CHATTERM_*`` environment overrides.

    Every value is type- and range-checked here, once: a wrong type (``engine = 5``,
    ``flash_attn = "no"``, ``kv_cache_mb = 1e400``) is one :class:`UsageError` line naming the
    file or variable and the key, never a traceback or a silent misreading later."""
    from chatterm.context_window import check_ctx_size
    from chatterm.sampling import SamplingSettings

    path = path or paths.config_file()
    data = read_toml(path)
    engine = _table(data, "engine", path)
    sampling = _table(data, "sampling", path)
    endpoints = {
        name: _endpoint(path, name, spec) for name, spec in _table(data, "endpoints", path).items()
    }
    env = os.environ
    default_model = env.get("CHATTERM_MODEL") or data.get("default_model")
    if default_model is not None and not isinstance(default_model, str):
        raise UsageError(f"{path}: default_model must be text, not {_kind(default_model)}")
    if env.get("CHATTERM_CTX_SIZE"):
        ctx_size = check_ctx_size(env["CHATTERM_CTX_SIZE"], "CHATTERM_CTX_SIZE")
    else:
        raw_ctx = engine.get("ctx_size", 4096)
        where = f"{path}: [engine] ctx_size"
        if isinstance(raw_ctx, str):  # TOML has numbers: "4096" is a mistake worth naming
            raise UsageError(f"{where} must be a whole number of tokens, got {raw_ctx!r}")
        ctx_size = check_ctx_size(raw_ctx, where)
    threads_raw = env.get("CHATTERM_THREADS") or engine.get("threads")
    threads = (
        None
        if threads_raw in (None, "")
        else _whole(
            threads_raw,
            "CHATTERM_THREADS" if env.get("CHATTERM_THREADS") else f"{path}: [engine] threads",
            1,
            4096,
            text_ok=bool(env.get("CHATTERM_THREADS")),
        )
    )
    gpu_env = env.get("CHATTERM_GPU_LAYERS")
    gpu_layers = _whole(
        gpu_env or engine.get("gpu_layers", 0),
        "CHATTERM_GPU_LAYERS" if gpu_env else f"{path}: [engine] gpu_layers",
        -1,
        100_000,
        text_ok=bool(gpu_env),
    )
    flash_attn = engine.get("flash_attn", True)
    if not isinstance(flash_attn, bool):
        raise UsageError(f"{path}: [engine] flash_attn must be true or false, got {flash_attn!r}")
    cache_env = env.get("CHATTERM_CACHE_TYPE")
    cache_type = (
        cache_types.cache_type(cache_env, "CHATTERM_CACHE_TYPE")
        if cache_env
        else cache_types.cache_type(
            engine.get("cache_type", cache_types.DEFAULT), f"{path}: [engine] cache_type"
        )
    ).name
    kv_cache_mb = _whole(
        engine.get("kv_cache_mb", 1024), f"{path}: [engine] kv_cache_mb", 0, 1 << 24
    )
    unknown = sorted(set(engine) - set(ENGINE_KEYS))
    if unknown:
        raise UsageError(
            f"{path}: [engine] has no setting {unknown[0]!r} (known: {', '.join(ENGINE_KEYS)})"
        )
    try:
        SamplingSettings().merge(sampling)
    except UsageError as exc:
        raise UsageError(f"{path}: [sampling] {exc}") from None
    return Config(
        default_model=default_model,
        ctx_size=ctx_size,
        threads=threads,
        gpu_layers=gpu_layers,
        flash_attn=flash_attn,
        sampling=dict(sampling),
        endpoints=endpoints,
        kv_cache_mb=kv_cache_mb,
        cache_type=cache_type,
        source=path if path.is_file() else None,
    )


def _endpoint(path: Path, name: str, spec: Any) -> Endpoint:
    where = f"{path}: [endpoints.{name}]"
    if not isinstance(spec, dict) or "base_url" not in spec:
        raise UsageError(f"{where} needs a base_url")
    if "api_key" in spec:
        raise UsageError(
            f"{where} must not hold an api_key; "
            "name an environment variable with api_key_env instead"
        )
    if "/" in name or not name.strip():
        raise UsageError(f"{where}: an endpoint name must be non-empty and hold no '/'")
    base_url = str(spec["base_url"]).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise UsageError(f"{where}: base_url must start with http:// or https://")
    known = ("base_url", "api_key_env", "timeout", "answer_timeout")
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    api_key_env = spec.get("api_key_env")
    if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
        raise UsageError(f"{where}: api_key_env must name an environment variable")
    timeout = _seconds(where, spec, "timeout", DEFAULT_ENDPOINT_TIMEOUT)
    answer_timeout = _seconds(where, spec, "answer_timeout", DEFAULT_ANSWER_TIMEOUT)
    return Endpoint(name, base_url, api_key_env, timeout, answer_timeout)


def _seconds(where: str, spec: dict[str, Any], key: str, default: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{where}: {key} must be a number of seconds")
    if not 0 < value <= 7 * 86400:  # also refuses nan and inf
        raise UsageError(f"{where}: {key} must be more than 0 seconds and at most a week")
    return float(value)
