"""Attachments: files, directories, stdin and web pages put in front of a question.

``chatterm ask -f PATH`` reads each source into :class:`Attachment` objects (a directory gives
one per text file) *before* anything is saved or a model loads, so bad input costs nothing.
:func:`user_content` turns a question and its attachments into the one user message the model
sees: every attachment as a delimited block naming its source, then the question. The same
function rebuilds the message from the history, so a continued conversation re-renders byte for
byte (and its KV cache is reused).

Rules taken from elsewhere:

- a file is *binary* when its first 8,000 bytes hold a NUL byte: git's own test
  (``buffer_is_binary`` in git's ``xdiff-interface.c``);
- directories honour ``.gitignore`` files at every level (matched by ``pathspec``'s
  ``GitIgnoreSpec``, git's wildmatch rules) and never enter ``.git``;
- web pages are turned into Markdown by ``markdownify`` (headings, lists, links and code kept;
  scripts and styles dropped).

Errors: :class:`AttachmentError` (exit 2) for every problem with the user's own input,
:class:`FetchError` (exit 1) when the network or the server is the problem.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chatterm.errors import ChattermError, ContextOverflowError, UsageError

Kind = Literal["file", "stdin", "url"]

MAX_FILE_BYTES = 4 * 2**20
"""The largest single attachment (4 MiB of text is about a million tokens: far past any
window chatterm can load, so anything bigger is a mistake, not a prompt)."""
MAX_TOTAL_BYTES = 16 * 2**20
MAX_DIR_FILES = 2000
BINARY_PROBE_BYTES = 8000  # git's FIRST_FEW_BYTES
URL_TIMEOUT_S = 20.0
STDIN_SOURCE = "stdin"


class AttachmentError(UsageError):
    """An attachment cannot be used: missing, binary, too large, changed while read (exit 2)."""


class FetchError(ChattermError):
    """A URL could not be fetched: unreachable, an HTTP error, a timeout (exit 1)."""


@dataclass(frozen=True)
class Attachment:
    """One attached text: where it came from (``source`` as the user named it, a path under a
    named directory, ``stdin`` or the URL), its text, and the text's SHA-256 and size in bytes
    (UTF-8). ``tokens`` is filled in by :func:`count_tokens` once a model is loaded."""

    source: str
    kind: Kind
    text: str
    sha256: str = ""
    size: int = 0
    tokens: int | None = None

    def __post_init__(self) -> None:
        # A file name that is not UTF-8 (undecodable bytes arrive as surrogate escapes) is
        # shown, stored and sent to the model with U+FFFD in their place; the file itself was
        # opened by its real name.
        shown = self.source.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        object.__setattr__(self, "source", shown)
        if not self.sha256:
            data = self.text.encode("utf-8")
            object.__setattr__(self, "sha256", hashlib.sha256(data).hexdigest())
            object.__setattr__(self, "size", len(data))

    def block(self) -> str:
        """The text as the model sees it: a delimited block that names its source."""
        body = self.text if self.text.endswith("\n") else self.text + "\n"
        return f'<attachment source="{self.source}">\n{body}</attachment>'

    def with_tokens(self, tokens: int) -> Attachment:
        import dataclasses

        return dataclasses.replace(self, tokens=tokens)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "size": self.size,
            "sha256": self.sha256,
            "tokens": self.tokens,
        }


@dataclass
class Collected:
    """What :func:`collect` found: the attachments in order, and notes about what it skipped
    (binary files, unreadable ones) to show the user."""

    attachments: list[Attachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def uses_stdin(self) -> bool:
        return any(a.kind == "stdin" for a in self.attachments)


def user_content(question: str, attachments: Sequence[Attachment]) -> str:
    """The user message: each attachment's block, then the question (blank lines between).
    Deterministic, so the history re-renders exactly what was sent."""
    if not attachments:
        return question
    blocks = "\n\n".join(a.block() for a in attachments)
    return f"{blocks}\n\n{question}" if question else blocks


# -- reading -------------------------------------------------------------------------------


def collect(sources: Iterable[str], *, stdin: Any = None, cwd: Path | None = None) -> Collected:
    """Read every source (``-`` for stdin, an ``http(s)://`` URL, a file or a directory) into
    attachments, in order. Raises :class:`AttachmentError` or :class:`FetchError` on the
    first source that cannot be used; nothing is read half-way."""
    out = Collected()
    seen: set[str] = set()
    total = 0
    for source in sources:
        if source == "-":
            if STDIN_SOURCE in seen:
                raise AttachmentError("-f -: stdin can be attached only once")
            found = [read_stdin(stdin if stdin is not None else sys.stdin)]
        elif source.startswith(("http://", "https://")):
            found = [fetch_url(source)]
        else:
            found = read_path(source, out.notes, cwd=cwd)
        for item in found:
            if item.source in seen:
                continue
            seen.add(item.source)
            total += item.size
            if total > MAX_TOTAL_BYTES:
                raise AttachmentError(
                    f"-f {source}: the attachments add up to more than "
                    f"{_human(MAX_TOTAL_BYTES)}; attach fewer files"
                )
            out.attachments.append(item)
    return out


def read_stdin(stream: Any) -> Attachment:
    """stdin as one attachment; a terminal (nothing piped) is an error."""
    if stream is None or stream.closed or stream.isatty():
        raise AttachmentError("-f -: nothing is piped on stdin")
    buffer = getattr(stream, "buffer", None)
    data = buffer.read(MAX_FILE_BYTES + 1) if buffer is not None else None
    if data is None:
        text = stream.read(MAX_FILE_BYTES + 1)
        data = text.encode("utf-8", "surrogateescape")
    if len(data) > MAX_FILE_BYTES:
        raise AttachmentError(
            f"-f -: stdin holds more than {_human(MAX_FILE_BYTES)}, the limit for an attachment"
        )
    if is_binary(data):
        raise AttachmentError("-f -: stdin is binary data; attach text only")
    if not data.strip():
        raise AttachmentError("-f -: stdin is empty")
    return Attachment(STDIN_SOURCE, "stdin", _decode(data))


def is_binary(data: bytes) -> bool:
    """git's test: a NUL byte among the first 8,000 bytes."""
    return b"\0" in data[:BINARY_PROBE_BYTES]


def _decode(data: bytes) -> str:
    """UTF-8 (a BOM dropped, CRLF kept); bytes that are not UTF-8 become U+FFFD."""
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


def read_path(source: str, notes: list[str], *, cwd: Path | None = None) -> list[Attachment]:
    """A file (one attachment) or a directory (one per text file, binary and ignored files
    skipped with a note). Sources are shown as the user wrote them, files under a directory
    as that directory joined with their relative path."""
    path = Path(source).expanduser()
    if cwd is not None and not path.is_absolute():
        path = cwd / path
    try:
        info = path.stat()
    except FileNotFoundError:
        raise AttachmentError(f"-f {source}: no such file or directory") from None
    except PermissionError:
        raise AttachmentError(f"-f {source}: permission denied") from None
    except OSError as exc:
        raise AttachmentError(f"-f {source}: cannot read it ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        return _read_directory(path, source, notes)
    if not stat.S_ISREG(info.st_mode):
        raise AttachmentError(f"-f {source}: not a regular file (a device, socket or pipe)")
    item = read_file(path, source)
    if item is None:
        raise AttachmentError(f"-f {source}: a binary file; attach text files only")
    return [item]


def read_file(path: Path, source: str) -> Attachment | None:
    """One text file, or ``None`` when it is binary. Raises :class:`AttachmentError` for a
    file too large, unreadable, or changed while being read (its size or modification time
    differ before and after)."""
    try:
        with path.open("rb") as handle:
            before = os.fstat(handle.fileno())
            if before.st_size > MAX_FILE_BYTES:
                raise AttachmentError(
                    f"-f {source}: {_human(before.st_size)} is larger than "
                    f"{_human(MAX_FILE_BYTES)}, the limit for an attachment"
                )
            data = handle.read(MAX_FILE_BYTES + 1)
            after = os.fstat(handle.fileno())
    except PermissionError:
        raise AttachmentError(f"-f {source}: permission denied") from None
    except IsADirectoryError:
        raise AttachmentError(f"-f {source}: is a directory") from None
    except OSError as exc:
        raise AttachmentError(f"-f {source}: cannot read it ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise AttachmentError(
            f"-f {source}: larger than {_human(MAX_FILE_BYTES)}, the limit for an attachment"
        )
    changed = (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns)
    if changed or len(data) != after.st_size:
        raise AttachmentError(f"-f {source}: the file changed while it was being read; try again")
    if is_binary(data):
        return None
    return Attachment(source, "file", _decode(data))


def _read_directory(root: Path, source: str, notes: list[str]) -> list[Attachment]:
    found: list[Attachment] = []
    binary: list[str] = []
    for path in walk(root):
        rel = path.relative_to(root).as_posix()
        shown = f"{source.rstrip('/')}/{rel}"
        if len(found) >= MAX_DIR_FILES:
            raise AttachmentError(
                f"-f {source}: more than {MAX_DIR_FILES} files; attach a smaller directory"
            )
        item = read_file(path, shown)
        if item is None:
            binary.append(shown)
        elif item.text.strip():
            found.append(item)
    if binary:
        listed = ", ".join(binary[:3]) + (f" and {len(binary) - 3} more" if len(binary) > 3 else "")
        notes.append(f"skipped {len(binary)} binary file{'s' * (len(binary) != 1)}: {listed}")
    if not found:
        why = f" ({len(binary)} binary)" if binary else ""
        raise AttachmentError(f"-f {source}: no text files to attach{why}")
    return found


def walk(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` in sorted order, skipping ``.git`` and whatever the
    ``.gitignore`` files on the way ignore (each applies to its own directory and below, as
    in git). Symbolic links are not followed."""
    import pathspec

    def visit(directory: Path, specs: list[tuple[Path, Any]]) -> Iterator[Path]:
        ignore_file = directory / ".gitignore"
        if ignore_file.is_file():
            try:
                lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                lines = []
            specs = [*specs, (directory, pathspec.GitIgnoreSpec.from_lines(lines))]
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name == ".git":
                continue
            path = Path(entry.path)
            is_dir = entry.is_dir(follow_symlinks=False)
            if _ignored(path, is_dir, specs):
                continue
            if is_dir:
                yield from visit(path, specs)
            elif entry.is_file(follow_symlinks=False):
                yield path

    yield from visit(root, [])


def _ignored(path: Path, is_dir: bool, specs: Sequence[tuple[Path, Any]]) -> bool:
    """As git decides: the deepest ``.gitignore`` with a pattern for the path wins, so a
    ``!pattern`` below can re-include what a parent directory's file ignores."""
    for base, spec in reversed(specs):
        rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        verdict = spec.check_file(rel).include
        if verdict is not None:
            return bool(verdict)
    return False


# -- URLs ----------------------------------------------------------------------------------


def fetch_url(url: str, *, timeout: float = URL_TIMEOUT_S) -> Attachment:
    """Fetch an ``http(s)://`` URL with the HTTP client chatterm already has; HTML becomes
    Markdown, other text is kept as it is. Raises :class:`FetchError` (exit 1) when the
    server cannot be reached or answers with an error, :class:`AttachmentError` (exit 2)
    when the content is not text or too large."""
    from chatterm.engine.remote_http import INSTALL_HINT, httpx_module

    try:
        httpx = httpx_module()
    except ChattermError:
        raise FetchError(f"-f {url}: fetching URLs needs an HTTP client: {INSTALL_HINT}") from None
    headers = {"User-Agent": "chatterm", "Accept": "text/html, text/*;q=0.9, */*;q=0.5"}
    try:
        with (
            httpx.Client(follow_redirects=True, timeout=timeout, headers=headers) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                reason = response.reason_phrase or ""
                raise FetchError(f"-f {url}: HTTP {response.status_code} {reason}".rstrip())
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise AttachmentError(
                        f"-f {url}: more than {_human(MAX_FILE_BYTES)}, the limit for an attachment"
                    )
            content_type = response.headers.get("content-type", "")
            charset = response.charset_encoding
    except httpx.InvalidURL as exc:
        raise AttachmentError(f"-f {url}: not a valid URL ({exc})") from None
    except httpx.TimeoutException:
        raise FetchError(f"-f {url}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        detail = str(exc) or type(exc).__name__
        raise FetchError(f"-f {url}: cannot fetch it ({detail})") from None
    data = b"".join(chunks)
    mime = content_type.split(";")[0].strip().lower()
    textual = (
        not mime
        or mime.startswith("text/")
        or mime.endswith(("+json", "+xml", "/json", "/xml", "/javascript", "/x-yaml", "/yaml"))
    )
    if not textual or is_binary(data):
        raise AttachmentError(f"-f {url}: not text ({mime or 'binary data'}); attach text only")
    text = data.decode(charset or "utf-8", errors="replace").removeprefix("\ufeff")
    if mime in ("text/html", "application/xhtml+xml"):
        text = html_to_text(text)
    if not text.strip():
        raise AttachmentError(f"-f {url}: the page has no text")
    return Attachment(url, "url", text)


def html_to_text(html: str) -> str:
    """Readable Markdown from HTML (markdownify over BeautifulSoup: headings as ``#``, links
    and lists kept; the head, scripts and styles dropped), blank-line runs collapsed."""
    import re

    from bs4 import BeautifulSoup
    from markdownify import MarkdownConverter

    soup = BeautifulSoup(html, "html.parser")
    # Markdownify keeps the text of tags it strips: drop what a reader never sees first.
    for tag in soup(["head", "script", "style", "noscript", "template", "svg", "iframe"]):
        tag.decompose()
    text = MarkdownConverter(heading_style="ATX", strip=["img"]).convert_soup(soup)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# -- tokens and fit ------------------------------------------------------------------------


def count_tokens(engine: Any, attachments: Sequence[Attachment]) -> list[Attachment]:
    """Each attachment with the number of tokens its block takes under ``engine``'s tokenizer
    (left ``None`` where the engine cannot tokenize, e.g. a server without ``/tokenize``)."""
    from chatterm.engine.base import LocalModel

    # The ids alone where the engine offers them: naming every piece of a large file is slow.
    count = engine.token_ids if isinstance(engine, LocalModel) else engine.tokenize
    out = []
    for item in attachments:
        try:
            tokens = len(count(item.block()))
        except ChattermError:
            return list(attachments)
        out.append(item.with_tokens(tokens))
    return out


def check_fit(
    prompt_tokens: int, n_ctx: int, reserve: int, attachments: Sequence[Attachment]
) -> None:
    """Refuse (``ContextOverflowError``, exit 4) a prompt whose newest message, attachments
    included, leaves fewer than ``reserve`` tokens of the ``n_ctx`` window for the reply,
    naming the largest attachments. Never cuts anything silently."""
    limit = n_ctx - reserve
    if prompt_tokens <= limit or not attachments:
        return
    largest = sorted(attachments, key=lambda a: -(a.tokens or 0))[:3]
    named = ", ".join(f"{a.source} ({a.tokens:,} tokens)" for a in largest if a.tokens)
    raise ContextOverflowError(
        f"the attachments do not fit: the prompt needs {prompt_tokens:,} tokens but the "
        f"{n_ctx:,}-token window keeps {reserve:,} for the reply; largest: {named}; "
        "attach less or raise --ctx-size"
    )


def _human(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
