"""What the attention view and the logit lens cost on one model: time and peak memory of one
capture of an N-token prompt (default 200).

    python scripts/inside_cost.py [MODEL.gguf] [--tokens 200] [--threads N]

Each view runs in a fresh process (peak RSS is per process), after the model is loaded; the
peak is the process's maximum resident memory minus what it held before the capture.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
from chatterm.engine.llama_engine import LlamaEngine
from chatterm.lab.attention import capture_attention
from chatterm.lab.lens import logit_lens

path, view, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) or None
engine = LlamaEngine(path, n_ctx=max(512, n + 64), threads=threads)
words = engine.token_ids("The cat sat on the mat because it was tired. " * n, add_bos=True)
tokens = words[:n]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
(capture_attention if view == "attention" else logit_lens)(engine, tokens)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"view": view, "tokens": len(tokens), "seconds": round(seconds, 2),
                  "peak_mib": round(peak / 1024, 1), "threads": engine.threads}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="GGUF path (default: the starter model)")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    model = args.model
    if model is None:
        from chatterm.catalog import starter_model_path

        model = str(starter_model_path())
    print(f"# {model}, {args.tokens} tokens")
    for view in ("attention", "lens"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, model, view, str(args.tokens), str(args.threads)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        print(json.dumps(json.loads(out)))


if __name__ == "__main__":
    main()
