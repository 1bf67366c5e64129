"""How much ``chatterm ask``'s Markdown streaming costs on a terminal, against redrawing the
whole answer in one rich ``Live`` (what ask did before): seconds spent rendering and bytes
sent to the terminal while a long answer streams, a refresh after every write.

    python scripts/markdown_writer_bench.py [--sections 50] [--width 80] [--height 24]

The terminal is a rich Console writing to memory, so only chatterm's own work is measured.
"""

from __future__ import annotations

import argparse
import io
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown

from chatterm.cli.output import MarkdownWriter


def answer(sections: int) -> str:
    parts = []
    for i in range(sections):
        parts.append(
            f"## Section {i}\n\nParagraph {i}, long enough to wrap over more than one line on "
            f"an eighty-column terminal, number {i}.\n\n1. first {i}\n2. second {i}\n\n"
            f"```python\ndef f{i}():\n    return {i}\n```\n\n| a | b |\n|--:|:--|\n| {i} | x |\n"
        )
    return "\n".join(parts)


class WholeLive:
    """The baseline: the whole answer re-rendered in one Live on every refresh."""

    def __init__(self, console: Console) -> None:
        self.text = ""
        self.live = Live(console=console, auto_refresh=False, vertical_overflow="visible")
        self.live.start()

    def write(self, text: str) -> None:
        self.text += text
        self.live.update(Markdown(self.text), refresh=True)

    def close(self) -> None:
        self.live.stop()


def measure(make: Any, text: str, width: int, height: int) -> tuple[float, int]:
    sink = io.StringIO()
    console = Console(
        file=sink, force_terminal=True, width=width, height=height, color_system="truecolor"
    )
    writer = make(console)
    writer.INTERVAL = 0.0  # a refresh after every write, for both
    start = time.perf_counter()
    for i in range(0, len(text), 16):  # about four tokens per write
        writer.write(text[i : i + 16])
    writer.close()
    return time.perf_counter() - start, len(sink.getvalue().encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", type=int, default=50)
    parser.add_argument("--width", type=int, default=80)
    parser.add_argument("--height", type=int, default=24)
    args = parser.parse_args()
    text = answer(args.sections)
    print(f"answer: {len(text)} characters, a refresh every 16")
    for name, make in (("whole Live", WholeLive), ("MarkdownWriter", MarkdownWriter)):
        seconds, written = measure(make, text, args.width, args.height)
        print(f"{name:>14}: {seconds:6.2f} s rendering, {written / 1e6:6.2f} MB to the terminal")


if __name__ == "__main__":
    main()
