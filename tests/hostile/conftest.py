"""The hostile-input suite: fixtures, and a closing summary of every case's time and memory.

Run it alone with ``python -m pytest tests/hostile``; set ``HOSTILE_REPORT=path.json`` to also
write every case's figures to a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.limits import RECORDS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RECORDS:
        return
    slowest = max(RECORDS, key=lambda r: r.seconds)
    biggest = max(RECORDS, key=lambda r: r.peak_bytes)
    terminalreporter.write_sep("-", "hostile cases")
    terminalreporter.write_line(
        f"{len(RECORDS)} bounded cases; worst time {slowest.seconds:.2f} s ({slowest.case}); "
        f"peak memory {biggest.peak_bytes / 2**20:.0f} MiB ({biggest.case})"
    )
    target = os.environ.get("HOSTILE_REPORT")
    if target:
        Path(target).write_text(
            json.dumps([r.__dict__ for r in RECORDS], indent=1), encoding="utf-8"
        )


@pytest.fixture
def home(chatterm_home: Path) -> Path:
    """The test's own CHATTERM_HOME, created."""
    chatterm_home.mkdir(parents=True, exist_ok=True)
    return chatterm_home
