"""Measure the chat app's two speed targets on the real model, in one run.

1. Decode speed inside the TUI vs ``chatterm ask`` on the same model and settings: the TUI runs
   headless (``App.run_test``) in a fresh process, sends one long prompt and reads the engine's
   ``Finished.stats.decode_tps`` from the saved reply; ``chatterm ask --json`` runs as a
   subprocess with the same flags. Runs alternate (ask, tui, ask, tui, …) so background load
   hits both alike; the medians give the ratio (target ≥ 0.85).
2. The time to open a 500-message conversation from the store, until the transcript has been
   laid out and painted (target < 1 s).

Usage::

    python scripts/tui_bench.py                 # 3 runs each, 512 tokens
    python scripts/tui_bench.py --runs 5 --tokens 768 --json
    python scripts/tui_bench.py --intervals 0.1,0.25   # what batching more often costs

Each run uses a throwaway CHATTERM_HOME. On a 2-core machine, close other work first: the
decode threads and the UI compete for the same cores, which is what this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROMPT = "Write a long story about a dragon who learns to fly."
SIZE = (120, 40)


def settings_args(tokens: int) -> list[str]:
    return ["--temperature", "0", "--seed", "1", "--max-tokens", str(tokens)]


def run_ask(tokens: int, home: str) -> dict[str, Any]:
    """One ``chatterm ask --json`` in a subprocess; its stats."""
    out = subprocess.run(
        [sys.executable, "-m", "chatterm", "ask", "--json", "--no-save", *settings_args(tokens)]
        + [PROMPT],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "CHATTERM_HOME": home},
        check=True,
    )
    data = json.loads(out.stdout)
    return {"decode_tps": data["stats"]["decode_tps"], "tokens": data["stats"]["generated_tokens"]}


def run_child(kind: str, tokens: int, home: str, interval: float | None = None) -> dict[str, Any]:
    extra = ["--interval", str(interval)] if interval is not None else []
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--tokens", str(tokens), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "CHATTERM_HOME": home},
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- children (run in a fresh process with CHATTERM_HOME set) --------------------------------


async def tui_decode(tokens: int, interval: float | None) -> dict[str, Any]:
    """Send the prompt in the headless app and read the saved reply's stats."""
    from chatterm.sampling import SamplingSettings
    from chatterm.tui import streaming

    if interval is not None:
        streaming.FLUSH_INTERVAL = interval
    from chatterm.services import EngineOptions, load_engine
    from chatterm.tui.factory import make_app, make_services

    engine = load_engine(EngineOptions())
    services = make_services(engine=engine)
    app = make_app(services)
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.chat.apply_settings(SamplingSettings(temperature=0, seed=1, max_tokens=tokens))
            await pilot.pause()
            app.chat.prompt.text = PROMPT
            await pilot.press("enter")
            await pilot.pause(0.1)
            while app.chat.job is not None:
                await asyncio.sleep(0.05)
            await pilot.pause()
            reply = services.store.active_path(app.chat.conversation.id)[-1]
    finally:
        services.store.close()
        engine.close()
    stats = reply.stats or {}
    return {"decode_tps": stats.get("decode_tps", 0.0), "tokens": stats.get("generated_tokens")}


REPLY = """Here is how it works, step by step:

1. The prompt is **tokenized**.
2. Each token is looked up in the embedding table.

```python
def answer(question: str) -> str:
    return model.generate(question)
```

That is all there is to it: `answer("hi")` returns a string.
"""


async def open_conversation() -> dict[str, Any]:
    """Fill the store with a 500-message conversation, then time opening it in the app (with
    the real model loaded, as a user has it: the context meter then tokenizes the history)."""
    from chatterm.services import EngineOptions, load_engine
    from chatterm.store import ConversationStore
    from chatterm.tui.factory import make_app, make_services
    from chatterm.tui.widgets.message_view import MessageView

    store = ConversationStore()
    conversation = store.create_conversation(title="five hundred messages")
    for i in range(250):
        store.add_user_message(conversation.id, f"Question {i}: how does step {i} work?")
        reply = store.start_assistant_message(conversation.id, model="bench")
        store.finish_assistant_message(reply.id, f"Answer {i}. {REPLY}")
    store.close()
    engine = load_engine(EngineOptions())
    services = make_services(engine=engine)
    app = make_app(services)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            painted_at: list[float] = []
            started = time.perf_counter()
            await app.chat.open_conversation(conversation.id)
            opened = time.perf_counter() - started
            # Until the new widgets have been laid out and the screen refreshed once.
            app.call_after_refresh(lambda: painted_at.append(time.perf_counter()))
            while not painted_at:
                await asyncio.sleep(0.001)
            painted = painted_at[0] - started
            mounted = len(list(app.chat.transcript.query(MessageView)))
            total = len(app.chat.transcript.entries)
            await pilot.pause()
    finally:
        services.store.close()
        engine.close()
    return {"opened_s": opened, "painted_s": painted, "mounted": mounted, "messages": total}


# -- orchestration ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--tokens", type=int, default=512, help="reply length (default 512)")
    parser.add_argument(
        "--intervals",
        default="",
        help="comma-separated token batch intervals (seconds) to compare, e.g. 0.1,0.25 "
        "(default: the app's own)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", choices=["tui", "open"], help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "tui":
        print(json.dumps(asyncio.run(tui_decode(args.tokens, args.interval))))
        return
    if args.child == "open":
        print(json.dumps(asyncio.run(open_conversation())))
        return

    from chatterm.tui.streaming import FLUSH_INTERVAL

    intervals = [float(x) for x in args.intervals.split(",") if x.strip()] or [FLUSH_INTERVAL]
    ask_runs: list[dict[str, Any]] = []
    tui_runs: dict[float, list[dict[str, Any]]] = {i: [] for i in intervals}
    with tempfile.TemporaryDirectory(prefix="chatterm-tui-bench-") as home:
        run_ask(16, home)  # warm the page cache with the model file
        for i in range(args.runs):
            ask_runs.append(run_ask(args.tokens, home))
            line = f"run {i + 1}: ask {ask_runs[-1]['decode_tps']:.1f} tok/s"
            for interval in intervals:
                tui_runs[interval].append(run_child("tui", args.tokens, home, interval))
                line += f", tui@{interval:g}s {tui_runs[interval][-1]['decode_tps']:.1f}"
            if not args.json:
                print(line, file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="chatterm-tui-bench-") as home:
        opened = run_child("open", args.tokens, home)

    ask_tps = statistics.median(r["decode_tps"] for r in ask_runs)
    tui = {
        interval: statistics.median(r["decode_tps"] for r in runs)
        for interval, runs in tui_runs.items()
    }
    result = {
        "tokens": args.tokens,
        "runs": args.runs,
        "ask_decode_tps": [round(r["decode_tps"], 2) for r in ask_runs],
        "ask_median": round(ask_tps, 2),
        "tui": {
            str(interval): {
                "decode_tps": [round(r["decode_tps"], 2) for r in tui_runs[interval]],
                "median": round(tps, 2),
                "ratio": round(tps / ask_tps, 3) if ask_tps else None,
            }
            for interval, tps in tui.items()
        },
        "open_500": {k: round(v, 3) if isinstance(v, float) else v for k, v in opened.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"decode tok/s, {args.tokens}-token reply, median of {args.runs}:")
    print(f"  {'chatterm ask':25s} {ask_tps:6.1f}")
    for interval, tps in tui.items():
        ratio = tps / ask_tps if ask_tps else float("nan")
        print(
            f"  TUI, batches every {interval:g} s {tps:6.1f}   ratio {ratio:.3f}  (target >= 0.85)"
        )
    print(
        f"open a {opened['messages']}-message conversation: {opened['painted_s']:.3f} s "
        f"to first paint ({opened['mounted']} messages mounted; target < 1 s)"
    )


if __name__ == "__main__":
    main()
