"""The lab's commands through real subprocesses: ``tokenize``, ``lab sample``, ``lab compare``,
``lab experiments`` and ``ask --logprobs/--show-probs``, piped and on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time

from tests.conftest import REPO, run_cli


def run_on_terminal(*args: str, home) -> tuple[str, str]:
    """Run with stdout on a pseudo-terminal; returns (terminal output, stderr)."""
    main, child = pty.openpty()
    env = {
        **os.environ,
        "CHATTERM_HOME": str(home),
        "TERM": "xterm-256color",
        "COLUMNS": "100",
        "FORCE_COLOR": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatterm", *args],
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    os.close(child)
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, err = proc.communicate(timeout=60)
    os.close(main)
    assert proc.returncode == 0, err
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


# -- tokenize ------------------------------------------------------------------------------


def test_tokenize_json_shape_and_round_trip():
    text = "Hello, world! Tokenizers split text into pieces."
    result = run_cli("tokenize", "--json", text)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"tokens", "count"}
    assert data["count"] == len(data["tokens"]) > 5
    assert all(isinstance(t["id"], int) and isinstance(t["piece"], str) for t in data["tokens"])
    assert "".join(t["piece"] for t in data["tokens"]) == text


def test_tokenize_reads_stdin_and_prints_plain_lines_in_a_pipe():
    result = run_cli("tokenize", input="Hello, world!\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["19556", '"Hello"']
    assert lines[-1] == "4 tokens"
    assert "\x1b[" not in result.stdout


def test_tokenize_shows_byte_fallback_pieces_readably():
    result = run_cli("tokenize", "--json", "🦙 日本")
    tokens = json.loads(result.stdout)["tokens"]
    pieces = [t["piece"] for t in tokens]
    assert "\ufffd" not in "".join(pieces)
    assert any("<0xF0>" in p for p in pieces)  # the llama's first byte, shown as a byte
    assert any(t["byte_fallback"] for t in tokens)
    plain = run_cli("tokenize", "🦙")
    assert "<0xF0>" in plain.stdout and "byte" in plain.stdout


def test_tokenize_special_parses_control_tokens_only_when_asked():
    text = "<|im_start|>user\nhi<|im_end|>"
    special = json.loads(run_cli("tokenize", "--json", "--special", text).stdout)["tokens"]
    assert [(t["piece"], t["special"]) for t in special][0] == ("<|im_start|>", True)
    assert special[-1]["piece"] == "<|im_end|>" and special[-1]["special"]
    plain = json.loads(run_cli("tokenize", "--json", text).stdout)["tokens"]
    assert not any(t["special"] for t in plain) and len(plain) > len(special)


def test_tokenize_without_text_is_a_usage_error():
    result = run_cli("tokenize")
    assert result.returncode == 2
    assert result.stderr.startswith("chatterm: error: nothing to tokenize")


def test_tokenize_on_a_terminal_shows_coloured_chips(chatterm_home):
    out, _ = run_on_terminal("tokenize", "Hello world", home=chatterm_home)
    assert "\x1b[" in out
    assert "Hello" in out and "·world" in out  # the space made visible
    assert "2 tokens" in out


# -- lab sample ----------------------------------------------------------------------------


def test_lab_sample_json_lists_candidates_with_stages():
    result = run_cli(
        "lab",
        "sample",
        "--json",
        "--top-k",
        "3",
        "--top-p",
        "1",
        "--min-p",
        "0",
        "-n",
        "5",
        "Write a poem about the sea.",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "smollm2-135m-instruct" and data["vocab_size"] == 49152
    rows = data["candidates"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["removed_by"] for r in rows] == [None, None, None, "top-k", "top-k"]
    probs = [r["prob"] for r in rows]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1
    assert abs(sum(r["final_prob"] for r in rows) - 1) < 1e-9
    assert data["survivors"] == 3 and data["settings"]["top_k"] == 3


def test_lab_sample_piped_is_a_plain_table_and_raw_skips_the_template():
    result = run_cli(
        "lab", "sample", "--raw", "--temperature", "0", "-n", "3", "The capital of France is"
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# smollm2-135m-instruct")
    assert '" Paris"' in lines[3] and "kept" in lines[3]
    assert "greedy" in lines[4]
    assert lines[-1] == "1 of 49152 tokens can be sampled"


def test_lab_sample_raw_refuses_a_persona():
    result = run_cli("lab", "sample", "--raw", "-s", "Be brief.", "Hi")
    assert result.returncode == 2 and "--raw" in result.stderr


# -- lab compare and experiments -----------------------------------------------------------


COMPARE = [
    "lab",
    "compare",
    "Name a fruit.",
    "--variant",
    "temperature=0",
    "--variant",
    "temperature=1.5,top_k=0",
    "--seed",
    "5",
    "-n",
    "6",
]


def test_compare_is_deterministic_saved_listed_shown_and_rerun():
    first = run_cli(*COMPARE, "--json")
    second = run_cli(*COMPARE, "--json", "--no-save")
    assert first.returncode == 0, first.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["saved"] is True and b["saved"] is False
    assert [r["text"] for r in a["runs"]] == [r["text"] for r in b["runs"]]
    assert all(r["text"].strip() for r in a["runs"])
    assert [s["label"] for s in a["stats"]] == ["temperature=0", "temperature=1.5,top_k=0"]
    assert a["runs"][1]["settings"]["seed"] == 5 and a["runs"][1]["settings"]["top_k"] == 0

    listed = json.loads(run_cli("lab", "experiments", "list", "--json").stdout)
    assert [e["id"] for e in listed] == [a["id"]]  # --no-save saved nothing

    shown = run_cli("lab", "experiments", "show", a["id"][:6], "--json")
    assert json.loads(shown.stdout)["runs"] == a["runs"]

    again = run_cli("lab", "experiments", "rerun", a["id"][:6], "--json")
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["rerun_of"] == a["id"] and rerun["same_as_original"] == [True, True]
    listed = json.loads(run_cli("lab", "experiments", "list", "--json").stdout)
    assert [e["rerun_of"] for e in listed] == [a["id"], None]  # newest first


def test_compare_piped_prints_a_markdown_table():
    result = run_cli(
        "lab",
        "compare",
        "Say hi.",
        "-V",
        "temperature=0",
        "-V",
        "top_k=1",
        "--seed",
        "1",
        "-n",
        "4",
        "--runs",
        "2",
        "--no-save",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "> Say hi."
    assert lines[2] == "| variant | seed | reply | tokens | tok/s | finish |"
    rows = [line for line in lines[4:] if line.startswith("| ")]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| temperature=0", "1"],
        ["| temperature=0", "2"],
        ["| top_k=1", "1"],
        ["| top_k=1", "2"],
    ]
    assert "- temperature=0: 1 distinct of 2 replies" in result.stdout


def test_compare_bad_variant_is_a_usage_error_without_traceback():
    result = run_cli("lab", "compare", "Hi", "--variant", "temprature=1")
    assert result.returncode == 2
    assert result.stderr.startswith("chatterm: error: --variant 'temprature=1': unknown key")
    assert "Traceback" not in result.stderr


def test_experiments_list_is_empty_at_first_and_show_unknown_fails():
    listed = run_cli("lab", "experiments")
    assert listed.returncode == 0 and listed.stdout == ""
    assert "no experiments yet" in listed.stderr
    shown = run_cli("lab", "experiments", "show", "abc")
    assert shown.returncode == 2 and "no experiment 'abc'" in shown.stderr


# -- ask --logprobs / --show-probs ---------------------------------------------------------


def test_ask_logprobs_adds_per_token_probabilities_to_json():
    result = run_cli(
        "ask",
        "--temperature",
        "0",
        "--seed",
        "1",
        "-n",
        "6",
        "--json",
        "--logprobs",
        "3",
        "Name a colour.",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    tokens = data["tokens"]
    assert len(tokens) == data["stats"]["generated_tokens"] == 6
    for t in tokens:
        assert {"token", "id", "prob", "top"} <= set(t)
        assert len(t["top"]) == 3 and sum(c["prob"] for c in t["top"]) <= 1 + 1e-6
        assert set(t["top"][0]) >= {"token", "id", "prob"}
        # greedy: the chosen token is the likeliest one
        assert t["id"] == t["top"][0]["id"] and t["token"] == t["top"][0]["token"]
        assert abs(t["prob"] - t["top"][0]["prob"]) < 1e-5
    assert "".join(t["text"] for t in tokens) == data["text"]
    plain = json.loads(
        run_cli(
            "ask", "--temperature", "0", "--seed", "1", "-n", "6", "--json", "Name a colour."
        ).stdout
    )
    assert "tokens" not in plain and plain["text"] == data["text"]


def test_show_probs_in_a_pipe_is_plain_text():
    args = ["ask", "--temperature", "0", "--seed", "1", "-n", "6", "Name a colour."]
    coloured = run_cli(*args, "--show-probs")
    plain = run_cli(*args)
    assert coloured.returncode == 0, coloured.stderr
    assert coloured.stdout == plain.stdout and "\x1b[" not in coloured.stdout


def test_show_probs_on_a_terminal_colours_tokens(chatterm_home):
    out, err = run_on_terminal(
        "ask",
        "--temperature",
        "0",
        "--seed",
        "1",
        "-n",
        "8",
        "--show-probs",
        "Name a colour.",
        home=chatterm_home,
    )
    assert "\x1b[" in out and "token probability" in err
