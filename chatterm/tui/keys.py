"""Every key binding of the chat app in one table, with ids so users can remap them.

The same table feeds the footer, the help screen (F1) and the command palette, so a key is
documented once. Users remap by binding id in ``config.toml``::

    [keymap]
    "chat.regenerate" = "ctrl+r,f5"
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from textual.binding import Binding

from chatterm import paths

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass

APP_BINDINGS = [
    Binding(
        "ctrl+q",
        "quit",
        "Quit",
        id="app.quit",
        priority=True,
        tooltip="Quit chatterm (a streaming reply is stopped and saved first)",
    ),
    Binding("f1,question_mark", "help", "Help", id="app.help", tooltip="Show every key"),
]

CHAT_BINDINGS = [
    Binding(
        "escape",
        "stop",
        "Stop",
        id="chat.stop",
        tooltip="Stop the reply and keep what it wrote; otherwise back to the input",
    ),
    Binding("ctrl+n", "new_chat", "New chat", id="chat.new", tooltip="Start a new conversation"),
    Binding(
        "ctrl+r",
        "regenerate",
        "Regenerate",
        id="chat.regenerate",
        tooltip="Generate another reply to the last prompt (a new branch)",
    ),
    Binding(
        "ctrl+g",
        "edit_last",
        "Edit",
        id="chat.edit_last",
        tooltip="Edit the last prompt and resend it (a new branch)",
    ),
    Binding(
        "ctrl+b",
        "toggle_conversations",
        "Chats",
        id="chat.toggle_conversations",
        show=False,
        tooltip="Show or hide the conversation list",
    ),
    Binding(
        "ctrl+t",
        "toggle_panel",
        "Panel",
        id="chat.toggle_panel",
        show=False,
        tooltip="Show or hide the settings panel",
    ),
    Binding(
        "ctrl+f",
        "search",
        "Search",
        id="chat.search",
        show=False,
        tooltip="Search conversations by title and text",
    ),
    Binding("ctrl+o", "pick_model", "Model", id="chat.model", tooltip="Load another model"),
    Binding(
        "ctrl+s",
        "pick_persona",
        "Persona",
        id="chat.persona",
        tooltip="Choose a persona: system prompt and default settings",
    ),
    Binding(
        "ctrl+l",
        "pick_template",
        "Template",
        id="chat.template",
        show=False,
        tooltip="Fill the input from a prompt template",
    ),
    Binding(
        "alt+t",
        "toggle_thinking",
        "Thinking",
        id="chat.toggle_thinking",
        show=False,
        tooltip="Open or fold the last reply's thinking (reasoning models); the choice sticks "
        "for the conversation",
    ),
    Binding(
        "alt+c",
        "copy_reply",
        "Copy reply",
        id="chat.copy_reply",
        show=False,
        tooltip="Copy the last reply to the clipboard",
    ),
    Binding(
        "alt+y",
        "copy_code",
        "Copy code",
        id="chat.copy_code",
        show=False,
        tooltip="Copy the last code block of the last reply",
    ),
]

INPUT_KEYS = [
    ("enter", "Send the message"),
    ("ctrl+j", "Insert a newline (also shift+enter where the terminal reports it)"),
    ("up / down", "Recall earlier prompts (on the first / last line)"),
    ("tab / shift+tab", "Move to the next / previous area"),
]

MESSAGE_KEYS = [
    ("up / down", "Move between messages"),
    ("c", "Copy the message"),
    ("y", "Copy a code block (press again for the next one); a click on a block copies it"),
    ("e", "Edit this prompt and resend it as a new branch"),
    ("r", "Regenerate this reply (a new branch)"),
    ("left / right", "Previous / next branch at this message"),
]

LIST_KEYS = [
    ("enter", "Open the conversation"),
    ("r / f2", "Rename it"),
    ("d / delete", "Delete it (asks first)"),
]

PANEL_KEYS = [
    ("up / down", "Step the focused setting by its step"),
    ("hover", "A setting's label and field explain it"),
]


def user_keymap() -> dict[str, str]:
    """``[keymap]`` from config.toml: binding id → keys. A bad file was already reported by
    ``load_config`` at start-up; here anything unusable is ignored."""
    from chatterm.config import read_toml
    from chatterm.errors import ChattermError

    try:
        data = read_toml(paths.config_file())
    except ChattermError:
        return {}
    keymap = data.get("keymap")
    if not isinstance(keymap, dict):
        return {}
    return {str(k): v for k, v in keymap.items() if isinstance(v, str) and v.strip()}


def keys_for(binding: Binding, keymap: dict[str, str]) -> str:
    """The keys a binding answers to once the user's keymap is applied."""
    if binding.id and binding.id in keymap:
        return keymap[binding.id]
    return binding.key


def by_id(binding_id: str) -> Binding:
    """The app's or the chat screen's binding with this id (``KeyError`` if none)."""
    for binding in [*APP_BINDINGS, *CHAT_BINDINGS]:
        if binding.id == binding_id:
            return binding
    raise KeyError(binding_id)


def display_keys(keys: str) -> str:
    return " / ".join(k.strip().replace("question_mark", "?") for k in keys.split(","))


def binding_rows(bindings: Iterable[Binding], keymap: dict[str, str]) -> list[tuple[str, str]]:
    return [
        (display_keys(keys_for(b, keymap)), b.tooltip or b.description)
        for b in bindings
        if b.action
    ]


def _split(keys: str) -> list[str]:
    return [k.strip() for k in keys.split(",") if k.strip()]


def input_keys() -> dict[str, str]:
    """Keys the message input handles itself while it has focus (key → what it does): the
    text area's editing keys and chatterm's own (send, newline, recall). A binding on the same
    key reaches the app only when the input is not focused."""
    from chatterm.tui.widgets.prompt_input import PromptInput

    taken: dict[str, str] = {}
    for binding in PromptInput.BINDINGS:
        if isinstance(binding, Binding):
            for key in _split(binding.key):
                taken.setdefault(key, binding.description or binding.action)
    taken.update({"enter": "send", "ctrl+j": "new line", "up": "recall", "down": "recall"})
    return taken


def keymap_warnings(keymap: dict[str, str], bindings: Iterable[Binding]) -> list[str]:
    """What is wrong with a user's ``[keymap]``, one line each: ids no binding has, a key given
    to two bindings (only one of them can answer), and keys the focused input takes first.

    ``bindings`` are every remappable binding (the app's, the chat screen's, the lab's)."""
    bindings = [b for b in bindings if b.id]
    known = {b.id for b in bindings}
    warnings = [
        f"keymap: no binding has the id {name!r} "
        "(the ids are in chatterm/tui/keys.py and chatterm/tui/lab/keys.py)"
        for name in keymap
        if name not in known
    ]
    owners: dict[str, list[str]] = {}
    for binding in bindings:
        for key in _split(keys_for(binding, keymap)):
            owners.setdefault(key, []).append(binding.id or "")
    typing = input_keys()
    for name, keys in keymap.items():
        if name not in known:
            continue
        for key in _split(keys):
            others = [other for other in owners.get(key, []) if other != name]
            if others:
                warnings.append(
                    f"keymap: {key} for {name} is also the key of {', '.join(others)}; "
                    "only one of them can answer it"
                )
            if key in typing:
                warnings.append(
                    f"keymap: {key} for {name} is the input's key for {typing[key]!r}; "
                    f"it reaches {name} only when the input does not have focus"
                )
    return warnings
