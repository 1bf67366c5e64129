"""A busy neighbour: the engine steps down to fewer llama.cpp threads while other programs keep
its cores busy (spinning OpenMP threads waiting for a core they cannot get made decode 10-20x
slower), and keeps a thread count the user chose."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from chatterm.engine.cpu_share import CpuShare, threads_for


@pytest.mark.parametrize(
    ("wanted", "cores", "others", "expected"),
    [
        (2, 2, None, 2),  # unknown load: keep the choice
        (2, 2, 0.0, 2),
        (2, 2, 0.4, 2),  # a UI or a shell: not worth a thread
        (2, 2, 0.7, 1),  # a neighbour that gets most of a core
        (2, 2, 1.0, 1),
        (2, 2, 2.0, 1),  # never fewer than one
        (4, 16, 3.0, 4),  # plenty of free cores: no change
        (8, 8, 3.2, 5),
    ],
)
def test_threads_for_gives_up_one_thread_per_busy_core(wanted, cores, others, expected):
    assert threads_for(wanted, cores, others) == expected


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="reads /proc/stat")
def test_cpu_share_sees_a_spinning_process_and_not_its_own_work():
    original = os.sched_getaffinity(0)
    cpu = min(original)
    os.sched_setaffinity(0, {cpu})
    try:
        share = CpuShare()
        hog = subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
        try:
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                pass  # our own spinning must not count
            others = share.others()
        finally:
            hog.kill()
            hog.wait()
    finally:
        os.sched_setaffinity(0, original)
    assert others is not None
    assert 0.25 < others <= 1.1  # the hog shared the one core with us


CHILD = textwrap.dedent(
    """
    import os, subprocess, sys, time
    cpus = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, set(cpus))
    import chatterm.engine.llama_engine as le
    le.default_threads = lambda: 2  # as on a 2-core machine, whatever this one has
    from chatterm.engine.events import ChatMessage
    from chatterm.sampling import SamplingSettings
    engine = le.LlamaEngine(sys.argv[1], n_ctx=1024, adapt_threads=True)
    hog = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpus[0]}),
    )
    try:
        time.sleep(0.6)
        seen = set()
        settings = SamplingSettings(temperature=0, seed=1, max_tokens=400)
        end = time.monotonic() + 4
        while time.monotonic() < end:
            for _ in engine.generate([ChatMessage("user", "Count to a thousand.")], settings):
                seen.add(engine.threads_now)
                if time.monotonic() > end:
                    break
        print(engine.threads, sorted(seen))
    finally:
        hog.kill()
        engine.close()
    """
)


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs and Linux affinity",
)
def test_the_engine_steps_down_to_one_thread_beside_a_busy_neighbour(starter_path):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(starter_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    threads, seen = done.stdout.split(" ", 1)
    assert threads == "2"
    assert "1" in seen  # it stepped down while the neighbour spun


def test_a_thread_count_the_user_chose_is_kept(starter_path):
    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(starter_path, n_ctx=512, threads=2, adapt_threads=True)
    try:
        assert engine._cpu_share is None and engine.threads_now == 2
    finally:
        engine.close()


def test_chat_engines_adapt_and_the_labs_never_do(monkeypatch):
    """Past 256 tokens of context a reply depends on the thread count, and the lab compares
    settings: its engines keep theirs whatever the machine's load."""
    monkeypatch.delenv("CHATTERM_THREADS", raising=False)  # chatterm picks the threads
    from chatterm.lab.compare import default_loader
    from chatterm.services import EngineOptions, load_engine

    chat = load_engine(EngineOptions())
    lab = default_loader()(None)
    try:
        assert chat._cpu_share is not None
        assert lab._cpu_share is None
    finally:
        chat.close()
        lab.close()
