"""A busy neighbour: does ``chatterm ask`` keep its share of the machine?

With one core kept busy by another program (``yes > /dev/null``, as the issue measured), the
default ``chatterm ask`` (chatterm picks the threads and adapts them, see
chatterm/engine/cpu_share.py) should decode at least 0.9x as fast as ``--threads 1``; on an idle
machine it should keep its speed against a fixed ``--threads N`` (N = its own default). Runs
alternate so drifting load hits both alike; medians give the ratios.

Usage::

    python scripts/busy_bench.py                 # 3 runs each, 256 tokens
    python scripts/busy_bench.py --runs 5 --json

Run it alone: other work on the machine is exactly what it measures.
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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROMPT = "Write a long story about a dragon who learns to fly."


def ask(tokens: int, home: str, threads: int | None) -> float:
    """Decode tok/s of one ``chatterm ask --json`` in a fresh process."""
    flags = ["--threads", str(threads)] if threads else []
    out = subprocess.run(
        [sys.executable, "-m", "chatterm", "ask", "--json", "--no-save", "--temperature", "0"]
        + ["--seed", "1", "--max-tokens", str(tokens), *flags, PROMPT],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "CHATTERM_HOME": home},
        check=True,
    )
    return float(json.loads(out.stdout)["stats"]["decode_tps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--tokens", type=int, default=256, help="reply length (default 256)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    from chatterm.hardware import default_threads

    n = default_threads()
    result: dict[str, Any] = {"default_threads": n, "runs": args.runs, "tokens": args.tokens}
    with tempfile.TemporaryDirectory() as home:
        idle_default, idle_fixed = [], []
        for _ in range(args.runs):
            idle_default.append(ask(args.tokens, home, None))
            idle_fixed.append(ask(args.tokens, home, n))
        busy_default, busy_one = [], []
        with open(os.devnull, "wb") as null:
            hog = subprocess.Popen(["yes"], stdout=null)
            try:
                for _ in range(args.runs):
                    busy_default.append(ask(args.tokens, home, None))
                    busy_one.append(ask(args.tokens, home, 1))
            finally:
                hog.kill()
                hog.wait()
    med = statistics.median
    result.update(
        idle_default=idle_default,
        idle_fixed=idle_fixed,
        busy_default=busy_default,
        busy_one_thread=busy_one,
        idle_ratio=med(idle_default) / med(idle_fixed),
        busy_ratio=med(busy_default) / med(busy_one),
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"idle: default {med(idle_default):.1f} tok/s, --threads {n} {med(idle_fixed):.1f}")
    print(f"      ratio {result['idle_ratio']:.3f} (target: unchanged, ~1.0)")
    print(f"busy: default {med(busy_default):.1f} tok/s, --threads 1 {med(busy_one):.1f}")
    print(f"      ratio {result['busy_ratio']:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
