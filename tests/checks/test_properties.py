"""Property-based tests: arbitrary input never raises and finishes in bounded time.

parse_message may raise NotAMessage and nothing else; the new-text splitter,
find_salutation, match_closing and a whole check run never raise. The
text strategies mix random characters with the fragments the patterns look
for (attribution lines, quote markers, header keys, greetings, closings), so
that a pattern that backtracks catastrophically meets its worst case. The
deadline is per example, generous for a loaded machine; a linear pass over
these sizes takes milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from courtesy.checks.greeting import find_salutation
from courtesy.checks.message import NotAMessage, parse_message
from courtesy.checks.model import MemoryAddressBook
from courtesy.checks.newtext import extract, match_closing, split_html, split_plain
from courtesy.checks.quoted import quoted_authors
from courtesy.proxy.config import parse_config
from courtesy.proxy.inspect import evaluate

FRAGMENTS = [
    "Hallo Herr ",
    "Sehr geehrte Frau Dr. ",
    "Dear Ms ",
    "Hi ",
    "Meier",
    "Müller-Lüdenscheidt",
    ",",
    ":",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\n\n",
    ">",
    "> > ",
    "On Mon, 3 Mar 2025 10:00, ",
    "Am 03.03.2025 um 10:00 schrieb ",
    " wrote:",
    " schrieb:",
    "...",
    "…",
    "-----Original Message-----",
    "-----Ursprüngliche Nachricht-----",
    "From: ",
    "Von: ",
    "Sent: ",
    "Gesendet: ",
    "To: ",
    "Subject: ",
    "-- \n",
    "__________",
    "Sent from my iPhone",
    "Viele Grüße",
    "Best regards",
    "Thanks",
    "<",
    ">",
    "@",
    "anna@example.com",
    "<a@b>",
    "1.2.2025",
    "12:00",
    "'",
    "’",
    "-",
    "—",
    "*",
    "=",
    "(",
    ")",
    "\u00a0",
    "\u200b",
    "\ufeff",
    "\x00",
    "\ud800",
]
HTML_FRAGMENTS = [
    "<p>",
    "</p>",
    "<div>",
    "</div>",
    "<blockquote>",
    "</blockquote>",
    '<div class="gmail_quote">',
    '<div style="border-top: solid #E1E1E1 1.0pt">',
    '<div id="divRplyFwdMsg">',
    '<div class="moz-signature">',
    "<br>",
    "<pre>",
    "</pre>",
    "<script>",
    "</script>",
    "<!--",
    "-->",
    "<![CDATA[",
    "&amp;",
    "&#x1F600;",
    "&#99999999;",
    "&bogus;",
    "<",
    "</",
    "<a href='x'",
    "=",
    '"',
]

mail_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=200).map(
    "".join
)
html_text = st.lists(
    st.one_of(st.sampled_from(HTML_FRAGMENTS), st.sampled_from(FRAGMENTS), st.text(max_size=10)),
    max_size=200,
).map("".join)
# One fragment repeated into a long line: where backtracking regexes blow up.
long_runs = st.tuples(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=3), st.integers(1, 2000)
).map(lambda pair: "".join(pair[0]) * pair[1])
any_text = st.one_of(mail_text, long_runs, st.text(max_size=2000))

# More examples for a bug hunt: COURTESY_HYPOTHESIS_EXAMPLES=5000 pytest tests/checks/test_properties.py
EXAMPLES = int(os.environ.get("COURTESY_HYPOTHESIS_EXAMPLES", "150"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(any_text)
def test_plain_splitter_never_raises(text: str):
    parts = split_plain(text)
    assert isinstance(parts.text, str)
    extract(text, None)


@PROPERTY
@given(html_text)
def test_html_splitter_never_raises(html: str):
    split_html(html)
    extract("", html)


@PROPERTY
@given(any_text, st.lists(st.text(max_size=30), max_size=3))
def test_find_salutation_never_raises(text: str, names: list[str]):
    find_salutation(text, names)
    for line in text.splitlines()[:50]:
        match_closing(line)


@PROPERTY
@given(any_text)
def test_quoted_authors_never_raises(text: str):
    quoted_authors(text)


@PROPERTY
@given(st.binary(max_size=5000))
def test_parse_message_on_arbitrary_bytes(raw: bytes):
    with contextlib.suppress(NotAMessage):
        parse_message(raw)


header_names = st.sampled_from(
    [
        b"From",
        b"To",
        b"Cc",
        b"Subject",
        b"Message-ID",
        b"In-Reply-To",
        b"References",
        b"Content-Type",
        b"Content-Transfer-Encoding",
        b"MIME-Version",
        b"X-Junk",
    ]
)
header_values = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"multipart/mixed; boundary=b",
            b"text/html; charset=utf-7",
            b"base64",
            b"quoted-printable",
            b"=?utf-8?B?////?=",
            b"<a@b> <c@d>",
            b'"x, y" <z@w>, ;;, @',
            b"text/plain; charset=x-unknown",
            b"message/rfc822",
        ]
    ),
)
messages = st.tuples(
    st.lists(st.tuples(header_names, header_values), min_size=1, max_size=12),
    st.one_of(
        mail_text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=3000)
    ),
).map(lambda m: b"".join(k + b": " + v + b"\r\n" for k, v in m[0]) + b"\r\n" + m[1])

CONFIG = parse_config({})


@settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=3),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(messages, st.lists(st.emails(), max_size=3))
def test_whole_check_run_never_raises(raw: bytes, recipients: list[str]):
    try:
        result = evaluate(raw, CONFIG, MemoryAddressBook([]), envelope_recipients=recipients)
    except NotAMessage:
        return
    assert result.decision.action in ("relay", "hold", "reject")
    assert not result.report.errors, result.report.errors


def test_long_adversarial_lines_are_linear():
    """Every fragment pair repeated into 20,000-character lines: each pass well under a second."""
    worst = 0.0
    for first in FRAGMENTS:
        for second in ("", " ", ":", "\n", "a", "1"):
            line = (first + second) * (20_000 // max(1, len(first + second)))
            started = time.perf_counter()
            split_plain(line)
            find_salutation(line)
            match_closing(line[:200])
            quoted_authors(line)
            worst = max(worst, time.perf_counter() - started)
    assert worst < 1.0, worst
