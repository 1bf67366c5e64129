"""Pull GGUF models from the Hugging Face Hub into chatterm's models directory, and remove them.

A pull resolves ``REPO[:QUANT]`` against the repo's file list, downloads every file of the chosen
quant (all shards of a split GGUF) with ``hf_hub_download(local_dir=...)`` into
``models_dir()/OWNER/NAME/``, checks each file's sha256 against the Hub's LFS oid (the client
only checks sizes), checks the GGUF header, and only then registers the model in the catalog. A
failure or Ctrl-C deletes the files no registered model uses, so nothing half-done is left.

``huggingface_hub`` is imported only inside functions (``file_download`` alone costs ~0.3 s), and
every Hub error becomes a one-line :class:`HubError` or :class:`ModelError` saying what to do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chatterm import paths
from chatterm.catalog import Catalog, ModelEntry
from chatterm.errors import HubError, ModelError, UsageError
from chatterm.model_summary import remember_summary

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_QUANT = "Q4_K_M"
# When the repo has no Q4_K_M: the usual quality/size sweet spots first, then bigger, then smaller.
FALLBACK_ORDER = (
    "Q4_K_M",
    "Q4_K_S",
    "Q5_K_M",
    "Q5_K_S",
    "IQ4_XS",
    "IQ4_NL",
    "Q4_0",
    "Q4_1",
    "Q6_K",
    "Q5_0",
    "Q5_1",
    "Q8_0",
    "Q3_K_L",
    "Q3_K_M",
    "IQ3_M",
    "Q3_K_S",
    "IQ3_XS",
    "Q2_K",
    "BF16",
    "F16",
    "F32",
)
PREFLIGHT_TIMEOUT = 5.0
VERIFY_NOTE_BYTES = 500_000_000  # hashing runs at ~1 GB/s: say so only when it takes a while
STALE_INCOMPLETE_SECONDS = 600  # a live download writes every few seconds; older ones are orphans

_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])((?:UD-)?(?:I?Q\d(?:_[A-Za-z0-9]+)*|BF16|F16|F32|FP16|FP32|MXFP4(?:_MOE)?"
    r"|TQ\d_\d))(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SPLIT_RE = re.compile(r"^(?P<base>.*)-(?P<index>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Files that are GGUF but not a chat model on their own.
_NOT_A_MODEL = ("mmproj", "imatrix")

Notify = Callable[[str], None]


def _stderr_note(message: str) -> None:
    print(f"chatterm: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# Names and file selection (no network)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``REPO[:QUANT]`` (also ``hf.co/REPO:QUANT`` or a Hub URL) → ``(repo, quant or None)``."""
    text = spec.strip()
    text = re.sub(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/", "", text)
    repo, _, quant = text.partition(":")
    repo = repo.rstrip("/")
    if not _REPO_RE.match(repo) or ".." in repo:
        raise UsageError(
            f"{spec!r} is not a Hub model: use OWNER/NAME[:QUANT], "
            "e.g. bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M"
        )
    return repo, (quant.strip() or None)


def quant_of(path_in_repo: str) -> str | None:
    """The quant tag in a GGUF file's name (``…-Q4_K_M.gguf``), else in its folder names."""
    parts = path_in_repo.split("/")
    name = parts[-1]
    split = _SPLIT_RE.match(name)
    stem = split.group("base") if split else re.sub(r"\.gguf$", "", name, flags=re.IGNORECASE)
    for text in (stem, *reversed(parts[:-1])):
        found = _QUANT_RE.findall(text)
        if found:
            return str(found[-1]).upper()
    return None


@dataclass(frozen=True)
class RemoteFile:
    """One file in the repo, as the tree listing describes it."""

    path: str
    size: int
    blob_id: str
    sha256: str | None = None  # LFS files only


@dataclass
class Candidate:
    """A downloadable model: one GGUF file, or all shards of a split one (in order)."""

    label: str
    quant: str | None
    files: list[RemoteFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def first(self) -> RemoteFile:
        return self.files[0]


def find_candidates(files: Iterable[RemoteFile]) -> list[Candidate]:
    """Group the repo's GGUF files into models; incomplete split sets are left out."""
    singles: list[Candidate] = []
    splits: dict[tuple[str, str, int], dict[int, RemoteFile]] = {}
    for f in files:
        name = f.path.rsplit("/", 1)[-1]
        if not name.lower().endswith(".gguf") or any(w in name.lower() for w in _NOT_A_MODEL):
            continue
        m = _SPLIT_RE.match(name)
        if m:
            key = (f.path.rsplit("/", 1)[0] if "/" in f.path else "", m["base"], int(m["total"]))
            splits.setdefault(key, {})[int(m["index"])] = f
        else:
            singles.append(Candidate(_label(f.path), quant_of(f.path), [f]))
    for (_folder, _base, total), shards in splits.items():
        if sorted(shards) == list(range(1, total + 1)):
            ordered = [shards[i] for i in range(1, total + 1)]
            singles.append(Candidate(_label(ordered[0].path), quant_of(ordered[0].path), ordered))
    return sorted(singles, key=lambda c: (c.size, c.first.path))


def _label(path_in_repo: str) -> str:
    quant = quant_of(path_in_repo)
    if quant:
        return quant
    name = path_in_repo.rsplit("/", 1)[-1]
    split = _SPLIT_RE.match(name)
    return split.group("base") if split else re.sub(r"\.gguf$", "", name, flags=re.IGNORECASE)


def _listing(candidates: list[Candidate]) -> str:
    labels = list(dict.fromkeys(c.label for c in candidates))
    shown = ", ".join(labels[:20])
    return shown + (f" and {len(labels) - 20} more" if len(labels) > 20 else "")


def choose(
    candidates: list[Candidate], *, repo: str, quant: str | None = None, file: str | None = None
) -> tuple[Candidate, str | None]:
    """Pick the model to download; returns it and a note when a fallback was chosen.

    ``file`` names an exact file (path in the repo or bare name; any shard selects its whole
    set). ``quant`` matches the quant tags case-insensitively; without either, Q4_K_M, else the
    first of :data:`FALLBACK_ORDER`, else the smallest file.
    """
    if not candidates:
        raise ModelError(
            f"{repo} has no GGUF model files; chatterm runs GGUF models — look for a repo with "
            "GGUF in its name (e.g. bartowski/SmolLM2-135M-Instruct-GGUF)"
        )
    if file:
        for exact in (True, False):
            for c in candidates:
                for f in c.files:
                    names = (f.path, f.path.rsplit("/", 1)[-1])
                    if (file in names) if exact else (file.casefold() in map(str.casefold, names)):
                        return c, None
        every = [f.path for c in candidates for f in c.files[:1]]
        shown = ", ".join(every[:10]) + (" …" if len(every) > 10 else "")
        raise ModelError(f"no GGUF file {file!r} in {repo}; its GGUF files: {shown}")
    if quant:
        wanted = quant.casefold()
        matches = [c for c in candidates if c.label.casefold() == wanted]
        if not matches:
            token = re.compile(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9])", re.I)
            matches = [c for c in candidates if token.search(c.first.path)]
        if len(matches) == 1:
            return matches[0], None
        if matches:
            raise ModelError(
                f"{quant} matches several files in {repo} "
                f"({', '.join(c.first.path for c in matches)}); pick one with --file NAME"
            )
        raise ModelError(
            f"no {quant} quant in {repo}; available: {_listing(candidates)} "
            f"(pull one with `chatterm pull {repo}:QUANT`)"
        )
    by_label: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_label.setdefault(c.label.upper(), []).append(c)
    order = [q for q in FALLBACK_ORDER if q in by_label] or [candidates[0].label.upper()]
    chosen = by_label[order[0]]
    if len(chosen) > 1:
        raise ModelError(
            f"{order[0]} matches several files in {repo} "
            f"({', '.join(c.first.path for c in chosen)}); pick one with --file NAME"
        )
    note = None
    if order[0] != DEFAULT_QUANT:
        note = (
            f"{repo} has no {DEFAULT_QUANT}; using {chosen[0].label} "
            f"(available: {_listing(candidates)})"
        )
    return chosen[0], note


# ----------------------------------------------------------------------------------------------
# Network


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` read now (huggingface_hub reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def check_reachable(endpoint: str, timeout: float = PREFLIGHT_TIMEOUT) -> None:
    """Fail in one line when the Hub (or the proxy in front of it) cannot be reached.

    huggingface_hub retries with backoff for ~24 s before giving up; a TCP connect answers in
    milliseconds (refused, no DNS) or ``timeout`` seconds at worst.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise HubError("HF_HUB_OFFLINE is set, so nothing can be downloaded; unset it to pull")
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise HubError(f"HF_ENDPOINT {endpoint!r} is not a valid URL") from None
    via = ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port, via = proxy_parts.hostname or "", proxy_parts.port or 8080, f" via {proxy}"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, socket.gaierror):
            reason = f"cannot resolve {host}"
        elif isinstance(exc, TimeoutError):
            reason = f"no answer in {timeout:g} s"
        raise HubError(
            f"cannot reach {endpoint}{via} ({reason.lower()}); check your network connection"
            f"{', proxy' if via else ''} or HF_ENDPOINT, then try again"
        ) from None


def _token_present() -> bool:
    from huggingface_hub import get_token

    try:
        return bool(get_token())
    except Exception:  # a broken token file is the download's problem, not this hint's
        return False


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


@contextlib.contextmanager
def _hub_errors(repo: str, endpoint: str, filename: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub / httpx errors into one-line messages that say what to do next."""
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = f"{filename} from {repo}" if filename else repo
    try:
        yield
    except GatedRepoError:
        url = f"{endpoint}/{repo}"
        if _token_present():
            raise HubError(
                f"{repo} is gated and your Hugging Face token has no access yet; "
                f"request access at {url}, then pull again"
            ) from None
        raise HubError(
            f"{repo} is gated: request access at {url}, then log in with `hf auth login` "
            "or set HF_TOKEN to an access token"
        ) from None
    except RepositoryNotFoundError:
        raise HubError(
            f"repository {repo} not found on {endpoint}; check the name (OWNER/NAME as in the "
            "model's URL) — private repos need HF_TOKEN or `hf auth login`"
        ) from None
    except RevisionNotFoundError:
        raise HubError(f"{repo} changed while pulling; run the same pull again") from None
    except RemoteEntryNotFoundError:
        raise HubError(
            f"{filename or 'a file'} is no longer in {repo}; run the same pull again"
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status == 401:
            raise HubError(
                "the Hub rejected your token; check HF_TOKEN or log in again with `hf auth login`"
            ) from None
        if status == 403:
            raise HubError(
                f"access to {repo} was refused (403); check that your token may read it"
            ) from None
        if status == 404:
            # A server without the Hub's error headers (a mirror, a proxy) says only "404".
            mirror = endpoint.rstrip("/") != "https://huggingface.co"
            raise HubError(
                f"{endpoint} has no {what} (404 Not Found); check the name"
                + (", and whether the mirror set by HF_ENDPOINT carries it" if mirror else "")
            ) from None
        if status == 429:
            raise HubError(
                "the Hub is rate-limiting requests; wait a minute and try again"
            ) from None
        raise HubError(
            f"the Hub answered {status or 'an error'} for {what}; try again later "
            f"({_one_line(exc).split(' for url')[0]})"
        ) from None
    except (httpx2.RequestError, LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        raise HubError(
            f"download of {what} failed: {_one_line(exc)}; "
            "check your network connection and run the same pull again"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise HubError(
                f"the disk filled up while downloading {what}; free some space "
                "(`chatterm models rm NAME` removes a model) and pull again"
            ) from None
        if "Consistency check failed" in str(exc):
            raise HubError(
                f"download of {what} ended early (size mismatch); run the same pull again"
            ) from None
        raise HubError(f"cannot save {what}: {exc.strerror or _one_line(exc)}") from None


class _NoteHandler(logging.Handler):
    """huggingface_hub's multi-line retry warnings, as one-line notes."""

    def __init__(self, notify: Notify) -> None:
        super().__init__(logging.WARNING)
        self.notify = notify
        self.resumed = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Trying to resume download" in message:
            if not self.resumed:  # once: the retries that follow add nothing for the user
                self.notify("note: the connection dropped; resuming the download where it stopped")
            self.resumed = True
        elif "Max retries exceeded" in message:
            pass  # the error that follows says it
        else:
            self.notify(f"note: {message.splitlines()[0]}")


@contextlib.contextmanager
def _hf_logs_as_notes(notify: Notify) -> Iterator[None]:
    logger = logging.getLogger("huggingface_hub")
    saved = logger.handlers[:], logger.propagate
    logger.handlers = [_NoteHandler(notify)]
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved


def _progress_class(label: str, enabled: bool) -> Any:
    """huggingface_hub's own tqdm bar, named after the file rather than the URL, shown only when
    asked (stderr is a terminal)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Bar(hf_tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["desc"] = label
            kwargs["disable"] = not enabled
            super().__init__(*args, **kwargs)

    return Bar


def _safe_path(path_in_repo: str) -> bool:
    """A listing from a mirror is untrusted: no absolute paths or ``..`` escaping the folder."""
    parts = path_in_repo.split("/")
    return bool(path_in_repo) and not path_in_repo.startswith("/") and ".." not in parts


@dataclass
class RepoListing:
    repo: str  # canonical id, as the Hub spells it
    commit: str
    files: list[RemoteFile]


def list_repo(repo: str, endpoint: str) -> RepoListing:
    """The repo's commit and full file list (one API call each); the commit pins the download
    so every shard comes from the same revision."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=endpoint)
    with _hub_errors(repo, endpoint):
        info = api.model_info(repo)
        commit = info.sha or "main"
        files = [
            RemoteFile(e.path, int(e.size), e.blob_id, e.lfs.sha256 if e.lfs is not None else None)
            for e in api.list_repo_tree(info.id, recursive=True, revision=commit)
            if isinstance(e, RepoFile) and _safe_path(e.path)
        ]
    return RepoListing(info.id, commit, files)


# ----------------------------------------------------------------------------------------------
# Files on disk


def repo_dir(repo: str) -> Path:
    return paths.models_dir() / repo


def _sidecars(local_dir: Path, path_in_repo: str) -> list[Path]:
    """huggingface_hub's per-file metadata and lock under ``local_dir/.cache/huggingface``."""
    base = local_dir / ".cache" / "huggingface" / "download" / path_in_repo
    return [base.with_name(base.name + ".metadata"), base.with_name(base.name + ".lock")]


def file_digest(path: Path, algorithm: str = "sha256", git_blob: bool = False) -> str:
    digest = hashlib.new(algorithm)
    if git_blob:  # git's object id: sha1 over "blob <size>\0" + content
        digest.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(remote: RemoteFile, local: Path, repo: str) -> str:
    """Check ``local`` against the Hub's oid (sha256 for LFS files, git sha1 otherwise); delete
    it and raise :class:`HubError` on a mismatch. Returns the sha256 (or git oid)."""
    if remote.sha256:
        actual, expected, kind = file_digest(local), remote.sha256, "sha256"
    else:
        actual, expected, kind = file_digest(local, "sha1", git_blob=True), remote.blob_id, "oid"
    if actual.lower() != expected.lower():
        local.unlink(missing_ok=True)
        raise HubError(
            f"{remote.path} from {repo} failed its checksum ({kind} {actual[:12]}… instead of "
            f"{expected[:12]}…), so it was deleted; run the same pull again"
        )
    return actual


def delete_files(files: Iterable[Path], repo: str | None) -> int:
    """Delete downloaded files with their huggingface_hub sidecars, then prune empty folders.
    Only files inside the models directory are touched. Returns the bytes freed."""
    root = paths.models_dir().resolve()
    freed = 0
    local_dir = repo_dir(repo).resolve() if repo else None
    for path in files:
        path = Path(path).resolve()
        if not path.is_relative_to(root):
            continue
        with contextlib.suppress(FileNotFoundError):
            freed += path.stat().st_size
            path.unlink()
        if local_dir is not None and path.is_relative_to(local_dir):
            for sidecar in _sidecars(local_dir, path.relative_to(local_dir).as_posix()):
                sidecar.unlink(missing_ok=True)
    if local_dir is not None and local_dir.is_relative_to(root) and local_dir.is_dir():
        _prune(local_dir, root)
    return freed


def _prune(local_dir: Path, root: Path) -> None:
    """Remove ``local_dir`` when only huggingface_hub's bookkeeping is left in it, then empty
    parents up to the models directory."""
    leftovers = [
        p
        for p in local_dir.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(local_dir).parts
    ]
    if not leftovers:
        shutil.rmtree(local_dir, ignore_errors=True)
    else:
        for folder in sorted(
            (p for p in local_dir.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
        ):
            if ".cache" not in folder.relative_to(local_dir).parts:
                with contextlib.suppress(OSError):
                    folder.rmdir()
    parent = local_dir.parent
    while parent != root and parent.is_relative_to(root):
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def sweep_incomplete(max_age: float = STALE_INCOMPLETE_SECONDS) -> tuple[int, int]:
    """Delete ``*.incomplete`` files that no download has written to for ``max_age`` seconds:
    a killed pull leaves them and huggingface_hub never reuses them (each process picks a new
    name). Returns (files removed, bytes freed)."""
    root = paths.models_dir()
    if not root.is_dir():
        return 0, 0
    now = time.time()
    count = freed = 0
    for path in root.glob("**/.cache/huggingface/download/**/*.incomplete"):
        try:
            stat = path.stat()
            if now - stat.st_mtime < max_age:
                continue
            path.unlink()
        except OSError:
            continue
        count += 1
        freed += stat.st_size
    return count, freed


def free_space(directory: Path) -> int:
    for candidate in (directory, *directory.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return 0


def format_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _intact(entry: ModelEntry) -> bool:
    files = [Path(f) for f in (entry.files or [entry.path])]
    try:
        return (
            all(f.is_file() for f in files) and sum(f.stat().st_size for f in files) == entry.size
        )
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------
# Pull and remove


@dataclass
class PullResult:
    entry: ModelEntry
    already_present: bool
    downloaded_bytes: int = 0


def pull(
    spec: str,
    *,
    file: str | None = None,
    progress: bool = False,
    notify: Notify = _stderr_note,
) -> PullResult:
    """Download ``REPO[:QUANT]`` (or ``--file``) and register it as ``REPO:QUANT``.

    Raises:
        UsageError: ``spec`` is not ``OWNER/NAME[:QUANT]``.
        HubError: the Hub is unreachable, the repo is missing or gated, a download failed or
            failed its checksum, or the disk is too full (exit code 1).
        ModelError: the repo has no GGUF, no such quant or file, or the file is no GGUF (3).
    """
    repo, quant = parse_spec(spec)
    catalog = Catalog()
    if quant and not file:
        known = catalog.get(f"{repo}:{quant}")
        if known is not None and known.source == "hub" and _intact(known):
            return PullResult(known, already_present=True)

    endpoint = hub_endpoint()
    check_reachable(endpoint)
    swept, swept_bytes = sweep_incomplete()
    if swept:
        notify(f"removed {swept} stale partial download(s) ({format_size(swept_bytes)})")
    listing = list_repo(repo, endpoint)
    candidate, note = choose(
        find_candidates(listing.files), repo=listing.repo, quant=quant, file=file
    )
    if note:
        notify(note)
    name = f"{listing.repo}:{candidate.label}"
    local_dir = repo_dir(listing.repo)
    targets = [local_dir / f.path for f in candidate.files]
    known = catalog.get(name)
    if (
        known is not None
        and known.source == "hub"
        and _intact(known)
        and [Path(p) for p in known.files] == targets
    ):
        return PullResult(known, already_present=True)

    needed = sum(
        f.size
        for f, t in zip(candidate.files, targets, strict=True)
        if not (t.is_file() and t.stat().st_size == f.size)
    )
    free = free_space(local_dir)
    if needed > free:
        raise HubError(
            f"not enough disk space for {name}: it needs {format_size(needed)} but "
            f"{paths.models_dir()} has {format_size(free)} free; free some space "
            "(`chatterm models rm NAME` removes a model) and pull again"
        )
    count = len(candidate.files)
    notify(
        f"pulling {name} ({format_size(candidate.size)}{f' in {count} files' if count > 1 else ''})"
    )
    entry = _download(listing, candidate, name, targets, catalog, progress, notify)
    catalog.add(entry)
    return PullResult(entry, already_present=False, downloaded_bytes=needed)


def _download(
    listing: RepoListing,
    candidate: Candidate,
    name: str,
    targets: list[Path],
    catalog: Catalog,
    progress: bool,
    notify: Notify,
) -> ModelEntry:
    """Fetch, verify and check every file; on any failure (Ctrl-C included) delete the files
    that no registered model uses, then re-raise."""
    from huggingface_hub import hf_hub_download

    from chatterm.gguf_file import read_gguf

    endpoint = hub_endpoint()
    local_dir = repo_dir(listing.repo)
    known_good = catalog.referenced_files(exclude=name)  # re-pulling a damaged entry re-checks
    digests: list[str] = []
    try:
        with _hf_logs_as_notes(notify):
            for remote, target in zip(candidate.files, targets, strict=True):
                with _hub_errors(listing.repo, endpoint, remote.path):
                    hf_hub_download(
                        listing.repo,
                        remote.path,
                        revision=listing.commit,
                        local_dir=local_dir,
                        endpoint=endpoint,
                        tqdm_class=_progress_class(remote.path.rsplit("/", 1)[-1], progress),
                    )
                if target.resolve() in known_good:
                    digests.append(remote.sha256 or remote.blob_id)
                    continue
                if progress and remote.size > VERIFY_NOTE_BYTES:
                    notify(f"checking the sha256 of {remote.path}…")
                digests.append(verify(remote, target, listing.repo))
        infos = []
        for remote, target in zip(candidate.files, targets, strict=True):
            try:
                infos.append(read_gguf(target))
            except ModelError as exc:
                raise ModelError(
                    str(exc).replace(str(target), f"{listing.repo}/{remote.path}")
                    + "; it was not kept"
                ) from None
    except BaseException:
        delete_files([t for t in targets if t.resolve() not in known_good], listing.repo)
        raise
    entry = ModelEntry(
        name=name,
        path=str(targets[0]),
        repo=listing.repo,
        quant=candidate.quant or infos[0].quantization,
        files=[str(t) for t in targets],
        size=sum(t.stat().st_size for t in targets),
        sha256=digests[0] if candidate.first.sha256 else None,
        source="hub",
        revision=listing.commit,
    )
    remember_summary(entry.file_paths, infos)
    return entry


@dataclass
class RemoveResult:
    entry: ModelEntry
    freed_bytes: int
    kept_files: list[str]


def remove(name: str) -> RemoveResult:
    """Unregister ``name``; delete its files when chatterm downloaded them and no other
    registered model uses them. Files registered with ``models add`` are never deleted."""
    catalog = Catalog()
    entry = catalog.remove(name)
    files = [Path(f) for f in (entry.files or [entry.path])]
    if entry.source != "hub":
        return RemoveResult(entry, 0, [str(f) for f in files])
    still_used = catalog.referenced_files()
    root = paths.models_dir().resolve()
    owned = [f for f in files if f.resolve().is_relative_to(root) and f.resolve() not in still_used]
    kept = [str(f) for f in files if f not in owned]
    return RemoveResult(entry, delete_files(owned, entry.repo), kept)
