"""The add-on's warning window, rendered in headless Chromium as a plain page with sample
findings (plugin/thunderbird/test/preview.html): the findings, the suggestion and both
buttons are on the page, and the screenshot is a real picture.

    .venv/bin/python -m tests.plugin.test_warning_window docs/

writes the README's screenshots (thunderbird-warning-en.png, -de.png) into docs/.
"""

from __future__ import annotations

import functools
import http.server
import json
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugin" / "thunderbird"
SIZE = (560, 320)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Lets the page's module script finish its fetches before the DOM is dumped.
    "--virtual-time-budget=10000",
]
BUTTONS = {"en": ("Edit", "Send anyway"), "de": ("Bearbeiten", "Trotzdem senden")}
HINTS = {"en": "Meier, not Meyer", "de": "Meier, nicht Meyer"}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_plugin() -> Iterator[str]:
    """The add-on's folder over HTTP on loopback (module scripts are not run from file:)."""
    handler = functools.partial(_Quiet, directory=str(PLUGIN))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_tool("chromium")
    with tempfile.TemporaryDirectory(prefix="courtesy-chromium-") as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def render(language: str, png: Path) -> str:
    """The rendered DOM of the preview page; its screenshot goes to ``png``."""
    with serve_plugin() as base:
        url = f"{base}/test/preview.html?lang={language}"
        size = f"--window-size={SIZE[0]},{SIZE[1]}"
        dom = chromium(size, "--dump-dom", url)
        assert dom.returncode == 0, dom.stderr[-3000:]
        shot = chromium(size, f"--screenshot={png}", url)
        assert shot.returncode == 0, shot.stderr[-3000:]
    return dom.stdout


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the raw (filtered) scanlines of a PNG, with the stdlib only."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    offset, width, height, idat = 8, 0, 0, b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    return width, height, zlib.decompress(idat)


def samples(language: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = json.loads(
        (PLUGIN / "test" / "sample-findings.json").read_text(encoding="utf-8")
    )[language]
    return found


@pytest.mark.parametrize("language", ["en", "de"])
def test_warning_window_shows_findings_and_both_buttons(language: str, tmp_path: Path):
    png = tmp_path / f"warning-{language}.png"
    dom = render(language, png)
    assert 'data-ready="yes"' in dom, dom[-2000:]
    for finding in samples(language):
        message = str(finding["message"])
        assert message.replace("'", "&#39;") in dom or message in dom, message
        assert f'data-code="{finding["code"]}"' in dom
    assert HINTS[language] in dom
    edit, send = BUTTONS[language]
    assert f'id="edit" type="button">{edit}</button>' in dom
    assert f'id="send" type="button">{send}</button>' in dom

    width, height, pixels = png_pixels(png)
    assert (width, height) == SIZE
    # A blank page compresses to almost nothing and has a handful of byte values;
    # text, the coloured bars and the buttons give many.
    assert png.stat().st_size > 8_000
    assert len(set(pixels)) > 64


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "docs"
    out.mkdir(parents=True, exist_ok=True)
    for language in ("en", "de"):
        target = out / f"thunderbird-warning-{language}.png"
        render(language, target)
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
