"""``courtesy report [-c CONFIG] [--format text|html|json] [--week YYYY-Www] [--send]``.

Prints the weekly report (the current week so far, or ``--week``), or mails
it with ``--send`` the way the schedule does: through upstream, or into
INBOX when ``report.deliver = "imap"``. A manual send is not recorded, so
it never keeps the scheduled report from going out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

from courtesy.proxy.cli import EXIT_OK, UserError, config_from_args
from courtesy.proxy.report import (
    ReportError,
    Week,
    build_report,
    deliver_report,
    refresh_answers,
    render,
    report_mail,
    resolve_zone,
)
from courtesy.store.base import utcnow
from courtesy.store.db import open_store


def cmd_report(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        zone = resolve_zone(config.report.timezone)
        now = utcnow()
        week = Week.parse(args.week) if args.week else Week.containing(now, zone)
        store = open_store(config.store_url)
        try:
            refresh_answers(store)
            report = build_report(
                store,
                week=week,
                zone=zone,
                after=config.unanswered.after,
                language=config.language,
                now=now,
            )
        finally:
            store.close()
        if not args.send:
            color = args.format == "text" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
            sys.stdout.write(render(report, args.format, color=color))
            return EXIT_OK
        recipient = config.report_recipient
        if not recipient:
            raise ReportError("report.to is not set and no own address is known")
        raw = report_mail(report, recipient, now=now)
        via = asyncio.run(_send(config, recipient, raw))
    except ReportError as exc:
        raise UserError(str(exc)) from None
    print(f"report for {week} sent to {recipient} ({via})")
    return EXIT_OK


async def _send(config: Any, recipient: str, raw: bytes) -> str:
    from courtesy.proxy.app import build_upstream

    upstream = build_upstream(config)
    try:
        return await deliver_report(config, upstream, recipient, raw)
    finally:
        await upstream.close()


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], Any]) -> None:
    report = with_config(
        sub.add_parser("report", help="the weekly report: waiting mail, answer times, checks")
    )
    report.add_argument(
        "--format",
        choices=["text", "html", "json"],
        default="text",
        help="text (terminal, default), html (the mail form) or json",
    )
    report.add_argument(
        "--week", metavar="YYYY-Www", help="an ISO week, e.g. 2026-W10 (default: this week)"
    )
    report.add_argument(
        "--send", action="store_true", help="mail it now (text + HTML) instead of printing it"
    )
    report.set_defaults(handler=cmd_report)
