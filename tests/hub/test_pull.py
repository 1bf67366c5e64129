"""`chatterm pull` end to end: the real CLI in a subprocess, the real huggingface_hub client,
and a real HTTP server (tests/hub/fake_hub.py) serving real GGUF files and real failures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from tests.conftest import REPO, run_cli
from tests.hub.conftest import STARTER_REPO
from tests.hub.fake_hub import sha256_of
from tests.hub.helpers import files_under, installed, one_line_error, run_on_terminal


def test_pull_starter_then_ask_with_the_pulled_name(fake_hub, models_dir, hub_assets):
    result = run_cli("pull", f"{STARTER_REPO}:Q4_K_M")
    assert result.returncode == 0, result.stderr
    name = f"{STARTER_REPO}:Q4_K_M"
    assert f"pulled {name}" in result.stdout
    pulled = models_dir / STARTER_REPO / "SmolLM2-135M-Instruct-Q4_K_M.gguf"
    assert sha256_of(pulled) == hub_assets.starter_sha256

    answer = run_cli(
        "ask",
        "-m",
        f"{STARTER_REPO}:q4_k_m",
        "--temperature",
        "0",
        "--seed",
        "1",
        "-n",
        "8",
        "--json",
        "hi",
    )
    assert answer.returncode == 0, answer.stderr
    data = json.loads(answer.stdout)
    assert data["model"] == name
    assert data["text"].strip()


def test_pull_without_quant_takes_q4_k_m_and_downloads_every_shard(fake_hub, models_dir):
    result = run_cli("pull", "test/split-GGUF")
    assert result.returncode == 0, result.stderr
    assert "no Q4_K_M" not in result.stderr  # the default was there: no fallback note
    entry = installed()["test/split-GGUF:Q4_K_M"]
    shards = [
        models_dir / f"test/split-GGUF/Q4_K_M/split-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)
    ]
    assert entry["path"] == str(shards[0])
    assert entry["files"] == [str(s) for s in shards]
    assert all(s.is_file() for s in shards)
    fetched = {r.path.rsplit("/", 1)[-1] for r in fake_hub.requests("GET", "/resolve/")}
    assert fetched == {s.name for s in shards}


def test_without_q4_k_m_the_chosen_fallback_is_named_on_stderr(fake_hub):
    result = run_cli("pull", "test/tiny-GGUF")
    assert result.returncode == 0, result.stderr
    assert "test/tiny-GGUF has no Q4_K_M; using Q5_K_M" in result.stderr
    assert "mmproj" not in result.stderr  # a vision projector is not a model to choose
    assert "test/tiny-GGUF:Q5_K_M" in installed()


def test_quant_tags_match_case_insensitively(fake_hub):
    result = run_cli("pull", "test/tiny-GGUF:q8_0")
    assert result.returncode == 0, result.stderr
    assert "test/tiny-GGUF:Q8_0" in installed()


def test_file_picks_an_exact_file(fake_hub, models_dir):
    result = run_cli("pull", "test/tiny-GGUF", "--file", "tiny-F16.gguf")
    assert result.returncode == 0, result.stderr
    assert installed()["test/tiny-GGUF:F16"]["path"] == str(
        models_dir / "test/tiny-GGUF/tiny-F16.gguf"
    )


def test_a_missing_quant_lists_what_exists(fake_hub):
    result = run_cli("pull", "test/tiny-GGUF:Q3_K_S")
    assert result.returncode == 3
    line = one_line_error(result)
    assert "no Q3_K_S quant in test/tiny-GGUF; available: F16, Q2_K, Q5_K_M, Q8_0" in line


def test_an_unknown_file_lists_the_gguf_files(fake_hub):
    result = run_cli("pull", "test/tiny-GGUF", "--file", "nope.gguf")
    assert result.returncode == 3
    assert "its GGUF files: tiny-F16.gguf" in one_line_error(result)


def test_pulling_again_is_instant_and_says_so(fake_hub):
    assert run_cli("pull", "test/tiny-GGUF:Q8_0").returncode == 0
    before = len(fake_hub.log)
    again = run_cli("pull", "test/tiny-GGUF:q8_0")
    assert again.returncode == 0
    assert "test/tiny-GGUF:Q8_0 is already present" in again.stdout
    assert len(fake_hub.log) == before  # not even a request to the Hub
    # Without a quant the repo is listed, but nothing is downloaded.
    assert run_cli("pull", "test/split-GGUF").returncode == 0
    downloads = len(fake_hub.requests("GET", "/resolve/"))
    again = run_cli("pull", "test/split-GGUF")
    assert "is already present" in again.stdout
    assert len(fake_hub.requests("GET", "/resolve/")) == downloads


def test_a_missing_repo_is_one_line_and_exit_1(fake_hub):
    result = run_cli("pull", "nobody/no-such-GGUF")
    assert result.returncode == 1
    line = one_line_error(result)
    assert "repository nobody/no-such-GGUF not found" in line and "HF_TOKEN" in line


def test_a_repo_without_gguf_is_exit_3(fake_hub):
    result = run_cli("pull", "test/no-gguf")
    assert result.returncode == 3
    assert "test/no-gguf has no GGUF model files" in one_line_error(result)


def test_a_gated_repo_says_how_to_authenticate(fake_hub, models_dir):
    result = run_cli("pull", "test/gated-GGUF")
    assert result.returncode == 1
    line = one_line_error(result)
    assert f"request access at {fake_hub.url}/test/gated-GGUF" in line
    assert "hf auth login" in line and "HF_TOKEN" in line
    assert not list(models_dir.rglob("*.gguf"))


def test_a_token_without_access_is_told_to_request_it(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_on_the_list")
    result = run_cli("pull", "test/gated-GGUF")
    assert result.returncode == 1
    assert "your Hugging Face token has no access yet" in one_line_error(result)


def test_hf_token_opens_a_gated_repo(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    result = run_cli("pull", "test/gated-GGUF")
    assert result.returncode == 0, result.stderr
    assert "test/gated-GGUF:Q4_K_M" in installed()
    assert fake_hub.requests("GET", "/resolve/")[-1].authorization == f"Bearer {fake_hub.token}"


def test_an_unreachable_hub_fails_in_one_line_before_any_retry(fake_hub, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    result = run_cli("pull", "test/tiny-GGUF:Q8_0")
    assert result.returncode == 1
    line = one_line_error(result)
    assert f"cannot reach http://127.0.0.1:{port} (connection refused)" in line
    assert "Retrying" not in result.stderr


def test_offline_mode_is_reported(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run_cli("pull", "test/tiny-GGUF:Q8_0")
    assert result.returncode == 1
    assert "HF_HUB_OFFLINE is set" in one_line_error(result)


def test_a_dropped_connection_is_resumed_with_a_range_request(fake_hub, models_dir, hub_assets):
    result = run_cli("pull", "test/flaky-GGUF:Q4_K_M")
    assert result.returncode == 0, result.stderr
    assert "the connection dropped; resuming" in result.stderr
    gets = fake_hub.requests("GET", "/resolve/")
    assert [g.status for g in gets] == [200, 206]
    assert gets[1].range is not None and gets[1].range != "bytes=0-"
    assert sha256_of(models_dir / "test/flaky-GGUF/flaky-Q4_K_M.gguf") == hub_assets.starter_sha256


def test_a_download_that_keeps_failing_leaves_nothing_behind(fake_hub, models_dir):
    """Shards 1 and 2 arrive; shard 3's connection is cut at the same place every time."""
    result = run_cli("pull", "test/broken-GGUF")
    assert result.returncode == 1
    line = one_line_error(result)
    assert "download of broken-Q4_K_M-00003-of-00003.gguf from test/broken-GGUF failed" in line
    assert "run the same pull again" in line
    assert files_under(models_dir) == []  # no shard, no .incomplete, no sidecar
    assert "test/broken-GGUF:Q4_K_M" not in installed()


def test_a_checksum_mismatch_deletes_the_file(fake_hub, models_dir):
    result = run_cli("pull", "test/corrupt-GGUF")
    assert result.returncode == 1
    assert "failed its checksum" in one_line_error(result)
    assert files_under(models_dir) == []
    assert "test/corrupt-GGUF:Q4_K_M" not in installed()


def test_a_file_that_is_no_gguf_is_not_kept(fake_hub, models_dir):
    result = run_cli("pull", "test/junk-GGUF")
    assert result.returncode == 3
    assert "test/junk-GGUF/junk-Q4_K_M.gguf is not a usable GGUF file" in one_line_error(result)
    assert files_under(models_dir) == []


def test_not_enough_disk_space_fails_before_downloading(fake_hub):
    result = run_cli("pull", "test/huge-GGUF")  # the listing says 1 PB
    assert result.returncode == 1
    line = one_line_error(result)
    assert "not enough disk space for test/huge-GGUF:Q4_K_M: it needs 1000.0 TB" in line
    assert fake_hub.requests(contains="/resolve/") == []


def test_an_invalid_name_is_a_usage_error(fake_hub):
    result = run_cli("pull", "just-a-name")
    assert result.returncode == 2
    assert "OWNER/NAME[:QUANT]" in one_line_error(result)


def test_ctrl_c_during_a_download_registers_nothing_and_deletes_the_partial_file(
    fake_hub, models_dir
):
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatterm", "pull", "test/slow-GGUF"],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        key = "test/slow-GGUF/slow-Q4_K_M.gguf"
        # Wait until part of the file is on disk (hf writes 10 MiB chunks).
        while fake_hub.bytes_sent.get(key, 0) < 25 << 20 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert list(models_dir.rglob("*.incomplete")), "the download should be under way"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "pull interrupted; nothing was registered" in stderr
    assert "Traceback" not in stderr
    assert files_under(models_dir) == []
    assert "test/slow-GGUF:Q4_K_M" not in installed()


def test_stale_partial_downloads_are_swept(fake_hub, models_dir):
    download = models_dir / "old/repo-GGUF/.cache/huggingface/download"
    download.mkdir(parents=True)
    stale, fresh = (
        download / "a1b2.etag.0123abcd.incomplete",
        download / "c3d4.etag.89ab.incomplete",
    )
    stale.write_bytes(b"x" * 5000)
    fresh.write_bytes(b"y" * 10)
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    result = run_cli("pull", "test/tiny-GGUF:Q8_0")
    assert result.returncode == 0, result.stderr
    assert "removed 1 stale partial download(s) (5.0 kB)" in result.stderr
    assert not stale.exists() and fresh.exists()  # a download may still be writing that one


def test_progress_bars_show_on_a_terminal_only(fake_hub):
    code, output = run_on_terminal(["pull", "test/split-GGUF"], answer="")
    assert code == 0, output
    for i in (1, 2, 3):  # huggingface_hub's own bar, one per shard, named after the file
        assert f"split-Q4_K_M-0000{i}-of-00003.gguf: 100%|" in output
    assert 'try it: chatterm ask -m test/split-GGUF:Q4_K_M "hello"' in output
    piped = run_cli("pull", "test/tiny-GGUF:Q8_0")
    assert piped.returncode == 0
    assert "%|" not in piped.stderr and "try it" not in piped.stderr


def test_a_damaged_model_is_downloaded_and_checked_again(fake_hub, models_dir):
    assert run_cli("pull", "test/tiny-GGUF:Q8_0").returncode == 0
    pulled = models_dir / "test/tiny-GGUF/tiny-Q8_0.gguf"
    pulled.unlink()
    listing = run_cli("models").stdout
    assert "(missing: pull or add it again)" in listing
    again = run_cli("pull", "test/tiny-GGUF:Q8_0")
    assert again.returncode == 0, again.stderr
    assert "pulled test/tiny-GGUF:Q8_0" in again.stdout
    assert pulled.is_file() and not installed()["test/tiny-GGUF:Q8_0"]["missing"]


def test_a_listed_path_outside_the_repo_folder_is_ignored(fake_hub, chatterm_home):
    result = run_cli("pull", "test/escape-GGUF")
    assert result.returncode == 3
    assert "has no GGUF model files" in one_line_error(result)
    assert not list(chatterm_home.parent.rglob("escape-Q4_K_M.gguf"))


def test_a_pull_pins_every_request_to_the_listed_commit(fake_hub):
    result = run_cli("pull", "test/tiny-GGUF:Q8_0")
    assert result.returncode == 0, result.stderr
    sha = fake_hub.repos["test/tiny-gguf"].sha
    seen = [(r.method, r.path) for r in fake_hub.log if "agent-harnesses" not in r.path]
    assert seen == [
        ("GET", "/api/models/test/tiny-GGUF"),
        ("GET", f"/api/models/test/tiny-GGUF/tree/{sha}?recursive=true&expand=false"),
        ("HEAD", f"/test/tiny-GGUF/resolve/{sha}/tiny-Q8_0.gguf"),
        ("GET", f"/test/tiny-GGUF/resolve/{sha}/tiny-Q8_0.gguf"),
    ]


def test_a_mirror_that_answers_404_says_so_not_try_again_later(tmp_path, monkeypatch):
    """A mirror (HF_ENDPOINT) without the Hub's error headers answers a bare 404."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from tests.hub.conftest import hub_environment

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    empty = tmp_path / "mirror"
    empty.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=empty))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        hub_environment(monkeypatch, url, tmp_path / "hf-home")
        result = run_cli("pull", "test/tiny-GGUF:Q8_0")
    finally:
        server.shutdown()
    assert result.returncode == 1
    line = one_line_error(result)
    assert "404" in line and "HF_ENDPOINT" in line and "try again later" not in line
