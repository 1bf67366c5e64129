"""The work and memory budget under which every Jinja render runs (see
:mod:`chatterm.jinja_sandbox`): the tick that counts steps and checks the clock and resident
memory, and the size checks made before anything that could allocate much.

Budgets: :data:`MAX_SECONDS` of wall time, :data:`MAX_STEPS` steps (loop turns, macro, filter
and function calls, intercepted operators), :data:`MAX_MEMORY` bytes of resident-memory growth,
and a per-use character limit for any single value.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

MAX_SECONDS = 2.0
MAX_STEPS = 2_000_000
MAX_MEMORY = 256 * 2**20
MAX_INT_BITS = 1 << 16
MAX_ITEMS = 100_000  # as Jinja's own range() limit
_TIME_EVERY = 16  # steps between clock reads
_MEMORY_EVERY = 1024  # steps between memory reads


class BudgetExceeded(Exception):
    """A render went past one of its budgets; ``str()`` says which, as a sentence fragment
    ("took longer than 2 s")."""


class Budget:
    __slots__ = ("steps", "deadline", "rss0", "max_seconds", "sizes")

    def __init__(self, max_seconds: float) -> None:
        self.sizes: dict[int, tuple[Any, int]] = {}  # id → (container, expanded size)
        self.steps = 0
        self.max_seconds = max_seconds
        self.deadline = time.monotonic() + max_seconds
        self.rss0 = _rss()

    def check(self) -> None:
        if self.steps > MAX_STEPS:
            raise BudgetExceeded(f"ran more than {MAX_STEPS:,} steps (loop turns, calls)")
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(f"took longer than {self.max_seconds:g} s")
        if self.steps % _MEMORY_EVERY < _TIME_EVERY and _rss() - self.rss0 > MAX_MEMORY:
            raise BudgetExceeded(f"needed more than {MAX_MEMORY // 2**20} MiB of memory")


_local = threading.local()


def _rss() -> int:
    """Resident memory of this process in bytes (Linux: now; elsewhere: the peak)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def begin(max_seconds: float) -> Budget | None:
    """Start a render's budget on this thread; returns the one it replaces (renders nest only
    when a template's filter renders another, never here, but restoring keeps it exact)."""
    previous: Budget | None = getattr(_local, "budget", None)
    _local.budget = Budget(max_seconds)
    return previous


def end(previous: Budget | None) -> None:
    """End the current render's budget, restoring ``previous``."""
    _local.budget = previous


def tick() -> None:
    """One step of work in the current render (a no-op outside :func:`render_bounded`)."""
    budget: Budget | None = getattr(_local, "budget", None)
    if budget is not None:
        budget.steps += 1
        if budget.steps % _TIME_EVERY == 0:
            budget.check()


# -- sizes -----------------------------------------------------------------------------------


MAX_DEPTH = 200


def expanded_size(value: Any, limit: int) -> int:
    """About how many characters ``value`` becomes as text (``str``, ``tojson``), counting a
    list shared twice twice; stops counting once past ``limit``.

    Each container's size is remembered for the rest of the render (the immutable sandbox
    cannot change a list or dict once built; namespaces are re-measured), so a structure nested
    into itself by doubling is measured in a step per level, never expanded. Raises
    :class:`BudgetExceeded` for nesting deeper than :data:`MAX_DEPTH`."""
    from jinja2.utils import Namespace

    budget: Budget | None = getattr(_local, "budget", None)
    memo: dict[int, tuple[Any, int]] = budget.sizes if budget is not None else {}

    def size(item: Any, depth: int) -> int:
        if isinstance(item, str):
            return len(item) + 2
        if isinstance(item, bool) or item is None or isinstance(item, float):
            return 8
        if isinstance(item, int):
            return item.bit_length() // 3 + 1
        if isinstance(item, bytes):
            return len(item)
        if isinstance(item, Namespace):
            return 16 + size(object.__getattribute__(item, "_Namespace__attrs"), depth + 1)
        if isinstance(item, (list, tuple, set, frozenset)):
            children: Any = item
            total = 2 + 2 * len(item)
        elif isinstance(item, dict):
            children = (x for pair in item.items() for x in pair)
            total = 2 + 4 * len(item)
        else:
            return 8
        hit = memo.get(id(item))
        if hit is not None and hit[0] is item:
            return hit[1]
        if depth > MAX_DEPTH:
            raise BudgetExceeded(f"nests values more than {MAX_DEPTH} deep")
        for child in children:
            if total > limit:
                break
            total += size(child, depth + 1)
        memo[id(item)] = (item, total)
        return total

    return size(value, 0)


def too_big(what: str, size: int, limit: int) -> BudgetExceeded:
    return BudgetExceeded(f"would build {what} of about {size:,} characters (limit {limit:,})")


def as_width(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


_DIGITS = re.compile(r"\d+")


def check_format(fmt: str, args: Any, limit: int) -> None:
    """``fmt % args`` / ``fmt.format(*args)``: widths and precisions, and each field filled
    with the largest argument, stay under ``limit``."""
    for digits in _DIGITS.findall(fmt):
        if len(digits) > 7 or int(digits) > limit:
            raise too_big("a formatted string", int(digits[:8]), limit)
    fields = fmt.count("%") + fmt.count("{")
    if fields:
        size = len(fmt) + fields * expanded_size(args, limit)
        if size > limit:
            raise too_big("a formatted string", size, limit)


def check_int_op(operator: str, left: int, right: int) -> None:
    if operator == "*":
        bits = left.bit_length() + right.bit_length()
    else:  # "**"
        bits = 0 if right <= 0 or abs(left) <= 1 else left.bit_length() * right
    if bits > MAX_INT_BITS:
        raise BudgetExceeded(f"would compute a number of about {bits:,} bits")


# -- guarded filters and calls ---------------------------------------------------------------


def _replace_size(s: str, old: str, new: str, count: Any = None) -> int:
    hits = len(s) + 1 if old == "" else s.count(old) if old else 0
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * (len(new) - len(old))


def pre_checks(limit: int) -> dict[str, Callable[..., None]]:
    """Size checks for the filters whose result size comes from an argument; each gets the
    filter's own arguments (value first) and raises before the filter allocates."""

    def need(what: str, size: int) -> None:
        if size > limit:
            raise too_big(what, size, limit)

    def center(value: Any, width: Any = 80) -> None:
        need("a centred string", as_width(width))

    def indent(value: Any, width: Any = 4, *_: Any, **__: Any) -> None:
        pad = len(width) if isinstance(width, str) else as_width(width)
        need("an indented string", len(str(value)) + (str(value).count("\n") + 1) * pad)

    def replace(value: Any, old: Any, new: Any, count: Any = None) -> None:
        if isinstance(old, str) and isinstance(new, str):
            need("a replaced string", _replace_size(str(value), old, new, count))

    def join(value: Any, d: Any = "", attribute: Any = None) -> None:
        if isinstance(value, (list, tuple)):
            need("a joined string", expanded_size(value, limit) + len(value) * len(str(d)))

    def batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
        need("a batch", as_width(linecount))

    def slice_(value: Any, slices: Any, fill_with: Any = None) -> None:
        need("slices", as_width(slices) * 10)

    def format_(value: Any, *args: Any, **kwargs: Any) -> None:
        check_format(str(value), kwargs or args, limit)

    def wordwrap(value: Any, width: Any = 79, break_long: Any = True, wrapstring: Any = None,
                 *_: Any, **__: Any) -> None:  # fmt: skip
        lines = len(str(value)) // max(as_width(width), 1) + str(value).count("\n") + 1
        need("a wrapped string", len(str(value)) + lines * len(str(wrapstring or "\n")))

    def tojson(value: Any, *args: Any, indent: Any = None, **kwargs: Any) -> None:
        pad = len(indent) if isinstance(indent, str) else as_width(indent)
        size = expanded_size(value, limit)
        need("JSON text", size * (1 + min(pad, limit)))

    def sum_(value: Any, attribute: Any = None, start: Any = 0) -> None:
        if isinstance(start, (str, list, tuple)) or (
            isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple)) for v in value)
        ):
            need("a sum", expanded_size(value, limit) * 2)

    return {
        "center": center,
        "indent": indent,
        "replace": replace,
        "join": join,
        "batch": batch,
        "slice": slice_,
        "format": format_,
        "wordwrap": wordwrap,
        "tojson": tojson,
        "sum": sum_,
    }


def guard_filter(name: str, func: Callable[..., Any], limit: int, pre: Any) -> Callable[..., Any]:
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        if len(args) > skip:
            size = expanded_size(args[skip], limit)
            if size > limit:
                raise too_big(f"text for |{name}", size, limit)
            if pre is not None:
                pre(*args[skip:], **kwargs)
        return func(*args, **kwargs)

    return guarded


def check_str_method(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], limit: int) -> Any:
    """Pre-checks for the ``str`` methods that can allocate much from small arguments; returns
    the (possibly materialised) arguments."""
    s = obj.__self__
    name = obj.__name__
    if name in ("center", "ljust", "rjust", "zfill"):
        width = args[0] if args else kwargs.get("width", 0)
        if as_width(width) > limit:
            raise too_big(f"a string with .{name}()", as_width(width), limit)
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        total = len(s) + s.count("\t") * as_width(size)
        if total > limit:
            raise too_big("a string with .expandtabs()", total, limit)
    elif name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        total = _replace_size(s, args[0], args[1], args[2] if len(args) > 2 else -1)
        if total > limit:
            raise too_big("a string with .replace()", total, limit)
    elif name == "join" and args:
        items = list(args[0]) if not isinstance(args[0], (list, tuple)) else args[0]
        total = expanded_size(items, limit) + len(items) * len(s)
        if total > limit:
            raise too_big("a string with .join()", total, limit)
        args = (items, *args[1:])
    elif name in ("format", "format_map"):
        check_format(s, (args, kwargs), limit)
    return args
