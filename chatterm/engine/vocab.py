"""A model's vocabulary through llama.cpp: tokenizing, token pieces, and rendering prompts.

Everything that needs only the tokenizer lives here, so ``chatterm render`` and ``chatterm
tokenize`` load the vocabulary alone (``vocab_only``: no weights, no context; it also accepts
llama.cpp's vocab-only GGUFs), and the full engine uses the same code on its loaded model.

The chat format (the model's own template, or a fallback chosen from the vocabulary) and the
rendering of a conversation into tokens are declared once here:
:meth:`Vocabulary.render` is what ``render``, ``ask``, the chat app and the lab all use.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chatterm.engine import chat_template
from chatterm.engine.base import RenderedPrompt, TokenPiece
from chatterm.engine.events import ChatMessage
from chatterm.errors import ChatTemplateError, ModelError
from chatterm.gguf_file import GGUFInfo, read_gguf


def readable_piece(raw: bytes) -> tuple[str, bool]:
    """A token's bytes as text, with bytes that are not valid UTF-8 on their own (byte-fallback
    tokens, parts of a multi-byte character) shown as ``<0xF0>`` escapes. Returns the text and
    whether any byte needed escaping."""
    text = raw.decode("utf-8", errors="backslashreplace")
    if "\\x" not in text or raw.decode("utf-8", errors="ignore") == text:
        return text, False
    out, fallback = [], False
    i = 0
    while i < len(raw):
        for width in (4, 3, 2, 1):
            chunk = raw[i : i + width]
            try:
                out.append(chunk.decode("utf-8"))
                i += len(chunk)
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(f"<0x{raw[i]:02X}>")
            fallback = True
            i += 1
    return "".join(out), fallback


def _silence_llama_logs() -> None:
    """Route llama.cpp's C-level log lines nowhere; ``verbose=False`` alone misses some."""
    import llama_cpp

    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


_LOG_CALLBACK: Any = None


def load_model(path: Path, *, vocab_only: bool) -> Any:
    """``llama_cpp._internals.LlamaModel`` for ``path`` (weights skipped with ``vocab_only``).
    Raises :class:`ModelError` when llama.cpp cannot load it."""
    import llama_cpp
    from llama_cpp import _internals

    _silence_llama_logs()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = vocab_only
    params.use_mmap = True
    try:
        return _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
    except Exception as exc:  # llama.cpp reports every load failure as a bare ValueError
        raise ModelError(f"{path}: llama.cpp could not read its vocabulary ({exc})") from None


def chat_format_of(path: str | Path, info: GGUFInfo | None = None) -> chat_template.ChatFormat:
    """The chat format a model file gets: its own template, else a fallback chosen from the
    turn markers its vocabulary holds (read by chatterm's own GGUF reader, so ``models show``
    never hands an untrusted file's vocabulary to llama.cpp) when its name or metadata says it
    is tuned to chat. Raises :class:`ModelError` when the file cannot be read."""
    info = info or read_gguf(path)

    def text(key: str) -> str | None:
        value = info.get(key)
        return value if isinstance(value, str) else None

    instruct = chat_template.looks_instruct(
        info.name, text("general.finetune"), text("general.basename"), Path(path).name
    )
    return chat_template.choose_format(info.chat_template, info.turn_markers.__contains__, instruct)


class Vocabulary:
    """The tokenizer of one loaded model (``model``: a ``LlamaModel``, loaded vocab-only or in
    full). Thread-safe for reading: piece buffers are per thread."""

    def __init__(self, model: Any, path: Path, info: GGUFInfo, *, name: str | None = None) -> None:
        import llama_cpp

        self._model = model
        self._vocab = model.vocab
        self.path = path
        self.info = info
        self.name = name or path.name
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        bos, eos = model.token_bos(), model.token_eos()
        self.bos_id = bos
        self.bos_text = model.token_get_text(bos) if bos != -1 else ""
        self.eos_text = model.token_get_text(eos) if eos != -1 else ""
        self.add_bos = bool(model.add_bos_token())
        self._local = threading.local()
        self._found: dict[str, frozenset[str]] = {}
        self.n_ctx = 0  # the window a full load would get (set by whoever loads it)

    @classmethod
    def load(cls, path: str | Path, *, name: str | None = None) -> Vocabulary:
        """Load only the vocabulary of the GGUF at ``path`` (checked by chatterm's own reader
        first). Raises :class:`ModelError`."""
        path = Path(path)
        info = read_gguf(path)
        return cls(load_model(path, vocab_only=True), path, info, name=name)

    def close(self) -> None:
        model, self._model = self._model, None
        if model is not None:
            model.close()

    # -- tokens ----------------------------------------------------------------------------

    def token_ids(self, text: str, *, special: bool = False, add_bos: bool = False) -> list[int]:
        """Token ids of ``text``; ``special`` parses control-token text as control tokens."""
        import llama_cpp

        if not text:
            return []
        data = text.encode("utf-8")
        size = len(data) + 8
        buf = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, size, add_bos, special)
        if n < 0:
            size = -n
            buf = (llama_cpp.llama_token * size)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, size, add_bos, special)
            if n < 0:
                raise ModelError(f"{self.path}: llama.cpp could not tokenize the text")
        return list(buf[:n])

    def piece_bytes(self, token_id: int) -> bytes:
        """The bytes token ``token_id`` stands for (control tokens: nothing)."""
        import llama_cpp

        local = self._local
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self._vocab, token_id, buf, len(buf), 0, False)
        if n < 0:
            buf = local.buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token_id, buf, len(buf), 0, False)
        return buf.raw[:n]

    def special_text(self, token_id: int) -> bytes:
        import llama_cpp

        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self._vocab, token_id, buf, 256, 0, True)
        return buf.raw[: max(n, 0)]

    def attr(self, token_id: int) -> int:
        import llama_cpp

        return int(llama_cpp.llama_vocab_get_attr(self._vocab, token_id))

    def is_special(self, token_id: int) -> bool:
        """Control (or unknown) tokens: shown by name, never produced from plain text."""
        import llama_cpp

        hidden = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
        return bool(self.attr(token_id) & hidden)

    def piece(self, token_id: int) -> TokenPiece:
        """How one token reads: its text (control tokens by name) and what kind it is."""
        if self.is_special(token_id):
            text, _ = readable_piece(self.special_text(token_id))
            return TokenPiece(token_id, text, special=True)
        text, fallback = readable_piece(self.piece_bytes(token_id))
        return TokenPiece(token_id, text, byte_fallback=fallback)

    def tokenize(self, text: str, *, special: bool = False) -> list[TokenPiece]:
        return [self.piece(t) for t in self.token_ids(text, special=special)]

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return b"".join(self.piece_bytes(t) for t in token_ids).decode("utf-8", "replace")

    def control_texts_in(
        self, messages: Sequence[ChatMessage] | Sequence[Mapping[str, Any]]
    ) -> frozenset[str]:
        """The text of every control token (``<|im_end|>``…) spelled inside the messages'
        fields: what content must never become. Found by llama.cpp's own special-token matching
        (tokenizing each field with ``special=True``), so no pass over a 262k vocabulary is
        needed; results are cached per text, since history repeats every turn."""
        import llama_cpp

        control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        found: set[str] = set()
        for message in messages:
            for key, value in chat_template.as_dict(message).items():
                if key == "role" or not isinstance(value, str) or not value:
                    continue
                texts = self._found.get(value)
                if texts is None:
                    ids = set(self.token_ids(value, special=True))
                    texts = frozenset(
                        llama_cpp.llama_vocab_get_text(self._vocab, t).decode("utf-8", "replace")
                        for t in ids
                        if self.attr(t) & control
                    )
                    if len(self._found) > 4096:
                        self._found.clear()
                    self._found[value] = texts
                found |= texts
        return frozenset(found)

    # -- chat format -----------------------------------------------------------------------

    @functools.cached_property
    def chat_format(self) -> chat_template.ChatFormat:
        """The model's own chat template, or the fallback its vocabulary suggests (see
        :func:`chat_format_of`: ``models show`` and ``render`` decide alike)."""
        return chat_format_of(self.path, self.info)

    def render(
        self,
        messages: Sequence[ChatMessage] | Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        **template_kwargs: Any,
    ) -> RenderedPrompt:
        """The prompt text and tokens for ``messages`` in this model's chat format.

        Content is rendered as is (the template sees it), but control-token text inside it is
        tokenized as plain text. ``template_kwargs`` reach the template (``enable_thinking``…).
        Raises :class:`ChatTemplateError` (exit 3) when the template refuses, fails or renders
        nothing.
        """
        fmt = self.chat_format
        rendered = chat_template.render_conversation(
            fmt.source,
            messages,
            control_texts=self.control_texts_in(messages),
            bos_token=self.bos_text,
            eos_token=self.eos_text,
            add_generation_prompt=add_generation_prompt,
            origin=str(self.path),
            **template_kwargs,
        )
        tokens = self.segment_tokens(rendered.segments)
        if not tokens:
            raise ChatTemplateError(f"{self.path}: the chat template rendered nothing")
        return RenderedPrompt(rendered.text, tokens, notes=rendered.notes, format=fmt.name)

    def segment_tokens(self, segments: Sequence[chat_template.Segment]) -> tuple[int, ...]:
        """Token ids of rendered segments, with BOS first when the model wants one and the
        template did not write it."""
        tokens: list[int] = []
        if self.add_bos and self.bos_id != -1:
            first = segments[0].text if segments else ""
            if not (self.bos_text and first.startswith(self.bos_text)):
                tokens.append(self.bos_id)
        for seg in segments:
            tokens.extend(self.token_ids(seg.text, special=seg.special))
        return tuple(tokens)

    def prefix_tokens(
        self, messages: Sequence[ChatMessage], marker: str, **template_kwargs: Any
    ) -> tuple[int, ...] | None:
        """Tokens of the rendered ``messages`` up to the last occurrence of ``marker`` (the text
        of a probe message); ``None`` when the template dropped it."""
        rendered = chat_template.render_conversation(
            self.chat_format.source,
            messages,
            control_texts=self.control_texts_in(messages),
            bos_token=self.bos_text,
            eos_token=self.eos_text,
            origin=str(self.path),
            **template_kwargs,
        )
        kept: list[chat_template.Segment] = []
        for seg in rendered.segments:
            at = seg.text.rfind(marker) if seg.special else -1
            if at >= 0:
                kept.append(chat_template.Segment(seg.text[:at], True))
                return self.segment_tokens(kept)
            kept.append(seg)
        return None
