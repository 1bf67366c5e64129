"""Experiments: saved as JSON under the data directory, listed newest first, found by id
prefix, and re-run with the same inputs."""

from __future__ import annotations

import json

import pytest

from chatterm.errors import UsageError
from chatterm.lab import experiments as store
from chatterm.lab.compare import EnginePool, Variant, plan, stream


def make(prompt="Name a fruit.", seed=3, max_tokens=6):
    variants = [Variant.parse("temperature=0"), Variant.parse("temperature=1.0")]
    runs = plan(prompt, variants, seed=seed, overrides={"max_tokens": max_tokens})
    return store.new_experiment(prompt, variants, runs, seed=seed)


def test_save_writes_one_json_file_with_inputs_outputs_and_stats(chatterm_home):
    exp = make()
    exp.runs[0].text = "Apple."
    exp.runs[0].finish_reason = "stop"
    exp.runs[0].stats = {"generated_tokens": 2, "decode_tps": 50.0}
    path = store.save(exp)
    assert path == chatterm_home / "data" / "experiments" / f"{exp.id}.json"
    data = json.loads(path.read_text())
    assert data["prompt"] == "Name a fruit." and data["seed"] == 3 and data["created"]
    assert [v["spec"] for v in data["variants"]] == ["temperature=0", "temperature=1.0"]
    assert data["runs"][0]["text"] == "Apple."
    assert data["runs"][0]["messages"] == [{"role": "user", "content": "Name a fruit."}]
    assert data["runs"][1]["settings"]["temperature"] == 1.0
    assert data["stats"][0]["mean_tokens"] == 2
    again = store.load(exp.id)
    assert again.to_dict() == exp.to_dict()


def test_list_is_newest_first_and_load_takes_a_unique_prefix():
    older, newer = make("one"), make("two")
    older.created, newer.created = "2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"
    older.id, newer.id = "abc111111111", "abc222222222"
    store.save(older)
    store.save(newer)
    assert [e.id for e in store.list_experiments()] == [newer.id, older.id]
    assert store.load("abc1").prompt == "one"
    with pytest.raises(UsageError, match="several"):
        store.load("abc")
    with pytest.raises(UsageError, match="no experiment"):
        store.load("fff")
    with pytest.raises(UsageError, match="not an experiment id"):
        store.load("../etc")


def test_unreadable_files_are_skipped_reported_and_kept(chatterm_home):
    store.save(make())
    broken = chatterm_home / "data" / "experiments" / "deadbeef0000.json"
    broken.write_text("{not json")
    problems: list[str] = []
    assert len(store.list_experiments(problems)) == 1
    assert len(problems) == 1 and "deadbeef0000.json" in problems[0]
    assert broken.exists()


def test_rerun_replays_the_same_runs_and_gets_the_same_replies(real_engine):
    pool = EnginePool(lambda model: real_engine, close_on_switch=False)
    exp = make()
    for _ in stream(exp.runs, pool):
        pass
    store.save(exp)
    again = store.rerun(store.load(exp.short_id))
    assert again.id != exp.id and again.rerun_of == exp.id
    assert not any(r.done for r in again.runs)
    for _ in stream(again.runs, pool):
        pass
    assert store.same_outputs(exp, again) == [True, True]
    assert [r.settings for r in again.runs] == [r.settings for r in exp.runs]
