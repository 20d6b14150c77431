"""The IMAP poller: which mail from people still waits for the user's answer.

It reads (never changes) the watched folders and the Sent folder: header
fields and flags only, incrementally by UID with state per (account, folder,
UIDVALIDITY), flag changes through CONDSTORE where offered (else a FLAGS
sweep), IDLE where offered (else the poll interval), and reconnects with
backoff without losing anything — the state lives in the store, committed
batch by batch.

Entry points: :func:`poll_once` (``courtesy poll --once``) and
:func:`run_poller` (beside the proxy in ``courtesy run``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from courtesy.proxy.config import Config, ImapSettings
from courtesy.proxy.headers import (
    MONTHS,
    addresses,
    decode_words,
    first_message_id,
    parse_header_block,
    utc_time,
)
from courtesy.proxy.imap import (
    FetchedHeaders,
    FolderStatus,
    ImapConnectionError,
    ImapError,
    Mailbox,
    describe,
)
from courtesy.proxy.secrets import SecretError
from courtesy.store.base import utcnow
from courtesy.store.contacts import harvest_display_names
from courtesy.store.db import Store, StoreError
from courtesy.store.inbound import (
    ImapFolder,
    SeenMessage,
    apply_flags,
    folder_state,
    ingest_proxy_log,
    location_count,
    location_flags,
    remove_locations,
    reset_folder,
    resolve_answered,
    split_ids,
    store_batch,
)

log = logging.getLogger(__name__)

# Servers drop an IDLE after about 30 minutes (RFC 2177); re-issue it well before.
IDLE_MAX_SECONDS = 25 * 60
# A first sync bigger than this shows a progress bar (on a terminal only).
PROGRESS_THRESHOLD = 2000
# Display names remembered as harvested, so a big sync asks the address book once per sender.
HARVEST_MEMORY = 50_000
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0

SEEN = b"\\Seen"
ANSWERED = b"\\Answered"

# exclude_reason values (stable: the report and the docs name them)
REASON_OWN = "own"
REASON_BOUNCE = "bounce"
REASON_AUTO = "auto-submitted"
REASON_LIST = "list"
REASON_BULK = "bulk"
REASON_NOREPLY = "no-reply"

_NOREPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|noreply|no[-_.]?response|"
    r"bounces?|notifications?|automailer|auto[-_.]?(?:reply|responder|confirm))"
    r"(?:[-_.+].*)?$"
)
_DAEMON = re.compile(r"^(?:mailer[-_.]?daemon|postmaster)(?:[-_.+].*)?$")


# --- reading one message's header fields --------------------------------------------------


# "Mon, 02 Mar 2026 09:15:00 +0100": the form nearly every mail program writes.
_RFC5322_DATE = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+"
    r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s+([+-])(\d{2})(\d{2})(?:\s.*)?$"
)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    match = _RFC5322_DATE.match(value)
    if match is not None and match.group(2).lower() in MONTHS:
        day, month, year, hour, minute, second, sign, oh, om = match.groups()
        offset = int(oh) * 60 + int(om)
        return utc_time(
            int(year),
            MONTHS[month.lower()],
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            -offset if sign == "-" else offset,
        )
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # no UTC time (see utc_time)
        return None


def exclusion(
    fields: dict[str, str], sender: str, own: frozenset[str], *, in_sent: bool = False
) -> str | None:
    """Why a message is not from a person (or is the user's own), or None.

    Checked strongest first: the user's own mail, bounces, auto-replies,
    mailing lists, bulk mail, no-reply senders.
    """
    if in_sent or (sender and sender in own):
        return REASON_OWN
    content_type = fields.get("content-type", "").lower()
    local = sender.split("@", 1)[0] if sender else ""
    if (
        content_type.startswith("multipart/report")
        or "x-failed-recipients" in fields
        or _DAEMON.match(local)
    ):
        return REASON_BOUNCE
    auto = fields.get("auto-submitted", "").strip().lower()
    if (auto and not auto.startswith("no")) or "x-autoreply" in fields or "x-autorespond" in fields:
        return REASON_AUTO
    if fields.get("return-path", "").strip() == "<>":
        return REASON_AUTO  # RFC 3834: automatic responses go out with a null sender
    precedence = fields.get("precedence", "").strip().lower()
    if "list-id" in fields or "list-unsubscribe" in fields or "list-post" in fields:
        return REASON_LIST
    if precedence == "list":
        return REASON_LIST
    if precedence in ("bulk", "junk"):
        return REASON_BULK
    if not sender or _NOREPLY.match(local):
        return REASON_NOREPLY
    return None


@dataclass(slots=True)
class Reading:
    """One fetched message, read: what the store keeps and the display names seen."""

    message: SeenMessage
    names: list[tuple[str, str]]


def read_message(fetched: FetchedHeaders, own: frozenset[str], *, in_sent: bool = False) -> Reading:
    """Turn fetched header fields and flags into what the store keeps."""
    fields = parse_header_block(fetched.header)
    senders = addresses(fields.get("from")) or addresses(fields.get("sender"))
    from_name, from_address = senders[0] if senders else ("", "")
    to = addresses(fields.get("to"))
    cc = addresses(fields.get("cc"))
    to_addresses = [a for _, a in to]
    cc_addresses = [a for _, a in cc]
    role = ""
    if own:
        if not own.isdisjoint(to_addresses):
            role = "to"
        elif not own.isdisjoint(cc_addresses):
            role = "cc"
    message_id = first_message_id(fields.get("message-id"))
    subject = decode_words(fields["subject"]) if "subject" in fields else None
    date = _date(fields.get("date"))
    received = fetched.internaldate or date or utcnow()
    if message_id is not None:
        key = message_id
    else:
        digest = hashlib.sha1(
            "\n".join([from_address, fields.get("date", ""), subject or ""]).encode(
                "utf-8", "surrogatepass"
            )
        ).hexdigest()
        key = f"<{digest}@no-message-id.invalid>"
    reason = exclusion(fields, from_address, own, in_sent=in_sent)
    message = SeenMessage(
        uid=fetched.uid,
        key=key,
        message_id=message_id,
        from_address=from_address[:320],
        from_name=from_name or None,
        to_addresses=to_addresses,
        cc_addresses=cc_addresses,
        user_role=role,
        subject=subject,
        date=date,
        received_at=received,
        in_reply_to=first_message_id(fields.get("in-reply-to")),
        references=[r[:998] for r in split_ids(fields.get("references"))],
        own=reason == REASON_OWN,
        exclude_reason=reason,
        seen=SEEN in fetched.flags,
        answered=ANSWERED in fetched.flags,
    )
    names: list[tuple[str, str]] = []
    if reason is None:
        names = [(a, n) for n, a in (senders[:1] + to + cc) if n and a not in own]
    return Reading(message=message, names=names)


# --- one pass over every folder --------------------------------------------------------


@dataclass
class PollResult:
    """What one pass did; ``courtesy poll --once`` prints it."""

    folders: list[str] = field(default_factory=list)
    fetched: int = 0  # messages whose header fields were fetched
    new: int = 0  # message rows created
    flag_changes: int = 0
    expunged: int = 0
    resynced: list[str] = field(default_factory=list)  # folders whose UIDVALIDITY changed
    answered: int = 0  # messages newly known to be answered
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "folders": self.folders,
            "fetched": self.fetched,
            "new": self.new,
            "flag_changes": self.flag_changes,
            "expunged": self.expunged,
            "resynced": self.resynced,
            "answered": self.answered,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        text = (
            f"{', '.join(self.folders) or 'no folders'}: {self.fetched} fetched, {self.new} new, "
            f"{self.flag_changes} flag change(s), {self.expunged} expunged, "
            f"{self.answered} newly answered"
        )
        if self.resynced:
            text += f"; UIDVALIDITY changed in {', '.join(self.resynced)} (re-synced)"
        return text


BatchHook = Callable[[str, int], None]


class Poller:
    """Syncs folders into the store. One instance per account; not thread-safe."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        progress: bool | None = None,
        on_batch: BatchHook | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if config.imap is None:
            raise ImapError("no [imap] section in the config: nothing to poll")
        self.config = config
        self.settings: ImapSettings = config.imap
        self.store = store
        self.own = config.own_addresses
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.on_batch = on_batch
        self.clock = clock
        # (address, display name) pairs already given to the address book this run.
        self._harvested: set[tuple[str, str]] = set()
        # EXAMINE results of the last sync, by folder: IDLE compares against them.
        self.last_status: dict[str, FolderStatus] = {}

    def folders(self, mailbox: Mailbox) -> list[tuple[str, str]]:
        """(name, role) of every folder to sync: the watched ones, then Sent."""
        wanted = [(name, "watch") for name in self.settings.folders]
        sent = self.settings.sent_folder or mailbox.find_sent_folder()
        if sent and sent not in self.settings.folders:
            wanted.append((sent, "sent"))
        return wanted

    def poll(self, mailbox: Mailbox) -> PollResult:
        began = time.monotonic()
        result = PollResult()
        for name, role in self.folders(mailbox):
            self.sync_folder(mailbox, name, role, result)
            result.folders.append(name)
        with self.store.session() as session:
            ingested = ingest_proxy_log(session)
            if ingested or result.new or result.flag_changes or result.resynced:
                result.answered = resolve_answered(session)
        result.seconds = time.monotonic() - began
        return result

    def sync_folder(self, mailbox: Mailbox, name: str, role: str, result: PollResult) -> None:
        status = mailbox.examine_folder(name)
        self.last_status[name] = status
        now = self.clock()
        with self.store.session() as session:
            folder = folder_state(session, mailbox.account, name, role)
            if folder.uidvalidity != status.uidvalidity:
                if folder.uidvalidity is not None:
                    log.warning(
                        "UIDVALIDITY of %s changed (%s -> %s): re-syncing it",
                        name,
                        folder.uidvalidity,
                        status.uidvalidity,
                    )
                    result.resynced.append(name)
                    reset_folder(session, folder, status.uidvalidity, now)
                else:
                    folder.uidvalidity = status.uidvalidity
            folder_id = folder.id
            old_last = folder.last_uid
            known_modseq = folder.highest_modseq
            stored = location_count(session, folder)
        # New messages: only UIDs above the last one stored.
        new_uids: list[int] = []
        if status.uidnext is None or status.uidnext > old_last + 1 or stored != status.exists:
            new_uids = mailbox.uids_after(old_last)
        if new_uids:
            self._fetch_new(mailbox, name, role, folder_id, new_uids, result)
        # Expunged messages: the count tells whether any are missing. Flags of stored
        # locations are only needed when some were stored before this pass.
        loaded: dict[int, tuple[bool, bool]] | None = None  # None: not read in this pass
        with self.store.session() as session:
            folder = self._folder(session, folder_id)
            if old_last or stored:
                loaded = location_flags(session, folder)
                local_count = len(loaded)
            else:
                local_count = location_count(session, folder)
        if local_count != status.exists and loaded is None:
            with self.store.session() as session:
                loaded = location_flags(session, self._folder(session, folder_id))
        local = loaded if loaded is not None else {}
        if local_count != status.exists:
            server_uids = mailbox.all_uids()
            gone = set(local) - server_uids
            if gone:
                with self.store.session() as session:
                    folder = self._folder(session, folder_id)
                    result.expunged += remove_locations(session, folder, gone, self.clock())
                for uid in gone:
                    local.pop(uid, None)
        # Flag changes of messages stored before this pass.
        old = {uid: flags for uid, flags in local.items() if uid <= old_last}
        fresh_flags: dict[int, frozenset[bytes]] = {}
        if old:
            if mailbox.condstore and known_modseq is not None and status.highest_modseq:
                if status.highest_modseq != known_modseq:
                    changed = [u for u in mailbox.changed_since(known_modseq) if u in old]
                    fresh_flags = mailbox.fetch_flags(changed)
            else:
                fresh_flags = mailbox.fetch_flags(list(old))
        changes = {
            uid: (SEEN in flags, ANSWERED in flags)
            for uid, flags in fresh_flags.items()
            if uid in old and old[uid] != (SEEN in flags, ANSWERED in flags)
        }
        with self.store.session() as session:
            folder = self._folder(session, folder_id)
            if changes:
                result.flag_changes += apply_flags(session, folder, changes, self.clock())
            folder.highest_modseq = status.highest_modseq
            folder.initial_done = True
            folder.synced_at = self.clock()

    def _folder(self, session: Any, folder_id: int) -> ImapFolder:
        folder = session.get(ImapFolder, folder_id)
        if folder is None:  # pragma: no cover - deleted under our feet
            raise ImapError(f"folder state {folder_id} vanished from the store")
        return folder  # type: ignore[no-any-return]

    def _fetch_new(
        self,
        mailbox: Mailbox,
        name: str,
        role: str,
        folder_id: int,
        uids: Sequence[int],
        result: PollResult,
    ) -> None:
        size = self.settings.batch_size
        bar = None
        if self.progress and len(uids) >= PROGRESS_THRESHOLD:
            from tqdm import tqdm

            bar = tqdm(total=len(uids), desc=name, unit="msg", leave=False, file=sys.stderr)
        in_sent = role == "sent"
        done = 0
        # Serial on purpose: a writer thread overlapping the next fetch made the
        # whole sync slower (both sides are Python code fighting for the GIL).
        try:
            for start in range(0, len(uids), size):
                batch = uids[start : start + size]
                readings = [
                    read_message(f, self.own, in_sent=in_sent) for f in mailbox.fetch_headers(batch)
                ]
                result.fetched += len(readings)
                result.new += self._store(folder_id, readings, batch[-1])
                done += len(batch)
                if bar is not None:
                    bar.update(len(batch))
                if self.on_batch is not None:
                    self.on_batch(name, done)
        finally:
            if bar is not None:
                bar.close()

    def _store(self, folder_id: int, readings: list[Reading], last_uid: int) -> int:
        """Commit one batch; returns how many messages were new."""
        with self.store.session() as session:
            folder = self._folder(session, folder_id)
            stored = store_batch(session, folder, [r.message for r in readings], self.clock())
            folder.last_uid = max(folder.last_uid, last_uid)
            names = {p for r in readings for p in r.names} - self._harvested
            if names:
                harvest_display_names(session, sorted(names))
                if len(self._harvested) > HARVEST_MEMORY:
                    self._harvested.clear()
                self._harvested |= names
        return stored.created


# --- entry points ----------------------------------------------------------------------


def poll_once(config: Config, store: Store, *, progress: bool | None = None) -> PollResult:
    """Connect, sync every folder once, resolve answers, disconnect (``courtesy poll --once``).

    Raises ImapError (ImapAuthError, ImapConnectionError...) or SecretError
    with a one-line message when something is wrong.
    """
    poller = Poller(config, store, progress=progress)
    assert config.imap is not None
    with Mailbox(config.imap).connect() as mailbox:
        return poller.poll(mailbox)


Observer = Callable[[str, Any], None]


class PollLoop:
    """The long-running poller: pass, wait (IDLE or interval), repeat; reconnect on failure."""

    def __init__(self, config: Config, store: Store, observer: Observer | None = None) -> None:
        assert config.imap is not None
        self.config = config
        self.settings = config.imap
        self.store = store
        self.observer = observer
        self.poller = Poller(config, store, progress=False)
        self._mailbox: Mailbox | None = None
        self._lock = threading.Lock()

    def _emit(self, event: str, data: Any = None) -> None:
        if self.observer is not None:
            try:
                self.observer(event, data)
            except Exception:
                log.exception("poller observer failed")

    def interrupt(self) -> None:
        """Break a blocking read of the poller thread (called from another thread on stop)."""
        with self._lock:
            mailbox = self._mailbox
        if mailbox is not None:
            mailbox.interrupt()

    def run(self, stop: threading.Event) -> None:
        settings = self.settings
        interval = max(1.0, settings.poll_interval.total_seconds())
        backoff = BACKOFF_FIRST
        while not stop.is_set():
            try:
                if self._mailbox is None:
                    mailbox = Mailbox(settings).connect()
                    with self._lock:
                        self._mailbox = mailbox
                    log.info("IMAP poller connected to %s", describe(settings))
                    self._emit("connected", describe(settings))
                mailbox = self._mailbox
                result = self.poller.poll(mailbox)
                backoff = BACKOFF_FIRST
                if result.fetched or result.flag_changes or result.expunged or result.answered:
                    log.info("IMAP poll: %s", result.summary())
                self._emit("pass", result)
                if stop.is_set():
                    break
                if settings.idle and mailbox.can_idle:
                    first = settings.folders[0]
                    mailbox.wait_for_change(
                        first,
                        min(interval, IDLE_MAX_SECONDS),
                        stop,
                        known=self.poller.last_status.get(first),
                        on_idle=functools.partial(self._emit, "idle", first),
                    )
                else:
                    stop.wait(interval)
            except Exception as exc:
                self._drop()
                if stop.is_set():
                    break
                pause = backoff * random.uniform(0.8, 1.2)
                if isinstance(exc, ImapConnectionError):
                    log.warning("%s; retrying in %.0fs", exc, pause)
                elif isinstance(exc, ImapError | SecretError | StoreError | SQLAlchemyError):
                    log.error("IMAP poller: %s; retrying in %.0fs", exc, pause)
                else:
                    log.exception("IMAP poller failed unexpectedly; retrying in %.0fs", pause)
                self._emit("error", exc)
                stop.wait(pause)
                backoff = min(backoff * 2, BACKOFF_MAX)
        self._drop()
        self._emit("stopped")

    def _drop(self) -> None:
        with self._lock:
            mailbox, self._mailbox = self._mailbox, None
        if mailbox is not None:
            mailbox.close()


async def run_poller(
    config: Config, store: Store, stop: asyncio.Event, *, observer: Observer | None = None
) -> None:
    """Run the poller beside the proxy until ``stop`` is set (``courtesy run``).

    imapclient blocks, so the loop runs in a thread; this coroutine only waits.
    Never raises for IMAP or network trouble: it logs and retries with backoff.
    """
    if config.imap is None:
        return
    loop = PollLoop(config, store, observer)
    flag = threading.Event()
    worker = asyncio.ensure_future(asyncio.to_thread(loop.run, flag))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        flag.set()
        loop.interrupt()
        stopper.cancel()
        await asyncio.wait({worker})
    worker.result()
