"""The shortcuts of parse_message and split_plain give exactly what the general paths give.

split_plain skips its line loop when a few scans of the text show every line
is prose; _parse reads a simple header block itself instead of running the
feed parser; the Content-Type is read once per value. Each property compares a shortcut with
the general path (or the stdlib) on generated input that mixes what the
general path looks for.
"""

from __future__ import annotations

import os
from datetime import timedelta
from email.message import Message
from email.parser import BytesParser, Parser
from email.policy import compat32

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from courtesy.checks import greeting, message, newtext
from courtesy.checks.newtext import NewText, split_plain

EXAMPLES = int(os.environ.get("COURTESY_HYPOTHESIS_EXAMPLES", "300"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- plain text: prose, quotes, attributions, separators, signatures -----------

WORDS = ["Hallo", "Thomas", "vielen", "Dank", "für", "die", "Nachricht", "we", "will", "send"]
WORDS += ["the", "offer", "by", "Friday", "Viele", "Grüße", "Best", "regards", "Anna", "ok"]
WORDS += ["sent", "von", "ver", "ges", "get", "env", "inv", "Ich", "ſen", "İnv", "-", "—"]
PUNCT = ["", ".", ",", "!", "?", " ", "  ", "\t", "\u00a0", "\u200b", "\ufeff", "\x0c"]
SPECIAL = [
    "",
    " ",
    "> quoted line",
    "> > deeper",
    "  > indented quote",
    "\t>tabbed quote",
    ">",
    "On Mon, 3 Mar 2025 10:00, Anna Schmidt <anna@example.com> wrote:",
    "On Mon, 3 Mar 2025 10:00, Anna Schmidt",
    "<anna@example.com> wrote:",
    "Am 03.03.2025 um 10:00 schrieb Anna Schmidt:",
    "Le lun. 3 mars 2025 à 10:00, Anna a écrit :",
    "anna@example.com...",
    "In <id@host>, Ann wrote:",
    "-----Original Message-----",
    "-----Ursprüngliche Nachricht-----",
    "---------- Forwarded message ---------",
    "Begin forwarded message:",
    "________________________________",
    "From: Anna Schmidt",
    "Von: Anna Schmidt <anna@example.com>",
    "Sent: Monday, March 3, 2025 10:00",
    "Gesendet: Montag, 3. März 2025 10:00",
    "To: Thomas",
    "An: Thomas",
    "Subject: offer",
    "Betreff: Angebot",
    "Anna Schmidt",
    "03.03.2025 10:00",
    "-- ",
    "--",
    "—",
    "__",
    "Sent from my iPhone",
    "Von meinem iPhone gesendet",
    "Get Outlook for iOS",
    "Viele Grüße,",
    "Best regards",
    "Thanks, Anna",
    "Tel: 030 123",
    "mail: anna@example.com",
    "Zeit: 12:00",
    "wait...",
    "wait... ",
    "Anna Schmidt wrote...",
    "Anna schrieb …",
    "Anna Schmidt wrote... \t",
    "On Mon, 3 Mar 2025 at 10.00 Anna wrote…",
    "wait…",
    "wait…\t",
    "... and so on",
    "~~~",
    "=====",
    "* item",
    "- item",
    "_italic_",
    "\tindented",
    "    code",
]


@st.composite
def _prose_line(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8))
    return " ".join(words) + draw(st.sampled_from(PUNCT))


_line = st.one_of(
    _prose_line(),
    _prose_line(),
    _prose_line(),
    st.sampled_from(SPECIAL),
    # A prose line with one special character somewhere in it.
    st.tuples(
        _prose_line(), st.sampled_from([":", "@", "...", "…", ">", "-- "]), _prose_line()
    ).map("".join),
    st.text(max_size=12),
)
_break = st.sampled_from(["\n", "\n", "\n", "\r\n", "\r", "\n\n"])


@st.composite
def _prose_with_specials(draw: st.DrawFn) -> str:
    """Prose with one or two special lines put in: the edge of the shortcut."""
    lines = draw(st.lists(_prose_line(), max_size=15))
    for _ in range(draw(st.integers(1, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(SPECIAL)))
    breaks = draw(st.lists(_break, min_size=len(lines), max_size=len(lines)))
    return "".join(line + brk for line, brk in zip(lines, breaks, strict=True))


# Mostly prose, so the shortcut is often taken and its edge is met.
plain_text = st.one_of(
    st.lists(_prose_line(), max_size=30).map("\n".join),
    _prose_with_specials(),
    _prose_with_specials(),
    st.lists(st.tuples(_line, _break), max_size=40).map(
        lambda pairs: "".join(line + brk for line, brk in pairs)
    ),
)


def _general_split_plain(text: str) -> NewText:
    """split_plain through the line loop always (and the old _strip_blank)."""
    own, quoted = newtext._split_quotes(newtext._normalise(text).split("\n"))
    body, signature, closing = newtext._split_signature(own)
    return NewText(
        text="\n".join(line.rstrip() for line in body).strip("\n").strip(),
        quoted="\n".join(quoted).strip(),
        signature="\n".join(signature).strip(),
        closing=closing,
    )


@PROPERTY
@given(plain_text)
def test_prose_scan_agrees_with_the_line_loop(text: str) -> None:
    normal = newtext._normalise(text)
    lines = normal.split("\n")
    if newtext._all_prose(normal):
        assert newtext._split_quotes(lines) == (lines, [])
    assert split_plain(text) == _general_split_plain(text)


def test_every_special_line_and_pair_in_prose() -> None:
    """Each special line, and each pair, amid prose: a deterministic sweep of the edge."""
    prose = "Hallo Thomas, vielen Dank"
    for brk in ("\n", "\r\n"):
        for a in SPECIAL:
            for text in (f"{a}{brk}{prose}", f"{prose}{brk}{a}{brk}{prose}", f"{prose}{brk}{a}"):
                assert split_plain(text) == _general_split_plain(text), text
    for a in SPECIAL:
        for b in SPECIAL:
            text = f"{prose}\n{a}\n{prose}\n{b}\n{prose}"
            assert split_plain(text) == _general_split_plain(text), text


def test_prose_scan_takes_ordinary_prose() -> None:
    text = "Hallo Thomas,\r\n\r\nvielen Dank.  \r\nWir melden uns.\r\n\r\nViele Grüße\r\nAnna\r\n"
    assert newtext._all_prose(newtext._normalise(text))


@pytest.mark.parametrize(
    "line",
    [
        "Zeit: 12:00",
        "a@b",
        "> quote",
        "-- ",
        " indented",
        "\tindented",
        "wait...",
        "wait… ",
        "~",
        "=",
        "* item",
        "_x",
        "Anna\u200b...",
    ],
)
def test_prose_scan_refuses_what_the_loop_must_read(line: str) -> None:
    for text in (f"Hallo,\n{line}\nok", f"{line}\nok", f"Hallo,\n{line}"):
        assert not newtext._all_prose(newtext._normalise(text))


# --- header blocks ---------------------------------------------------------------

_header_line = st.one_of(
    st.sampled_from(
        [
            "From: Anna Schmidt <anna@example.com>",
            "To: Thomas Meier <thomas@example.org>,",
            " Eva Weber <eva@example.org>",
            "\tcontinued",
            " ",
            "Subject: Angebot",
            "Subject:no space",
            "Subject:",
            "Subject:   ",
            "X-Empty:",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Type: multipart/mixed; boundary=x",
            "MIME-Version: 1.0",
            "From anna@example.com Mon Mar  3 10:00:00 2025",
            "From x: y",
            ": no name",
            "Bad name: value",
            "Subject : space before colon",
            "no colon at all",
            "X-8bit: Gr\udcc3\udcbc\udcc3\udc9fe",
            "X-Trailing: value \t",
            "X-Colons: a:b:c",
            "\u00e4-Name: value",
        ]
    ),
    st.tuples(
        st.text(
            alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8
        ),
        st.text(max_size=10),
    ).map(lambda pair: f"{pair[0]}: {pair[1]}"),
)
_header_break = st.sampled_from(["\r\n", "\r\n", "\n", "\r"])
header_text = st.tuples(
    st.lists(st.tuples(_header_line, _header_break), min_size=1, max_size=12),
    st.sampled_from(["\r\n", "\n"]),
    st.text(max_size=20),
).map(lambda t: "".join(line + brk for line, brk in t[0]) + t[1] + t[2])


def _state(msg: Message) -> dict[str, object]:
    state = dict(vars(msg))
    state["defects"] = [(type(d).__name__, str(d)) for d in msg.defects]
    return state


@PROPERTY
@given(header_text)
def test_simple_header_block_is_read_as_the_feed_parser_reads_it(text: str) -> None:
    end = message._HEADER_END_RE.search(text)
    if end is None:
        return
    block = text[: end.end()]
    fields = message._simple_headers(block)
    if fields is None:
        return
    ours = message._header_block_message(fields)
    stdlib = Parser(policy=compat32).parsestr(block, headersonly=True)
    assert _state(ours) == _state(stdlib)


@PROPERTY
@given(header_text)
def test_single_part_parse_matches_the_stdlib(text: str) -> None:
    raw = text.encode("utf-8", "surrogateescape")
    ours = message._parse(raw)
    stdlib = BytesParser(policy=compat32).parsebytes(raw)
    assert _state(ours) == _state(stdlib)


def test_ordinary_header_block_is_simple() -> None:
    block = "From: Anna <a@b.c>\r\nTo: T <t@x.y>,\r\n E <e@x.y>\r\nSubject: Hi\r\n\r\n"
    fields = message._simple_headers(block)
    assert fields is not None
    assert len(fields) == 3


# --- Content-Type readings --------------------------------------------------------

_type_value = st.lists(
    st.sampled_from(
        [
            "text/plain",
            "TEXT/HTML",
            "multipart/alternative",
            "message/rfc822",
            "text",
            "a/b/c",
            ";",
            " charset=",
            "utf-8",
            '"UTF-8"',
            "charset*=utf-8''%e4",
            "charset*0=utf",
            "charset*1=-8",
            " boundary=x",
            "(comment)",
            '"',
            "\\",
            " ",
            "\t",
            "\udcc3\udca4",
            "ä",
            "=",
        ]
    )
    | st.text(max_size=6),
    max_size=8,
).map("".join)


def _reading(call: object) -> object:
    try:
        return call()  # type: ignore[operator]
    except Exception as exc:  # the same failure either way
        return type(exc)


@PROPERTY
@given(_type_value, st.booleans())
def test_content_type_readings_match_the_stdlib(value: str, present: bool) -> None:
    part = Message(policy=compat32)
    if present:
        part.set_raw("Content-Type", value)
    part.set_raw("Subject", "x")
    assert _reading(lambda: message._content_type(part)) == _reading(part.get_content_type)
    assert _reading(lambda: message._charset(part)) == _reading(part.get_content_charset)


# --- the signature cut: lines whose first character rules out a cut ------------


@PROPERTY
@given(st.text(min_size=1, max_size=3))
def test_plain_line_starts_are_never_cut_points(head: str) -> None:
    """_split_signature skips a line by its first character only where _may_cut would."""
    if head[:1] in newtext._PLAIN_STARTS:
        assert not newtext._may_cut.__wrapped__(head)


def test_every_ascii_start_agrees_with_may_cut() -> None:
    for first in map(chr, range(32, 127)):
        for rest in ("en", "et", "es", "on", "er", "nv", "xx", "  "):
            head = first + rest
            if first in newtext._PLAIN_STARTS:
                assert not newtext._may_cut.__wrapped__(head), head
    assert newtext._may_cut.__wrapped__("Sen") and "S" not in newtext._PLAIN_STARTS


# --- salutation lines: the cached reading -------------------------------------

NAME_WORDS = ["Hallo", "Hi", "Dear", "Liebe", "Herr", "Frau", "Dr.", "Kevin", "Anna", "Jeff"]
NAME_WORDS += ["van", "der", "Berg", "und", "and", "zusammen", "all", "Thanks", "FYI", "Xavier"]
NAME_WORDS += ["Quill", "kevin", "anna", "Oh", "Great", "I", "had", "the", "Sehr", "geehrte"]
line_text = st.lists(
    st.tuples(st.sampled_from(NAME_WORDS), st.sampled_from(["", " ", ", ", ": ", "!", " - ", "?"])),
    max_size=8,
).map(lambda pairs: "".join(word + sep for word, sep in pairs))
known_words = st.frozensets(st.sampled_from([w.casefold() for w in NAME_WORDS] + ["bob", "zed"]))


@PROPERTY
@given(line_text, known_words, st.booleans())
def test_cached_line_reading_depends_only_on_the_known_words_in_the_line(
    line: str, known: frozenset[str], next_is_sentence: bool
) -> None:
    """_parse_line caches on the known words the line holds; the full set reads the same."""
    vocabulary = greeting.DEFAULT_VOCABULARY
    direct = greeting._read_line(line, known, next_is_sentence, vocabulary)
    expected = None if direct is None else (tuple(direct[0]), tuple(direct[1]), *direct[2:])
    assert greeting._parse_line(line, known, next_is_sentence, vocabulary) == expected
