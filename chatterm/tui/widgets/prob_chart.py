"""A bar chart of next-token candidates: their probabilities, which sampling stages kept them,
and their probabilities after temperature — one :class:`~chatterm.lab.distribution.Explanation`
drawn as text. The maths is the lab's (:func:`chatterm.lab.distribution.explain`); this widget
only draws what it is given."""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.widget import Widget

from chatterm.lab.distribution import Explanation, Row
from chatterm.lab.probs import band_colour
from chatterm.lab.records import visible

_EIGHTHS = " ▏▎▍▌▋▊▉"


def textual_colour(name: str | None) -> str:
    """The lab's band colours use rich's names; Textual spells ``dark_orange`` without the
    underscore."""
    return (name or "").replace("_", "")


def bar(fraction: float, width: int) -> str:
    """A horizontal bar ``width`` cells wide at probability 1, in eighths of a cell: before and
    after bars share the scale, so the reshaping shows as bars growing and shrinking."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part else "")
    return text.ljust(width)


def percent(p: float) -> str:
    if p >= 0.0995:
        return f"{100 * p:.1f}%"
    if p >= 0.0000995:
        return f"{100 * p:.2f}%"
    return "<0.01%"


def stages_line(expl: Explanation) -> Content:
    """The chain in one line: each active stage with its setting and how many tokens it left."""
    parts: list[str | tuple[str, str]] = [(f"{expl.vocab_size} tokens", "dim")]
    for stage in expl.stages:
        if stage.active:
            parts += [
                " → ",
                (stage.name, "bold"),
                f" {stage.setting} keeps ",
                (f"{stage.kept}", "$accent"),
            ]
    if expl.temperature > 0:
        parts += [" → ", ("temperature", "bold"), f" {expl.temperature:g}"]
    parts += [("  ·  ", "dim"), (f"{expl.survivors} can be sampled", "bold $accent")]
    return Content.assemble(*parts)


@dataclass(frozen=True)
class Layout:
    """Column widths for one chart width: wide charts name each stage in its column, narrow
    ones use one letter per stage (k, p, m, g) with the full names in the summary line."""

    piece: int
    bar: int
    final_bar: int
    stage: int

    @classmethod
    def fit(cls, width: int, stages: int) -> Layout:
        wide = width >= 90
        piece = 13 if width >= 70 else 10
        stage = 7 if wide else 2
        fixed = 1 + 4 + piece + 1 + 8 + stages * stage + 1 + 7
        room = max(3, width - fixed)
        if room < 12:  # too narrow for two bars: the final probability as a number only
            return cls(piece, room, 0, stage)
        bar = room * 3 // 5
        return cls(piece, bar, room - bar, stage)


def _mark(row: Row, stage: str, active: bool, order: list[str], width: int) -> tuple[str, str]:
    if not active:
        mark, style = "·", "dim"
    elif row.removed_by is None or order.index(row.removed_by) > order.index(stage):
        mark, style = "✓", "$success"
    elif row.removed_by == stage:
        mark, style = "✗", "bold $error"
    else:
        mark, style = " ", ""
    return (mark.center(width) if width > 2 else mark.ljust(width), style)


def _stage_head(name: str, width: int) -> str:
    if width > 2:
        return name[:width].center(width)
    return {"greedy": "g", "top-k": "k", "top-p": "p", "min-p": "m"}.get(name, name[:1]).ljust(
        width
    )


def chart_content(
    expl: Explanation,
    *,
    width: int = 100,
    chosen_id: int | None = None,
    title: str | Content | None = None,
    notes: tuple[str, ...] = (),
) -> Content:
    """The whole chart as one :class:`Content` ``width`` cells wide: title, chain summary, a
    header row, one row per candidate (raw probability bar, a ✓/✗ per stage, probability
    after temperature) and notes about what is approximate."""
    order = [s.name for s in expl.stages]
    lay = Layout.fit(width, len(order))
    lines: list[Content] = []
    if title is not None:
        lines.append(Content(title) if isinstance(title, str) else title)
    lines.append(stages_line(expl))
    final_label = "after temperature" if lay.final_bar >= 10 else "after T"
    if expl.temperature <= 0:
        final_label = "greedy pick"
    head: list[str | tuple[str, str]] = [
        (f"{'#':>4} {'token':<{lay.piece}} {'probability':<{lay.bar + 8}}", "dim")
    ]
    head += [(_stage_head(name, lay.stage), "dim") for name in order]
    head.append((f" {final_label}", "dim"))
    lines.append(Content.assemble(*head))
    for row in expl.rows:
        removed = row.removed_by is not None
        colour = textual_colour(band_colour(row.prob))
        style = "dim" if removed else ""
        parts: list[str | tuple[str, str]] = [
            ("▶" if row.token_id == chosen_id else " ", "bold $accent"),
            (f"{row.rank:>3} ", style),
            (f"{visible(row.piece, lay.piece):<{lay.piece}} ", "dim" if removed else "bold"),
            (bar(row.prob, lay.bar), f"{colour} {style}".strip()),
            (f" {percent(row.prob):>6} ", style),
        ]
        for stage in expl.stages:
            parts.append(_mark(row, stage.name, stage.active, order, lay.stage))
        if removed:  # narrow charts rely on the ✗ in the stage's column
            parts.append((f" cut by {row.removed_by}" if lay.final_bar else "  cut", "dim italic"))
        else:
            if lay.final_bar:
                parts += [" ", (bar(row.final_prob, lay.final_bar), "$accent")]
            parts.append((f" {percent(row.final_prob):>6}", "bold" if lay.final_bar else ""))
        lines.append(Content.assemble(*parts))
    if not expl.exact:
        lines.append(
            Content.styled(
                "≈ only these candidates are known: cut-offs below them and the final "
                "probabilities are estimates",
                "dim italic",
            )
        )
    lines += [Content.styled(note, "dim italic") for note in notes]
    return Content("\n").join(lines)


class ProbChart(Widget):
    """Shows one explanation, laid out for the width it has (redrawn when that changes);
    ``show`` replaces it, ``show_message`` shows a line of text instead."""

    DEFAULT_CSS = """
    ProbChart {
        height: auto;
        padding: 0 1;
        background: $boost;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.explanation: Explanation | None = None
        self._chosen: int | None = None
        self._title: str | Content | None = None
        self._notes: tuple[str, ...] = ()
        self._message = ""

    def show(
        self,
        expl: Explanation,
        *,
        chosen_id: int | None = None,
        title: str | Content | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.explanation = expl
        self._chosen, self._title, self._notes = chosen_id, title, notes
        self.refresh(layout=True)

    def show_message(self, text: str) -> None:
        self.explanation = None
        self._message = text
        self.refresh(layout=True)

    def render(self) -> Content:
        if self.explanation is None:
            return Content.styled(self._message, "dim italic")
        return chart_content(
            self.explanation,
            width=self.content_size.width or 100,
            chosen_id=self._chosen,
            title=self._title,
            notes=self._notes,
        )
