"""Address-book import: vCard 3/4 and the CSV exports, broken records included."""

from __future__ import annotations

from pathlib import Path

import pytest

from courtesy.checks.model import Contact, ContactSource
from courtesy.proxy.contacts_import import (
    ContactsFormatError,
    ImportResult,
    parse_contacts,
    read_contacts,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "contacts"


def by_email(result: ImportResult) -> dict[str, Contact]:
    return {c.emails[0]: c for c in result.contacts}


def test_vcard3_prefix_nicknames_and_several_addresses() -> None:
    result = read_contacts(DATA / "v3.vcf")
    assert result.format == "vcard"
    assert result.errors == []
    assert result.skipped == 1  # the card without an address
    contacts = by_email(result)
    meier = contacts["thomas.meier@kunde.de"]  # lower-cased
    assert meier.emails == ("thomas.meier@kunde.de", "tm@privat.de")
    assert (meier.given, meier.family, meier.salutation) == ("Thomas", "Meier", "Herr")
    assert meier.nicknames == ("Tom", "Tommy")
    assert meier.source == ContactSource.ADDRESS_BOOK
    weber = contacts["weber@kunde.de"]
    assert weber.salutation == "Frau Dr."
    assert weber.name == "Dr. Anna Weber"


def test_vcard4_gender_and_quoted_nickname() -> None:
    contacts = by_email(read_contacts(DATA / "v4.vcf"))
    assert contacts["jmyan@uni.example"].gender == "M"
    assert contacts["jmyan@uni.example"].nicknames == ("Marshall",)
    assert contacts["kim.lee@firm.example"].gender == "F"
    assert contacts["kim.lee@firm.example"].nicknames == ("Kimmy",)


def test_broken_card_is_one_error_and_the_rest_imports() -> None:
    result = read_contacts(DATA / "broken.vcf")
    assert [c.emails[0] for c in result.contacts] == ["erste@gut.example", "dritte@gut.example"]
    (error,) = result.errors
    assert error.startswith("line 7: vCard record 2:")
    assert "\n" not in error


def test_google_csv() -> None:
    result = read_contacts(DATA / "google.csv")
    assert result.format == "google"
    assert result.skipped == 1  # a phone-only contact
    bob = by_email(result)["rjones@client.example"]
    assert bob.emails == ("rjones@client.example", "bob@home.example")
    assert (bob.given, bob.family, bob.nicknames, bob.salutation) == (
        "Robert",
        "Jones",
        ("Bob",),
        "Mr.",
    )
    assert by_email(result)["joerg.schaefer@kunde.de"].family == "Schäfer"


def test_outlook_csv_english_and_german_windows_1252() -> None:
    english = read_contacts(DATA / "outlook.csv")
    assert english.format == "outlook"
    eva = by_email(english)["eva.roth@kunde.de"]
    assert (eva.salutation, eva.gender) == ("Ms.", "F")
    assert by_email(english)["jens.berg@kunde.de"].emails[1] == "jb@privat.example"
    german = read_contacts(DATA / "outlook_de.csv")
    assert german.format == "outlook"
    greta = by_email(german)["greta.mueller@obst.example"]
    assert (greta.given, greta.family, greta.salutation, greta.gender) == (
        "Greta Maria",  # "Weitere Vornamen": a middle name is a given name too
        "Müller",
        "Frau",
        "F",
    )
    assert by_email(german)["klaus@obst.example"].salutation == "Herr"


def test_thunderbird_csv_with_a_broken_row() -> None:
    result = read_contacts(DATA / "thunderbird.csv")
    assert result.format == "thunderbird"
    odette = by_email(result)["odette@kunde.fr"]
    assert (odette.given, odette.family, odette.nicknames) == ("Odette", "Martin", ("Odi",))
    assert len(result.contacts) == 2
    (error,) = result.errors
    assert error.startswith("line 4:")


def test_unknown_csv_is_refused() -> None:
    with pytest.raises(ContactsFormatError):
        read_contacts(DATA / "unknown.csv")


def test_progress_callback() -> None:
    seen: list[tuple[int, int]] = []
    parse_contacts(
        (DATA / "v4.vcf").read_text(), progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(1, 2), (2, 2)]


def test_middle_names_join_the_given_name_initials_do_not() -> None:
    """vCard N additional names and the CSV middle-name columns: a person may go by one."""
    cards = parse_contacts(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Davis;Mark;Dana;;\r\nFN:Mark Davis\r\n"
        "EMAIL:mdavis@client.example\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:4.0\r\nN:Kennedy;John;F.;;\r\nFN:John F. Kennedy\r\n"
        "EMAIL:jfk@client.example\r\nEND:VCARD\r\n"
    )
    contacts = by_email(cards)
    assert (contacts["mdavis@client.example"].given, contacts["mdavis@client.example"].family) == (
        "Mark Dana",
        "Davis",
    )
    assert contacts["jfk@client.example"].given == "John"
    outlook = parse_contacts(
        "First Name,Middle Name,Last Name,E-mail Address\r\n"
        "Anna,Maria,Müller,a.mueller@kunde.de\r\n"
        "John,F.,Kennedy,jfk@client.example\r\n"
    )
    assert by_email(outlook)["a.mueller@kunde.de"].given == "Anna Maria"
    assert by_email(outlook)["jfk@client.example"].given == "John"
    german = parse_contacts(
        '"Vorname";"Weitere Vornamen";"Nachname";"E-Mail-Adresse"\r\n'
        '"Katrin";"Sophie";"Brändle";"k.braendle@kunde.de"\r\n'
    )
    assert by_email(german)["k.braendle@kunde.de"].given == "Katrin Sophie"
