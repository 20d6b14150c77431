"""``courtesy held`` and ``courtesy exceptions``: held mail and "don't ask again" by hand.

These work on the store directly, so they also work while ``courtesy run`` is
running (or not at all): a release from here and one by command mail cannot
both go out, the store decides who gets the message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from courtesy.checks.message import NotAMessage, parse_message
from courtesy.proxy.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, config_from_args
from courtesy.proxy.config import Config
from courtesy.proxy.hold import Holder, Outcome
from courtesy.proxy.notices import finding_sentence
from courtesy.store.db import Store, open_store
from courtesy.store.held import (
    HeldMessage,
    HeldState,
    exception_json,
    get_held,
    held_json,
    list_exceptions,
    list_held,
    remove_exception,
)


def _store(config: Config) -> Store:
    return open_store(config.store_url)


def _when(row_time: Any) -> str:
    return str(row_time.astimezone().strftime("%Y-%m-%d %H:%M"))


def _user_error(message: str) -> int:
    print(f"courtesy: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_held_list(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    store = _store(config)
    states = [s.value for s in HeldState] if args.all else [HeldState.HELD.value]
    try:
        with store.sessions() as session:
            for row in list_held(session, states=states):
                if args.json:
                    print(json.dumps(held_json(row), ensure_ascii=False))
                    continue
                codes = ", ".join(str(f.get("code")) for f in row.findings) or "-"
                state = "" if row.state == HeldState.HELD.value else f" [{row.state}]"
                print(
                    f"#{row.id}{state}  {_when(row.held_at)}  {row.envelope_from} -> "
                    f"{', '.join(row.recipients)}  {json.dumps(row.subject or '')}  {codes}"
                )
                if row.release_error and row.state == HeldState.HELD.value:
                    print(f"    last release failed: {row.release_error}")
    finally:
        store.close()
    return EXIT_OK


def _describe(row: HeldMessage, language: str) -> list[str]:
    lines = [
        f"#{row.id} {row.state}",
        f"held at:    {row.held_at.astimezone().isoformat(timespec='seconds')}",
        f"from:       {row.envelope_from}",
        f"to:         {', '.join(row.recipients)}",
        f"subject:    {row.subject or ''}",
        f"message-id: {row.message_id or '-'}",
        f"size:       {row.size} bytes",
    ]
    if row.notice_sent_at is not None:
        lines.append(f"notice:     sent {_when(row.notice_sent_at)}")
    elif row.notice_error:
        lines.append(f"notice:     not delivered ({row.notice_attempts}x): {row.notice_error}")
    else:
        lines.append("notice:     not sent")
    if row.release_error:
        lines.append(f"release:    {row.release_error}")
    if row.closed_at is not None:
        lines.append(f"closed:     {row.state} by {row.closed_by} at {_when(row.closed_at)}")
    if row.upstream_reply:
        lines.append(f"upstream:   {row.upstream_reply}")
    lines.append("findings:")
    lines += [f"- {finding_sentence(f, language)}" for f in row.findings]
    if row.content is not None:
        try:
            new_text = parse_message(row.content, row.envelope_from, row.recipients).new_text
        except NotAMessage:
            new_text = row.content.decode("utf-8", "replace")
        lines.append("new text:")
        lines += [f"  {line}" for line in new_text.strip().splitlines()]
    return lines


def cmd_held_show(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    store = _store(config)
    try:
        with store.sessions() as session:
            row = get_held(session, args.id)
            if row is None:
                return _user_error(f"no held message #{args.id}")
            print("\n".join(_describe(row, config.language)))
    finally:
        store.close()
    return EXIT_OK


def _report(outcome: Outcome) -> int:
    if outcome.result == "missing":
        return _user_error(f"no held message #{outcome.held_id}")
    if outcome.result == "not_held":
        return _user_error(f"#{outcome.held_id} is {outcome.state}, not held")
    if outcome.result == "failed":
        print(f"#{outcome.held_id}: not sent, still held: {outcome.detail}")
        return EXIT_FAILED
    print(f"#{outcome.held_id}: {outcome.result} ({outcome.subject or ''})")
    if outcome.detail:
        print(f"upstream: {outcome.detail}")
    if outcome.refused:
        print(f"refused by upstream: {', '.join(outcome.refused)}")
    return EXIT_OK


def _with_holder(config: Config, action: Callable[[Holder], Any]) -> Outcome:
    from courtesy.proxy.app import build_upstream

    async def run() -> Outcome:
        store = await asyncio.to_thread(_store, config)
        upstream = build_upstream(config)
        try:
            result: Outcome = await action(Holder(store, upstream, config))
            return result
        finally:
            await upstream.close()
            store.close()

    return asyncio.run(run())


def cmd_held_release(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    return _report(_with_holder(config, lambda h: h.release(args.id, by="cli")))


def cmd_held_discard(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    return _report(_with_holder(config, lambda h: h.discard(args.id, by="cli")))


def cmd_exceptions_list(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    store = _store(config)
    try:
        with store.sessions() as session:
            for row in list_exceptions(session):
                if args.json:
                    print(json.dumps(exception_json(row), ensure_ascii=False))
                else:
                    print(f"#{row.id}  {row.email}  {row.code}  ({row.source or '-'})")
    finally:
        store.close()
    return EXIT_OK


def cmd_exceptions_remove(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    store = _store(config)
    try:
        with store.session() as session:
            if not remove_exception(session, args.id):
                return _user_error(f"no exception #{args.id}")
    finally:
        store.close()
    print(f"exception #{args.id} removed")
    return EXIT_OK


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], Any]) -> None:
    held = sub.add_parser("held", help="messages held back by the checks")
    held_sub = held.add_subparsers(dest="held_command", metavar="SUBCOMMAND")
    held_sub.required = True
    lst = with_config(held_sub.add_parser("list", help="list held messages"))
    lst.add_argument("--json", action="store_true", help="one JSON object per message")
    lst.add_argument("--all", action="store_true", help="also released, discarded and expired ones")
    lst.set_defaults(handler=cmd_held_list)
    for name, handler, text in (
        ("show", cmd_held_show, "show one held message and its findings"),
        ("release", cmd_held_release, "send a held message as it is (exit 1 if upstream fails)"),
        ("discard", cmd_held_discard, "drop a held message; it is never sent"),
    ):
        p = with_config(held_sub.add_parser(name, help=text))
        p.add_argument("id", type=int, metavar="ID")
        p.set_defaults(handler=handler)

    exceptions = sub.add_parser("exceptions", help='"don\'t ask again" per contact and check')
    exc_sub = exceptions.add_subparsers(dest="exceptions_command", metavar="SUBCOMMAND")
    exc_sub.required = True
    elst = with_config(exc_sub.add_parser("list", help="list the exceptions"))
    elst.add_argument("--json", action="store_true", help="one JSON object per exception")
    elst.set_defaults(handler=cmd_exceptions_list)
    rm = with_config(exc_sub.add_parser("remove", help="remove an exception: ask again"))
    rm.add_argument("id", type=int, metavar="ID")
    rm.set_defaults(handler=cmd_exceptions_remove)
