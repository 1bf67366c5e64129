"""What a model is, from its GGUF metadata: the card ``chatterm models show`` prints and the
one-line summary ``chatterm models`` lists.

Built with :func:`chatterm.gguf_file.read_gguf` alone (no llama.cpp load, and the chat template
is only ever shown as text). Summaries are cached by :mod:`chatterm.model_summary`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chatterm import model_summary
from chatterm.cache_types import CACHE_TYPES
from chatterm.catalog import ModelEntry
from chatterm.errors import ModelError
from chatterm.gguf_file import GGUFInfo, largest_count, read_gguf


@dataclass
class ModelCard:
    """Everything ``models show`` reports; ``ram_bytes`` = weights + an f16 KV cache for
    ``ctx_size`` tokens (llama.cpp's compute buffers come on top, a few percent)."""

    name: str
    path: str
    source: str
    repo: str | None
    revision: str | None
    files: list[str]
    file_size: int
    title: str | None
    architecture: str
    parameters: int
    layers: int | None
    context_length: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    quantization: str | None
    quant_tag: str | None
    tokenizer: str | None
    tokenizer_pre: str | None
    vocab_size: int | None
    chat_template: str | None
    ctx_size: int
    kv_cache_bytes: int
    ram_bytes: int
    kv_cache_by_type: dict[str, int]
    """KV cache bytes at ``ctx_size`` for each cache type (f16, q8_0, q4_0)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _infos(entry: ModelEntry) -> list[GGUFInfo]:
    return [read_gguf(p) for p in entry.file_paths]


def build_card(entry: ModelEntry, ctx_size: int) -> ModelCard:
    """Read every shard's header; raise :class:`ModelError` if a file is missing or broken."""
    infos = _infos(entry)
    head = infos[0]
    kv_heads = largest_count(head.arch_value("attention.head_count_kv"))
    size = sum(i.file_size for i in infos)
    kv = head.kv_cache_bytes(ctx_size)
    model_summary.remember_summary(entry.file_paths, infos)
    return ModelCard(
        name=entry.name,
        path=entry.path,
        source=entry.source,
        repo=entry.repo,
        revision=entry.revision,
        files=[str(p) for p in entry.file_paths],
        file_size=size,
        title=head.name,
        architecture=head.architecture,
        parameters=sum(i.parameter_count for i in infos),
        layers=head.block_count,
        context_length=head.context_length,
        embedding_length=head.arch_value("embedding_length"),
        head_count=largest_count(head.arch_value("attention.head_count")),
        head_count_kv=kv_heads,
        quantization=head.quantization,
        quant_tag=entry.quant,
        tokenizer=head.tokenizer_model,
        tokenizer_pre=head.get("tokenizer.ggml.pre"),
        vocab_size=head.vocab_size,
        chat_template=head.chat_template,
        ctx_size=ctx_size,
        kv_cache_bytes=kv,
        ram_bytes=size + kv,
        kv_cache_by_type={
            name: head.kv_cache_bytes(ctx_size, kind.bytes_per_value)
            for name, kind in CACHE_TYPES.items()
        },
    )


def summaries(entries: list[ModelEntry]) -> list[dict[str, Any]]:
    """One summary per entry: architecture, parameters, context length, file quantization,
    ``size`` on disk and ``missing``/``error`` when a file is gone or unreadable."""
    cache = model_summary.load_cache()
    kept: dict[str, Any] = {}  # entries of models no longer listed are dropped
    result = []
    for entry in entries:
        files = entry.file_paths
        key = model_summary.key(files[0])
        summary: dict[str, Any] = {"size": entry.size}
        if key is None or not all(f.is_file() for f in files):
            summary["missing"] = True
            result.append(summary)
            continue
        summary["size"] = sum(f.stat().st_size for f in files)
        if key not in cache:
            try:
                cache[key] = model_summary.summarize(_infos(entry))
            except ModelError as exc:
                summary["error"] = str(exc)
                result.append(summary)
                continue
        kept[key] = cache[key]
        summary.update(cache[key])
        result.append(summary)
    if kept != cache:
        model_summary.save_cache(kept)
    return result
