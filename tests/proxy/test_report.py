"""The weekly report from a store filled by the real poller (Dovecot) and the real proxy.

Times are placed around a week two weeks back: INTERNALDATE for received
mail, the Date header of replies in the Sent folder for answers. Replies sent
through the proxy are answered "now", which the current week's report shows.
"""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from courtesy.proxy.cli import main
from courtesy.proxy.config import Config
from courtesy.proxy.poller import poll_once
from courtesy.proxy.report import (
    MAX_LISTED,
    Report,
    Week,
    build_report,
    refresh_answers,
    render_html,
    render_text,
    report_mail,
    to_json,
)
from courtesy.store.base import utcnow
from courtesy.store.db import Store, open_store
from courtesy.store.held import HeldMessage
from courtesy.store.inbound import awaiting_answer
from courtesy.store.outgoing import OutgoingMessage
from courtesy.store.reports import awaiting_as_of
from tests.conftest import require_tool
from tests.dovecot import PASSWORD, Dovecot, make_message
from tests.servers import ProxyInThread, RecordingUpstream, proxy_config

ANNA = "anna@example.test"
BERLIN = ZoneInfo("Europe/Berlin")
AFTER = timedelta(days=2)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass
class Scene:
    """An IMAP account with mail placed around week ``week`` (two weeks back)."""

    dovecot: Dovecot
    user: str
    config: Config
    store: Store
    week: Week
    received: dict[str, datetime]
    answered: dict[str, datetime]

    @property
    def start(self) -> datetime:
        return self.week.start(BERLIN)

    @property
    def end(self) -> datetime:
        return self.week.end(BERLIN)

    def poll(self) -> None:
        poll_once(self.config, self.store, progress=False)

    def report(self, week: Week | None = None, language: str = "en") -> Report:
        return build_report(
            self.store,
            week=week or self.week,
            zone=BERLIN,
            after=AFTER,
            language=language,
            now=utcnow(),
        )


def _mid(name: str) -> str:
    return f"<{name}@partner.example>"


@pytest.fixture
def scene(tmp_path: Path, dovecot: Dovecot, upstream: RecordingUpstream) -> Iterator[Scene]:
    user = dovecot.new_user()
    config = proxy_config(
        tmp_path,
        upstream,
        imap=dovecot.imap_settings(user, timeout="10s"),
        addresses=[ANNA, user],
        report={"to": ANNA, "timezone": "Europe/Berlin"},
        unanswered={"after": "2d"},
    )
    store = open_store(config.store_url)
    week = Week.containing(utcnow(), BERLIN).previous().previous()
    start, end = week.start(BERLIN), week.end(BERLIN)
    received = {
        "old": start - 10 * DAY,  # never answered: waiting over a week
        "late": start - 3 * DAY,  # the week before; answered on Tuesday: late but done
        "asked": start + DAY + 8 * HOUR,  # answered through the proxy, weeks later
        "read": start + 2 * DAY + 9 * HOUR,  # read, never answered
        "quick": start + 3 * DAY + 8 * HOUR,  # answered after three hours
        "fresh": end - DAY,  # too young to be waiting at the week's end
    }
    answered = {"late": start + DAY + 10 * HOUR, "quick": start + 3 * DAY + 11 * HOUR}
    senders = {
        "old": "Thomas Meier <thomas.meier@partner.example>",
        "late": "Jürgen Weber <j.weber@kunde.example>",
        "asked": "Peter Brown <peter.brown@client.example>",
        "read": "Sarah Green <sarah.green@client.example>",
        "quick": "Lisa Rossi <lisa.rossi@partner.example>",
        "fresh": "Aylin Yılmaz <aylin@kunde.example>",
    }
    with dovecot.client(user) as client:
        for name, when in received.items():
            raw = make_message(
                sender=senders[name],
                to=ANNA,
                subject=f"Frage {name}",
                message_id=_mid(name),
                date=when,
            )
            flags = [b"\\Seen"] if name == "read" else []
            client.append("INBOX", raw, flags, msg_time=when)
        # Not from a person / not to the user directly: counted nowhere.
        news = make_message(
            sender="Verband <news@verband.example>",
            subject="Newsletter",
            message_id=_mid("news"),
            headers={"List-Id": "<news.verband.example>", "Precedence": "list"},
        )
        client.append("INBOX", news, [], msg_time=start + 2 * DAY)
        cc_only = make_message(
            to="team@partner.example", cc=ANNA, subject="FYI", message_id=_mid("cc")
        )
        client.append("INBOX", cc_only, [], msg_time=start + 2 * DAY)
        # Answers written in another mail program land in Sent.
        for name, when in answered.items():
            reply = make_message(
                sender=f"Anna Schmidt <{ANNA}>",
                to=senders[name],
                subject=f"Re: Frage {name}",
                message_id=f"<re-{name}@example.test>",
                in_reply_to=_mid(name),
                references=_mid(name),
                date=when,
            )
            client.append("Sent", reply, [b"\\Seen"], msg_time=when)
    made = Scene(dovecot, user, config, store, week, received, answered)
    made.poll()
    yield made
    store.close()


def _age(as_of: datetime, received: datetime) -> int:
    return int((as_of - received) / DAY)


def test_a_past_week_shows_what_waited_at_its_end_and_how_fast_it_was_answered(
    scene: Scene,
) -> None:
    data = to_json(scene.report())
    assert list(data) == ["week", "awaiting", "answered_late", "response", "checks"]
    assert data["week"] == str(scene.week)
    end, received = scene.end, scene.received
    # Oldest first; "asked" was still open at the week's end (it is answered only later).
    assert [a["message_id"] for a in data["awaiting"]] == [
        _mid("old"),
        _mid("asked"),
        _mid("read"),
    ]
    old, asked, read = data["awaiting"]
    assert old["from"] == "Thomas Meier <thomas.meier@partner.example>"
    assert old["subject"] == "Frage old"
    assert [a["age_days"] for a in data["awaiting"]] == [
        _age(end, received["old"]),
        _age(end, received["asked"]),
        _age(end, received["read"]),
    ]
    assert (old["seen"], asked["seen"], read["seen"]) == (False, False, True)
    # ISO 8601 with the user's offset.
    assert datetime.fromisoformat(read["received"]) == received["read"]
    assert datetime.fromisoformat(read["received"]).utcoffset() in (HOUR, 2 * HOUR)

    late = data["answered_late"]
    assert [m["message_id"] for m in late] == [_mid("late")]
    assert late[0]["how"] == "sent"
    waited = (scene.answered["late"] - received["late"]) / DAY
    assert late[0]["waited_days"] == pytest.approx(waited, abs=0.05)

    this_week, before = data["response"]["this_week"], data["response"]["week_before"]
    # Received in the week: asked, read, quick, fresh; answered by its end: quick, after 3 h.
    assert (this_week["received"], this_week["answered"]) == (4, 1)
    assert this_week["median_hours"] == pytest.approx(3.0)
    assert this_week["p90_hours"] == pytest.approx(3.0)
    hours = (scene.answered["late"] - received["late"]) / HOUR
    assert (before["received"], before["answered"]) == (1, 1)
    assert before["median_hours"] == pytest.approx(hours)
    # Answers given per local day: Tuesday ("late") and Thursday ("quick").
    assert list(data["response"]["answers_per_weekday"].values()) == [0, 1, 0, 1, 0, 0, 0]
    # The proxy sent nothing that week.
    assert data["checks"]["checked"] == 0 and data["checks"]["findings"] == {}
    text = render_text(scene.report())
    assert "No outgoing mail was checked this week." in text
    assert "Over a week" in text and "This week" in text


def test_replies_through_the_proxy_held_and_released_show_in_the_current_week(
    scene: Scene, upstream: RecordingUpstream
) -> None:
    proxy = ProxyInThread(scene.config)
    try:
        answer = make_message(
            sender=f"Anna Schmidt <{ANNA}>",
            to="Peter Brown <peter.brown@client.example>",
            subject="Re: Frage asked",
            body="Hallo Herr Brown,\n\nhier die Antwort.\n\nViele Grüße\nAnna Schmidt\n",
            message_id="<re-asked@example.test>",
            in_reply_to=_mid("asked"),
            references=_mid("asked"),
        )
        misspelled = make_message(
            sender=f"Anna Schmidt <{ANNA}>",
            to="Thomas Meier <thomas.meier@partner.example>",
            subject="Re: Frage old",
            body="Hallo Herr Meyer,\n\nentschuldigen Sie die Verspätung.\n\nViele Grüße\nAnna\n",
            message_id="<re-old@example.test>",
            in_reply_to=_mid("old"),
            references=_mid("old"),
        )
        with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
            client.sendmail(ANNA, ["peter.brown@client.example"], answer)
            client.sendmail(ANNA, ["thomas.meier@partner.example"], misspelled)
        proxy.flush_log()
        assert len(upstream.received) == 1  # the misspelled reply is held
        scene.poll()
        now_week = Week.containing(utcnow(), BERLIN)
        data = to_json(scene.report(now_week))
        # A held reply is no answer: "old" still waits, "asked" was answered late.
        assert [a["message_id"] for a in data["awaiting"]] == [
            _mid("old"),
            _mid("read"),
            _mid("fresh"),
        ]
        assert [(m["message_id"], m["how"]) for m in data["answered_late"]] == [
            (_mid("asked"), "proxy")
        ]
        assert data["checks"]["actions"] == {"hold": 1, "relay": 1}
        assert data["checks"]["findings"] == {"name.misspelled": 1}
        [name] = data["checks"]["misspelled"]
        assert "Meyer" in name["written"] and "Meier" in name["right"] and name["count"] == 1
        assert data["checks"]["held"]["still_held"] == 1
        assert data["response"]["this_week"]["received"] == 0
        assert sum(data["response"]["answers_per_weekday"].values()) == 1

        with scene.store.session() as session:
            held_id = session.scalars(select(HeldMessage.id)).one()
        assert proxy.running.holder is not None
        outcome = proxy.call(proxy.running.holder.release(held_id, by="cli"))
        assert outcome.ok
    finally:
        proxy.stop()
    refresh_answers(scene.store)  # without a poll: the proxy's log is read directly
    data = to_json(scene.report(Week.containing(utcnow(), BERLIN)))
    assert [a["message_id"] for a in data["awaiting"]] == [_mid("read"), _mid("fresh")]
    assert [m["message_id"] for m in data["answered_late"]] == [_mid("old"), _mid("asked")]
    assert data["checks"]["held"] == {
        "released": 1,
        "discarded": 0,
        "expired": 0,
        "still_held": 0,
    }
    text = render_text(scene.report(Week.containing(utcnow(), BERLIN)))
    assert "released 1" in text and "Meyer → " in text


def test_awaiting_now_is_exactly_what_the_poller_counts_as_awaiting(scene: Scene) -> None:
    now = utcnow()
    with scene.store.session() as session:
        poller_view = [m.message_id for m in awaiting_answer(session, after=AFTER, now=now)]
        report_view = awaiting_as_of(session, after=AFTER, as_of=now, now=now)
    assert poller_view == [r.message_id for r in report_view]
    assert poller_view == [_mid("old"), _mid("asked"), _mid("read"), _mid("fresh")]


def test_long_lists_are_cut_in_text_and_html_but_not_in_json(scene: Scene) -> None:
    report = scene.report()
    many = [report.awaiting[0]._replace(message_id=f"<x{i}@partner.example>") for i in range(60)]
    long = replace(report, awaiting=many)
    assert len(to_json(long)["awaiting"]) == 60
    text = render_text(long)
    assert text.count("Frage old") == MAX_LISTED
    assert "… and 10 more (courtesy report --format json lists them all)" in text
    page = render_html(replace(long, language="de"))
    assert page.count("Frage old") == MAX_LISTED and "… und 10 weitere" in page
    _check_html(page)


def test_a_week_with_no_data_says_so_in_every_section(scene: Scene) -> None:
    empty = Week(2020, 10)
    data = to_json(scene.report(empty))
    # Long ago: nothing had arrived yet, so nothing waited.
    assert data["awaiting"] == [] and data["answered_late"] == []
    assert data["response"]["this_week"] == {
        "week": "2020-W10",
        "received": 0,
        "answered": 0,
        "median_hours": None,
        "p90_hours": None,
    }
    english = render_text(scene.report(empty))
    for line in (
        "Nothing is waiting. Well done.",
        "Nothing was answered late this week.",
        "No mail from people arrived in these two weeks.",
        "No outgoing mail was checked this week.",
    ):
        assert line in english
    german = render_text(scene.report(empty, "de"))
    for line in (
        "Nichts wartet auf Antwort. Gut gemacht.",
        "Diese Woche wurde nichts verspätet beantwortet.",
        "In diesen zwei Wochen kam keine Mail von Menschen an.",
        "Diese Woche wurde keine ausgehende Mail geprüft.",
    ):
        assert line in german
    html = render_html(scene.report(empty, "de"))
    assert "Nichts wartet auf Antwort. Gut gemacht." in html


def test_german_and_english_texts(scene: Scene) -> None:
    german = render_text(scene.report(language="de"))
    assert f"KW {scene.week.number}" in german
    assert "Wartet auf Ihre Antwort (3)" in german
    assert "Über eine Woche" in german and "ungelesen" in german
    assert "Wie schnell Sie geantwortet haben" in german and "3 Std." in german
    assert "Antworten pro Tag" in german
    english = render_text(scene.report(language="en"))
    assert "Awaiting your answer (3)" in english and "(unread)" in english
    assert "How fast you answered" in english and "3 h" in english
    assert "Thomas Meier <thomas.meier@partner.example>" in english
    # Colour only when asked for (a terminal).
    assert "\x1b[" not in english
    assert "\x1b[1m" in render_text(scene.report(), color=True)
    mail = email.message_from_bytes(
        report_mail(scene.report(language="de"), ANNA), policy=email.policy.default
    )
    assert mail["Subject"] == f"Ihre Mail-Woche {scene.week}: 3 warten auf Antwort"


# -- HTML ----------------------------------------------------------------------------------

_VOID = {"meta", "br", "img", "hr", "input", "link"}


class _Strict(HTMLParser):
    """Every tag closed in order; no scripts, no external resources."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: set[str] = set()
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith(
                ("http:", "https:", "javascript:", "//")
            ):
                self.errors.append(f"<{tag} {name}={value!r}>")
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()


def _check_html(page: str) -> None:
    parser = _Strict()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert not parser.tags & {"script", "img", "link", "iframe", "style", "object"}
    # Strictly well-formed, too: an XML parser reads it.
    root = ET.fromstring(page.split("\n", 1)[1])
    assert root.tag == "html"


def _png_size_and_colours(path: Path) -> tuple[int, int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    pixels = zlib.decompress(idat)
    return width, height, len(set(pixels))


def test_html_is_well_formed_and_renders_in_headless_chromium(scene: Scene, tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    for language in ("en", "de"):
        _check_html(render_html(scene.report(language=language)))
        _check_html(render_html(scene.report(Week(2020, 10), language)))
    page = render_html(scene.report(language="de"))
    assert "Thomas Meier<br />" in page and "thomas.meier@partner.example" in page
    assert 'bgcolor="#5b8c5a"' in page  # the bar chart: table cells, no images
    source = tmp_path / "report.html"
    source.write_text(page, encoding="utf-8")
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=900,1200",
            source.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), f"chromium made no screenshot: {done.stderr[-2000:]}"
    width, height, colours = _png_size_and_colours(shot)
    assert (width, height) == (900, 1200)
    assert colours > 16, "the screenshot is blank"


# -- the mail and the command line -----------------------------------------------------------


def test_report_mail_is_multipart_alternative_and_labelled_automatic(scene: Scene) -> None:
    raw = report_mail(scene.report(), ANNA)
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["To"] == ANNA and mail["From"] == f"courtesy <{ANNA}>"
    assert mail["Subject"] == f"Your week in mail, {scene.week}: 3 waiting for an answer"
    plain = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert plain is not None and html is not None
    assert "Awaiting your answer (3)" in plain.get_content()
    _check_html(html.get_content())


def _run_cli(config_path: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["report", "-c", str(config_path), *args])
    return code, capsys.readouterr().out


def _write_config(tmp_path: Path, scene: Scene, upstream: RecordingUpstream, **report: Any) -> Path:
    assert scene.config.imap is not None
    path = tmp_path / "config.toml"
    lines = [
        f'addresses = ["{ANNA}", "{scene.user}"]',
        "[store]",
        f'url = "{scene.config.store_url}"',
        "[upstream]",
        'host = "127.0.0.1"',
        f"port = {upstream.port}",
        'security = "none"',
        "[imap]",
        'host = "127.0.0.1"',
        f"port = {scene.config.imap.port}",
        'security = "none"',
        f'username = "{scene.user}"',
        'password_env = "COURTESY_TEST_IMAP"',
        "[report]",
        'timezone = "Europe/Berlin"',
        *(f'{key} = "{value}"' for key, value in report.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_prints_json_html_text_and_sends_through_upstream(
    scene: Scene,
    upstream: RecordingUpstream,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COURTESY_TEST_IMAP", PASSWORD)
    path = _write_config(tmp_path, scene, upstream, to=ANNA)
    code, out = _run_cli(path, "--format", "json", "--week", str(scene.week), capsys=capsys)
    assert code == 0
    data = json.loads(out)
    assert data["week"] == str(scene.week) and len(data["awaiting"]) == 3
    code, out = _run_cli(path, "--format", "html", "--week", str(scene.week), capsys=capsys)
    assert code == 0 and out.startswith("<!DOCTYPE html>")
    code, out = _run_cli(path, "--week", str(scene.week), capsys=capsys)
    assert code == 0 and "Awaiting your answer (3)" in out and "\x1b[" not in out
    assert main(["report", "-c", str(path), "--week", "2026-13"]) == 2
    assert "is not a week like 2026-W10" in capsys.readouterr().err

    code, out = _run_cli(path, "--send", "--week", str(scene.week), capsys=capsys)
    assert code == 0 and f"report for {scene.week} sent to {ANNA} (smtp)" in out
    [sent] = upstream.received
    assert (sent.mail_from, sent.rcpt_tos) == (ANNA, [ANNA])
    mail = email.message_from_bytes(sent.content, policy=email.policy.default)
    assert mail.get_content_type() == "multipart/alternative"
    # Straight to upstream: the proxy's log never saw it, so it was never checked or held.
    with scene.store.session() as session:
        assert session.scalars(select(OutgoingMessage.id)).all() == []


def test_cli_send_appends_to_inbox_when_deliver_is_imap(
    scene: Scene,
    upstream: RecordingUpstream,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COURTESY_TEST_IMAP", PASSWORD)
    path = _write_config(tmp_path, scene, upstream, to=ANNA, deliver="imap")
    code, out = _run_cli(path, "--send", "--week", str(scene.week), capsys=capsys)
    assert code == 0 and "(imap)" in out
    assert upstream.received == []
    with scene.dovecot.client(scene.user) as client:
        client.select_folder("INBOX", readonly=True)
        found = client.search(["HEADER", "X-Courtesy-Notice", f"report {scene.week}"])
        assert len(found) == 1
    # The poller sees the user's own automatic mail and never counts it as waiting.
    scene.poll()
    data = to_json(scene.report(Week.containing(utcnow(), BERLIN)))
    assert all("courtesy" not in (a["from"] or "") for a in data["awaiting"])
