"""Chat formats: the model's own template, or a fallback chosen from its vocabulary.

A GGUF without a chat template gets the format its vocabulary was trained for when the model is
tuned to chat (its name or metadata says instruct, chat, it…): ChatML for ``<|im_start|>``,
Gemma's turns for ``<start_of_turn>``, Llama 3's headers for ``<|start_header_id|>``; anything
else, and every base model, gets plain text (an instruct format on a base model makes it answer
off-topic, and plain text is what it was trained on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PLAIN_TEMPLATE = (
    "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n"
    "{% elif m.role == 'user' %}{{ m.content }}{% else %}{{ m.content }}\n\n{% endif %}"
    "{% endfor %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n"
    "{{ m.content | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content | trim }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
    "{% endif %}"
)
# Kept for callers of the old name: the plain-text format.
FALLBACK_TEMPLATE = PLAIN_TEMPLATE


@dataclass(frozen=True)
class ChatFormat:
    """How a model's conversations become text: ``name`` is ``"template"`` (the model's own
    chat template) or a fallback (``"chatml"``, ``"gemma"``, ``"llama3"``, ``"plain"``);
    ``source`` the Jinja source used; ``reason`` one line saying why, for ``models show``."""

    name: str
    source: str
    reason: str

    @property
    def label(self) -> str:
        return "the model's own chat template" if self.name == "template" else self.name


_FALLBACKS = (
    ("<|im_start|>", "chatml", CHATML_TEMPLATE, "ChatML"),
    ("<start_of_turn>", "gemma", GEMMA_TEMPLATE, "Gemma's turn format"),
    ("<|start_header_id|>", "llama3", LLAMA3_TEMPLATE, "Llama 3's header format"),
)
_INSTRUCT = re.compile(r"(?:^|[^a-z])(instruct|chat|it|sft|rlhf|dpo|assistant)(?:[^a-z]|$)")


def looks_instruct(*names: str | None) -> bool:
    """Whether a model name, file name or metadata field says the model was tuned to chat
    (``instruct``, ``chat``, ``it``, ``sft``…); base models stay on plain text."""
    return any(n and _INSTRUCT.search(n.lower()) for n in names)


def choose_format(template: str | None, has_token: Any, instruct: bool) -> ChatFormat:
    """The model's own template when it has one; else a format its vocabulary was trained for
    (``has_token(text)``: whether the vocabulary holds the token ``text``) when the model is
    tuned to chat; else plain text."""
    if template:
        return ChatFormat("template", template, "the chat template in the model file")
    if instruct:
        for marker, name, source, what in _FALLBACKS:
            if has_token(marker):
                return ChatFormat(
                    name,
                    source,
                    f"no chat template in the file; the vocabulary has {marker}: {what}",
                )
        return ChatFormat("plain", PLAIN_TEMPLATE, "no chat template and no known turn markers")
    return ChatFormat("plain", PLAIN_TEMPLATE, "no chat template in the file and a base model")
