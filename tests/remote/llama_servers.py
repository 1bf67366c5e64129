"""llama.cpp's own ``llama-server`` and RPC workers (``ggml-rpc-server``) on 127.0.0.1, built
from the llama.cpp in llama-cpp-python's sdist by ``scripts/build_llama_server.py``.

No pytest here, so ``scripts/remote_speed.py`` starts the same setups. Every process runs
with one thread: llama.cpp's threads spin at barriers, and several processes on a small
machine slow each other far more than their share.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2"
N_CTX = 2048
START_TIMEOUT = 120.0


def build_script() -> ModuleType:
    path = REPO / "scripts" / "build_llama_server.py"
    spec = importlib.util.spec_from_file_location("build_llama_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def binaries() -> dict[str, str]:
    """Paths of the built binaries, built first if this machine has none yet (49 minutes with
    two jobs on two cores shared with other work). Raises ``RuntimeError`` when it fails."""
    return build_script().ensure_built()  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL: no chance to close connections cleanly, as when a machine dies."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


@dataclass
class LlamaServer(Process):
    api_key: str | None = None
    workers: list[Process] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        super().stop()
        for worker in self.workers:
            worker.stop()


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with log.open("wb") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )


def start_rpc_worker(log: Path, port: int | None = None, threads: int = 1) -> Process:
    """One RPC worker; returns once it accepts connections."""
    port = port or free_port()
    args = [binaries()["rpc_server"], "-H", "127.0.0.1", "-p", str(port), "-t", str(threads)]
    worker = Process(_spawn(args, log), port, log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if worker.process.poll() is not None:
            raise RuntimeError(f"the RPC worker exited early:\n{worker.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return worker
        except OSError:
            if time.monotonic() > deadline:
                worker.stop()
                raise RuntimeError(f"the RPC worker did not start:\n{worker.log_tail()}") from None
            time.sleep(0.1)


def start_llama_server(
    model: Path,
    log: Path,
    *,
    api_key: str | None = None,
    workers: list[Process] | None = None,
    port: int | None = None,
    threads: int = 1,
    extra: tuple[str, ...] = (),
) -> LlamaServer:
    """llama-server on ``model`` (served as ``smollm2``), one slot of ``N_CTX`` tokens, flash
    attention on as in the local engine. With ``workers``, every layer is offloaded to them
    over RPC (``--rpc … -ngl 99``). Returns once ``/v1/models`` answers.

    ``--no-cache-prompt``: each request is evaluated from scratch, as a fresh local engine
    does; reusing a cached prefix with flash attention moves logits enough to flip a greedy
    choice (see FACTS.md), which would make the replies' comparison depend on test order.
    """
    port = port or free_port()
    args = [
        binaries()["llama_server"], "-m", str(model), "--alias", MODEL,
        "--host", "127.0.0.1", "--port", str(port), "-c", str(N_CTX), "-np", "1",
        "-fa", "on", "-t", str(threads), "-tb", str(threads), "--no-cache-prompt", "--no-webui",
    ]  # fmt: skip
    if api_key:
        args += ["--api-key", api_key]
    if workers:
        args += ["--rpc", ",".join(f"127.0.0.1:{w.port}" for w in workers), "-ngl", "99"]
    args += list(extra)
    server = LlamaServer(_spawn(args, log), port, log, api_key, list(workers or []))
    request = urllib.request.Request(f"{server.base_url}/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"llama-server exited early:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return server
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"llama-server did not start:\n{server.log_tail()}") from None
            time.sleep(0.2)


def start_rpc_setup(
    model: Path, logs: Path, *, api_key: str | None = None, threads: int = 1
) -> LlamaServer:
    """Two RPC workers and a llama-server that offloads all layers to them."""
    workers = [start_rpc_worker(logs / f"rpc-{i}.log", threads=threads) for i in (1, 2)]
    try:
        return start_llama_server(
            model, logs / "llama-server-rpc.log", api_key=api_key, workers=workers, threads=threads
        )
    except BaseException:
        for worker in workers:
            worker.stop()
        raise
