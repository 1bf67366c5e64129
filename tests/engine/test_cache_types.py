"""KV cache types: f16, q8_0 and q4_0 through config, the engine, models show and the lab's
kv-cache experiment, on the real SmolLM2 model."""

from __future__ import annotations

import json

import pytest

from chatterm.cache_types import CACHE_TYPES, cache_type
from chatterm.engine.events import ChatMessage, Finished, Token
from chatterm.errors import SettingError
from chatterm.sampling import SamplingSettings
from tests.conftest import run_cli


def test_cache_type_names_and_their_sizes():
    assert [cache_type(n).name for n in ("f16", "Q8_0", " q4_0 ")] == ["f16", "q8_0", "q4_0"]
    assert CACHE_TYPES["q8_0"].bytes_per_value == 34 / 32  # ggml's block_q8_0
    with pytest.raises(SettingError, match="--cache-type must be one of f16, q8_0, q4_0"):
        cache_type("q5")


def test_a_quantized_cache_generates_and_is_what_llama_cpp_runs(starter_path):
    import llama_cpp

    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(starter_path, n_ctx=512, cache_type="q8_0")
    try:
        params = engine.llama.context_params
        assert params.type_k == params.type_v == llama_cpp.GGML_TYPE_Q8_0
        events = list(
            engine.generate(
                [ChatMessage("user", "Name a colour.")],
                SamplingSettings(temperature=0, seed=1, max_tokens=8),
            )
        )
    finally:
        engine.close()
    assert isinstance(events[-1], Finished) and events[-1].reason in ("stop", "length")
    assert "".join(e.text for e in events if isinstance(e, Token)).strip()


def test_a_quantized_cache_without_flash_attention_is_refused(starter_path):
    from chatterm.engine.llama_engine import LlamaEngine

    with pytest.raises(SettingError, match="q4_0 KV cache needs flash attention"):
        LlamaEngine(starter_path, n_ctx=512, cache_type="q4_0", flash_attn=False)


def test_config_and_environment_choose_the_cache_type(chatterm_home, monkeypatch):
    from chatterm.config import load_config

    config = chatterm_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[engine]\ncache_type = "q4_0"\n')
    assert load_config(config).cache_type == "q4_0"
    monkeypatch.setenv("CHATTERM_CACHE_TYPE", "q8_0")
    assert load_config(config).cache_type == "q8_0"
    monkeypatch.delenv("CHATTERM_CACHE_TYPE")
    config.write_text('[engine]\ncache_type = "int3"\n')
    with pytest.raises(SettingError, match=r"\[engine\] cache_type must be one of"):
        load_config(config)


def test_a_bad_cache_type_in_config_is_one_line_and_exit_2(chatterm_home):
    config = chatterm_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[engine]\ncache_type = "int3"\n')
    done = run_cli("ask", "hello", env={"CHATTERM_HOME": str(chatterm_home)})
    assert done.returncode == 2
    assert "cache_type must be one of f16, q8_0, q4_0" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_models_show_gives_the_kv_cache_per_type(chatterm_home):
    done = run_cli("models", "show", "--ctx-size", "8192", "--json")
    assert done.returncode == 0, done.stderr
    card = json.loads(done.stdout)
    sizes = card["kv_cache_by_type"]
    assert sizes["f16"] == card["kv_cache_bytes"]
    assert sizes["q4_0"] < sizes["q8_0"] < sizes["f16"]
    assert sizes["q8_0"] == pytest.approx(sizes["f16"] * (34 / 32) / 2, rel=1e-6)
    text = run_cli("models", "show").stdout
    assert "KV cache" in text and "q8_0" in text and "--cache-type" in text


def test_lab_kv_cache_compares_the_types_on_one_text(chatterm_home):
    text = (
        "The Rhine rises in the Swiss Alps and flows north through Lake Constance, then west "
        "along the border between Switzerland and Germany before turning north at Basel."
    )
    done = run_cli("lab", "kv-cache", "-n", "24", "--json", input=text, timeout=300)
    assert done.returncode == 0, done.stderr
    results = {r["cache_type"]: r for r in json.loads(done.stdout)["results"]}
    assert list(results) == ["f16", "q8_0", "q4_0"]
    assert results["f16"]["agreement"] == 1.0 and results["f16"]["first_difference"] is None
    for r in results.values():
        assert r["positions"] == 24 and 0.0 <= r["agreement"] <= 1.0 and r["tokens_per_s"] > 0
    assert results["q4_0"]["kv_cache_bytes"] < results["q8_0"]["kv_cache_bytes"]
    assert results["q8_0"]["kv_cache_bytes"] < results["f16"]["kv_cache_bytes"]
    table = run_cli("lab", "kv-cache", "-n", "8", "--types", "q4_0", input=text, timeout=300)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].startswith("f16")  # the reference is always run
    assert "top-1 agreement" in table.stdout


def test_lab_kv_cache_refuses_an_unknown_type_before_loading(chatterm_home):
    done = run_cli("lab", "kv-cache", "--types", "f16,q2", input="some text here")
    assert done.returncode == 2
    assert "--types must be one of f16, q8_0, q4_0, got 'q2'" in done.stderr


def test_ask_takes_the_cache_type_as_a_flag(chatterm_home):
    done = run_cli(
        "ask", "--cache-type", "q8_0", "--temperature", "0", "-n", "6", "--json", "Name a colour."
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["finish_reason"] in ("stop", "length")
    bad = run_cli("ask", "--cache-type", "q5", "Name a colour.")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "chatterm: error: --cache-type must be one of f16, q8_0, q4_0, got 'q5'"
    ]
