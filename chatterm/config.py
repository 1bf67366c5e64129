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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server; its API key is read from the environment variable named."""

    name: str
    base_url: str
    api_key_env: str | None = None


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
    endpoints = {}
    for name, spec in (data.get("endpoints") or {}).items():
        if not isinstance(spec, dict) or "base_url" not in spec:
            raise UsageError(f"{path}: [endpoints.{name}] needs a base_url")
        if "api_key" in spec:
            raise UsageError(
                f"{path}: [endpoints.{name}] must not hold an api_key; "
                "name an environment variable with api_key_env instead"
            )
        endpoints[name] = Endpoint(name, str(spec["base_url"]), spec.get("api_key_env"))
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
