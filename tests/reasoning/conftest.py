"""Reasoning-template copies of SmolLM2, written once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_THREADS
from tests.reasoning.ggufs import R1_STYLE_TEMPLATE, copy_with_template, qwen3_template


@pytest.fixture(scope="session")
def r1_path(starter_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 with a DeepSeek-R1-style template: every reply starts inside ``<think>``."""
    target = tmp_path_factory.mktemp("r1") / "smollm2-r1-style.gguf"
    return copy_with_template(starter_path, target, R1_STYLE_TEMPLATE)


@pytest.fixture(scope="session")
def qwen3_path(starter_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 with Qwen3's own template (``enable_thinking``, ``reasoning_content``)."""
    target = tmp_path_factory.mktemp("qwen3") / "smollm2-qwen3-template.gguf"
    return copy_with_template(starter_path, target, qwen3_template())


def _engine(path: Path) -> object:
    from chatterm.engine.llama_engine import LlamaEngine

    return LlamaEngine(path, n_ctx=2048, threads=int(TEST_THREADS) if TEST_THREADS else None)


@pytest.fixture(scope="session")
def r1_engine(r1_path: Path) -> Iterator[object]:
    engine = _engine(r1_path)
    yield engine
    engine.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def qwen3_engine(qwen3_path: Path) -> Iterator[object]:
    engine = _engine(qwen3_path)
    yield engine
    engine.close()  # type: ignore[attr-defined]
