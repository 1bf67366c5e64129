"""Every sampling setting, editable in place, declared once in :data:`chatterm.sampling.FIELDS`.

Each field shows its label, its help text as tooltip, enforces its range and steps with Up/Down
by the field's step. A valid change posts :class:`SamplingPanel.Changed`; it applies to the next
reply. An invalid value is marked and, when the field loses focus, the last valid one returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.validation import Integer, Number
from textual.widgets import Button, Input, Label, Select

from chatterm.errors import SettingError
from chatterm.sampling import FIELDS, THINK_HELP, FieldSpec, SamplingSettings, parse_think

# Reasoning models' thinking switch: the model's default, or enable_thinking on/off.
THINK_CHOICES = [("default", "auto"), ("on", "on"), ("off", "off")]


def _think_value(think: bool | None) -> str:
    return "auto" if think is None else ("on" if think else "off")


def format_value(spec: FieldSpec, value: float) -> str:
    if spec.kind is int:
        return str(int(value))
    return f"{float(value):g}"


class SettingInput(Input):
    """One sampling field; Up/Down add or subtract the field's step, within its range."""

    BINDINGS = [
        Binding("up", "step(1)", "Increase", show=False),
        Binding("down", "step(-1)", "Decrease", show=False),
    ]

    def __init__(self, spec: FieldSpec, value: float) -> None:
        validator = (
            Integer(int(spec.minimum), int(spec.maximum))
            if spec.kind is int
            else Number(spec.minimum, spec.maximum)
        )
        super().__init__(
            format_value(spec, value),
            type="integer" if spec.kind is int else "number",
            validators=[validator],
            validate_on=["changed", "submitted", "blur"],
            id=f"setting-{spec.name}",
            tooltip=f"{spec.help}\nRange {format_value(spec, spec.minimum)} to "
            f"{format_value(spec, spec.maximum)}; Up/Down step {format_value(spec, spec.step)}.",
            compact=True,
            select_on_focus=True,
        )
        self.spec = spec

    def action_step(self, direction: int) -> None:
        spec = self.spec
        try:
            current = spec.kind(float(self.value)) if self.value else spec.minimum
        except ValueError:
            return
        value = min(spec.maximum, max(spec.minimum, current + direction * spec.step))
        if spec.kind is float:
            value = round(value, 6)
        self.value = format_value(spec, value)
        self.cursor_position = len(self.value)


class SamplingPanel(Vertical):
    """The sampling settings of the conversation, and a reset to the defaults."""

    @dataclass
    class Changed(Message):
        """A setting was changed to a valid value: ``settings`` holds all of them."""

        panel: SamplingPanel
        settings: SamplingSettings
        field: str

        @property
        def control(self) -> SamplingPanel:
            return self.panel

    @dataclass
    class ResetRequested(Message):
        """The user asked for the persona's (or model's) default settings back."""

        panel: SamplingPanel

        @property
        def control(self) -> SamplingPanel:
            return self.panel

    def __init__(self, settings: SamplingSettings, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.settings = settings

    def compose(self) -> ComposeResult:
        with Grid(classes="fields"):
            for spec in FIELDS:
                yield Label(spec.label, classes="field-label").with_tooltip(spec.help)
                yield SettingInput(spec, getattr(self.settings, spec.name))
            yield Label("Thinking", classes="field-label").with_tooltip(THINK_HELP)
            yield Select(
                THINK_CHOICES,
                value=_think_value(self.settings.think),
                allow_blank=False,
                compact=True,
                id="setting-think",
                tooltip=THINK_HELP,
            )
        yield Button(
            "Reset to defaults",
            id="reset-sampling",
            compact=True,
            tooltip="Back to the persona's settings (or the model's defaults without one)",
        )

    def set_settings(self, settings: SamplingSettings) -> None:
        """Show ``settings`` without posting ``Changed`` (they came from the screen)."""
        self.settings = settings
        for field in self.query(SettingInput):
            with field.prevent(Input.Changed):
                field.value = format_value(field.spec, getattr(settings, field.spec.name))
            field.remove_class("-invalid")
        for select in self.query("#setting-think").results(Select):
            with select.prevent(Select.Changed):
                select.value = _think_value(settings.think)

    @on(Select.Changed, "#setting-think")
    def _think_changed(self, event: Select.Changed) -> None:
        event.stop()
        settings = self.settings.merge({"think": parse_think(str(event.value))})
        if settings != self.settings:
            self.settings = settings
            self.post_message(self.Changed(self, settings, "think"))

    @on(Input.Changed)
    def _field_changed(self, event: Input.Changed) -> None:
        field = event.input
        if not isinstance(field, SettingInput):
            return
        event.stop()
        if event.validation_result is not None and not event.validation_result.is_valid:
            return
        try:
            value = field.spec.check(field.value)
            settings = self.settings.replace(**{field.spec.name: value})
        except (SettingError, ValueError):
            return
        if settings != self.settings:
            self.settings = settings
            self.post_message(self.Changed(self, settings, field.spec.name))

    @on(Input.Blurred)
    def _field_left(self, event: Input.Blurred) -> None:
        field = event.input
        if not isinstance(field, SettingInput):
            return
        spec = field.spec
        current = format_value(spec, getattr(self.settings, spec.name))
        if field.value == current:
            return
        try:
            valid = spec.check(field.value) == getattr(self.settings, spec.name)
        except (SettingError, ValueError):
            valid = False
        if not valid:
            self.notify(
                f"{spec.label} must be between {format_value(spec, spec.minimum)} and "
                f"{format_value(spec, spec.maximum)}; kept {current}",
                severity="warning",
                timeout=3,
            )
            with field.prevent(Input.Changed):
                field.value = current
            field.remove_class("-invalid")

    @on(Button.Pressed, "#reset-sampling")
    def _reset(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.ResetRequested(self))
