"""parse_message: headers, recipients, bodies; never raises on junk, refuses non-mail."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from courtesy.checks.message import NotAMessage, decode_header_value, parse_message, split_ids
from courtesy.checks.model import QuotedAuthor
from courtesy.checks.quoted import parse_attribution, parse_from_value, quoted_authors

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


def test_bare_message_ids_are_read() -> None:
    """Some clients write In-Reply-To/References without angle brackets."""
    msg = parse_message(load("en_bare_in_reply_to.eml"))
    assert msg.in_reply_to == ("<20250303.4711@client.example>",)
    assert msg.references == ("<20250301.0815@client.example>", "<20250303.4711@client.example>")
    assert msg.is_reply


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("<a1@host>", ["<a1@host>"]),
        ("<a1@host> <b2@host>", ["<a1@host>", "<b2@host>"]),
        ("a1@host", ["<a1@host>"]),
        (" a1@host (Ann's message of Monday) ", ["<a1@host>"]),
        ("a1@host b2@host", ["<a1@host>", "<b2@host>"]),
        # Brackets present: only the bracketed ids, not the words around them.
        ('Your message of "Mon" <a1@host>', ["<a1@host>"]),
        ("Your message of Monday", []),  # no id at all
        ("", []),
        (None, []),
    ],
)
def test_split_ids(value: str | None, ids: list[str]) -> None:
    assert split_ids(value) == ids


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


# --- quoted authors ---------------------------------------------------------------

NAMES = DATA.parent / "names"


def test_quoted_authors_nearest_first_at_any_depth() -> None:
    msg = parse_message((NAMES / "en_list_reply.eml").read_bytes())
    assert msg.quoted_authors == (
        QuotedAuthor("Marcus D. Leech", "patchvonbraun@radio.example", 0),
        QuotedAuthor("Ian Buckley via USRP-users", "", 1),
    )


def test_quoted_authors_of_outlook_blocks() -> None:
    msg = parse_message((NAMES / "en_outlook_name_only.eml").read_bytes())
    assert [(a.name, a.depth) for a in msg.quoted_authors] == [
        ("Steffes, James D.", 0),
        ("Nicolay, Christi L.", 1),
    ]
    german = parse_message((NAMES / "de_outlook_von.eml").read_bytes())
    assert german.quoted_authors == (QuotedAuthor("Meier, Thomas", "tmeier@kunde.example"),)


def test_no_quote_no_authors() -> None:
    assert parse_message((NAMES / "en_list_no_quote.eml").read_bytes()).quoted_authors == ()


def test_lotus_notes_header() -> None:
    quoted = "Cynthia Sandherr@ENRON\n07/24/2000 12:15 PM\nTo: Steven J Kean/HOU/EES@EES\n"
    assert quoted_authors(quoted) == (QuotedAuthor("Cynthia Sandherr"),)


@pytest.mark.parametrize(
    ("line", "name", "email"),
    [
        ("On Tue, 3 Mar 2009, Marcus D. Leech wrote:", "Marcus D. Leech", ""),
        ("Am 03.03.2009 um 10:15 schrieb Thomas Meier <tm@x.de>:", "Thomas Meier", "tm@x.de"),
        ("On 05/03/2021 04:31 PM, Zeng, Huacheng wrote:", "Zeng, Huacheng", ""),
        (
            "El mié, 20 dic 2023 a las 15:55, Rob Kossler (<rk@nd.edu>) escribió:",
            "Rob Kossler",
            "rk@nd.edu",
        ),
        (
            "Le lun. 3 mars 2025 à 10:00, Jean Dupont <jean@x.fr> a écrit :",
            "Jean Dupont",
            "jean@x.fr",
        ),
        ("Op ma 3 mrt. 2025 om 10:00 schreef Jan de Vries <jan@x.nl>:", "Jan de Vries", "jan@x.nl"),
        ("Karl R. Tormann wrote in comp.lang.python:", "Karl R. Tormann", ""),
        (
            "On Sat, Oct 12, 2024 at 10:03 AM <steve.w@roke.example> wrote:",
            "",
            "steve.w@roke.example",
        ),
    ],
)
def test_parse_attribution(line: str, name: str, email: str) -> None:
    assert parse_attribution(line) == QuotedAuthor(name, email)


def test_parse_attribution_refuses_prose() -> None:
    assert parse_attribution("schreibt mir einfach an:") is None


@pytest.mark.parametrize(
    ("value", "name", "email"),
    [
        (
            '\t"Balson, William" <wbalson@crai.example>@ENRON [mailto:IMCEANOTES-+22B@ENRON.com]',
            "Balson, William",
            "wbalson@crai.example",
        ),
        ("Steffes, James D. ", "Steffes, James D.", ""),
        ("  Jeffrey A Shankman @ ECT          09/13/2000 04:29 PM", "Jeffrey A Shankman", ""),
        ("Steven J Kean@ENRON on 02/06/2001 04:41 PM", "Steven J Kean", ""),
        ("Meier, Thomas [mailto:tmeier@kunde.example]", "Meier, Thomas", "tmeier@kunde.example"),
        ("Presto, Kevin M. <mailto:kmp@ubs.example>", "Presto, Kevin M.", "kmp@ubs.example"),
        ("Lee S. Friedman [SMTP:lfried@uc.example]", "Lee S. Friedman", "lfried@uc.example"),
        (
            "users <users-bounces@lists.example> On Behalf Of Ann Smith via users",
            "Ann Smith via users",
            "",
        ),
        (
            "ardelgado@gradiant.example <ardelgado@gradiant.example>",
            "",
            "ardelgado@gradiant.example",
        ),
        ('"pschoenemann" <pschoenemann@rr.example>', "", "pschoenemann@rr.example"),
    ],
)
def test_parse_from_value(value: str, name: str, email: str) -> None:
    assert parse_from_value(value) == QuotedAuthor(name, email)
