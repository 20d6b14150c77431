"""greeting.missing and find_salutation on sample messages, both languages."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from courtesy.checks import greeting
from courtesy.checks.greeting import (
    CODE_MISSING,
    GreetingSettings,
    check_greeting,
    find_salutation,
)
from courtesy.checks.message import parse_message
from courtesy.checks.model import CheckContext, MemoryAddressBook, Severity
from courtesy.checks.registry import families

DATA = Path(__file__).resolve().parent.parent / "data" / "checks"


def run(name: str, language: str = "en", **options: object) -> list[str]:
    msg = parse_message((DATA / name).read_bytes())
    ctx = CheckContext(message=msg, contacts=MemoryAddressBook(), language=language)
    settings_ = GreetingSettings(**options)  # type: ignore[arg-type]
    return [f.code for f in check_greeting(ctx, settings_)]


@pytest.mark.parametrize(
    ("name", "fires"),
    [
        ("de_plain_greeting.eml", False),
        ("de_html_group.eml", False),
        ("de_outlook_border.eml", False),
        ("de_thunderbird_html.eml", False),
        ("de_bottom_post.eml", False),
        ("de_list_closing.eml", False),
        ("de_two_names_latin1.eml", False),
        ("en_gmail_plain_wrapped.eml", False),
        ("en_outlook_plain_vocative.eml", False),
        ("en_apple_html_vocative.eml", False),
        ("en_vocative_colon.eml", False),
        # No salutation of its own; the quoted mail's greeting does not count.
        ("de_outlook_html.eml", True),
        ("de_outlook_plain_von.eml", True),
        ("de_quick_reply.eml", True),
        ("en_gmail_html.eml", True),
        ("en_plain_no_greeting.eml", True),
        ("en_name_subject.eml", True),
        ("en_forward_fyi.eml", True),
        ("en_forward_empty.eml", True),
    ],
)
def test_samples(name: str, fires: bool) -> None:
    assert (run(name) == [CODE_MISSING]) is fires


def test_exemptions_and_their_switches() -> None:
    assert run("de_to_self.eml") == []
    assert run("de_to_self.eml", exempt_to_self=False) == [CODE_MISSING]
    assert run("en_calendar_reply.eml") == []
    assert run("en_report.eml") == []
    assert run("en_report.eml", exempt_automated=False) == [CODE_MISSING]
    assert run("en_forward_empty.eml", no_new_text="off") == []
    assert run("de_quick_reply.eml", exempt_quick_replies=True) == []
    # A quick reply to a message that did greet is not exempt.
    assert run("de_outlook_plain_von.eml", exempt_quick_replies=True) == [CODE_MISSING]


def test_finding_message_evidence_and_severity() -> None:
    msg = parse_message((DATA / "en_name_subject.eml").read_bytes())
    for language, word in (("en", "greeting"), ("de", "Anrede")):
        ctx = CheckContext(message=msg, contacts=MemoryAddressBook(), language=language)
        (finding,) = check_greeting(ctx, GreetingSettings(severity=Severity.BLOCK))
        assert word in finding.message
        assert finding.message.count(".") >= 1 and "\n" not in finding.message
        assert finding.evidence == "Jeff called about the contract. He wants it signed today."
        assert finding.severity is Severity.BLOCK


def test_registered() -> None:
    fam = families()["greeting"]
    assert fam.codes == (CODE_MISSING,)
    assert fam.settings_type() == GreetingSettings()


@pytest.mark.parametrize(
    ("text", "words", "names", "group"),
    [
        ("Hallo Herr Meier,\nanbei", ("Hallo",), ("Herr Meier",), False),
        (
            "Sehr geehrte Frau Dr. Müller-Lüdenscheidt,",
            ("Sehr geehrte",),
            ("Frau Dr. Müller-Lüdenscheidt",),
            False,
        ),
        ("Hallo Pierre, hallo Odette,", ("Hallo", "hallo"), ("Pierre", "Odette"), False),
        ("Hallo, Pierre oder Odette?", ("Hallo",), ("Pierre", "Odette"), False),
        ("Dear Mr. van der Berg,", ("Dear",), ("Mr. van der Berg",), False),
        ("Hi Bob", ("Hi",), ("Bob",), False),
        ("hallo herr meier", ("hallo",), ("herr meier",), False),
        ("Hi all,", ("Hi",), (), True),
        ("Hallo zusammen,", ("Hallo",), (), True),
        ("Liebe Kolleginnen und Kollegen,", ("Liebe",), (), True),
        ("Guten Tag,", ("Guten Tag",), (), False),
        ("Good morning Jane!", ("Good morning",), ("Jane",), False),
        ("Bonjour Marie,", ("Bonjour",), ("Marie",), False),
        ("Hola Ana,", ("Hola",), ("Ana",), False),
        ("Ciao Marco,", ("Ciao",), ("Marco",), False),
        ("Beste Jan,", ("Beste",), ("Jan",), False),
        ("Jeff,\nthe numbers", (), ("Jeff",), False),
        ("Jeff -\nthe numbers", (), ("Jeff",), False),
        ("Steve, I've been thinking", (), ("Steve",), False),
        ("Herr Meier,\nanbei", (), ("Herr Meier",), False),
        ("Sherrie and Rosie:", (), ("Sherrie", "Rosie"), False),
        ("All,\nplease note", (), (), True),
    ],
)
def test_find_salutation(
    text: str, words: tuple[str, ...], names: tuple[str, ...], group: bool
) -> None:
    found = find_salutation(text)
    assert found is not None, text
    assert (found.words, found.names, found.group) == (words, names, group)
    assert text[found.start : found.end] == found.line


@pytest.mark.parametrize(
    "text",
    [
        "Thanks, that works.",
        "Thanks,\nJeff",
        "FYI",
        "FYI: the file",
        "Jeff called me yesterday.",
        "Liebe Grüße\nAnna",
        "Beste Grüße aus Berlin",
        "Great!",
        "Ober- und Unterkante stimmen.",
        "Washington, DC is where we meet.",
        "Vista Hotel, 1400 M Street",
        "Lunch - still open",
        "With Mark Haedicke, keep Sylvia informed.",
        "Danke, erledigt.",
        "Paul Jacarty\nAndy Keleman",
        "Care should be taken.",
        "",
    ],
)
def test_not_a_salutation(text: str) -> None:
    assert find_salutation(text) is None


def test_span_after_leading_blank_lines() -> None:
    text = "\n\n   Hallo Anna,\nwie geht's?"
    found = find_salutation(text)
    assert found is not None
    assert text[found.start : found.end] == "Hallo Anna,"


def test_bare_name_line_needs_a_name() -> None:
    assert find_salutation("Kevin\nI had the numbers wrong.") is not None
    assert find_salutation("Diane\nRussell Saunders sent the RFP.") is None
    assert find_salutation("Xavier\nI had it.", known_names=["Xavier Quill"]) is not None


def test_heading_above_greeting() -> None:
    found = find_salutation("Neue Wette\n\nWerte Karlau,\nnun ist es so weit.")
    assert found is not None and found.names == ("Karlau",)
    assert find_salutation("Neue Wette\n\nKarlau,\nnun.") is None


def test_extra_words_setting() -> None:
    msg = parse_message(
        b"From: a@example.org\nTo: b@example.com\nSubject: x\n\nAhoj Petr,\njak se mas?\n"
    )
    ctx = CheckContext(message=msg, contacts=MemoryAddressBook())
    assert check_greeting(ctx, GreetingSettings())
    assert not check_greeting(ctx, GreetingSettings(extra_words={"cs": ("ahoj",)}))
    # One configuration's words do not leak into another's (or into the defaults).
    assert check_greeting(ctx, GreetingSettings())
    assert find_salutation("Ahoj Petr,\njak se mas?") is None


def test_extra_word_shared_with_another_language_is_no_language_evidence() -> None:
    assert find_salutation("Hello Anna,\nwie geht's?").language == "en"  # type: ignore[union-attr]
    both = greeting.vocabulary_for({"de": ("Hello",)})
    found = find_salutation("Hello Anna,\nwie geht's?", vocabulary=both)
    assert found is not None and found.names == ("Anna",) and found.language is None
    assert greeting.vocabulary_for({"de": ("Hello",)}) is both  # built once per configuration


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_arbitrary_text_never_raises_and_is_fast(text: str) -> None:
    started = time.perf_counter()
    found = find_salutation(text, known_names=["Anna Schmidt"])
    assert time.perf_counter() - started < 0.2
    if found is not None:
        assert text[found.start : found.end] == found.line


def test_long_first_line_is_fast() -> None:
    line = "Hallo " + "Anna und " * 20000 + "Bob,"
    started = time.perf_counter()
    find_salutation(line)
    find_salutation("Jeff" + "-" * 100000)
    assert time.perf_counter() - started < 0.5


def _lines_by_split(text: str) -> list[tuple[int, str]]:
    """The opening lines as the first version found them: split the whole text."""
    found: list[tuple[int, str]] = []
    offset = 0
    for line in text.split("\n"):
        if line.strip():
            found.append((offset, line))
            if len(found) >= greeting._MAX_LEAD_LINES:
                break
        offset += len(line) + 1
        if offset > 20 * greeting._MAX_LINE:
            break
    return found


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["", " ", "\t", "Hallo Anna,", "x" * 400, "\u2028", "Hi"]), max_size=40
    )
)
def test_opening_lines_walk_matches_splitting(parts: list[str]) -> None:
    text = "\n".join(parts)
    assert list(greeting._lines(text)) == _lines_by_split(text)
