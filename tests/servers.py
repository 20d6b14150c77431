"""Real servers for the tests, on loopback: a recording aiosmtpd upstream and the proxy.

Each runs its own asyncio loop in a thread, so test code can drive them with
blocking clients (smtplib, swaks, msmtp) like a user's mail program would.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from courtesy.proxy.app import Running, start
from courtesy.proxy.config import Config, parse_config
from courtesy.proxy.eventloop import new_event_loop
from courtesy.proxy.front import Inspector

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port}")


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``courtesy`` process that finds no config or data of the user's."""
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config-home"),
        "XDG_DATA_HOME": str(tmp_path / "data-home"),
        **extra,
    }
    env.pop("COURTESY_CONFIG", None)
    return env


def run_courtesy(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``courtesy args`` as a real process, to its end; ``env`` defaults to cli_env."""
    return subprocess.run(
        [sys.executable, "-m", "courtesy.proxy.cli", *args],
        input=stdin.decode("utf-8", "surrogateescape") if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(tmp_path),
    )


def start_courtesy_run(
    args: Sequence[str], port: int, *, options: Sequence[str] = (), **popen: Any
) -> subprocess.Popen[str]:
    """``courtesy [options] run args`` as a real process, once something listens on ``port``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "courtesy.proxy.cli", *options, "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
    try:
        wait_port(port, timeout=20)
    except TimeoutError:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"courtesy run did not start:\n{out}\n{err}") from None
    return process


class LoopThread:
    """An asyncio loop in a daemon thread; ``call`` runs a coroutine on it and waits."""

    def __init__(self, name: str) -> None:
        self.loop = new_event_loop()  # the product's loop (uvloop when installed)
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    auth_user: str | None
    tls: bool


@dataclass
class Behaviour:
    """How the recording upstream misbehaves; tests change it, ``reset`` restores it."""

    refuse_rcpts: set[str] = field(default_factory=set)
    mail_reply: str | None = None  # e.g. "421 4.3.2 Service shutting down"
    data_reply: str | None = None
    hang_data: float = 0.0  # seconds to sleep before answering DATA
    drop_in_data: bool = False  # close the connection instead of answering DATA
    users: dict[str, str] = field(default_factory=dict)  # AUTH users; empty: no AUTH


class RecordingHandler:
    def __init__(self, upstream: RecordingUpstream) -> None:
        self.upstream = upstream

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        behaviour = self.upstream.behaviour
        if behaviour.mail_reply:
            if behaviour.mail_reply.startswith("421"):
                asyncio.get_running_loop().call_later(0.05, server.transport.close)
            return behaviour.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender ok at upstream"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.upstream.behaviour.refuse_rcpts:
            return f"550 5.1.1 <{address}>: Recipient address rejected by upstream"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient ok at upstream"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str | None:
        behaviour = self.upstream.behaviour
        if behaviour.drop_in_data:
            assert server.transport is not None
            server.transport.abort()
            return None
        if behaviour.hang_data:
            await asyncio.sleep(behaviour.hang_data)
            if server.transport is None or server.transport.is_closing():
                return None  # the client gave up: nothing was accepted
        if behaviour.data_reply:
            return behaviour.data_reply
        content = envelope.original_content
        assert isinstance(content, bytes)
        auth = session.auth_data
        login = auth.login if isinstance(auth, LoginPassword) else None
        transport = server.transport
        over_tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("sslcontext") is not None
        )
        self.upstream.received.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                content=content,
                mail_options=list(envelope.mail_options),
                auth_user=login.decode() if isinstance(login, bytes) else login,
                tls=over_tls,
            )
        )
        self.upstream.delivered.set()
        return f"250 2.0.0 Ok: queued as U{len(self.upstream.received)}"


class RecordingUpstream:
    """An aiosmtpd server that stores what it receives and misbehaves on request."""

    def __init__(
        self,
        port: int | None = None,
        *,
        tls: str = "none",  # "none" | "starttls" | "tls"
        cert: tuple[Path, Path] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.tls = tls
        self.cert = cert
        self.behaviour = Behaviour()
        self.received: list[Received] = []
        self.delivered = threading.Event()
        self._thread = LoopThread(f"upstream-{self.port}")
        self._server: asyncio.Server | None = None

    def _context(self) -> ssl.SSLContext | None:
        if self.tls == "none":
            return None
        assert self.cert is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        return context

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if self.behaviour.users.get(user) == password:
                return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    def start(self) -> RecordingUpstream:
        context = self._context()

        def factory() -> SMTP:
            return SMTP(
                RecordingHandler(self),
                hostname="upstream.test",
                enable_SMTPUTF8=True,
                data_size_limit=100 * 1024 * 1024,
                tls_context=context if self.tls == "starttls" else None,
                authenticator=self._authenticate,
                auth_require_tls=False,
                auth_required=False,
            )

        async def serve() -> asyncio.Server:
            return await asyncio.get_running_loop().create_server(
                factory,
                "127.0.0.1",
                self.port,
                ssl=context if self.tls == "tls" else None,
                reuse_address=True,
            )

        self._server = self._thread.call(serve())
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:

            async def close() -> None:
                server.close()
                if hasattr(server, "close_clients"):
                    server.close_clients()
                await asyncio.sleep(0.05)

            self._thread.call(close())

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self.received.clear()
        self.delivered.clear()

    def close(self) -> None:
        self.stop()
        self._thread.close()


class ProxyInThread:
    """The real proxy (``courtesy.proxy.app.start``) running in its own loop."""

    def __init__(self, config: Config, inspector: Inspector | None = None) -> None:
        self.config = config
        self._thread = LoopThread("proxy")
        self.running: Running = self._thread.call(start(config, inspector=inspector))
        self.host, self.port = self.running.address

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return self._thread.call(coro, timeout)

    def flush_log(self) -> None:
        self.running.outgoing_log.flush()

    def stop(self) -> None:
        self._thread.call(self.running.stop())
        self._thread.close()


def proxy_config(tmp_path: Path, server: RecordingUpstream | None, **sections: Any) -> Config:
    """A config as a user would write it, pointing at the recording upstream."""
    data: dict[str, Any] = {
        "proxy": {"listen": f"127.0.0.1:{free_port()}"},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "tryout": {"folder": str(tmp_path / "tryout")},
        "api": {"listen": f"127.0.0.1:{free_port()}"},
    }
    if server is not None:
        security = {"none": "none", "starttls": "starttls", "tls": "tls"}[server.tls]
        data["upstream"] = {
            "host": "127.0.0.1",
            "port": server.port,
            "security": security,
            "timeout": "5s",
        }
    for name, table in sections.items():
        if isinstance(table, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **table}
        else:
            data[name] = table
    return parse_config(data)


def make_certificate(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1, made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
