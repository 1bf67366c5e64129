"""The Jinja sandbox shared by prompt files and models' chat templates.

Both run code the user did not write carefully (a downloaded GGUF's template, a prompt file from
a gist), so both get the immutable sandbox (attribute escapes raise) plus budgets: huge
repetitions and powers are refused before they allocate (``'a' * 10**9`` would otherwise take
seconds and gigabytes), and output size and render time are checked as output is produced.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

MAX_SECONDS = 2.0
MAX_EXPONENT = 64


class BudgetExceeded(Exception):
    """Rendering produced more than its character budget (``too_long`` false) or ran past its
    time budget (``too_long`` true). Callers turn this into their own one-line error."""

    def __init__(self, too_long: bool) -> None:
        super().__init__("took too long" if too_long else "produced too much text")
        self.too_long = too_long


def environment(max_chars: int, **options: Any) -> Any:
    """A sandboxed Jinja environment that refuses results larger than ``max_chars``."""
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BudgetEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    sized = isinstance(seq, (str, list, tuple)) and isinstance(n, int)
                    if sized and len(seq) * n > max_chars:
                        raise SecurityError("repetition result too large")
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError("exponent too large")
            return super().call_binop(context, operator, left, right)

    return BudgetEnvironment(**options)


def render_bounded(
    template: Any, context: Mapping[str, Any], *, max_chars: int, max_seconds: float = MAX_SECONDS
) -> str:
    """Render ``template`` chunk by chunk, raising :class:`BudgetExceeded` past either budget.
    Jinja's own errors (including the sandbox's ``SecurityError``) propagate unchanged."""
    deadline = time.monotonic() + max_seconds
    out: list[str] = []
    size = 0
    for chunk in template.generate(**context):
        out.append(chunk)
        size += len(chunk)
        if size > max_chars:
            raise BudgetExceeded(too_long=False)
        if time.monotonic() > deadline:
            raise BudgetExceeded(too_long=True)
    return "".join(out)
