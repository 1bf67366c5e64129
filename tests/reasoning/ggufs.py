"""SmolLM2 copies whose GGUF carries a reasoning model's chat template, written at test time
(never committed).

SmolLM2 itself never thinks, so these copies make the thinking paths run on a real model: the
DeepSeek-R1-style template opens ``<think>`` in its generation prompt, so every reply starts
inside the block (and a thinking budget is the way out); the Qwen3 template is llama.cpp's own
copy (from llama-cpp-python's sdist), which reads ``enable_thinking`` and ``reasoning_content``.
"""

from __future__ import annotations

from pathlib import Path

# Written for these tests in DeepSeek-R1's shape (its history keeps only what follows
# ``</think>``; its generation prompt opens the block), in SmolLM2's ChatML so the model
# writes something sensible.
R1_STYLE_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m.role == 'assistant' %}"
    "{% set content = m.content %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "<|im_start|>assistant\n{{ content }}<|im_end|>\n"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


def copy_with_template(source: Path, target: Path, template: str) -> Path:
    """Write ``target``: ``source`` with its chat template replaced (weights unchanged), with
    the suite's one GGUF copier (:mod:`tests.gguf_copies`)."""
    from tests.gguf_copies import copy_gguf

    return copy_gguf(source, target, template=template)


def qwen3_template() -> str:
    """llama.cpp's copy of Qwen3's chat template (reads ``enable_thinking`` and
    ``reasoning_content``), from llama-cpp-python's sdist."""
    from tests.llama_sdist import vendor_llama_cpp

    path = vendor_llama_cpp() / "models" / "templates" / "Qwen-Qwen3-0.6B.jinja"
    return path.read_text(encoding="utf-8")
