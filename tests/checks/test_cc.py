"""cc.*: spread of a message, from sample messages."""

from __future__ import annotations

from pathlib import Path

from courtesy.checks.cc import CODE_ADDED, CODE_EXPOSED, CODE_TOO_MANY, CcSettings, check_cc
from courtesy.checks.message import parse_message
from courtesy.checks.model import (
    CheckContext,
    Exceptions,
    Finding,
    MemoryAddressBook,
    ThreadView,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "cc"


def run(name: str, settings: CcSettings | None = None, **kwargs: object) -> list[Finding]:
    message = parse_message((DATA / f"{name}.eml").read_bytes())
    ctx = CheckContext(message=message, contacts=MemoryAddressBook(), **kwargs)  # type: ignore[arg-type]
    return check_cc(ctx, settings or CcSettings())


def codes(name: str, settings: CcSettings | None = None, **kwargs: object) -> list[str]:
    return [f.code for f in run(name, settings, **kwargs)]


def test_three_cc_is_fine_four_is_too_many() -> None:
    assert codes("en_cc_three") == []
    (finding,) = run("en_cc_four")
    assert finding.code == CODE_TOO_MANY
    assert finding.message.startswith("4 people are on Cc (more than 3)")
    assert "p3@firm3.example" in finding.evidence


def test_own_address_on_cc_does_not_count() -> None:
    assert codes("de_cc_four_with_self") == []


def test_max_cc_setting() -> None:
    assert codes("en_cc_four", CcSettings(max_cc=4)) == []
    assert codes("en_cc_three", CcSettings(max_cc=2)) == [CODE_TOO_MANY]


def test_german_message() -> None:
    (finding,) = run("en_cc_four", language="de")
    assert finding.message.startswith("4 Personen stehen in Cc")


def test_external_addresses_exposed() -> None:
    (finding,) = run("en_exposed")
    assert finding.code == CODE_EXPOSED
    assert finding.suggestion == "Bcc"
    assert "11 external addresses" in finding.message


def test_own_domain_is_not_external() -> None:
    assert codes("de_internal") == []  # the sender's own domain
    assert codes("de_exposed_own_domain", CcSettings(max_exposed=6)) == [CODE_EXPOSED]
    own = CcSettings(max_exposed=6, own_domains=("sommer-gruppe.de",))
    assert codes("de_exposed_own_domain", own) == []
    assert (
        codes(
            "de_exposed_own_domain",
            CcSettings(max_exposed=6),
            own_domains=frozenset({"sommer-gruppe.de"}),
        )
        == []
    )


def test_reply_adds_people_to_thread() -> None:
    thread = ThreadView(
        {"<orig-1@kunde.de>": frozenset({"thomas.meier@kunde.de", "eva.roth@kunde.de"})}
    )
    (finding,) = run("de_reply_added", thread=thread)
    assert finding.code == CODE_ADDED
    assert "jens.berg@kunde.de" in finding.evidence
    assert "eva.roth" not in finding.evidence
    assert "Jens Berg" in finding.message


def test_reply_to_unknown_thread_is_silent() -> None:
    assert codes("de_reply_added") == []
    other = ThreadView({"<unrelated@x>": frozenset({"a@b.c"})})
    assert codes("de_reply_added", thread=other) == []


def test_reply_with_same_people_is_fine() -> None:
    thread = ThreadView(
        {"<orig-2@client.example>": frozenset({"bob@client.example", "carol@client.example"})}
    )
    assert codes("en_reply_same_people", thread=thread) == []


def test_reference_counts_too() -> None:
    # Eva was on the first message of the thread, Jens on none.
    thread = ThreadView(
        {
            "<orig-0@kunde.de>": frozenset({"eva.roth@kunde.de"}),
            "<orig-1@kunde.de>": frozenset({"thomas.meier@kunde.de", "jens.berg@kunde.de"}),
        }
    )
    assert codes("de_reply_added", thread=thread) == []


def test_exception_for_added_person() -> None:
    thread = ThreadView({"<orig-1@kunde.de>": frozenset({"thomas.meier@kunde.de"})})
    exceptions = Exceptions(
        frozenset({("jens.berg@kunde.de", CODE_ADDED), ("eva.roth@kunde.de", "cc")})
    )
    assert codes("de_reply_added", thread=thread, exceptions=exceptions) == []
    (finding,) = run("de_reply_added", thread=thread)
    assert "eva.roth@kunde.de" in finding.evidence and "jens.berg@kunde.de" in finding.evidence
