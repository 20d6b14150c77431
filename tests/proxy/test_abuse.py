"""SMTP protocol abuse against the front, on loopback.

Oversized commands, a thousand recipients, commands out of order, clients
that dribble bytes, and two hundred connections at once: the proxy answers
with the codes RFC 5321 asks for, and a normal client sending mail at the
same time gets it through within a few seconds. Every loop is bounded in
count and time.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import DATA
from tests.servers import ProxyInThread, RecordingUpstream, proxy_config

PLAIN = (DATA / "proxy" / "plain.eml").read_bytes()
SENDER = "anna@example.com"
# A normal client must get its mail through within this, whatever else goes on.
RESPONSIVE = 5.0


@pytest.fixture
def proxy(tmp_path: Path, upstream: RecordingUpstream) -> Iterator[ProxyInThread]:
    config = proxy_config(tmp_path, upstream, proxy={"client_timeout": "4s"})
    running = ProxyInThread(config)
    yield running
    running.stop()


class Raw:
    """A line-oriented SMTP client on a plain socket, for what smtplib refuses to send."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply: its code and its lines joined."""
        lines = []
        while True:
            line = self.file.readline(10_000)
            if not line:
                raise ConnectionError("closed by the proxy")
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def command(self, line: bytes) -> tuple[int, str]:
        self.send(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


def send_normal(proxy: ProxyInThread, rcpt: str = "bob@example.org") -> float:
    started = time.monotonic()
    with smtplib.SMTP(proxy.host, proxy.port, timeout=RESPONSIVE * 3) as client:
        assert client.sendmail(SENDER, [rcpt], PLAIN) == {}
    return time.monotonic() - started


def test_100_kb_commands_get_500_and_the_session_goes_on(proxy: ProxyInThread):
    client = Raw(proxy.host, proxy.port)
    try:
        assert client.greeting[0] == 220
        assert client.command(b"EHLO client.test")[0] == 250
        code, text = client.command(b"MAIL FROM:<" + b"a" * 100_000 + b"@example.com>")
        assert code == 500 and "too long" in text
        code, _ = client.command(b"X" * 100_000)
        assert code == 500
        code, _ = client.command(b"RCPT TO:<" + b"b" * 100_000 + b">")
        assert code == 500
        # Not a command at all: non-ASCII, NUL bytes.
        assert client.command(b"\xff\xfe\x00 junk")[0] == 500
        # The session still works.
        assert client.command(b"MAIL FROM:<anna@example.com>")[0] == 250
        assert client.command(b"RCPT TO:<bob@example.org>")[0] == 250
        assert client.command(b"DATA")[0] == 354
        client.send(PLAIN.replace(b"\n.", b"\n..") + b".\r\n")
        assert client.reply()[0] == 250
        assert client.command(b"QUIT")[0] == 221
    finally:
        client.close()


def test_commands_out_of_order_get_503(proxy: ProxyInThread, upstream: RecordingUpstream):
    client = Raw(proxy.host, proxy.port)
    try:
        assert client.command(b"EHLO client.test")[0] == 250
        assert client.command(b"DATA")[0] == 503  # no MAIL
        assert client.command(b"RCPT TO:<bob@example.org>")[0] == 503  # no MAIL
        assert client.command(b"MAIL FROM:<anna@example.com>")[0] == 250
        assert client.command(b"MAIL FROM:<anna@example.com>")[0] == 503  # nested MAIL
        assert client.command(b"DATA")[0] == 503  # MAIL but no RCPT
        assert client.command(b"DATA x")[0] in (501, 503)
        assert client.command(b"RSET")[0] == 250
        assert client.command(b"BDAT 10 LAST")[0] in (500, 502)  # CHUNKING not offered
        assert client.command(b"QUIT")[0] == 221
    finally:
        client.close()
    assert upstream.received == []


def test_1000_recipients(proxy: ProxyInThread, upstream: RecordingUpstream):
    rcpts = [f"r{i}@example.org" for i in range(1000)]
    started = time.monotonic()
    with smtplib.SMTP(proxy.host, proxy.port, timeout=60) as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        codes = [client.rcpt(r)[0] for r in rcpts]
        # RFC 5321 4.5.3.1.8: at least 100 must be taken; more may get 452.
        assert all(c == 250 for c in codes[:100]) and set(codes) <= {250, 452}
        code, _ = client.data(PLAIN)
        assert code == 250
    assert time.monotonic() - started < 30
    [got] = upstream.received
    assert len(got.rcpt_tos) == codes.count(250)


def test_pipelined_flood_is_answered_in_order(proxy: ProxyInThread):
    client = Raw(proxy.host, proxy.port)
    try:
        assert client.command(b"EHLO client.test")[0] == 250
        client.send(b"NOOP\r\n" * 2000)
        codes = [client.reply()[0] for _ in range(2000)]
        assert set(codes) == {250}
    finally:
        client.close()
    assert send_normal(proxy) < RESPONSIVE


def _dribble(host: str, port: int, data: bytes, stop: threading.Event, pause: float) -> str:
    """Send ``data`` a byte at a time; what became of the connection."""
    try:
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.recv(1000)  # greeting
            for byte in data:
                if stop.is_set():
                    return "stopped"
                sock.sendall(bytes([byte]))
                time.sleep(pause)
            sock.settimeout(10)
            return "answered" if sock.recv(1000) else "closed"
    except OSError as exc:
        return f"closed: {exc}"


def test_slow_loris_clients_do_not_block_a_normal_one(proxy: ProxyInThread):
    stop = threading.Event()
    endless = b"EHLO " + b"x" * 10_000  # never finishes within the test
    with ThreadPoolExecutor(40) as pool:
        dribblers = [
            pool.submit(_dribble, proxy.host, proxy.port, endless, stop, 0.05) for _ in range(30)
        ]
        # A slow but complete command is answered.
        slow_ehlo = pool.submit(_dribble, proxy.host, proxy.port, b"EHLO slow.test\r\n", stop, 0.1)
        time.sleep(1.0)
        try:
            took = [send_normal(proxy) for _ in range(3)]
            assert max(took) < RESPONSIVE, took
            assert slow_ehlo.result(timeout=30) == "answered"
            # client_timeout (4 s here) bounds a command that never ends: the dribblers
            # are disconnected although they keep sending.
            results = [d.result(timeout=30) for d in dribblers]
        finally:
            stop.set()
    assert all(r.startswith("closed") for r in results), results


def test_an_idle_client_is_disconnected_after_client_timeout(proxy: ProxyInThread):
    client = Raw(proxy.host, proxy.port, timeout=20)
    try:
        assert client.command(b"EHLO client.test")[0] == 250
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            client.reply()  # nothing sent: the proxy closes after client_timeout
        assert 3 < time.monotonic() - started < 15
    finally:
        client.close()


def test_200_concurrent_connections(proxy: ProxyInThread, upstream: RecordingUpstream):
    """200 open connections, 100 of them sending at once, and a normal client on top."""
    idle = []
    try:
        for _ in range(100):
            conn = Raw(proxy.host, proxy.port, timeout=30)
            assert conn.greeting[0] == 220
            assert conn.command(b"EHLO idle.test")[0] == 250
            idle.append(conn)

        def one(i: int) -> float:
            return send_normal(proxy, f"r{i}@example.org")

        with ThreadPoolExecutor(100) as pool:
            busy = [pool.submit(one, i) for i in range(100)]
            time.sleep(0.2)
            took = send_normal(proxy)
            times = [b.result(timeout=120) for b in busy]
        assert took < RESPONSIVE, took
        assert max(times) < 60, max(times)
        # Every idle connection still answers.
        assert all(conn.command(b"NOOP")[0] == 250 for conn in idle)
    finally:
        for conn in idle:
            conn.close()
    assert len(upstream.received) == 101
