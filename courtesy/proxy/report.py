"""The weekly report: what is still waiting, how fast the user answered, what the checks caught.

Built from the store by a handful of aggregate queries (``courtesy.store.reports``)
into a plain :class:`Report`, then rendered three ways: text for the terminal,
HTML for the mail (inline styles, tables, CSS bars — what Thunderbird,
Outlook, Apple Mail and Gmail all show the same), and JSON for scripts.

Weeks are ISO weeks in the user's time zone: a week starts at local Monday
00:00, so a week with a DST change is 167 or 169 hours long, and each day of
the chart is a local day. The mail is multipart/alternative and goes out
through the upstream relay (or into INBOX by IMAP APPEND), never through the
proxy's own front, so it is never checked or held.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from courtesy.proxy.config import Config
from courtesy.proxy.notices import COMMAND_DOMAIN, NoticeError, NoticeSender
from courtesy.proxy.relay import Upstream
from courtesy.store.db import Store
from courtesy.store.inbound import ingest_proxy_log, resolve_answered
from courtesy.store.reports import (
    CheckFigures,
    MessageRow,
    ResponseFigures,
    answered_late,
    answers_per_day,
    awaiting_as_of,
    check_figures,
    response_figures,
)

Format = Literal["text", "html", "json"]

# Rows per list in the text and HTML forms: a mail stays readable in ten
# seconds; the JSON form lists everything.
MAX_LISTED = 50


class ReportError(ValueError):
    """A report cannot be made or sent as asked; the message says why in one line."""


# --- weeks and time zones -------------------------------------------------------------------


def resolve_zone(name: str | None) -> tzinfo:
    """``report.timezone``, else the machine's zone (TZ, then /etc/localtime), else UTC.

    A real zone (not a fixed offset) is needed so weeks across a DST change
    start and end at local midnight.
    """
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ReportError(f"report.timezone: {name!r} is not a known time zone") from None
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return ZoneInfo(env)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    try:
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
        with localtime.open("rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ZoneInfoNotFoundError, ValueError):
        return UTC


@dataclass(frozen=True, order=True)
class Week:
    """An ISO week ("2026-W10")."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Week:
        value = text.strip().upper()
        year_text, sep, number_text = value.partition("-W")
        if not sep or not year_text.isdigit() or not number_text.isdigit():
            raise ReportError(f"{text!r} is not a week like 2026-W10")
        year, number = int(year_text), int(number_text)
        try:
            date.fromisocalendar(year, number, 1)
        except ValueError:
            raise ReportError(f"{text!r}: year {year} has no week {number}") from None
        return cls(year, number)

    @classmethod
    def of(cls, day: date) -> Week:
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    @classmethod
    def containing(cls, moment: datetime, zone: tzinfo) -> Week:
        return cls.of(moment.astimezone(zone).date())

    def __str__(self) -> str:
        return f"{self.year:04d}-W{self.number:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def previous(self) -> Week:
        return Week.of(self.monday - timedelta(days=7))

    def following(self) -> Week:
        return Week.of(self.monday + timedelta(days=7))

    def day_starts(self, zone: tzinfo) -> list[datetime]:
        """Local midnight of each day, Monday to the next Monday (8 instants, in UTC)."""
        return [
            _local_midnight(self.monday + timedelta(days=i), zone).astimezone(UTC) for i in range(8)
        ]

    def start(self, zone: tzinfo) -> datetime:
        return _local_midnight(self.monday, zone).astimezone(UTC)

    def end(self, zone: tzinfo) -> datetime:
        return _local_midnight(self.monday + timedelta(days=7), zone).astimezone(UTC)


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    # zoneinfo resolves a wall time in a DST gap or overlap by its fold rule;
    # the round trip through UTC makes the result a real instant.
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC).astimezone(zone)


# --- the report's data ---------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    week: Week
    zone: tzinfo
    language: str
    # The moment the report describes: now, or the end of a past week.
    as_of: datetime
    after: timedelta
    awaiting: list[MessageRow]
    answered_late: list[MessageRow]
    this_week: ResponseFigures
    week_before: ResponseFigures
    # Answers given per local day, Monday first.
    per_day: list[int]
    checks: CheckFigures

    def age_days(self, row: MessageRow) -> int:
        return max(0, int((self.as_of - row.received_at) / timedelta(days=1)))

    def groups(self) -> list[tuple[str, list[MessageRow]]]:
        """Awaiting mail split into "over a week" and "this week", oldest first."""
        old = [r for r in self.awaiting if self.age_days(r) >= 7]
        recent = [r for r in self.awaiting if self.age_days(r) < 7]
        return [(key, rows) for key, rows in (("over_week", old), ("this_week", recent)) if rows]


def build_report(
    store: Store,
    *,
    week: Week,
    zone: tzinfo,
    after: timedelta,
    language: str,
    now: datetime,
    as_of: datetime | None = None,
) -> Report:
    """Read one week's report from the store, in one read-only session.

    ``as_of`` defaults to ``now`` for the current week and to the end of a
    past week; the schedule passes ``now`` so Monday's mail about last week
    shows what is waiting at the moment it is sent.
    """
    start, end = week.start(zone), week.end(zone)
    if as_of is None:
        as_of = min(now, end)
    before = week.previous()
    until = min(end, as_of)
    with store.session() as session:
        awaiting = awaiting_as_of(session, after=after, as_of=as_of, now=now)
        late = answered_late(session, since=start, until=until, after=after)
        this_week = response_figures(session, since=start, until=end, as_of=as_of)
        week_before = response_figures(
            session, since=before.start(zone), until=before.end(zone), as_of=as_of
        )
        per_day = answers_per_day(session, week.day_starts(zone))
        checks = check_figures(session, since=start, until=end)
    return Report(
        week=week,
        zone=zone,
        language=language,
        as_of=as_of,
        after=after,
        awaiting=awaiting,
        answered_late=late,
        this_week=this_week,
        week_before=week_before,
        per_day=per_day,
        checks=checks,
    )


def refresh_answers(store: Store) -> None:
    """Count replies sent through the proxy since the poller's last pass before reporting."""
    with store.session() as session:
        ingest_proxy_log(session)
        session.flush()
        resolve_answered(session)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th quantile (0..1) of sorted values, interpolated between neighbours."""
    if not values:
        return None
    pos = (len(values) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return values[low] + (values[high] - values[low]) * (pos - low)


# --- wording -----------------------------------------------------------------------------------

_TEXTS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "title": "Your week in mail",
        "subject": "Your week in mail, {week}: {waiting}",
        "subject_waiting": "{n} waiting for an answer",
        "subject_one": "1 waiting for an answer",
        "subject_none": "nothing waiting",
        "intro": "Here is how your correspondence stood in week {number} ({span}).",
        "awaiting": "Awaiting your answer",
        "over_week": "Over a week",
        "this_week_group": "This week",
        "none_waiting": "Nothing is waiting. Well done.",
        "more": "… and {n} more (courtesy report --format json lists them all)",
        "late": "Answered this week after a wait",
        "none_late": "Nothing was answered late this week.",
        "col_received": "Received",
        "col_from": "From",
        "col_subject": "Subject",
        "col_days": "Days",
        "col_read": "Read",
        "col_waited": "Waited",
        "read": "read",
        "unread": "unread",
        "no_subject": "(no subject)",
        "speed": "How fast you answered",
        "none_speed": "No mail from people arrived in these two weeks.",
        "col_this": "This week",
        "col_before": "Week before",
        "received": "Received from people",
        "answered": "Answered",
        "median": "Median time to answer",
        "p90": "9 in 10 answered within",
        "per_day": "Answers per day",
        "checks": "What the checks caught",
        "none_checks": "No outgoing mail was checked this week.",
        "checked": "checked",
        "relayed": "sent",
        "held": "held",
        "rejected": "rejected",
        "released": "released",
        "discarded": "discarded",
        "overridden": "sent anyway",
        "failed": "refused upstream",
        "still_held": "{n} still held, waiting for you: courtesy held list",
        "findings": "Findings",
        "misspelled": "Names most often misspelled",
        "days": "{n} days",
        "day": "1 day",
        "hours": "{n} h",
        "minutes": "{n} min",
        "footer": "Sent by courtesy, your local mail proxy. Times are {zone}.",
    },
    "de": {
        "title": "Ihre Mail-Woche",
        "subject": "Ihre Mail-Woche {week}: {waiting}",
        "subject_waiting": "{n} warten auf Antwort",
        "subject_one": "1 wartet auf Antwort",
        "subject_none": "nichts wartet",
        "intro": "So stand Ihre Korrespondenz in KW {number} ({span}).",
        "awaiting": "Wartet auf Ihre Antwort",
        "over_week": "Über eine Woche",
        "this_week_group": "Diese Woche",
        "none_waiting": "Nichts wartet auf Antwort. Gut gemacht.",
        "more": "… und {n} weitere (courtesy report --format json listet alle)",
        "late": "Diese Woche nach längerem Warten beantwortet",
        "none_late": "Diese Woche wurde nichts verspätet beantwortet.",
        "col_received": "Eingang",
        "col_from": "Von",
        "col_subject": "Betreff",
        "col_days": "Tage",
        "col_read": "Gelesen",
        "col_waited": "Gewartet",
        "read": "gelesen",
        "unread": "ungelesen",
        "no_subject": "(ohne Betreff)",
        "speed": "Wie schnell Sie geantwortet haben",
        "none_speed": "In diesen zwei Wochen kam keine Mail von Menschen an.",
        "col_this": "Diese Woche",
        "col_before": "Vorwoche",
        "received": "Eingang von Menschen",
        "answered": "Beantwortet",
        "median": "Antwortzeit (Median)",
        "p90": "9 von 10 beantwortet in",
        "per_day": "Antworten pro Tag",
        "checks": "Was die Prüfungen gefunden haben",
        "none_checks": "Diese Woche wurde keine ausgehende Mail geprüft.",
        "checked": "geprüft",
        "relayed": "gesendet",
        "held": "zurückgehalten",
        "rejected": "abgelehnt",
        "released": "freigegeben",
        "discarded": "verworfen",
        "overridden": "trotzdem gesendet",
        "failed": "vom Server abgelehnt",
        "still_held": "{n} noch zurückgehalten, sie warten auf Sie: courtesy held list",
        "findings": "Gefunden",
        "misspelled": "Am häufigsten falsch geschriebene Namen",
        "days": "{n} Tage",
        "day": "1 Tag",
        "hours": "{n} Std.",
        "minutes": "{n} Min.",
        "footer": "Gesendet von courtesy, Ihrem lokalen Mail-Proxy. Zeiten in {zone}.",
    },
}

_WEEKDAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "de": ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
}
_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "de": (
        "Jan.",
        "Feb.",
        "März",
        "Apr.",
        "Mai",
        "Juni",
        "Juli",
        "Aug.",
        "Sep.",
        "Okt.",
        "Nov.",
        "Dez.",
    ),
}

_DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_CODES: Mapping[str, Mapping[str, str]] = {
    "en": {
        "greeting.missing": "no greeting",
        "name.misspelled": "name misspelled",
        "name.wrong_person": "greeting names someone else",
        "name.salutation_mismatch": "Mr/Ms mixed up",
        "cc.too_many": "too many on Cc",
        "cc.recipients_exposed": "addresses exposed (use Bcc)",
        "cc.added_to_thread": "people added to a thread",
        "closing.missing": "no closing",
    },
    "de": {
        "greeting.missing": "keine Anrede",
        "name.misspelled": "Name falsch geschrieben",
        "name.wrong_person": "Anrede nennt jemand anderen",
        "name.salutation_mismatch": "Herr/Frau verwechselt",
        "cc.too_many": "zu viele in Cc",
        "cc.recipients_exposed": "Adressen offengelegt (Bcc nutzen)",
        "cc.added_to_thread": "neue Leute im Verlauf",
        "closing.missing": "kein Gruß",
    },
}


def _t(language: str, key: str, **values: Any) -> str:
    table = _TEXTS.get(language, _TEXTS["en"])
    return table[key].format(**values)


def _lang(language: str) -> str:
    return language if language in _TEXTS else "en"


def _number(value: float, language: str) -> str:
    text = f"{value:.1f}".removesuffix(".0")
    return text.replace(".", ",") if language == "de" else text


def say_hours(hours: float | None, language: str) -> str:
    """A time to answer, in the unit a person would use: minutes, hours, or days."""
    if hours is None:
        return "–"
    if hours < 1:
        return _t(language, "minutes", n=max(1, round(hours * 60)))
    if hours < 48:
        return _t(language, "hours", n=_number(hours, language))
    days = hours / 24
    if round(days, 1) == 1:
        return _t(language, "day")
    return _t(language, "days", n=_number(days, language))


def _say_days(count: int, language: str) -> str:
    return _t(language, "day") if count == 1 else _t(language, "days", n=count)


def local_day(moment: datetime, report: Report) -> str:
    """ "Mon 2 Mar" / "Mo 2. März": weekday and date, in the report's zone."""
    lang = _lang(report.language)
    local = moment.astimezone(report.zone)
    weekday = _WEEKDAYS[lang][local.weekday()]
    month = _MONTHS[lang][local.month - 1]
    if lang == "de":
        return f"{weekday} {local.day}. {month}"
    return f"{weekday} {local.day} {month}"


def week_span(report: Report) -> str:
    lang = _lang(report.language)
    first = report.week.monday
    last = first + timedelta(days=6)
    months = _MONTHS[lang]
    if lang == "de":
        head = (
            f"{first.day}."
            if first.month == last.month
            else f"{first.day}. {months[first.month - 1]}"
        )
        return f"{head}–{last.day}. {months[last.month - 1]} {last.year}"
    head = f"{first.day}" if first.month == last.month else f"{first.day} {months[first.month - 1]}"
    return f"{head}–{last.day} {months[last.month - 1]} {last.year}"


def sender(row: MessageRow) -> str:
    name = " ".join((row.from_name or "").split())
    if name and name.lower() != row.from_address:
        return f"{name} <{row.from_address}>"
    return row.from_address


def _subject(row: MessageRow, language: str) -> str:
    return " ".join((row.subject or "").split()) or _t(language, "no_subject")


def _share(answered: int, received: int) -> str:
    if not received:
        return str(answered)
    return f"{answered} ({round(100 * answered / received)} %)"


def _check_counts(checks: CheckFigures, language: str) -> list[tuple[str, int]]:
    """(label, count) of what happened to outgoing mail, zero counts left out."""
    actions = checks.actions
    pairs = [
        ("checked", sum(actions.values())),
        ("relayed", actions.get("relay", 0) + actions.get("tryout", 0)),
        ("held", actions.get("hold", 0)),
        ("rejected", actions.get("reject", 0)),
        ("released", checks.closed.get("released", 0)),
        ("discarded", checks.closed.get("discarded", 0) + checks.closed.get("expired", 0)),
        ("overridden", actions.get("override", 0)),
        ("failed", actions.get("failed", 0)),
    ]
    return [(_t(language, key), n) for key, n in pairs if n or key == "checked"]


def _findings(checks: CheckFigures, language: str) -> list[tuple[str, str, int]]:
    """(code, label, count), most frequent first."""
    labels = _CODES.get(language, _CODES["en"])
    ordered = sorted(checks.findings.items(), key=lambda item: (-item[1], item[0]))
    return [(code, labels.get(code, code), n) for code, n in ordered]


def _misspelled(checks: CheckFigures, limit: int = 5) -> list[tuple[str, str, int]]:
    ordered = sorted(checks.misspelled.items(), key=lambda item: (-item[1], item[0]))
    return [(written, right, n) for (written, right), n in ordered[:limit]]


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone)


# --- JSON ---------------------------------------------------------------------------------------


def _iso(moment: datetime | None, zone: tzinfo) -> str | None:
    return moment.astimezone(zone).isoformat() if moment is not None else None


def _hours(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _figures_json(week: Week, figures: ResponseFigures) -> dict[str, Any]:
    return {
        "week": str(week),
        "received": figures.received,
        "answered": figures.answered,
        "median_hours": _hours(percentile(figures.hours, 0.5)),
        "p90_hours": _hours(percentile(figures.hours, 0.9)),
    }


def to_json(report: Report) -> dict[str, Any]:
    """``courtesy report --format json``: the keys PRODUCT.md names, times ISO 8601 with offset."""
    zone = report.zone
    checks = report.checks
    return {
        "week": str(report.week),
        "awaiting": [
            {
                "message_id": row.message_id,
                "from": sender(row),
                "subject": row.subject,
                "received": _iso(row.received_at, zone),
                "seen": row.seen,
                "age_days": report.age_days(row),
            }
            for row in report.awaiting
        ],
        "answered_late": [
            {
                "message_id": row.message_id,
                "from": sender(row),
                "subject": row.subject,
                "received": _iso(row.received_at, zone),
                "answered": _iso(row.answered_at, zone),
                "waited_days": round(
                    (row.answered_at - row.received_at) / timedelta(days=1)
                    if row.answered_at
                    else 0.0,
                    1,
                ),
                "how": row.answered_how,
            }
            for row in report.answered_late
        ],
        "response": {
            "this_week": _figures_json(report.week, report.this_week),
            "week_before": _figures_json(report.week.previous(), report.week_before),
            "answers_per_weekday": dict(zip(_DAY_KEYS, report.per_day, strict=False)),
        },
        "checks": {
            "checked": sum(checks.actions.values()),
            "actions": dict(sorted(checks.actions.items())),
            "held": {
                **{
                    state: checks.closed.get(state, 0)
                    for state in ("released", "discarded", "expired")
                },
                "still_held": checks.still_held,
            },
            "findings": dict(sorted(checks.findings.items(), key=lambda i: (-i[1], i[0]))),
            "misspelled": [
                {"written": w, "right": r, "count": n} for w, r, n in _misspelled(checks, 20)
            ],
        },
    }


# --- text -------------------------------------------------------------------------------------

_BOLD, _DIM, _YELLOW, _GREEN, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[33m", "\x1b[32m", "\x1b[0m"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(report: Report, *, color: bool = False) -> str:
    """The terminal form: short sections, one table each; ANSI colour only when asked."""
    lang = _lang(report.language)

    def paint(text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if color else text

    def heading(text: str) -> str:
        return paint(text, _BOLD)

    out = [
        heading(f"{_t(lang, 'title')} · {report.week}"),
        _t(lang, "intro", number=report.week.number, span=week_span(report)),
        "",
        heading(f"{_t(lang, 'awaiting')} ({len(report.awaiting)})"),
    ]
    if not report.awaiting:
        out.append("  " + paint(_t(lang, "none_waiting"), _GREEN))
    width = min(48, max((len(sender(r)) for r in report.awaiting), default=0))
    for key, rows in report.groups():
        label = _t(lang, "over_week" if key == "over_week" else "this_week_group")
        out.append("  " + paint(label, _YELLOW if key == "over_week" else _BOLD))
        out.append(
            paint(
                f"    {_t(lang, 'col_received'):<12} {_t(lang, 'col_days'):>4}  "
                f"{_t(lang, 'col_from'):<{width}}  {_t(lang, 'col_subject')}",
                _DIM,
            )
        )
        for row in rows[:MAX_LISTED]:
            state = "" if row.seen else paint(f"  ({_t(lang, 'unread')})", _DIM)
            out.append(
                f"    {local_day(row.received_at, report):<12} {report.age_days(row):>4}  "
                f"{_clip(sender(row), width):<{width}}  {_clip(_subject(row, lang), 40)}{state}"
            )
        if len(rows) > MAX_LISTED:
            out.append("    " + paint(_t(lang, "more", n=len(rows) - MAX_LISTED), _DIM))
    out += ["", heading(_t(lang, "late"))]
    if not report.answered_late:
        out.append("  " + _t(lang, "none_late"))
    late_width = min(48, max((len(sender(r)) for r in report.answered_late), default=0))
    for row in report.answered_late[:MAX_LISTED]:
        waited = (row.answered_at or report.as_of) - row.received_at
        out.append(
            f"    {_say_days(int(waited / timedelta(days=1)), lang):<10} "
            f"{_clip(sender(row), late_width):<{late_width}}  {_clip(_subject(row, lang), 40)}"
        )

    if len(report.answered_late) > MAX_LISTED:
        out.append("    " + _t(lang, "more", n=len(report.answered_late) - MAX_LISTED))
    out += ["", heading(_t(lang, "speed"))]
    now_f, before_f = report.this_week, report.week_before
    if not now_f.received and not before_f.received and not sum(report.per_day):
        out.append("  " + _t(lang, "none_speed"))
    else:
        table = [
            ("", _t(lang, "col_this"), _t(lang, "col_before")),
            (_t(lang, "received"), str(now_f.received), str(before_f.received)),
            (
                _t(lang, "answered"),
                _share(now_f.answered, now_f.received),
                _share(before_f.answered, before_f.received),
            ),
            (
                _t(lang, "median"),
                say_hours(percentile(now_f.hours, 0.5), lang),
                say_hours(percentile(before_f.hours, 0.5), lang),
            ),
            (
                _t(lang, "p90"),
                say_hours(percentile(now_f.hours, 0.9), lang),
                say_hours(percentile(before_f.hours, 0.9), lang),
            ),
        ]
        first = max(len(r[0]) for r in table)
        for i, (label, a, b) in enumerate(table):
            line = f"  {label:<{first}}  {a:>14}  {b:>14}"
            out.append(paint(line, _DIM) if i == 0 else line)
        out += ["", f"  {_t(lang, 'per_day')}"]
        top = max(report.per_day, default=0) or 1
        for day, count in zip(_WEEKDAYS[lang], report.per_day, strict=False):
            bar = "█" * round(20 * count / top) if count else "·"
            out.append(f"    {day:<3} {paint(bar, _GREEN)} {count}")

    out += ["", heading(_t(lang, "checks"))]
    checks = report.checks
    if not sum(checks.actions.values()) and not checks.closed:
        out.append("  " + _t(lang, "none_checks"))
    else:
        out.append("  " + " · ".join(f"{label} {n}" for label, n in _check_counts(checks, lang)))
        found = _findings(checks, lang)
        if found:
            out.append(f"  {_t(lang, 'findings')}:")
            out += [f"    {n:>4}  {label} ({code})" for code, label, n in found]
        names = _misspelled(checks)
        if names:
            out.append(f"  {_t(lang, 'misspelled')}:")
            out += [f"    {n:>4}  {w} → {r}" for w, r, n in names]
    if checks.still_held:
        out.append("  " + paint(_t(lang, "still_held", n=checks.still_held), _YELLOW))
    out += ["", paint(_t(lang, "footer", zone=_zone_name(report.zone)), _DIM)]
    return "\n".join(out) + "\n"


# --- HTML ---------------------------------------------------------------------------------------

_FONT = "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif"
_CELL = "padding:4px 8px;border-bottom:1px solid #eeeeee;vertical-align:top;font-size:14px"
_HEAD = "padding:4px 8px;text-align:left;font-size:12px;color:#777777;font-weight:normal"
_BAR = "#5b8c5a"
_CODE = "color:#888888;font-size:12px"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _h2(text: str) -> str:
    return (
        f'<h2 style="margin:24px 0 8px;font-size:18px;font-weight:bold;color:#222222;{_FONT}">'
        f"{_e(text)}</h2>"
    )


def _nowrap(text: str) -> str:
    return f'<span style="white-space:nowrap">{_e(text)}</span>'


def _sender_html(row: MessageRow) -> str:
    """The name, and the address small and grey beneath it."""
    name = " ".join((row.from_name or "").split())
    address = _e(row.from_address)
    if not name or name.lower() == row.from_address:
        return address
    return f'{_e(name)}<br /><span style="color:#888888;font-size:12px">{address}</span>'


def _p(text: str, style: str = "") -> str:
    return f'<p style="margin:4px 0 8px;font-size:14px;color:#333333;{style}">{_e(text)}</p>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    """A data table; cells in ``rows`` are already HTML."""
    cols = "".join(
        f'<th align="{a}" style="{_HEAD};text-align:{a}">{_e(h)}</th>'
        for h, a in zip(head, align, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td align="{a}" style="{_CELL};text-align:{a}">{cell}</td>'
            for cell, a in zip(row, align, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="border-collapse:collapse;width:100%;{_FONT}"><tr>{cols}</tr>{body}</table>'
    )


def _bar_chart(labels: Sequence[str], counts: Sequence[int]) -> str:
    """Horizontal bars drawn with table cells: no images, renders in every mail client."""
    top = max(counts, default=0) or 1
    rows = []
    for label, count in zip(labels, counts, strict=False):
        width = round(240 * count / top)
        bar = (
            '<table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr>'
            f'<td width="{width}" height="14" bgcolor="{_BAR}" '
            f'style="width:{width}px;height:14px;background-color:{_BAR};font-size:1px;'
            'line-height:1px">&#8203;</td></tr></table>'
            if width
            else ""
        )
        rows.append(
            "<tr>"
            f'<td style="padding:2px 8px 2px 0;font-size:13px;color:#555555;width:32px">'
            f"{_e(label)}</td>"
            f'<td style="padding:2px 0;width:248px">{bar}</td>'
            f'<td style="padding:2px 0 2px 8px;font-size:13px;color:#333333">{count}</td>'
            "</tr>"
        )
    return (
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
        f'style="border-collapse:collapse;margin:4px 0 8px;{_FONT}">{"".join(rows)}</table>'
    )


def render_html(report: Report) -> str:
    """The mail form: inline styles and tables only; no scripts, no external images."""
    lang = _lang(report.language)
    parts = [
        f'<h1 style="margin:0 0 4px;font-size:22px;color:#222222;{_FONT}">'
        f"{_e(_t(lang, 'title'))} · {_e(report.week)}</h1>",
        _p(_t(lang, "intro", number=report.week.number, span=week_span(report)), "color:#555555"),
        _h2(f"{_t(lang, 'awaiting')} ({len(report.awaiting)})"),
    ]
    if not report.awaiting:
        parts.append(_p(_t(lang, "none_waiting"), "color:#2e7d32"))
    for key, rows in report.groups():
        label = _t(lang, "over_week" if key == "over_week" else "this_week_group")
        colour = "#b26a00" if key == "over_week" else "#555555"
        parts.append(
            f'<h3 style="margin:12px 0 4px;font-size:14px;color:{colour};{_FONT}">{_e(label)}</h3>'
        )
        table_rows = [
            [
                _nowrap(local_day(row.received_at, report)),
                _sender_html(row),
                (
                    _e(_subject(row, lang))
                    if row.seen
                    else f"<strong>{_e(_subject(row, lang))}</strong>"
                ),
                str(report.age_days(row)),
                _e(_t(lang, "read" if row.seen else "unread")),
            ]
            for row in rows[:MAX_LISTED]
        ]
        parts.append(
            _table(
                [
                    _t(lang, "col_received"),
                    _t(lang, "col_from"),
                    _t(lang, "col_subject"),
                    _t(lang, "col_days"),
                    _t(lang, "col_read"),
                ],
                table_rows,
                ["left", "left", "left", "right", "left"],
            )
        )
        if len(rows) > MAX_LISTED:
            parts.append(_p(_t(lang, "more", n=len(rows) - MAX_LISTED), "color:#777777"))
    parts.append(
        f'<h3 style="margin:16px 0 4px;font-size:14px;color:#555555;{_FONT}">'
        f"{_e(_t(lang, 'late'))}</h3>"
    )
    if not report.answered_late:
        parts.append(_p(_t(lang, "none_late")))
    else:
        parts.append(
            _table(
                [_t(lang, "col_waited"), _t(lang, "col_from"), _t(lang, "col_subject")],
                [
                    [
                        _e(
                            _say_days(
                                int(
                                    ((row.answered_at or report.as_of) - row.received_at)
                                    / timedelta(days=1)
                                ),
                                lang,
                            )
                        ),
                        _sender_html(row),
                        _e(_subject(row, lang)),
                    ]
                    for row in report.answered_late[:MAX_LISTED]
                ],
                ["left", "left", "left"],
            )
        )
        if len(report.answered_late) > MAX_LISTED:
            more = len(report.answered_late) - MAX_LISTED
            parts.append(_p(_t(lang, "more", n=more), "color:#777777"))

    parts.append(_h2(_t(lang, "speed")))
    now_f, before_f = report.this_week, report.week_before
    if not now_f.received and not before_f.received and not sum(report.per_day):
        parts.append(_p(_t(lang, "none_speed")))
    else:
        parts.append(
            _table(
                ["", _t(lang, "col_this"), _t(lang, "col_before")],
                [
                    [_e(_t(lang, "received")), str(now_f.received), str(before_f.received)],
                    [
                        _e(_t(lang, "answered")),
                        _e(_share(now_f.answered, now_f.received)),
                        _e(_share(before_f.answered, before_f.received)),
                    ],
                    [
                        _e(_t(lang, "median")),
                        _e(say_hours(percentile(now_f.hours, 0.5), lang)),
                        _e(say_hours(percentile(before_f.hours, 0.5), lang)),
                    ],
                    [
                        _e(_t(lang, "p90")),
                        _e(say_hours(percentile(now_f.hours, 0.9), lang)),
                        _e(say_hours(percentile(before_f.hours, 0.9), lang)),
                    ],
                ],
                ["left", "right", "right"],
            )
        )
        parts.append(
            f'<p style="margin:12px 0 4px;font-size:13px;color:#555555">'
            f"{_e(_t(lang, 'per_day'))}</p>"
        )
        parts.append(_bar_chart(_WEEKDAYS[lang], report.per_day))

    parts.append(_h2(_t(lang, "checks")))
    checks = report.checks
    if not sum(checks.actions.values()) and not checks.closed:
        parts.append(_p(_t(lang, "none_checks")))
    else:
        parts.append(_p(" · ".join(f"{label} {n}" for label, n in _check_counts(checks, lang))))
        found = _findings(checks, lang)
        if found:
            parts.append(
                _table(
                    [_t(lang, "findings"), ""],
                    [
                        [f'{_e(label)} <code style="{_CODE}">{_e(code)}</code>', str(n)]
                        for code, label, n in found
                    ],
                    ["left", "right"],
                )
            )
        names = _misspelled(checks)
        if names:
            parts.append(
                f'<p style="margin:12px 0 4px;font-size:13px;color:#555555">'
                f"{_e(_t(lang, 'misspelled'))}</p>"
            )
            parts.append(
                _table(
                    ["", ""],
                    [[f"{_e(w)} → <strong>{_e(r)}</strong>", str(n)] for w, r, n in names],
                    ["left", "right"],
                )
            )
    if checks.still_held:
        parts.append(_p(_t(lang, "still_held", n=checks.still_held), "color:#b26a00"))
    parts.append(
        _p(_t(lang, "footer", zone=_zone_name(report.zone)), "color:#999999;font-size:12px")
    )
    title = f"{_t(lang, 'title')} · {report.week}"
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head>'
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8" />'
        '<meta name="viewport" content="width=device-width, initial-scale=1" />'
        f"<title>{_e(title)}</title></head>"
        f'<body style="margin:0;padding:0;background-color:#f4f4f2;{_FONT}">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'bgcolor="#f4f4f2" style="background-color:#f4f4f2"><tr>'
        '<td align="center" style="padding:24px 12px">'
        '<table role="presentation" width="640" cellpadding="0" cellspacing="0" border="0" '
        'bgcolor="#ffffff" style="width:100%;max-width:640px;background-color:#ffffff;'
        f'border:1px solid #e4e4e0;{_FONT}">'
        f'<tr><td style="padding:24px 28px;color:#222222">{"".join(parts)}</td></tr>'
        "</table></td></tr></table></body></html>\n"
    )


def render(report: Report, fmt: Format, *, color: bool = False) -> str:
    if fmt == "json":
        return json.dumps(to_json(report), ensure_ascii=False, indent=2) + "\n"
    if fmt == "html":
        return render_html(report)
    return render_text(report, color=color)


# --- the mail ---------------------------------------------------------------------------------


def mail_subject(report: Report) -> str:
    lang = _lang(report.language)
    n = len(report.awaiting)
    if n == 0:
        waiting = _t(lang, "subject_none")
    elif n == 1:
        waiting = _t(lang, "subject_one")
    else:
        waiting = _t(lang, "subject_waiting", n=n)
    return _t(lang, "subject", week=report.week, waiting=waiting)


def report_mail(report: Report, recipient: str, *, now: datetime | None = None) -> bytes:
    """The report as a multipart/alternative mail (text, then HTML) to ``recipient``."""
    message = EmailMessage(policy=SMTP_POLICY)
    try:
        message["From"] = Address("courtesy", addr_spec=recipient)
        message["To"] = Address(addr_spec=recipient)
    except (ValueError, IndexError):
        raise ReportError(f"report.to: {recipient!r} is not a mail address") from None
    message["Subject"] = mail_subject(report)
    message["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(report.zone))
    message["Message-ID"] = make_msgid("courtesy-report", domain=COMMAND_DOMAIN)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Courtesy-Notice"] = f"report {report.week}"
    message.set_content(render_text(report), cte="quoted-printable")
    message.add_alternative(render_html(report), subtype="html", cte="quoted-printable")
    return message.as_bytes()


async def deliver_report(config: Config, upstream: Upstream, recipient: str, raw: bytes) -> str:
    """Send the mail through upstream, or APPEND it to INBOX (``report.deliver = "imap"``).

    Reuses the hold notices' delivery, which never passes the proxy's front.
    Returns how it went out ("smtp" | "imap"); raises ReportError.
    """
    via = config.report.deliver
    if via == "imap" and config.imap is None:
        raise ReportError('report.deliver = "imap" needs an [imap] section')
    sender = NoticeSender(config if via == "imap" else replace(config, imap=None), upstream)
    try:
        await sender.deliver(recipient, raw)
    except NoticeError as exc:
        raise ReportError(str(exc)) from None
    return via
