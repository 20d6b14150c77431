"""The weekly report's queries, and the record of reports the schedule sent.

Every query here is an aggregate or a range scan bounded by one week (or by
the few messages still awaiting an answer): the report must stay cheap on a
store with a million rows, so nothing here walks a whole table or loads ORM
objects for a week of mail.

:class:`SentReport` is one row per (ISO week, recipient) the schedule dealt
with; its unique key is what makes a missed run go out once, never twice,
even with two processes racing for it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    cast,
    func,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from courtesy.store.base import Base, UTCDateTime, rowcount
from courtesy.store.held import HeldMessage, HeldState
from courtesy.store.inbound import InboundMessage, person_mail
from courtesy.store.outgoing import OutgoingMessage

# --- sent reports -------------------------------------------------------------------------


class ReportStatus(StrEnum):
    # The schedule began after this week's slot: nothing to catch up.
    SKIPPED = "skipped"
    # Claimed by one process, which is talking to the server now. A row left in
    # this state by a crash is not retried: the report may have gone out.
    SENDING = "sending"
    SENT = "sent"
    # Delivery failed with an answer (not sent); retried until the next slot.
    FAILED = "failed"


class SentReport(Base):
    """One ISO week's scheduled report to one recipient, and what became of it."""

    __tablename__ = "sent_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "YYYY-Www", the week the report covers.
    week: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(8))
    # The schedule slot this row answers (e.g. Monday 08:00 local, as UTC).
    slot_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # "smtp" | "imap"
    via: Mapped[str | None] = mapped_column(String(8))
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("week", "recipient"),)


def get_report(session: Session, week: str, recipient: str) -> SentReport | None:
    return session.scalars(
        select(SentReport).where(SentReport.week == week, SentReport.recipient == recipient)
    ).first()


def any_report(session: Session, recipient: str) -> bool:
    """Whether the schedule ever ran for this recipient (a first start catches nothing up)."""
    found = session.scalar(select(SentReport.id).where(SentReport.recipient == recipient).limit(1))
    return found is not None


def mark_skipped(session: Session, week: str, recipient: str, slot_at: datetime) -> None:
    """Record that the schedule started after ``week``'s slot, so it is not sent late."""
    if get_report(session, week, recipient) is None:
        session.add(
            SentReport(
                week=week,
                recipient=recipient,
                status=ReportStatus.SKIPPED.value,
                slot_at=slot_at,
                attempts=0,
            )
        )
        session.flush()


def claim_report(
    session: Session,
    week: str,
    recipient: str,
    slot_at: datetime,
    now: datetime,
    *,
    retry_after: timedelta,
) -> bool:
    """Take the right to send ``week``'s report; True for exactly one caller.

    A new week is claimed by an INSERT (the unique key decides a race); a
    failed one by a conditional UPDATE once ``retry_after`` has passed. Sent,
    skipped and in-flight weeks are never claimed again.
    """
    row = get_report(session, week, recipient)
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    SentReport(
                        week=week,
                        recipient=recipient,
                        status=ReportStatus.SENDING.value,
                        slot_at=slot_at,
                        attempted_at=now,
                        attempts=1,
                    )
                )
        except IntegrityError:
            return False
        return True
    if row.status != ReportStatus.FAILED.value:
        return False
    if row.attempted_at is not None and now - row.attempted_at < retry_after:
        return False
    result = session.execute(
        update(SentReport)
        .where(SentReport.id == row.id, SentReport.status == ReportStatus.FAILED.value)
        .values(
            status=ReportStatus.SENDING.value,
            attempted_at=now,
            attempts=SentReport.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def finish_report(
    session: Session,
    week: str,
    recipient: str,
    now: datetime,
    *,
    via: str,
    error: str | None = None,
) -> None:
    """Record the outcome of a claimed send: sent, or failed with the reason."""
    session.execute(
        update(SentReport)
        .where(SentReport.week == week, SentReport.recipient == recipient)
        .values(
            status=(ReportStatus.FAILED if error else ReportStatus.SENT).value,
            sent_at=None if error else now,
            via=via,
            error=error,
        )
        .execution_options(synchronize_session=False)
    )


# --- report data --------------------------------------------------------------------------


class MessageRow(NamedTuple):
    """One inbound message as the report shows it (a tuple: thousands are made at once)."""

    message_id: str | None
    from_address: str
    from_name: str | None
    subject: str | None
    received_at: datetime
    seen: bool
    answered_at: datetime | None = None
    answered_how: str | None = None


@dataclass(frozen=True)
class ResponseFigures:
    """Person mail received in a week: how much of it got an answer, and how fast."""

    received: int
    answered: int
    # Hours from receipt to answer, sorted; only answers with a known time.
    hours: tuple[float, ...]


@dataclass(frozen=True)
class CheckFigures:
    """What the checks did with outgoing mail in a week."""

    actions: dict[str, int]
    # Held messages closed in the week, by state: released | discarded | expired.
    closed: dict[str, int]
    still_held: int
    findings: dict[str, int]
    # (written, right) -> how often
    misspelled: dict[tuple[str, str], int]


def _core(session: Session) -> Connection:
    """The session's connection: report queries are Core selects of a few columns, and
    skipping the ORM's result machinery halves their Python cost."""
    return session.connection()


def _utc(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime, from SQLite's text or PostgreSQL's value."""
    if value is None:
        return None
    if isinstance(value, str):
        # Appending the offset is several times faster than .replace(tzinfo=UTC).
        return datetime.fromisoformat(value + "+00:00")
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _raw_time(column: Any, dialect: str) -> Any:
    """The column without the generic type processing: on SQLite the stored text, which
    :func:`_utc` parses four times faster (the awaiting list can run to thousands)."""
    return type_coerce(column, String) if dialect == "sqlite" else column


def _columns(session: Session) -> tuple[Any, ...]:
    dialect = session.get_bind().dialect.name
    return (
        InboundMessage.message_id,
        InboundMessage.from_address,
        InboundMessage.from_name,
        InboundMessage.subject,
        _raw_time(InboundMessage.received_at, dialect),
        InboundMessage.seen,
        _raw_time(InboundMessage.answered_at, dialect),
        InboundMessage.answered_how,
    )


def _row(values: Sequence[Any]) -> MessageRow:
    mid, address, name, subject, received, seen, answered_at, how = values
    received_at = _utc(received)
    assert received_at is not None
    return MessageRow(mid, address, name, subject, received_at, bool(seen), _utc(answered_at), how)


def awaiting_as_of(
    session: Session, *, after: timedelta, as_of: datetime, now: datetime
) -> list[MessageRow]:
    """Mail awaiting an answer at ``as_of``, oldest first.

    The filters are those of the poller's :func:`~courtesy.store.inbound.awaiting_answer`
    (a test holds the two together), reading only the columns the report
    shows: the list can run to thousands on a big store. For a past week it
    adds what was still open then and has been answered since, so an old
    week's report shows what was waiting at its end.
    """
    cutoff = as_of - after
    still_open: ColumnElement[bool] = InboundMessage.answered_how.is_(None)
    if as_of < now:
        still_open = or_(still_open, InboundMessage.answered_at > as_of)
    found = _core(session).execute(
        select(*_columns(session))
        .where(
            *person_mail(),
            still_open,
            InboundMessage.gone_at.is_(None),
            InboundMessage.received_at <= cutoff,
        )
        .order_by(InboundMessage.received_at, InboundMessage.id)
    )
    return [_row(values) for values in found]


def answered_late(
    session: Session, *, since: datetime, until: datetime, after: timedelta
) -> list[MessageRow]:
    """Person mail answered in [since, until) after it had waited longer than ``after``."""
    dialect = session.get_bind().dialect.name
    waited = _hours_between(InboundMessage.answered_at, InboundMessage.received_at, dialect)
    found = _core(session).execute(
        select(*_columns(session))
        .where(
            *person_mail(),
            InboundMessage.answered_at >= since,
            InboundMessage.answered_at < until,
            # A cheap bound the index can use, then the exact one.
            InboundMessage.received_at < until - after,
            waited > after / timedelta(hours=1),
        )
        .order_by(InboundMessage.received_at, InboundMessage.id)
    )
    return [_row(values) for values in found]


def _hours_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[float]:
    """``later - earlier`` in hours, computed by the database (no datetime parsing in Python)."""
    if dialect == "sqlite":
        return cast((func.julianday(later) - func.julianday(earlier)) * 24.0, Float)
    return cast(func.extract("epoch", later - earlier) / 3600.0, Float)


def response_figures(
    session: Session, *, since: datetime, until: datetime, as_of: datetime
) -> ResponseFigures:
    """Person mail received in [since, until): count, answered by ``as_of``, hours to answer."""
    received_in = (
        *person_mail(),
        InboundMessage.received_at >= since,
        InboundMessage.received_at < until,
    )
    answered = and_(
        InboundMessage.answered_how.is_not(None),
        or_(InboundMessage.answered_at.is_(None), InboundMessage.answered_at <= as_of),
    )
    received, answered_count = (
        _core(session)
        .execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((answered, 1), else_=0)), 0),
            ).where(*received_in)
        )
        .one()
    )
    dialect = session.get_bind().dialect.name
    hours = _core(session).scalars(
        select(
            _hours_between(InboundMessage.answered_at, InboundMessage.received_at, dialect)
        ).where(
            *received_in,
            InboundMessage.answered_at.is_not(None),
            InboundMessage.answered_at <= as_of,
        )
    )
    values = sorted(max(0.0, float(h)) for h in hours if h is not None)
    return ResponseFigures(int(received or 0), int(answered_count or 0), tuple(values))


def answers_per_day(session: Session, bounds: Sequence[datetime]) -> list[int]:
    """Answers given to person mail per day; ``bounds`` are the day starts plus the end.

    One range scan with one CASE per day: the days are local days, whose
    edges the caller computed in the user's time zone (23 or 25 hours long
    across a DST change).
    """
    if len(bounds) < 2:
        return []
    at = InboundMessage.answered_at
    buckets = [
        func.coalesce(func.sum(case((and_(at >= start, at < end), 1), else_=0)), 0)
        for start, end in pairwise(bounds)
    ]
    row = (
        _core(session)
        .execute(select(*buckets).where(*person_mail(), at >= bounds[0], at < bounds[-1]))
        .one()
    )
    return [int(v or 0) for v in row]


_QUOTED_NAME = re.compile(r"'([^']{1,80})'")


def check_figures(session: Session, *, since: datetime, until: datetime) -> CheckFigures:
    """Outgoing mail checked in [since, until): actions, findings, misspelled names."""
    created = (OutgoingMessage.created_at >= since, OutgoingMessage.created_at < until)
    actions = {
        str(action): int(count)
        for action, count in _core(session).execute(
            select(OutgoingMessage.action, func.count())
            .where(*created)
            .group_by(OutgoingMessage.action)
        )
    }
    closed = {
        str(state): int(count)
        for state, count in _core(session).execute(
            select(HeldMessage.state, func.count())
            .where(
                HeldMessage.closed_at >= since,
                HeldMessage.closed_at < until,
                HeldMessage.state.in_(
                    [HeldState.RELEASED.value, HeldState.DISCARDED.value, HeldState.EXPIRED.value]
                ),
            )
            .group_by(HeldMessage.state)
        )
    }
    still_held = int(
        _core(session).scalar(
            select(func.count())
            .select_from(HeldMessage)
            .where(HeldMessage.state == HeldState.HELD.value)
        )
        or 0
    )
    findings: Counter[str] = Counter()
    misspelled: Counter[tuple[str, str]] = Counter()
    # Only rows with findings; JSON is parsed for those alone.
    with_findings = _core(session).scalars(
        select(OutgoingMessage.findings).where(
            *created, func.json_array_length(OutgoingMessage.findings) > 0
        )
    )
    for items in with_findings:
        for finding in items or ():
            code = str(finding.get("code") or "")
            if not code:
                continue
            findings[code] += 1
            if code == "name.misspelled":
                pair = _misspelling(finding)
                if pair is not None:
                    misspelled[pair] += 1
    return CheckFigures(actions, closed, still_held, dict(findings), dict(misspelled))


def _misspelling(finding: dict[str, Any]) -> tuple[str, str] | None:
    """(written, right) from a name.misspelled finding: the quoted name and the suggestion."""
    right = str(finding.get("suggestion") or "").strip()
    match = _QUOTED_NAME.search(str(finding.get("message") or ""))
    written = match.group(1).strip() if match else ""
    if not written or not right or written == right:
        return None
    return written, right
