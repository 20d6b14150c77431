"""closing.missing: off by default; finds closing formulas in six languages."""

from __future__ import annotations

from pathlib import Path

import pytest

from courtesy.checks.closing import CODE_MISSING, ClosingSettings, check_closing, find_closing
from courtesy.checks.message import parse_message
from courtesy.checks.model import CheckContext, MemoryAddressBook, Severity
from courtesy.checks.registry import run_checks

DATA = Path(__file__).resolve().parent.parent / "data" / "checks"


def run(name: str, **options: object) -> list[str]:
    msg = parse_message((DATA / name).read_bytes())
    ctx = CheckContext(message=msg, contacts=MemoryAddressBook(), language="de")
    return [f.code for f in check_closing(ctx, ClosingSettings(enabled=True, **options))]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "fires"),
    [
        ("de_plain_greeting.eml", False),  # "Viele Grüße" above the "-- " signature
        ("de_list_closing.eml", False),  # "Mit freundlichen Grüßen"
        ("de_bottom_post.eml", False),  # "Gruß"
        ("en_gmail_plain_wrapped.eml", False),  # "Best,"
        ("en_plain_no_greeting.eml", False),  # "Thanks,"
        ("de_two_names_latin1.eml", False),  # "Liebe Grüße" in ISO-8859-1
        ("en_outlook_plain_vocative.eml", True),  # only a name
        ("de_outlook_plain_von.eml", True),
        ("en_forward_empty.eml", False),  # no new text: nothing to close
    ],
)
def test_samples(name: str, fires: bool) -> None:
    assert (run(name) == [CODE_MISSING]) is fires


def test_off_by_default() -> None:
    assert ClosingSettings().enabled is False
    msg = parse_message((DATA / "en_outlook_plain_vocative.eml").read_bytes())
    ctx = CheckContext(message=msg, contacts=MemoryAddressBook())
    report = run_checks(ctx)
    assert not any(f.code == CODE_MISSING for f in report.findings)


@pytest.mark.parametrize(
    "text",
    [
        "Hallo,\n\nanbei.\n\nViele Grüße\nAnna",
        "Hi,\n\nsee attached.\n\nBest regards,\nJohn",
        "Bonjour,\n\nvoici.\n\nCordialement,\nPierre",
        "Hola,\n\naquí.\n\nSaludos,\nAna",
        "Ciao,\n\necco.\n\nCordiali saluti\nMarco",
        "Hoi,\n\nhier.\n\nMet vriendelijke groet,\nJan",
        "Hallo,\n\nok.\n\nGruß Orlando",
    ],
)
def test_find_closing_languages(text: str) -> None:
    assert find_closing(text)


def test_sentence_is_not_a_closing_and_message_language() -> None:
    assert find_closing("Hi,\n\nThanks for the file, I will read it.\n") == ""
    msg = parse_message((DATA / "de_outlook_plain_von.eml").read_bytes())
    ctx = CheckContext(message=msg, contacts=MemoryAddressBook(), language="de")
    (finding,) = check_closing(ctx, ClosingSettings(enabled=True, severity=Severity.WARN))
    assert "Grußformel" in finding.message
    assert finding.severity is Severity.WARN
    assert finding.evidence == "Passt so."


def test_extra_words() -> None:
    assert run("de_outlook_plain_von.eml", extra_words=("Passt so",)) == []
