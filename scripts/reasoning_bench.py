#!/usr/bin/env python
"""Reasoning-model figures: KV reuse across thinking turns, and the cost of telling thinking apart.

1. Time to first token at turn 3 vs turn 1 of one conversation whose replies think (the
   template strips old thinking, so each turn re-evaluates only from the previous reply on).
2. Decode tok/s of a reply that thinks (every token through the reasoning splitter, the block
   closed by the thinking budget) vs a plain reply of the same length on the same model.

Without ``--model``, the model is a copy of the embedded SmolLM2 whose chat template opens
``<think>`` in its generation prompt (DeepSeek-R1's shape), so its replies start inside a
thinking block; the copy is written to a temporary directory and removed afterwards.
Medians over ``--reps`` interleaved repetitions; run it on an idle machine.

Usage: python scripts/reasoning_bench.py [--model X.gguf] [--reps 5] [--tokens 128] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SYSTEM = "You are a patient physics teacher. Think step by step before you answer. " * 8
TURNS = (
    "Why is the sky blue?",
    "Why is it red at sunset?",
    "And why are clouds white?",
)


def _reply(engine: Any, messages: list[Any], sampling: Any) -> dict[str, Any]:
    from chatterm.engine.events import Finished, PromptReady, Token

    start = time.perf_counter()
    first = 0.0
    thinking: list[str] = []
    answer: list[str] = []
    ready = finished = None
    for event in engine.generate(messages, sampling):
        if isinstance(event, Token):
            if not first and event.token_id >= 0:
                first = time.perf_counter() - start
            (thinking if event.reasoning else answer).append(event.text)
        elif isinstance(event, PromptReady):
            ready = event
        elif isinstance(event, Finished):
            finished = event
    assert ready is not None and finished is not None
    return {
        "ttft_s": first,
        "thinking": "".join(thinking),
        "answer": "".join(answer),
        "prompt_tokens": ready.prompt_tokens,
        "cached_tokens": ready.cached_tokens,
        "stats": finished.stats,
    }


def turns(engine: Any, tokens: int, budget: int) -> dict[str, Any]:
    """One three-turn conversation from a cold cache; figures per turn."""
    from chatterm.engine.events import ChatMessage
    from chatterm.sampling import SamplingSettings

    engine.llama.reset()  # a cold start for turn 1
    engine.llama._ctx.kv_cache_clear()
    sampling = SamplingSettings(temperature=0, seed=1, max_tokens=tokens, thinking_budget=budget)
    messages = [ChatMessage("system", SYSTEM)]
    out = []
    for question in TURNS:
        messages.append(ChatMessage("user", question))
        reply = _reply(engine, messages, sampling)
        out.append(reply)
        messages.append(ChatMessage("assistant", reply["answer"], reply["thinking"]))
        engine.warm(messages)  # as the chat app does while the user types
    return {
        "ttft_s": [r["ttft_s"] for r in out],
        "prompt_tokens": [r["prompt_tokens"] for r in out],
        "cached_tokens": [r["cached_tokens"] for r in out],
        "reasoning_tokens": [r["stats"].reasoning_tokens for r in out],
    }


def decode(
    engine: Any, plain_engine: Any, tokens: int, budget: int, plain_first: bool = False
) -> tuple[float, float]:
    """Decode tok/s of a thinking reply (``engine``: every token through the splitter, the
    block closed by the budget) and of a plain reply of the same length (``plain_engine``: the
    same weights with a template that never opens the block), in the order asked."""
    from chatterm.engine.events import ChatMessage
    from chatterm.sampling import SamplingSettings

    question = [ChatMessage("user", "Write a long story about a lighthouse keeper.")]
    thinking = SamplingSettings(temperature=0, seed=1, max_tokens=tokens, thinking_budget=budget)
    plain = SamplingSettings(temperature=0, seed=1, max_tokens=tokens, think=False)
    if plain_first:
        plain_tps = _reply(plain_engine, question, plain)["stats"].decode_tps
        thinking_tps = _reply(engine, question, thinking)["stats"].decode_tps
    else:
        thinking_tps = _reply(engine, question, thinking)["stats"].decode_tps
        plain_tps = _reply(plain_engine, question, plain)["stats"].decode_tps
    return thinking_tps, plain_tps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a reasoning model's GGUF (default: SmolLM2, R1-style)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per reply")
    parser.add_argument("--budget", type=int, default=32, help="thinking budget per reply")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from chatterm.catalog import starter_model_path
    from chatterm.engine.llama_engine import LlamaEngine
    from tests.reasoning.ggufs import R1_STYLE_TEMPLATE, copy_with_template

    starter = starter_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            path = Path(args.model)
        else:
            assert starter is not None, "the starter model is not installed"
            path = copy_with_template(starter, Path(tmp) / "r1-style.gguf", R1_STYLE_TEMPLATE)
        engine = LlamaEngine(path, n_ctx=4096, threads=args.threads)
        # The same weights with a template that never opens the block: the plain reply. (With
        # --model, the same model: its reply is plain when it does not think.)
        plain_engine = LlamaEngine(starter or path, n_ctx=4096, threads=args.threads)
        if args.model:
            plain_engine.close()
            plain_engine = engine
        runs: list[dict[str, Any]] = []
        rates: list[tuple[float, float]] = []
        decode(engine, plain_engine, args.tokens, args.budget)  # warm both models up, untimed
        for rep in range(args.reps):
            runs.append(turns(engine, args.tokens, args.budget))
            # Alternate which reply goes first, so neither always runs on a warmer machine.
            rates.append(decode(engine, plain_engine, args.tokens, args.budget, rep % 2 == 1))
        if plain_engine is not engine:
            plain_engine.close()
        engine.close()

    def med(values: list[float]) -> float:
        return float(statistics.median(values))

    t1 = med([r["ttft_s"][0] for r in runs])
    t3 = med([r["ttft_s"][2] for r in runs])
    thinking_tps = med([r[0] for r in rates])
    plain_tps = med([r[1] for r in rates])
    result = {
        "model": str(args.model or "smollm2 (R1-style template copy)"),
        "reps": args.reps,
        "tokens": args.tokens,
        "thinking_budget": args.budget,
        "turn1_ttft_s": t1,
        "turn3_ttft_s": t3,
        "turn3_over_turn1": t3 / t1 if t1 else float("nan"),
        "turn_prompt_tokens": runs[-1]["prompt_tokens"],
        "turn_cached_tokens": runs[-1]["cached_tokens"],
        "turn_reasoning_tokens": runs[-1]["reasoning_tokens"],
        "thinking_decode_tps": thinking_tps,
        "plain_decode_tps": plain_tps,
        "thinking_over_plain": thinking_tps / plain_tps if plain_tps else float("nan"),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"model: {result['model']}, {args.reps} reps, {args.tokens} tokens per reply")
    print(
        f"time to first token: turn 1 {t1 * 1000:.0f} ms, turn 3 {t3 * 1000:.0f} ms "
        f"(ratio {result['turn3_over_turn1']:.2f}); prompt tokens per turn "
        f"{result['turn_prompt_tokens']}, reused from the KV cache {result['turn_cached_tokens']}"
    )
    print(
        f"decode: thinking reply {thinking_tps:.1f} tok/s, plain reply {plain_tps:.1f} tok/s "
        f"(ratio {result['thinking_over_plain']:.3f})"
    )


if __name__ == "__main__":
    main()
