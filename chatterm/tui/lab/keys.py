"""The lab's key bindings, with ids so users can remap them (``[keymap]`` in config.toml).

The chat screen lists them after its own, so the footer, the help screen (F1) and the command
palette show them the same way as every other key. Function keys: the input (a text area) and
terminals claim most Ctrl combinations, and F-keys reach the app in every common terminal;
F6 and F7 are left to the text area (select line / select all).
"""

from __future__ import annotations

from textual.binding import Binding

LAB_BINDINGS = [
    Binding(
        "f3",
        "toggle_probs",
        "Probs",
        id="lab.probs",
        tooltip="Probabilities on/off: colour replies by how likely each token was, and save "
        "the top candidates with them (off costs nothing)",
    ),
    Binding(
        "f4",
        "lab_tokens",
        "Tokens",
        id="lab.tokens",
        tooltip="Show how the model's tokenizer splits the input, or the focused message",
    ),
    Binding(
        "f5",
        "lab_sampling",
        "Sampling",
        id="lab.sampling",
        tooltip="The next-token distribution after the input (or the conversation) and what "
        "temperature, top-k, top-p and min-p keep of it, live",
    ),
    Binding(
        "f8",
        "lab_compare",
        "Compare",
        id="lab.compare",
        tooltip="Run the input through several variants (settings, persona, template, model) "
        "side by side; saved as an experiment",
    ),
    Binding(
        "f9",
        "lab_prompt",
        "Prompt",
        id="lab.prompt",
        show=False,
        tooltip="The exact text the model saw for the focused (or last) message: chat "
        "template, special tokens, the part reused from the KV cache",
    ),
    Binding(
        "f10",
        "lab_inspect",
        "Inspect",
        id="lab.inspect",
        show=False,
        tooltip="Select tokens of the focused (or last) coloured reply to see their candidates",
    ),
]

TOKEN_KEYS = [
    ("left / right", "Previous / next token; the chart shows its candidates"),
    ("home / end", "First / last token"),
    ("click", "Select the token under the mouse"),
    ("escape", "Close the chart and go back to the message"),
]

LAB_SCREEN_KEYS = [
    ("Tokens: i", "Show or hide token ids"),
    ("Tokens: a / l", "Attention between the text's tokens / the logit lens after it"),
    ("Attention: left / right, [ ], - =", "Select a token; step layers; step heads"),
    ("Attention: a", "Average over all layers and heads again"),
    ("Sampling: ctrl+l", "The logit lens of the same prompt"),
    ("Sampling: up / down", "Step the focused setting; the chart follows at once"),
    ("Sampling: enter", "Use these four settings in the chat and close"),
    (
        "Compare: enter",
        "Run the variants (separated by | in the variants box, e.g. temperature=0 | top_k=5)",
    ),
    ("Compare / Sampling: escape", "Stop a run, or close the view"),
    ("Prompt: c", "Copy the rendered prompt"),
]
