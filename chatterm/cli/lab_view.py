"""How the lab's results look: rich on a terminal, plain text or Markdown in a pipe, or JSON.

Rich is imported inside the functions that draw, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from chatterm.engine.base import TokenPiece
from chatterm.lab.distribution import Distribution, Explanation
from chatterm.lab.experiments import Experiment

CHIP_STYLES = ("black on #8ec5ff", "black on #ffd28e", "black on #b5e8a0", "black on #e3b5ff")
SPECIAL_STYLE = "bold white on #a4508b"
BLOCKS = " ▏▎▍▌▋▊▉█"


def is_terminal() -> bool:
    return sys.stdout.isatty()


def visible(piece: str) -> str:
    """Whitespace made visible for chips: a space as ·, a newline as ↵, a tab as →."""
    return piece.replace(" ", "·").replace("\n", "↵").replace("\t", "→")


def bar(fraction: float, width: int = 20) -> str:
    """A horizontal bar of ``width`` cells, in eighths, for 0 ≤ fraction ≤ 1."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[part] if part else "")).ljust(width)


def percent(p: float) -> str:
    if p == 0:
        return "0"
    if p < 0.0001:
        return f"{p * 100:.0e}%"
    return f"{p * 100:.2f}%"


# -- tokens --------------------------------------------------------------------------------


def tokens_json(pieces: Sequence[TokenPiece]) -> str:
    return json.dumps(
        {
            "tokens": [
                {
                    "id": p.token_id,
                    "piece": p.piece,
                    "special": p.special,
                    "byte_fallback": p.byte_fallback,
                }
                for p in pieces
            ],
            "count": len(pieces),
        },
        ensure_ascii=False,
    )


def print_tokens(pieces: Sequence[TokenPiece], *, as_json: bool) -> None:
    if as_json:
        print(tokens_json(pieces))
    elif is_terminal():
        _tokens_rich(pieces)
    else:
        width = max((len(str(p.token_id)) for p in pieces), default=1)
        for p in pieces:
            kind = "  special" if p.special else "  byte" if p.byte_fallback else ""
            print(f"{p.token_id:>{width}}  {json.dumps(p.piece, ensure_ascii=False)}{kind}")
        print(f"{len(pieces)} tokens")


def print_token_comparison(
    rows: Sequence[tuple[str, Sequence[TokenPiece]]], *, as_json: bool
) -> None:
    """How several models split the same text: one line per model, in the order given."""
    if as_json:
        models = [{"model": name, **json.loads(tokens_json(pieces))} for name, pieces in rows]
        print(json.dumps({"models": models}, ensure_ascii=False))
        return
    width = max(len(name) for name, _ in rows)
    if is_terminal():
        from rich.console import Console
        from rich.text import Text

        console = Console(highlight=False)
        for name, pieces in rows:
            line = Text(f"{name:<{width}}  {len(pieces):>4} tokens  ", style="bold")
            for i, p in enumerate(pieces):
                style = SPECIAL_STYLE if p.special else CHIP_STYLES[i % len(CHIP_STYLES)]
                line.append(visible(p.piece) or "∅", style=style)
            console.print(line)
        return
    for name, pieces in rows:
        shown = " ".join(json.dumps(p.piece, ensure_ascii=False) for p in pieces)
        print(f"{name:<{width}}  {len(pieces):>4} tokens  {shown}")


def _tokens_rich(pieces: Sequence[TokenPiece]) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)
    chips = Text()
    ids = Text()
    for i, p in enumerate(pieces):
        style = SPECIAL_STYLE if p.special else CHIP_STYLES[i % len(CHIP_STYLES)]
        label = visible(p.piece) or "∅"
        chips.append(label, style=style + (" italic" if p.byte_fallback else ""))
        if p.piece.endswith("\n"):
            chips.append("\n")
        ids.append(str(p.token_id), style=style)
        ids.append(" ")
    console.print(chips)
    console.print(ids)
    notes = [f"{len(pieces)} tokens"]
    specials = sum(p.special for p in pieces)
    fallbacks = sum(p.byte_fallback for p in pieces)
    if specials:
        notes.append(f"{specials} special")
    if fallbacks:
        notes.append(
            f"{fallbacks} byte pieces (<0x..> = one byte of a character split across tokens)"
        )
    console.print(" · ".join(notes), style="dim")


# -- sampling explained --------------------------------------------------------------------


def stage_summary(expl: Explanation) -> str:
    parts = []
    for s in expl.stages:
        parts.append(f"{s.name} {s.setting}: {s.kept} left" if s.active else f"{s.name} off")
    if expl.temperature > 0:
        parts.append(f"temperature {expl.temperature:g}")
    return " · ".join(parts)


def print_explanation(
    dist: Distribution, expl: Explanation, *, as_json: bool, raw: bool = False
) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "model": dist.model,
                    "prompt_tokens": dist.prompt_tokens,
                    "raw": raw,
                    **expl.to_dict(),
                },
                ensure_ascii=False,
            )
        )
        return
    header = f"{dist.model}: next token after {dist.prompt_tokens} prompt tokens"
    if is_terminal():
        _explanation_rich(header, expl)
        return
    print(f"# {header}")
    print(f"# {stage_summary(expl)}")
    print(f"{'rank':>4}  {'prob':>8}  {'final':>8}  {'stage':<7}  token")
    for r in expl.rows:
        stage = r.removed_by or "kept"
        piece = json.dumps(r.piece, ensure_ascii=False)
        print(f"{r.rank:>4}  {r.prob:>8.4f}  {r.final_prob:>8.4f}  {stage:<7}  {piece}")
    print(_survivor_note(expl))


def _survivor_note(expl: Explanation) -> str:
    note = f"{expl.survivors} of {expl.vocab_size} tokens can be sampled"
    if not expl.exact:
        note += " (approximate: only the top candidates are known)"
    return note


def _explanation_rich(header: str, expl: Explanation) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    table = Table(title=header, caption=stage_summary(expl), box=None, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("token")
    table.add_column("model probability", no_wrap=True)
    table.add_column("after sampling", no_wrap=True)
    table.add_column("stage", no_wrap=True)
    for r in expl.rows:
        dim = "" if r.survived else "dim"
        token = Text(visible(r.piece) or "∅", style="bold" if r.survived else "dim")
        raw = Text(bar(r.prob, 16), style="cyan " + dim)
        raw.append(f" {percent(r.prob):>7}", style=dim)
        final = Text(bar(r.final_prob, 16), style="green")
        final.append(f" {percent(r.final_prob):>7}" if r.survived else "", style="")
        stage = (
            Text("kept", style="green") if r.survived else Text(f"✗ {r.removed_by}", style="red")
        )
        table.add_row(str(r.rank), token, raw, final, stage)
    console.print(table)
    console.print(_survivor_note(expl), style="dim")


# -- compare and experiments ---------------------------------------------------------------


def experiment_json(exp: Experiment, **extra: Any) -> str:
    return json.dumps({**exp.to_dict(), **extra}, ensure_ascii=False)


def print_experiment(exp: Experiment, *, as_json: bool, **extra: Any) -> None:
    if as_json:
        print(experiment_json(exp, **extra))
    elif is_terminal():
        _experiment_rich(exp)
    else:
        print(experiment_markdown(exp))


def _md_cell(text: str) -> str:
    return text.strip().replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>") or " "


def experiment_markdown(exp: Experiment) -> str:
    """A Markdown table: one row per variant and seed, with the reply and its stats."""
    lines = ["> " + line for line in exp.prompt.splitlines() or [""]]
    lines.append("")
    # A thinking column only when some reply thought (reasoning models).
    thought = any(r.reasoning for r in exp.runs)
    if thought:
        lines.append("| variant | seed | reply | tokens | thinking | tok/s | finish |")
        lines.append("| --- | --- | --- | ---: | ---: | ---: | --- |")
    else:
        lines.append("| variant | seed | reply | tokens | tok/s | finish |")
        lines.append("| --- | --- | --- | ---: | ---: | --- |")
    for r in sorted(exp.runs, key=lambda r: (r.variant, r.run)):
        tps = r.stats.get("decode_tps", 0.0)
        finish = r.finish_reason if not r.error else f"error: {r.error}"
        thinking = f" {r.stats.get('reasoning_tokens', 0)} |" if thought else ""
        lines.append(
            f"| {_md_cell(r.label)} | {r.settings.seed} | {_md_cell(_answer(r))} | "
            f"{r.stats.get('generated_tokens', 0)} |{thinking} {tps:.1f} | {_md_cell(finish)} |"
        )
    if exp.n_runs > 1:
        lines.append("")
        for s in exp.summaries():
            lines.append(
                f"- {s.label}: {s.distinct} distinct of {s.runs} replies, "
                f"{s.mean_tokens:.1f} tokens on average"
            )
    return "\n".join(lines)


def _answer(run: Any) -> str:
    """A run's answer; a run that only thought says so instead of showing nothing."""
    if run.text.strip() or not run.reasoning:
        return str(run.text)
    return "(no answer: all thinking)"


def _thinking_line(run: Any) -> str:
    from chatterm.engine.reasoning import stats_summary

    return stats_summary(run.stats) if run.reasoning else ""


def _experiment_rich(exp: Experiment) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    table = Table(title=f"experiment {exp.short_id}", show_lines=True, expand=True)
    if exp.n_runs > 1:
        table.add_column("seed", style="dim", no_wrap=True)
    for s in exp.summaries():
        table.add_column(s.label, ratio=1, overflow="fold")
    by_cell = {(r.variant, r.run): r for r in exp.runs}
    n_variants = len(exp.variants)
    for run in range(exp.n_runs):
        cells: list[Any] = [str(exp.seed + run)] if exp.n_runs > 1 else []
        for v in range(n_variants):
            r = by_cell.get((v, run))
            if r is None or not r.done:
                cells.append(Text("(not run)", style="dim"))
            elif r.error:
                cells.append(Text(f"{r.text}\n[error: {r.error}]", style="red"))
            else:
                cell = Text()
                if _thinking_line(r):
                    cell.append(f"▸ {_thinking_line(r)}\n", style="dim italic")
                cell.append(_answer(r).strip())
                cells.append(cell)
        table.add_row(*cells)
    stats: list[Any] = ["stats"] if exp.n_runs > 1 else []
    for s in exp.summaries():
        line = f"{s.mean_tokens:.0f} tokens · {s.mean_decode_tps:.1f} tok/s"
        if s.mean_reasoning_tokens:
            line += f" · {s.mean_reasoning_tokens:.0f} thinking"
        if exp.n_runs > 1:
            line += f" · {s.distinct}/{s.runs} distinct"
        stats.append(Text(line, style="dim"))
    table.add_row(*stats)
    console.print(Text("prompt: ", style="dim") + Text(exp.prompt))
    console.print(table)


def print_experiment_list(experiments: Sequence[Experiment], *, as_json: bool) -> None:
    rows = [
        {
            "id": e.id,
            "created": e.created,
            "prompt": e.prompt,
            "variants": [v.spec for v in e.variants],
            "runs_per_variant": e.n_runs,
            "seed": e.seed,
            "rerun_of": e.rerun_of,
        }
        for e in experiments
    ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        print("no experiments yet: run `chatterm lab compare PROMPT --variant …`", file=sys.stderr)
        return
    if is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, expand=True)
        for name, width in (("id", 8), ("created", 16), ("variants", 30), ("runs", 4)):
            table.add_column(name, no_wrap=True, overflow="ellipsis", width=width)
        table.add_column("prompt", no_wrap=True, overflow="ellipsis", ratio=1)
        for e in experiments:
            table.add_row(
                e.short_id,
                e.created[:16].replace("T", " "),
                ", ".join(v.spec for v in e.variants),
                str(e.n_runs),
                _one_line(e.prompt, 60),
            )
        Console(highlight=False).print(table)
        return
    for e in experiments:
        print(
            "\t".join(
                [
                    e.short_id,
                    e.created,
                    " ; ".join(v.spec for v in e.variants),
                    str(e.n_runs),
                    _one_line(e.prompt, 80),
                ]
            )
        )


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
