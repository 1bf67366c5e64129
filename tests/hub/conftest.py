"""Fixtures for the Hub tests: a real HTTP server (``fake_hub.FakeHub``) serving real GGUF
files, and the environment that points the real CLI and the real huggingface_hub client at it.

The starter model is served from its installed location (never copied); the tiny and split
GGUFs are written once per session with the ``gguf`` package.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hub.fake_hub import FakeHub, HubFile, HubRepo, sha256_of
from tests.hub.ggufs import write_tiny_gguf

STARTER_REPO = "bartowski/SmolLM2-135M-Instruct-GGUF"
STARTER_STEM = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class Assets:
    starter: Path
    starter_sha256: str
    tiny: Path
    split: list[Path]


@pytest.fixture(scope="session")
def hub_assets(tmp_path_factory: pytest.TempPathFactory, starter_path: Path) -> Assets:
    folder = tmp_path_factory.mktemp("hub-assets")
    tiny = write_tiny_gguf(folder / "tiny.gguf")[0]
    split = write_tiny_gguf(folder / "split.gguf", split_max_tensors=2)
    assert len(split) == 3
    return Assets(starter_path, sha256_of(starter_path), tiny, split)


def build_repos(a: Assets) -> list[HubRepo]:
    """Fresh repo objects per test: the one-shot failures (``cut_once_at``) keep state."""

    def starter(path: str, **knobs: object) -> HubFile:
        return HubFile(path, source=a.starter, _sha256=a.starter_sha256, **knobs)  # type: ignore[arg-type]

    def tiny(path: str, **knobs: object) -> HubFile:
        return HubFile(path, source=a.tiny, **knobs)  # type: ignore[arg-type]

    readme = HubFile("README.md", data=b"# A GGUF repo for tests\n", lfs=False)
    half = a.starter.stat().st_size // 2
    return [
        HubRepo(
            STARTER_REPO,
            [readme] + [starter(f"{STARTER_STEM}-{q}.gguf") for q in ("Q2_K", "Q4_K_M", "Q8_0")],
        ),
        HubRepo(
            "test/tiny-GGUF",
            [readme, tiny("mmproj-tiny-F16.gguf")]
            + [tiny(f"tiny-{q}.gguf") for q in ("Q2_K", "Q5_K_M", "Q8_0", "F16")],
        ),
        HubRepo(
            "test/split-GGUF",
            [
                HubFile(f"Q4_K_M/split-Q4_K_M-0000{i}-of-00003.gguf", source=p)
                for i, p in enumerate(a.split, 1)
            ]
            + [tiny("Q8_0/split-Q8_0.gguf")],
        ),
        HubRepo(
            "test/no-gguf",
            [
                readme,
                HubFile("config.json", data=b'{"model_type": "llama"}', lfs=False),
                HubFile("model.safetensors", data=b"\0" * 4096),
            ],
        ),
        HubRepo("test/gated-GGUF", [tiny("gated-Q4_K_M.gguf")], gated=True),
        HubRepo("test/flaky-GGUF", [starter("flaky-Q4_K_M.gguf", cut_once_at=half)]),
        HubRepo(
            "test/broken-GGUF",
            [
                HubFile(
                    f"broken-Q4_K_M-0000{i}-of-00003.gguf",
                    source=p,
                    cut_always_at=p.stat().st_size // 2 if i == 3 else None,
                )
                for i, p in enumerate(a.split, 1)
            ],
        ),
        HubRepo(
            "test/corrupt-GGUF",
            [tiny("corrupt-Q4_K_M.gguf", claimed_sha256=hashlib.sha256(b"other").hexdigest())],
        ),
        HubRepo("test/huge-GGUF", [tiny("huge-Q4_K_M.gguf", claimed_size=10**15)]),
        HubRepo("test/junk-GGUF", [HubFile("junk-Q4_K_M.gguf", data=b"not a model\n" * 512)]),
        HubRepo("test/slow-GGUF", [starter("slow-Q4_K_M.gguf", delay=0.05)]),
        # A hostile mirror: a listed path that would escape the download folder.
        HubRepo("test/escape-GGUF", [tiny("../../../escape-Q4_K_M.gguf")]),
    ]


def hub_environment(monkeypatch: pytest.MonkeyPatch, endpoint: str, hf_home: Path) -> None:
    """Point huggingface_hub (read at import, so set before the CLI subprocess starts) at the
    fake hub, with no token and no inherited offline or progress settings."""
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    for var in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_HUB_DISABLE_PROGRESS_BARS",
        "HF_HUB_ETAG_TIMEOUT",
        "HF_HUB_DOWNLOAD_TIMEOUT",
        "HF_TOKEN_PATH",
        "HF_OIDC_RESOURCE",
    ):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake_hub(
    hub_assets: Assets, tmp_path: Path, chatterm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeHub]:
    """A running fake Hub with ``HF_ENDPOINT`` pointing at it. Downloaded models are deleted
    afterwards (the starter is 98 MB per copy)."""
    hub = FakeHub(build_repos(hub_assets)).start()
    hub_environment(monkeypatch, hub.url, tmp_path / "hf-home")
    yield hub
    hub.stop()
    shutil.rmtree(chatterm_home / "data" / "models", ignore_errors=True)


@pytest.fixture
def models_dir(chatterm_home: Path) -> Path:
    return chatterm_home / "data" / "models"
