"""A small Hugging Face Hub on 127.0.0.1 for tests: the endpoints huggingface_hub 2.4 calls
when pulling, served from real files, plus the failures a real network produces.

What huggingface_hub requests (read from its source and checked in this server's log):
- ``GET /api/models/{repo}[/revision/{rev}]`` → ``{id, sha, siblings, gated, private}``
- ``GET /api/models/{repo}/tree/{rev}?recursive=true&expand=false`` → JSON list of
  ``{type, path, oid, size, lfs: {oid, size, pointerSize}}``
- ``HEAD /{repo}/resolve/{rev}/{path}`` → ``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag`` (LFS
  sha256), ``X-Linked-Size``, ``Content-Length``; then ``GET`` the same URL, with ``Range:
  bytes=N-`` when resuming (answered 206 + ``Content-Range``).
- Errors carry ``X-Error-Code`` (``RepoNotFound``, ``EntryNotFound``, ``RevisionNotFound``,
  ``GatedRepo``) and a JSON ``{"error": ...}`` body.
- Also ``GET /api/agent-harnesses`` (best-effort telemetry, at most daily; a 404 is ignored).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubFile:
    """A file in a fake repo. ``source`` is served (never copied); ``lfs`` files are described
    by their sha256 like the real Hub's large files.

    Failure knobs: ``cut_once_at`` closes the first GET after that many bytes; ``cut_always_at``
    closes every GET once the file position reaches it (no resume can pass it); ``delay`` sleeps
    between 1 MiB chunks; ``claimed_sha256`` / ``claimed_size`` lie in the listing and headers.
    """

    path: str
    source: Path | None = None
    data: bytes | None = None
    lfs: bool = True
    cut_once_at: int | None = None
    cut_always_at: int | None = None
    delay: float = 0.0
    claimed_sha256: str | None = None
    claimed_size: int | None = None
    _sha256: str | None = None

    def size(self) -> int:
        return len(self.data) if self.data is not None else self.source.stat().st_size  # type: ignore[union-attr]

    def sha256(self) -> str:
        if self._sha256 is None:
            if self.data is not None:
                self._sha256 = hashlib.sha256(self.data).hexdigest()
            else:
                self._sha256 = sha256_of(self.source)  # type: ignore[arg-type]
        return self._sha256

    def advertised_size(self) -> int:
        return self.claimed_size if self.claimed_size is not None else self.size()

    def advertised_sha256(self) -> str:
        return self.claimed_sha256 or self.sha256()

    def oid(self) -> str:
        """The git blob id: of the LFS pointer file for LFS files, of the content otherwise."""
        if self.lfs:
            pointer = (
                "version https://git-lfs.github.com/spec/v1\n"
                f"oid sha256:{self.advertised_sha256()}\nsize {self.advertised_size()}\n"
            ).encode()
            return git_blob_id(pointer)
        return git_blob_id(self.read(0, self.size()))

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        with self.source.open("rb") as fh:  # type: ignore[union-attr]
            fh.seek(start)
            return fh.read(end - start)


@dataclass
class HubRepo:
    repo_id: str
    files: list[HubFile] = field(default_factory=list)
    gated: bool = False
    sha: str = ""

    def __post_init__(self) -> None:
        if not self.sha:
            self.sha = hashlib.sha1(self.repo_id.encode()).hexdigest()

    def file(self, path: str) -> HubFile | None:
        return next((f for f in self.files if f.path == path), None)


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int
    authorization: str | None


class FakeHub:
    """Start with :meth:`start`; ``url`` is the endpoint to put in ``HF_ENDPOINT``.

    ``token`` is the access token that opens gated repos; ``log`` records every request.
    """

    def __init__(self, repos: list[HubRepo], token: str = "hf_fake_access_token") -> None:
        self.repos = {r.repo_id.casefold(): r for r in repos}
        self.token = token
        self.log: list[Request] = []
        self.bytes_sent: dict[str, int] = {}
        self.cut_done: set[str] = set()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def record(self, request: Request) -> None:
        with self.lock:
            self.log.append(request)

    def requests(self, method: str | None = None, contains: str = "") -> list[Request]:
        with self.lock:
            return [
                r for r in self.log if (method is None or r.method == method) and contains in r.path
            ]


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_API = re.compile(
    r"^/api/models/(?P<repo>[^/]+/[^/]+)"
    r"(?:/revision/(?P<rev>[^/]+)|/tree/(?P<tree_rev>[^/]+)(?:/(?P<tree_path>.+))?)?$"
)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.0"  # one request per connection: a cut is a closed socket

    def log_message(self, format: str, *args: object) -> None:  # silence stderr
        pass

    # -- helpers ---------------------------------------------------------------------------

    def _finish(self, status: int) -> None:
        self.fake.record(
            Request(
                self.command,
                self.path,
                self.headers.get("Range"),
                status,
                self.headers.get("Authorization"),
            )
        )

    def _error(self, status: int, code: str | None, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._finish(status)

    def _json(self, data: object, repo: HubRepo) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Repo-Commit", repo.sha)
        self.end_headers()
        self.wfile.write(body)
        self._finish(200)

    def _repo(self, repo_id: str) -> HubRepo | None:
        repo = self.fake.repos.get(unquote(repo_id).casefold())
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
        return repo

    # -- routes ----------------------------------------------------------------------------

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._route()

    def do_GET(self) -> None:  # noqa: N802
        self._route()

    def _route(self) -> None:
        try:
            url = urlsplit(self.path)
            if m := _API.match(url.path):
                self._api(m, parse_qs(url.query))
            elif m := _RESOLVE.match(url.path):
                self._resolve(m)
            else:
                self._error(404, None, "Not found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (Ctrl-C): nothing to answer

    def _api(self, m: re.Match[str], query: dict[str, list[str]]) -> None:
        repo = self._repo(m["repo"])
        if repo is None:
            return
        if m["tree_rev"] is None:
            rev = m["rev"]
            if rev is not None and rev not in ("main", repo.sha):
                self._error(404, "RevisionNotFound", "Revision not found")
                return
            self._json(
                {
                    "id": repo.repo_id,
                    "modelId": repo.repo_id,
                    "sha": repo.sha,
                    "private": False,
                    "gated": "auto" if repo.gated else False,
                    "siblings": [{"rfilename": f.path} for f in repo.files],
                    "tags": ["gguf"],
                    "library_name": "gguf",
                },
                repo,
            )
            return
        if unquote(m["tree_rev"]) not in ("main", repo.sha):
            self._error(404, "RevisionNotFound", "Revision not found")
            return
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = unquote(m["tree_path"] or "").strip("/")
        self._json(self._tree(repo, prefix, recursive), repo)

    def _tree(self, repo: HubRepo, prefix: str, recursive: bool) -> list[dict[str, object]]:
        entries: list[dict[str, object]] = []
        folders: set[str] = set()
        for f in repo.files:
            if prefix and not f.path.startswith(prefix + "/"):
                continue
            rest = f.path[len(prefix) + 1 :] if prefix else f.path
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(([prefix] if prefix else []) + parts[:depth])
                if (recursive or depth == 1) and folder not in folders:
                    folders.add(folder)
                    entries.append(
                        {"type": "directory", "path": folder, "oid": "0" * 40, "size": 0}
                    )
            if not recursive and len(parts) > 1:
                continue
            entry: dict[str, object] = {
                "type": "file",
                "path": f.path,
                "oid": f.oid(),
                "size": f.advertised_size(),
            }
            if f.lfs:
                entry["lfs"] = {
                    "oid": f.advertised_sha256(),
                    "size": f.advertised_size(),
                    "pointerSize": 134,
                }
            entries.append(entry)
        return entries

    def _resolve(self, m: re.Match[str]) -> None:
        repo = self._repo(m["repo"])
        if repo is None:
            return
        if unquote(m["rev"]) not in ("main", repo.sha):
            self._error(404, "RevisionNotFound", "Revision not found")
            return
        hub_file = repo.file(unquote(m["path"]))
        if hub_file is None:
            self._error(404, "EntryNotFound", "Entry not found")
            return
        if repo.gated:
            auth = self.headers.get("Authorization")
            if auth is None:
                self._error(
                    401,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in.",
                )
                return
            if auth != f"Bearer {self.fake.token}":
                self._error(
                    403,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted and you are not in the "
                    "authorized list.",
                )
                return
        self._send_file(repo, hub_file)

    def _send_file(self, repo: HubRepo, f: HubFile) -> None:
        total = f.size()
        start, end, status = 0, total, 200
        rng = self.headers.get("Range") if self.command == "GET" else None
        if rng:
            match = re.match(r"bytes=(\d+)-(\d*)$", rng)
            if match is None or int(match[1]) >= total:
                self._error(416, None, "Range not satisfiable")
                return
            start, status = int(match[1]), 206
            if match[2]:
                end = min(total, int(match[2]) + 1)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Repo-Commit", repo.sha)
        self.send_header("ETag", f'"{f.oid()}"')
        if f.lfs:
            self.send_header("X-Linked-Etag", f'"{f.advertised_sha256()}"')
            self.send_header("X-Linked-Size", str(f.advertised_size()))
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{total}")
        self.end_headers()
        self._finish(status)
        if self.command == "HEAD":
            return
        cut = None
        key = f"{repo.repo_id}/{f.path}"
        if f.cut_once_at is not None:
            with self.fake.lock:
                if key not in self.fake.cut_done:
                    self.fake.cut_done.add(key)
                    cut = f.cut_once_at
        if f.cut_always_at is not None:
            cut = f.cut_always_at
        position = start
        while position < end:
            stop = min(end, position + CHUNK)
            if cut is not None and cut >= position:
                stop = min(stop, cut)
                if stop == position:
                    break
            self.wfile.write(f.read(position, stop))
            with self.fake.lock:
                self.fake.bytes_sent[key] = self.fake.bytes_sent.get(key, 0) + stop - position
            position = stop
            if cut is not None and position >= cut:
                break
            if f.delay:
                time.sleep(f.delay)
        self.close_connection = True  # a cut ends here, before Content-Length is reached
