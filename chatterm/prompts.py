"""Personas and prompt templates: Markdown files people edit and experiment with.

A persona is a system prompt with default sampling settings; a template is a reusable user
prompt with variables. Both are ``NAME.md`` files: an optional TOML front matter between ``+++``
lines, then the prompt text, rendered with Jinja in an immutable sandbox::

    +++
    description = "Translate text"
    temperature = 0.2
    [variables]
    lang = "French"
    +++
    Translate into {{ lang }}:

    {{ input }}

Bundled files live in the repository's ``prompts/`` (shipped inside the wheel as
``chatterm/prompt_files/``); the user's own files in ``paths.user_prompts_dir()`` override
bundled ones of the same name. A broken file never hides the others: it is listed with its
error (``path:line: message``) and only using it fails.

The API the CLI and the TUI share:

- :func:`list_prompts` — every persona or template, with descriptions (broken ones have ``error``)
- :func:`load_prompt` — one by name; raises when unknown or broken (:func:`find_prompt` does
  not raise for a broken one)
- :meth:`PromptFile.render` / :meth:`PromptFile.missing` — fill in variables
- :func:`compose` — persona + template + input + ``-v`` variables → the chat messages and the
  sampling defaults to pass to ``services.sampling_settings``
- :func:`parse_variables`, :func:`new_prompt`, :func:`editable_path`, :func:`run_editor`
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chatterm import paths
from chatterm.attachments import Attachment, user_content
from chatterm.engine.events import ChatMessage
from chatterm.errors import ChattermError, TemplateError, UsageError

Kind = Literal["persona", "template"]
Origin = Literal["bundled", "user"]

KINDS: tuple[Kind, ...] = ("persona", "template")
SUBDIRS: dict[Kind, str] = {"persona": "personas", "template": "templates"}
FENCE = "+++"
INPUT = "input"
MAX_OUTPUT_CHARS = 1_000_000

_NAME = re.compile(r"^\w[\w.-]*$")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$|\s*\(at end of document\)$")

SKELETONS: dict[Kind, str] = {
    "persona": """\
+++
description = "One line shown in the persona list"
# Default sampling settings; explicit flags (--temperature …) win.
temperature = 0.7
+++
You are a helpful assistant. Describe here who the model should be, how it should answer and
what it should avoid. This text becomes the system prompt.
""",
    "template": """\
+++
description = "One line shown in the template list"
# Defaults for the variables below; override them with -v name=value.
[variables]
tone = "friendly"
+++
Answer in a {{ tone }} tone:

{{ input }}
""",
}


@dataclass(frozen=True)
class PromptFile:
    """One persona or template file, parsed; when it is broken, ``error`` says why.

    ``settings`` are sampling defaults from the front matter (already validated), ``variables``
    the defaults from ``[variables]``, and ``uses`` every variable the body refers to
    (``"input"`` included), so a front end can ask for the ones without a default.
    """

    kind: Kind
    name: str
    path: Path
    origin: Origin
    description: str = ""
    body: str = ""
    body_line: int = 1
    settings: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    uses: frozenset[str] = frozenset()
    overrides_bundled: bool = False
    error: str | None = None
    compiled: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def needs_input(self) -> bool:
        return INPUT in self.uses

    @property
    def label(self) -> str:
        """``persona 'teacher'`` — how messages name this file."""
        return f"{self.kind} {self.name!r}"

    def check(self) -> PromptFile:
        """Return self, or raise :class:`TemplateError` (exit 2) if the file is broken."""
        if self.error:
            raise TemplateError(self.error)
        return self

    def missing(self, variables: Mapping[str, str] | None = None, input: str = "") -> list[str]:
        """Variables the body uses that have no value from ``variables``, defaults or input."""
        known = {**self.variables, **(variables or {})}
        if input:
            known[INPUT] = input
        return sorted(name for name in self.uses if name not in known)

    def render(self, input: str = "", variables: Mapping[str, str] | None = None) -> str:
        """The prompt text with ``{{ input }}`` and the variables filled in (``variables`` win
        over the file's defaults). Raises :class:`TemplateError` naming a missing variable, an
        unsafe operation or a runtime error, with the file and line."""
        self.check()
        missing = self.missing(variables, input)
        if missing:
            name = missing[0]
            if name == INPUT:
                raise TemplateError(
                    f"{self.path}: {self.label} needs input ({{{{ input }}}}): pipe text in or "
                    "give it as an argument"
                )
            raise TemplateError(
                f"{self.path}: {self.label} has no value for variable {name!r}: set it with "
                f"-v {name}=VALUE or give it a default under [variables]"
            )
        context: dict[str, Any] = {**self.variables, **(variables or {})}
        if input:
            context[INPUT] = input
        return _render(self, context).strip()


@dataclass(frozen=True)
class ComposedPrompt:
    """What one request sends: an optional system prompt, the user message, the sampling
    defaults from the persona and template (pass them to ``services.sampling_settings``) and
    the attachments that go before the user message."""

    system: str | None
    user: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()

    @property
    def content(self) -> str:
        """The user message as the model sees it: attachments first, then the text."""
        return user_content(self.user, self.attachments)

    def messages(self) -> list[ChatMessage]:
        out = [ChatMessage("system", self.system)] if self.system else []
        out.append(ChatMessage("user", self.content))
        return out


# -- locations -----------------------------------------------------------------------------


def bundled_dir() -> Path:
    """The shipped prompts: ``chatterm/prompt_files`` in a wheel, ``prompts/`` in a checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "prompt_files"
    if installed.is_dir():
        return installed
    return package.parent / "prompts"


def user_dir(kind: Kind) -> Path:
    return paths.user_prompts_dir() / SUBDIRS[kind]


def check_name(name: str) -> str:
    """Refuse names that are not plain file names (no path separators, no leading dot)."""
    if name.endswith(".md"):
        name = name[:-3]
    if not _NAME.match(name) or "/" in name or "\\" in name:
        raise UsageError(
            f"invalid name {name!r}: use letters, digits, '-', '_' and '.', without slashes"
        )
    return name


# -- loading -------------------------------------------------------------------------------


def list_prompts(kind: Kind) -> list[PromptFile]:
    """Every persona or template by name; user files replace bundled ones of the same name.
    Broken files are included with ``error`` set, so a list can show what to fix."""
    found: dict[str, PromptFile] = {}
    for origin, directory in (("bundled", bundled_dir() / SUBDIRS[kind]), ("user", user_dir(kind))):
        for path in _md_files(directory):
            name = path.stem
            item = read_prompt(path, kind, origin)  # type: ignore[arg-type]
            if name in found and origin == "user":
                item = _replace(item, overrides_bundled=True)
            found[name] = item
    return [found[name] for name in sorted(found, key=str.casefold)]


def load_prompt(kind: Kind, name: str) -> PromptFile:
    """The persona or template called ``name``, ready to render; raises :class:`UsageError`
    if there is none and :class:`TemplateError` (both exit 2) if its file is broken."""
    return find_prompt(kind, name).check()


def find_prompt(kind: Kind, name: str) -> PromptFile:
    """Like :func:`load_prompt`, but a broken file is returned (with ``error``), not raised."""
    name = check_name(name)
    bundled = bundled_dir() / SUBDIRS[kind] / f"{name}.md"
    user = user_dir(kind) / f"{name}.md"
    if user.is_file():
        return _replace(read_prompt(user, kind, "user"), overrides_bundled=bundled.is_file())
    if bundled.is_file():
        return read_prompt(bundled, kind, "bundled")
    names = ", ".join(p.name for p in list_prompts(kind)) or "none"
    raise UsageError(f"no {kind} named {name!r} (available: {names})")


def read_prompt(path: Path, kind: Kind, origin: Origin = "user") -> PromptFile:
    """Parse one file; never raises for bad content (the error goes into ``error``)."""
    name = path.stem
    if not _NAME.match(name):
        return PromptFile(
            kind,
            name,
            path,
            origin,
            error=(
                f"{path}: cannot be used by this name: rename it to letters, digits, '-', '_' and "
                "'.' only"
            ),
        )
    from chatterm.safe_files import read_bytes

    try:  # a regular file only, never blocking on a FIFO; 1 MiB is far past any prompt
        text = read_bytes(path, 1 << 20).decode("utf-8")
    except UnicodeDecodeError:
        return PromptFile(kind, name, path, origin, error=f"{path}: not UTF-8 text")
    except OSError as exc:
        return PromptFile(kind, name, path, origin, error=f"{path}: cannot read: {exc.strerror}")
    try:
        return parse_prompt(text, kind=kind, name=name, path=path, origin=origin)
    except TemplateError as exc:
        return PromptFile(kind, name, path, origin, error=str(exc))
    except RecursionError:  # anything nested too deep for Python: this file only is broken
        return PromptFile(kind, name, path, origin, error=f"{path}: nested too deeply to read")


def parse_prompt(
    text: str, *, kind: Kind, name: str, path: Path, origin: Origin = "user"
) -> PromptFile:
    """Parse a file's text. Raises :class:`TemplateError` as ``path:line: message``."""
    meta, body, body_line, fence_lines = _split_front_matter(text, path)
    description = meta.pop("description", "")
    if not isinstance(description, str):
        raise TemplateError(
            f"{path}:{_key_line(fence_lines, 'description')}: description must be a string"
        )
    variables = _variables(meta.pop("variables", {}), path, fence_lines)
    settings = _settings(meta, path, fence_lines)
    item = PromptFile(
        kind,
        name,
        path,
        origin,
        description=description.strip(),
        body=body,
        body_line=body_line,
        settings=settings,
        variables=variables,
    )
    template, uses = _compile(item)
    if kind == "persona" and INPUT in uses:
        raise TemplateError(
            f"{path}: a persona is the system prompt and has no {{{{ input }}}}; "
            "put the input in a template instead"
        )
    return _replace(item, uses=uses, compiled=template)


def parse_variables(pairs: Iterable[str]) -> dict[str, str]:
    """``["lang=German", "tone=dry"]`` → a dict; raises :class:`UsageError` for a bad pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"-v expects name=value, got {pair!r}")
        if not key.isidentifier():
            raise UsageError(f"-v {pair!r}: {key!r} is not a valid variable name")
        if key == INPUT:
            raise UsageError("-v input=…: the input comes from the argument or stdin")
        out[key] = value
    return out


def compose(
    text: str,
    *,
    persona: PromptFile | None = None,
    template: PromptFile | None = None,
    variables: Mapping[str, str] | None = None,
    system: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> ComposedPrompt:
    """Combine a persona, a template, the input ``text`` and ``variables`` into one request.

    The persona's body (rendered with the variables) is the system prompt unless ``system`` is
    given; the template rendered with ``text`` is the user message (``text`` alone without a
    template). Sampling defaults: the template's over the persona's. A variable neither file
    uses, or input that a template would ignore, is an error rather than silently dropped.
    With ``attachments`` and no text, a template's ``{{ input }}`` points at them.
    """
    variables = dict(variables or {})
    files = [f.check() for f in (persona, template) if f is not None]
    if variables:
        if not files:
            raise UsageError("-v sets template variables: choose a template (-t) or persona (-p)")
        known = set().union(*(set(f.uses) | set(f.variables) for f in files)) - {INPUT}
        unknown = sorted(set(variables) - known)
        if unknown:
            names = " and ".join(f.label for f in files)
            listed = ", ".join(sorted(known)) or "none"
            raise UsageError(
                f"-v {unknown[0]}: {names} has no variable {unknown[0]!r} (variables: {listed})"
            )
    if template is not None:
        if text.strip() and not template.needs_input:
            raise UsageError(
                f"{template.label} does not use {{{{ input }}}}, so the text given would be "
                "ignored; pass values with -v name=value instead"
            )
        if not text.strip() and attachments and template.needs_input:
            text = (
                "the attached text above" if len(attachments) == 1 else "the attached texts above"
            )
        user = template.render(text, variables)
    else:
        user = text
    if system is None and persona is not None:
        system = persona.render("", variables) or None
    settings: dict[str, Any] = {}
    for f in files:
        settings.update(f.settings)
    return ComposedPrompt(system, user, settings, tuple(attachments))


# -- creating and editing ------------------------------------------------------------------


def new_prompt(kind: Kind, name: str) -> Path:
    """Create ``NAME.md`` from a skeleton in the user directory and return its path."""
    name = check_name(name)
    path = user_dir(kind) / f"{name}.md"
    if path.exists():
        raise UsageError(
            f"{path} already exists: edit it with `chatterm {SUBDIRS[kind]} edit {name}`"
        )
    if (bundled_dir() / SUBDIRS[kind] / path.name).is_file():
        raise UsageError(
            f"a bundled {kind} is named {name!r}: `chatterm {SUBDIRS[kind]} edit {name}` copies it "
            "for you to change"
        )
    from chatterm.safe_files import write_atomic

    write_atomic(path, SKELETONS[kind], what=kind)
    return path


def editable_path(kind: Kind, name: str) -> tuple[Path, bool]:
    """The user's file for ``name``, copying the bundled one there first if needed (so the edit
    overrides it and the bundled file stays intact). Returns the path and whether it copied."""
    name = check_name(name)
    path = user_dir(kind) / f"{name}.md"
    if path.is_file():
        return path, False
    bundled = bundled_dir() / SUBDIRS[kind] / path.name
    if not bundled.is_file():
        raise UsageError(
            f"no {kind} named {name!r}: create it with `chatterm {SUBDIRS[kind]} new {name}`"
        )
    from chatterm.safe_files import write_atomic

    write_atomic(path, bundled.read_text(encoding="utf-8"), what=kind)
    return path, True


def editor_command() -> list[str]:
    """``$EDITOR``, else ``$VISUAL``, else nano or vi (split like a shell would)."""
    for var in ("EDITOR", "VISUAL"):
        value = os.environ.get(var, "").strip()
        if value:
            return shlex.split(value, posix=os.name != "nt")
    for fallback in ("nano", "vi"):
        found = shutil.which(fallback)
        if found:
            return [found]
    raise UsageError("no editor found: set $EDITOR (e.g. export EDITOR=nano)")


def run_editor(path: Path) -> None:
    """Open ``path`` in the user's editor and wait for it to exit."""
    command = editor_command()
    try:
        result = subprocess.run([*command, str(path)], check=False)
    except OSError as exc:
        raise UsageError(
            f"cannot run the editor {command[0]!r}: {exc.strerror}; set $EDITOR"
        ) from None
    if result.returncode != 0:
        raise ChattermError(
            f"the editor exited with status {result.returncode}; the file is kept at {path}"
        )


# -- internals -----------------------------------------------------------------------------


def _md_files(directory: Path) -> list[Path]:
    try:
        return sorted(
            p for p in directory.glob("*.md") if p.is_file() and not p.name.startswith(".")
        )
    except OSError:
        return []


def _replace(item: PromptFile, **changes: Any) -> PromptFile:
    import dataclasses

    return dataclasses.replace(item, **changes)


def _split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str, int, list[str]]:
    """Front matter (parsed), body, the body's first line number, and the front matter lines."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib

    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != FENCE:
        return {}, text, 1, []
    close = next((i for i in range(1, len(lines)) if lines[i].strip() == FENCE), None)
    if close is None:
        raise TemplateError(f"{path}:1: the front matter opened with +++ is never closed by +++")
    fence_lines = lines[1:close]
    try:
        meta = tomllib.loads("".join(fence_lines))
    except RecursionError:  # tables or arrays nested thousands deep
        raise TemplateError(f"{path}:2: invalid front matter: nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line = close + 1  # "at end of document": the closing fence
        if match and match.group(1):
            line = int(match.group(1)) + 1
        if match:
            message = message[: match.start()]
        raise TemplateError(f"{path}:{line}: invalid front matter: {message}") from None
    return meta, "".join(lines[close + 1 :]), close + 2, fence_lines


def _key_line(fence_lines: Sequence[str], key: str) -> int:
    """The file line where ``key`` is set in the front matter (for error messages)."""
    pattern = re.compile(rf"^\s*(\[\s*)?[\"']?{re.escape(key)}[\"']?\s*[=\]]")
    for i, line in enumerate(fence_lines):
        if pattern.match(line):
            return i + 2
    return 1


def _settings(meta: Mapping[str, Any], path: Path, fence_lines: Sequence[str]) -> dict[str, Any]:
    """The sampling defaults, each checked by ``SamplingSettings`` so a bad value names its line."""
    import dataclasses

    from chatterm.sampling import SamplingSettings

    names = [f.name for f in dataclasses.fields(SamplingSettings)]
    meta = dict(meta)
    for key, value in meta.items():
        line = _key_line(fence_lines, key)
        if key == "schema":  # inline JSON, a table, a .json path (beside the file) or concise
            from chatterm import structured

            try:
                meta[key] = structured.canonical(structured.parse_schema(value, base=path.parent))
            except ChattermError as exc:
                raise TemplateError(f"{path}:{line}: {exc}") from None
            continue
        if key not in names:
            known = ", ".join(["description", "variables", *names])
            raise TemplateError(f"{path}:{line}: unknown key {key!r} (known: {known})")
        try:
            SamplingSettings().merge({key: value})
        except ChattermError as exc:
            raise TemplateError(f"{path}:{line}: {exc}") from None
    return dict(meta)


def _variables(value: Any, path: Path, fence_lines: Sequence[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TemplateError(
            f"{path}:{_key_line(fence_lines, 'variables')}: "
            'variables must be a table: [variables] then name = "value" lines'
        )
    out: dict[str, str] = {}
    for key, default in value.items():
        line = _key_line(fence_lines, key)
        if not key.isidentifier():
            raise TemplateError(f"{path}:{line}: {key!r} is not a valid variable name")
        if key == INPUT:
            raise TemplateError(f"{path}:{line}: 'input' is the piped text and has no default")
        if isinstance(default, bool) or not isinstance(default, (str, int, float)):
            raise TemplateError(f"{path}:{line}: variable {key!r} must be a string or a number")
        out[key] = str(default)
    return out


def _environment() -> Any:
    from jinja2 import StrictUndefined

    from chatterm.jinja_sandbox import environment

    return environment(
        MAX_OUTPUT_CHARS,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


_ENV: Any = None


def _env() -> Any:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


def _compile(item: PromptFile) -> tuple[Any, frozenset[str]]:
    """The compiled body and the variables it refers to; syntax errors name the file line."""
    from jinja2 import meta

    from chatterm.jinja_sandbox import RenderError, compile_template

    env = _env()
    try:
        template = compile_template(env, item.body)
        uses = set(meta.find_undeclared_variables(env.parse(item.body))) - set(env.globals)
    except RenderError as exc:
        line = item.body_line + (exc.line or 1) - 1
        raise TemplateError(f"{item.path}:{line}: template {exc}") from None
    return template, frozenset(uses)


def _render(item: PromptFile, context: Mapping[str, Any]) -> str:
    """Render under the sandbox's budgets; every failure is one line naming the file line."""
    from chatterm.jinja_sandbox import RenderError, render_bounded

    template = item.compiled if item.compiled is not None else _compile(item)[0]
    try:
        return render_bounded(template, context, max_chars=MAX_OUTPUT_CHARS)
    except RenderError as exc:
        where = f"{item.path}:{item.body_line + exc.line - 1}" if exc.line else str(item.path)
        if exc.kind == "budget":
            raise TemplateError(f"{where}: {item.label} {exc}; refusing it") from None
        raise TemplateError(f"{where}: {item.label} failed to render: {exc}") from None
