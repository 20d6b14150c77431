"""``courtesy poll [-c CONFIG] [--once]``: run the IMAP poller on its own.

``--once`` does one pass and prints what it did and what is awaiting an
answer; without it the poller runs in the foreground until Ctrl-C, as it
does inside ``courtesy run``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any

from courtesy.proxy import eventloop
from courtesy.proxy.cli import EXIT_OK, UserError, config_from_args
from courtesy.proxy.config import Config
from courtesy.proxy.imap import ImapError
from courtesy.store.base import utcnow
from courtesy.store.db import open_store
from courtesy.store.inbound import awaiting_answer


def _config(args: argparse.Namespace) -> Config:
    config = config_from_args(args)
    if config.imap is None:
        where = config.source or "the config"
        raise UserError(f"{where}: no [imap] section, so there is nothing to poll")
    return config


def cmd_poll(args: argparse.Namespace) -> int:
    from courtesy.proxy.poller import poll_once, run_poller

    config = _config(args)
    store = open_store(config.store_url)
    try:
        if not args.once:
            eventloop.run(_run_until_interrupted(config, store, run_poller))
            return EXIT_OK
        try:
            result = poll_once(config, store)
        except ImapError as exc:
            raise UserError(str(exc)) from None
        print(f"{result.summary()} in {result.seconds:.1f}s")
        after = config.unanswered.after
        with store.session() as session:
            waiting = awaiting_answer(session, after=after, now=utcnow())
        print(f"{len(waiting)} message(s) awaiting an answer for longer than {_days(after)}")
        return EXIT_OK
    finally:
        store.close()


def _days(after: Any) -> str:
    hours = after.total_seconds() / 3600
    return f"{hours / 24:g}d" if hours >= 24 else f"{hours:g}h"


async def _run_until_interrupted(config: Config, store: Any, run_poller: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    await run_poller(config, store, stop)


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], Any]) -> None:
    poll = with_config(
        sub.add_parser("poll", help="watch the IMAP folders for mail awaiting an answer")
    )
    poll.add_argument("--once", action="store_true", help="one pass, print a summary, exit")
    poll.set_defaults(handler=cmd_poll)
