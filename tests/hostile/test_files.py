"""Files and paths: chatterm never follows an attacker out of its directories, never opens a
non-regular file, never blocks, and reports every unusable path in one line (issue 16,
part 3)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from chatterm.engine.events import ChatMessage, Finished, PromptReady
from chatterm.engine.kv_cache import STATE_SUFFIX, KVStateCache
from chatterm.sampling import SamplingSettings
from tests.hostile.limits import assert_one_line_error, bounded, run_limited

GREEDY = SamplingSettings(temperature=0, seed=1, max_tokens=4)
N_CTX = 512
HISTORY = [
    ChatMessage("system", "You are a terse assistant who answers in one short sentence."),
    ChatMessage("user", "Tell me three short facts about lighthouses and their keepers, please."),
    ChatMessage("assistant", "They guide ships. Keepers lived on site. Many are automated now."),
    ChatMessage("user", "Now two more facts about lighthouses, and keep them short too."),
]


def engine(model: Path, cache: KVStateCache):
    from chatterm.engine.llama_engine import LlamaEngine

    return LlamaEngine(model, n_ctx=N_CTX, kv_cache=cache, threads=1)


def answer(eng) -> tuple[PromptReady, str]:
    events = list(eng.generate(HISTORY, GREEDY))
    assert isinstance(events[0], PromptReady) and isinstance(events[-1], Finished)
    return events[0], "".join(getattr(e, "text", "") for e in events)


def cache_at(directory: Path) -> KVStateCache:
    return KVStateCache(directory, 1 << 30, min_tokens=32, min_gain=8)


def outside_files(outside: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in outside.iterdir()}


def plant_victims(outside: Path) -> None:
    """Files a careless sweep would delete: an old temporary name and an old state name."""
    outside.mkdir(exist_ok=True)
    for name in (".old.tmp.kv", "victim" + STATE_SUFFIX, "victim.json", "notes.txt"):
        (outside / name).write_text("keep me")
        past = time.time() - 10 * 86400
        os.utime(outside / name, (past, past))


def test_a_symlinked_identity_directory_is_neither_written_nor_swept(starter_path, tmp_path):
    cache = cache_at(tmp_path / "kv")
    eng = engine(starter_path, cache)
    try:
        outside = tmp_path / "outside"
        plant_victims(outside)
        cache.directory.mkdir(parents=True)
        (cache.directory / eng.kv_cache_key).symlink_to(outside, target_is_directory=True)
        with bounded("kv: symlinked identity dir"):
            answer(eng)
            cache.evict()
    finally:
        eng.close()
    assert outside_files(outside) == {n: b"keep me" for n in outside_files(outside)}
    assert sorted(outside_files(outside)) == sorted(
        [".old.tmp.kv", "victim.kv", "victim.json", "notes.txt"]
    )


def test_a_symlink_inside_the_cache_never_leads_the_sweep_out(tmp_path):
    cache = KVStateCache(tmp_path / "kv", 0)  # a cap of 0: every state is evicted
    outside = tmp_path / "outside"
    plant_victims(outside)
    cache.directory.mkdir(parents=True)
    (cache.directory / "planted").symlink_to(outside, target_is_directory=True)
    (cache.directory / "real").mkdir()
    (cache.directory / "real" / "link.kv").symlink_to(outside / "victim.kv")
    with bounded("kv: symlink in the cache"):
        cache.evict()
        cache.entries("planted")
        cache.entries("real")
    assert sorted(outside_files(outside)) == [
        ".old.tmp.kv",
        "notes.txt",
        "victim.json",
        "victim.kv",
    ]


def test_a_fifo_planted_as_a_state_or_index_never_blocks(starter_path, tmp_path):
    cache = cache_at(tmp_path / "kv")
    eng = engine(starter_path, cache)
    try:
        _, cold = answer(eng)  # saves a state
        states = sorted(cache.directory.rglob("*" + STATE_SUFFIX))
        assert states, "the reply's state was saved"
        for state in states:
            state.unlink()
            os.mkfifo(state)
        other = engine(starter_path, cache)
        try:
            with bounded("kv: FIFO as a state", timeout=30):
                ready, warm = answer(other)
        finally:
            other.close()
        index = sorted(cache.directory.rglob("*.json"))
        for meta in index:
            meta.unlink()
            os.mkfifo(meta)
        with bounded("kv: FIFO as an index entry", timeout=30):
            assert cache.entries(eng.kv_cache_key) == []
    finally:
        eng.close()
    assert ready.cached_tokens == 0 and warm == cold


def test_another_models_state_with_the_same_tokens_is_refused(starter_path, tmp_path):
    """A copy of the model with one metadata byte changed is another model: its saved state
    (same token ids, copied into this model's cache directory) must not be loaded."""
    data = bytearray(starter_path.read_bytes())
    at = data.index(b"Smollm2", 0, 1 << 16)
    data[at] = ord("X")
    twin = tmp_path / "twin.gguf"
    twin.write_bytes(bytes(data))
    cache = cache_at(tmp_path / "kv")
    first = engine(starter_path, cache)
    try:
        answer(first)
    finally:
        first.close()
    second = engine(twin, cache)
    try:
        assert second.kv_cache_key != first.kv_cache_key
        mine = cache.directory / second.kv_cache_key
        mine.mkdir(parents=True, exist_ok=True)
        for path in (cache.directory / first.kv_cache_key).iterdir():
            (mine / path.name).write_bytes(path.read_bytes())
        with bounded("kv: another model's state"):
            ready, _ = answer(second)
    finally:
        second.close()
    assert ready.cached_tokens == 0


def test_chatterm_home_that_is_a_file_is_one_usage_error(tmp_path):
    home = tmp_path / "home-file"
    home.write_text("not a directory")
    result = run_limited("paths", env={"CHATTERM_HOME": str(home)}, case="home: a file")
    assert_one_line_error(result, 2, "CHATTERM_HOME", "not a directory")


def test_chatterm_home_in_a_symlink_loop_is_one_usage_error(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    result = run_limited(
        "history", env={"CHATTERM_HOME": str(tmp_path / "a")}, case="home: symlink loop"
    )
    assert_one_line_error(result, 2, "CHATTERM_HOME")


@pytest.mark.parametrize("kind", ["directory", "fifo", "not utf-8", "deep"])
def test_an_unusable_config_file_is_one_usage_error(home: Path, kind):
    config = home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    if kind == "directory":
        config.mkdir()
    elif kind == "fifo":
        os.mkfifo(config)
    elif kind == "not utf-8":
        config.write_bytes(b"default_model = '\xff\xfe'\n")
    else:
        config.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = run_limited("ask", "hi", timeout=30, case=f"config: {kind}")
    assert_one_line_error(result, 2, "config")


@pytest.mark.parametrize(
    "text",
    ["[]", '{"models": 5}', '{"models": {"x": 5}}', "{not json", '{"default": 5}', "[" * 50_000],
)
def test_a_malformed_model_index_is_one_line(home: Path, text):
    index = home / "data" / "models.json"
    index.parent.mkdir(parents=True)
    index.write_text(text)
    result = run_limited("models", case=f"models.json: {text[:16]}")
    assert_one_line_error(result, 3, "models.json")


READ_ONLY = {"max_file_bytes": 0}
"""Every write fails (EFBIG): a read-only or full home, in a way that holds even for root."""


@pytest.mark.parametrize(
    "args",
    [("personas", "new", "pirate"), ("templates", "edit", "eli5"), ("models", "add", "{model}")],
    ids=["personas new", "templates edit", "models add"],
)
def test_an_unwritable_home_is_one_line(home: Path, starter_path, args):
    argv = [a.format(model=starter_path) for a in args]
    result = run_limited(
        *argv, env={"EDITOR": "true"}, case=f"unwritable home: {args[0]} {args[1]}", **READ_ONLY
    )
    assert_one_line_error(result, 1, "cannot write")


def test_lab_compare_prints_its_results_before_a_failing_save(home: Path):
    result = run_limited(
        "lab",
        "compare",
        "Say hi.",
        "--variant",
        "temperature=0",
        "--variant",
        "top_k=1",
        "--max-tokens",
        "3",
        "--seed",
        "1",
        case="unwritable home: lab compare",
        **READ_ONLY,
    )
    assert_one_line_error(result, 1, "cannot write the experiment")
    assert "temperature=0" in result.stdout and "top_k=1" in result.stdout
