"""Choosing what to download from a repo's file list: names, quant tags, split sets, fallbacks.

Pure functions over file lists shaped like real GGUF repos (bartowski's, unsloth's per-quant
folders, Qwen's split files); the network tests cover the same paths end to end.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from chatterm.errors import ModelError, UsageError
from chatterm.hub import RemoteFile, choose, find_candidates, parse_spec, quant_of
from tests.conftest import REPO


def files(*specs: str | tuple[str, int]) -> list[RemoteFile]:
    result = []
    for spec in specs:
        path, size = (spec, 100) if isinstance(spec, str) else spec
        result.append(RemoteFile(path, size, "0" * 40, "a" * 64))
    return result


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("bartowski/SmolLM2-135M-Instruct-GGUF", ("bartowski/SmolLM2-135M-Instruct-GGUF", None)),
        ("Qwen/Qwen2.5-0.5B-Instruct-GGUF:q4_k_m", ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "q4_k_m")),
        ("hf.co/unsloth/Qwen3-0.6B-GGUF:Q8_0", ("unsloth/Qwen3-0.6B-GGUF", "Q8_0")),
        ("https://huggingface.co/owner/name/", ("owner/name", None)),
    ],
)
def test_parse_spec_accepts_repo_quant_and_hub_urls(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["smollm", "a/b/c", "../etc:Q4", "/abs/path.gguf", ""])
def test_parse_spec_rejects_what_is_not_owner_slash_name(spec):
    with pytest.raises(UsageError, match="OWNER/NAME"):
        parse_spec(spec)


@pytest.mark.parametrize(
    ("path", "quant"),
    [
        ("SmolLM2-135M-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-0.5b-instruct-q8_0.gguf", "Q8_0"),
        ("Qwen2.5-7B-Instruct-Q4_K_M-00001-of-00002.gguf", "Q4_K_M"),
        ("Q5_K_M/Model-00001-of-00003.gguf", "Q5_K_M"),
        ("Model-IQ4_XS.gguf", "IQ4_XS"),
        ("Model.BF16.gguf", "BF16"),
        ("Qwen3-0.6B-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
        ("model.gguf", None),
    ],
)
def test_quant_tag_comes_from_the_file_name_or_its_folder(path, quant):
    assert quant_of(path) == quant


def test_split_sets_group_in_order_and_incomplete_sets_are_left_out():
    cands = find_candidates(
        files(
            "Q4_K_M/M-Q4_K_M-00002-of-00002.gguf",
            "Q4_K_M/M-Q4_K_M-00001-of-00002.gguf",
            "Q8_0/M-Q8_0-00001-of-00002.gguf",  # shard 2 missing
            "mmproj-M-F16.gguf",
            "README.md",
        )
    )
    assert [c.label for c in cands] == ["Q4_K_M"]
    assert [f.path for f in cands[0].files] == [
        "Q4_K_M/M-Q4_K_M-00001-of-00002.gguf",
        "Q4_K_M/M-Q4_K_M-00002-of-00002.gguf",
    ]
    assert cands[0].size == 200


def test_default_is_q4_k_m_without_a_note():
    cands = find_candidates(files("M-Q8_0.gguf", "M-Q4_K_M.gguf", "M-Q2_K.gguf"))
    chosen, note = choose(cands, repo="o/M")
    assert chosen.label == "Q4_K_M" and note is None


def test_without_q4_k_m_the_fallback_order_decides_and_says_so():
    cands = find_candidates(files("M-Q8_0.gguf", "M-Q5_K_M.gguf", "M-Q2_K.gguf"))
    chosen, note = choose(cands, repo="o/M")
    assert chosen.label == "Q5_K_M"
    assert note is not None and "no Q4_K_M" in note and "Q5_K_M" in note and "Q8_0" in note


def test_unknown_tags_fall_back_to_the_smallest_file():
    cands = find_candidates(files(("big.gguf", 900), ("small.gguf", 300)))
    chosen, _ = choose(cands, repo="o/M")
    assert chosen.label == "small"


def test_quant_matches_case_insensitively():
    cands = find_candidates(files("M-Q8_0.gguf", "M-Q4_K_M.gguf"))
    assert choose(cands, repo="o/M", quant="q8_0")[0].label == "Q8_0"


def test_a_missing_quant_lists_the_available_ones():
    cands = find_candidates(files("M-Q8_0.gguf", "M-Q4_K_M.gguf"))
    with pytest.raises(ModelError, match=r"no Q3_K_S quant in o/M; available: .*Q4_K_M.*Q8_0"):
        choose(cands, repo="o/M", quant="Q3_K_S")


def test_two_files_with_one_quant_ask_for_file():
    cands = find_candidates(files("a/M-Q4_K_M.gguf", "b/N-Q4_K_M.gguf"))
    with pytest.raises(ModelError, match="--file"):
        choose(cands, repo="o/M", quant="Q4_K_M")


def test_file_picks_an_exact_file_and_any_shard_picks_its_set():
    cands = find_candidates(
        files("M-Q4_K_M.gguf", "M-Q8_0-00001-of-00002.gguf", "M-Q8_0-00002-of-00002.gguf")
    )
    assert choose(cands, repo="o/M", file="M-Q4_K_M.gguf")[0].label == "Q4_K_M"
    whole, _ = choose(cands, repo="o/M", file="M-Q8_0-00002-of-00002.gguf")
    assert len(whole.files) == 2
    with pytest.raises(ModelError, match="no GGUF file 'nope.gguf' in o/M; its GGUF files: M-"):
        choose(cands, repo="o/M", file="nope.gguf")


def test_a_repo_without_gguf_says_so():
    with pytest.raises(ModelError, match="has no GGUF model files"):
        choose(find_candidates(files("model.safetensors", "config.json")), repo="o/M")


def test_cli_and_hub_modules_do_not_import_huggingface_hub():
    """`chatterm --help` stays fast: huggingface_hub is imported only when pulling."""
    code = (
        "import sys, chatterm.cli.app, chatterm.hub, chatterm.model_card\n"
        "heavy = [m for m in ('huggingface_hub', 'httpx2', 'rich', 'textual', 'llama_cpp')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
