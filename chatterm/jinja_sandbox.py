"""The Jinja sandbox shared by prompt files and models' chat templates, under a budget of work.

Both run code the user did not write carefully (a downloaded GGUF's template, a prompt file from
a gist). Jinja's immutable sandbox stops attribute escapes; on top of it every render runs under
fixed budgets, whatever the template does:

- **work**: the compiled code ticks in every loop iteration, macro and call-block entry, filter
  call, function call and intercepted operator; past :data:`MAX_STEPS` ticks, or
  :data:`MAX_SECONDS` of wall time (checked at the ticks), the render is refused. Nested loops
  with empty bodies and recursive macros are work like any other.
- **memory**: anything that could allocate much in one step is sized *before* it allocates:
  ``*``, ``**``, ``+``, ``%`` and ``~``, the filters and string methods whose result size comes
  from an argument (``center``, ``indent``, ``replace('', s)``, ``join``, ``format``,
  ``lipsum``…), and every value a filter or ``{{ }}`` turns into text (a list nested into itself
  by doubling expands exponentially). The process's resident memory is also checked at the
  ticks: a render may not grow it by more than :data:`MAX_MEMORY` bytes.
- **everything else** a template can do wrong (``1/0``, ``1 + 'a'``, ``{% include %}``, deep
  recursion) ends as one :class:`RenderError` naming the template line, never a traceback.

Budgets: 2 s of wall time, 2,000,000 steps, 256 MiB of memory growth, and ``max_chars`` (set per
use) for any single value and for the output.
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


class RenderError(Exception):
    """A template failed or was refused. ``str()`` is one line; ``line`` is the template line
    (1-based) when known; ``kind`` is ``"syntax"`` (it does not compile), ``"raised"`` (its own
    ``raise_exception``: the message is the template's), ``"budget"`` or ``"error"``."""

    def __init__(self, message: str, *, kind: str, line: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.line = line


class _Budget:
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


def tick() -> None:
    """One step of work in the current render (a no-op outside :func:`render_bounded`)."""
    budget: _Budget | None = getattr(_local, "budget", None)
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

    budget: _Budget | None = getattr(_local, "budget", None)
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


def _too_big(what: str, size: int, limit: int) -> BudgetExceeded:
    return BudgetExceeded(f"would build {what} of about {size:,} characters (limit {limit:,})")


def _width(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


_DIGITS = re.compile(r"\d+")


def _check_format(fmt: str, args: Any, limit: int) -> None:
    """``fmt % args`` / ``fmt.format(*args)``: widths and precisions, and each field filled
    with the largest argument, stay under ``limit``."""
    for digits in _DIGITS.findall(fmt):
        if len(digits) > 7 or int(digits) > limit:
            raise _too_big("a formatted string", int(digits[:8]), limit)
    fields = fmt.count("%") + fmt.count("{")
    if fields:
        size = len(fmt) + fields * expanded_size(args, limit)
        if size > limit:
            raise _too_big("a formatted string", size, limit)


def _check_int_op(operator: str, left: int, right: int) -> None:
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


def _pre_checks(limit: int) -> dict[str, Callable[..., None]]:
    """Size checks for the filters whose result size comes from an argument; each gets the
    filter's own arguments (value first) and raises before the filter allocates."""

    def need(what: str, size: int) -> None:
        if size > limit:
            raise _too_big(what, size, limit)

    def center(value: Any, width: Any = 80) -> None:
        need("a centred string", _width(width))

    def indent(value: Any, width: Any = 4, *_: Any, **__: Any) -> None:
        pad = len(width) if isinstance(width, str) else _width(width)
        need("an indented string", len(str(value)) + (str(value).count("\n") + 1) * pad)

    def replace(value: Any, old: Any, new: Any, count: Any = None) -> None:
        if isinstance(old, str) and isinstance(new, str):
            need("a replaced string", _replace_size(str(value), old, new, count))

    def join(value: Any, d: Any = "", attribute: Any = None) -> None:
        if isinstance(value, (list, tuple)):
            need("a joined string", expanded_size(value, limit) + len(value) * len(str(d)))

    def batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
        need("a batch", _width(linecount))

    def slice_(value: Any, slices: Any, fill_with: Any = None) -> None:
        need("slices", _width(slices) * 10)

    def format_(value: Any, *args: Any, **kwargs: Any) -> None:
        _check_format(str(value), kwargs or args, limit)

    def wordwrap(value: Any, width: Any = 79, break_long: Any = True, wrapstring: Any = None,
                 *_: Any, **__: Any) -> None:  # fmt: skip
        lines = len(str(value)) // max(_width(width), 1) + str(value).count("\n") + 1
        need("a wrapped string", len(str(value)) + lines * len(str(wrapstring or "\n")))

    def tojson(value: Any, *args: Any, indent: Any = None, **kwargs: Any) -> None:
        pad = len(indent) if isinstance(indent, str) else _width(indent)
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


def _guard_filter(name: str, func: Callable[..., Any], limit: int, pre: Any) -> Callable[..., Any]:
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        if len(args) > skip:
            size = expanded_size(args[skip], limit)
            if size > limit:
                raise _too_big(f"text for |{name}", size, limit)
            if pre is not None:
                pre(*args[skip:], **kwargs)
        return func(*args, **kwargs)

    return guarded


def _check_str_method(
    obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], limit: int
) -> Any:
    """Pre-checks for the ``str`` methods that can allocate much from small arguments; returns
    the (possibly materialised) arguments."""
    s = obj.__self__
    name = obj.__name__
    if name in ("center", "ljust", "rjust", "zfill"):
        width = args[0] if args else kwargs.get("width", 0)
        if _width(width) > limit:
            raise _too_big(f"a string with .{name}()", _width(width), limit)
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        total = len(s) + s.count("\t") * _width(size)
        if total > limit:
            raise _too_big("a string with .expandtabs()", total, limit)
    elif name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        total = _replace_size(s, args[0], args[1], args[2] if len(args) > 2 else -1)
        if total > limit:
            raise _too_big("a string with .replace()", total, limit)
    elif name == "join" and args:
        items = list(args[0]) if not isinstance(args[0], (list, tuple)) else args[0]
        total = expanded_size(items, limit) + len(items) * len(s)
        if total > limit:
            raise _too_big("a string with .join()", total, limit)
        args = (items, *args[1:])
    elif name in ("format", "format_map"):
        _check_format(s, (args, kwargs), limit)
    return args


def _include_refused(*_: Any, **__: Any) -> Any:
    from jinja2.exceptions import SecurityError

    raise SecurityError("templates here cannot include or import other files")


def environment(max_chars: int, **options: Any) -> Any:
    """A sandboxed Jinja environment under the budgets above; ``max_chars`` bounds any single
    value and the output. ``options`` go to Jinja (``trim_blocks``, ``extensions``…)."""
    from jinja2 import BaseLoader
    from jinja2.compiler import CodeGenerator
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.utils import Namespace

    limit = max_chars

    class BudgetCodeGenerator(CodeGenerator):
        """Ticks the work budget at every frame entry: each loop iteration, macro or call
        block call, and block; and routes ``~`` through a size check."""

        def enter_frame(self, frame: Any) -> None:
            super().enter_frame(frame)
            self.writeline("environment.tick()")

        def _sized(self, visit: Any, node: Any, frame: Any) -> None:
            if getattr(node, "ctx", "load") != "load":  # a loop or set target, not a value
                visit(node, frame)
                return
            self.write("environment.sized(")
            visit(node, frame)
            self.write(")")

        def visit_List(self, node: Any, frame: Any) -> None:
            self._sized(super().visit_List, node, frame)

        def visit_Tuple(self, node: Any, frame: Any) -> None:
            self._sized(super().visit_Tuple, node, frame)

        def visit_Dict(self, node: Any, frame: Any) -> None:
            self._sized(super().visit_Dict, node, frame)

        def visit_Concat(self, node: Any, frame: Any) -> None:
            self.write("environment.concat_text((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class Loader(BaseLoader):
        get_source = _include_refused

    class BudgetEnvironment(ImmutableSandboxedEnvironment):
        max_chars = limit
        code_generator_class = BudgetCodeGenerator
        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def tick(self) -> None:
            tick()

        def sized(self, value: Any) -> Any:
            """A list, tuple or dict literal: refused when it would expand past the limit (a
            list nested into itself by doubling grows exponentially as text, and compares or
            tests membership exponentially slowly)."""
            tick()
            size = expanded_size(value, limit)
            if size > limit:
                raise _too_big("a nested value", size, limit)
            return value

        def concat_text(self, parts: tuple[Any, ...]) -> str:
            """``a ~ b``, sized first."""
            tick()
            size = sum(expanded_size(p, limit) for p in parts)
            if size > limit:
                raise _too_big("a joined string (~)", size, limit)
            return "".join(str(p) for p in parts)

        def concat(self, parts: Any) -> str:  # type: ignore[override]
            """Joins the output buffers of blocks, macros and ``{% set %}`` captures."""
            parts = parts if isinstance(parts, list) else list(parts)
            size = sum(len(p) for p in parts)
            if size > limit:
                raise _too_big("a captured block", size, limit)
            return "".join(parts)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            tick()
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                        size = expanded_size(seq, limit) * max(n, 0)
                        if size > limit:
                            raise _too_big("a repetition", size, limit)
            if operator in ("*", "**") and isinstance(left, int) and isinstance(right, int):
                _check_int_op(operator, left, right)
            if operator == "+" and isinstance(left, (str, list, tuple)):
                size = expanded_size(left, limit) + expanded_size(right, limit)
                if size > limit:
                    raise _too_big("a concatenation", size, limit)
            if operator == "%" and isinstance(left, str):
                _check_format(left, right, limit)
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            tick()
            method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
            if isinstance(getattr(method, "__self__", None), str) and hasattr(method, "__name__"):
                args = _check_str_method(method, args, kwargs, limit)
            result = super().call(__context, __obj, *args, **kwargs)
            if isinstance(result, (dict, Namespace)):  # dict(a=x, b=x), namespace(…)
                __self.sized(result)
            return result

    def finalize(value: Any) -> Any:
        tick()
        if not isinstance(value, str):
            size = expanded_size(value, limit)
            if size > limit:
                raise _too_big("output", size, limit)
        return value

    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        from jinja2.utils import generate_lorem_ipsum

        words = _width(n) * _width(max) * 10
        if words > limit:
            raise _too_big("lorem ipsum", words, limit)
        return str(generate_lorem_ipsum(n, html, min, max))

    options.setdefault("optimized", False)  # no constant folding: nothing runs at compile time
    env = BudgetEnvironment(loader=Loader(), finalize=finalize, **options)
    env.globals["lipsum"] = lipsum
    guard_filters(env)
    return env


def guard_filters(env: Any) -> None:
    """Wrap every filter in ``env`` (call again after adding filters) with the work tick, the
    size check of its input and its own argument checks."""
    limit: int = env.max_chars
    checks = _pre_checks(limit)
    for name, func in list(env.filters.items()):
        if getattr(func, "_budget_guarded", False):
            continue
        guarded = _guard_filter(name, func, limit, checks.get(name))
        guarded._budget_guarded = True  # type: ignore[attr-defined]
        env.filters[name] = guarded


def template_line(exc: BaseException) -> int | None:
    """The template line that raised ``exc`` (Jinja maps its frames to ``<template>``)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def compile_template(env: Any, source: str) -> Any:
    """Compile ``source``; raises :class:`RenderError` (kind ``"syntax"``) naming the line."""
    from jinja2 import TemplateSyntaxError

    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise RenderError(f"syntax error: {exc.message}", kind="syntax", line=exc.lineno) from None
    except RecursionError:
        raise RenderError("nested too deeply to compile", kind="syntax") from None
    except Exception as exc:  # the parser and compiler raise a few non-Jinja errors
        raise RenderError(f"does not compile: {exc}", kind="syntax") from None


class TemplateRaised(Exception):
    """Raised by a template's own ``raise_exception(message)``."""


def render_bounded(
    template: Any, context: Mapping[str, Any], *, max_chars: int, max_seconds: float = MAX_SECONDS
) -> str:
    """Render ``template`` under the budgets (see the module docstring).

    Returns the text; raises :class:`RenderError` for every failure: a budget exceeded, an
    unsafe operation, the template's own ``raise_exception``, or any error inside it.
    """
    from jinja2 import TemplateError as JinjaError
    from jinja2.exceptions import SecurityError

    previous = getattr(_local, "budget", None)
    _local.budget = _Budget(max_seconds)
    out: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**context):
            out.append(chunk)
            size += len(chunk)
            if size > max_chars:
                raise BudgetExceeded(f"produced more than {max_chars:,} characters")
        return "".join(out)
    except TemplateRaised as exc:
        raise RenderError(str(exc), kind="raised", line=template_line(exc)) from None
    except BudgetExceeded as exc:
        raise RenderError(str(exc), kind="budget", line=template_line(exc)) from None
    except SecurityError as exc:
        raise RenderError(
            f"tried an unsafe operation: {exc}", kind="error", line=template_line(exc)
        ) from None
    except RecursionError as exc:
        raise RenderError("recursed too deeply", kind="budget", line=template_line(exc)) from None
    except MemoryError as exc:
        raise RenderError("ran out of memory", kind="budget", line=template_line(exc)) from None
    except JinjaError as exc:
        raise RenderError(str(exc), kind="error", line=template_line(exc)) from None
    except Exception as exc:  # 1/0, 1 + 'a', None.x(): the template's bug, said in one line
        message = f"{type(exc).__name__}: {exc}"
        raise RenderError(message, kind="error", line=template_line(exc)) from None
    finally:
        _local.budget = previous
