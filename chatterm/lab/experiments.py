"""Saved comparisons: one JSON file per experiment under ``data_dir()/experiments``.

A file holds the inputs (prompt, variants, seed, flags), every run's exact messages and resolved
settings, and the outputs with their stats, so ``chatterm lab experiments rerun`` replays it
without depending on today's config or persona files. Ids are 12 hex digits; any unique prefix
names one.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chatterm import paths
from chatterm.errors import ChattermError, UsageError
from chatterm.lab.compare import Run, Variant, VariantSummary, summarise

FORMAT_VERSION = 1
SHORT = 8
_ID = re.compile(r"^[0-9a-f]{1,32}$")


@dataclass
class Experiment:
    id: str
    created: str
    prompt: str
    variants: list[Variant]
    runs: list[Run]
    seed: int
    n_runs: int = 1
    system: str | None = None
    model: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    rerun_of: str | None = None

    @property
    def short_id(self) -> str:
        return self.id[:SHORT]

    def summaries(self) -> list[VariantSummary]:
        return summarise(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "id": self.id,
            "created": self.created,
            "prompt": self.prompt,
            "system": self.system,
            "model": self.model,
            "seed": self.seed,
            "runs_per_variant": self.n_runs,
            "overrides": self.overrides,
            "rerun_of": self.rerun_of,
            "variants": [v.to_dict() for v in self.variants],
            "runs": [r.to_dict() for r in self.runs],
            "stats": [s.to_dict() for s in self.summaries()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        return cls(
            id=str(data["id"]),
            created=str(data["created"]),
            prompt=str(data["prompt"]),
            variants=[Variant.from_dict(v) for v in data["variants"]],
            runs=[Run.from_dict(r) for r in data["runs"]],
            seed=int(data["seed"]),
            n_runs=int(data.get("runs_per_variant", 1)),
            system=data.get("system"),
            model=data.get("model"),
            overrides=dict(data.get("overrides") or {}),
            rerun_of=data.get("rerun_of"),
        )


def new_experiment(
    prompt: str,
    variants: Sequence[Variant],
    runs: Sequence[Run],
    *,
    seed: int,
    n_runs: int = 1,
    system: str | None = None,
    model: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    rerun_of: str | None = None,
) -> Experiment:
    return Experiment(
        uuid.uuid4().hex[:12],
        _now(),
        prompt,
        list(variants),
        list(runs),
        seed,
        n_runs,
        system,
        model,
        {k: v for k, v in (overrides or {}).items() if v is not None},
        rerun_of,
    )


def rerun(experiment: Experiment) -> Experiment:
    """A new experiment with the same inputs and runs, outputs empty, pointing back at the
    original."""
    return new_experiment(
        experiment.prompt,
        experiment.variants,
        [r.fresh() for r in experiment.runs],
        seed=experiment.seed,
        n_runs=experiment.n_runs,
        system=experiment.system,
        model=experiment.model,
        overrides=experiment.overrides,
        rerun_of=experiment.id,
    )


def same_outputs(a: Experiment, b: Experiment) -> list[bool]:
    """For each run of ``b``, whether ``a`` gave the same text for the same variant and run."""
    before = {(r.variant, r.run): r.text for r in a.runs}
    return [before.get((r.variant, r.run)) == r.text for r in b.runs]


MAX_EXPERIMENT_BYTES = 256 << 20


def experiments_dir() -> Path:
    return paths.data_dir() / "experiments"


def save(experiment: Experiment) -> Path:
    """Write atomically (a crash mid-write leaves the previous file, never half of one)."""
    from chatterm.safe_files import write_atomic

    path = experiments_dir() / f"{experiment.id}.json"
    text = json.dumps(experiment.to_dict(), ensure_ascii=False, indent=2)
    write_atomic(path, text, what="experiment")
    return path


def list_experiments(problems: list[str] | None = None) -> list[Experiment]:
    """Every saved experiment, newest first. Unreadable files are skipped (never deleted) and,
    when ``problems`` is given, described there."""
    directory = experiments_dir()
    if not directory.is_dir():
        return []
    found = []
    for path in directory.glob("*.json"):
        if path.name.startswith("."):
            continue
        try:
            found.append(_read(path))
        except UsageError as exc:
            if problems is not None:
                problems.append(str(exc))
    return sorted(found, key=lambda e: e.created, reverse=True)


def load(ref: str) -> Experiment:
    """The experiment whose id is ``ref`` or starts with it; raises ``UsageError`` (exit 2)
    when none or several match."""
    ref = ref.strip().lower()
    if not _ID.match(ref):
        raise UsageError(
            f"{ref!r} is not an experiment id (hex digits, see `chatterm lab experiments list`)"
        )
    directory = experiments_dir()
    matches = sorted(directory.glob(f"{ref}*.json")) if directory.is_dir() else []
    if not matches:
        raise UsageError(f"no experiment {ref!r}; see `chatterm lab experiments list`")
    if len(matches) > 1:
        ids = ", ".join(p.stem[:SHORT] for p in matches[:5])
        raise UsageError(f"{ref!r} matches several experiments ({ids}); give more digits")
    return _read(matches[0])


def _read(path: Path) -> Experiment:
    from chatterm.safe_files import read_bytes

    try:
        return Experiment.from_dict(json.loads(read_bytes(path, MAX_EXPERIMENT_BYTES)))
    except (OSError, ValueError, KeyError, TypeError, RecursionError, ChattermError) as exc:
        raise UsageError(f"{path}: not a readable experiment ({exc})") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
