"""name.*: sample messages in German and English against a small address book."""

from __future__ import annotations

from pathlib import Path

import pytest

from courtesy.checks.greeting import GreetingSettings
from courtesy.checks.message import parse_message
from courtesy.checks.model import (
    Address,
    CheckContext,
    Contact,
    ContactSource,
    Exceptions,
    Finding,
    MemoryAddressBook,
    Severity,
    ThreadView,
)
from courtesy.checks.names import (
    CODE_MISSPELLED,
    CODE_SALUTATION_MISMATCH,
    CODE_WRONG_PERSON,
    NameSettings,
    address_fits,
    address_person_name,
    check_names,
    given_names,
    known_name,
    names_from_address,
    normalise,
    parse_person_name,
    parse_written,
)
from courtesy.checks.registry import families, run_checks

DATA = Path(__file__).resolve().parent.parent / "data" / "names"


def book() -> MemoryAddressBook:
    return MemoryAddressBook(
        [
            Contact(
                ("thomas.meier@kunde.de",), "Thomas Meier", "Thomas", "Meier", salutation="Herr"
            ),
            Contact(("weber@kunde.de",), "Anna Weber", "Anna", "Weber", salutation="Frau"),
            Contact(("a.schmidt@kunde.de",), "Anna Schmidt", "Anna", "Schmidt", gender="F"),
            Contact(("peter.schmidt@lieferant.de",), "Peter Schmidt", "Peter", "Schmidt"),
            Contact(("john.smith@client.example",), "John Smith", "John", "Smith", gender="M"),
            Contact(
                ("ewoods@client.example",),
                "Eldrick Woods",
                "Eldrick",
                "Woods",
                nicknames=("Tiger",),
            ),
            Contact(
                ("jq@client.example",),
                "Jonathan Quill",
                "Jonathan",
                "Quill",
                skip_checks=frozenset({"name"}),
            ),
            # Booked as "Katrin" / "Brändle"; the full name has her middle name.
            Contact(
                ("k.braendle@kunde.de",),
                "Katrin Sophie Brändle",
                "Katrin",
                "Brändle",
                salutation="Frau",
            ),
        ]
    )


def run_raw(raw: bytes, language: str = "en", **kwargs: object) -> list[Finding]:
    """The name checks on a raw message, against book()."""
    message = parse_message(raw)
    ctx = CheckContext(message=message, contacts=book(), language=language, **kwargs)  # type: ignore[arg-type]
    return check_names(ctx, NameSettings())


def run(name: str, language: str = "en", **kwargs: object) -> list[Finding]:
    return run_raw((DATA / f"{name}.eml").read_bytes(), language, **kwargs)


def codes(name: str) -> list[str]:
    return [f.code for f in run(name)]


@pytest.mark.parametrize(
    "name",
    [
        "de_exact",
        "de_transliteration",  # Mueller-Luedenscheidt = Müller-Lüdenscheidt, Dr. ignored
        "de_eszett",  # Strauss = Strauß
        "de_two_names",
        "de_unknown_recipient",  # info@: nothing known, no guessing
        "de_given_unknown",  # t.meier@: the first name could be anything
        "de_group",
        "de_particle",  # von der Leyen
        "de_cc_person",  # greeting a Cc recipient is fine
        "en_nickname",  # Bob = Robert (nicknames dataset)
        "en_family_first",  # "Hodges, Jeffrey" and Jeff
        "en_book_nickname",  # Tiger, recorded in the address book
        "en_address_only",  # thomas.meier@ -> Thomas
        "en_list_cc",  # a mailing list on Cc: Ian may be on it
        "en_particle",  # Mr. van der Berg
        "en_skip",  # the contact says: never check the name
        "en_full_name",  # first and last name
        "de_kurzform",  # Kathi for Katharina: a short form
        "en_short_form",  # "Christie --" for Christabel
        # A list's rewrite of a poster's name is not the list's name (Mailman,
        # Google Groups, Sympa "(via …)" and "(on behalf of …)").
        "en_list_via",
        "en_list_via_sympa",
        "de_liste_via_google",
        "de_liste_im_auftrag",
        # "rcarroll <rcarroll@…>": the display name only repeats the address.
        "en_localpart_echo",
        "de_lokalteil_echo",
        # Middle names are forms of address: many people go by theirs.
        "en_middle_name",  # "Hi Dana" to Mark Dana Davis
        "en_middle_name_family_first",  # "Dana," to "Davis, Mark Dana"
        "de_zweiter_vorname",  # "Hallo Maria" an "Müller, Anna Maria"
        "de_zweiter_vorname_buch",  # the address book's full name has the middle name
    ],
)
def test_no_finding(name: str) -> None:
    assert codes(name) == []


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("de_misspelled", "Meier"),
        ("de_umlaut_dropped", "Müller-Lüdenscheidt"),
        ("de_schmitt", "Schmidt"),
        ("de_surname_from_address", "Meier"),
        ("en_jon", "John"),  # a nickname one letter off the booked name is a slip
        ("en_address_only_typo", "Thomas"),
        ("en_bare_vocative_typo", "John"),  # "Jhon --": a bare name the parser alone would miss
        # One slip in a short form: more than two edits from the booked name itself.
        ("de_kurzform_tippfehler", "Kathi"),
        ("en_short_form_typo", "Christie"),  # "Chrsitie -- does ...": found as a vocative too
        # A middle name does not hide a slip in the first name, and is checked itself.
        ("en_middle_name_first_typo", "John"),  # "Hi Jhon" to John Fitzgerald Kennedy
        ("en_middle_initial_typo", "John"),  # "Hi Jhon" to John F. Kennedy
        ("de_zweiter_vorname_tippfehler", "Maria"),  # "Hallo Mraia" an Anna Maria Müller
    ],
)
def test_misspelled(name: str, suggestion: str) -> None:
    findings = run(name)
    assert [f.code for f in findings] == [CODE_MISSPELLED]
    assert findings[0].severity == Severity.BLOCK
    assert findings[0].suggestion == suggestion


@pytest.mark.parametrize("name", ["de_vorname_anzeige", "en_firstname_display"])
def test_capitalised_display_name_equal_to_local_part_still_counts(name: str) -> None:
    """``Pierre <pierre@…>`` is a name somebody wrote: "Paul" is the wrong person."""
    assert codes(name) == [CODE_WRONG_PERSON]


@pytest.mark.parametrize(
    ("email", "display", "expected"),
    [
        ("usrp-users@lists.example", "Jerrid Plymale via USRP-users", (None, None, ())),
        ("syzkaller@googlegroups.com", "'Dmitry Vyukov' via syzkaller", (None, None, ())),
        ("board@club.example", "Rob Kossler (via Board)", (None, None, ())),
        ("board@club.example", "Board (on behalf of Rob Kossler)", (None, None, ())),
        ("rcarroll@bracepatt.example", "rcarroll", (None, None, ())),
        ("GFergus@kanzlei.example", "gfergus", (None, None, ())),
        ("ann+lists@x.example", "ann", (None, None, ())),
        ("pierre@agence.example", "Pierre", (None, None, ("Pierre",))),
        ("rcarroll@bracepatt.example", "Ron Carroll", ("Ron", "Carroll", ())),
        ("anna@x.example", "Anna Via", ("Anna", "Via", ())),  # a surname, not a list
    ],
)
def test_address_person_name(
    email: str, display: str, expected: tuple[str | None, str | None, tuple[str, ...]]
) -> None:
    assert address_person_name(email, display)[:3] == expected


@pytest.mark.parametrize(
    "display",
    ["Rob Kossler via USRP-users", "Rob Kossler (via Board)", "Board (on behalf of Rob Kossler)"],
)
def test_a_lists_rewrite_still_names_the_poster(display: str) -> None:
    """In a quote header the poster's name counts (thread people), just not for the address."""
    assert parse_person_name(display)[:2] == ("Rob", "Kossler")


def test_a_harvested_list_rewrite_stored_earlier_is_ignored() -> None:
    """A store harvested before the rule may still hold "Jerrid Plymale via USRP-users"."""
    message = parse_message((DATA / "en_list_via.eml").read_bytes())
    stale = Contact(
        ("usrp-users@lists.example",),
        "Jerrid Plymale via USRP-users",
        "Jerrid",
        "Plymale",
        source=ContactSource.HEADER,
    )
    ctx = CheckContext(message=message, contacts=MemoryAddressBook([stale]))
    assert check_names(ctx, NameSettings()) == []
    assert known_name(message.to[0], "to", ctx) is None


def test_misspelled_finding_quotes_the_salutation() -> None:
    (finding,) = run("de_misspelled", language="de")
    assert finding.evidence == "Hallo Herr Meyer,"
    assert finding.message == "Die Anrede schreibt 'Meyer'; der Empfänger heißt Thomas Meier."
    (english,) = run("de_misspelled", language="en")
    assert english.message == "The greeting says 'Meyer'; the recipient is Thomas Meier."


def test_all_lowercase_is_a_warning() -> None:
    (finding,) = run("de_lowercase")
    assert finding.code == CODE_MISSPELLED
    assert finding.severity == Severity.WARN
    assert finding.suggestion == "Meier"


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("en_middle_name_wrong", "Mark"),  # the first given name, not "Mark Dana"
        ("en_middle_initial_wrong", "John"),  # "Hi Frank" to John F.: an initial adds nothing
        ("de_zweiter_vorname_falsch", "Anna"),
    ],
)
def test_wrong_person_with_middle_names(name: str, suggestion: str) -> None:
    findings = run(name)
    assert [f.code for f in findings] == [CODE_WRONG_PERSON]
    assert findings[0].suggestion == suggestion


def test_middle_name_from_the_book_only() -> None:
    """The header says "Brändle, Katrin"; only the book's full name knows Sophie."""
    message = parse_message((DATA / "de_zweiter_vorname_buch.eml").read_bytes())
    ctx = CheckContext(message=message, contacts=MemoryAddressBook())
    assert [f.code for f in check_names(ctx, NameSettings())] == [CODE_WRONG_PERSON]


def test_full_name_of_someone_else_adds_no_middle_name() -> None:
    """The booked given name gains middle names only from a full name with the same surname."""
    message = parse_message((DATA / "de_zweiter_vorname_buch.eml").read_bytes())
    contacts = MemoryAddressBook(
        [Contact(("k.braendle@kunde.de",), "Katrin Sophie Weber", "Katrin", "Brändle")]
    )
    ctx = CheckContext(message=message, contacts=contacts)
    assert [f.code for f in check_names(ctx, NameSettings())] == [CODE_WRONG_PERSON]


def test_wrong_person_names_the_person_the_book_knows() -> None:
    (finding,) = run("de_wrong_person")
    assert finding.code == CODE_WRONG_PERSON
    assert "Peter Schmidt" in finding.message
    assert finding.suggestion == "Thomas"
    assert finding.evidence == "Hallo Peter,"


def test_wrong_person_lists_recipients_when_the_name_is_unknown() -> None:
    (finding,) = run("en_wrong_person")
    assert finding.code == CODE_WRONG_PERSON
    assert finding.message == (
        "The greeting names Sarah, who is none of the recipients (Mark Andrews)."
    )


def test_one_of_two_names_wrong() -> None:
    (finding,) = run("de_two_names_one_wrong")
    assert finding.code == CODE_WRONG_PERSON
    assert "Odile" in finding.message
    assert finding.suggestion == "Odette"  # the recipient nobody greeted yet


@pytest.mark.parametrize(
    ("name", "suggestion"), [("de_salutation_mismatch", "Frau"), ("en_salutation_mismatch", "Mr.")]
)
def test_salutation_mismatch(name: str, suggestion: str) -> None:
    findings = run(name)
    assert [f.code for f in findings] == [CODE_SALUTATION_MISMATCH]
    assert findings[0].suggestion == suggestion


def test_exception_silences_one_recipient() -> None:
    exceptions = Exceptions(frozenset({("thomas.meier@kunde.de", "name.misspelled")}))
    assert run("de_misspelled", exceptions=exceptions) == []
    other = Exceptions(frozenset({("someone@else.de", "name")}))
    assert [f.code for f in run("de_misspelled", exceptions=other)] == [CODE_MISSPELLED]


def test_header_name_used_without_address_book() -> None:
    message = parse_message((DATA / "de_misspelled.eml").read_bytes())
    ctx = CheckContext(message=message, contacts=MemoryAddressBook())
    (finding,) = check_names(ctx, NameSettings())
    assert finding.suggestion == "Meier"


def test_address_book_beats_header_display_name() -> None:
    # The header says "Thomas Meier"; the book says the person is Thomas Meyer.
    message = parse_message((DATA / "de_misspelled.eml").read_bytes())
    contacts = MemoryAddressBook(
        [Contact(("thomas.meier@kunde.de",), "Thomas Meyer", "Thomas", "Meyer")]
    )
    assert check_names(CheckContext(message=message, contacts=contacts), NameSettings()) == []


def test_registered_and_run_by_registry() -> None:
    assert "name" in families()
    message = parse_message((DATA / "de_misspelled.eml").read_bytes())
    report = run_checks(CheckContext(message=message, contacts=book()))
    assert CODE_MISSPELLED in [f.code for f in report.findings]
    disabled = run_checks(
        CheckContext(message=message, contacts=book()), {"name": NameSettings(enabled=False)}
    )
    assert CODE_MISSPELLED not in [f.code for f in disabled.findings]


@pytest.mark.parametrize(
    ("name", "language", "suggestion"),
    [("de_extra_greeting_word", "de", "Jonas"), ("en_extra_greeting_word", "en", "Robert")],
)
def test_configured_greeting_word_opens_the_salutation_for_the_names_check(
    name: str, language: str, suggestion: str
) -> None:
    # "Ahoj" is no built-in greeting, so "Ahoj Jonsa" reads as a two-word name;
    # [checks.greeting] extra_words makes it a greeting word for the names check too.
    unconfigured = run(name, language)
    assert [(f.code, f.suggestion) for f in unconfigured] == [
        (CODE_MISSPELLED, f"Ahoj {suggestion}")
    ]
    found = run(name, language, greeting_words={"cs": ("Ahoj",)})
    assert [(f.code, f.suggestion) for f in found] == [(CODE_MISSPELLED, suggestion)]


def test_registry_hands_greeting_words_to_the_names_check() -> None:
    message = parse_message((DATA / "en_extra_greeting_word.eml").read_bytes())
    context = CheckContext(message=message, contacts=book())
    plain = run_checks(context, {"greeting": GreetingSettings()})
    configured = run_checks(context, {"greeting": GreetingSettings(extra_words={"cs": ("ahoj",)})})
    assert {(f.code, f.suggestion) for f in plain.findings} == {
        ("greeting.missing", None),
        (CODE_MISSPELLED, "Ahoj Robert"),
    }
    assert [(f.code, f.suggestion) for f in configured.findings] == [(CODE_MISSPELLED, "Robert")]
    # Other runs are not changed by one configuration's words.
    assert run_checks(context, {"greeting": GreetingSettings()}) == plain


@pytest.mark.parametrize(
    ("raw", "words", "form"),
    [
        ("Herr Dr. Müller-Lüdenscheidt", ("Müller-Lüdenscheidt",), "Herr"),
        ("Mr. van der Berg", ("Berg",), "Mr."),
        ("Pierre", ("Pierre",), None),
        ("Prof. Dr. Anna Weber", ("Anna", "Weber"), None),
    ],
)
def test_parse_written(raw: str, words: tuple[str, ...], form: str | None) -> None:
    (parsed,) = parse_written([raw])
    assert parsed.words == words
    assert parsed.form == form


def test_parse_written_splits_persons() -> None:
    assert [p.text for p in parse_written(["Sherrie and Rosie"])] == ["Sherrie", "Rosie"]


@pytest.mark.parametrize(
    ("display", "given", "family", "nicknames"),
    [
        ("Hodges, Jeff", "Jeff", "Hodges", ()),
        ("Marcus D. Leech", "Marcus", "Leech", ()),
        ("Jingming 'Marshall' Yan", "Jingming", "Yan", ("Marshall",)),
        ("Jan van der Berg", "Jan", "van der Berg", ()),
        ("Davis, Mark Dana", "Mark Dana", "Davis", ()),
        ("Mark Dana Davis", "Mark Dana", "Davis", ()),
        ("Müller, Anna Maria", "Anna Maria", "Müller", ()),
        ("John F. Kennedy", "John", "Kennedy", ()),
        ("Ludwig Mies van der Rohe", "Ludwig Mies", "van der Rohe", ()),
        ("van der Berg, Jan Pieter", "Jan Pieter", "van der Berg", ()),
        ("Mark Davis Jr.", "Mark", "Davis", ()),
        ("Prof. Dr. Hans Peter Meier", "Hans Peter", "Meier", ()),
        ("Rob Kossler via USRP-users", "Rob", "Kossler", ()),
        ("usrp-users", None, None, ()),
        ("GNURadio Discussion List", None, None, ()),
    ],
)
def test_parse_person_name(
    display: str, given: str | None, family: str | None, nicknames: tuple[str, ...]
) -> None:
    g, f, _other, nicks = parse_person_name(display)
    assert (g, f, nicks) == (given, family, nicknames)


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("thomas.meier@x.de", ("Thomas", "Meier")),
        ("t.meier@x.de", (None, "Meier")),
        ("d..steffes@x.com", (None, "Steffes")),
        ("tmeier@x.de", (None, None)),
        ("peter.del.vecchio@x.com", ("Peter", "Del Vecchio")),
        ("support.team@x.com", (None, None)),
    ],
)
def test_names_from_address(email: str, expected: tuple[str | None, str | None]) -> None:
    assert names_from_address(email) == expected


def test_given_names() -> None:
    assert given_names("Mark", "Dana") == "Mark Dana"
    assert given_names("John", "F.") == "John"  # a middle initial is no form of address
    assert given_names("J.", "Fitzgerald") == "Fitzgerald"
    assert given_names("Hans-Peter", "") == "Hans-Peter"
    assert given_names("", None) is None


def test_known_name_indexes_middle_names_as_given_names() -> None:
    message = parse_message((DATA / "en_middle_name.eml").read_bytes())
    known = known_name(message.to[0], "to", CheckContext(message, MemoryAddressBook()))
    assert known is not None
    assert known.roles["dana"] == known.roles["mark"] == "given"
    assert known.roles["mark davis"] == known.roles["mark dana davis"] == "full"
    assert known.first_given == "Mark"


def test_by_name_finds_a_contact_by_its_first_given_name() -> None:
    contact = Contact(("a.mueller@kunde.de",), "Anna Maria Müller", "Anna Maria", "Müller")
    contacts = MemoryAddressBook([contact])
    assert contacts.by_name("Anna") == contacts.by_name("anna maria") == (contact,)


def test_normalise() -> None:
    assert normalise("Müller") == normalise("Mueller") == "mueller"
    assert normalise("Strauß") == "strauss"
    assert normalise("Jørn") == "jorn"
    assert normalise("Muller") != normalise("Müller")


def test_known_name_prefers_address_book() -> None:
    message = parse_message((DATA / "de_exact.eml").read_bytes())
    ctx = CheckContext(message=message, contacts=book())
    known = known_name(message.to[0], "to", ctx)
    assert known is not None
    assert known.salutation == "Herr"


# --- the thread as a name source: quoted authors, list replies -----------------------


def run_variant(name: str, old: str, new: str, language: str = "en") -> list[Finding]:
    """``name``.eml with its greeting ``old`` rewritten as ``new``."""
    raw = (DATA / f"{name}.eml").read_bytes()
    assert old.encode() in raw
    return run_raw(raw.replace(old.encode(), new.encode(), 1), language)


@pytest.mark.parametrize(
    ("name", "language", "garbled", "real", "suggestion"),
    [
        ("en_short_name_garbled", "en", "Hi Wve,", "Hi Dave,", "Wade"),
        ("de_kurzer_name_verschrieben", "de", "Hallo Tmo,", "Hallo Tina,", "Tim"),
    ],
)
def test_garbled_word_two_edits_off_a_short_name_is_a_misspelling(
    name: str, language: str, garbled: str, real: str, suggestion: str
) -> None:
    # Two edits off a name of up to four letters: a word that is no first name
    # at all is a slip (Wve for Wade, Tmo for Tim); a real first name that far
    # off (Dave, Tina) is somebody else.
    (finding,) = run(name, language)
    assert (finding.code, finding.suggestion) == (CODE_MISSPELLED, suggestion)
    (other,) = run_variant(name, garbled, real, language)
    assert other.code == CODE_WRONG_PERSON


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        # A list reply greeting the author of the quoted message.
        ("en_list_reply", "Hi Marcus,", "Hi Marcus,"),
        # ... or a third participant quoted deeper ("Ian Buckley via USRP-users wrote:").
        ("en_list_reply", "Hi Marcus,", "Hi Ian,"),
        # ... or someone named only in the quoted conversation ("Ian and Nick,").
        ("en_list_reply", "Hi Marcus,", "Hi Nick,"),
        ("en_list_reply", "Hi Marcus,", "Hi all,"),
        # The quote header shows only steve.wakelam@: the address gives the name.
        ("en_list_reply_gmail_address", "Hey Steve,", "Hey Steve,"),
        # A list reply without a quote: any list member may be meant.
        ("en_list_no_quote", "Hi Marcus,", "Hi Marcus,"),
        ("en_list_no_quote", "Hi Marcus,", "Hi Steve,"),
        # An opaque personal address; the only quoted author is the sender.
        ("en_opaque_quote_self", "Marshall:", "Marshall:"),
        ("en_opaque_quote_self", "Marshall:", "Pierre:"),
        # "From: "Balson, William" <wbalson@…>": Bill = William.
        ("en_outlook_mailto", "Bill,", "Bill,"),
        # "From: Steffes, James D." (no address) fits d..steffes@: Jim = James.
        ("en_outlook_name_only", "Jim --", "Jim --"),
        # "Andrew" for "Andrews, Mark": a surname read as a first name, not far from it.
        ("en_patronymic", "Hi Andrew,", "Hi Andrew,"),
        ("de_listen_antwort", "Hallo Thomas,", "Hallo Thomas,"),
        ("de_listen_antwort", "Hallo Thomas,", "Hallo zusammen,"),
        ("de_outlook_von", "Hallo Herr Meier,", "Hallo Herr Meier,"),
        ("de_outlook_von", "Hallo Herr Meier,", "Hallo Thomas,"),
    ],
)
def test_thread_no_finding(name: str, old: str, new: str) -> None:
    assert run_variant(name, old, new) == []


@pytest.mark.parametrize(
    ("name", "old", "new", "who"),
    [
        ("en_list_reply", "Hi Marcus,", "Hi Steve,", "Marcus Leech"),
        ("de_listen_antwort", "Hallo Thomas,", "Hallo Peter,", "Thomas Meier"),
        # Recipients known from the quote header: the ordinary wrong-person rule.
        ("en_outlook_mailto", "Bill,", "Frank,", "William Balson"),
        # A bare "Name --" vocative, even with a name no dataset knows.
        ("en_outlook_name_only", "Jim --", "Karlau --", "James Steffes"),
        ("en_patronymic", "Hi Andrew,", "Hi Sarah,", "Mark"),
    ],
)
def test_thread_wrong_person(name: str, old: str, new: str, who: str) -> None:
    findings = run_variant(name, old, new)
    assert [f.code for f in findings] == [CODE_WRONG_PERSON]
    assert who in findings[0].message


def test_list_reply_wrong_person_message_and_suggestion() -> None:
    (finding,) = run_variant("en_list_reply", "Hi Marcus,", "Hi Steve,")
    assert finding.message == (
        "The greeting names Steve, who is neither a recipient nor the author of a message "
        "you quote or answer (Marcus Leech, Ian Buckley)."
    )
    assert finding.suggestion == "Marcus"
    assert finding.evidence == "Hi Steve,"
    (german,) = run_variant("de_listen_antwort", "Hallo Thomas,", "Hallo Peter,", "de")
    assert german.message == (
        "Die Anrede nennt Peter, aber so heißt weder ein Empfänger noch der Autor einer "
        "zitierten oder beantworteten Nachricht (Thomas Meier)."
    )


@pytest.mark.parametrize(
    ("name", "old", "new", "suggestion"),
    [
        ("en_list_reply", "Hi Marcus,", "Hi Marcsu,", "Marcus"),
        ("en_list_reply_gmail_address", "Hey Steve,", "Hey Stvee,", "Steve"),
        ("de_listen_antwort", "Hallo Thomas,", "Hallo Thoams,", "Thomas"),
        ("en_outlook_mailto", "Bill,", "Wiliam,", "William"),
        ("de_outlook_von", "Hallo Herr Meier,", "Hallo Herr Meyer,", "Meier"),
    ],
)
def test_thread_misspelled(name: str, old: str, new: str, suggestion: str) -> None:
    findings = run_variant(name, old, new)
    assert [f.code for f in findings] == [CODE_MISSPELLED]
    assert findings[0].suggestion == suggestion


def test_list_reply_misspelling_names_the_quoted_author() -> None:
    (finding,) = run_variant("de_listen_antwort", "Hallo Thomas,", "Hallo Thoams,", "de")
    assert finding.message == (
        "Die Anrede schreibt 'Thoams'; die beantwortete Nachricht ist von Thomas Meier."
    )


def test_role_address_reply_is_decided_by_the_thread() -> None:
    raw = (DATA / "de_listen_antwort.eml").read_bytes()
    raw = raw.replace(b"nutzer@lists.verein.example", b"info@verein.example")
    message = parse_message(raw.replace(b"Hallo Thomas,", b"Hallo Peter,"))
    findings = check_names(CheckContext(message=message, contacts=book()), NameSettings())
    assert [f.code for f in findings] == [CODE_WRONG_PERSON]


def test_quoted_header_name_for_an_opaque_address() -> None:
    message = parse_message((DATA / "en_outlook_mailto.eml").read_bytes())
    known = known_name(message.to[0], "to", CheckContext(message=message, contacts=book()))
    assert known is not None
    assert (known.given, known.family) == ("William", "Balson")


def test_a_list_address_does_not_take_the_posters_name() -> None:
    # "Ian Buckley via USRP-users <usrp-users@lists…> wrote:" names Ian, not the list.
    raw = (
        (DATA / "en_list_reply.eml")
        .read_bytes()
        .replace(
            b"On 2025-03-02 10:47, Ian Buckley via USRP-users wrote:",
            b"On 2025-03-02 10:47, Ian Buckley via USRP-users <usrp-users@lists.ettus.com> wrote:",
        )
    )
    message = parse_message(raw)
    ctx = CheckContext(message=message, contacts=book())
    assert known_name(message.to[0], "to", ctx) is None


# --- the answered message's author, as the poller stored it ----------------------------

# The list replies without a quote, and the Message-ID each answers (In-Reply-To).
UNQUOTED = {
    "en_list_answer_no_quote": ("<martin-2@courtesy.test>", "en", "Hi Martin,"),
    "de_listen_antwort_ohne_zitat": ("<martin-3@courtesy.test>", "de", "Hallo Martin,"),
}
MARTIN = Address(email="martin@ettus.example", name="Martin Braun")


def run_answering(
    name: str,
    new: str | None = None,
    *,
    answered: Address | None = None,
    thread: dict[str, Address] | None = None,
) -> list[Finding]:
    """``name``.eml (greeting rewritten as ``new``) with a thread that knows some authors.

    ``answered`` is the author of the message named in In-Reply-To; ``thread``
    maps Message-IDs to authors directly.
    """
    answered_id, language, greeting = UNQUOTED[name]
    raw = (DATA / f"{name}.eml").read_bytes()
    if new is not None:
        assert greeting.encode() in raw
        raw = raw.replace(greeting.encode(), new.encode(), 1)
    authors = dict(thread or {})
    if answered is not None:
        authors[answered_id] = answered
    return run_raw(raw, language, thread=ThreadView(authors=authors))


@pytest.mark.parametrize("name", sorted(UNQUOTED))
def test_a_list_reply_greets_the_author_of_the_answered_message(name: str) -> None:
    assert run_answering(name, answered=MARTIN) == []
    # The same greeting to a list post somebody else wrote greets the wrong person.
    wade = Address(email="wade@ettus.example", name="Wade Fife")
    findings = run_answering(name, answered=wade)
    assert [f.code for f in findings] == [CODE_WRONG_PERSON]
    assert findings[0].suggestion == "Wade"


@pytest.mark.parametrize(
    ("name", "new"),
    [
        ("en_list_answer_no_quote", "Hi Wade,"),
        ("de_listen_antwort_ohne_zitat", "Hallo Wade,"),
    ],
)
def test_a_list_reply_greeting_somebody_else_than_the_answered_author(name: str, new: str) -> None:
    findings = run_answering(name, new, answered=MARTIN)
    assert [f.code for f in findings] == [CODE_WRONG_PERSON]
    assert "Martin Braun" in findings[0].message
    assert findings[0].suggestion == "Martin"
    # Without what the thread knows, any list member may be meant: silence, as before.
    assert run_answering(name, new) == []
    # ... and so when the thread knows only messages this one does not answer.
    assert run_answering(name, new, thread={"<other@courtesy.test>": MARTIN}) == []


def test_the_answered_authors_wrong_person_message() -> None:
    (english,) = run_answering("en_list_answer_no_quote", "Hi Wade,", answered=MARTIN)
    assert english.message == (
        "The greeting names Wade, who is neither a recipient nor the author of a message "
        "you quote or answer (Martin Braun)."
    )
    (german,) = run_answering("de_listen_antwort_ohne_zitat", "Hallo Wade,", answered=MARTIN)
    assert german.message == (
        "Die Anrede nennt Wade, aber so heißt weder ein Empfänger noch der Autor einer "
        "zitierten oder beantworteten Nachricht (Martin Braun)."
    )


def test_a_misspelled_answered_author() -> None:
    findings = run_answering("de_listen_antwort_ohne_zitat", "Hallo Matrin,", answered=MARTIN)
    assert [f.code for f in findings] == [CODE_MISSPELLED]
    assert findings[0].suggestion == "Martin"
    assert "die beantwortete Nachricht ist von Martin Braun" in findings[0].message


def test_an_author_known_from_references_counts_too() -> None:
    ian = Address(email="ian@radio.example", name="Ian Buckley")
    thread = {"<ian-2@courtesy.test>": ian}
    assert run_answering("en_list_answer_no_quote", "Hi Ian,", thread=thread) == []
    (finding,) = run_answering("en_list_answer_no_quote", "Hi Wade,", thread=thread)
    assert finding.code == CODE_WRONG_PERSON
    # In-Reply-To first: its author is the one suggested.
    both = {**thread, "<martin-2@courtesy.test>": MARTIN}
    (finding,) = run_answering("en_list_answer_no_quote", "Hi Wade,", thread=both)
    assert finding.suggestion == "Martin"
    assert "(Martin Braun, Ian Buckley)" in finding.message


@pytest.mark.parametrize(
    "author",
    [
        # The sender's own earlier message: nobody to greet.
        Address(email="anna@summers.example", name="Anna Summers"),
        # ... also from another address of hers, under the same name.
        Address(email="a.summers@work.example", name="Anna Summers"),
        # A display name that only repeats the local part names nobody.
        Address(email="mbraun@ettus.example", name="mbraun"),
        Address(email="mbraun@ettus.example"),
    ],
)
def test_an_answered_author_without_a_persons_name_decides_nothing(author: Address) -> None:
    assert run_answering("en_list_answer_no_quote", "Hi Wade,", answered=author) == []
    # With an earlier post of Martin's in References, he alone is the thread's person.
    thread = {"<ian-2@courtesy.test>": MARTIN}
    (finding,) = run_answering(
        "en_list_answer_no_quote", "Hi Wade,", answered=author, thread=thread
    )
    assert finding.code == CODE_WRONG_PERSON
    assert "(Martin Braun)" in finding.message


@pytest.mark.parametrize(
    "author",
    [
        # The list's rewrite of the poster's From: the name is Martin's.
        Address(email="usrp-users@lists.ettus.com", name="Martin Braun via USRP-users"),
        # No display name: the address gives it.
        Address(email="martin.braun@ettus.example"),
    ],
)
def test_the_answered_author_read_like_a_quote_header(author: Address) -> None:
    assert run_answering("en_list_answer_no_quote", answered=author) == []
    (finding,) = run_answering("en_list_answer_no_quote", "Hi Wade,", answered=author)
    assert finding.code == CODE_WRONG_PERSON
    assert finding.suggestion == "Martin"


def test_quoted_authors_come_before_answered_ones_and_nobody_twice() -> None:
    raw = (DATA / "en_list_reply.eml").read_bytes().replace(b"Hi Marcus,", b"Hi Steve,")
    marcus = Address(email="patchvonbraun@radio.example", name="Marcus D. Leech")
    ian = Address(email="ian@radio.example", name="Ian Buckley")
    thread = ThreadView(authors={"<marcus-1@courtesy.test>": marcus, "<ian-1@courtesy.test>": ian})
    (finding,) = run_raw(raw, thread=thread)
    assert "(Marcus Leech, Ian Buckley)" in finding.message
    assert finding.suggestion == "Marcus"
    thread = ThreadView(authors={"<marcus-1@courtesy.test>": MARTIN})
    (finding,) = run_raw(raw, thread=thread)
    assert "(Marcus Leech, Ian Buckley, Martin Braun)" in finding.message
    assert finding.suggestion == "Marcus"
    assert run_raw(raw.replace(b"Hi Steve,", b"Hi Martin,"), thread=thread) == []


def test_a_role_address_reply_is_decided_by_the_answered_author() -> None:
    raw = (DATA / "de_listen_antwort_ohne_zitat.eml").read_bytes()
    raw = raw.replace(b"nutzer@lists.verein.example", b"info@verein.example")
    thread = ThreadView(authors={"<martin-3@courtesy.test>": MARTIN})
    assert run_raw(raw, "de", thread=thread) == []
    findings = run_raw(raw.replace(b"Hallo Martin,", b"Hallo Wade,"), "de", thread=thread)
    assert [f.code for f in findings] == [CODE_WRONG_PERSON]


@pytest.mark.parametrize(
    ("email", "given", "family", "initials", "fits"),
    [
        ("d..steffes@x.com", "James", "Steffes", "jds", True),
        ("jwahl@x.com", "Jennifer", "Wahl", "jw", True),
        ("wahl@x.com", "Jennifer", "Wahl", "jw", True),
        ("wahlj@x.com", "Jennifer", "Wahl", "jw", True),
        ("jenniferwahl@x.com", "Jennifer", "Wahl", "jw", True),
        ("jennifer.wahl@x.com", "Jennifer", "Wahl", "jw", True),
        ("markdavis@x.com", "Mark Dana", "Davis", "mdd", True),  # the first given name counts
        ("mddavis@x.com", "Mark Dana", "Davis", "mdd", True),
        ("kwahl@x.com", "Jennifer", "Wahl", "jw", False),  # initial of somebody else
        ("jwahl@x.com", "Jennifer", "Wall", "jw", False),
        ("patchvonbraun@x.com", "Marcus", "Leech", "mdl", False),
        ("jli@x.com", "Jun", "Li", "jl", False),  # a two-letter family name fits too easily
    ],
)
def test_address_fits(email: str, given: str, family: str, initials: str, fits: bool) -> None:
    assert address_fits(email, given, family, frozenset(initials)) is fits
