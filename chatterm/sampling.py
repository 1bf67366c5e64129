"""Sampling settings, each declared once, with its default, range and help text, where the
:class:`SamplingSettings` field is.

The CLI options (:mod:`chatterm.cli.options`), the TUI side panel (labels, tooltips, ranges), the
lab's views and validation all read :data:`FIELDS`, so a setting explains itself the same way
everywhere. Adding a setting means adding one ``setting(...)`` field below: its ``--option``,
side-panel row and validation follow from it. ``group`` says which views show it:
``chain`` (the sampler stages the lab replays), ``penalty``, ``run`` (seed, length), or any new
group a feature needs.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chatterm.errors import SettingError


@dataclass(frozen=True)
class FieldSpec:
    """How one sampling setting is shown, edited and checked."""

    name: str
    label: str
    kind: type
    minimum: float
    maximum: float
    step: float
    help: str
    default: Any = None
    group: str = "chain"
    flags: tuple[str, ...] = ()  # extra command-line flags, e.g. ("-n",)
    stage: int = 0  # a chain setting's place in the lab's views (the order explain shows)

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def option_help(self) -> str:
        """The help text with the range, as ``--help`` shows it."""
        return f"{self.help} [{self.minimum:g}–{self.maximum:g}]"

    def check(self, value: Any) -> Any:
        """Return ``value`` converted to this field's type, or raise :class:`SettingError`."""
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise SettingError(f"{self.name} must be a {self.kind.__name__}, got {value!r}")
        try:
            converted = self.kind(value)
        except (TypeError, ValueError, OverflowError):
            raise SettingError(
                f"{self.name} must be a {self.kind.__name__}, got {value!r}"
            ) from None
        if isinstance(converted, float) and converted != converted:  # NaN
            raise SettingError(f"{self.name} must be a number, got {value!r}")
        if not (self.minimum <= converted <= self.maximum):
            raise SettingError(
                f"{self.name} must be between {_fmt(self.minimum)} and {_fmt(self.maximum)}, "
                f"got {_fmt(converted)}"
            )
        return converted


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


THINK_HELP = (
    "Reasoning models: on or off passes enable_thinking to templates that take it (Qwen3 and "
    "others); unset leaves the model's default."
)


def parse_think(value: Any) -> bool | None:
    """``think`` from a flag, front matter or a saved dict: ``True``/``False``/``None``, or the
    words on/off, true/false, yes/no, auto. Raises :class:`SettingError` for anything else."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("on", "true", "yes", "1"):
            return True
        if word in ("off", "false", "no", "0"):
            return False
        if word in ("auto", "default", ""):
            return None
    raise SettingError(f"think must be on, off or auto, got {value!r}")


def setting(
    default: Any,
    label: str,
    minimum: float,
    maximum: float,
    step: float,
    help: str,
    *,
    group: str = "chain",
    flags: tuple[str, ...] = (),
    stage: int = 0,
) -> Any:
    """Declare one setting as a :class:`SamplingSettings` field: its type is its default's."""
    spec = {"label": label, "minimum": minimum, "maximum": maximum, "step": step, "help": help}
    extra = {"group": group, "flags": flags, "stage": stage}
    return dataclasses.field(default=default, metadata={"spec": {**spec, **extra}})


@dataclass(frozen=True)
class SamplingSettings:
    """How the next token is chosen from the model's distribution. Immutable: use ``replace``."""

    temperature: float = setting(
        0.7,
        "Temperature",
        0.0,
        5.0,
        0.05,
        "Divides the logits before softmax: 0 always picks the likeliest token, higher is more "
        "random.",
    )
    top_p: float = setting(
        0.95,
        "Top-p",
        0.0,
        1.0,
        0.01,
        "Keep the smallest set of likeliest tokens whose probabilities add up to p (1 = off).",
        stage=2,
    )
    top_k: int = setting(
        40, "Top-k", 0, 1000, 1, "Keep only the k likeliest tokens (0 = off).", stage=1
    )
    min_p: float = setting(
        0.05,
        "Min-p",
        0.0,
        1.0,
        0.01,
        "Drop tokens less likely than min_p times the likeliest token (0 = off).",
        stage=3,
    )
    repeat_penalty: float = setting(
        1.0,
        "Repeat penalty",
        0.0,
        5.0,
        0.05,
        "Divides the logits of recently seen tokens (1 = off, >1 discourages repetition).",
        group="penalty",
    )
    presence_penalty: float = setting(
        0.0,
        "Presence penalty",
        -2.0,
        2.0,
        0.1,
        "Subtracted from the logit of every token already generated (0 = off).",
        group="penalty",
    )
    frequency_penalty: float = setting(
        0.0,
        "Frequency penalty",
        -2.0,
        2.0,
        0.1,
        "Subtracted once per earlier occurrence of a token (0 = off).",
        group="penalty",
    )
    seed: int = setting(
        -1,
        "Seed",
        -1,
        2**31 - 1,
        1,
        "Random seed for sampling; the same seed and settings give the same reply (-1 = random).",
        group="run",
    )
    max_tokens: int = setting(
        1024,
        "Max tokens",
        1,
        1_000_000,
        16,
        "Stop after generating this many tokens.",
        group="run",
        flags=("-n",),
    )
    thinking_budget: int = setting(
        0,
        "Thinking budget",
        0,
        1_000_000,
        64,
        "Reasoning models: after this many thinking tokens the engine closes the thinking "
        "block itself and the answer follows (0 = unlimited).",
        group="thinking",
    )
    stop: tuple[str, ...] = ()
    think: bool | None = None
    """Reasoning models' thinking switch (see :data:`THINK_HELP`); ``None``: the model's own."""
    schema: str = ""
    """A JSON Schema (compact JSON text) the reply must follow; see :mod:`chatterm.structured`."""
    grammar: str = ""
    """A GBNF grammar the reply must follow (wins over ``schema`` for a local model)."""

    def __post_init__(self) -> None:
        for spec in FIELDS:
            object.__setattr__(self, spec.name, spec.check(getattr(self, spec.name)))
        if not isinstance(self.stop, (list, tuple)) or not all(
            isinstance(s, str) for s in self.stop
        ):
            raise SettingError("stop must be a list of strings")
        if any(s == "" for s in self.stop):
            raise SettingError("stop strings must not be empty")
        object.__setattr__(self, "stop", tuple(self.stop))
        for name in ("schema", "grammar"):
            if not isinstance(getattr(self, name), str):
                raise SettingError(f"{name} must be text")
        object.__setattr__(self, "think", parse_think(self.think))

    @property
    def constrained(self) -> bool:
        """Whether a schema or grammar shapes the reply."""
        return bool(self.schema or self.grammar)

    def replace(self, **changes: Any) -> SamplingSettings:
        """A copy with ``changes`` applied; ``None`` values are ignored, unknown names refused."""
        return self.merge({k: v for k, v in changes.items() if v is not None})

    def merge(self, values: Mapping[str, Any]) -> SamplingSettings:
        """A copy with the settings in ``values`` (e.g. from a persona's front matter) applied."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            known = ", ".join(f.name for f in dataclasses.fields(self))
            raise SettingError(f"unknown setting {unknown[0]!r} (known: {known})")
        data = dict(values)
        if "stop" in data and isinstance(data["stop"], str):
            data["stop"] = (data["stop"],)
        return dataclasses.replace(self, **data)

    def resolved_seed(self) -> SamplingSettings:
        """A copy whose seed is concrete, so a reply made with a random seed can be replayed."""
        if self.seed >= 0:
            return self
        return dataclasses.replace(self, seed=random.randrange(2**31 - 1))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SamplingSettings:
        """Rebuild from :meth:`to_dict` output, ignoring keys that later versions dropped."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls().merge({k: v for k, v in data.items() if k in names})


FIELDS: tuple[FieldSpec, ...] = tuple(
    FieldSpec(
        f.name,
        kind=type(f.default),
        default=f.default,
        **f.metadata["spec"],
    )
    for f in dataclasses.fields(SamplingSettings)
    if "spec" in f.metadata
)
"""Every numeric setting, in declaration order (the side panel's order)."""

FIELDS_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}


def names(*groups: str) -> tuple[str, ...]:
    """The settings of ``groups`` (all when none given), in declaration order."""
    return tuple(f.name for f in FIELDS if not groups or f.group in groups)


CHAIN = tuple(sorted(names("chain"), key=lambda name: FIELDS_BY_NAME[name].stage))
"""The sampler settings the lab replays over a distribution, in the order its views show them:
temperature (0 = greedy), top-k, top-p, min-p."""
