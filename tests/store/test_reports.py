"""The report's queries and the sent-reports table, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from courtesy.proxy.report import Week
from courtesy.store.db import Store
from courtesy.store.held import HeldMessage, HeldState
from courtesy.store.inbound import InboundMessage
from courtesy.store.outgoing import OutgoingMessage
from courtesy.store.reports import (
    ReportStatus,
    SentReport,
    answered_late,
    answers_per_day,
    any_report,
    awaiting_as_of,
    check_figures,
    claim_report,
    finish_report,
    get_report,
    mark_skipped,
    response_figures,
)

BERLIN = ZoneInfo("Europe/Berlin")
AFTER = timedelta(days=2)
# 2026-W13: Monday 23 March to Sunday 29 March; clocks go forward on Sunday 29 March.
DST_WEEK = Week(2026, 13)
_ids = itertools.count(1)


def at(day: int, hour: int = 9, minute: int = 0) -> datetime:
    """Local Berlin time on a day of March 2026, as UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def inbound(
    received: datetime,
    *,
    answered: datetime | None = None,
    how: str | None = None,
    **changes: object,
) -> InboundMessage:
    n = next(_ids)
    values: dict[str, object] = dict(
        account="anna@example.test",
        key=f"<m{n}@partner.example>",
        message_id=f"<m{n}@partner.example>",
        from_address="thomas.meier@partner.example",
        from_name="Thomas Meier",
        to_addresses=["anna@example.test"],
        cc_addresses=[],
        user_role="to",
        subject=f"Frage {n}",
        received_at=received,
        thread_id=f"<m{n}@partner.example>",
        own=False,
        excluded=False,
        seen=False,
        answered_at=answered,
        answered_how=how or ("sent" if answered else None),
    )
    values.update(changes)
    return InboundMessage(**values)


def test_week_bounds_follow_local_midnight_across_dst() -> None:
    start, end = DST_WEEK.start(BERLIN), DST_WEEK.end(BERLIN)
    assert start == datetime(2026, 3, 22, 23, 0, tzinfo=UTC)  # Monday 00:00 CET
    assert end == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)  # next Monday 00:00 CEST
    assert end - start == timedelta(hours=167)
    days = DST_WEEK.day_starts(BERLIN)
    lengths = [(b - a) / timedelta(hours=1) for a, b in itertools.pairwise(days)]
    assert lengths == [24, 24, 24, 24, 24, 24, 23]
    autumn = Week(2026, 43)  # clocks go back on Sunday 25 October
    assert autumn.end(BERLIN) - autumn.start(BERLIN) == timedelta(hours=169)
    assert Week.containing(datetime(2026, 3, 29, 21, 59, tzinfo=UTC), BERLIN) == DST_WEEK
    assert Week.containing(datetime(2026, 3, 29, 22, 0, tzinfo=UTC), BERLIN) == Week(2026, 14)
    assert str(Week.parse("2026-w01")) == "2026-W01" and Week(2021, 1).previous() == Week(2020, 53)


def test_answers_per_day_counts_local_days_across_dst(store: Store) -> None:
    with store.session() as session:
        session.add_all(
            [
                inbound(at(20), answered=at(23, 0, 30)),  # Monday just after local midnight
                inbound(at(20), answered=at(22, 23, 30)),  # Sunday before: not in the week
                inbound(at(20), answered=at(29, 23, 30)),  # Sunday (CEST) late evening
                inbound(at(20), answered=at(30, 0, 10)),  # next Monday: not in the week
                inbound(at(20), answered=at(25, 12), excluded=True, exclude_reason="list"),
                inbound(at(20), answered=at(25, 12), user_role="cc"),
                inbound(at(20), answered=at(25, 12)),
            ]
        )
    with store.session() as session:
        assert answers_per_day(session, DST_WEEK.day_starts(BERLIN)) == [1, 0, 1, 0, 0, 0, 1]


def test_response_figures_answered_late_and_awaiting(store: Store) -> None:
    week = DST_WEEK
    start, end = week.start(BERLIN), week.end(BERLIN)
    with store.session() as session:
        session.add_all(
            [
                # In the week: answered after 2 h, 10 h and 30 h; one still open; one list mail.
                inbound(at(23, 9), answered=at(23, 11), key="<a>", message_id="<a>"),
                inbound(at(24, 8), answered=at(24, 18), key="<b>", message_id="<b>"),
                inbound(at(25, 8), answered=at(26, 14), key="<c>", message_id="<c>"),
                inbound(at(26, 8), key="<open>", message_id="<open>", seen=True),
                inbound(at(26, 8), excluded=True, exclude_reason="bulk"),
                # Answered by the \Answered flag at the first sync: answered, time unknown.
                inbound(at(27, 8), how="flag", key="<flag>", message_id="<flag>"),
                # Received before, answered this week after 4 days: late but done.
                inbound(at(19, 9), answered=at(23, 10), key="<late>", message_id="<late>"),
                # Received before, answered after the week ended.
                inbound(at(16, 9), answered=at(31, 10), key="<after>", message_id="<after>"),
                # Old and gone from every folder: not awaiting.
                inbound(at(2, 9), key="<gone>", message_id="<gone>", gone_at=at(10)),
            ]
        )
    with store.session() as session:
        figures = response_figures(session, since=start, until=end, as_of=end)
        assert (figures.received, figures.answered) == (5, 4)
        assert figures.hours == pytest.approx((2.0, 10.0, 30.0))
        late = answered_late(session, since=start, until=end, after=AFTER)
        assert [r.message_id for r in late] == ["<late>"]
        # As of the week's end: open mail older than 2 days, and what was answered only later.
        waiting = awaiting_as_of(session, after=AFTER, as_of=end, now=at(31, 12))
        assert [r.message_id for r in waiting] == ["<after>", "<open>"]
        # As of now: <after> is answered.
        waiting = awaiting_as_of(session, after=AFTER, as_of=at(31, 12), now=at(31, 12))
        assert [r.message_id for r in waiting] == ["<open>"]
        assert waiting[0].seen is True


def test_check_figures_count_actions_findings_and_misspelled_names(store: Store) -> None:
    start, end = DST_WEEK.start(BERLIN), DST_WEEK.end(BERLIN)
    misspelled: dict[str, object] = {
        "code": "name.misspelled",
        "severity": "block",
        "message": "The greeting says 'Meyer'; the recipient is Thomas Meier.",
        "evidence": "Hallo Herr Meyer,",
        "suggestion": "Meier",
    }
    greeting: dict[str, object] = {
        "code": "greeting.missing",
        "severity": "warn",
        "message": "No greeting.",
    }

    def outgoing(when: datetime, action: str, findings: list[dict[str, object]]) -> OutgoingMessage:
        return OutgoingMessage(
            created_at=when,
            envelope_from="anna@example.test",
            recipients=["t@partner.example"],
            action=action,
            findings=findings,
        )

    with store.session() as session:
        session.add_all(
            [
                outgoing(at(23), "relay", []),
                outgoing(at(24), "relay", []),
                outgoing(at(24), "hold", [misspelled]),
                outgoing(at(25), "hold", [misspelled, greeting]),
                outgoing(at(25), "reject", [greeting]),
                outgoing(at(25, 10), "override", [greeting]),
                outgoing(at(16), "hold", [greeting]),  # the week before
                HeldMessage(
                    envelope_from="anna@example.test",
                    recipients=["t@partner.example"],
                    state=HeldState.RELEASED.value,
                    closed_at=at(24, 12),
                    closed_by="cli",
                ),
                HeldMessage(
                    envelope_from="anna@example.test",
                    recipients=["t@partner.example"],
                    state=HeldState.HELD.value,
                ),
            ]
        )
    with store.session() as session:
        figures = check_figures(session, since=start, until=end)
    assert figures.actions == {"relay": 2, "hold": 2, "reject": 1, "override": 1}
    assert figures.closed == {"released": 1}
    assert figures.still_held == 1
    assert figures.findings == {"name.misspelled": 2, "greeting.missing": 3}
    assert figures.misspelled == {("Meyer", "Meier"): 2}


def test_a_week_without_data(store: Store) -> None:
    start, end = DST_WEEK.start(BERLIN), DST_WEEK.end(BERLIN)
    with store.session() as session:
        figures = response_figures(session, since=start, until=end, as_of=end)
        assert (figures.received, figures.answered, figures.hours) == (0, 0, ())
        assert answers_per_day(session, DST_WEEK.day_starts(BERLIN)) == [0] * 7
        checks = check_figures(session, since=start, until=end)
        assert (checks.actions, checks.findings, checks.misspelled) == ({}, {}, {})
        assert awaiting_as_of(session, after=AFTER, as_of=end, now=end) == []


def test_a_week_is_claimed_once_and_a_failed_one_is_retried_later(store: Store) -> None:
    now = at(30, 8)
    retry = timedelta(minutes=15)
    with store.session() as session:
        assert not any_report(session, "anna@example.test")
        mark_skipped(session, "2026-W12", "anna@example.test", at(23, 8))
        assert any_report(session, "anna@example.test")
        assert not claim_report(
            session, "2026-W12", "anna@example.test", at(23, 8), now, retry_after=retry
        )
        assert claim_report(session, "2026-W13", "anna@example.test", now, now, retry_after=retry)
        # A second claimer (another process, a restart) gets nothing.
        assert not claim_report(
            session, "2026-W13", "anna@example.test", now, now, retry_after=retry
        )
        finish_report(session, "2026-W13", "anna@example.test", now, via="smtp", error="451 busy")
    with store.session() as session:
        row = get_report(session, "2026-W13", "anna@example.test")
        assert row is not None and row.status == ReportStatus.FAILED and row.error == "451 busy"
        assert not claim_report(
            session,
            "2026-W13",
            "anna@example.test",
            now,
            now + timedelta(minutes=5),
            retry_after=retry,
        )
        later = now + timedelta(minutes=16)
        assert claim_report(session, "2026-W13", "anna@example.test", now, later, retry_after=retry)
        finish_report(session, "2026-W13", "anna@example.test", later, via="smtp")
    with store.session() as session:
        row = get_report(session, "2026-W13", "anna@example.test")
        assert row is not None
        assert (row.status, row.attempts, row.sent_at, row.error) == ("sent", 2, later, None)
        assert not claim_report(
            session, "2026-W13", "anna@example.test", now, later, retry_after=timedelta(0)
        )
        # Another recipient is its own report.
        assert claim_report(session, "2026-W13", "bob@example.test", now, now, retry_after=retry)
        assert session.query(SentReport).count() == 3
