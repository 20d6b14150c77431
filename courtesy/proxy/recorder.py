"""Writing the outgoing log without slowing the SMTP conversation.

The log row is metadata about mail that has already been relayed or safely
held, so it is written behind the reply: a background thread commits rows in
batches. Shutdown flushes what is queued.
"""

from __future__ import annotations

import logging
import queue
import threading
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import getaddresses
from typing import Any

from courtesy.proxy.front import Transaction, Verdict
from courtesy.proxy.relay import Reply
from courtesy.store.db import Store
from courtesy.store.outgoing import OutgoingMessage

log = logging.getLogger(__name__)

_HEADER_PARSER = BytesHeaderParser(policy=default_policy)


def header_facts(content: bytes) -> dict[str, Any]:
    """Message-ID, threading and recipient headers, read from the header block only."""
    end = content.find(b"\r\n\r\n")
    head = content if end < 0 else content[: end + 2]
    try:
        message = _HEADER_PARSER.parsebytes(head)
        to = [a.lower() for _, a in getaddresses([str(v) for v in message.get_all("to", [])]) if a]
        cc = [a.lower() for _, a in getaddresses([str(v) for v in message.get_all("cc", [])]) if a]
        references = " ".join(str(message.get("references", "")).split()) or None
        return {
            "message_id": _clean_id(message.get("message-id")),
            "in_reply_to": _clean_id(message.get("in-reply-to")),
            "references": references,
            "subject": str(message.get("subject", "")) or None,
            "to": to,
            "cc": cc,
        }
    except Exception:  # a broken header must not cost the log row
        log.debug("could not read the headers for the outgoing log", exc_info=True)
        return {"to": [], "cc": []}


def _clean_id(value: object) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:998] or None


class OutgoingLog:
    """Queue of outgoing rows, committed in batches by one thread."""

    def __init__(self, store: Store, batch: int = 200) -> None:
        self.store = store
        self.batch = batch
        self._queue: queue.Queue[OutgoingMessage | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="outgoing-log", daemon=True)
        self._thread.start()

    def record(self, transaction: Transaction, verdict: Verdict, action: str, reply: Reply) -> None:
        facts = verdict.facts or header_facts(transaction.content)
        recipients = list(transaction.recipients)
        to, cc = facts.get("to", []), facts.get("cc", [])
        visible = set(to) | set(cc)
        row = OutgoingMessage(
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
        self._queue.put(row)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
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
                with self.store.session() as session:
                    session.add_all(rows)
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
