"""How the attention and logit-lens views look: rich on a terminal, plain text in a pipe, JSON.

Rich is imported inside the functions that draw, so importing this module stays cheap.
"""

from __future__ import annotations

import json
from typing import Any

from chatterm.cli.lab_view import bar, is_terminal, percent, visible
from chatterm.lab.attention import Attention
from chatterm.lab.lens import Lens


def heat(weight: float) -> str:
    """A background colour for an attention weight in [0, 1]: dark grey through red to yellow
    (square-root scale, so small weights still show)."""
    w = max(0.0, min(1.0, weight)) ** 0.5
    r = int(40 + (255 - 40) * min(1.0, 2 * w))
    g = int(40 + (230 - 40) * max(0.0, 2 * w - 1))
    return f"#{r:02x}{g:02x}28"


def _selection(layer: int | None, head: int | None, a: Attention) -> str:
    where = "all layers" if layer is None else f"layer {layer} of 0–{a.layers - 1}"
    who = "all heads" if head is None else f"head {head} of 0–{a.heads - 1}"
    return f"{where}, {who}" + (" (averaged)" if layer is None or head is None else "")


def print_attention(
    a: Attention, *, layer: int | None, head: int | None, top: int, as_json: bool
) -> None:
    if as_json:
        print(json.dumps(a.to_dict(layer, head), ensure_ascii=False))
        return
    m = a.matrix(layer, head)
    if not is_terminal():
        print(f"# {a.model}: attention, {_selection(layer, head, a)}")
        print("position\ttoken\tattends to (weight)")
        for q, piece in enumerate(a.pieces):
            most = ", ".join(
                f"{k}:{visible(a.pieces[k])} {w:.3f}" for k, w in a.top(q, top, layer, head)
            )
            print(f"{q}\t{visible(piece)}\t{most}")
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)
    console.print(
        Text(f"{a.model} · {len(a.pieces)} tokens · {_selection(layer, head, a)}", style="bold")
    )
    console.print(
        Text(
            "A head is one of the layer's parallel attention patterns; each row shows how the "
            "token spreads its attention over the tokens before it (brighter = more).",
            style="dim",
        )
    )
    width = max(len(visible(p)) for p in a.pieces)
    for q, piece in enumerate(a.pieces):
        line = Text(f"{q:>4} {visible(piece):<{width}} ", style="bold")
        for k in range(q + 1):
            line.append(visible(a.pieces[k]), style=f"black on {heat(float(m[q, k]))}")
        most = "  ".join(f"{visible(a.pieces[k])} {w:.2f}" for k, w in a.top(q, top, layer, head))
        line.append(f"  → {most}", style="dim")
        console.print(line)


def print_lens(lens: Lens, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(lens.to_dict(), ensure_ascii=False))
        return
    last = lens.layers[-1].layer
    summary = (
        f"'{visible(lens.answer.piece)}' is the model's answer; it is the top choice from "
        f"layer {lens.first_layer} (layers 0–{last})"
    )
    if not is_terminal():
        print(f"# {lens.model}: logit lens at the last of {lens.prompt_tokens} tokens")
        for g in lens.layers:
            guesses = ", ".join(f"{visible(c.piece)} {percent(c.prob)}" for c in g.top)
            print(f"layer {g.layer}\t{guesses}\tanswer {percent(g.answer_prob)}")
        print(summary)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{lens.model}: what each layer would predict after {lens.prompt_tokens} tokens",
        title_justify="left",
    )
    table.add_column("layer", justify="right")
    for i in range(len(lens.layers[0].top)):
        table.add_column(f"#{i + 1}")
    table.add_column(f"p({visible(lens.answer.piece)})")
    for g in lens.layers:
        cells: list[Any] = [str(g.layer)]
        for c in g.top:
            style = "bold green" if c.token_id == lens.answer.token_id else ""
            cells.append(Text(f"{visible(c.piece)} {percent(c.prob)}", style=style))
        cells.append(Text(bar(g.answer_prob, 12), style="green"))
        table.add_row(*cells)
    console = Console(highlight=False)
    console.print(table)
    console.print(Text(summary, style="bold"))
