"""The compare screen: one prompt through several variants, in columns, saved as an experiment.

Variants are the lab's (``temperature=0``, ``top_k=5,top_p=0.9``, ``persona=teacher``,
``template=eli5``, ``model=NAME``, ``system=…``), separated by ``|``; each starts from the chat's
current settings and the same seed (run ``r`` of each uses seed + r). The lab plans the runs
(:func:`chatterm.lab.compare.plan`) and executes them (:func:`~chatterm.lab.compare.stream`);
one worker streams them one after the other (the engine serialises generation anyway), posting
batched text per column, and the screen saves the finished experiment exactly as ``chatterm lab
compare`` does, so ``chatterm lab experiments`` lists and re-runs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static
from textual.worker import Worker, WorkerState

from chatterm.engine.base import Engine
from chatterm.engine.events import Finished, PromptReady, Token
from chatterm.errors import ChattermError
from chatterm.lab.compare import EnginePool, Run, Variant, plan, stream
from chatterm.sampling import FIELDS
from chatterm.services import EngineOptions
from chatterm.tui.streaming import TokenBatcher

COMPARE_MAX_TOKENS = 256
DEFAULT_VARIANTS = "temperature=0 | temperature=1.2"
SETTING_BASE = tuple(f.name for f in FIELDS if f.group != "run")
"""The chat's settings a comparison starts from; seed and length are the form's own."""


@dataclass
class CompareRequest:
    """What the chat hands to the compare screen: its engine, how to load other models, and
    the starting values of the form."""

    engine: Engine
    load_engine: Callable[[EngineOptions], Engine]
    options: EngineOptions
    config: Any
    prompt: str = ""
    system: str | None = None
    base: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    variants: str = DEFAULT_VARIANTS
    max_tokens: int = COMPARE_MAX_TOKENS


# -- worker messages -------------------------------------------------------------------------


@dataclass
class CompareStarted(Message):
    index: int


@dataclass
class CompareTokens(Message):
    """A batch of one column's text (``reasoning``: a reasoning model's thinking, which comes
    before the answer's text). Never replaced."""

    index: int
    text: str
    reasoning: str = ""


@dataclass
class CompareRunDone(Message):
    index: int
    run: Run


@dataclass
class CompareDone(Message):
    """Every run ended (or the comparison was stopped, or a model failed to load)."""

    cancelled: bool
    error: str | None = None


class VariantEngines:
    """The loader behind the lab's ``EnginePool``: no model named means the chat's engine
    (never closed here); other models load once and are closed when the comparison ends."""

    def __init__(self, request: CompareRequest) -> None:
        self.request = request
        self.loaded: list[Engine] = []

    def __call__(self, model: str | None) -> Engine:
        chat = self.request.engine
        if model is None or model == chat.name:
            return chat
        options = self.request.options
        engine = self.request.load_engine(
            EngineOptions(
                model=model,
                ctx_size=options.ctx_size,
                threads=options.threads,
                gpu_layers=options.gpu_layers,
                adapt_threads=False,
            )
        )
        self.loaded.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.loaded:
            engine.close()
        self.loaded.clear()


def split_variants(text: str) -> list[str]:
    return [part.strip() for part in text.split("|") if part.strip()]


def stats_line(run: Run) -> Content:
    if run.error:
        return Content.styled(f"failed: {run.error}", "$error")
    s = run.stats
    return Content.assemble(
        (f"{s.get('generated_tokens', 0)} tok", "bold"),
        (" · ", "dim"),
        f"{s.get('decode_tps', 0.0):.1f} tok/s",
        (" · first token ", "dim"),
        f"{1000 * s.get('ttft_s', 0.0):.0f} ms",
        (" · ", "dim"),
        (run.finish_reason or "", "italic"),
        *(
            ((" · thinking ", "dim"), f"{s.get('reasoning_tokens', 0)} tok")
            if s.get("reasoning_tokens")
            else ()
        ),
    )


def column_content(answer: str, thinking: str, summary: str = "") -> Content:
    """A column's text: a reasoning model's thinking dimmed while it streams, one summary line
    once the answer starts, then the answer."""
    if not thinking:
        return Content(answer)
    if not answer and not summary:
        return Content.assemble(("thinking…\n", "dim italic"), (thinking.strip("\n"), "dim"))
    line = f"▸ {summary or 'thought'}\n"
    return Content.assemble(
        (line, "dim italic"), answer.lstrip("\n") or "(no answer: all thinking)"
    )


class CompareColumn(Vertical):
    """One run: its variant and seed, the reply as it streams, and its stats."""

    DEFAULT_CSS = """
    CompareColumn {
        width: 1fr;
        min-width: 32;
        height: 1fr;
        border: round $panel-lighten-2;
        padding: 0 1;
    }
    CompareColumn.-running {
        border: round $accent;
    }
    CompareColumn > VerticalScroll {
        height: 1fr;
    }
    CompareColumn > .column-stats {
        height: auto;
        color: $text-muted;
    }
    """

    def __init__(self, run: Run, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run = run
        self.parts: list[str] = []
        self.thinking: list[str] = []

    def compose(self) -> ComposeResult:
        self.border_title = self.run.label
        model = f" · {self.run.model}" if self.run.model else ""
        self.border_subtitle = f"seed {self.run.settings.seed}{model}"
        with VerticalScroll():
            yield Static("", classes="column-text", markup=False)
        yield Static(Content.styled("waiting…", "dim italic"), classes="column-stats")

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def start(self) -> None:
        self.add_class("-running")
        self.query_one(".column-stats", Static).update(Content.styled("streaming…", "dim italic"))

    def append(self, text: str, reasoning: str = "") -> None:
        self.thinking.append(reasoning)
        self.parts.append(text)
        content = column_content(self.text, "".join(self.thinking))
        self.query_one(".column-text", Static).update(content)
        self.query_one(VerticalScroll).scroll_end(animate=False)

    def finish(self, run: Run) -> None:
        from chatterm.engine.reasoning import stats_summary

        self.remove_class("-running")
        self.run = run
        # The run's own record is the reference.
        self.parts, self.thinking = [run.text], [run.reasoning]
        summary = stats_summary(run.stats) if run.reasoning else ""
        content = column_content(run.text, run.reasoning, summary)
        self.query_one(".column-text", Static).update(content)
        self.query_one(".column-stats", Static).update(stats_line(run))


class CompareScreen(Screen[None]):
    """Enter in any field runs the comparison; Esc stops it, or closes the screen."""

    BINDINGS = [
        Binding("escape", "stop_or_close", "Stop / close", id="compare.close"),
        Binding("f8", "run", "Run", id="compare.run", tooltip="Run the variants"),
    ]

    DEFAULT_CSS = """
    CompareScreen #compare-form {
        height: auto;
        padding: 0 1;
        background: $panel;
    }
    CompareScreen #compare-form > Horizontal {
        height: 1;
        margin: 1 0 0 0;
    }
    CompareScreen #compare-form Label {
        width: auto;
        margin: 0 1 0 2;
        color: $text-muted;
    }
    CompareScreen #compare-form Label.lead {
        width: 10;
        margin: 0;
    }
    CompareScreen #compare-form Input {
        width: 1fr;
    }
    CompareScreen #compare-form .short {
        width: 13;
    }
    CompareScreen #compare-status {
        height: auto;
        padding: 0 1;
        margin: 1 0 0 0;
    }
    CompareScreen #compare-columns {
        height: 1fr;
    }
    """

    def __init__(self, request: CompareRequest) -> None:
        super().__init__(id="compare-view")
        self.request = request
        self.runs: list[Run] = []
        self.variants: list[Variant] = []
        self.cancel: threading.Event | None = None
        self.experiment: Any = None
        self._plan: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        req = self.request
        with Vertical(id="compare-form"):
            with Horizontal():
                yield Label("Prompt", classes="lead")
                yield Input(
                    req.prompt, id="compare-prompt", compact=True, placeholder="What to ask"
                )
            with Horizontal():
                yield Label("Variants", classes="lead")
                yield Input(
                    req.variants,
                    id="compare-variants",
                    compact=True,
                    placeholder="temperature=0 | top_k=5,top_p=0.9 | persona=teacher | model=NAME",
                    tooltip="One variant per | : key=value[,key=value…] with a sampling setting, "
                    "persona, template, system or model",
                )
            with Horizontal():
                yield Label("Seed", classes="lead")
                yield Input(
                    str(req.seed), id="compare-seed", type="integer", compact=True, classes="short"
                )
                yield Label("Max tokens")
                yield Input(
                    str(req.max_tokens),
                    id="compare-max-tokens",
                    type="integer",
                    compact=True,
                    classes="short",
                )
                yield Label("Runs")
                yield Input("1", id="compare-runs", type="integer", compact=True, classes="short")
        yield Static(
            Content.styled(
                "Enter runs the variants; each column starts from the chat's settings.", "dim"
            ),
            id="compare-status",
        )
        yield HorizontalScroll(id="compare-columns")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#compare-prompt", Input).focus()

    @property
    def running(self) -> bool:
        return self.cancel is not None

    def _status(self, text: str | Content, style: str = "") -> None:
        content = Content.styled(text, style) if isinstance(text, str) else text
        self.query_one("#compare-status", Static).update(content)

    def _value(self, selector: str) -> str:
        return self.query_one(selector, Input).value.strip()

    @on(Input.Submitted)
    async def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        await self.action_run()

    async def action_run(self) -> None:
        if self.running:
            self.notify("A comparison is running: Esc stops it", severity="warning")
            return
        req = self.request
        prompt = self._value("#compare-prompt")
        try:
            if not prompt:
                raise ChattermError("type a prompt to compare")
            variants = [Variant.parse(v) for v in split_variants(self._value("#compare-variants"))]
            seed = int(self._value("#compare-seed") or 0)
            max_tokens = int(self._value("#compare-max-tokens") or COMPARE_MAX_TOKENS)
            n_runs = int(self._value("#compare-runs") or 1)
            if not 1 <= n_runs <= 10:
                raise ChattermError("runs must be between 1 and 10")
            overrides = {k: v for k, v in req.base.items() if k in SETTING_BASE}
            overrides["max_tokens"] = max_tokens
            runs = plan(
                prompt,
                variants,
                seed=seed,
                runs=n_runs,
                system=req.system,
                config=req.config,
                overrides=overrides,
            )
        except (ChattermError, ValueError) as exc:
            self._status(f"Cannot run: {exc}", "$error")
            return
        self.runs, self.variants = runs, variants
        self._plan = {
            "prompt": prompt,
            "seed": seed,
            "n_runs": n_runs,
            "system": req.system,
            "overrides": overrides,
        }
        self.experiment = None
        columns = self.query_one("#compare-columns", HorizontalScroll)
        await columns.remove_children()
        await columns.mount_all(
            [CompareColumn(r, id=f"compare-column-{i}") for i, r in enumerate(runs)]
        )
        self.cancel = threading.Event()
        self._status(f"running {len(runs)} replies, one after the other… (Esc stops)", "italic")
        self.execute(runs, VariantEngines(req), self.cancel)

    def column(self, index: int) -> CompareColumn:
        return self.query_one(f"#compare-column-{index}", CompareColumn)

    @work(thread=True, exclusive=True, group="lab-compare", exit_on_error=False)
    def execute(self, runs: list[Run], engines: VariantEngines, cancel: threading.Event) -> None:
        """Thin adapter: the lab's ``stream`` does the work; this posts what happened."""
        index = {id(run): i for i, run in enumerate(runs)}
        batcher = TokenBatcher()
        error: str | None = None
        pool = EnginePool(engines, close_on_switch=False)

        def flush(i: int) -> None:
            reasoning = batcher.take_reasoning()
            text, _ = batcher.take()
            if text or reasoning:
                self.post_message(CompareTokens(i, text, reasoning))

        try:
            for run, event in stream(runs, pool, cancel=cancel):
                i = index[id(run)]
                if isinstance(event, Token):
                    if batcher.add(event.text, reasoning=event.reasoning):
                        flush(i)
                elif isinstance(event, PromptReady):
                    self.post_message(CompareStarted(i))
                elif isinstance(event, Finished):
                    flush(i)
                    self.post_message(CompareRunDone(i, run))
        except ChattermError as exc:  # a model that fails to load, an overflowing prompt
            error = str(exc)
        finally:
            engines.close()
        self.post_message(CompareDone(cancel.is_set(), error))

    @on(CompareStarted)
    def _started(self, message: CompareStarted) -> None:
        self.column(message.index).start()

    @on(CompareTokens)
    def _tokens(self, message: CompareTokens) -> None:
        self.column(message.index).append(message.text, message.reasoning)

    @on(CompareRunDone)
    def _run_done(self, message: CompareRunDone) -> None:
        self.column(message.index).finish(message.run)

    @on(CompareDone)
    def _done(self, message: CompareDone) -> None:
        self.cancel = None
        if message.error:
            self._status(f"Stopped: {message.error}", "$error")
            return
        if message.cancelled:
            self._status("Stopped; the comparison was not saved.", "$warning")
            return
        self.experiment = self.save_experiment()
        short = self.experiment.short_id
        self._status(
            Content.assemble(
                ("Saved as experiment ", "dim"),
                (short, "bold $accent"),
                (f"  ·  chatterm lab experiments show {short}", "dim"),
            )
        )
        self.notify(f"Saved experiment {short}", timeout=3)

    def save_experiment(self) -> Any:
        """Save like ``chatterm lab compare``: inputs, variants, every run's messages, settings,
        text and stats. A file that cannot be written is reported, never a crash."""
        from chatterm.lab import experiments

        p = self._plan
        experiment = experiments.new_experiment(
            p["prompt"],
            self.variants,
            self.runs,
            seed=p["seed"],
            n_runs=p["n_runs"],
            system=p["system"],
            overrides=p["overrides"],
        )
        try:
            experiments.save(experiment)
        except OSError as exc:
            self.notify(f"Could not save the experiment: {exc}", severity="error", markup=False)
        return experiment

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "lab-compare" and event.state == WorkerState.ERROR:
            self.cancel = None
            error = event.worker.error
            self._status(f"The comparison failed: {type(error).__name__}: {error}", "$error")

    def action_stop_or_close(self) -> None:
        if self.cancel is not None:
            self.cancel.set()
            self._status("stopping…", "italic")
        else:
            self.dismiss(None)

    def on_unmount(self) -> None:
        if self.cancel is not None:
            self.cancel.set()
