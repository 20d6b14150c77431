"""``courtesy run``: wiring config, store, upstream and the SMTP front together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from courtesy.proxy.api import ApiServer, check_service
from courtesy.proxy.commands_mail import CommandMail
from courtesy.proxy.config import Config
from courtesy.proxy.front import Inspector, ProxyHandler, start_front
from courtesy.proxy.hold import Holder, expire_loop
from courtesy.proxy.recorder import OutgoingLog
from courtesy.proxy.relay import SmtpUpstream, TryoutUpstream, Upstream
from courtesy.proxy.secrets import resolve_password
from courtesy.store.db import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class Running:
    """A started proxy; tests and the CLI stop it through :meth:`stop`."""

    config: Config
    store: Store
    upstream: Upstream
    handler: ProxyHandler
    server: asyncio.Server
    outgoing_log: OutgoingLog
    # Hold/release and its periodic upkeep (hold.expire, notice retries).
    holder: Holder | None = None
    upkeep: asyncio.Task[None] | None = None
    # The local check API for the mail-client add-on (None when [api] is off).
    api: ApiServer | None = None
    # The weekly report schedule (None when [report] is off or has no recipient).
    report_task: asyncio.Task[None] | None = None
    # The IMAP poller (None without [imap]) and the event that stops it.
    poller_task: asyncio.Task[None] | None = None
    poller_stop: asyncio.Event | None = None

    @property
    def address(self) -> tuple[str, int]:
        sock = self.server.sockets[0]
        host, port = sock.getsockname()[:2]
        return host, port

    async def stop(self) -> None:
        """Stop listening, let messages in flight finish, then close everything."""
        if self.api is not None:
            await self.api.aclose()
        self.server.close()
        grace = self.config.proxy.shutdown_grace.total_seconds()
        if not await self.handler.wait_idle(grace):
            log.warning(
                "shutdown: %d message(s) still in flight after %.0fs", self.handler.in_flight, grace
            )
        for connection in list(self.handler.connections):
            if connection.transport is not None:
                connection.transport.close()
        await asyncio.sleep(0)  # connection_lost runs: the sessions' upstream goes back
        await self.handler.settle(timeout=10)
        if self.poller_stop is not None and self.poller_task is not None:
            self.poller_stop.set()
            try:
                await asyncio.wait_for(self.poller_task, timeout=15)
            except (TimeoutError, Exception):
                log.warning("the IMAP poller did not stop in time", exc_info=True)
        for task in (self.upkeep, self.report_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.holder is not None:
            await self.holder.aclose()
        await self.upstream.close()
        await asyncio.to_thread(self.outgoing_log.close)
        close = getattr(self.handler.inspector, "close", None)
        if callable(close):
            close()
        self.store.close()


def build_upstream(config: Config) -> Upstream:
    if config.upstream is None:
        return TryoutUpstream(config.tryout_folder)
    password = resolve_password(config.upstream, "upstream", config.upstream.username)
    return SmtpUpstream(config.upstream, password)


def front_tls_context(config: Config) -> ssl.SSLContext | None:
    settings = config.proxy
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return context


async def start(
    config: Config,
    *,
    inspector: Inspector | None = None,
    store: Store | None = None,
) -> Running:
    if store is None:
        store = await asyncio.to_thread(open_store, config.store_url)
    upstream = build_upstream(config)
    outgoing_log = OutgoingLog(store)
    if inspector is None:
        from courtesy.proxy.inspect import build_inspector

        inspector = build_inspector(config, store)
    holder = Holder(store, upstream, config)
    schedule = None
    recipient = config.report_recipient
    if config.report.enabled and not recipient:
        log.info("weekly report off: set report.to (no own address is known)")
    elif config.report.enabled and recipient:
        # Imported only when needed: the report modules are a few MB of a
        # long-running process's memory.
        from courtesy.proxy.schedule import report_schedule

        schedule = report_schedule(config, store, upstream, recipient)
    service = await asyncio.to_thread(check_service, config.api, store, inspector)
    handler = ProxyHandler(
        upstream,
        service.front_inspector,
        config.proxy,
        recorder=outgoing_log,
        disposer=holder,
        commands=CommandMail(holder),
    )
    try:
        server = await start_front(handler, config.proxy, front_tls_context(config))
    except OSError as exc:
        outgoing_log.close()
        store.close()
        raise OSError(
            exc.errno, f"cannot listen on {config.proxy.listen}: {exc.strerror}"
        ) from None
    api = await service.start()
    upkeep = asyncio.get_running_loop().create_task(expire_loop(holder))
    running = Running(config, store, upstream, handler, server, outgoing_log, holder, upkeep, api)
    running.report_task = schedule.start() if schedule is not None else None
    if config.imap is not None:
        from courtesy.proxy.poller import run_poller

        running.poller_stop = asyncio.Event()
        running.poller_task = asyncio.get_running_loop().create_task(
            run_poller(config, store, running.poller_stop)
        )
    return running


def banner(running: Running) -> str:
    host, port = running.address
    lines = [f"courtesy is listening on {host}:{port} (SMTP)"]
    if running.api is not None:
        api_host, api_port = running.api.address
        lines.append(f"check API for the mail-client add-on on http://{api_host}:{api_port}")
    if running.config.tryout_mode:
        lines.append(
            "TRY-OUT MODE: no [upstream] is configured, so nothing is sent. Every message is "
            f"kept in the folder {running.config.tryout_folder}"
        )
    else:
        lines.append(f"relaying to {running.upstream.description}")
    if running.config.imap is not None:
        imap = running.config.imap
        folders = ", ".join(imap.folders)
        lines.append(f"watching {folders} on {imap.host}:{imap.port} for mail awaiting an answer")
    lines.append(f"store: {running.store.url}")
    return "\n".join(lines)


async def serve(
    config: Config,
    *,
    inspector: Inspector | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    running = await start(config, inspector=inspector)
    announce(banner(running))
    # Everything loaded at start (modules, config, check data) lives as long as
    # the process: keep it out of the cyclic collector's scans.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down: finishing messages in flight")
    finally:
        await running.stop()
    log.info("stopped")
