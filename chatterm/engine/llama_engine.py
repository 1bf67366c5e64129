"""The llama.cpp engine: one token loop that every front end consumes.

We own the loop instead of calling ``create_completion(stream=True)``, which re-detokenizes the
whole reply on every token and scans stop strings over the full text (about 13% slower here).
Each step decodes only the new token's bytes through an incremental UTF-8 decoder and checks
stop strings on a short tail. Probabilities, when asked for, come from the last logits row only
(``logits_all`` would slow prefill by a third).
"""

from __future__ import annotations

import codecs
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatterm import cache_types, context_window
from chatterm.engine import chat_template, compute_thread, reasoning
from chatterm.engine.base import ContextPlan, Drop, RenderedPrompt, TokenPiece
from chatterm.engine.compute_thread import EitherSet
from chatterm.engine.context import MIN_REPLY_TOKENS, plan_context
from chatterm.engine.cpu_share import CHECK_INTERVAL_S, CpuShare, threads_for
from chatterm.engine.events import (
    Candidate,
    ChatMessage,
    Event,
    Finished,
    PromptReady,
    Stats,
)
from chatterm.engine.vocab import Vocabulary, _silence_llama_logs
from chatterm.errors import ModelError, SettingError
from chatterm.gguf_file import GGUFInfo, read_gguf, shard_paths
from chatterm.hardware import default_threads
from chatterm.sampling import SamplingSettings

if TYPE_CHECKING:
    from chatterm.engine.kv_cache import KVStateCache

WARM_PROBE = "chatterm-warm-probe"
PREFILL_CHUNK = 512
REPRODUCIBLE_BATCH = 64
"""The fewest tokens one evaluation may hold for its KV cells and logits to come out exactly
as they would from any other split of the same prompt.

llama.cpp's CPU flash attention runs a tiled kernel that accumulates in F32 for batches of at
least ``GGML_FA_TILE_Q`` = 64 query rows, and a per-row kernel that accumulates in F16 for
smaller ones (``ggml_compute_forward_flash_attn_ext_f16`` in ggml-cpu/ops.cpp, llama.cpp as
vendored by llama-cpp-python 0.3.36). Measured on SmolLM2: the last position's logits after a
cached prefix plus 1-63 re-evaluated tokens differ from a whole-prompt prefill by up to ~0.7;
with 64 or more they are identical, wherever the prompt is split. So a prompt's last batch holds
at least this many tokens, and only KV cells written by such batches are reused: never those of
decoded reply tokens (one token per batch), which the next turn evaluates again as a batch.
"""


def gpu_offload_supported() -> bool:
    """Whether this llama-cpp-python build can offload layers to a GPU (CUDA, Metal, Vulkan…)."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def system_info() -> str:
    """llama.cpp's build and CPU feature line (AVX2, NEON, …), for benchmarks and bug reports."""
    import llama_cpp

    return str(llama_cpp.llama_print_system_info().decode("utf-8", "replace")).strip()


_CONSTRUCT_LOCK = threading.Lock()


class _NoChatFormatter:
    """Stands in for llama-cpp-python's ``Jinja2ChatFormatter`` while a model loads.

    ``Llama.__init__`` compiles every chat template in the GGUF's metadata with its own Jinja
    environment, outside chatterm's budgets: a hostile template (``'a' * 10**9`` folded as a
    constant, ``7**999999999``) would cost seconds and gigabytes, or hang, before chatterm could
    refuse it. chatterm renders templates itself (:mod:`chatterm.engine.chat_template`), so
    the formatter is never needed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def to_chat_handler(self) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("chatterm renders chat templates itself")

        return refuse


def _load_llama(**kwargs: Any) -> Any:
    """``llama_cpp.Llama(**kwargs)`` without llama-cpp-python's own chat-template compilation
    (see :class:`_NoChatFormatter`)."""
    import llama_cpp
    from llama_cpp import llama_chat_format

    with _CONSTRUCT_LOCK:
        original = llama_chat_format.Jinja2ChatFormatter
        llama_chat_format.Jinja2ChatFormatter = _NoChatFormatter  # type: ignore[misc,assignment]
        try:
            return llama_cpp.Llama(**kwargs)
        finally:
            llama_chat_format.Jinja2ChatFormatter = original  # type: ignore[misc]


class ModelLock:
    """The model's lock: reentrant, since ``render`` and ``tokenize`` take it themselves, also
    under a caller that holds it around render + prefill + logits; ``locked()`` says whether any
    thread holds it (``threading.RLock`` has no such method before Python 3.14)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # changed only by the holder

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, timeout)
        if got:
            self._depth += 1
        return got

    def release(self) -> None:
        self._depth -= 1
        self._lock.release()

    def locked(self) -> bool:
        return self._depth > 0

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class LlamaEngine:
    """A GGUF model loaded through llama-cpp-python. Thread-safe: calls are serialised."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        adapt_threads: bool = False,
        gpu_layers: int = 0,
        flash_attn: bool = True,
        cache_type: str = "f16",
        use_mmap: bool = True,
        kv_cache: KVStateCache | None = None,
    ) -> None:
        """``kv_cache``: where to save and restore conversation states across processes
        (``None``: keep the KV cache in memory only). ``cache_type``: the KV cache's number
        format (see :mod:`chatterm.cache_types`; a quantized one needs ``flash_attn``).
        ``adapt_threads``: run fewer threads while other programs keep the cores busy (only
        when ``threads`` is ``None``; chat and ``ask`` turn it on through
        :class:`chatterm.services.EngineOptions`, an engine built directly keeps its count).

        Replies depend only on the prompt, the settings and the thread count: past 256 tokens
        of context llama.cpp's single-token decode splits attention across threads
        (``use_split_kv_path`` in ggml-cpu/ops.cpp), so a reply decoded while the thread count
        had stepped down can differ; leave ``adapt_threads`` off for replies that never depend
        on the machine's load."""
        self.model_path = Path(model_path)
        self.name = name or self.model_path.name
        self.info: GGUFInfo = read_gguf(self.model_path)
        for shard in shard_paths(self.model_path)[1:]:
            read_gguf(shard)
        # Range, memory and trained length of the window, checked before llama.cpp allocates.
        self.cache_type = cache_types.cache_type(cache_type, "cache_type")
        if self.cache_type.quantized and not flash_attn:
            raise SettingError(
                f"a {self.cache_type.name} KV cache needs flash attention; set flash_attn = true "
                "in config.toml or use --cache-type f16"
            )
        note = context_window.plan(self.info, n_ctx, cache_type=self.cache_type)
        self.load_notes: list[str] = [note] if note else []
        self.threads = threads or default_threads()
        # Only a thread count chatterm chose itself adapts to a busy machine (see cpu_share);
        # one the user asked for is kept, and so is the lab's (see adapt_threads).
        self._cpu_share = CpuShare() if threads is None and adapt_threads else None
        self.threads_now = self.threads
        self.gpu_layers = gpu_layers
        self.flash_attn = flash_attn
        self._lock = ModelLock()
        self._compute = compute_thread.shared()
        self._last_drop: Drop | None = None  # reused while it fits: see plan_context
        # How many leading KV cells were written by batches of at least REPRODUCIBLE_BATCH
        # tokens (a prefix of ``llm.input_ids``): the only cells a later prompt may reuse.
        self._reusable = 0

        import llama_cpp

        _silence_llama_logs()
        self.gpu_offload = bool(llama_cpp.llama_supports_gpu_offload())
        if gpu_layers and not self.gpu_offload:
            gpu_layers = 0  # reported by `gpu_note`; a CPU build would ignore it anyway
        try:
            self._llm = _load_llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_batch=512,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                n_gpu_layers=gpu_layers,
                flash_attn=flash_attn,
                type_k=cache_types.ggml_type(self.cache_type),
                type_v=cache_types.ggml_type(self.cache_type),
                use_mmap=use_mmap,
                verbose=False,
            )
        except Exception as exc:  # llama.cpp reports every load failure as a bare exception
            raise ModelError(f"{self.model_path}: llama.cpp could not load it ({exc})") from None
        self._vocab = self._llm._model.vocab
        self._n_vocab = self._llm.n_vocab()
        self.vocab = Vocabulary(self._llm._model, self.model_path, self.info, name=self.name)
        self.reasoning_markers = reasoning.markers_for(self.info.chat_template)
        self.kv_cache = kv_cache
        self.kv_cache_key = ""
        self.kv_cache_identity = ""
        if kv_cache is not None:
            from chatterm.engine.kv_cache import full_identity, identity_key

            identity = self._state_identity()
            self.kv_cache_key = identity_key(identity)
            self.kv_cache_identity = full_identity(identity)

    # -- facts ---------------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        """The real window (llama.cpp pads the requested size)."""
        return int(self._llm.n_ctx())

    n_ctx_known = True

    @property
    def gpu_note(self) -> str:
        if not self.gpu_layers:
            return "CPU"
        if not self.gpu_offload:
            return (
                "CPU (this llama-cpp-python build has no GPU support; reinstall it with "
                'CMAKE_ARGS="-DGGML_CUDA=on" to offload layers)'
            )
        return f"GPU offload: {self.gpu_layers} layers"

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (for benchmarks and the KV-state cache)."""
        return self._llm

    @property
    def lock(self) -> ModelLock:
        return self._lock

    @property
    def vocab_size(self) -> int:
        return int(self._n_vocab)

    # -- tokens --------------------------------------------------------------------------

    def _piece_bytes(self, token_id: int) -> bytes:
        return self.vocab.piece_bytes(token_id)

    def is_special(self, token_id: int) -> bool:
        return self.vocab.is_special(token_id)

    def piece(self, token_id: int) -> TokenPiece:
        """How one token reads: its text (control tokens by name) and what kind it is."""
        return self.vocab.piece(token_id)

    def token_ids(self, text: str, *, special: bool = False, add_bos: bool = False) -> list[int]:
        return self.vocab.token_ids(text, special=special, add_bos=add_bos)

    def tokenize(self, text: str, *, special: bool = False) -> list[TokenPiece]:
        with self._lock:
            return self.vocab.tokenize(text, special=special)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.vocab.detokenize(token_ids)

    # -- prompts -------------------------------------------------------------------------

    @property
    def chat_format(self) -> Any:
        """The model's chat format (:class:`chatterm.engine.chat_template.ChatFormat`)."""
        return self.vocab.chat_format

    def render(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        **template_kwargs: Any,
    ) -> RenderedPrompt:
        """The prompt text and tokens for ``messages`` (see :meth:`Vocabulary.render`);
        ``template_kwargs`` reach the chat template (``enable_thinking``…). Templates with a
        thinking switch get ``enable_thinking=True`` unless told otherwise, as llama-server
        renders them (see :func:`chatterm.engine.reasoning.template_variables`)."""
        kwargs = {**reasoning.template_variables(self.template, None), **template_kwargs}
        with self._lock:
            return self.vocab.render(
                messages, add_generation_prompt=add_generation_prompt, **kwargs
            )

    @property
    def template(self) -> str:
        """The Jinja source this model's conversations are rendered with."""
        return str(self.chat_format.source)

    def opens_inside_reasoning(
        self, messages: Sequence[ChatMessage], think: bool | None = None
    ) -> bool:
        """Whether the generation prompt for ``messages`` leaves a thinking block open
        (DeepSeek-R1's ``<think>\\n``), so the reply starts inside it. Only the scaffold the
        generation prompt adds is looked at, never the user's text."""
        source = self.template
        if not reasoning.template_has_reasoning(source):
            return False
        variables = reasoning.template_variables(source, think)
        full, bare = (
            chat_template.render_text(
                source,
                messages,
                bos_token=self.vocab.bos_text,
                eos_token=self.vocab.eos_text,
                add_generation_prompt=generation,
                origin=str(self.model_path),
                **variables,
            )
            for generation in (True, False)
        )
        tail = full[len(bare) :] if full.startswith(bare) else full[-64:]
        return reasoning.opens_inside(tail, self.reasoning_markers)

    def plan(self, messages: Sequence[ChatMessage], max_tokens: int) -> ContextPlan:
        """What a reply would send (see :func:`chatterm.engine.context.plan_context`), with
        the drop point the last reply used."""
        with self._lock:
            return self._plan(messages, max_tokens)

    def _plan(
        self, messages: Sequence[ChatMessage], max_tokens: int, think: bool | None = None
    ) -> ContextPlan:
        variables = reasoning.template_variables(self.template, think)

        def render(part: Sequence[ChatMessage]) -> RenderedPrompt:
            return self.vocab.render(part, **variables)

        return plan_context(
            messages,
            n_ctx=self.n_ctx,
            max_tokens=max_tokens,
            render=render,
            previous=self._last_drop,
            max_token_bytes=max(self.info.max_token_bytes, 1),
        )

    def pop_notes(self) -> list[str]:
        return []

    # -- generation ----------------------------------------------------------------------

    def _sampler(self, s: SamplingSettings) -> Any:
        from llama_cpp import _internals

        chain = _internals.LlamaSampler()
        if s.repeat_penalty != 1.0 or s.presence_penalty or s.frequency_penalty:
            chain.add_penalties(
                n_vocab=self._n_vocab,
                penalty_last_n=64,
                penalty_repeat=s.repeat_penalty,
                penalty_freq=s.frequency_penalty,
                penalty_present=s.presence_penalty,
            )
        if s.temperature == 0:
            chain.add_greedy()
            return chain
        if s.top_k > 0:
            chain.add_top_k(s.top_k)
        if s.top_p < 1.0:
            chain.add_top_p(s.top_p, 1)
        if s.min_p > 0:
            chain.add_min_p(s.min_p, 1)
        chain.add_temp(s.temperature)
        chain.add_dist(s.seed if s.seed >= 0 else 0xFFFFFFFF)
        return chain

    def _grammar(self, s: SamplingSettings) -> Any:
        """The grammar that constrains this reply (``--grammar``, or built from ``--schema``),
        as the first step of the chain; ``None`` when the reply is free."""
        from chatterm.structured import grammar_for

        gbnf = grammar_for(s.schema, s.grammar)
        return self.grammar_mask(gbnf) if gbnf else None

    def grammar_mask(self, gbnf: str) -> Any:
        """A fresh :class:`~chatterm.engine.grammar.GrammarMask` for a GBNF grammar over this
        model's vocabulary (the lab uses it to show what the grammar removes)."""
        from chatterm.engine.grammar import GrammarMask

        return GrammarMask(self._vocab, self._n_vocab, gbnf)

    def _prepare_cache(self, tokens: Sequence[int]) -> int:
        """Keep the longest prefix of ``tokens`` whose KV cells can be reused (restoring a saved
        state first when one covers more of it); return its length.

        At least ``REPRODUCIBLE_BATCH`` tokens (the whole prompt when it is shorter) are left to
        evaluate, so the reply is the same whether the prefix came from memory, a saved state
        or a fresh prefill (see ``REPRODUCIBLE_BATCH``); sampling needs fresh logits anyway.
        """
        llm = self._llm
        reusable = min(llm.n_tokens, self._reusable)
        prefix = _common_prefix(llm.input_ids[:reusable], tokens)
        if self.kv_cache is not None:
            prefix = self._restore_state(tokens, prefix)
        prefix = min(prefix, max(0, len(tokens) - REPRODUCIBLE_BATCH))
        if prefix < llm.n_tokens and not llm._ctx.kv_cache_seq_rm(-1, prefix, -1):
            prefix = 0
            llm.reset()
        llm.n_tokens = prefix
        self._reusable = prefix
        return prefix

    # -- saved states (resume across processes) ----------------------------------------

    def _state_identity(self) -> dict[str, Any]:
        """Everything a saved KV state depends on; a state saved under another identity is
        never loaded (llama.cpp would accept some mismatches and compute garbage)."""
        import llama_cpp

        from chatterm.store.fingerprint import model_fingerprint

        st = self.model_path.stat()
        params = self._llm.context_params
        return {
            "model": str(self.model_path.resolve()),
            # the file's content, not only its name: a state must belong to these bytes
            "fingerprint": model_fingerprint(self.model_path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "llama_cpp": llama_cpp.__version__,
            "n_ctx": self.n_ctx,
            "type_k": int(params.type_k),
            "type_v": int(params.type_v),
            "flash_attn": self.flash_attn,
            "gpu_layers": self.gpu_layers if self.gpu_offload else 0,
        }

    def _restore_state(self, tokens: Sequence[int], in_memory: int) -> int:
        """Load the saved state sharing the longest prefix with ``tokens`` when it beats the
        ``in_memory`` prefix by enough to pay for reading it; return the usable prefix."""
        cache = self.kv_cache
        assert cache is not None
        if len(tokens) < cache.min_tokens or in_memory >= len(tokens) - cache.min_gain:
            return in_memory  # nothing on disk could beat memory by enough
        match = cache.best_match(self.kv_cache_key, tokens)
        if match is None or match[1] < cache.min_tokens or match[1] < in_memory + cache.min_gain:
            return in_memory
        llm = self._llm
        loaded = cache.load(llm.ctx, match[0], self.n_ctx, self.kv_cache_identity)
        if loaded is None:  # the context may hold part of a broken state: forget it all
            llm._ctx.kv_cache_clear()
            llm.n_tokens = self._reusable = 0
            return 0
        llm.input_ids[: len(loaded)] = loaded
        llm.n_tokens = self._reusable = len(loaded)  # states hold reusable cells only
        return match[1]

    def _save_state(self) -> None:
        """Save the KV state after a reply so a later process can resume this conversation."""
        cache = self.kv_cache
        llm = self._llm
        reusable = min(llm.n_tokens, self._reusable)
        if cache is None or reusable < cache.min_tokens:
            return
        # Only the reusable cells are named in the state: a decoded reply's cells are in the
        # file but are evaluated again on loading (see REPRODUCIBLE_BATCH).
        # An unchanged state (same token ids) is found on disk by name and not written again.
        cache.save(
            llm.ctx,
            self.kv_cache_key,
            llm.input_ids[:reusable].tolist(),
            self.kv_cache_identity,
        )

    def _fit_threads(self) -> None:
        """Run with fewer threads while other programs keep some of our cores busy, and with
        all of them again once they stop (see :mod:`chatterm.engine.cpu_share`)."""
        share = self._cpu_share
        if share is None:
            return
        cores = len(share.cpus) if share.cpus else (os.cpu_count() or self.threads)
        wanted = threads_for(self.threads, cores, share.others())
        if wanted != self.threads_now:
            import llama_cpp

            llama_cpp.llama_set_n_threads(self._llm.ctx, wanted, wanted)
            self.threads_now = wanted

    def teacher_forced_choices(
        self, tokens: Sequence[int], cancel: threading.Event | None = None
    ) -> tuple[list[int], float]:
        """Feed ``tokens`` one at a time from an empty KV cache, as decoding does, and return
        the model's top-1 next-token choice after each (``len(tokens)`` ids) and the seconds
        the evaluation took. For comparing settings that change the numbers (cache types) on
        the same text; the KV cache is left holding ``tokens``."""
        import numpy as np

        def run() -> tuple[list[int], float]:
            llm = self._llm
            llm.reset()
            llm._ctx.kv_cache_clear()
            self._reusable = 0
            choices: list[int] = []
            start = time.perf_counter()
            for token in tokens:
                if cancel is not None and cancel.is_set():
                    break
                llm.eval([int(token)])
                choices.append(int(np.argmax(self.logits())))
            return choices, time.perf_counter() - start

        with self._lock:
            return self._compute.call(run)

    def logits(self) -> Any:
        """The last evaluated position's logits as a NumPy view (valid until the next eval)."""
        import llama_cpp
        import numpy as np

        ptr = llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def top_candidates(self, k: int) -> tuple[Any, float, tuple[Candidate, ...]]:
        """The current logits, their log-normaliser, and the ``k`` likeliest next tokens."""
        import numpy as np

        logits = self.logits()
        peak = float(logits.max())
        log_z = peak + float(np.log(np.exp(logits - peak).sum()))
        k = min(k, self._n_vocab)
        top_ids = np.argpartition(logits, -k)[-k:]
        top_ids = top_ids[np.argsort(-logits[top_ids])]
        cands = tuple(
            Candidate(int(t), self.piece(int(t)).piece, float(np.exp(logits[t] - log_z)))
            for t in top_ids
        )
        return logits, log_z, cands

    def prefill(self, tokens: Sequence[int], cancel: threading.Event | None = None) -> int:
        """Bring the KV cache to ``tokens`` (reusing its prefix); return how many were cached.
        Caller holds ``lock``."""
        cached = self._prepare_cache(tokens)
        self._compute.call(self._eval_chunks, tokens, cached, cancel)
        return cached

    def _eval_chunks(
        self, tokens: Sequence[int], start: int, cancel: threading.Event | EitherSet | None
    ) -> bool:
        """Evaluate ``tokens[start:]`` in chunks (so a cancel takes effect during a long
        prefill) that each hold at least ``REPRODUCIBLE_BATCH`` tokens when the prompt does, and
        mark the cells they write reusable."""
        llm = self._llm
        for begin, end in prefill_chunks(start, len(tokens)):
            if cancel is not None and cancel.is_set():
                return False
            llm.eval(list(tokens[begin:end]))
            if len(tokens) >= REPRODUCIBLE_BATCH:
                self._reusable = end
        return True

    def warm(self, messages: Sequence[ChatMessage]) -> int:
        """Evaluate the scaffold that opens the next user turn (``<|im_end|>`` after the reply,
        ``<|im_start|>user``, …) now, while the user types, so the next prefill covers only
        their words and what follows them; return how many tokens that evaluated.

        The scaffold comes from rendering ``messages`` plus a probe user message and keeping
        the tokens before the probe's text. If the next prompt turns out different (a template
        that inserts the date, dropped turns), ``generate`` reuses whatever prefix matches.
        """
        with self._lock:
            if self._llm is None:  # closed meanwhile (a model switch, quitting)
                return 0
            found = self.vocab.prefix_tokens(
                [*messages, ChatMessage("user", WARM_PROBE)], WARM_PROBE
            )
            if found is None:
                return 0
            tokens = found
            if len(tokens) + MIN_REPLY_TOKENS >= self.n_ctx:
                return 0  # the next turn drops history anyway: nothing here would be reused
            cached = self._prepare_cache(tokens)
            self._compute.call(self._eval_chunks, tokens, cached, None)
            self._save_state()  # the reply is now reusable: let a later process resume here
            return len(tokens) - cached

    def generate(
        self,
        messages: Sequence[ChatMessage],
        sampling: SamplingSettings,
        *,
        top_logprobs: int = 0,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Stream a reply to ``messages``; see :class:`chatterm.engine.base.Engine`."""
        import llama_cpp

        with self._lock:
            plan = self._plan(messages, sampling.max_tokens, sampling.think)
            self._last_drop = plan.drop_point(messages)
            prompt, dropped = plan.prompt, plan.dropped
            tracker = reasoning.ReasoningTracker(
                self.reasoning_markers,
                start_inside=self.opens_inside_reasoning(messages, sampling.think),
                budget=sampling.thinking_budget,
            )
            # The token loop runs on the compute thread (see compute_thread); ``stop`` is set
            # when the caller stops iterating early.
            yield from self._compute.stream(
                lambda stop: self._run(
                    prompt,
                    dropped,
                    sampling,
                    top_logprobs,
                    EitherSet(cancel, stop),
                    llama_cpp,
                    tracker,
                )
            )

    def _run(
        self,
        prompt: RenderedPrompt,
        dropped: int,
        sampling: SamplingSettings,
        top_logprobs: int,
        cancel: EitherSet,
        llama_cpp: Any,
        tracker: reasoning.ReasoningTracker,
    ) -> Iterator[Event]:
        llm = self._llm
        tokens = prompt.tokens
        n_ctx = self.n_ctx
        start = time.perf_counter()
        cached = self._prepare_cache(tokens)
        yield PromptReady(len(tokens), cached, n_ctx, dropped, prompt.text, prompt.notes)
        reason = "stop"
        generated = 0
        first_at = last_at = 0.0
        prefill_s = 0.0
        error: str | None = None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = sampling.stop
        hold = max((len(s) for s in stops), default=0)
        pending = ""
        stopped_on_string = False
        sampler = self._sampler(sampling)
        from chatterm.engine.grammar import is_forced

        grammar = None
        closing: list[int] = []  # the end of a thinking block whose budget is spent
        last_text = ""
        try:
            self._fit_threads()
            grammar = self._grammar(sampling)
            self._eval_chunks(tokens, cached, cancel)
            prefill_s = time.perf_counter() - start
            # The token loop runs ~80 times a second: bind everything it touches to locals
            # and evaluate each token through one reused single-token batch, skipping
            # ``Llama.eval``'s per-call KV trim, batch-filling loop and slicing.
            ctx = llm._ctx
            raw_ctx = llm.ctx
            vocab = self._vocab
            is_eog = llama_cpp.llama_vocab_is_eog
            llama_decode = llama_cpp.llama_decode
            piece_bytes = self._piece_bytes
            decode_text = decoder.decode
            sample = sampler.sample
            chain_ptr = sampler.sampler
            now = time.perf_counter
            max_tokens = sampling.max_tokens
            input_ids = llm.input_ids
            batch = llm._batch.batch
            batch_token, batch_pos = batch.token, batch.pos
            n_past = llm.n_tokens
            fit_threads = self._fit_threads
            checked_at = now()
            while True:
                if cancel.is_set():
                    reason = "cancelled"
                    break
                prob: float | None = None
                top: tuple[Candidate, ...] = ()
                if not closing and tracker.over_budget:
                    closing = self.token_ids(
                        tracker.closing_text(last_text.endswith("\n")), special=True
                    )
                if top_logprobs:
                    logits, log_z, top = self.top_candidates(top_logprobs)
                forced = closing_now = bool(closing)
                if closing_now:  # the engine closes the thinking block itself
                    token = closing.pop(0)
                    llama_cpp.llama_sampler_accept(chain_ptr, token)
                elif grammar is None:
                    token = sample(ctx, -1)
                else:  # the grammar checks the chain's pick (see engine.grammar)
                    row = self.logits()
                    if top_logprobs:  # the lab wants to know whether it left any choice
                        allowed = grammar.allowed(row).nonzero()[0]
                        forced = is_forced(allowed, piece_bytes, lambda t: is_eog(vocab, t))
                    token, _ = grammar.sample(chain_ptr, row)
                    llama_cpp.llama_sampler_accept(chain_ptr, token)
                if top_logprobs:
                    prob = math.exp(float(logits[token]) - log_z)
                last_at = now()
                if generated == 0:
                    first_at = last_at
                if last_at - checked_at >= CHECK_INTERVAL_S:
                    fit_threads()
                    checked_at = last_at
                if is_eog(vocab, token):
                    break
                if grammar is not None and not closing_now:
                    grammar.accept(token)
                generated += 1
                text = decode_text(piece_bytes(token))
                if stops:
                    pending += text
                    cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
                    if cut >= 0:
                        yield from tracker.token(pending[:cut], token, prob, top, forced=forced)
                        pending = ""
                        stopped_on_string = True
                        break
                    keep = _held_back(pending, stops, hold)
                    text, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
                if text:
                    last_text = text
                yield from tracker.token(text, token, prob, top, forced=forced)
                if generated >= max_tokens or n_past + 1 >= n_ctx:
                    reason = "length"
                    break
                if generated == 1:  # the prompt's eval left the batch set up for many tokens
                    batch.n_tokens = 1
                    batch.n_seq_id[0] = 1
                    batch.seq_id[0][0] = 0
                    batch.logits[0] = True
                batch_token[0] = token
                batch_pos[0] = n_past
                rc = llama_decode(raw_ctx, batch)
                if rc != 0:
                    raise RuntimeError(f"llama_decode returned {rc}")
                input_ids[n_past] = token
                n_past += 1
                llm.n_tokens = n_past
        except GeneratorExit:
            raise
        except Exception as exc:  # a decode failure (e.g. out of memory) ends this reply only
            reason, error = "error", f"generation failed: {exc}"
        finally:
            sampler.close()
            if grammar is not None:
                grammar.close()
        # The bytes of a character the reply never finished (cut by max_tokens, a stop or a
        # cancel mid-character) are dropped: a final decode would turn them into U+FFFD.
        held, _ = decoder.getstate()
        tail = pending + ("" if held else decoder.decode(b"", final=True))
        if tail and not stopped_on_string:
            yield from tracker.token(tail, -1)
        yield from tracker.finish()
        end = time.perf_counter()
        evaluated = len(tokens) - cached
        decode_s = last_at - first_at
        stats = Stats(
            prompt_tokens=len(tokens),
            cached_tokens=cached,
            generated_tokens=generated,
            ttft_s=(first_at - start) if first_at else 0.0,
            prompt_tps=evaluated / prefill_s if prefill_s > 0 else 0.0,
            decode_tps=(generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
            total_s=end - start,
            dropped_messages=dropped,
            **tracker.stats_fields(),
        )
        if error is None:
            self._save_state()  # before Finished: a consumer may stop iterating there
        yield Finished(reason, stats, error)  # type: ignore[arg-type]

    def close(self) -> None:
        """Free the model; waits for a reply or warm-up running in another thread to end
        (freeing it under them would crash the process)."""
        with self._lock:
            llm, self._llm = self._llm, None  # type: ignore[assignment]
        if llm is not None:
            llm.close()


def _common_prefix(cached: Any, tokens: Sequence[int]) -> int:
    """Length of the common prefix of a NumPy token array and a token sequence."""
    import numpy as np

    n = min(len(cached), len(tokens))
    if n == 0:
        return 0
    diff = np.flatnonzero(cached[:n] != np.asarray(tokens[:n], dtype=cached.dtype))
    return int(diff[0]) if diff.size else n


def prefill_chunks(start: int, end: int) -> list[tuple[int, int]]:
    """Split positions ``[start, end)`` into ``(begin, end)`` batches of at most
    ``PREFILL_CHUNK`` tokens, none shorter than ``REPRODUCIBLE_BATCH`` unless the whole span
    is (the last batch borrows from the one before it)."""
    chunks = [(b, min(b + PREFILL_CHUNK, end)) for b in range(start, end, PREFILL_CHUNK)]
    if len(chunks) > 1 and chunks[-1][1] - chunks[-1][0] < REPRODUCIBLE_BATCH:
        (b0, _), (_, e1) = chunks[-2], chunks[-1]
        split = e1 - REPRODUCIBLE_BATCH
        chunks[-2:] = [(b0, split), (split, e1)]
    return chunks


def _held_back(pending: str, stops: Sequence[str], hold: int) -> int:
    """How many trailing characters of ``pending`` could start a stop string."""
    for n in range(min(hold - 1, len(pending)), 0, -1):
        suffix = pending[-n:]
        if any(s.startswith(suffix) for s in stops):
            return n
    return 0
