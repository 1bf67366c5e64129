#!/usr/bin/env python
"""Decode speed with a JSON Schema (llama.cpp's grammar sampler in chatterm's chain) vs without.

Both replies count upwards greedily at the same context depth: free text ("1, 2, 3, …") and a
schema-constrained ``{"numbers": [1, 2, 3, …]}``, so each runs to ``--tokens`` tokens; the
constrained one also with probabilities on, which adds the grammar's full pass per token. Reps are
interleaved (a noisy neighbour slows both alike); the medians of the engine's own decode tok/s
(first to last sampled token, prefill excluded) and their ratio are printed.

Usage: python scripts/schema_bench.py [--model X.gguf] [--reps 5] [--tokens 256] [--json]
Run it alone on an idle machine: two llama.cpp processes on few cores slow each other badly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = "Count from 1 to 1000, separated by commas."
SCHEMA = {
    "type": "object",
    "properties": {"numbers": {"type": "array", "items": {"type": "integer"}}},
    "required": ["numbers"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF path (default: the embedded starter model)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from chatterm import structured
    from chatterm.catalog import starter_model_path
    from chatterm.engine.events import ChatMessage, Finished, Token
    from chatterm.engine.llama_engine import LlamaEngine
    from chatterm.sampling import SamplingSettings

    path = args.model or starter_model_path()
    engine = LlamaEngine(path, n_ctx=2048, threads=args.threads)
    messages = [ChatMessage("user", PROMPT)]
    free = SamplingSettings(temperature=0, seed=1, max_tokens=args.tokens)
    shaped = free.replace(schema=structured.canonical(SCHEMA))
    # "schema+probs": with probabilities on, every token also gets the grammar's full pass
    # over the vocabulary (to mark forced tokens), as the lab and the chat app's view do.
    runs = (("free", free, 0), ("schema", shaped, 0), ("schema+probs", shaped, 1))
    rates: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    counts: dict[str, list[int]] = {name: [] for name, _, _ in runs}
    forced: list[int] = []
    try:
        for _ in range(args.reps):
            for name, settings, top in runs:
                events = list(engine.generate(messages, settings, top_logprobs=top))
                finished = events[-1]
                assert isinstance(finished, Finished) and finished.error is None
                rates[name].append(finished.stats.decode_tps)
                counts[name].append(finished.stats.generated_tokens)
                if top:
                    forced.append(sum(1 for e in events if isinstance(e, Token) and e.forced))
    finally:
        engine.close()
    free_tps = statistics.median(rates["free"])
    schema_tps = statistics.median(rates["schema"])
    probs_tps = statistics.median(rates["schema+probs"])
    result = {
        "model": str(path),
        "threads": engine.threads,
        "load_avg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "reps": args.reps,
        "tokens": {k: statistics.median(v) for k, v in counts.items()},
        "forced_tokens": statistics.median(forced) if forced else 0,
        "free_decode_tps": round(free_tps, 1),
        "schema_decode_tps": round(schema_tps, 1),
        "ratio": round(schema_tps / free_tps, 3) if free_tps else None,
        "schema_probs_decode_tps": round(probs_tps, 1),
        "ratio_with_probs": round(probs_tps / free_tps, 3) if free_tps else None,
        "runs": rates,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"decode without schema {free_tps:.1f} tok/s, with schema {schema_tps:.1f} tok/s: "
        f"ratio {result['ratio']}; with probabilities (a full grammar pass per token) "
        f"{probs_tps:.1f} tok/s, ratio {result['ratio_with_probs']} (median of {args.reps}, "
        f"{result['tokens']['schema']:.0f} tokens, {result['forced_tokens']:.0f} forced; "
        f"load {result['load_avg']})"
    )


if __name__ == "__main__":
    main()
