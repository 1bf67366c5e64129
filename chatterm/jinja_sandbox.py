"""The Jinja sandbox shared by prompt files and models' chat templates, under a budget of work.

Both run code the user did not write carefully (a downloaded GGUF's template, a prompt file from
a gist). Jinja's immutable sandbox stops attribute escapes; on top of it every render runs under
fixed budgets, whatever the template does:

- **work**: the compiled code ticks in every loop iteration, macro and call-block entry, filter
  call, function call and intercepted operator; past ``MAX_STEPS`` ticks, or
  ``MAX_SECONDS`` of wall time (checked at the ticks), the render is refused. Nested loops
  with empty bodies and recursive macros are work like any other.
- **memory**: anything that could allocate much in one step is sized *before* it allocates:
  ``*``, ``**``, ``+``, ``%`` and ``~``, the filters and string methods whose result size comes
  from an argument (``center``, ``indent``, ``replace('', s)``, ``join``, ``format``,
  ``lipsum``…), and every value a filter or ``{{ }}`` turns into text (a list nested into itself
  by doubling expands exponentially). The process's resident memory is also checked at the
  ticks: a render may not grow it by more than ``MAX_MEMORY`` bytes (all three in
  :mod:`chatterm.jinja_budget`).
- **everything else** a template can do wrong (``1/0``, ``1 + 'a'``, ``{% include %}``, deep
  recursion) ends as one :class:`RenderError` naming the template line, never a traceback.

Budgets: 2 s of wall time, 2,000,000 steps, 256 MiB of memory growth, and ``max_chars`` (set per
use) for any single value and for the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatterm.jinja_budget import (
    MAX_SECONDS,
    BudgetExceeded,
    as_width,
    begin,
    check_format,
    check_int_op,
    check_str_method,
    end,
    expanded_size,
    guard_filter,
    pre_checks,
    tick,
    too_big,
)

__all__ = [
    "MAX_SECONDS",
    "BudgetExceeded",
    "RenderError",
    "TemplateRaised",
    "compile_template",
    "environment",
    "expanded_size",
    "guard_filters",
    "render_bounded",
    "template_line",
    "tick",
]


class RenderError(Exception):
    """A template failed or was refused. ``str()`` is one line; ``line`` is the template line
    (1-based) when known; ``kind`` is ``"syntax"`` (it does not compile), ``"raised"`` (its own
    ``raise_exception``: the message is the template's), ``"budget"`` or ``"error"``."""

    def __init__(self, message: str, *, kind: str, line: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.line = line


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
                raise too_big("a nested value", size, limit)
            return value

        def concat_text(self, parts: tuple[Any, ...]) -> str:
            """``a ~ b``, sized first."""
            tick()
            size = sum(expanded_size(p, limit) for p in parts)
            if size > limit:
                raise too_big("a joined string (~)", size, limit)
            return "".join(str(p) for p in parts)

        def concat(self, parts: Any) -> str:  # type: ignore[override]
            """Joins the output buffers of blocks, macros and ``{% set %}`` captures."""
            parts = parts if isinstance(parts, list) else list(parts)
            size = sum(len(p) for p in parts)
            if size > limit:
                raise too_big("a captured block", size, limit)
            return "".join(parts)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            tick()
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                        size = expanded_size(seq, limit) * max(n, 0)
                        if size > limit:
                            raise too_big("a repetition", size, limit)
            if operator in ("*", "**") and isinstance(left, int) and isinstance(right, int):
                check_int_op(operator, left, right)
            if operator == "+" and isinstance(left, (str, list, tuple)):
                size = expanded_size(left, limit) + expanded_size(right, limit)
                if size > limit:
                    raise too_big("a concatenation", size, limit)
            if operator == "%" and isinstance(left, str):
                check_format(left, right, limit)
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            tick()
            method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
            if isinstance(getattr(method, "__self__", None), str) and hasattr(method, "__name__"):
                args = check_str_method(method, args, kwargs, limit)
            result = super().call(__context, __obj, *args, **kwargs)
            if isinstance(result, (dict, Namespace)):  # dict(a=x, b=x), namespace(…)
                __self.sized(result)
            return result

    def finalize(value: Any) -> Any:
        tick()
        if not isinstance(value, str):
            size = expanded_size(value, limit)
            if size > limit:
                raise too_big("output", size, limit)
        return value

    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        from jinja2.utils import generate_lorem_ipsum

        words = as_width(n) * as_width(max) * 10
        if words > limit:
            raise too_big("lorem ipsum", words, limit)
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
    checks = pre_checks(limit)
    for name, func in list(env.filters.items()):
        if getattr(func, "_budget_guarded", False):
            continue
        guarded = guard_filter(name, func, limit, checks.get(name))
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

    previous = begin(max_seconds)
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
        end(previous)
