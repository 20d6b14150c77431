"""The weekly report's schedule: "mon 08:00" local time, caught up once after a missed slot.

Which week a slot reports: a slot early in the week (Monday to Wednesday)
sends the week just ended; a slot later in the week (Thursday to Sunday)
sends the week so far. Either way each slot has exactly one week, and the
store's ``sent_reports`` row for (week, recipient) is claimed before sending,
so a report goes out once — not again after a restart, not twice from two
processes.

A missed slot (the machine was asleep or off) is sent at the next start or
wake-up, once, and only the newest one: three weeks off mean one report. The
very first start records the latest slot as skipped instead of sending a
report about a week courtesy did not watch.

Time comes from an injectable clock and the wait from an injectable sleep,
so the tests drive weeks in milliseconds. The wait is cut into naps of at
most five minutes: the monotonic clock behind ``asyncio.sleep`` stops while
the machine sleeps, the wall clock does not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from courtesy.proxy.config import Config
from courtesy.proxy.relay import Upstream
from courtesy.proxy.report import (
    ReportError,
    Week,
    build_report,
    deliver_report,
    refresh_answers,
    report_mail,
    resolve_zone,
)
from courtesy.proxy.settings import ConfigError
from courtesy.store.base import utcnow
from courtesy.store.db import Store, log_failure
from courtesy.store.reports import (
    any_report,
    claim_report,
    finish_report,
    get_report,
    mark_skipped,
)

log = logging.getLogger(__name__)

# Accepted day names: English (short and long) and German (two letters).
_DAYS = {
    **{name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{
        name: i
        for i, name in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
    **{name: i for i, name in enumerate(("mo", "di", "mi", "do", "fr", "sa", "so"))},
}

MAX_NAP = 300.0
RETRY_AFTER = timedelta(minutes=15)
# How long a stop waits for a report being sent.
STOP_GRACE = 30.0

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
# (recipient, raw mail) -> how it went out; raises ReportError when it did not.
Deliver = Callable[[str, bytes], Awaitable[str]]


@dataclass(frozen=True)
class Schedule:
    """A weekly slot: weekday (0 = Monday) and local wall-clock time."""

    weekday: int
    at: time
    zone: tzinfo

    @classmethod
    def parse(cls, text: str, zone: tzinfo) -> Schedule:
        parts = text.strip().lower().split()
        if len(parts) != 2 or parts[0].rstrip(".") not in _DAYS:
            raise ReportError(
                f"report.schedule: {text!r} is not a weekday and time like 'mon 08:00'"
            )
        hour, _, minute = parts[1].partition(":")
        if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
            raise ReportError(f"report.schedule: {parts[1]!r} is not a time like '08:00'")
        return cls(_DAYS[parts[0].rstrip(".")], time(int(hour), int(minute)), zone)

    def _slot_on(self, day_offset: int, now_local: datetime) -> datetime:
        day = now_local.date() + timedelta(days=day_offset)
        # A wall time in a DST gap resolves by zoneinfo's fold rule; normalised through UTC.
        return datetime.combine(day, self.at, tzinfo=self.zone).astimezone(UTC)

    def latest(self, now: datetime) -> datetime:
        """The most recent slot at or before ``now`` (UTC)."""
        local = now.astimezone(self.zone)
        back = (local.weekday() - self.weekday) % 7
        slot = self._slot_on(-back, local)
        if slot > now:
            slot = self._slot_on(-back - 7, local)
        return slot

    def next(self, now: datetime) -> datetime:
        """The first slot after ``now`` (UTC)."""
        latest = self.latest(now)
        local = latest.astimezone(self.zone)
        return self._slot_on(7, local)

    def week_of(self, slot: datetime) -> Week:
        """The week a slot reports: the one just ended (Mon-Wed slots) or the current one."""
        local = slot.astimezone(self.zone)
        week = Week.of(local.date())
        return week.previous() if local.weekday() < 3 else week


class ReportSchedule:
    """Sends the weekly report at its slot; :meth:`run_once` is one look at the clock."""

    def __init__(
        self,
        config: Config,
        store: Store,
        deliver: Deliver,
        *,
        recipient: str | None = None,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
        retry_after: timedelta = RETRY_AFTER,
        max_nap: float = MAX_NAP,
    ) -> None:
        found = recipient or config.report_recipient
        if not found:
            raise ReportError("report: no recipient (set report.to)")
        self.config = config
        self.store = store
        self.deliver = deliver
        self.recipient = found
        self.zone = resolve_zone(config.report.timezone)
        self.schedule = Schedule.parse(config.report.schedule, self.zone)
        self.clock = clock
        self.sleep = sleep
        self.retry_after = retry_after
        self.max_nap = max_nap

    def _claim(self, now: datetime) -> tuple[Week, datetime] | None:
        """The week to send now, claimed in the store; None when there is nothing to do."""
        slot = self.schedule.latest(now)
        week = self.schedule.week_of(slot)
        with self.store.session() as session:
            if get_report(session, str(week), self.recipient) is None and not any_report(
                session, self.recipient
            ):
                mark_skipped(session, str(week), self.recipient, slot)
                log.info("report schedule started; first report at %s", self.schedule.next(now))
                return None
            if claim_report(
                session,
                str(week),
                self.recipient,
                slot,
                now,
                retry_after=self.retry_after,
            ):
                return week, slot
        return None

    async def run_once(self) -> Week | None:
        """Send the latest slot's report if it is still due; returns the week sent."""
        now = self.clock()
        claimed = await asyncio.to_thread(self._claim, now)
        if claimed is None:
            return None
        week, slot = claimed
        error: str | None = None
        via: str = self.config.report.deliver
        try:
            raw = await asyncio.to_thread(self._compose, week, now)
            via = await self.deliver(self.recipient, raw)
        except ReportError as exc:
            error = str(exc)
        except Exception as exc:  # never let one bad week stop the schedule
            log.exception("weekly report for %s failed", week)
            error = f"{type(exc).__name__}: {exc}"
        await asyncio.to_thread(self._finish, week, via, error)
        if error:
            log.warning(
                "weekly report for %s not sent: %s; retrying in %s", week, error, self.retry_after
            )
            return None
        late = now - slot
        log.info(
            "weekly report for %s sent to %s via %s%s",
            week,
            self.recipient,
            via,
            f" ({late} after its slot)" if late > timedelta(minutes=10) else "",
        )
        return week

    def _compose(self, week: Week, now: datetime) -> bytes:
        refresh_answers(self.store)
        report = build_report(
            self.store,
            week=week,
            zone=self.zone,
            after=self.config.unanswered.after,
            language=self.config.language,
            now=now,
            as_of=now,
        )
        return report_mail(report, self.recipient, now=now)

    def _finish(self, week: Week, via: str, error: str | None) -> None:
        with self.store.session() as session:
            finish_report(session, str(week), self.recipient, self.clock(), via=via, error=error)

    def seconds_to_wait(self, now: datetime) -> float:
        """Until the next slot (or a retry of a failed one), in naps of at most ``max_nap``."""
        wait = (self.schedule.next(now) - now).total_seconds()
        return max(0.0, min(wait, self.max_nap, self.retry_after.total_seconds()))

    async def run(self) -> None:
        """Until cancelled: look, send when due, nap. Store trouble is logged and retried."""
        while True:
            look = asyncio.ensure_future(self.run_once())
            try:
                await asyncio.shield(look)
            except asyncio.CancelledError:
                # Stopping: let a look (or a send) in progress finish, so the
                # store is not closed under it and no claim is left half-done.
                await asyncio.wait({look}, timeout=STOP_GRACE)
                raise
            except Exception as exc:
                log_failure(log, exc, "report schedule: looking for a due report failed; retrying")
            await self.sleep(self.seconds_to_wait(self.clock()))

    def start(self) -> asyncio.Task[None]:
        """Run the schedule as a task of the running loop (``courtesy run``)."""
        return asyncio.get_running_loop().create_task(self.run(), name="report-schedule")


def report_schedule(
    config: Config, store: Store, upstream: Upstream, recipient: str
) -> ReportSchedule:
    """The schedule for ``courtesy run`` (which decides whether there is one).

    Built before the proxy starts listening, so a bad ``report.schedule`` or
    ``report.timezone`` stops the start with a one-line config error.
    """

    async def deliver(to: str, raw: bytes) -> str:
        return await deliver_report(config, upstream, to, raw)

    try:
        return ReportSchedule(config, store, deliver, recipient=recipient)
    except ReportError as exc:
        raise ConfigError(str(exc), file=config.source) from None
