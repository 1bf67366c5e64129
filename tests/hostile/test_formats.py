"""Every untrusted format through one validated reader (issue 16, part 4): config.toml,
``history import`` JSON, and text that is not UTF-8."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatterm.cli import input_text
from chatterm.config import Config, load_config
from chatterm.errors import UsageError
from chatterm.services import sampling_settings
from chatterm.store import ConversationStore
from chatterm.store.transfer import ImportFormatError
from tests.hostile.limits import assert_one_line_error, bounded, run_limited

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- config.toml --------------------------------------------------------------------------

TOML_SCALARS = st.one_of(
    st.integers().map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e400", "0.5", "-1", "0", "4096", "true", "false"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=10).map(json.dumps),
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(st.sampled_from(["a", "base_url", "timeout"]), inner, max_size=2).map(
            lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=6,
)
ENGINE_KEYS = st.sampled_from(
    ["ctx_size", "threads", "gpu_layers", "flash_attn", "kv_cache_mb", "unknown_key"]
)
TOP_KEYS = st.sampled_from(["engine", "endpoints", "sampling", "default_model", "keymap"])
SAMPLING_KEYS = st.sampled_from(["temperature", "top_k", "top_p", "seed", "stop", "nope"])


@PROPERTY
@given(
    engine=st.dictionaries(ENGINE_KEYS, TOML_VALUES, max_size=4),
    top=st.dictionaries(TOP_KEYS, TOML_VALUES, max_size=2),
    sampling=st.dictionaries(SAMPLING_KEYS, TOML_VALUES, max_size=3),
)
def test_any_config_is_read_typed_or_refused_in_one_line(
    tmp_path, monkeypatch, engine, top, sampling
):
    monkeypatch.delenv("CHATTERM_THREADS", raising=False)
    lines = [f"{k} = {v}" for k, v in top.items()]
    if "engine" not in top:
        lines += ["[engine]"] + [f"{k} = {v}" for k, v in engine.items()]
    if "sampling" not in top:
        lines += ["[sampling]"] + [f"{k} = {v}" for k, v in sampling.items()]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    with bounded("config: generated"):
        try:
            config = load_config(path)
        except UsageError as exc:
            assert "\n" not in str(exc) and exc.exit_code == 2
            return
        assert_usable(config)


def assert_usable(config: Config) -> None:
    assert isinstance(config.ctx_size, int) and not isinstance(config.ctx_size, bool)
    assert config.threads is None or (isinstance(config.threads, int) and config.threads > 0)
    assert isinstance(config.gpu_layers, int) and isinstance(config.flash_attn, bool)
    assert isinstance(config.kv_cache_mb, int) and config.kv_cache_mb >= 0
    assert config.default_model is None or isinstance(config.default_model, str)
    sampling_settings(config)  # the [sampling] table is usable as it was accepted


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("engine = 5", "engine"),
        ("endpoints = 5", "endpoints"),
        ("[engine]\nkv_cache_mb = 1e400", "kv_cache_mb"),
        ('[engine]\nflash_attn = "no"', "flash_attn"),
        ("[engine]\nthreads = 0", "threads"),
        ("[engine]\ngpu_layers = 1.5", "gpu_layers"),
        ("default_model = 5", "default_model"),
        ("[sampling]\ntemperature = 99", "temperature"),
        ("sampling = [1, 2]", "sampling"),
    ],
)
def test_config_values_of_the_wrong_type_are_named(tmp_path, monkeypatch, text, key):
    monkeypatch.delenv("CHATTERM_THREADS", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    with bounded(f"config: {text[:24]}"), pytest.raises(UsageError, match=key):
        load_config(path)


def test_a_wrong_typed_config_value_is_one_line_on_the_command_line(home: Path):
    (home / "config").mkdir()
    (home / "config" / "config.toml").write_text('[engine]\nflash_attn = "no"\n')
    result = run_limited("ask", "hi", case="config: flash_attn = 'no' (CLI)")
    assert_one_line_error(result, 2, "flash_attn", "true or false")


# -- history import -------------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["9999-12-31T23:59:59-05:00", "2024-01-01T00:00:00Z", "0001-01-01", "user"]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
MESSAGE_KEYS = st.sampled_from(
    [
        "id",
        "parent_id",
        "role",
        "content",
        "status",
        "created",
        "model",
        "sampling",
        "stats",
        "logprobs",
        "finish_reason",
        "active",
    ]
)


@st.composite
def messages(draw: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "role": draw(st.sampled_from(["user", "assistant", "system"])),
        "content": draw(st.text(max_size=20)),
    }
    for key, value in draw(st.dictionaries(MESSAGE_KEYS, JSON_VALUES, max_size=3)).items():
        item[key] = value
    if draw(st.booleans()):
        item["sampling"] = draw(
            st.dictionaries(st.sampled_from(["temperature", "top_k", "seed", "stop"]), JSON_SCALARS)
        )
    return item


@st.composite
def exports(draw: Any) -> Any:
    data: dict[str, Any] = {"messages": draw(st.lists(messages(), max_size=5))}
    for key, value in draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "title",
                    "created",
                    "updated",
                    "sampling",
                    "current_leaf",
                    "format",
                    "system_prompt",
                ]
            ),
            JSON_VALUES,
            max_size=3,
        )
    ).items():
        data[key] = value
    return draw(st.one_of(st.just(data), JSON_VALUES))


@PROPERTY
@given(data=exports())
def test_any_import_is_refused_in_one_line_or_usable_everywhere_after(chatterm_home, data):
    with bounded("import: generated"), ConversationStore() as store:
        before = len(store.list_conversations(limit=None))
        try:
            conversation = store.import_json(data)
        except ImportFormatError as exc:
            assert "\n" not in str(exc) and exc.exit_code == 2
            assert len(store.list_conversations(limit=None)) == before  # nothing half-imported
            return
        assert_usable_conversation(store, conversation.id)


def assert_usable_conversation(store: ConversationStore, conversation_id: str) -> None:
    """What `history show/export`, `ask -c` and the chat app do with it next."""
    from chatterm.cli.history import _local

    conversation = store.get_conversation(conversation_id)
    _local(conversation.created), _local(conversation.updated)
    json.dumps(store.export_json(conversation.id))
    store.export_markdown(conversation.id)
    path = store.active_path(conversation.id)
    [m.to_chat() for m in path]
    sampling_settings(Config(), saved=conversation.sampling)
    for message in path:
        _local(message.created)
        if message.sampling:
            sampling_settings(Config(), saved=message.sampling)


@pytest.mark.parametrize(
    ("what", "data"),
    [
        ("id {}", {"messages": [{"id": {}, "parent_id": None, "role": "user", "content": "x"}]}),
        ("parent [1]", {"messages": [{"id": 1, "parent_id": [1], "role": "user", "content": "x"}]}),
        (
            "year 9999",
            {
                "messages": [
                    {"role": "user", "content": "x", "created": "9999-12-31T23:59:59-05:00"}
                ]
            },
        ),
        (
            "temperature 99",
            {"sampling": {"temperature": 99}, "messages": [{"role": "user", "content": "x"}]},
        ),
        (
            "stats 'abc'",
            {
                "messages": [
                    {"role": "assistant", "content": "x", "stats": {"dropped_messages": "abc"}}
                ]
            },
        ),
    ],
)
def test_history_import_refuses_in_one_line_and_keeps_nothing(home: Path, tmp_path, what, data):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(data))
    result = run_limited("history", "import", str(path), case=f"import: {what}")
    assert_one_line_error(result, 2, str(path))
    listed = run_limited("history", "--json", case="import: list after refusal")
    assert json.loads(listed.stdout or "[]") == []


def test_history_import_of_deeply_nested_json_is_one_line(home: Path, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = run_limited("history", "import", str(path), case="import: 10^5 nested lists")
    assert_one_line_error(result, 2, "nested too deeply")


def test_saved_settings_that_became_invalid_do_not_break_continuing(chatterm_home):
    """A row written before imports were checked (or edited by hand) holds temperature 99:
    `ask -c` keeps the usable settings and drops that one."""
    with ConversationStore() as store:
        conversation = store.create_conversation(sampling={"temperature": 0.2, "top_k": 5})
        db = store.path
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE conversations SET sampling = ? WHERE id = ?",
            (json.dumps({"temperature": 99, "top_k": 5}), conversation.id),
        )
    with ConversationStore() as store:
        saved = store.get_conversation(conversation.id).sampling
    with bounded("import: stale invalid sampling"):
        settings = sampling_settings(Config(), saved=saved)
    assert settings.top_k == 5 and settings.temperature != 99


# -- text that is not UTF-8 ---------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_become_text_that_keeps_every_valid_character(raw):
    with bounded("utf-8: decode bytes"):
        text = input_text.decode(raw)
        argument = input_text.clean(os.fsdecode(raw))
    text.encode("utf-8")  # never a lone surrogate that would fail later (SQLite, tokenizer)
    assert argument == text
    try:
        assert text == raw.decode("utf-8")
    except UnicodeDecodeError:
        assert "\N{REPLACEMENT CHARACTER}" in text


def saved_questions() -> list[str]:
    with ConversationStore() as store:
        found = store.list_conversations(limit=None)
        return [m.content for c in found for m in store.active_path(c.id) if m.role == "user"]


def test_invalid_utf8_on_stdin_is_replaced_said_once_and_kept(home: Path):
    result = run_limited(
        "ask",
        "-n",
        "3",
        "--temperature",
        "0",
        input=b"caf\xe9 au lait \xff\xfe?",
        case="utf-8: stdin",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("not valid UTF-8") == 1
    assert saved_questions() == [
        "caf\N{REPLACEMENT CHARACTER} au lait \N{REPLACEMENT CHARACTER}\N{REPLACEMENT CHARACTER}?"
    ]


def test_invalid_utf8_in_an_argument_under_an_ascii_locale_is_kept(home: Path):
    ascii_locale = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    result = run_limited(
        "ask",
        "-n",
        "3",
        "--temperature",
        "0",
        os.fsdecode(b"na\xefve question: caf\xc3\xa9?"),
        env=ascii_locale,
        case="utf-8: argument, C locale",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("not valid UTF-8") == 1
    assert saved_questions() == [
        "na\N{REPLACEMENT CHARACTER}ve question: caf\N{LATIN SMALL LETTER E WITH ACUTE}?"
    ]


def test_invalid_utf8_in_a_title_argument_is_replaced_and_saved(home: Path):
    with ConversationStore() as store:
        conversation = store.import_json({"messages": [{"role": "user", "content": "hi"}]})
    result = run_limited(
        "history",
        "rename",
        conversation.id,
        os.fsdecode(b"caf\xe9 notes"),
        case="utf-8: history rename",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("not valid UTF-8") == 1
    with ConversationStore() as store:
        assert store.get_conversation(conversation.id).title == "caf\N{REPLACEMENT CHARACTER} notes"


def test_text_the_store_cannot_encode_is_one_store_error(chatterm_home):
    """Whatever edge a lone surrogate slips past, the store says so in one line."""
    from chatterm.errors import StoreError

    with ConversationStore() as store, bounded("store: lone surrogate"):
        conversation = store.create_conversation()
        with pytest.raises(StoreError, match="not valid Unicode"):
            store.add_user_message(conversation.id, "bad \udcff byte")


@pytest.mark.parametrize(
    "args",
    [
        ("tokenize",),
        ("lab", "kv-cache", "-n", "3", "--types", "f16"),
        ("lab", "lens"),
        ("lab", "compare", "--variant", "temperature=0", "-n", "2", "--no-save"),
    ],
    ids=["tokenize", "lab kv-cache", "lab lens", "lab compare"],
)
def test_invalid_utf8_in_any_commands_text_argument_is_replaced(home: Path, args):
    """Every command that takes text takes it through the same policy (found by a new user:
    tokenize and the lab traced back on an argument ask accepted)."""
    result = run_limited(*args, os.fsdecode(b"caf\xe9 x y"), case=f"utf-8: {args[0]} argument")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("not valid UTF-8") == 1


def test_a_file_name_that_is_not_utf8_attaches_with_its_name_replaced(home: Path, tmp_path: Path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / os.fsdecode(b"caf\xe9.md")).write_text("The shop opens at nine.\n")
    result = run_limited(
        "ask", "-n", "3", "--temperature", "0", "--json", "-f", str(folder), "When?",
        case="utf-8: attached file name",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (attached,) = json.loads(result.stdout)["attachments"]
    assert attached["source"].endswith("caf\N{REPLACEMENT CHARACTER}.md")
    assert saved_questions() == ["When?"]
