"""The weekly schedule: slots in local time, once per week, caught up once after a miss.

The clock and the sleep are injected: weeks pass in milliseconds, nothing
waits for real.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from courtesy.proxy.app import build_upstream
from courtesy.proxy.config import Config
from courtesy.proxy.report import ReportError, Week, deliver_report
from courtesy.proxy.schedule import ReportSchedule, Schedule
from courtesy.proxy.settings import ConfigError
from courtesy.store.db import Store, open_store
from courtesy.store.outgoing import OutgoingMessage
from courtesy.store.reports import ReportStatus, SentReport
from tests.servers import ProxyInThread, RecordingUpstream, proxy_config, wait_for

BERLIN = ZoneInfo("Europe/Berlin")
ANNA = "anna@example.test"


def berlin(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


# -- slots --------------------------------------------------------------------------------


def test_slots_are_local_wall_clock_times_across_dst() -> None:
    schedule = Schedule.parse("mon 08:00", BERLIN)
    assert (schedule.weekday, schedule.at) == (0, time(8, 0))
    # Monday 23 March 2026 is CET (+1), Monday 30 March CEST (+2).
    assert schedule.latest(berlin(23, 8)) == datetime(2026, 3, 23, 7, 0, tzinfo=UTC)
    assert schedule.latest(berlin(23, 7, 59)) == datetime(2026, 3, 16, 7, 0, tzinfo=UTC)
    assert schedule.next(berlin(23, 8)) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
    assert schedule.latest(berlin(29, 23)) == datetime(2026, 3, 23, 7, 0, tzinfo=UTC)
    # Monday's slot reports the week just ended; a Friday slot the week so far.
    assert schedule.week_of(schedule.latest(berlin(30, 9))) == Week(2026, 13)
    friday = Schedule.parse("Fr 17:30", BERLIN)
    assert friday.week_of(friday.latest(berlin(28, 9))) == Week(2026, 13)
    assert Schedule.parse("Sunday 20:00", BERLIN).weekday == 6
    for bad in ("mon", "monday 8", "tomorrow 08:00", "mon 25:00", "mon 08:60"):
        with pytest.raises(ReportError, match=r"report\.schedule"):
            Schedule.parse(bad, BERLIN)


# -- sending once ---------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.naps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class Outbox:
    """A deliver function that records; ``fail`` makes the next calls fail like upstream would."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.fail: str | None = None

    async def __call__(self, recipient: str, raw: bytes) -> str:
        if self.fail:
            raise ReportError(self.fail)
        self.sent.append((recipient, raw))
        return "smtp"

    def weeks(self) -> list[str]:
        found = []
        for _, raw in self.sent:
            mail = email.message_from_bytes(raw, policy=email.policy.default)
            found.append(str(mail["X-Courtesy-Notice"]).removeprefix("report "))
        return found


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return proxy_config(
        tmp_path,
        None,
        report={"to": ANNA, "timezone": "Europe/Berlin", "schedule": "mon 08:00"},
        language="de",
    )


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    opened = open_store(config.store_url)
    yield opened
    opened.close()


def schedule_at(config: Config, store: Store, clock: Clock, outbox: Outbox) -> ReportSchedule:
    """A fresh schedule object: each call is what a restart of ``courtesy run`` makes."""
    return ReportSchedule(config, store, outbox, clock=clock, sleep=clock.sleep)


def _rows(store: Store) -> dict[str, tuple[str, int]]:
    with store.session() as session:
        return {r.week: (r.status, r.attempts) for r in session.scalars(select(SentReport)).all()}


def test_fires_once_survives_restarts_and_catches_up_a_missed_slot_once(
    config: Config, store: Store
) -> None:
    clock, outbox = Clock(berlin(18, 10)), Outbox()  # a Wednesday: first start ever
    assert asyncio.run(schedule_at(config, store, clock, outbox).run_once()) is None
    assert outbox.sent == [] and _rows(store) == {"2026-W11": ("skipped", 0)}

    clock.now = berlin(23, 7, 59)
    assert asyncio.run(schedule_at(config, store, clock, outbox).run_once()) is None
    clock.now = berlin(23, 8)  # the slot
    assert asyncio.run(schedule_at(config, store, clock, outbox).run_once()) == Week(2026, 12)
    assert outbox.weeks() == ["2026-W12"]
    # Later the same day, and after restarts: nothing more.
    for hour in (9, 12, 23):
        clock.now = berlin(23, hour)
        assert asyncio.run(schedule_at(config, store, clock, outbox).run_once()) is None
    assert outbox.weeks() == ["2026-W12"]

    # Asleep over the next slot (Monday 30 March, now summer time): sent at the next start, once.
    clock.now = berlin(31, 14)
    schedule = schedule_at(config, store, clock, outbox)
    assert asyncio.run(schedule.run_once()) == Week(2026, 13)
    assert asyncio.run(schedule.run_once()) is None
    assert asyncio.run(schedule_at(config, store, clock, outbox).run_once()) is None
    assert outbox.weeks() == ["2026-W12", "2026-W13"]

    # Off for three weeks: one report, about the last week only.
    clock.now = berlin(22, 9, month=4)
    assert asyncio.run(schedule_at(config, store, clock, outbox).run_once()) == Week(2026, 16)
    assert outbox.weeks() == ["2026-W12", "2026-W13", "2026-W16"]
    assert _rows(store)["2026-W16"] == ("sent", 1)
    assert "2026-W14" not in _rows(store)
    assert outbox.sent[0][0] == ANNA
    first = email.message_from_bytes(outbox.sent[0][1], policy=email.policy.default)
    assert str(first["Subject"]).startswith("Ihre Mail-Woche 2026-W12")


def test_a_failed_send_is_retried_later_not_at_once(config: Config, store: Store) -> None:
    clock, outbox = Clock(berlin(18, 10)), Outbox()
    asyncio.run(schedule_at(config, store, clock, outbox).run_once())
    clock.now = berlin(23, 8, 1)
    outbox.fail = "upstream answered 451 4.3.0 try later"
    assert asyncio.run(schedule_at(config, store, clock, outbox).run_once()) is None
    assert _rows(store)["2026-W12"] == ("failed", 1)
    outbox.fail = None
    clock.now = berlin(23, 8, 10)
    assert asyncio.run(schedule_at(config, store, clock, outbox).run_once()) is None
    clock.now = berlin(23, 8, 20)
    assert asyncio.run(schedule_at(config, store, clock, outbox).run_once()) == Week(2026, 12)
    assert _rows(store)["2026-W12"] == ("sent", 2)
    assert outbox.weeks() == ["2026-W12"]


def test_the_loop_naps_until_the_slot_and_sends_once(config: Config, store: Store) -> None:
    clock, outbox = Clock(berlin(18, 10)), Outbox()
    asyncio.run(schedule_at(config, store, clock, outbox).run_once())  # the first start
    clock.now = berlin(22, 20)  # Sunday evening

    async def run_until(limit: datetime) -> None:
        schedule = schedule_at(config, store, clock, outbox)
        task = asyncio.create_task(schedule.run())
        while clock.now < limit:
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run_until(berlin(23, 14)))  # through Monday's slot
    assert outbox.weeks() == ["2026-W12"]
    # Naps of at most five minutes, so a machine waking from sleep looks again soon.
    assert max(clock.naps) <= 300 and len(clock.naps) > 200
    clock.now = berlin(29, 22)  # off for a week, then a restart before the next slot
    asyncio.run(run_until(berlin(30, 10)))
    assert outbox.weeks() == ["2026-W12", "2026-W13"]


# -- for real: through upstream, and inside courtesy run --------------------------------------


def test_scheduled_report_goes_straight_to_upstream(
    tmp_path: Path, upstream: RecordingUpstream
) -> None:
    config = proxy_config(
        tmp_path, upstream, report={"to": ANNA, "timezone": "Europe/Berlin"}, language="en"
    )
    store = open_store(config.store_url)
    clock = Clock(berlin(18, 10))

    async def scenario() -> list[Week | None]:
        relay = build_upstream(config)

        async def deliver(recipient: str, raw: bytes) -> str:
            return await deliver_report(config, relay, recipient, raw)

        try:
            first = await ReportSchedule(config, store, deliver, clock=clock).run_once()
            clock.now = berlin(23, 8, 5)
            second = await ReportSchedule(config, store, deliver, clock=clock).run_once()
            third = await ReportSchedule(config, store, deliver, clock=clock).run_once()
            return [first, second, third]
        finally:
            await relay.close()

    try:
        assert asyncio.run(scenario()) == [None, Week(2026, 12), None]
        [sent] = upstream.received
        assert (sent.mail_from, sent.rcpt_tos) == (ANNA, [ANNA])
        mail = email.message_from_bytes(sent.content, policy=email.policy.default)
        assert mail.get_content_type() == "multipart/alternative"
        assert mail["Subject"] == "Your week in mail, 2026-W12: nothing waiting"
        with store.session() as session:
            assert session.scalars(select(OutgoingMessage.id)).all() == []
            row = session.scalars(select(SentReport).where(SentReport.week == "2026-W12")).one()
            assert (row.status, row.via) == (ReportStatus.SENT.value, "smtp")
    finally:
        store.close()


def _report_rows(config: Config) -> list[tuple[str, str]]:
    store = open_store(config.store_url)
    try:
        with store.session() as session:
            return [(r.week, r.status) for r in session.scalars(select(SentReport)).all()]
    finally:
        store.close()


def test_courtesy_run_starts_the_schedule_and_stops_it(
    tmp_path: Path, upstream: RecordingUpstream
) -> None:
    config = proxy_config(tmp_path, upstream, report={"to": ANNA})
    proxy = ProxyInThread(config)
    try:
        task = proxy.running.report_task
        assert task is not None and not task.done()
        # The first look records the current slot as skipped: no report about an unwatched week.
        assert wait_for(lambda: len(_report_rows(config)) == 1)
        assert _report_rows(config)[0][1] == "skipped"
    finally:
        proxy.stop()
    assert task.done()
    assert upstream.received == []


@pytest.mark.parametrize(
    ("report", "expected"),
    [({"enabled": False, "to": ANNA}, None), ({}, None)],
    ids=["disabled", "no-recipient"],
)
def test_no_schedule_when_off_or_nobody_to_send_to(
    tmp_path: Path, upstream: RecordingUpstream, report: dict[str, Any], expected: None
) -> None:
    proxy = ProxyInThread(proxy_config(tmp_path, upstream, report=report))
    try:
        assert proxy.running.report_task is expected
    finally:
        proxy.stop()


def test_a_bad_schedule_or_zone_is_a_config_error(
    tmp_path: Path, upstream: RecordingUpstream
) -> None:
    """Caught when the config is read (so also by `courtesy config check`), before any start."""
    for report, match in (
        ({"to": ANNA, "schedule": "every day"}, r"report\.schedule"),
        ({"to": ANNA, "timezone": "Mars/Olympus"}, r"report\.timezone"),
    ):
        with pytest.raises(ConfigError, match=match):
            proxy_config(tmp_path, upstream, report=report)
