"""Held messages, the user's "don't ask again" exceptions and the reject override memory.

A held message is the whole message as the client handed it over (envelope and
raw bytes) plus the findings that held it. Its body lives in the store so a
single commit makes it durable before the client hears 250; the body is
deleted as soon as the message is released or discarded. The secret of its
command links is kept only as a SHA-256 hash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    delete,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from courtesy.checks.model import Exceptions
from courtesy.store.base import Base, UTCDateTime, rowcount, utcnow


class HeldState(StrEnum):
    HELD = "held"
    # Claimed by one releaser (CLI, command mail or expiry) while it talks to upstream.
    RELEASING = "releasing"
    RELEASED = "released"
    DISCARDED = "discarded"
    # Discarded by hold.expire.
    EXPIRED = "expired"


class HeldMessage(Base):
    """One message the policy held back, and what became of it."""

    __tablename__ = "held_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    held_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default=HeldState.HELD.value)
    envelope_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(998))
    size: Mapped[int] = mapped_column(Integer, default=0)
    # The raw message, byte for byte; None once released or discarded.
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Findings as in `courtesy check --json`.
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # hex SHA-256 of the command-link secret; None once a command used it.
    token_hash: Mapped[str | None] = mapped_column(String(64))
    auth_user: Mapped[str | None] = mapped_column(String(320))
    language: Mapped[str] = mapped_column(String(8), default="en")
    notice_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notice_attempts: Mapped[int] = mapped_column(Integer, default=0)
    notice_error: Mapped[str | None] = mapped_column(Text)
    # Why the last release failed (upstream's answer), shown by `held list/show`.
    release_error: Mapped[str | None] = mapped_column(Text)
    upstream_reply: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who released or discarded it: cli | mail | expire
    closed_by: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_held_messages_state_held_at", "state", "held_at"),)


class CheckException(Base):
    """ "Don't ask again": check ``code`` (or family) is not raised for ``email`` ('*': anyone)."""

    __tablename__ = "check_exceptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    code: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Where it came from, for the user: e.g. "held #12".
    source: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (UniqueConstraint("email", "code", name="uq_check_exceptions_email_code"),)


class RejectOverride(Base):
    """A rejected message: sending the same one again before ``expires_at`` relays it."""

    __tablename__ = "reject_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # hex SHA-256 of sender, recipients, subject and new text.
    key: Mapped[str] = mapped_column(String(64), index=True)
    rejected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    envelope_from: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


# --- held messages -------------------------------------------------------------------


def add_held(session: Session, row: HeldMessage) -> int:
    session.add(row)
    session.flush()
    return row.id


def get_held(session: Session, held_id: int) -> HeldMessage | None:
    return session.get(HeldMessage, held_id)


def list_held(session: Session, *, states: Sequence[str] = ("held",)) -> list[HeldMessage]:
    """Held messages in ``states``, oldest first (bodies are loaded lazily by nobody: small)."""
    stmt = select(HeldMessage).where(HeldMessage.state.in_(list(states))).order_by(HeldMessage.id)
    return list(session.scalars(stmt))


def claim(session: Session, held_id: int, new_state: HeldState) -> bool:
    """Move a row from ``held`` to ``new_state``; True only for the one caller that won.

    A single conditional UPDATE, so two releasers (the CLI and a command mail,
    or two processes) never both get the message.
    """
    result = session.execute(
        update(HeldMessage)
        .where(HeldMessage.id == held_id, HeldMessage.state == HeldState.HELD.value)
        .values(state=new_state.value)
    )
    return rowcount(result) == 1


def held_json(row: HeldMessage) -> dict[str, Any]:
    """One line of ``courtesy held list --json``."""
    return {
        "id": row.id,
        "held_at": row.held_at.isoformat(),
        "from": row.envelope_from,
        "to": list(row.recipients),
        "subject": row.subject,
        "findings": list(row.findings),
    }


# --- exceptions --------------------------------------------------------------------------


def add_exceptions(session: Session, pairs: Iterable[tuple[str, str]], source: str) -> int:
    """Record (email or '*', code or family) pairs; existing ones stay. Returns how many are new."""
    wanted = {(email.strip().lower(), code.strip()) for email, code in pairs if email and code}
    if not wanted:
        return 0
    have = {(e, c) for e, c in session.execute(select(CheckException.email, CheckException.code))}
    new = sorted(wanted - have)
    for email, code in new:
        session.add(CheckException(email=email, code=code, source=source))
    session.flush()
    return len(new)


def list_exceptions(session: Session) -> list[CheckException]:
    stmt = select(CheckException).order_by(CheckException.email, CheckException.code)
    return list(session.scalars(stmt))


def remove_exception(session: Session, exception_id: int) -> bool:
    result = session.execute(delete(CheckException).where(CheckException.id == exception_id))
    return bool(rowcount(result))


def load_exceptions(session: Session) -> Exceptions:
    """The checks' view of every recorded exception."""
    rows = session.execute(select(CheckException.email, CheckException.code))
    return Exceptions(frozenset((email, code) for email, code in rows))


def exception_json(row: CheckException) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "code": row.code,
        "created_at": row.created_at.isoformat(),
        "source": row.source,
    }


def dump_json_lines(items: Iterable[dict[str, Any]]) -> Iterable[str]:
    for item in items:
        yield json.dumps(item, ensure_ascii=False)


# --- reject overrides ---------------------------------------------------------------------


def remember_reject(session: Session, row: RejectOverride) -> None:
    session.add(row)


def find_override(session: Session, key: str, now: datetime) -> RejectOverride | None:
    """The newest unexpired override for ``key``; marks its first use.

    Not single-use: every resend within the window goes through, so a relay
    that fails upstream (451, the client retries) does not cost the override.
    """
    row = session.scalars(
        select(RejectOverride)
        .where(RejectOverride.key == key, RejectOverride.expires_at > now)
        .order_by(RejectOverride.id.desc())
        .limit(1)
    ).first()
    if row is not None and row.used_at is None:
        row.used_at = now
    return row


def forget_old_overrides(session: Session, before: datetime) -> int:
    result = session.execute(delete(RejectOverride).where(RejectOverride.expires_at < before))
    return rowcount(result)
