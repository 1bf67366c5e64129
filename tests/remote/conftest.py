"""Real OpenAI-compatible servers for the remote engine's tests, on 127.0.0.1, serving the
embedded SmolLM2 model: llama-cpp-python's own ``python -m llama_cpp.server``, and llama.cpp's
``llama-server`` alone and split over two RPC workers (``tests/remote/llama_servers.py``).

No mocks: the engine talks HTTP and SSE to a real server, which applies the GGUF's chat
template and samples with llama.cpp, so its replies can be compared with the local engine's.
The server runs with flash attention (like the local engine), so even the probabilities match.
"""

from __future__ import annotations

import importlib.util
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.remote.llama_servers import LlamaServer, start_llama_server, start_rpc_setup

KEY_ENV = "CHATTERM_TEST_REMOTE_KEY"
MODEL = "smollm2"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    api_key: str | None
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def disconnects(self) -> int:
        """How often the server has logged a client that went away mid-stream."""
        return self.log.read_text(errors="replace").count("Disconnected from client")

    def wait_for_disconnect(self, before: int) -> None:
        """Until the log reports one more client gone (the server checks after each token)."""
        deadline = time.monotonic() + 60
        while self.disconnects() == before:
            assert time.monotonic() < deadline, "the server never saw the stream close"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model_path: Path, log: Path, api_key: str | None = None) -> Server:
    """Start the server and wait until ``/v1/models`` answers (the model is loaded by then)."""
    if importlib.util.find_spec("sse_starlette") is None:
        pytest.fail("llama-cpp-python's server extra is missing: pip install -e '.[test]'")
    port = free_port()
    # One thread: llama.cpp's threads spin at barriers, and on a busy 2-core machine two of
    # them can make a reply 10x slower. Results do not depend on the thread count.
    threads = "1"
    args = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
        "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
        "--flash_attn", "true", "--n_threads", threads, "--n_threads_batch", threads,
    ]  # fmt: skip
    if api_key:
        args += ["--api_key", api_key]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, port, api_key, log)
    request = urllib.request.Request(f"{server.base_url}/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited early:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return server
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"the server did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def llama_server(starter_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session, requiring an API key (so every test also proves the key
    travels from the environment)."""
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    server = start_server(starter_path, log, api_key=secrets.token_hex(8))
    yield server
    server.stop()


@pytest.fixture
def key_env(llama_server: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The API key in the environment variable config.toml names, for this process and for
    subprocesses (``run_cli(env=…)``)."""
    assert llama_server.api_key
    monkeypatch.setenv(KEY_ENV, llama_server.api_key)
    return {KEY_ENV: llama_server.api_key}


def write_config(home: Path, text: str) -> Path:
    path = home / "config" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def endpoint_toml(name: str, base_url: str, api_key_env: str | None = KEY_ENV) -> str:
    key = f'api_key_env = "{api_key_env}"\n' if api_key_env else ""
    return f'[endpoints.{name}]\nbase_url = "{base_url}"\n{key}'


@pytest.fixture
def remote_home(chatterm_home: Path, llama_server: Server, key_env: dict[str, str]) -> Path:
    """CHATTERM_HOME whose config.toml defines ``local`` (the server) and ``down`` (a port
    nothing listens on)."""
    write_config(
        chatterm_home,
        endpoint_toml("local", llama_server.base_url)
        + endpoint_toml("down", f"http://127.0.0.1:{free_port()}/v1", None),
    )
    return chatterm_home


# -- llama.cpp's own llama-server, alone and over two RPC workers ----------------------------


@pytest.fixture(scope="session")
def llama_cpp_server(
    starter_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """llama-server on the embedded model, requiring an API key."""
    logs = tmp_path_factory.mktemp("llama-cpp-server")
    server = _started(lambda: start_llama_server(starter_path, logs / "server.log", api_key=_key()))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_rpc_server(
    starter_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """Two RPC workers and a llama-server offloading every layer to them, requiring a key."""
    logs = tmp_path_factory.mktemp("llama-rpc")
    server = _started(lambda: start_rpc_setup(starter_path, logs, api_key=_key()))
    yield server
    server.stop()


def _key() -> str:
    return secrets.token_hex(8)


def _started(start: Callable[[], LlamaServer]) -> LlamaServer:
    try:
        return start()
    except RuntimeError as exc:  # a failed build or start is a failure, never a skip
        pytest.fail(str(exc))


@pytest.fixture(params=["llama-server", "rpc"])
def real_server(request: pytest.FixtureRequest) -> LlamaServer:
    """Each test runs against llama-server alone and against llama-server over RPC."""
    name = "llama_cpp_server" if request.param == "llama-server" else "llama_rpc_server"
    server: LlamaServer = request.getfixturevalue(name)
    return server


@pytest.fixture
def real_home(
    chatterm_home: Path, real_server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """config.toml naming the server ``llama``; returns the key's environment for run_cli."""
    assert real_server.api_key
    write_config(chatterm_home, endpoint_toml("llama", real_server.base_url) + "timeout = 120\n")
    monkeypatch.setenv(KEY_ENV, real_server.api_key)
    return {KEY_ENV: real_server.api_key}
