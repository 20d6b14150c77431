"""Mail the IMAP poller has seen, and whether the user answered it.

Three kinds of rows:

- :class:`ImapFolder`: sync state per (account, folder): UIDVALIDITY, the
  highest UID synced and the CONDSTORE mod-sequence, so every poll fetches
  only what is new.
- :class:`InboundMessage`: one row per message per account, keyed by its
  Message-ID, whatever folder or UID it sits at; :class:`InboundLocation`
  maps (folder, UID) to it. A changed UIDVALIDITY or a message moved between
  watched folders re-links locations and never duplicates a message.
- :class:`ReplyRef`: a Message-ID that one of the user's own messages refers
  to (In-Reply-To or References), from the proxy's outgoing log or from the
  user's mail found over IMAP (the Sent folder). Answered-tracking is a join
  on this table, never a scan of References text.

A message is *awaiting an answer* (see PRODUCT.md, "Inbound path") when it is
from a person (not excluded), the user is in To, no reply is known and it is
older than ``unanswered.after``.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from courtesy.checks.message import split_ids as split_ids  # re-exported: one parser
from courtesy.checks.model import Address, ThreadView
from courtesy.store.base import Base, UTCDateTime, rowcount, utcnow
from courtesy.store.held import HeldMessage, HeldState
from courtesy.store.outgoing import OutgoingMessage

# answered_how values
HOW_PROXY = "proxy"  # a reply in the proxy's outgoing log
HOW_SENT = "sent"  # one of the user's own messages found over IMAP (the Sent folder)
HOW_FLAG = "flag"  # the \Answered flag, set by the user's mail client

# Outgoing-log actions that mean the message really left.
SENT_ACTIONS = frozenset({"relay", "override", "release", "released"})

# Rows per round trip in IN (...) lookups and bulk writes.
_CHUNK = 500


class ImapFolder(Base):
    """Sync state of one folder of one account."""

    __tablename__ = "imap_folders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "user@host": the IMAP login and server, so two accounts never mix.
    account: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(512))
    # "watch" (a folder of incoming mail) | "sent"
    role: Mapped[str] = mapped_column(String(8), default="watch")
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    # Highest UID whose headers are stored; the next poll fetches above it.
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    # CONDSTORE HIGHESTMODSEQ at the last sync; None where the server has none.
    highest_modseq: Mapped[int | None] = mapped_column(BigInteger)
    # A first full sync finished: flags seen set later get a time.
    initial_done: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("account", "name"),)


class InboundMessage(Base):
    """A message seen over IMAP: headers that matter, flags, and whether it was answered."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(320))
    # The Message-ID, or a stand-in made from From/Date/Subject when it has none.
    key: Mapped[str] = mapped_column(String(998))
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str | None] = mapped_column(Text)
    # Lower-cased addresses of To and Cc: who was on the message (cc.added_to_thread).
    to_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Where the user stands: "to" (direct recipient), "cc", or "" (neither: Bcc, a list).
    user_role: Mapped[str] = mapped_column(String(3), default="")
    subject: Mapped[str | None] = mapped_column(Text)
    # The Date header; received_at is the server's INTERNALDATE (or Date when missing).
    date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    # Message-IDs of References, space-separated.
    references: Mapped[str | None] = mapped_column(Text)
    # The thread's first message: References[0], else In-Reply-To, else itself.
    thread_id: Mapped[str] = mapped_column(String(998), index=True)
    # Written by the user (one of the own addresses): a reply, never awaiting one.
    own: Mapped[bool] = mapped_column(Boolean, default=False)
    # Not from a person: list, bulk, auto-submitted, bounce, no-reply, own.
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    exclude_reason: Mapped[str | None] = mapped_column(String(32))
    seen: Mapped[bool] = mapped_column(Boolean, default=False)
    # When \Seen was first noticed; None when it was already set at the first sync.
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    flag_answered: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The earliest known answer: when and how (proxy | sent | flag). None: unanswered.
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_how: Mapped[str | None] = mapped_column(String(8))
    first_synced_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when the message left every watched folder (deleted or moved away).
    gone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("account", "key"),
        Index("ix_inbound_messages_awaiting", "excluded", "answered_how", "received_at"),
        # The weekly report: mail received in a week, answers given in a week. Covering
        # the filters, so a week's figures never touch the table (bench/report.py).
        Index(
            "ix_inbound_messages_received_at",
            "received_at",
            "excluded",
            "own",
            "user_role",
            "answered_how",
            "answered_at",
        ),
        Index(
            "ix_inbound_messages_answered_at",
            "answered_at",
            "excluded",
            "own",
            "user_role",
            "received_at",
        ),
    )


class InboundLocation(Base):
    """Where a message sits: (folder, UID) under the folder's current UIDVALIDITY."""

    __tablename__ = "inbound_locations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("imap_folders.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInteger)
    message_pk: Mapped[int] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="CASCADE"), index=True
    )
    seen: Mapped[bool] = mapped_column(Boolean, default=False)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("folder_id", "uid"),)


class ReplyRef(Base):
    """A Message-ID one of the user's own messages refers to, and when it was sent.

    Each source message also gets one row with ``ref`` None when it refers to
    nothing, so a later scan knows it was read.
    """

    __tablename__ = "reply_refs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str | None] = mapped_column(String(998), index=True)
    # True for In-Reply-To (the message it answers), False for References.
    direct: Mapped[bool] = mapped_column(Boolean, default=False)
    replied_at: Mapped[datetime] = mapped_column(UTCDateTime())
    how: Mapped[str] = mapped_column(String(8))
    outgoing_id: Mapped[int | None] = mapped_column(
        ForeignKey("outgoing_messages.id", ondelete="CASCADE"), index=True
    )
    inbound_pk: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="CASCADE"), index=True
    )


# Core tables for bulk inserts: plain executemany, without the ORM's per-row work.
_MESSAGES = cast(Table, InboundMessage.__table__)
_LOCATIONS = cast(Table, InboundLocation.__table__)
_REFS = cast(Table, ReplyRef.__table__)


def _sqlite_time(value: datetime | None) -> str | None:
    """What SQLAlchemy's SQLite DATETIME stores: "YYYY-MM-DD HH:MM:SS.ffffff", in UTC."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # isoformat is C code and pads the year to four digits, as SQLAlchemy does.
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


# JSON lists of plain strings (lower-case addresses): written without the encoder.
# Printable ASCII but for the quote and the backslash: what json.dumps writes unchanged.
_PLAIN_JSON = re.compile(r"[ !#-\[\]-~]*").fullmatch
_JSON_SEP = '", "'


def _sqlite_json(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is list:
        if not value:
            return "[]"
        try:
            joined = _JSON_SEP.join(value)
        except TypeError:  # not all strings
            return json.dumps(value)
        if _PLAIN_JSON(joined) is not None:
            return f'["{joined}"]'
    return json.dumps(value)


def _sqlite_bool(value: Any) -> Any:
    # sqlite3 binds True/False as 1/0 itself; anything else is made 0/1 here.
    if value is None or type(value) is bool:
        return value
    return int(value)


def _sqlite_converter(column: Any) -> Callable[[Any], Any] | None:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _sqlite_time
    if isinstance(kind, JSON):
        return _sqlite_json
    if isinstance(kind, Boolean):
        return _sqlite_bool
    return None


def _insert_tuples(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """executemany of rows given as tuples in ``columns`` order.

    On SQLite the values must already be in the form SQLite stores (see
    _sqlite_converter) and go to the driver as they are; other databases take
    the ordinary Core path.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    quote = connection.dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(k) for k in columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    connection.exec_driver_sql(sql, list(rows))


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows with the same keys in one executemany.

    On SQLite the values are converted here and handed to the driver as
    tuples: SQLAlchemy's per-row parameter processing cost about 90 µs a
    message, more than the rest of a first sync's own work together
    (bench/imap_sync.py). Other databases take the ordinary Core path.
    """
    if not rows:
        return
    if session.connection().dialect.name != "sqlite":
        session.execute(insert(table), list(rows))
        return
    keys = list(rows[0])
    converters = [_sqlite_converter(table.c[k]) for k in keys]
    if all(c is None for c in converters):
        getter = operator.itemgetter(*keys)
        if len(keys) == 1:
            params: list[tuple[Any, ...]] = [(getter(row),) for row in rows]
        else:
            params = [getter(row) for row in rows]
    else:
        plan = [(k, c) for k, c in zip(keys, converters, strict=True)]
        params = [tuple([row[k] if c is None else c(row[k]) for k, c in plan]) for row in rows]
    _insert_tuples(session, table, keys, params)


# --- plain data in ------------------------------------------------------------------


@dataclass(slots=True)
class SeenMessage:
    """What the poller read about one message at one UID (headers and flags)."""

    uid: int
    key: str
    message_id: str | None
    from_address: str
    from_name: str | None
    to_addresses: list[str]
    cc_addresses: list[str]
    user_role: str
    subject: str | None
    date: datetime | None
    received_at: datetime
    in_reply_to: str | None
    references: list[str]
    own: bool
    exclude_reason: str | None
    seen: bool
    answered: bool

    @property
    def thread_id(self) -> str:
        if self.references:
            return self.references[0]
        return self.in_reply_to or self.key


@dataclass
class BatchResult:
    created: int = 0
    linked: int = 0
    created_pks: list[int] = field(default_factory=list)


# --- folder state ---------------------------------------------------------------


def folder_state(session: Session, account: str, name: str, role: str) -> ImapFolder:
    """The stored state of a folder, created empty on first use."""
    row = session.scalars(
        select(ImapFolder).where(ImapFolder.account == account, ImapFolder.name == name)
    ).first()
    if row is None:
        row = ImapFolder(account=account, name=name, role=role, last_uid=0)
        session.add(row)
        session.flush()
    elif row.role != role:
        row.role = role
    return row


def reset_folder(session: Session, folder: ImapFolder, uidvalidity: int, now: datetime) -> int:
    """Forget the folder's UIDs (its UIDVALIDITY changed); messages stay and get re-linked.

    Returns how many locations were dropped. Messages left without a location
    are marked gone until the re-sync finds them again.
    """
    dropped = rowcount(
        session.execute(delete(InboundLocation).where(InboundLocation.folder_id == folder.id))
    )
    _mark_gone(session, folder.account, now)
    folder.uidvalidity = uidvalidity
    folder.last_uid = 0
    folder.highest_modseq = None
    session.flush()
    return dropped


def location_count(session: Session, folder: ImapFolder) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(InboundLocation)
            .where(InboundLocation.folder_id == folder.id)
        )
        or 0
    )


def location_flags(session: Session, folder: ImapFolder) -> dict[int, tuple[bool, bool]]:
    """UID -> (seen, answered) of every stored location of the folder."""
    rows = session.execute(
        select(InboundLocation.uid, InboundLocation.seen, InboundLocation.answered).where(
            InboundLocation.folder_id == folder.id
        )
    )
    return {int(uid): (bool(seen), bool(answered)) for uid, seen, answered in rows}


# --- writing what the poller saw ---------------------------------------------------


# Ids of messages by key; the key list is bound as one expanding parameter, so the
# statement is built and compiled once, not once per key per batch.
_IDS_BY_KEY = select(InboundMessage.key, InboundMessage.id).where(
    InboundMessage.account == bindparam("account"),
    InboundMessage.key.in_(bindparam("keys", expanding=True)),
)


def _ids_by_key(session: Session, account: str, keys: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start : start + _CHUNK])
        found.update(
            (key, pk)
            for key, pk in session.execute(_IDS_BY_KEY, {"account": account, "keys": chunk})
        )
    return found


def store_batch(
    session: Session,
    folder: ImapFolder,
    messages: Sequence[SeenMessage],
    now: datetime,
) -> BatchResult:
    """Store one fetched batch: new messages, new locations, reply references.

    A message whose key is already known (a re-sync, a copy in another
    folder) only gets a new location. Bulk statements, one round trip each:
    a first sync of tens of thousands of messages spends its time here.
    """
    result = BatchResult()
    if not messages:
        return result
    account = folder.account
    keys = list(dict.fromkeys(m.key for m in messages))
    known = _ids_by_key(session, account, keys)
    fresh: dict[str, SeenMessage] = {}
    for message in messages:
        if message.key not in known and message.key not in fresh:
            fresh[message.key] = message
    timed = folder.initial_done
    if fresh:
        # Plain executemany and one lookup for the ids: RETURNING with many rows
        # is row-at-a-time on SQLite and many times slower.
        if session.connection().dialect.name == "sqlite":
            stamp: datetime | str | None = _sqlite_time(now)
            time, as_json = _sqlite_time, _sqlite_json
        else:
            stamp, time, as_json = now, _as_is, _as_is
        _insert_tuples(
            session,
            _MESSAGES,
            _MESSAGE_COLUMNS,
            [_message_row(account, m, stamp, time, as_json) for m in fresh.values()],
        )
        new_keys = list(fresh)
        known.update(_ids_by_key(session, account, new_keys))
        result.created = len(fresh)
        result.created_pks = [known[k] for k in new_keys]
        refs: list[dict[str, object]] = []
        for m in fresh.values():
            if m.own:
                at = m.date or m.received_at
                for row in _ref_rows(m.in_reply_to, m.references, at, HOW_SENT):
                    row["inbound_pk"] = known[m.key]
                    refs.append(row)
        if refs:
            bulk_insert(session, _REFS, refs)
    relinked = [known[k] for k in keys if k not in fresh]
    if relinked:
        # Back in a watched folder (moved, or re-synced after a UIDVALIDITY change).
        for start in range(0, len(relinked), _CHUNK):
            session.execute(
                update(InboundMessage)
                .where(
                    InboundMessage.id.in_(relinked[start : start + _CHUNK]),
                    InboundMessage.gone_at.is_not(None),
                )
                .values(gone_at=None)
            )
        result.linked = len(relinked)
    folder_id = folder.id
    _insert_tuples(
        session,
        _LOCATIONS,
        _LOCATION_COLUMNS,
        [(folder_id, m.uid, known[m.key], m.seen, m.answered) for m in messages],
    )
    if timed:
        # Flags already set on mail that arrived since the last sync: set just now.
        flagged = [known[m.key] for m in fresh.values() if m.seen or m.answered]
        for start in range(0, len(flagged), _CHUNK):
            ids = flagged[start : start + _CHUNK]
            session.execute(
                update(InboundMessage)
                .where(InboundMessage.id.in_(ids), InboundMessage.seen)
                .values(seen_at=now)
                .execution_options(synchronize_session=False)
            )
            session.execute(
                update(InboundMessage)
                .where(InboundMessage.id.in_(ids), InboundMessage.flag_answered)
                .values(flag_answered_at=now)
                .execution_options(synchronize_session=False)
            )
    folder.last_uid = max(folder.last_uid, *(m.uid for m in messages))
    return result


_MESSAGE_COLUMNS = (
    "account",
    "key",
    "message_id",
    "from_address",
    "from_name",
    "to_addresses",
    "cc_addresses",
    "user_role",
    "subject",
    "date",
    "received_at",
    "in_reply_to",
    "references",
    "thread_id",
    "own",
    "excluded",
    "exclude_reason",
    "seen",
    "flag_answered",
    "first_synced_at",
)
_LOCATION_COLUMNS = ("folder_id", "uid", "message_pk", "seen", "answered")


def _as_is(value: Any) -> Any:
    return value


def _message_row(
    account: str,
    m: SeenMessage,
    now: datetime | str | None,
    time: Callable[[datetime | None], Any],
    as_json: Callable[[list[str]], Any],
) -> tuple[Any, ...]:
    """One row of _MESSAGE_COLUMNS; ``time`` and ``as_json`` convert for SQLite (see
    _insert_tuples) or pass values as they are. Bools bind as 1/0 on SQLite."""
    return (
        account,
        m.key,
        m.message_id,
        m.from_address,
        m.from_name,
        as_json(m.to_addresses),
        as_json(m.cc_addresses),
        m.user_role,
        m.subject,
        time(m.date),
        time(m.received_at),
        m.in_reply_to,
        " ".join(m.references) or None,
        m.thread_id,
        bool(m.own),
        m.exclude_reason is not None,
        m.exclude_reason,
        bool(m.seen),
        bool(m.answered),
        now,
    )


def _ref_rows(
    in_reply_to: str | None, references: Iterable[str], at: datetime, how: str
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    if in_reply_to:
        rows.append({"ref": in_reply_to, "direct": True, "replied_at": at, "how": how})
        seen.add(in_reply_to)
    for ref in references:
        if ref not in seen:
            seen.add(ref)
            rows.append({"ref": ref, "direct": False, "replied_at": at, "how": how})
    if not rows:
        rows.append({"ref": None, "direct": False, "replied_at": at, "how": how})
    for row in rows:
        row.setdefault("outgoing_id", None)
        row.setdefault("inbound_pk", None)
    return rows


def apply_flags(
    session: Session,
    folder: ImapFolder,
    changes: dict[int, tuple[bool, bool]],
    now: datetime,
) -> int:
    """Record changed (seen, answered) flags by UID; returns how many locations changed.

    The time a flag was first noticed is kept: for \\Seen, when the user read
    it; for \\Answered, a fallback answer time when no reply is found.
    """
    if not changes:
        return 0
    stored: dict[int, int] = {}
    pks: list[int] = []
    for uid, pk, message_pk in session.execute(
        select(InboundLocation.uid, InboundLocation.id, InboundLocation.message_pk).where(
            InboundLocation.folder_id == folder.id,
            InboundLocation.uid.in_(list(changes)),
        )
    ):
        stored[uid] = pk
        pks.append(message_pk)
    if not stored:
        return 0
    session.execute(
        update(InboundLocation),
        [
            {"id": stored[uid], "seen": seen, "answered": answered}
            for uid, (seen, answered) in changes.items()
            if uid in stored
        ],
    )
    loc_seen = (
        select(InboundLocation.id)
        .where(InboundLocation.message_pk == InboundMessage.id, InboundLocation.seen)
        .exists()
    )
    loc_answered = (
        select(InboundLocation.id)
        .where(InboundLocation.message_pk == InboundMessage.id, InboundLocation.answered)
        .exists()
    )
    for start in range(0, len(pks), _CHUNK):
        chunk = pks[start : start + _CHUNK]
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id.in_(chunk))
            .values(seen=loc_seen, flag_answered=loc_answered)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(InboundMessage)
            .where(
                InboundMessage.id.in_(chunk), InboundMessage.seen, InboundMessage.seen_at.is_(None)
            )
            .values(seen_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(InboundMessage)
            .where(
                InboundMessage.id.in_(chunk),
                InboundMessage.flag_answered,
                InboundMessage.flag_answered_at.is_(None),
            )
            .values(flag_answered_at=now)
            .execution_options(synchronize_session=False)
        )
    return len(stored)


def remove_locations(
    session: Session, folder: ImapFolder, uids: Iterable[int], now: datetime
) -> int:
    """Forget expunged UIDs; a message left in no watched folder is marked gone."""
    wanted = sorted(set(uids))
    removed = 0
    for start in range(0, len(wanted), _CHUNK):
        removed += rowcount(
            session.execute(
                delete(InboundLocation).where(
                    InboundLocation.folder_id == folder.id,
                    InboundLocation.uid.in_(wanted[start : start + _CHUNK]),
                )
            )
        )
    if removed:
        _mark_gone(session, folder.account, now)
    return removed


def _mark_gone(session: Session, account: str, now: datetime) -> None:
    anywhere = select(InboundLocation.id).where(InboundLocation.message_pk == InboundMessage.id)
    session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.account == account,
            InboundMessage.gone_at.is_(None),
            ~anywhere.exists(),
        )
        .values(gone_at=now)
        .execution_options(synchronize_session=False)
    )


# --- answered tracking -------------------------------------------------------------------


def ingest_proxy_log(session: Session) -> int:
    """Read outgoing-log rows not read yet into reply references; returns how many.

    Only mail that really left counts: relayed, sent anyway, or held and
    then released.
    """
    read = select(ReplyRef.id).where(ReplyRef.outgoing_id == OutgoingMessage.id)
    released = select(HeldMessage.id).where(
        HeldMessage.message_id == OutgoingMessage.message_id,
        HeldMessage.state == HeldState.RELEASED.value,
    )
    rows = session.execute(
        select(
            OutgoingMessage.id,
            OutgoingMessage.in_reply_to,
            OutgoingMessage.references,
            OutgoingMessage.created_at,
        ).where(
            OutgoingMessage.action.in_(SENT_ACTIONS)
            | ((OutgoingMessage.action == "hold") & released.exists()),
            ~read.exists(),
        )
    ).all()
    values: list[dict[str, object]] = []
    for outgoing_id, in_reply_to, references, created_at in rows:
        direct = split_ids(in_reply_to)
        for row in _ref_rows(
            direct[0] if direct else None, split_ids(references), created_at, HOW_PROXY
        ):
            row["outgoing_id"] = outgoing_id
            values.append(row)
    for start in range(0, len(values), _CHUNK):
        bulk_insert(session, _REFS, values[start : start + _CHUNK])
    return len(rows)


def resolve_answered(session: Session) -> int:
    """Mark messages answered from what is known; returns how many changed.

    A message is answered by a reply that refers to it (In-Reply-To or
    References), or that answers a later message of its thread (same thread
    id, received at or after it). Without such a reply, the \\Answered flag
    counts, with the time it was first noticed. The earliest answer wins.
    """
    open_ = (
        ~InboundMessage.own,
        ~InboundMessage.excluded,
        (InboundMessage.answered_how.is_(None)) | (InboundMessage.answered_at.is_(None)),
    )
    best: dict[int, tuple[datetime | None, str]] = {}

    def offer(pk: int, at: datetime | None, how: str) -> None:
        have = best.get(pk)
        if have is None or (at is not None and (have[0] is None or at < have[0])):
            best[pk] = (at, how)

    # A reply refers to the message itself.
    direct = session.execute(
        select(InboundMessage.id, ReplyRef.replied_at, ReplyRef.how)
        .join(ReplyRef, ReplyRef.ref == InboundMessage.message_id)
        .where(*open_)
    )
    for pk, at, how in direct:
        offer(pk, at, how)
    # A reply answers a later message of the same thread.
    later = aliased(InboundMessage)
    threaded = session.execute(
        select(InboundMessage.id, ReplyRef.replied_at, ReplyRef.how)
        .join(
            later,
            (later.account == InboundMessage.account)
            & (later.thread_id == InboundMessage.thread_id)
            & (later.received_at >= InboundMessage.received_at)
            & (later.id != InboundMessage.id),
        )
        .join(ReplyRef, (ReplyRef.ref == later.message_id) & ReplyRef.direct)
        .where(*open_)
    )
    for pk, at, how in threaded:
        offer(pk, at, how)
    # The mail client's \Answered flag.
    flagged = session.execute(
        select(InboundMessage.id, InboundMessage.flag_answered_at).where(
            *open_, InboundMessage.flag_answered
        )
    )
    for pk, flag_at in flagged:
        offer(pk, flag_at, HOW_FLAG)
    if not best:
        return 0
    current = dict(
        (pk, (at, how))
        for pk, at, how in session.execute(
            select(
                InboundMessage.id, InboundMessage.answered_at, InboundMessage.answered_how
            ).where(InboundMessage.id.in_(list(best)))
        )
    )
    changes = [
        {"id": pk, "answered_at": at, "answered_how": how}
        for pk, (at, how) in best.items()
        if current.get(pk) != (at, how)
    ]
    if changes:
        session.execute(update(InboundMessage), changes)
    return len(changes)


# --- queries for the report and the checks ---------------------------------------------------


def person_mail() -> tuple[ColumnElement[bool], ...]:
    """Mail from a person with the user as direct recipient (see PRODUCT.md, "Inbound path")."""
    return (
        ~InboundMessage.excluded,
        ~InboundMessage.own,
        InboundMessage.user_role == "to",
    )


def awaiting_answer(
    session: Session,
    *,
    after: timedelta,
    now: datetime | None = None,
    account: str | None = None,
) -> list[InboundMessage]:
    """Mail from people, to the user directly, unanswered and older than ``after``; oldest first.

    Read or not. Messages no longer in any watched folder are left out: the
    user deleted or filed them away.
    """
    now = now or utcnow()
    stmt = (
        select(InboundMessage)
        .where(
            *person_mail(),
            InboundMessage.answered_how.is_(None),
            InboundMessage.gone_at.is_(None),
            InboundMessage.received_at <= now - after,
        )
        .order_by(InboundMessage.received_at, InboundMessage.id)
    )
    if account is not None:
        stmt = stmt.where(InboundMessage.account == account)
    return list(session.scalars(stmt))


def thread_view(session: Session, message_ids: Iterable[str]) -> ThreadView:
    """What is known of these messages, from IMAP and the proxy log.

    ``participants``: who was on each message (From, To, Cc; lower case).
    ``authors``: who wrote each message the poller stored (its From header's
    display name and address). The user's own messages (the poller's ``own``
    rows, the proxy log) add participants only. Message-IDs unknown to both
    are missing. One query per source and chunk: the proxy runs this for
    every reply, so the authors come with the participants.
    """
    wanted = sorted({m for m in message_ids if m})
    found: dict[str, set[str]] = {}
    authors: dict[str, Address] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for mid, sender, sender_name, to, cc, own in session.execute(
            select(
                InboundMessage.message_id,
                InboundMessage.from_address,
                InboundMessage.from_name,
                InboundMessage.to_addresses,
                InboundMessage.cc_addresses,
                InboundMessage.own,
            ).where(InboundMessage.message_id.in_(chunk))
        ):
            if mid is None:
                continue
            people = found.setdefault(mid, set())
            people.update(a for a in (sender, *(to or ()), *(cc or ())) if a)
            if not own and (sender or sender_name) and mid not in authors:
                authors[mid] = Address(email=sender or "", name=sender_name or "")
        for mid, sender, to, cc in session.execute(
            select(
                OutgoingMessage.message_id,
                OutgoingMessage.envelope_from,
                OutgoingMessage.to_addresses,
                OutgoingMessage.cc_addresses,
            ).where(OutgoingMessage.message_id.in_(chunk))
        ):
            if mid is None:
                continue
            people = found.setdefault(mid, set())
            people.update(a.lower() for a in (sender, *(to or ()), *(cc or ())) if a)
    return ThreadView(
        participants={mid: frozenset(people) for mid, people in found.items()}, authors=authors
    )
