"""The contacts store: upsert, harvest, overrides and the AddressBook view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from courtesy.checks.model import Contact, ContactSource
from courtesy.proxy.contacts_import import read_contacts
from courtesy.store.base import Base
from courtesy.store.contacts import (
    StoreAddressBook,
    contact_json,
    count_contacts,
    delete_contact,
    harvest_display_names,
    list_contacts,
    set_override,
    upsert_contacts,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "contacts"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    Base.metadata.create_all(engine)
    yield sessionmaker(engine)
    engine.dispose()


MEIER = Contact(("thomas.meier@kunde.de",), "Thomas Meier", "Thomas", "Meier", ("Tom",), "Herr")


def test_reimport_updates_never_duplicates(sessions: sessionmaker[Session]) -> None:
    contacts = read_contacts(DATA / "v3.vcf").contacts
    with sessions.begin() as session:
        assert upsert_contacts(session, contacts) == (2, 0)
    with sessions.begin() as session:
        assert upsert_contacts(session, contacts) == (0, 2)
        changed = Contact(("THOMAS.MEIER@kunde.de",), "Thomas Maier", "Thomas", "Maier")
        assert upsert_contacts(session, [changed]) == (0, 1)
    with sessions.begin() as session:
        assert count_contacts(session) == 2
    book = StoreAddressBook(sessions)
    found = book.by_email("tm@privat.de")
    assert found is not None
    assert found.family == "Maier"
    assert found.emails == ("thomas.meier@kunde.de", "tm@privat.de")


def test_by_email_and_by_name(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        upsert_contacts(session, [MEIER, Contact(("p@x.de",), "Peter Schmidt", "Peter", "Schmidt")])
    book = StoreAddressBook(sessions)
    assert book.by_email("Thomas.Meier@KUNDE.de") is not None
    assert book.by_email("nobody@kunde.de") is None
    assert [c.name for c in book.by_name("Peter")] == ["Peter Schmidt"]
    assert [c.name for c in book.by_name("tom")] == ["Thomas Meier"]
    assert [c.name for c in book.by_name("Thomas Meier")] == ["Thomas Meier"]
    assert book.by_name("Mueller") == ()


def test_middle_names_kept_and_the_first_given_name_found(
    sessions: sessionmaker[Session],
) -> None:
    """A harvested "Davis, Mark Dana" keeps Dana; by_name still finds Mark and Mark Davis."""
    with sessions.begin() as session:
        harvest_display_names(session, [("mdavis@client.example", "Davis, Mark Dana")])
    book = StoreAddressBook(sessions)
    found = book.by_email("mdavis@client.example")
    assert found is not None
    assert (found.given, found.family) == ("Mark Dana", "Davis")
    for name in ("Mark", "Mark Dana", "Mark Davis", "Mark Dana Davis"):
        assert [c.emails[0] for c in book.by_name(name)] == ["mdavis@client.example"], name


def test_harvest_never_overrides_the_address_book(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        upsert_contacts(session, [MEIER])
        assert (
            harvest_display_names(
                session,
                [
                    ("thomas.meier@kunde.de", "Tommy M."),
                    ("eva.roth@kunde.de", "Eva Roth"),
                    ("usrp-users@lists.ettus.com", "usrp-users"),
                    ("x@y.de", "x@y.de"),
                ],
            )
            == 1
        )
    book = StoreAddressBook(sessions)
    meier = book.by_email("thomas.meier@kunde.de")
    assert meier is not None and meier.name == "Thomas Meier"
    eva = book.by_email("eva.roth@kunde.de")
    assert eva is not None
    assert (eva.given, eva.family, eva.source) == ("Eva", "Roth", ContactSource.HEADER)
    assert book.by_email("usrp-users@lists.ettus.com") is None
    with sessions.begin() as session:  # a newer display name replaces a harvested one
        harvest_display_names(session, [("eva.roth@kunde.de", "Eva Roth-Berg")])
    eva = book.by_email("eva.roth@kunde.de")
    assert eva is not None and eva.family == "Roth-Berg"
    with sessions.begin() as session:  # an import then takes over
        upsert_contacts(session, [Contact(("eva.roth@kunde.de",), "Eva Roth", "Eva", "Roth")])
    eva = book.by_email("eva.roth@kunde.de")
    assert eva is not None and eva.source == ContactSource.ADDRESS_BOOK


def test_harvest_skips_display_names_that_name_nobody(sessions: sessionmaker[Session]) -> None:
    """A list's rewrite names a poster, not the list; a lower-case local part names nobody."""
    with sessions.begin() as session:
        assert (
            harvest_display_names(
                session,
                [
                    ("usrp-users@lists.example", "Jerrid Plymale via USRP-users"),
                    ("vorstand@googlegroups.com", "'Thomas Meier' via Vorstand"),
                    ("board@club.example", "Rob Kossler (via Board)"),
                    ("rcarroll@bracepatt.example", "rcarroll"),
                    ("pierre@agence.example", "Pierre"),
                ],
            )
            == 1
        )
    book = StoreAddressBook(sessions)
    for email in (
        "usrp-users@lists.example",
        "vorstand@googlegroups.com",
        "board@club.example",
        "rcarroll@bracepatt.example",
    ):
        assert book.by_email(email) is None
    pierre = book.by_email("pierre@agence.example")
    assert pierre is not None and pierre.given == "Pierre"


def test_import_merges_harvested_rows(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        harvest_display_names(session, [("a@x.de", "Anna A"), ("b@x.de", "Anna B")])
        upsert_contacts(session, [Contact(("a@x.de", "b@x.de"), "Anna Bell", "Anna", "Bell")])
    with sessions.begin() as session:
        assert count_contacts(session) == 1


def test_overrides_survive_reimport(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        upsert_contacts(session, [Contact(("weber@kunde.de",), "Anna Weber", "Anna", "Weber")])
        set_override(session, "weber@kunde.de", salutation="Frau Dr.", skip_checks=["name"])
    with sessions.begin() as session:
        upsert_contacts(session, [Contact(("weber@kunde.de",), "Anna Weber", "Anna", "Weber")])
    weber = StoreAddressBook(sessions).by_email("weber@kunde.de")
    assert weber is not None
    assert weber.salutation == "Frau Dr."
    assert weber.skip_checks == frozenset({"name"})
    assert weber.source == ContactSource.OVERRIDE
    with sessions.begin() as session:
        set_override(session, "weber@kunde.de", salutation="", skip_checks=[])
    weber = StoreAddressBook(sessions).by_email("weber@kunde.de")
    assert weber is not None and weber.salutation is None and not weber.skip_checks


def test_override_for_unknown_address_creates_contact(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        set_override(session, "bob@client.example", skip_checks=["name"])
    bob = StoreAddressBook(sessions).by_email("bob@client.example")
    assert bob is not None and "name" in bob.skip_checks


def test_list_json_and_delete(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        upsert_contacts(session, read_contacts(DATA / "google.csv").contacts)
    with sessions() as session:
        rows = [contact_json(c) for c in list_contacts(session)]
    assert [r["name"] for r in rows] == ["Jörg Schäfer", "Robert Jones"]
    assert set(rows[1]) == {
        "emails",
        "name",
        "given",
        "family",
        "nicknames",
        "salutation",
        "source",
    }
    assert rows[1]["nicknames"] == ["Bob"]
    assert rows[1]["source"] == "addressbook"
    with sessions.begin() as session:
        assert delete_contact(session, "bob@home.example")
        assert not delete_contact(session, "bob@home.example")
    assert StoreAddressBook(sessions).by_email("rjones@client.example") is None


def test_bulk_import_with_duplicate_address_in_one_batch(sessions: sessionmaker[Session]) -> None:
    many = [Contact((f"p{i}@x.de",), f"P{i} Q{i}", f"P{i}", f"Q{i}") for i in range(1200)]
    many.append(Contact(("p3@x.de", "extra@x.de"), "Paula Three", "Paula", "Three"))
    with sessions.begin() as session:
        assert upsert_contacts(session, many) == (1200, 1)
    with sessions.begin() as session:
        assert count_contacts(session) == 1200
    three = StoreAddressBook(sessions).by_email("extra@x.de")
    assert three is not None and three.name == "Paula Three"


def test_delete_contact_takes_the_address_as_typed(sessions: sessionmaker[Session]) -> None:
    """Spaces and capitals around the address (as typed on the command line) still find it."""
    with sessions.begin() as session:
        upsert_contacts(session, [Contact(("bob@home.example",), "Bob Jones", "Bob", "Jones")])
    with sessions.begin() as session:
        assert delete_contact(session, "  Bob@Home.example ")
        assert not delete_contact(session, "bob@home.example")
    assert StoreAddressBook(sessions).by_email("bob@home.example") is None
