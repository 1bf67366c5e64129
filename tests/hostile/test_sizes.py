"""Untrusted sizes are bounded before anything is allocated (issue 16, part 1): the context
window from flags, config and environment, and text on stdin."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatterm.context_window import MAX_CTX, MIN_CTX, check_ctx_size, plan
from chatterm.engine.events import ChatMessage
from chatterm.errors import ContextOverflowError, SettingError
from chatterm.gguf_file import read_gguf
from chatterm.sampling import SamplingSettings
from tests.hostile.limits import assert_one_line_error, bounded, run_limited


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )
)
def test_any_window_value_is_a_size_in_range_or_one_usage_error(value):
    with bounded("ctx: check a value"):
        try:
            n = check_ctx_size(value, "--ctx-size")
        except SettingError as exc:
            assert "--ctx-size" in str(exc) and "\n" not in str(exc)
            return
    assert isinstance(n, int) and MIN_CTX <= n <= MAX_CTX


def test_a_window_too_big_for_memory_is_refused_saying_what_it_needs(starter_path):
    """Under an address-space cap, a million-token window cannot be allocated: refused before
    llama.cpp is asked, with the size it would need."""
    info = read_gguf(starter_path)
    with bounded("ctx: plan 10^6 tokens"), pytest.raises(SettingError, match="needs about"):
        plan(info, 1_000_000)


def test_a_window_past_the_trained_length_is_a_note(starter_path):
    info = read_gguf(starter_path)
    with bounded("ctx: plan past trained"):
        note = plan(info, 10_000)
    assert note is not None and "8,192" in note


@pytest.mark.parametrize("value", ["-5", "10", "1", "128", "255", "1000000000", "0"])
def test_ctx_size_flag_out_of_range_is_one_usage_error(value):
    result = run_limited("ask", "--ctx-size", value, "hi", case=f"ctx: --ctx-size {value}")
    assert_one_line_error(result, 2, "--ctx-size", "between")


@pytest.mark.parametrize("value", ["-4096", "1000000000000000000000000000000", '"4096"', "4096.5"])
def test_ctx_size_in_config_out_of_range_or_mistyped_is_one_usage_error(home: Path, value):
    (home / "config").mkdir()
    (home / "config" / "config.toml").write_text(f"[engine]\nctx_size = {value}\n")
    result = run_limited("ask", "hi", case=f"ctx: config ctx_size = {value[:12]}")
    assert_one_line_error(result, 2, "ctx_size")


def test_ctx_size_from_the_environment_is_checked_too():
    result = run_limited("ask", "hi", env={"CHATTERM_CTX_SIZE": "-1"}, case="ctx: env -1")
    assert_one_line_error(result, 2, "CHATTERM_CTX_SIZE")


def test_a_million_token_window_is_refused_before_allocating():
    result = run_limited("ask", "--ctx-size", "1000000", "hi", case="ctx: --ctx-size 10^6")
    assert_one_line_error(result, 2, "needs about", "GiB")


def test_a_window_past_the_trained_length_answers_with_a_note():
    result = run_limited(
        "ask",
        "--ctx-size",
        "10000",
        "-n",
        "4",
        "--temperature",
        "0",
        "--no-save",
        "hi",
        case="ctx: --ctx-size 10000 (trained 8192)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "8,192 tokens this model was trained on" in result.stderr


def test_fifty_megabytes_on_stdin_are_refused_by_their_byte_count(tmp_path):
    """Before tokenizing: at most the limit plus one byte is read, and the refusal is exit 4."""
    result = run_limited(
        "ask", "summarise", input=b"lorem ipsum dolor " * 3_000_000, case="stdin: 54 MB"
    )
    assert_one_line_error(result, 4, "stdin holds more than", "bytes")


def test_an_oversized_message_is_refused_without_tokenizing(real_engine):
    """The engine's own guard, for every front end: a byte count proves it cannot fit."""
    # every token covers at most the vocabulary's longest entry: past window x that, no fit
    text = "x" * (real_engine.n_ctx * max(real_engine.info.max_token_bytes, 1) + 1)
    with bounded("engine: oversized message"), pytest.raises(ContextOverflowError, match="bytes"):
        list(real_engine.generate([ChatMessage("user", text)], SamplingSettings(max_tokens=4)))


def test_stdin_without_a_window_is_still_bounded():
    """`tokenize` has no context window, but an endless pipe must not be read forever."""
    from chatterm.cli.input_text import MAX_STDIN_BYTES

    result = run_limited(
        "tokenize", input=b"\0" * (MAX_STDIN_BYTES + 1), case="stdin: tokenize 64 MiB + 1"
    )
    assert_one_line_error(result, 4, "stdin holds more than")


def test_the_chat_app_refuses_a_bad_window_before_drawing():
    result = run_limited("chat", "--ctx-size", "-5", case="ctx: chat --ctx-size -5")
    assert_one_line_error(result, 2, "--ctx-size")


def test_the_smallest_window_answers(starter_path):
    """256 is llama.cpp's smallest context (it pads to multiples of 256): a reply that fills
    it is cut, never an internal error."""
    result = run_limited(
        "ask", "--ctx-size", "256", "-n", "400", "--temperature", "0", "--no-save",
        "Tell me a long story.", case="ctx: --ctx-size 256, reply past the window",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "generation failed" not in result.stderr
