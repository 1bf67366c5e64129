"""Builds the long-lived services (engine, store, settings) from config and flags.

One factory shared by the CLI, the TUI and the tests, so every front end resolves models and
settings the same way: flags > environment > config.toml > persona > defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatterm.catalog import ModelEntry, resolve_model
from chatterm.config import Config, load_config
from chatterm.engine.base import Engine
from chatterm.sampling import SamplingSettings

PER_REQUEST = ("seed", "schema", "grammar")
"""Saved settings a continued conversation does not inherit."""


@dataclass(frozen=True)
class EngineOptions:
    """How to load a model; ``None`` means "from config, else the engine's default"."""

    model: str | None = None
    ctx_size: int | None = None
    threads: int | None = None
    gpu_layers: int | None = None
    cache_type: str | None = None
    """The KV cache's number format (``f16``, ``q8_0``, ``q4_0``); ``None``: from config."""
    adapt_threads: bool = True
    """Whether a thread count chatterm chose may step down while other programs are busy (see
    chatterm/engine/cpu_share.py). The lab turns it off: past 256 tokens of context, llama.cpp's
    decode splits attention by thread, so a reply could depend on the machine's load."""


def resolve(options: EngineOptions, config: Config | None = None) -> ModelEntry:
    config = config or load_config()
    remote = config.remote_model(options.model or config.default_model)
    if remote is not None:  # ENDPOINT/MODEL: ``path`` holds the server's URL, not a file
        endpoint, model = remote
        return ModelEntry(f"{endpoint.name}/{model}", endpoint.base_url, source="remote")
    return resolve_model(options.model, config.default_model)


def continued_model(used: Sequence[str], config: Config) -> tuple[str | None, str | None]:
    """The first of a continued conversation's models (see ``Turn.models_used``)
    that can still be loaded, and a note to show when none can (the default answers then)."""
    from chatterm.errors import ChattermError

    for model in used:
        try:
            resolve(EngineOptions(model=model), config)
        except ChattermError:
            continue
        return model, None
    if not used:
        return None, None
    return None, f"this conversation used {used[0]}, which is not available; using the default"


def window_size(options: EngineOptions, config: Config) -> int:
    """The context window asked for: ``--ctx-size`` (checked here, naming the flag) else the
    config's (checked when the config was read, naming its source)."""
    from chatterm.context_window import check_ctx_size

    if options.ctx_size is None:
        return config.ctx_size
    return check_ctx_size(options.ctx_size, "--ctx-size")


UNKNOWN_VOCAB_TOKEN_BYTES = 256
"""For a model whose vocabulary chatterm cannot read (a remote one): a generous bound on how
many bytes of text one token covers, so stdin is still bounded by the window."""


def input_limit(options: EngineOptions, config: Config) -> tuple[int, int, int]:
    """``(bytes, window, longest token)``: input longer than ``bytes`` cannot fit a ``window``
    of tokens for the model ``options`` names (see :mod:`chatterm.cli.input_text`). A model
    that cannot be resolved yet gets the generous bound; loading it reports the real error."""
    from chatterm.errors import ChattermError
    from chatterm.gguf_file import read_gguf

    window = window_size(options, config)
    per_token = UNKNOWN_VOCAB_TOKEN_BYTES
    try:
        entry = resolve(options, config)
        if entry.source != "remote":
            per_token = max(read_gguf(entry.path).max_token_bytes, 1)
    except ChattermError:
        pass
    return window * per_token, window, per_token


def load_engine(options: EngineOptions, config: Config | None = None) -> Engine:
    """Resolve the model and load it. Raises ``ModelError`` (exit 3) with a one-line reason."""
    from chatterm import paths
    from chatterm.engine.kv_cache import KVStateCache
    from chatterm.engine.llama_engine import LlamaEngine

    config = config or load_config()
    n_ctx = window_size(options, config)
    remote = config.remote_model(options.model or config.default_model)
    if remote is not None:  # ENDPOINT/MODEL, with ENDPOINT from [endpoints] in config.toml
        from chatterm.engine.remote import RemoteEngine

        endpoint, model = remote
        return RemoteEngine(endpoint, model, n_ctx=n_ctx)
    entry = resolve_model(options.model, config.default_model)
    # Saved KV states let a reopened long conversation skip re-prefilling its history.
    kv_cache = (
        KVStateCache(paths.kv_cache_dir(), config.kv_cache_mb * 2**20)
        if config.kv_cache_mb > 0
        else None
    )
    return LlamaEngine(
        entry.path,
        name=entry.name,
        n_ctx=n_ctx,
        threads=options.threads or config.threads,
        adapt_threads=options.adapt_threads,
        gpu_layers=config.gpu_layers if options.gpu_layers is None else options.gpu_layers,
        flash_attn=config.flash_attn,
        cache_type=options.cache_type or config.cache_type,
        kv_cache=kv_cache,
    )


def load_vocabulary(options: EngineOptions, config: Config | None = None) -> Any:
    """What ``render`` and ``tokenize`` need: the model's vocabulary alone (llama.cpp's
    ``vocab_only``: no weights, no context; vocab-only GGUFs work too), or a remote model's
    engine. Either has ``render``, ``tokenize``, ``name``, ``n_ctx`` and ``close``. Raises
    ``ModelError`` (exit 3)."""
    from chatterm.engine.vocab import Vocabulary

    config = config or load_config()
    if config.remote_model(options.model or config.default_model) is not None:
        return load_engine(options, config)
    entry = resolve_model(options.model, config.default_model)
    vocab = Vocabulary.load(entry.path, name=entry.name)
    vocab.n_ctx = window_size(options, config)
    return vocab


def _usable(saved: Mapping[str, Any]) -> dict[str, Any]:
    """The saved settings that are still valid, one by one, without the per-request ones (the
    seed, a schema or grammar): a history row written by an older version (or edited by hand)
    must not make ``ask -c`` fail forever."""
    from chatterm.errors import SettingError

    known = set(SamplingSettings().to_dict())
    usable: dict[str, Any] = {}
    for key, value in saved.items():
        if key in PER_REQUEST or key not in known:
            continue
        try:
            SamplingSettings().merge({key: value})
        except SettingError:
            continue
        usable[key] = value
    return usable


def sampling_settings(
    config: Config | None = None,
    persona_defaults: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    saved: Mapping[str, Any] | None = None,
) -> SamplingSettings:
    """Defaults < config.toml [sampling] < a continued conversation's ``saved`` settings <
    persona front matter < explicit flags.

    A saved seed is not carried over: it is usually the concrete draw of a random seed, and
    reusing it would make every continuation sample alike. Nor is a schema or grammar: it
    shaped one answer, and a follow-up question in prose should get prose."""
    config = config or load_config()
    settings = SamplingSettings().merge(config.sampling)
    if saved:
        settings = settings.merge(_usable(saved))
    if persona_defaults:
        settings = settings.merge(persona_defaults)
    if overrides:
        settings = settings.replace(**overrides)
    return settings
