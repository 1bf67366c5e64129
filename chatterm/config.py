"""User configuration from ``config.toml``: defaults < file < environment < command-line flags.

Read lazily (never at import) and frozen, so every front end sees the same values.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatterm import paths
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


def load_config(path: Path | None = None) -> Config:
    """Read ``config.toml`` (missing is fine) and apply ``CHATTERM_*`` environment overrides."""
    path = path or paths.config_file()
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: invalid TOML: {exc}") from None
    engine = data.get("engine", {})
    endpoints = {
        name: _endpoint(path, name, spec) for name, spec in (data.get("endpoints") or {}).items()
    }
    try:
        cfg = Config(
            default_model=os.environ.get("CHATTERM_MODEL") or data.get("default_model"),
            ctx_size=int(os.environ.get("CHATTERM_CTX_SIZE") or engine.get("ctx_size", 4096)),
            threads=_opt_int(os.environ.get("CHATTERM_THREADS") or engine.get("threads")),
            gpu_layers=int(os.environ.get("CHATTERM_GPU_LAYERS") or engine.get("gpu_layers", 0)),
            flash_attn=bool(engine.get("flash_attn", True)),
            sampling=dict(data.get("sampling", {})),
            endpoints=endpoints,
            kv_cache_mb=int(engine.get("kv_cache_mb", 1024)),
            source=path if path.exists() else None,
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    return cfg


def _opt_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


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
