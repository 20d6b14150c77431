"""Writing the outgoing log without slowing the SMTP conversation.

The log row is metadata about mail that has already been relayed or safely
held, so it is written behind the reply: a background thread commits rows in
batches, gathered for a quarter of a second (one commit and fsync for a
burst instead of one per message: bench/relay.py). Shutdown flushes what is
queued; a crash can lose at most that quarter second of log rows, never mail.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, cast

from sqlalchemy import Table

from courtesy.proxy.front import Transaction, Verdict
from courtesy.proxy.headers import (
    addresses,
    decode_words,
    first_message_id,
    header_block,
    parse_header_block,
)
from courtesy.proxy.relay import Reply
from courtesy.store.base import utcnow
from courtesy.store.contacts import harvest_display_names
from courtesy.store.db import Store, log_failure
from courtesy.store.inbound import bulk_insert, split_ids
from courtesy.store.outgoing import OutgoingMessage

log = logging.getLogger(__name__)

_OUTGOING = cast(Table, OutgoingMessage.__table__)


def header_facts(content: bytes) -> dict[str, Any]:
    """Message-ID, threading and recipient headers, read from the header block only.

    The same fast scan the IMAP poller uses, so Message-IDs in the outgoing
    log and in the inbound store are written alike and match.
    """
    try:
        fields = parse_header_block(header_block(content))
        references = split_ids(fields.get("references"))
        subject = fields.get("subject")
        return {
            "message_id": first_message_id(fields.get("message-id")),
            "in_reply_to": first_message_id(fields.get("in-reply-to")),
            "references": " ".join(references) or None,
            "subject": decode_words(subject) if subject else None,
            "to": [address for _, address in addresses(fields.get("to"))],
            "cc": [address for _, address in addresses(fields.get("cc"))],
        }
    except Exception:  # a broken header must not cost the log row
        log.debug("could not read the headers for the outgoing log", exc_info=True)
        return {"to": [], "cc": []}


class OutgoingLog:
    """Queue of outgoing rows, committed in batches by one thread."""

    def __init__(self, store: Store, batch: int = 1000, gather: float = 0.25) -> None:
        self.store = store
        self.batch = batch
        self.gather = gather
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._names: list[tuple[str, str]] = []
        self._names_lock = threading.Lock()
        # (address, display name) pairs already harvested by this process: the
        # same correspondents recur, and looking them up again costs a query.
        self._harvested: set[tuple[str, str]] = set()
        self._thread = threading.Thread(target=self._run, name="outgoing-log", daemon=True)
        self._thread.start()

    def record(self, transaction: Transaction, verdict: Verdict, action: str, reply: Reply) -> None:
        facts = verdict.facts or header_facts(transaction.content)
        recipients = list(transaction.recipients)
        to, cc = facts.get("to", []), facts.get("cc", [])
        visible = set(to) | set(cc)
        row = dict(
            created_at=utcnow(),
            message_id=facts.get("message_id"),
            in_reply_to=facts.get("in_reply_to"),
            references=facts.get("references"),
            envelope_from=transaction.mail_from,
            recipients=recipients,
            to_addresses=to,
            cc_addresses=cc,
            to_count=len(to),
            cc_count=len(cc),
            bcc_count=len([r for r in recipients if r.lower() not in visible]),
            subject=facts.get("subject"),
            size=len(transaction.content),
            action=action,
            upstream_reply=str(reply),
            findings=[f.to_json() for f in verdict.findings],
            check_errors=list(verdict.check_errors),
            auth_user=transaction.auth_user,
        )
        names = facts.get("names")
        if names:
            with self._names_lock:
                for pair in names:
                    if pair not in self._harvested:
                        self._harvested.add(pair)
                        self._names.append(pair)
                if len(self._harvested) > 100_000:
                    self._harvested.clear()
        self._queue.put(row)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is not None:
                # Let a burst gather: one commit (and fsync) for many rows.
                time.sleep(self.gather)
            if first is None:
                self._queue.task_done()
                return
            rows = [first]
            stop = False
            while len(rows) < self.batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    self._queue.task_done()
                    break
                rows.append(item)
            try:
                with self._names_lock:
                    names, self._names = self._names, []
                with self.store.session() as session:
                    bulk_insert(session, _OUTGOING, rows)
                    if names:
                        harvest_display_names(session, names)
            except Exception as exc:
                log_failure(log, exc, "could not write %d outgoing log rows", len(rows))
            for _ in rows:
                self._queue.task_done()
            if stop:
                return

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
