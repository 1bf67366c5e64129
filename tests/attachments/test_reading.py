"""Reading attachments from real files, directories and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatterm import attachments
from chatterm.attachments import (
    MAX_FILE_BYTES,
    Attachment,
    AttachmentError,
    FetchError,
    collect,
    user_content,
)

PAGE = b"""<!doctype html><html><head><title>T</title><style>body{color:red}</style>
<script>var secret = "SCRIPT-ONLY";</script></head>
<body><h1>Lighthouse keepers</h1><p>They kept the <a href="/lamp">lamp</a> lit.</p>
<ul><li>oil</li><li>wicks</li></ul></body></html>"""


def test_a_file_becomes_a_block_naming_its_source_before_the_question(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("The secret word is PELICAN.\n")
    found = collect(["notes.md"], cwd=tmp_path)
    (item,) = found.attachments
    assert item.source == "notes.md" and item.kind == "file"
    assert item.size == len(b"The secret word is PELICAN.\n")
    content = user_content("What is the secret word?", found.attachments)
    assert content.startswith('<attachment source="notes.md">\nThe secret word is PELICAN.\n')
    assert content.endswith("</attachment>\n\nWhat is the secret word?")


def test_same_text_has_the_same_hash_whatever_its_source() -> None:
    a, b = Attachment("a.txt", "file", "same"), Attachment("b.txt", "file", "same")
    assert a.sha256 == b.sha256 and a.source != b.source
    assert Attachment("c", "file", "other").sha256 != a.sha256


def test_a_directory_honours_gitignore_at_every_level_and_skips_binary_files(
    tmp_path: Path,
) -> None:
    root = tmp_path / "proj"
    (root / "src" / "gen").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("built\n")
    (root / "app.log").write_text("log\n")
    (root / "README.md").write_text("# proj\n")
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "src" / ".gitignore").write_text("gen/\n!keep.log\n")
    (root / "src" / "gen" / "x.py").write_text("generated\n")
    (root / "src" / "keep.log").write_text("kept by negation\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    found = collect(["proj"], cwd=tmp_path)
    sources = [a.source for a in found.attachments]
    assert sources == ["proj/.gitignore", "proj/README.md", "proj/src/.gitignore",
                       "proj/src/keep.log", "proj/src/main.py"]  # fmt: skip
    assert found.notes == ["skipped 1 binary file: proj/logo.png"]


def test_a_binary_file_named_directly_is_refused(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\0\0\0")
    with pytest.raises(AttachmentError, match=r"^-f logo.png: a binary file; attach text"):
        collect(["logo.png"], cwd=tmp_path)


def test_a_missing_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(AttachmentError, match=r"^-f nope.txt: no such file or directory$"):
        collect(["nope.txt"], cwd=tmp_path)


def test_a_directory_with_nothing_readable_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(AttachmentError, match="no text files to attach"):
        collect(["empty"], cwd=tmp_path)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "a.bin").write_bytes(b"\0\1\2")
    with pytest.raises(AttachmentError, match=r"no text files to attach \(1 binary\)"):
        collect(["bin"], cwd=tmp_path)


def test_a_2_gb_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as handle:  # sparse: takes no disk space
        handle.truncate(2 * 2**30)
    with pytest.raises(AttachmentError, match=r"2\.0 GB is larger than 4\.0 MB, the limit"):
        collect([str(big)])


def test_a_file_that_changes_while_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "growing.log"
    target.write_text("line 1\n")
    real_fstat = os.fstat
    calls: list[int] = []

    def fstat_then_append(fd: int) -> os.stat_result:
        result = real_fstat(fd)
        if not calls:  # another process appends between our first look and the read
            with target.open("a") as other:
                other.write("line 2, written meanwhile\n")
        calls.append(fd)
        return result

    monkeypatch.setattr(attachments.os, "fstat", fstat_then_append)
    with pytest.raises(AttachmentError, match="changed while it was being read; try again"):
        collect([str(target)])


def test_a_device_is_not_a_file() -> None:
    with pytest.raises(AttachmentError, match="not a regular file"):
        collect(["/dev/null"])


def test_total_size_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attachments, "MAX_TOTAL_BYTES", 10)
    (tmp_path / "a").write_text("0123456789\n")
    with pytest.raises(AttachmentError, match="add up to more than"):
        collect(["a"], cwd=tmp_path)


# -- URLs ------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes]] = {
        "/page": (200, "text/html; charset=utf-8", PAGE),
        "/plain": (200, "text/plain; charset=utf-8", "caf\u00e9 notes\n".encode()),
        "/image": (200, "image/png", b"\x89PNG\0\0"),
        "/empty": (200, "text/html", b"<html><body></body></html>"),
    }

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/plain")
            self.end_headers()
            return
        status, kind, body = self.routes.get(self.path, (404, "text/plain", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_an_html_page_becomes_markdown_without_scripts(server: str) -> None:
    (item,) = collect([f"{server}/page"]).attachments
    assert item.kind == "url" and item.source == f"{server}/page"
    assert "# Lighthouse keepers" in item.text
    assert "[lamp](/lamp)" in item.text and "* oil" in item.text
    assert "SCRIPT-ONLY" not in item.text and "color:red" not in item.text


def test_plain_text_is_kept_and_redirects_are_followed(server: str) -> None:
    (item,) = collect([f"{server}/moved"]).attachments
    assert item.text == "caf\u00e9 notes\n"


def test_an_http_error_is_a_network_failure(server: str) -> None:
    with pytest.raises(FetchError, match=r"/missing: HTTP 404 Not Found$") as caught:
        collect([f"{server}/missing"])
    assert caught.value.exit_code == 1


def test_a_binary_or_empty_page_is_refused_as_input(server: str) -> None:
    with pytest.raises(AttachmentError, match=r"not text \(image/png\)"):
        collect([f"{server}/image"])
    with pytest.raises(AttachmentError, match="the page has no text"):
        collect([f"{server}/empty"])


def test_an_unreachable_url_is_one_line_exit_1() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match=rf"^-f http://127.0.0.1:{port}/x: cannot fetch it"):
        collect([f"http://127.0.0.1:{port}/x"])


def test_a_url_larger_than_the_limit_stops_reading(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attachments, "MAX_FILE_BYTES", 16)
    with pytest.raises(AttachmentError, match="more than 16 bytes"):
        collect([f"{server}/page"])
    assert MAX_FILE_BYTES > 16
