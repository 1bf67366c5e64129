"""Check that chatterm renders a chat template exactly as its authors meant (as transformers'
apply_chat_template does).

Point it at a template file (``.jinja``, or any text file) or a GGUF model; it renders the
template with chatterm and with the reference renderer of ``tests/template_reference.py`` for
five conversations (user only; system + user; several turns; an assistant turn with a
``<think>`` block; content with markup, braces, emoji and blank lines) and prints one line per
conversation. For a GGUF the model's own BOS/EOS texts are used and the chat format chatterm
picks is named.

    python scripts/template_check.py ~/models/qwen3-0.6b-q4_k_m.gguf
    python scripts/template_check.py my-template.jinja

Exit status: 0 when every conversation renders identically (or both refuse), 1 when any
differs, 2 when the file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _load(path: Path) -> tuple[str, dict[str, str], str]:
    """The template source, the special tokens to render with, and a line about the format."""
    from chatterm.errors import ChattermError

    if path.suffix.lower() != ".gguf":
        return path.read_text(encoding="utf-8"), {"bos_token": "<s>", "eos_token": "</s>"}, ""
    from chatterm.engine.vocab import Vocabulary

    try:
        vocab = Vocabulary.load(path)
    except ChattermError as exc:
        raise SystemExit(f"template_check: {exc}") from None
    try:
        fmt = vocab.chat_format
        tokens = {"bos_token": vocab.bos_text, "eos_token": vocab.eos_text}
    finally:
        vocab.close()
    return fmt.source, tokens, f"chat format: {fmt.name} ({fmt.reason})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a template file or a GGUF model")
    args = parser.parse_args(argv)

    from chatterm.engine.chat_template import render_text
    from tests.template_reference import compare

    try:
        source, tokens, about = _load(args.path)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"template_check: cannot read {args.path}: {exc}", file=sys.stderr)
        return 2
    if about:
        print(about)
    results = compare(source, render_text, tokens)
    width = max(len(r.conversation) for r in results)
    for r in results:
        mark = "ok  " if r.agree else "DIFF"
        detail = f"  {r.detail}" if r.detail else ""
        print(f"{mark} {r.conversation:<{width}}  {r.outcome}{detail}")
    agree = sum(r.agree for r in results)
    print(f"{agree}/{len(results)} conversations render as transformers would")
    return 0 if agree == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
