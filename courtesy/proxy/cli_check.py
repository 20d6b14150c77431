"""``courtesy check`` and ``courtesy contacts``: the checks without any server."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from courtesy.checks.message import NotAMessage
from courtesy.checks.model import AddressBook, Contact, Finding, MemoryAddressBook
from courtesy.proxy.addressbook import LayeredAddressBook
from courtesy.proxy.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, config_from_args
from courtesy.proxy.config import Config
from courtesy.proxy.contacts_import import ContactsFormatError, read_contacts
from courtesy.proxy.inspect import evaluate
from courtesy.store.contacts import (
    StoreAddressBook,
    contact_json,
    list_contacts,
    upsert_contacts,
)
from courtesy.store.db import Store, open_store


def _existing_store(config: Config) -> Store | None:
    """The user's store when there is one; ``check`` never creates it."""
    url = config.store_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///")).expanduser()
        if not path.exists():
            return None
    return open_store(url)


@contextmanager
def _progress(total_hint: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal, nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from tqdm import tqdm

    bar = tqdm(desc=total_hint, unit=" records", file=sys.stderr, leave=False)

    def update(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _load_contact_files(paths: list[str]) -> tuple[list[Contact], list[str]]:
    contacts: list[Contact] = []
    errors: list[str] = []
    for name in paths:
        path = Path(name)
        try:
            result = read_contacts(path)
        except OSError as exc:
            errors.append(f"{name}: cannot read it: {exc.strerror}")
            continue
        except ContactsFormatError as exc:
            errors.append(f"{name}: {exc}")
            continue
        contacts.extend(result.contacts)
        errors.extend(f"{name}: {e}" for e in result.errors)
    return contacts, errors


def _finding_text(finding: Finding) -> str:
    text = f"  [{finding.severity}] {finding.code}: {finding.message}"
    extras = []
    if finding.evidence:
        extras.append(f"evidence: {finding.evidence!r}")
    if finding.suggestion:
        extras.append(f"suggestion: {finding.suggestion}")
    if extras:
        text += f" ({'; '.join(extras)})"
    return text


def cmd_check(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    extra, contact_errors = _load_contact_files(args.contacts or [])
    for error in contact_errors:
        print(f"courtesy: warning: {error}", file=sys.stderr)
    books: list[AddressBook] = [MemoryAddressBook(extra)]
    store = _existing_store(config)
    store_book = StoreAddressBook(store.sessions) if store is not None else None
    if store_book is not None:
        books.append(store_book)
    contacts = LayeredAddressBook(*books)

    status = EXIT_OK
    try:
        for name in args.files:
            try:
                raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
            except OSError as exc:
                print(f"courtesy: error: {name}: cannot read it: {exc.strerror}", file=sys.stderr)
                status = EXIT_USAGE
                continue
            try:
                result = evaluate(raw, config, contacts)
            except NotAMessage:
                print(f"courtesy: error: {name}: not a mail message", file=sys.stderr)
                status = EXIT_USAGE
                continue
            action = result.decision.action
            if action != "relay" and status == EXIT_OK:
                status = EXIT_FINDINGS
            if args.json:
                record: dict[str, Any] = {
                    "file": name,
                    "action": action,
                    "findings": [f.to_json() for f in result.report.findings],
                }
                print(json.dumps(record, ensure_ascii=False), flush=True)
            else:
                print(f"{name}: {action}")
                for finding in result.report.findings:
                    print(_finding_text(finding))
                for failed in result.report.errors:
                    print(f"  [error] check {failed.family} failed: {failed.error}")
    finally:
        if store_book is not None:
            store_book.close()
        if store is not None:
            store.close()
    return status


def cmd_contacts_import(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    path = Path(args.file)
    try:
        with _progress(f"reading {path.name}") as progress:
            result = read_contacts(path, progress=progress)
    except OSError as exc:
        print(f"courtesy: error: {path}: cannot read it: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except ContactsFormatError as exc:
        print(f"courtesy: error: {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for error in result.errors:
        print(f"courtesy: warning: {path}: {error}", file=sys.stderr)
    store = open_store(config.store_url)
    try:
        total = len(result.contacts)
        with _progress("storing") as progress, store.session() as session:
            created, updated = upsert_contacts(
                session, result.contacts, progress=lambda done: progress(done, total)
            )
    finally:
        store.close()
    print(
        f"{path}: {result.format}: {created} new, {updated} updated, "
        f"{total - created - updated} unchanged, {len(result.errors)} broken, "
        f"{result.skipped} without an address"
    )
    return EXIT_USAGE if result.errors and not result.contacts else EXIT_OK


def cmd_contacts_list(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    store = open_store(config.store_url)
    try:
        with store.sessions() as session:
            for contact in list_contacts(session):
                if args.json:
                    print(json.dumps(contact_json(contact), ensure_ascii=False))
                else:
                    extra = f" ({contact.salutation})" if contact.salutation else ""
                    print(f"{contact.name}{extra} <{', '.join(contact.emails)}> [{contact.source}]")
    finally:
        store.close()
    return EXIT_OK


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], Any]) -> None:
    check = with_config(
        sub.add_parser(
            "check",
            help="tell what would happen to messages, without any server",
            description="Run the checks on .eml files ('-' reads stdin). Exit status: 0 when "
            "every message would be relayed, 1 when one would be held or rejected, 2 on an "
            "input error.",
        )
    )
    check.add_argument(
        "--contacts",
        action="append",
        metavar="FILE",
        help="an address book (vCard or CSV) for this run only; repeatable",
    )
    check.add_argument("--json", action="store_true", help="one JSON object per file")
    check.add_argument("files", nargs="+", metavar="FILE.eml")
    check.set_defaults(handler=cmd_check)

    contacts = sub.add_parser("contacts", help="the address book")
    contacts_sub = contacts.add_subparsers(dest="contacts_command", metavar="SUBCOMMAND")
    contacts_sub.required = True
    imp = with_config(
        contacts_sub.add_parser(
            "import", help="import a vCard or CSV (Google, Outlook, Thunderbird) file"
        )
    )
    imp.add_argument("file", metavar="FILE")
    imp.set_defaults(handler=cmd_contacts_import)
    lst = with_config(contacts_sub.add_parser("list", help="list the contacts"))
    lst.add_argument("--json", action="store_true", help="one JSON object per contact")
    lst.set_defaults(handler=cmd_contacts_list)
