"""Where findings enter the policy: parse once, run the checks, decide.

``evaluate`` is shared by the running proxy and ``courtesy check`` so both
give the same answer for the same message under the same config.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from courtesy.checks.message import NotAMessage, parse_message
from courtesy.checks.model import (
    AddressBook,
    CheckContext,
    Exceptions,
    OutgoingMessage,
    ThreadView,
)
from courtesy.checks.registry import CheckReport, run_checks
from courtesy.proxy.addressbook import CachedAddressBook
from courtesy.proxy.config import Config
from courtesy.proxy.front import Inspector, Transaction, Verdict
from courtesy.proxy.policy import Decision, decide
from courtesy.store.contacts import StoreAddressBook
from courtesy.store.db import Store
from courtesy.store.held import CheckException

# Who was on the earlier messages of a thread, and who wrote them: the inbound
# store (IMAP) and the proxy's own outgoing log.
from courtesy.store.inbound import thread_view

log = logging.getLogger(__name__)

# Larger messages are checked in a worker thread. A typical business mail
# without attachments is 4-30 KB; a crafted one of a few hundred KB can cost
# a noticeable fraction of a second, which must not stall other clients.
INLINE_LIMIT = 64 * 1024

ExceptionSource = Callable[[Session], Exceptions]


@dataclass(frozen=True)
class Evaluation:
    message: OutgoingMessage
    report: CheckReport
    decision: Decision


def own_domains(addresses: frozenset[str]) -> frozenset[str]:
    return frozenset(a.rpartition("@")[2].lower() for a in addresses if "@" in a)


def check_message(
    message: OutgoingMessage,
    config: Config,
    contacts: AddressBook,
    *,
    thread: ThreadView | None = None,
    exceptions: Exceptions | None = None,
) -> tuple[CheckReport, Decision]:
    """Run every enabled check on a parsed message and apply the policy."""
    own = config.own_addresses  # built anew on each read
    context = CheckContext(
        message=message,
        contacts=contacts,
        language=config.language,
        own_addresses=own,
        own_domains=own_domains(own),
        thread=thread or ThreadView(),
        exceptions=exceptions or Exceptions(),
    )
    report = run_checks(context, config.checks)
    for error in report.errors:
        log.error("check %s failed: %s", error.family, error.error)
    return report, decide(report.findings, config, check_failed=bool(report.errors))


def evaluate(
    raw: bytes,
    config: Config,
    contacts: AddressBook,
    *,
    envelope_from: str | None = None,
    envelope_recipients: Sequence[str] | None = None,
) -> Evaluation:
    """Parse ``raw``, run every enabled check and apply the policy (``courtesy check``).

    Raises NotAMessage when the bytes are not a mail message at all.
    """
    message = parse_message(raw, envelope_from, envelope_recipients)
    report, decision = check_message(message, config, contacts)
    return Evaluation(message, report, decision)


def facts_of(message: OutgoingMessage) -> dict[str, object]:
    """What the outgoing log keeps about a parsed message."""
    return {
        "message_id": message.message_id,
        "in_reply_to": message.in_reply_to[0] if message.in_reply_to else None,
        "references": " ".join(message.references) or None,
        "subject": message.subject or None,
        "to": [a.email.lower() for a in message.to],
        "cc": [a.email.lower() for a in message.cc],
        "names": [(a.email, a.name) for a in message.to + message.cc if a.name],
    }


_EXCEPTIONS_SQL = f"SELECT email, code FROM {CheckException.__tablename__}"


class ChecksInspector:
    """The proxy's Inspector: store-backed contacts, thread history, exceptions."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        exception_source: ExceptionSource | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.contacts = CachedAddressBook(StoreAddressBook(store.sessions))
        self.exception_source = exception_source
        self.any_enabled = any(
            getattr(settings, "enabled", True) for settings in config.checks.values()
        )

    def _thread(self, message_ids: Sequence[str]) -> ThreadView:
        if not message_ids:
            return ThreadView()
        with self.store.sessions() as session:
            return thread_view(session, message_ids)

    def _exceptions(self) -> Exceptions:
        """The user's "don't ask again" list, read per message.

        Not cached: ``courtesy exceptions remove`` runs in another process and
        must take effect with the next message. The table is tiny, but an ORM
        session per message cost a seventh of the proxy's time (py-spy under
        bench/relay.py --checks), so the read goes through the address book's
        per-thread autocommit connection.
        """
        if self.exception_source is None:
            return Exceptions()
        reader = getattr(self.contacts.backend, "reader", None)
        if reader is not None:
            with reader() as connection:
                # The driver's own cursor: SQLAlchemy's statement and result
                # machinery cost ten times the query on this tiny table.
                cursor = connection.connection.dbapi_connection.cursor()
                try:
                    cursor.execute(_EXCEPTIONS_SQL)
                    rows = cursor.fetchall()
                finally:
                    cursor.close()
            return Exceptions(frozenset((email, code) for email, code in rows))
        with self.store.sessions() as session:
            return self.exception_source(session)

    def evaluate(self, transaction: Transaction) -> Verdict:
        try:
            message = parse_message(
                transaction.content, transaction.mail_from, transaction.recipients
            )
        except NotAMessage:
            log.warning("message from <%s> has no header block; not checked", transaction.mail_from)
            return Verdict(action=self.config.proxy.on_check_error, check_errors=("parse",))
        ids = tuple(dict.fromkeys(message.in_reply_to + message.references))
        report, decision = check_message(
            message,
            self.config,
            self.contacts,
            thread=self._thread(ids),
            exceptions=self._exceptions(),
        )
        return Verdict(
            action=decision.action,
            findings=report.findings,
            check_errors=tuple(e.family for e in report.errors),
            facts=facts_of(message),
            message=message,
        )

    def close(self) -> None:
        self.contacts.close()

    async def inspect(self, transaction: Transaction) -> Verdict:
        if not self.any_enabled:
            return Verdict()  # every check is off: nothing to parse
        if len(transaction.content) <= INLINE_LIMIT:
            # Checking a normal message is a millisecond of CPU (a thread would
            # not run it sooner under the GIL, and the hop itself cost more than
            # a tenth of the proxy's time); lookups are indexed local reads.
            return self.evaluate(transaction)
        # A big message: parse it in a worker so other clients are not stalled.
        return await asyncio.to_thread(self.evaluate, transaction)


def build_inspector(config: Config, store: Store) -> Inspector:
    from courtesy.store.held import load_exceptions

    return ChecksInspector(config, store, exception_source=load_exceptions)
