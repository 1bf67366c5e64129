"""`chatterm ask` through real subprocesses and pipes, on the real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, run_cli

GREEDY = ["--temperature", "0", "--seed", "1"]


def test_answer_goes_to_stdout_as_plain_text_when_piped():
    result = run_cli("ask", *GREEDY, "-n", "12", "Say hello.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "\x1b[" not in result.stdout  # no ANSI codes in a pipe
    assert result.stderr == ""  # status and stats only on a terminal


def test_stdin_comes_before_the_argument():
    piped = run_cli("ask", *GREEDY, "-n", "1", "--json", "Summarise.", input="Some text.\n")
    data = json.loads(piped.stdout)
    # the same reply as sending the merged text as one argument
    merged = run_cli("ask", *GREEDY, "-n", "1", "--json", "Some text.\n\nSummarise.")
    assert data["text"] == json.loads(merged.stdout)["text"]
    assert data["stats"]["prompt_tokens"] == json.loads(merged.stdout)["stats"]["prompt_tokens"]
    alone = run_cli("ask", *GREEDY, "-n", "1", "--json", "Summarise.")
    assert json.loads(alone.stdout)["stats"]["prompt_tokens"] < data["stats"]["prompt_tokens"]


def test_json_output_shape():
    result = run_cli("ask", *GREEDY, "-n", "6", "--json", "Name a colour.")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"text", "model", "settings", "finish_reason", "stats"}
    assert data["model"] == "smollm2-135m-instruct"
    assert data["settings"]["temperature"] == 0 and data["settings"]["seed"] == 1
    assert data["settings"]["max_tokens"] == 6
    assert data["stats"]["generated_tokens"] <= 6
    assert data["stats"]["decode_tps"] >= 0 and data["stats"]["prompt_tokens"] > 0


def test_same_seed_gives_the_same_answer():
    a = run_cli("ask", "--seed", "42", "-n", "10", "Tell me a joke.")
    b = run_cli("ask", "--seed", "42", "-n", "10", "Tell me a joke.")
    assert a.stdout == b.stdout and a.stdout.strip()


def test_stats_flag_prints_stats_to_stderr():
    result = run_cli("ask", *GREEDY, "-n", "4", "--stats", "Hi")
    assert "decode" in result.stderr and "tok/s" in result.stderr
    assert "tok/s" not in result.stdout


def test_system_prompt_is_used():
    plain = json.loads(run_cli("ask", *GREEDY, "-n", "1", "--json", "Hi").stdout)
    with_system = json.loads(
        run_cli("ask", *GREEDY, "-n", "1", "--json", "-s", "You are a pirate.", "Hi").stdout
    )
    assert with_system["stats"]["prompt_tokens"] != plain["stats"]["prompt_tokens"]


def test_empty_prompt_is_a_usage_error():
    result = run_cli("ask")
    assert result.returncode == 2
    assert "nothing to ask" in result.stderr
    assert "Traceback" not in result.stderr


def test_out_of_range_setting_is_a_usage_error():
    result = run_cli("ask", "--top-p", "3", "hi")
    assert result.returncode == 2
    assert result.stderr.strip() == "chatterm: error: top_p must be between 0 and 1, got 3"


def test_unknown_option_is_a_usage_error():
    result = run_cli("ask", "--temprature", "1", "hi")
    assert result.returncode == 2


def test_text_file_as_model_exits_3(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    result = run_cli("ask", "-m", str(notes), "hi")
    assert result.returncode == 3
    assert str(notes) in result.stderr and "GGUF" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_truncated_gguf_exits_3(tmp_path, starter_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(starter_path.read_bytes()[:5_000_000])
    result = run_cli("ask", "-m", str(cut), "hi")
    assert result.returncode == 3
    assert "truncated" in result.stderr and "Traceback" not in result.stderr


def test_missing_and_unknown_models_exit_3(tmp_path):
    missing = run_cli("ask", "-m", str(tmp_path / "nope.gguf"), "hi")
    assert missing.returncode == 3 and "not found" in missing.stderr
    unknown = run_cli("ask", "-m", "no-such-model", "hi")
    assert unknown.returncode == 3 and "chatterm pull" in unknown.stderr


def test_model_from_environment_variable(tmp_path):
    notes = tmp_path / "env.gguf"
    notes.write_text("x")
    result = run_cli("ask", "hi", env={"CHATTERM_MODEL": str(notes)})
    assert result.returncode == 3 and str(notes) in result.stderr


def test_input_too_long_for_the_window_exits_4():
    result = run_cli("ask", "--ctx-size", "256", "Summarise.", input="word " * 2000)
    assert result.returncode == 4
    assert "context window" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_keeps_the_partial_answer_and_exits_130(chatterm_home):
    env = {**os.environ, "CHATTERM_HOME": str(chatterm_home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatterm",
            "ask",
            *GREEDY,
            "-n",
            "2000",
            "Write a very long story about a lighthouse keeper.",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    assert proc.stdout is not None
    received = b""
    deadline = time.monotonic() + 60
    while len(received) < 40 and time.monotonic() < deadline:
        chunk = os.read(proc.stdout.fileno(), 64)
        if not chunk:
            break
        received += chunk
    assert len(received) >= 40, "the answer should stream before it ends"
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    full = (received + rest).decode()
    assert full.startswith(received.decode(errors="ignore")[:20])
    assert "interrupted" in err.decode()
    assert "Traceback" not in err.decode()


def test_help_documents_exit_codes():
    result = run_cli("ask", "--help")
    assert result.returncode == 0
    text = " ".join(run_cli("--help").stdout.split())
    assert "130 interrupted" in text and "4 input does not fit" in text
