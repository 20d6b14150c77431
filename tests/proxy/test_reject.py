"""Reject: the 550 text as mail clients see it, and sending it again to send it anyway."""

from __future__ import annotations

import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from courtesy.checks.message import parse_message
from courtesy.checks.model import Finding, Severity
from courtesy.proxy.front import Transaction
from courtesy.proxy.hold import override_key
from courtesy.store.outgoing import OutgoingMessage
from tests.conftest import require_tool
from tests.proxy.test_hold import MEYER, MISSPELLED, RCPT, SENDER, Env, FixedInspector, start_env
from tests.servers import RecordingUpstream

CC = Finding(
    "cc.too_many",
    Severity.WARN,
    "5 people are on Cc (more than 3); does each of them need this mail?",
    evidence="Cc: p0@firm0.example, p1@firm1.example",
)


def resent(content: bytes, message_id: bytes, date: bytes) -> bytes:
    """The same message as a mail client sends it again: new Message-ID and Date."""
    content = content.replace(b"<meyer-1@example.com>", message_id)
    return content.replace(b"Tue, 24 Nov 2026 10:00:00 +0100", date)


@pytest.fixture
def env(tmp_path: Path, upstream: RecordingUpstream) -> Iterator[Env]:
    running = start_env(tmp_path, upstream, FixedInspector("reject", (MISSPELLED, CC)))
    yield running
    running.proxy.stop()


def refusal(env: Env, content: bytes) -> tuple[int, str]:
    with pytest.raises(smtplib.SMTPDataError) as caught:
        env.send(content)
    return caught.value.smtp_code, caught.value.smtp_error.decode("ascii")


def test_reject_text_in_english_as_smtplib_sees_it(env: Env):
    code, text = refusal(env, MEYER)
    assert code == 550
    assert text.splitlines() == [
        "5.7.1 courtesy did not send this message:",
        "5.7.1 - The greeting says 'Meyer'; the recipient is Thomas Meier "
        '(you wrote "Hallo Herr Meyer,"; suggestion: Meier).',
        "5.7.1 - 5 people are on Cc (more than 3); does each of them need this mail? "
        '(you wrote "Cc: p0@firm0.example, p1@firm1.example").',
        "5.7.1 Send it again unchanged within 10 minutes to send it anyway.",
    ]
    assert env.messages() == [] and env.notices() == []


def test_reject_text_in_german_as_swaks_sees_it(tmp_path: Path, upstream: RecordingUpstream):
    swaks = require_tool("swaks")
    finding = Finding(
        "name.misspelled",
        Severity.BLOCK,
        "Die Anrede lautet „Meyer“; der Empfänger heißt Thomas Meier.",
        evidence="Hallo Herr Meyer,",
        suggestion="Meier",
    )
    env = start_env(
        tmp_path,
        upstream,
        FixedInspector("reject", (finding,)),
        language="de",
        reject={"override_window": "2h"},
    )
    eml = tmp_path / "m.eml"
    eml.write_bytes(MEYER)
    try:
        done = subprocess.run(
            [
                swaks,
                "--server",
                f"{env.proxy.host}:{env.proxy.port}",
                "-f",
                SENDER,
                "-t",
                RCPT,
                "--data",
                str(eml),
            ],
            capture_output=True,
            timeout=60,
        )
    finally:
        env.proxy.stop()
    assert done.returncode != 0
    shown = [
        line.removeprefix("<** ")
        for line in done.stdout.decode("utf-8").splitlines()
        if line.startswith("<** ")
    ]
    assert shown == [
        "550-5.7.1 courtesy hat diese Nachricht nicht gesendet:",
        '550-5.7.1 - Die Anrede lautet "Meyer"; der Empfaenger heisst Thomas Meier '
        '(Sie schrieben "Hallo Herr Meyer,"; Vorschlag: Meier).',
        "550 5.7.1 Senden Sie sie innerhalb von 2 Stunden unveraendert erneut, um sie "
        "trotzdem zu verschicken.",
    ]
    assert all(line.isascii() for line in shown)


def test_resend_within_the_window_is_relayed(env: Env):
    assert refusal(env, MEYER)[0] == 550
    again = resent(MEYER, b"<meyer-2@example.com>", b"Tue, 24 Nov 2026 10:03:00 +0100")
    assert env.send(again) == {}
    [got] = env.messages()
    assert got.content == again and got.rcpt_tos == [RCPT]
    env.proxy.flush_log()
    with env.proxy.running.store.sessions() as session:
        actions = list(session.scalars(select(OutgoingMessage.action).order_by(OutgoingMessage.id)))
    assert actions == ["reject", "override"]


def test_changed_text_or_recipients_is_rejected_again(env: Env):
    assert refusal(env, MEYER)[0] == 550
    fixed = MEYER.replace(b"Hallo Herr Meyer,", b"Hallo Herr Meier,")
    assert refusal(env, fixed)[0] == 550
    with pytest.raises(smtplib.SMTPDataError):
        env.send(MEYER, rcpts=[RCPT, "someone.else@example.org"])
    assert env.messages() == []


def test_resend_after_the_window_is_rejected_again(tmp_path: Path, upstream: RecordingUpstream):
    env = start_env(tmp_path, upstream, FixedInspector("reject"), reject={"override_window": "1s"})
    try:
        code, text = refusal(env, MEYER)
        assert code == 550 and "within 1 second" in text
        time.sleep(1.2)
        assert refusal(env, MEYER)[0] == 550  # too late: rejected, and remembered anew
        assert env.send(MEYER) == {}  # at once: relayed
        assert len(env.messages()) == 1
    finally:
        env.proxy.stop()


def test_override_key_from_the_checks_parse_is_the_key_of_the_content():
    """The reject path reuses the inspector's parse; the key must not change by it."""
    transaction = Transaction(SENDER, (RCPT,), MEYER, None, "test")
    parsed = parse_message(MEYER, SENDER, [RCPT])
    assert override_key(transaction, parsed) == override_key(transaction)
