"""parse_message: headers, recipients, bodies; never raises on junk, refuses non-mail."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from courtesy.checks.message import NotAMessage, decode_header_value, parse_message

DATA = Path(__file__).resolve().parent.parent / "data" / "checks"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_headers_recipients_and_bcc() -> None:
    raw = load("de_two_names_latin1.eml")
    msg = parse_message(raw, "anna@example.org", ["pierre@example.com", "Hidden@Example.com"])
    assert msg.sender is not None and msg.sender.email == "anna@example.org"
    assert [a.name for a in msg.to] == ["Pierre Dupont", "Odette Blanc"]
    assert [a.email for a in msg.bcc] == ["Hidden@Example.com"]
    assert msg.subject == "Reise"
    assert msg.message_id == "<de11@example.org>"
    assert msg.content_type == "text/plain"
    assert "München" in msg.body_text  # quoted-printable latin-1 decoded
    assert msg.raw_size == len(raw)


def test_reply_headers() -> None:
    msg = parse_message(load("en_gmail_plain_wrapped.eml"))
    assert msg.in_reply_to == ("<j1@example.com>",)
    assert msg.references == ("<j1@example.com>",)
    assert msg.is_reply


def test_encoded_words_and_8bit_headers() -> None:
    assert decode_header_value("=?utf-8?q?Gr=C3=BC=C3=9Fe?=") == "Grüße"
    assert decode_header_value("=?x-unknown?q?M=FCller?=") != ""
    raw = "From: Jörg <j@example.org>\nTo: Zoë <z@example.com>\nSubject: Grüße\n\nHallo\n"
    msg = parse_message(raw.encode("utf-8"))
    assert msg.subject == "Grüße"
    assert msg.to[0].name == "Zoë"


def test_new_text_html_only_and_part_types() -> None:
    msg = parse_message(load("en_gmail_html.eml"))
    assert msg.new_text.startswith("Sure, noon works.")
    assert "Hi Anna" not in msg.new_text
    assert "Hi Anna" in msg.quoted_text
    assert "Hi Anna" in msg.body_text
    cal = parse_message(load("en_calendar_reply.eml"))
    assert "text/calendar" in cal.part_types


def test_broken_mime_does_not_raise() -> None:
    msg = parse_message(load("broken_mime.eml"))
    assert msg.sender is not None
    assert isinstance(msg.new_text, str)


@pytest.mark.parametrize(
    "raw", [b"", b"\x89PNG\r\n\x1a\n\x00\x00", b"just some words\nand more\n", b"\n\n\n"]
)
def test_not_a_message(raw: bytes) -> None:
    with pytest.raises(NotAMessage):
        parse_message(raw)
    assert issubclass(NotAMessage, ValueError)


def test_not_a_message_file() -> None:
    with pytest.raises(NotAMessage):
        parse_message(load("not_a_message.bin"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000))
def test_arbitrary_body_bytes_never_raise(body: bytes) -> None:
    raw = b"From: a@example.org\nTo: b@example.com\nContent-Type: text/plain; charset=utf-8\n\n"
    started = time.perf_counter()
    msg = parse_message(raw + body)
    assert time.perf_counter() - started < 1.0
    assert msg.to[0].email == "b@example.com"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_refuse(raw: bytes) -> None:
    try:
        parse_message(b"X-Junk: 1\n" + raw)
    except NotAMessage:  # pragma: no cover - a header line is present, so never refused
        pytest.fail("a message with a header line was refused")
