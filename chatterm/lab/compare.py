"""One prompt through several variants with the same seed, to see what each change does.

A variant changes sampling settings (``temperature=1.2``, ``top_k=5,top_p=0.9``, for reasoning
models ``think=off`` and ``thinking_budget=64``), the persona,
the template, the system prompt or the model. :func:`plan` turns the prompt and the variants
into :class:`Run` objects that hold everything needed to replay them (the exact messages, the
resolved settings with a concrete seed, the model); :func:`stream` executes them and yields
every engine event, so the CLI collects them and the TUI's compare screen streams them into
columns. Run ``r`` of every variant uses seed ``seed + r``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chatterm.engine.base import Engine
from chatterm.engine.events import ChatMessage, Event, Finished, Token
from chatterm.errors import SettingError, UsageError
from chatterm.sampling import FIELDS_BY_NAME, SamplingSettings, parse_think

PROMPT_KEYS = ("persona", "template", "model", "system")
SETTING_KEYS = tuple(FIELDS_BY_NAME)
# Split "temperature=1.2,top_k=5" on the commas that start another key, so a system prompt
# or a stop string may contain commas.
_SPLIT = re.compile(r",\s*(?=[A-Za-z_][A-Za-z_-]*\s*=)")


@dataclass(frozen=True)
class Variant:
    """One column of a comparison, parsed from ``key=value[,key=value…]``."""

    spec: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    persona: str | None = None
    template: str | None = None
    model: str | None = None
    system: str | None = None

    @property
    def label(self) -> str:
        return self.spec

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """Raises ``UsageError`` (exit 2) naming the bad part and the keys it knows."""
        spec = spec.strip()
        if not spec:
            raise UsageError("--variant needs key=value, e.g. --variant temperature=1.2")
        settings: dict[str, Any] = {}
        prompt: dict[str, str] = {}
        for part in _SPLIT.split(spec):
            key, sep, value = part.partition("=")
            key = key.strip().replace("-", "_")
            value = value.strip()
            if not sep or not key:
                raise UsageError(f"--variant {spec!r}: expected key=value, got {part!r}")
            if key in PROMPT_KEYS:
                if not value:
                    raise UsageError(f"--variant {spec!r}: {key} needs a value")
                prompt[key] = value
            elif key in SETTING_KEYS:
                settings[key] = FIELDS_BY_NAME[key].check(value)
            elif key == "stop":
                settings["stop"] = (value,)
            elif key == "think":
                try:
                    settings["think"] = parse_think(value)
                except SettingError as exc:
                    raise UsageError(f"--variant {spec!r}: {exc}") from None
            else:
                known = ", ".join((*PROMPT_KEYS, *SETTING_KEYS, "stop", "think"))
                raise UsageError(f"--variant {spec!r}: unknown key {key!r} (known: {known})")
        return cls(spec, settings, **prompt)

    def to_dict(self) -> dict[str, Any]:
        settings = {k: list(v) if isinstance(v, tuple) else v for k, v in self.settings.items()}
        return {
            "spec": self.spec,
            "settings": settings,
            "persona": self.persona,
            "template": self.template,
            "model": self.model,
            "system": self.system,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Variant:
        settings = dict(data.get("settings") or {})
        if "stop" in settings:
            settings["stop"] = tuple(settings["stop"])
        return cls(
            data["spec"],
            settings,
            data.get("persona"),
            data.get("template"),
            data.get("model"),
            data.get("system"),
        )


@dataclass
class Run:
    """One variant's n-th run: its inputs (enough to replay it exactly) and, once done, its
    outputs. ``model`` is the model asked for (``None``: the default); ``model_name`` is the
    engine that ran it."""

    variant: int
    run: int
    label: str
    model: str | None
    messages: tuple[ChatMessage, ...]
    settings: SamplingSettings
    text: str = ""
    finish_reason: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    model_name: str = ""
    error: str | None = None
    reasoning: str = ""  # a reasoning model's thinking, apart from ``text`` (the answer)

    @property
    def done(self) -> bool:
        return bool(self.finish_reason)

    def fresh(self) -> Run:
        """The same inputs with no outputs, for a re-run."""
        return Run(self.variant, self.run, self.label, self.model, self.messages, self.settings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "run": self.run,
            "label": self.label,
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
            "settings": self.settings.to_dict(),
            "text": self.text,
            "finish_reason": self.finish_reason,
            "stats": self.stats,
            "model_name": self.model_name,
            "error": self.error,
            "reasoning": self.reasoning,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Run:
        return cls(
            int(data["variant"]),
            int(data["run"]),
            str(data["label"]),
            data.get("model"),
            tuple(ChatMessage(m["role"], m["content"]) for m in data["messages"]),
            SamplingSettings.from_dict(data["settings"]),
            data.get("text", ""),
            data.get("finish_reason", ""),
            dict(data.get("stats") or {}),
            data.get("model_name", ""),
            data.get("error"),
            str(data.get("reasoning") or ""),
        )


def plan(
    prompt: str,
    variants: Sequence[Variant],
    *,
    seed: int,
    runs: int = 1,
    system: str | None = None,
    model: str | None = None,
    config: Any = None,
    overrides: Mapping[str, Any] | None = None,
    attachments: Sequence[Any] = (),
) -> list[Run]:
    """The runs for ``variants`` × ``runs`` seeds, in display order.

    Each variant's settings are: defaults < config.toml < its persona/template < ``overrides``
    (the command's flags) < the variant's own settings. A variant without a system prompt of its
    own gets ``system``, unless its persona supplies one. ``attachments`` go before every
    variant's message. Personas, templates and model names are checked here, so a typo fails
    before anything runs.
    """
    from chatterm.prompts import compose, load_prompt
    from chatterm.services import EngineOptions, resolve, sampling_settings

    if not variants:
        raise UsageError("give at least one --variant, e.g. --variant temperature=0")
    if runs < 1:
        raise UsageError(f"--runs must be at least 1, got {runs}")
    if seed < 0:
        raise UsageError("compare needs a concrete seed (0 or more)")
    out: list[Run] = []
    for index, variant in enumerate(variants):
        persona = load_prompt("persona", variant.persona) if variant.persona else None
        template = load_prompt("template", variant.template) if variant.template else None
        own_system = (
            variant.system
            if variant.system is not None
            else (None if persona is not None else system)
        )
        composed = compose(
            prompt, persona=persona, template=template, system=own_system, attachments=attachments
        )
        wanted = variant.model or model
        if wanted:
            resolve(EngineOptions(model=wanted), config)
        base = sampling_settings(
            config, persona_defaults=composed.settings, overrides=overrides
        ).merge(variant.settings)
        first_seed = base.seed if "seed" in variant.settings else seed
        for r in range(runs):
            settings = base.merge({"seed": (first_seed + r) % (2**31 - 1)})
            out.append(Run(index, r, variant.label, wanted, tuple(composed.messages()), settings))
    return out


class EnginePool:
    """Engines by requested model, loaded on first use and kept one at a time (a second large
    model beside the first could exhaust memory). ``loader(None)`` loads the default model."""

    def __init__(self, loader: Callable[[str | None], Engine], *, close_on_switch: bool = True):
        self._loader = loader
        self._close_on_switch = close_on_switch
        self._key: str | None = None
        self._engine: Engine | None = None

    def get(self, model: str | None) -> Engine:
        if self._engine is not None and self._key == model:
            return self._engine
        if self._engine is not None and self._close_on_switch:
            self._engine.close()
        self._engine, self._key = self._loader(model), model
        return self._engine

    def close(self) -> None:
        if self._engine is not None and self._close_on_switch:
            self._engine.close()
        self._engine = None


def default_loader(
    config: Any = None, *, ctx_size: int | None = None, threads: int | None = None
) -> Callable[[str | None], Engine]:
    """Loads models the way ``chatterm ask`` does."""
    from chatterm.services import EngineOptions, load_engine

    def load(model: str | None) -> Engine:
        # The lab compares settings: a reply must not depend on the machine's load.
        options = EngineOptions(
            model=model, ctx_size=ctx_size, threads=threads, adapt_threads=False
        )
        return load_engine(options, config)

    return load


def execution_order(runs: Sequence[Run]) -> list[Run]:
    """Display order, but grouped by model, so each model loads once."""
    first: dict[str | None, int] = {}
    for run in runs:
        first.setdefault(run.model, len(first))
    return sorted(runs, key=lambda r: first[r.model])


def stream(
    runs: Sequence[Run],
    pool: EnginePool,
    *,
    top_logprobs: int = 0,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[Run, Event]]:
    """Execute ``runs`` (filling in their outputs) and yield each ``(run, event)``.

    A run whose reply fails keeps the error in ``run.error`` and the others go on; a model that
    fails to load raises ``ModelError``. Setting ``cancel`` stops the current reply and skips
    the rest (they stay not ``done``).
    """
    for run in execution_order(runs):
        if cancel is not None and cancel.is_set():
            return
        engine = pool.get(run.model)
        parts: list[str] = []
        thought: list[str] = []
        for event in engine.generate(
            run.messages, run.settings, top_logprobs=top_logprobs, cancel=cancel
        ):
            if isinstance(event, Finished):
                run.text = "".join(parts)
                run.reasoning = "".join(thought)
                run.finish_reason = event.reason
                run.stats = event.stats.to_dict()
                run.model_name = engine.name
                run.error = event.error
            elif isinstance(event, Token):
                (thought if event.reasoning else parts).append(event.text)
            yield run, event


@dataclass(frozen=True)
class VariantSummary:
    """One variant across its runs: how much the replies vary and how fast they came."""

    variant: int
    label: str
    runs: int
    distinct: int
    mean_tokens: float
    mean_decode_tps: float
    models: tuple[str, ...]
    mean_reasoning_tokens: float = 0.0  # thinking tokens (reasoning models), in mean_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "label": self.label,
            "runs": self.runs,
            "distinct": self.distinct,
            "mean_tokens": self.mean_tokens,
            "mean_decode_tps": self.mean_decode_tps,
            "models": list(self.models),
            "mean_reasoning_tokens": self.mean_reasoning_tokens,
        }


def summarise(runs: Sequence[Run]) -> list[VariantSummary]:
    """Per-variant figures over the runs that finished, in variant order."""
    by_variant: dict[int, list[Run]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    out = []
    for index in sorted(by_variant):
        group = [r for r in by_variant[index] if r.done]
        n = len(group)
        out.append(
            VariantSummary(
                index,
                by_variant[index][0].label,
                n,
                len({r.text for r in group}),
                sum(r.stats.get("generated_tokens", 0) for r in group) / n if n else 0.0,
                sum(r.stats.get("decode_tps", 0.0) for r in group) / n if n else 0.0,
                tuple(sorted({r.model_name for r in group if r.model_name})),
                sum(r.stats.get("reasoning_tokens", 0) for r in group) / n if n else 0.0,
            )
        )
    return out
