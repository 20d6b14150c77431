"""Writing the outgoing log without slowing the SMTP conversation.

The log row is metadata about mail that has already been relayed or safely
held, so it is written behind the reply: a background thread commits rows in
batches. Shutdown flushes what is queued.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from email.header import decode_header, make_header
from typing import Any

from sqlalchemy import insert

from courtesy.proxy.front import Transaction, Verdict
from courtesy.proxy.relay import Reply
from courtesy.store.base import utcnow
from courtesy.store.contacts import harvest_display_names
from courtesy.store.db import Store
from courtesy.store.outgoing import OutgoingMessage

log = logging.getLogger(__name__)

_WANTED = frozenset({"message-id", "in-reply-to", "references", "subject", "to", "cc"})


def _header_fields(content: bytes) -> dict[str, str]:
    """The few header fields the log needs, unfolded; first occurrence wins."""
    end = content.find(b"\r\n\r\n")
    head = (content if end < 0 else content[:end]).decode("utf-8", "replace")
    fields: dict[str, str] = {}
    name: str | None = None
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t"):
            if name is not None:
                fields[name] += " " + line.strip()
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if colon and key in _WANTED and key not in fields:
            name = key
            fields[key] = value.strip()
        else:
            name = None
    return fields


# An address in angle brackets, or a bare one; quoted display names are skipped.
_ADDRESS = re.compile(r'"(?:[^"\\]|\\.)*"|<([^<>\s]+@[^<>\s]+)>|([^\s<>,;:"()]+@[^\s<>,;:"()]+)')


def _addresses(value: str) -> list[str]:
    """Lower-cased addresses of an address-list header (for the log, not for sending)."""
    if "@" not in value:
        return []
    found = []
    for match in _ADDRESS.finditer(value):
        address = match.group(1) or match.group(2)
        if address:
            found.append(address.lower())
    return found


def header_facts(content: bytes) -> dict[str, Any]:
    """Message-ID, threading and recipient headers, read from the header block only.

    A hand-rolled scan rather than the email package: it runs for every
    relayed message and only needs six fields (see bench/relay.py).
    """
    try:
        fields = _header_fields(content)
        to = _addresses(fields.get("to", ""))
        cc = _addresses(fields.get("cc", ""))
        return {
            "message_id": _clean_id(fields.get("message-id")),
            "in_reply_to": _clean_id(fields.get("in-reply-to")),
            "references": " ".join(fields.get("references", "").split()) or None,
            "subject": _decoded(fields.get("subject")),
            "to": to,
            "cc": cc,
        }
    except Exception:  # a broken header must not cost the log row
        log.debug("could not read the headers for the outgoing log", exc_info=True)
        return {"to": [], "cc": []}


def _decoded(value: str | None) -> str | None:
    if not value:
        return None
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(str(value)))) or None
    except (ValueError, LookupError):
        return str(value) or None


def _clean_id(value: object) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:998] or None


class OutgoingLog:
    """Queue of outgoing rows, committed in batches by one thread."""

    def __init__(self, store: Store, batch: int = 500, gather: float = 0.05) -> None:
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
                    session.execute(insert(OutgoingMessage), rows)
                    if names:
                        harvest_display_names(session, names)
            except Exception:
                log.exception("could not write %d outgoing log rows", len(rows))
            for _ in rows:
                self._queue.task_done()
            if stop:
                return

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
