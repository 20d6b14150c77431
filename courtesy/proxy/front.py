"""The SMTP front that mail clients talk to (aiosmtpd).

A thin protocol edge: MAIL and RCPT are passed to upstream as they arrive so
the client hears upstream's own answers; DATA is inspected once, then relayed
(the client gets upstream's reply) or handed to the hold/reject path. A 250
for DATA is said only after upstream accepted the message or the held copy is
committed; anything that goes wrong on the way becomes a 4xx the client will
retry.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import socket
import ssl
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from courtesy.checks.model import Finding, OutgoingMessage
from courtesy.proxy.config import ProxySettings, is_loopback
from courtesy.proxy.passwords import verify_password
from courtesy.proxy.relay import (
    Credentials,
    Reply,
    Upstream,
    UpstreamAuthFailed,
    UpstreamConnection,
    UpstreamUnavailable,
)
from courtesy.proxy.secrets import Secret
from courtesy.store.db import log_failure, store_fault

log = logging.getLogger(__name__)

ActionName = Literal["relay", "hold", "reject"]


@dataclass(frozen=True)
class Verdict:
    """What the checks and the policy decided for one message."""

    action: ActionName = "relay"
    findings: tuple[Finding, ...] = ()
    check_errors: tuple[str, ...] = ()
    # Parsed header facts for the outgoing log (message_id, subject, to/cc...).
    facts: dict[str, Any] = field(default_factory=dict)
    # Set when an earlier decision (override) lets this message through.
    override: bool = False
    # The message as it goes on when the inspector changed it (a header removed); None: as sent.
    content: bytes | None = None
    # The message as the checks parsed it (None when they did not), for work after the
    # verdict that needs the same parse (the reject override key).
    message: OutgoingMessage | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Transaction:
    """One message as the client handed it over."""

    mail_from: str
    recipients: tuple[str, ...]
    content: bytes
    auth_user: str | None
    peer: str
    # The client's AUTH passthrough credentials, for mail sent later on its behalf
    # (release, notices); never stored.
    credentials: Credentials | None = field(default=None, repr=False)


class Inspector(Protocol):
    """Runs the checks and the policy on a message (the seam where findings enter)."""

    async def inspect(self, transaction: Transaction) -> Verdict: ...


class Disposer(Protocol):
    """Does what the verdict says for hold and reject; returns the client's reply."""

    async def hold(self, transaction: Transaction, verdict: Verdict) -> Reply: ...

    async def reject(self, transaction: Transaction, verdict: Verdict) -> Reply: ...

    async def overridden(self, transaction: Transaction, verdict: Verdict) -> bool:
        """True when a rejected message is sent again within the override window."""
        ...


class CommandHandler(Protocol):
    """Command mail (release+ID+TOKEN@courtesy.invalid ...): executed, never relayed."""

    def rcpt(self, envelope: Envelope, address: str) -> str | None:
        """The RCPT answer for a command address; None when the address is not one."""
        ...

    def wants(self, transaction: Transaction) -> bool: ...

    async def execute(self, transaction: Transaction) -> Reply: ...


class OutgoingRecorder(Protocol):
    def record(
        self, transaction: Transaction, verdict: Verdict, action: str, reply: Reply
    ) -> None: ...


class ProxySession(Session):
    """aiosmtpd's session plus the upstream connection that belongs to it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.upstream: UpstreamConnection | None = None
        self.credentials: Credentials | None = None
        self.auth_user: str | None = None
        self.smtputf8 = False


_SIMPLE_PATH = re.compile(r"\s*<([^<>\s\"\\(),;:\[\]]*)>(.*)", re.DOTALL)


class ProxySMTP(SMTP):
    """aiosmtpd's protocol with our session type, a hook for lost connections,
    and two hot paths made cheaper.

    aiosmtpd parses every MAIL/RCPT path with the email package's RFC 5322
    header parser and reads DATA one line per await; for the common case a
    regular expression and a chunked read do the same work several times
    faster (measured in bench/relay.py). Anything unusual takes aiosmtpd's
    own code.
    """

    def __init__(self, handler: ProxyHandler, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            # We deliberately allow AUTH without TLS on loopback only.
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            super().__init__(handler, **kwargs)
        self._proxy_handler = handler

    def _create_session(self) -> Session:
        return ProxySession(self.loop)

    # While a message is being uploaded, arriving bytes count as activity: a
    # long upload from a slow link must not hit client_timeout. Between
    # commands the timeout still runs per command, as aiosmtpd does it.
    _receiving_data = False

    def data_received(self, data: bytes) -> None:
        if self._receiving_data:
            self._reset_timeout()
        super().data_received(data)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_PATH.match(arg)
        if match is not None and match.group(1).isascii():
            address = match.group(1)
            local, _, _ = address.rpartition("@")
            if self.local_part_limit and len(local) > self.local_part_limit:
                return None, None
            return address, match.group(2)
        result: tuple[str | None, str | None] = super()._getaddr(arg)
        return result

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._receiving_data = True
        try:
            content = await self._read_data()
        finally:
            self._receiving_data = False
        if content is None:
            await self.push("552 5.3.4 Error: Too much mail data")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self.envelope.content = content
        self.envelope.original_content = content
        try:
            status = await self._call_handler_hook("DATA")
        finally:
            # Also when the hook raised (handle_exception answers 451): the
            # transaction is over either way, and the next MAIL must not get
            # "503 nested MAIL" (tests/proxy/test_store_faults.py).
            self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> bytes | None:
        """The message up to <CRLF>.<CRLF>, dot-unstuffed; None when over the size limit.

        Reads in the chunks the socket delivers, splitting only where a line
        ends in ".": bytes after the terminator stay in the reader for the
        next (pipelined) command.
        """
        reader = self._reader
        limit = self.data_size_limit
        pieces: list[bytes] = []
        size = 0
        too_much = False

        def take(piece: bytes) -> None:
            nonlocal size, too_much
            size += len(piece)
            if limit and size > limit and not too_much:
                too_much = True
                pieces.clear()  # keep reading to the end, but keep nothing
            if not too_much:
                pieces.append(piece)

        at_line_start = True  # right after the DATA command's CRLF
        while True:
            try:
                piece = await reader.readuntil(b".\r\n")
            except asyncio.LimitOverrunError as exc:
                piece = await reader.read(exc.consumed)
                if not piece:
                    raise ConnectionResetError("connection closed during DATA") from None
                take(piece)
                at_line_start = piece.endswith(b"\r\n")
                continue
            body = piece[:-3]
            if (not body and at_line_start) or body.endswith(b"\r\n"):
                take(body)  # "." alone on a line: the end of the message
                break
            take(piece)
            at_line_start = True
        if too_much:
            return None
        raw = b"".join(pieces)
        # Transparency (RFC 5321 4.5.2): a leading dot on a line was doubled.
        if raw.startswith(b"."):
            raw = raw[1:]
        return raw.replace(b"\r\n.", b"\r\n")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._proxy_handler.connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        session = self.session
        self._proxy_handler.connections.discard(self)
        super().connection_lost(error)
        if isinstance(session, ProxySession):
            self._proxy_handler.forget(session)


class ProxyHandler:
    """aiosmtpd handler: every hook is a thin step on the way upstream."""

    def __init__(
        self,
        upstream: Upstream,
        inspector: Inspector,
        settings: ProxySettings,
        *,
        disposer: Disposer | None = None,
        recorder: OutgoingRecorder | None = None,
        commands: CommandHandler | None = None,
    ) -> None:
        self.upstream = upstream
        self.inspector = inspector
        self.settings = settings
        self.disposer = disposer
        self.commands = commands
        self.recorder = recorder
        self.connections: set[ProxySMTP] = set()
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: set[asyncio.Task[None]] = set()

    # -- connection bookkeeping -------------------------------------------------

    def forget(self, session: ProxySession) -> None:
        """Give the session's upstream connection back when the client goes away."""
        connection, session.upstream = session.upstream, None
        if connection is not None:
            task = asyncio.get_running_loop().create_task(self._release(connection))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def settle(self, timeout: float) -> None:
        """Wait until the upstream connections of departed clients are given back.

        ``forget`` hands them back in the background; shutdown closes the pool
        only after, or a connection still on its way back would stay open.
        """
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)

    async def _release(self, connection: UpstreamConnection) -> None:
        try:
            await self.upstream.release(connection)
        except Exception:  # releasing is best effort; the connection is dropped
            log.debug("releasing an upstream connection failed", exc_info=True)

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def handle_exception(self, error: Exception) -> str:
        """An error anywhere in a hook: the client gets a 4xx and keeps the message.

        A store that is locked, full or gone is an expected fault, logged in one
        line; anything else is a bug and logged with its traceback.
        """
        if store_fault(error) is not None:
            log_failure(log, error, "an SMTP session could not go on")
            return "451 4.3.0 The proxy cannot store the message right now; try again later"
        log_failure(log, error, "unexpected error in the SMTP session")
        return "451 4.3.0 Local error in the proxy; the message was not accepted, try again later"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: ProxySession,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.settings.auth == "none":
            # No AUTH here: do not advertise an empty mechanism list.
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        # aiosmtpd reads commands from a buffered stream one at a time, so
        # pipelined clients are served correctly; say so (RFC 2920).
        if not any(r[4:].upper() == "PIPELINING" for r in responses):
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    # -- AUTH --------------------------------------------------------------------

    async def handle_AUTH(
        self, server: SMTP, session: ProxySession, envelope: Envelope, args: list[str]
    ) -> str | None:
        mechanism = args[0].upper()
        login_password = await self._read_credentials(server, mechanism, args)
        if login_password is None:
            return None  # the client aborted or sent garbage; already answered
        login, password = login_password
        if self.settings.auth == "local":
            stored = self.settings.users.get(login)
            if stored is None or not verify_password(password, stored):
                log.warning("AUTH failed for %r from %s", login, session.peer)
                return "535 5.7.8 Authentication credentials invalid"
        elif self.settings.auth == "passthrough":
            credentials = Credentials(login, Secret(password))
            try:
                connection = await self.upstream.acquire(credentials)
            except UpstreamAuthFailed as exc:
                log.warning("upstream refused AUTH for %r: %s", login, exc.reply)
                return "535 5.7.8 Authentication credentials invalid (upstream refused them)"
            except UpstreamUnavailable as exc:
                return f"454 4.7.0 Temporary authentication failure: {exc.reason}"
            if session.upstream is not None:
                await self._release(session.upstream)
            session.upstream = connection
            session.credentials = credentials
        else:
            return "502 5.5.1 AUTH is not enabled on this proxy"
        session.authenticated = True
        session.auth_user = login
        session.auth_data = login  # type: ignore[assignment]  # aiosmtpd types it None
        log.info("client %s authenticated as %r", session.peer, login)
        return "235 2.7.0 Authentication successful"

    async def _read_credentials(
        self, server: SMTP, mechanism: str, args: list[str]
    ) -> tuple[str, str] | None:
        async def given_or_asked(prompt: str) -> bytes | None:
            """The value sent with the AUTH command, else the answer to a challenge."""
            if len(args) > 1:
                return base64.b64decode(args[1], validate=True)
            answer = await server.challenge_auth(prompt)
            return answer if isinstance(answer, bytes) else None

        try:
            if mechanism == "PLAIN":
                raw = await given_or_asked("")
                if raw is None:
                    return None
                parts = raw.split(b"\x00")
                if len(parts) != 3:
                    await server.push("501 5.5.2 Cannot split the AUTH PLAIN value")
                    return None
                return parts[1].decode("utf-8"), parts[2].decode("utf-8")
            if mechanism == "LOGIN":
                user = await given_or_asked("Username:")
                if user is None:
                    return None
                secret = await server.challenge_auth("Password:")
                if not isinstance(secret, bytes):
                    return None
                return user.decode("utf-8"), secret.decode("utf-8")
        except (binascii.Error, ValueError):
            await server.push("501 5.5.2 Cannot decode the AUTH value")
            return None
        await server.push("504 5.5.4 Unrecognized authentication type")
        return None

    # -- envelope ----------------------------------------------------------------

    async def handle_MAIL(
        self,
        server: SMTP,
        session: ProxySession,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        upstream_options = self._mail_options(session, mail_options)
        for attempt in (1, 2):
            connection = session.upstream
            fresh = connection is None
            try:
                if connection is None:
                    connection = await self.upstream.acquire(session.credentials)
                    session.upstream = connection
                else:
                    # A transaction the client never finished upstream (DATA refused
                    # by our size limit, a dropped DATA): end it before a new one.
                    await connection.rset()
                reply = await connection.mail(
                    address, self._filter_options(connection, upstream_options)
                )
            except UpstreamAuthFailed as exc:
                log.error("upstream refused our AUTH: %s", exc.reply)
                return (
                    "454 4.7.0 The upstream server refused the proxy's credentials; try again later"
                )
            except UpstreamUnavailable as exc:
                session.upstream = None
                if fresh or attempt == 2:
                    log.warning("upstream unavailable at MAIL: %s", exc.reason)
                    return exc.reply().line()
                continue  # a pooled connection had gone stale: once more with a new one
            if reply.ok:
                envelope.mail_from = address
                envelope.mail_options.extend(mail_options)
                session.smtputf8 = "SMTPUTF8" in (o.upper() for o in mail_options)
            elif not connection.usable:
                session.upstream = None
            return reply.line()
        return UpstreamUnavailable("no connection").reply().line()  # pragma: no cover

    @staticmethod
    def _mail_options(session: ProxySession, options: Sequence[str]) -> list[str]:
        return [o for o in options if o.split("=", 1)[0].upper() in ("SIZE", "BODY", "SMTPUTF8")]

    @staticmethod
    def _filter_options(connection: UpstreamConnection, options: Sequence[str]) -> list[str]:
        passed = []
        for option in options:
            name = option.split("=", 1)[0].upper()
            if (name == "BODY" and connection.supports("8bitmime")) or (
                name in ("SIZE", "SMTPUTF8") and connection.supports(name.lower())
            ):
                passed.append(option)
        return passed

    async def handle_RCPT(
        self,
        server: SMTP,
        session: ProxySession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.commands is not None:
            answer = self.commands.rcpt(envelope, address)
            if answer is not None:
                return answer
        connection = session.upstream
        if connection is None:
            return UpstreamUnavailable("connection lost").reply().line()
        try:
            reply = await connection.rcpt(address, [])
        except UpstreamUnavailable as exc:
            session.upstream = None
            return exc.reply().line()
        if reply.ok:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return reply.line()

    async def handle_RSET(self, server: SMTP, session: ProxySession, envelope: Envelope) -> str:
        if session.upstream is not None:
            await session.upstream.rset()
        return "250 OK"

    # -- the message ---------------------------------------------------------------

    async def handle_DATA(self, server: SMTP, session: ProxySession, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        assert isinstance(content, bytes)
        transaction = Transaction(
            mail_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            content=content,
            auth_user=session.auth_user,
            peer=str(session.peer),
            credentials=session.credentials,
        )
        self.in_flight += 1
        self._idle.clear()
        try:
            reply = await self._deliver(session, transaction)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
        return reply.line()

    async def _deliver(self, session: ProxySession, transaction: Transaction) -> Reply:
        if self.commands is not None and self.commands.wants(transaction):
            await self._abandon_upstream(session)
            return await self.commands.execute(transaction)
        try:
            verdict = await self.inspector.inspect(transaction)
        except Exception:
            log.exception("inspecting a message failed; applying on_check_error")
            verdict = Verdict(action=self.settings.on_check_error, check_errors=("inspector",))
        if verdict.content is not None:
            transaction = replace(transaction, content=verdict.content)

        action: str = verdict.action
        if action in ("hold", "reject") and self.disposer is None:
            log.warning(
                "policy says %s (%s) but holding is not available yet; relaying",
                action,
                ", ".join(f.code for f in verdict.findings),
            )
            action = "relay"

        if action == "hold":
            assert self.disposer is not None
            await self._abandon_upstream(session)
            reply = await self.disposer.hold(transaction, verdict)
        elif action == "reject":
            assert self.disposer is not None
            if await self.disposer.overridden(transaction, verdict):
                verdict = replace(verdict, override=True)
                reply = await self._relay(session, transaction)
                action = "override" if reply.ok else "failed"
            else:
                await self._abandon_upstream(session)
                reply = await self.disposer.reject(transaction, verdict)
        else:
            reply = await self._relay(session, transaction)
            if not reply.ok:
                action = "failed"
            elif verdict.override:
                action = "override"
        self._record(transaction, verdict, action, reply)
        return reply

    async def _abandon_upstream(self, session: ProxySession) -> None:
        if session.upstream is not None:
            await session.upstream.rset()

    async def _relay(self, session: ProxySession, transaction: Transaction) -> Reply:
        connection = session.upstream
        if connection is None:
            return UpstreamUnavailable("connection lost before DATA").reply()
        try:
            reply = await connection.data(transaction.content)
        except UpstreamUnavailable as exc:
            session.upstream = None
            log.warning("relaying to upstream failed: %s", exc.reason)
            return exc.reply()
        if not connection.usable:
            session.upstream = None
        return reply

    def _record(
        self, transaction: Transaction, verdict: Verdict, action: str, reply: Reply
    ) -> None:
        log.info(
            "%s from=<%s> rcpts=%d size=%d findings=%s -> %s",
            action,
            transaction.mail_from,
            len(transaction.recipients),
            len(transaction.content),
            ",".join(f.code for f in verdict.findings) or "-",
            reply,
        )
        if self.recorder is not None:
            try:
                self.recorder.record(transaction, verdict, action, reply)
            except Exception:  # the log is not worth a lost reply
                log.exception("recording the outgoing message failed")


def make_server_factory(
    handler: ProxyHandler, settings: ProxySettings, tls_context: ssl.SSLContext | None
) -> Callable[[], ProxySMTP]:
    """The protocol factory for ``loop.create_server``."""
    auth_on = settings.auth != "none"
    loopback = is_loopback(settings.host)
    hostname = settings.hostname or socket.gethostname()

    def factory() -> ProxySMTP:
        return ProxySMTP(
            handler,
            data_size_limit=int(settings.max_message_size),
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="courtesy",
            tls_context=tls_context,
            require_starttls=tls_context is not None and not loopback,
            timeout=settings.client_timeout.total_seconds(),
            auth_required=auth_on,
            auth_require_tls=not loopback,
            auth_exclude_mechanism=() if auth_on else ("PLAIN", "LOGIN"),
        )

    return factory


async def start_front(
    handler: ProxyHandler,
    settings: ProxySettings,
    tls_context: ssl.SSLContext | None = None,
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        make_server_factory(handler, settings, tls_context),
        host=settings.host,
        port=settings.port,
        reuse_address=True,
    )
    return server
