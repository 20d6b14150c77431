"""The store locked or full while a message is held: the client gets 4xx, never a 250
for a copy that was not committed; once the store works again the resent message
is held exactly once.
"""

from __future__ import annotations

import contextlib
import smtplib
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from courtesy.store.held import HeldMessage
from tests.conftest import DATA
from tests.proxy.test_hold import FixedInspector
from tests.servers import ProxyInThread, RecordingUpstream, proxy_config

MEYER = (DATA / "hold" / "meyer.eml").read_bytes()
SENDER, RCPT = "anna@example.com", "thomas.meier@example.org"
BUSY_TIMEOUT = 5.0  # courtesy.store.db sets PRAGMA busy_timeout=5000


def start(store_dir: Path, upstream: RecordingUpstream, action: str = "hold") -> ProxyInThread:
    config = proxy_config(
        store_dir,
        upstream,
        store={"url": f"sqlite:///{store_dir / 'store.db'}"},
        hold={"notice": False},
    )
    return ProxyInThread(config, FixedInspector(action))


def held_count(proxy: ProxyInThread) -> int:
    with proxy.running.store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(HeldMessage)) or 0)


def send(proxy: ProxyInThread, content: bytes = MEYER) -> tuple[int, str]:
    with smtplib.SMTP(proxy.host, proxy.port, timeout=60) as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(RCPT)[0] == 250
        code, text = client.data(content)
        if code != 250:
            # The transaction is over after the DATA reply (RFC 5321 4.1.1.4): a new
            # MAIL needs no RSET.
            assert client.mail(SENDER)[0] == 250
        return code, text.decode()


def test_locked_store_gets_451_within_the_busy_timeout(tmp_path: Path, upstream: RecordingUpstream):
    proxy = start(tmp_path, upstream)
    try:
        locker = sqlite3.connect(tmp_path / "store.db", isolation_level=None, timeout=1)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            code, text = send(proxy)
            took = time.monotonic() - started
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert 400 <= code < 500, (code, text)
        assert BUSY_TIMEOUT * 0.8 < took < BUSY_TIMEOUT + 10, took
        assert held_count(proxy) == 0 and upstream.received == []
        assert send(proxy)[0] == 250  # the lock is gone: held now
        assert held_count(proxy) == 1 and upstream.received == []
    finally:
        proxy.stop()


class PageLimit:
    """PRAGMA max_page_count on every connection of the proxy's engine: SQLite's own "full".

    The pragma holds per connection, so it is set as each pooled connection opens.
    """

    def __init__(self, proxy: ProxyInThread) -> None:
        self.engine = proxy.running.store.engine
        self.pages = 1073741823  # SQLite's maximum
        event.listen(self.engine, "connect", self._apply)

    def _apply(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {self.pages}")

    def set(self, pages: int) -> None:
        self.pages = pages
        self.engine.dispose()  # new connections get the pragma


def test_full_database_gets_451(tmp_path: Path, upstream: RecordingUpstream):
    proxy = start(tmp_path, upstream)
    try:
        assert send(proxy)[0] == 250
        with sqlite3.connect(tmp_path / "store.db") as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        limit = PageLimit(proxy)
        limit.set(pages)
        big = MEYER + b"x" * 400_000 + b"\r\n"  # needs about a hundred more pages
        code, text = send(proxy, big)
        assert 400 <= code < 500, (code, text)
        assert held_count(proxy) == 1
        limit.set(1073741823)
        assert send(proxy, big)[0] == 250
        assert held_count(proxy) == 2 and upstream.received == []
    finally:
        proxy.stop()


def test_store_failure_outside_the_hold_is_a_451_and_one_line_in_the_log(
    tmp_path: Path, upstream: RecordingUpstream, caplog: pytest.LogCaptureFixture
):
    """A reject records its override key: a locked store there is a fault, not a bug."""
    proxy = start(tmp_path, upstream, action="reject")
    try:
        locker = sqlite3.connect(tmp_path / "store.db", isolation_level=None, timeout=1)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            code, text = send(proxy)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert code == 451 and "cannot store" in text, (code, text)
        assert any("store failed" in r.getMessage() for r in caplog.records)
        assert not any(r.exc_info for r in caplog.records)
        assert upstream.received == []
    finally:
        proxy.stop()


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (root only); the test fails, saying so, when it cannot mount one."""
    mount_point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(
            f"cannot mount a tmpfs here ({done.stderr.strip()}): this test needs root "
            "(CI runs as root); test_full_database_gets_451 covers a full store without it"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_full_filesystem_gets_451(tiny_filesystem: Path, upstream: RecordingUpstream):
    proxy = start(tiny_filesystem, upstream)
    filler = tiny_filesystem / "filler"
    try:
        assert send(proxy)[0] == 250
        # Fill the filesystem to the last block.
        with open(filler, "wb") as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        big = MEYER + b"x" * 300_000 + b"\r\n"
        code, text = send(proxy, big)
        assert 400 <= code < 500, (code, text)
        assert held_count(proxy) == 1
        filler.unlink()
        assert send(proxy, big)[0] == 250
        assert held_count(proxy) == 2 and upstream.received == []
    finally:
        proxy.stop()
