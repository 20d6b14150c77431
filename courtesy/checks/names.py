"""name.*: the salutation should name a recipient, spelled as they spell it.

The written names come from :func:`courtesy.checks.greeting.find_salutation`;
the recipients' names from the strongest source that knows them (address
book, then display names from the headers, then the address itself). A name
that equals a recipient's name after normalisation (German transliteration,
other accents dropped, case when capitalised normally) or is one of their
nicknames is fine; a name a few edits away is a misspelling; a name far from
everyone is the wrong person, but only when every recipient's name is known:
with a mailing list or an opaque address among them the greeted person may be
that one, so the check stays silent rather than guess.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz.distance import OSA

from courtesy.checks.i18n import Texts, say
from courtesy.checks.model import (
    Address,
    CheckContext,
    Contact,
    ContactSource,
    Finding,
    QuotedAuthor,
    Severity,
)

# Re-exported: the store and bench/accuracy_names.py import it from here.
from courtesy.checks.model import first_given_name as first_given_name
from courtesy.checks.registry import CheckFamily, register

CODE_MISSPELLED = "name.misspelled"
CODE_WRONG_PERSON = "name.wrong_person"
CODE_SALUTATION_MISMATCH = "name.salutation_mismatch"
FAMILY = "name"


@dataclass(frozen=True, slots=True)
class NameSettings:
    """``[checks.name]``: thresholds and severities of the name checks."""

    enabled: bool = True
    # Edits (optimal string alignment) that still count as "close": names of up
    # to ``short_name_length`` letters allow ``max_edits_short``, longer ones ``max_edits``;
    # a written first name that is no known first name gets ``max_edits`` (see _nearest).
    max_edits_short: int = 1
    max_edits: int = 2
    short_name_length: int = 4
    # Accept well-known nicknames from the ``nicknames`` dataset (Bob = Robert).
    well_known_nicknames: bool = True
    # Also compare with the Cc recipients (To always).
    include_cc: bool = True
    misspelled_severity: Severity = Severity.BLOCK
    lowercase_severity: Severity = Severity.WARN
    wrong_person_severity: Severity = Severity.BLOCK
    salutation_mismatch_severity: Severity = Severity.BLOCK


TEXTS: Texts = {
    "misspelled": {
        "en": "The greeting says '{written}'; the recipient is {person}.",
        "de": "Die Anrede schreibt '{written}'; der Empfänger heißt {person}.",
    },
    "lowercase": {
        "en": "The greeting writes '{written}' in lower case; the recipient is {person}.",
        "de": "Die Anrede schreibt '{written}' klein; der Empfänger heißt {person}.",
    },
    "wrong_person_known": {
        "en": "The greeting names {written}, but {written} is {other}, who is not a recipient.",
        "de": "Die Anrede nennt {written}, aber {written} ist {other}, kein Empfänger dieser Mail.",
    },
    "wrong_person": {
        "en": "The greeting names {written}, who is none of the recipients ({people}).",
        "de": "Die Anrede nennt {written}, aber keiner der Empfänger heißt so ({people}).",
    },
    "misspelled_quoted": {
        "en": "The greeting says '{written}'; the message you answer is from {person}.",
        "de": "Die Anrede schreibt '{written}'; die beantwortete Nachricht ist von {person}.",
    },
    "wrong_person_thread": {
        "en": "The greeting names {written}, who is neither a recipient nor the author of "
        "a message you quote or answer ({people}).",
        "de": "Die Anrede nennt {written}, aber so heißt weder ein Empfänger noch der Autor "
        "einer zitierten oder beantworteten Nachricht ({people}).",
    },
    "mismatch": {
        "en": "The greeting says '{form}', but {person} is recorded as '{recorded}'.",
        "de": "Die Anrede sagt '{form}', aber {person} ist als '{recorded}' eingetragen.",
    },
}

# --- forms of address, titles, particles ------------------------------------

# Form of address (lower case, without dot) -> grammatical gender it implies.
FORMS: dict[str, str] = {
    "herr": "M",
    "herrn": "M",
    "frau": "F",
    "fräulein": "F",
    "mr": "M",
    "mister": "M",
    "sir": "M",
    "ms": "F",
    "mrs": "F",
    "miss": "F",
    "madam": "F",
    "monsieur": "M",
    "m": "M",
    "madame": "F",
    "mme": "F",
    "mademoiselle": "F",
    "mlle": "F",
    "señor": "M",
    "senor": "M",
    "sr": "M",
    "señora": "F",
    "senora": "F",
    "sra": "F",
    "señorita": "F",
    "srta": "F",
    "don": "M",
    "doña": "F",
    "dona": "F",
    "signor": "M",
    "signore": "M",
    "sig": "M",
    "signora": "F",
    "sig.ra": "F",
    "signorina": "F",
    "meneer": "M",
    "mevrouw": "F",
    "mevr": "F",
    "dhr": "M",
    "heer": "M",
}
TITLES = frozenset(
    {
        "dr",
        "prof",
        "professor",
        "doktor",
        "doctor",
        "dipl",
        "ing",
        "mag",
        "med",
        "phil",
        "rer",
        "nat",
        "jur",
        "hon",
        "habil",
        "mba",
        "msc",
        "bsc",
        "phd",
        "ll",
        "dres",
        "drs",
        "ir",
        "sehr",
        "geehrte",
        "geehrter",
        "liebe",
        "lieber",
        "dear",
        "hallo",
        "hi",
        "hello",
    }
)
PARTICLES = frozenset(
    {
        "von",
        "van",
        "de",
        "di",
        "da",
        "del",
        "della",
        "der",
        "den",
        "ter",
        "ten",
        "zu",
        "zum",
        "zur",
        "vom",
        "le",
        "la",
        "du",
        "des",
        "dos",
        "das",
        "af",
        "av",
        "bin",
        "ibn",
        "al",
        "el",
        "mc",
        "o",
    }
)
_CONNECTORS = frozenset({"und", "and", "oder", "or", "et", "y", "e", "en", "&"})
# Generational and professional suffixes after a family name ("Mark Davis Jr.").
_SUFFIXES = frozenset({"jr", "ii", "iii", "iv", "esq"})

# Display names and address parts that name a list, team or role, not a person.
_GROUP_WORDS = frozenset(
    {
        "list",
        "lists",
        "liste",
        "users",
        "user",
        "devel",
        "dev",
        "discuss",
        "discussion",
        "announce",
        "team",
        "group",
        "info",
        "support",
        "sales",
        "office",
        "admin",
        "help",
        "service",
        "kontakt",
        "contact",
        "mail",
        "news",
        "newsletter",
        "noreply",
        "no-reply",
        "all",
        "alle",
        "staff",
        "board",
        "hr",
        "jobs",
        "billing",
        "accounts",
        "buchhaltung",
        "vertrieb",
        "verwaltung",
        "sekretariat",
        "postmaster",
        "webmaster",
        "abuse",
        "marketing",
        "press",
        "presse",
        "mailer",
        "daemon",
        "bounce",
        "notifications",
        "committee",
        "members",
        "participants",
        "everyone",
        "dept",
        "department",
        "abteilung",
        "redaktion",
        "empfang",
    }
)

_TRANSLIT = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "ß": "ss",
        "ø": "o",
        "æ": "ae",
        "œ": "oe",
        "å": "a",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "ı": "i",
    }
)
_NICK_QUOTED = re.compile(r"[\"'“”‘’(]([^\"'“”‘’()]{2,30})[\"'“”‘’)]")


@lru_cache(maxsize=16384)
def normalise(name: str) -> str:
    """Lower-case ASCII key of a name: ä=ae, ö=oe, ü=ue, ß=ss, other accents dropped."""
    text = unicodedata.normalize("NFC", name).casefold().translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in text if c.isalnum() or c in "- ")
    return " ".join(kept.split())


def _clean(word: str) -> str:
    return word.strip(".,;:!?\"'()[]<>«»“”‘’")


# --- well-known nicknames ----------------------------------------------------


@functools.cache
def _nick_tables() -> tuple[dict[str, frozenset[str]], frozenset[str]]:
    """name -> its canonical names (itself included when it has nicknames); all names.

    Loaded once, on first use (some 50 ms), from the ``nicknames`` dataset.
    """
    from nicknames import name_triplets

    canon: dict[str, set[str]] = {}
    for canonical, relation, nick in name_triplets():
        if relation != "has_nickname":
            continue
        c, n = normalise(canonical), normalise(nick)
        canon.setdefault(c, set()).add(c)
        canon.setdefault(n, set()).add(c)
    return {k: frozenset(v) for k, v in canon.items()}, frozenset(canon)


def well_known_nickname(written: str, name: str) -> bool:
    """Whether the dataset makes the two names one (Bob = Robert, Steve = Steven, Rob ~ Bob)."""
    table, _ = _nick_tables()
    a, b = table.get(written), table.get(name)
    if not a or not b:
        return False
    return bool(a & b) or written in b or name in a


def known_given_name(key: str) -> bool:
    return key in _nick_tables()[1]


@functools.cache
def _nicknames_by_name() -> dict[str, frozenset[str]]:
    """canonical name -> its well-known nicknames (james -> jim, jimmy, jamie, ...)."""
    table, _ = _nick_tables()
    out: dict[str, set[str]] = {}
    for name, canonicals in table.items():
        for canonical in canonicals:
            if canonical != name:
                out.setdefault(canonical, set()).add(name)
    return {k: frozenset(v) for k, v in out.items()}


# --- what the salutation says ------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrittenName:
    """One person as named in the salutation."""

    raw: str  # as written, titles included: "Herr Dr. Müller-Lüdenscheidt"
    words: tuple[str, ...]  # name words without forms, titles, particles: ("Müller-Lüdenscheidt",)
    form: str | None = None  # the form of address as written ("Herr", "Mrs")

    @property
    def gender(self) -> str | None:
        return FORMS.get(_clean(self.form).casefold()) if self.form else None

    @property
    def text(self) -> str:
        return " ".join(self.words)


def parse_written(raw_names: Iterable[str]) -> list[WrittenName]:
    """Split raw name parts into persons, forms of address and name words."""
    result: list[WrittenName] = []
    for raw in raw_names:
        for piece in re.split(r"\s+(?:und|and|oder|or|et|&)\s+|\s*,\s*", raw.strip()):
            words: list[str] = []
            form: str | None = None
            for token in piece.split():
                bare = _clean(token)
                low = bare.casefold()
                if not bare:
                    continue
                if low in FORMS and not words and form is None and (low != "m" or "." in token):
                    form = token.strip(",;:!?\"'()")
                elif low in TITLES or low in _CONNECTORS:
                    continue
                elif low in PARTICLES and len(piece.split()) > 1:
                    continue  # "van der Berg" is compared as "Berg"
                else:
                    words.append(bare)
            if words:
                result.append(WrittenName(raw=piece.strip(" ,"), words=tuple(words), form=form))
    return result


# --- what is known about the recipients --------------------------------------


@dataclass(slots=True)
class KnownName:
    """The names a recipient goes by, from one source."""

    address: Address
    header: str  # "to" | "cc" | "bcc"
    source: ContactSource
    given: str | None = None
    family: str | None = None
    # Names whose role (given or family) is unknown: a single-word display name.
    other: tuple[str, ...] = ()
    nicknames: tuple[str, ...] = ()
    salutation: str | None = None
    gender: str | None = None
    contact: Contact | None = None
    # Spellings by normalised key, and the role of each key.
    keys: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    @property
    def knows_given(self) -> bool:
        return bool(self.given or self.other or self.nicknames)

    @property
    def knows_family(self) -> bool:
        return bool(self.family or self.other)

    @property
    def first_given(self) -> str | None:
        """The first of the given names ("Mark" of "Mark Dana")."""
        return first_given_name(self.given)

    @property
    def display(self) -> str:
        if self.contact is not None and self.contact.name:
            return self.contact.name
        parts = [p for p in (self.given, self.family) if p]
        return " ".join(parts) or " ".join(self.other) or self.address.email

    def index(self) -> KnownName:
        def add(spelling: str, role: str) -> None:
            key = normalise(spelling)
            if len(key) >= 2 and key not in self.keys:
                self.keys[key] = spelling
                self.roles[key] = role

        for nick in self.nicknames:
            add(nick, "nick")
        if self.given:
            # Every given name, middle names too: many people go by their
            # middle name ("Dana" for Mark Dana Davis).
            add(self.given, "given")
            for part in re.split(r"[\s-]+", self.given):
                add(part, "given")
        if self.family:
            family = _strip_particles(self.family)
            add(family, "family")
            for part in re.split(r"[\s-]+", family):
                add(part, "family")
            if self.given:
                add(f"{self.given} {family}", "full")
                add(f"{self.first_given} {family}", "full")
        for name in self.other:
            add(name, "other")
            for part in re.split(r"[\s-]+", name):
                add(part, "other")
        return self


def given_names(*parts: str | None) -> str | None:
    """Given and middle names as one given name, initials left out.

    ``given_names("John", "F.")`` is "John", ``given_names("Mark", "Dana")``
    "Mark Dana": a middle initial is no form of address, a middle name may
    be the one the person goes by.
    """
    words = [
        word
        for part in parts
        if part
        for word in part.split()
        if len(_clean(word).replace("-", "")) > 1 and any(c.isalpha() for c in word)
    ]
    return " ".join(words) or None


def _strip_particles(name: str) -> str:
    words = name.split()
    kept = [w for w in words if w.casefold().strip(".") not in PARTICLES]
    return " ".join(kept) or name


def _is_group_name(text: str) -> bool:
    words = [w for w in re.split(r"[^\w]+", text.casefold()) if w]
    return any(w in _GROUP_WORDS for w in words)


PersonName = tuple[str | None, str | None, tuple[str, ...], tuple[str, ...]]
_ON_BEHALF_RE = re.compile(r"\(on behalf of\s+([^()]+)\)")


@lru_cache(maxsize=8192)
def parse_person_name(display: str) -> PersonName:
    """(given, family, other, nicknames) from a display or full name; empty when not a person.

    Understands "Last, First", "First Middle Last", particles ("Marcus van der
    Berg"), a quoted nickname ("Jingming 'Marshall' Yan"), titles, suffixes
    ("Jr.") and a list's rewrite of a poster's name (" via List", " (via
    List)", "List (on behalf of Name)": the poster's name;
    :func:`address_person_name` says whether it is the address's). Middle
    names stay in the given name ("Mark Dana" of "Davis, Mark Dana" and of
    "Mark Dana Davis"): many people go by theirs. Initials are dropped.
    """
    text = unicodedata.normalize("NFC", display).strip().strip("\"'")
    if not text or "@" in text:
        return None, None, (), ()
    behalf = _ON_BEHALF_RE.search(text)
    if behalf:  # "users (on behalf of Ann Lee)": the poster's name
        text = behalf.group(1)
    text = re.split(r"\s+\(?via\s+|\s+\|\s+|\s+-\s+|\s+–\s+", text, maxsplit=1)[0]
    nicks = tuple(m.strip() for m in _NICK_QUOTED.findall(text) if m.strip().isalpha())
    text = _NICK_QUOTED.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    if _is_group_name(text):
        return None, None, (), ()
    family_first = False
    if "," in text:
        last, _, first = text.partition(",")
        text = f"{first} {last}"
        family_first = True
    words = []
    for token in text.split():
        bare = _clean(token)
        low = bare.casefold()
        if not bare or low in FORMS or low in TITLES or low in _SUFFIXES:
            continue
        if len(bare.replace("-", "")) <= 1 or not any(c.isalpha() for c in bare):
            continue  # initials, numbers
        if any(c.isdigit() for c in bare):
            return None, None, (), ()
        words.append(bare)
    if not words:
        return None, None, nicks, ()
    if len(words) == 1:
        return None, None, (words[0], *nicks), ()
    # The family name starts at its first particle, else it is the last word.
    start = len(words) - 1
    if family_first:
        start = len(words) - len(display.partition(",")[0].split())
        start = max(1, min(start, len(words) - 1))
    for i in range(1, start):
        if words[i].casefold() in PARTICLES:
            start = i
            break
    given = " ".join(words[:start])
    family = " ".join(words[start:])
    return given, family, (), nicks


# A list's rewrite of a poster's From (DMARC mitigation) names the poster but
# carries the list's address: "Ann Lee via users" (Mailman, "$name via $list"),
# "'Ann Lee' via users" (Google Groups), "Ann Lee (via users)" and
# "users (on behalf of Ann Lee)" (Sympa's dmarc_protection phrases).
_RELAYED_RE = re.compile(r"\S\s+\(?via\s+\S|\(on behalf of\s+\S")
_NO_NAME: PersonName = (None, None, (), ())


def relayed_display_name(display: str) -> bool:
    """A display name a mailing list wrote for a poster: the address is the list's."""
    return _RELAYED_RE.search(display) is not None


def echoes_local_part(display: str, email: str) -> bool:
    """The display name only repeats the address's local part, in lower case.

    ``rcarroll <rcarroll@…>`` says no more than the address; ``Pierre
    <pierre@…>``, capitalised, is a name somebody wrote.
    """
    text = display.strip().strip("\"'").strip()
    if not text or text != text.lower():
        return False
    local = email.rpartition("@")[0].lower()
    return text in (local, local.split("+", 1)[0])


def address_person_name(email: str, display: str) -> PersonName:
    """What a display name says of the person its own address belongs to.

    Empty for a list's rewrite of a poster's name ("Ann via users
    <users@…>": Ann is not the list) and for a display name that only repeats
    the local part. The check (display names in To/Cc and quote headers) and
    the store's harvest of display names both read names through this.
    """
    if not display or relayed_display_name(display) or echoes_local_part(display, email):
        return _NO_NAME
    return parse_person_name(display)


def is_group_address(email: str) -> bool:
    """A mailing list or role address: its readers' names are unknown."""
    if len(email) <= 320:  # the longest valid address
        return _cached_group_address(email)
    return _is_group_address(email)


@lru_cache(maxsize=4096)
def _cached_group_address(email: str) -> bool:
    """Cached: the same correspondents recur in every mail."""
    return _is_group_address(email)


def _is_group_address(email: str) -> bool:
    local, _, domain = email.lower().partition("@")
    if domain.startswith(("lists.", "list.", "groups.")) or domain == "googlegroups.com":
        return True
    return _is_group_name(re.sub(r"[._+-]+", " ", local))


def names_from_address(email: str) -> tuple[str | None, str | None]:
    """(given, family) from ``first.last@``; ``f.last@`` gives only the family name."""
    local = email.partition("@")[0].split("+", 1)[0]
    if "." not in local and "_" not in local:
        return None, None  # tmeier@, info@: nothing certain
    parts = [p for p in re.split(r"[._]", local)]
    words = [p for p in parts if p]
    if not words or any(not p.isalpha() for p in words) or _is_group_name(" ".join(words)):
        return None, None
    if len(words) < 2:
        return None, None
    family_words = [words[-1]]
    i = len(words) - 2
    while i > 0 and words[i].casefold() in PARTICLES:
        family_words.insert(0, words[i])
        i -= 1
    family = " ".join(w.capitalize() for w in family_words)
    if len(family_words[-1]) < 2:
        return None, None
    first = words[0]
    # "t.meier", "d..steffes": one letter, or a gap, before the family name: no given name.
    if len(first) < 2 or "" in parts[: len(parts) - len(family_words)]:
        return None, family
    return first.capitalize(), family


def known_name(address: Address, field_name: str, ctx: CheckContext) -> KnownName | None:
    """What the strongest source knows of a recipient's name, or None."""
    contact = ctx.contacts.by_email(address.email)
    direct = _known_directly(address, field_name, contact)
    if direct is not None:
        return direct
    # A list's address in a quote header ("Ann via users-list <list@…> wrote:")
    # names the poster, not the list.
    group = is_group_address(address.email) or relayed_display_name(address.name)
    quoted = None if group else quoted_name(address.email, ctx.message.quoted_authors)
    if quoted is not None:
        return _from_header(address, field_name, contact, quoted)
    return _known_from_address(address, field_name, contact)


# The sources that do not depend on the message (the contact, the display
# name, the address) give the same answer every time the same person is
# written to; cached like the other per-correspondent work here. The cached
# KnownName objects are never changed after index().


@lru_cache(maxsize=4096)
def _known_directly(address: Address, field_name: str, contact: Contact | None) -> KnownName | None:
    """The address book's entry, else the display name: the two strongest sources."""
    harvested_noise = (
        contact is not None
        and contact.source == ContactSource.HEADER
        and not any(address_person_name(address.email, contact.name)[:3])
    )  # stored before the harvest learnt to skip such display names
    if (
        contact is not None
        and not harvested_noise
        and (contact.given or contact.family or contact.name)
    ):
        given, family = contact.given, contact.family
        other: tuple[str, ...] = ()
        g, f, o, n = parse_person_name(contact.name)
        nicks = tuple(dict.fromkeys((*contact.nicknames, *n)))
        if not given and not family:
            given, family, other = g, f, o
        elif _middle_names_added(g, f, given, family):
            given = g  # "Mark" / "Davis" booked, "Mark Dana Davis" the full name
        if given or family or other or nicks:
            return _indexed(
                address,
                field_name,
                contact,
                contact.source,
                given,
                family,
                other,
                nicks,
                salutation=contact.salutation,
                gender=contact.gender,
            )
    if address.name:
        parsed = address_person_name(address.email, address.name)
        if parsed[0] or parsed[1] or parsed[2]:
            return _from_header(address, field_name, contact, parsed)
    return None


def _middle_names_added(
    parsed_given: str | None,
    parsed_family: str | None,
    given: str | None,
    family: str | None,
) -> bool:
    """Whether a contact's full name is its booked given and family name plus middle names.

    An address book (and a display name harvested before middle names were
    kept) may record "Mark" and "Davis" while the full name says "Mark Dana
    Davis" or "Davis, Mark Dana".
    """
    if not (parsed_given and parsed_family and given and family):
        return False
    if normalise(_strip_particles(parsed_family)) != normalise(_strip_particles(family)):
        return False
    booked = normalise(given).split()
    parsed = normalise(parsed_given).split()
    return len(parsed) > len(booked) and parsed[: len(booked)] == booked


def _from_header(
    address: Address, field_name: str, contact: Contact | None, parsed: PersonName
) -> KnownName:
    given, family, other, nicknames = parsed
    return _indexed(
        address, field_name, contact, ContactSource.HEADER, given, family, other, nicknames
    )


def _indexed(
    address: Address,
    field_name: str,
    contact: Contact | None,
    source: ContactSource,
    given: str | None,
    family: str | None,
    other: tuple[str, ...] = (),
    nicknames: tuple[str, ...] = (),
    *,
    salutation: str | None = None,
    gender: str | None = None,
) -> KnownName:
    return KnownName(
        address=address,
        header=field_name,
        source=source,
        given=given,
        family=family,
        other=other,
        nicknames=nicknames,
        salutation=salutation,
        gender=gender,
        contact=contact,
    ).index()


@lru_cache(maxsize=4096)
def _known_from_address(
    address: Address, field_name: str, contact: Contact | None
) -> KnownName | None:
    given, family = names_from_address(address.email)
    if given or family:
        return _indexed(address, field_name, contact, ContactSource.ADDRESS, given, family)
    return None


def quoted_name(email: str, authors: Sequence[QuotedAuthor]) -> PersonName | None:
    """A recipient's name as the quote headers give it, or None.

    The person being answered wrote the quoted message, and its quote header
    ("From: "Balson, William" <wbalson@crai.com>", "On …, Jørn Skorstad
    <jsk@nkom.no> wrote:") pairs their name with their address even when this
    message's To header shows only an opaque address. That is a display name
    seen in a mail header, as good as one in To. Without the address in the
    quote header (Outlook and Notes often show only "From: Steffes, James D."),
    the name counts only when the address is built from it
    (:func:`address_fits`: ``d..steffes@``, ``jwahl@``, ``wahl@``), so a
    quoted third person is never taken for the recipient. That fit also
    holds when the quote header shows the person's other address (the same
    person writing from work and from home).
    """
    key = email.lower()
    for author in authors:
        if author.name and author.email.lower() == key:
            parsed = address_person_name(email, author.name)
            if any(parsed[:3]):
                return parsed
    for author in authors:
        if not author.name:
            continue
        parsed = parse_person_name(author.name)
        given, family = parsed[0], parsed[1]
        if given and family and address_fits(email, given, family, _initials(author.name)):
            return parsed
    return None


def _initials(display: str) -> frozenset[str]:
    """First letters of every word of a name: "Steffes, James D." -> {s, j, d}."""
    return frozenset(normalise(w)[:1] for w in re.split(r"[\s,.]+", display) if normalise(w))


def _letters(text: str) -> str:
    """The ASCII letters of a name's normalised key: "d..steffes" -> "dsteffes"."""
    return re.sub(r"[^a-z]", "", normalise(text))


def address_fits(email: str, given: str, family: str, initials: frozenset[str]) -> bool:
    """Whether a mailbox name is built from this person's name.

    Accepted: ``lastname@``, ``firstnamelastname@``, ``lastnamefirstname@``,
    ``first.last@`` and ``f.last@`` / ``jwahl@`` / ``d..steffes@`` (one or two
    initials of the person's given or middle names, in front of or behind the
    family name). Separators and digits are ignored; the family name needs
    three letters or more, so a chance fit is unlikely.
    """
    local = email.partition("@")[0].split("+", 1)[0].lower()
    joined = _letters(local)
    fam = _letters(_strip_particles(family))
    full_fam = _letters(family)
    first = _letters(first_given_name(given) or "")
    if len(fam) < 3 or not joined:
        return False
    for surname in {fam, full_fam}:
        if joined in (surname, first + surname, surname + first):
            return True
        for rest in (joined.removesuffix(surname), joined.removeprefix(surname)):
            if rest != joined and 1 <= len(rest) <= 2 and set(rest) <= initials:
                return True
    return False


# --- matching -------------------------------------------------------------------


def _allowed_edits(key: str, settings: NameSettings) -> int:
    if len(key) <= settings.short_name_length:
        return settings.max_edits_short
    return settings.max_edits


def _short_form(written: str, name: str) -> bool:
    """ "Chris" for Christopher, "Rosie" for Rosalee: a clear abbreviation, 3+ letters off."""
    if len(written) < 3 or OSA.distance(written, name) < 3:
        return False
    if len(written) >= 4 and name.startswith(written):
        return True
    stem = written[:-2] if written.endswith("ie") else written[:-1]
    return (
        written.endswith(("ie", "y", "i"))
        and len(stem) >= 3
        and name.startswith(stem)
        and len(name) - len(written) >= 2
    )


def _accepts(key: str, known: KnownName, settings: NameSettings) -> str | None:
    """The recorded spelling ``key`` stands for, when it is a correct way to name ``known``."""
    if key in known.keys:
        return known.keys[key]
    for name, spelling in known.keys.items():
        if " " in name:
            continue
        if _short_form(key, name):
            return spelling
        if settings.well_known_nicknames and well_known_nickname(key, name):
            # "Jon" for John is a slip, "Steve" for Steven a nickname.
            if OSA.distance(key, name) == 1 and not name.startswith(key):
                continue
            return spelling
    return None


def _accepts_words(
    written: WrittenName, known: KnownName, settings: NameSettings
) -> list[str] | None:
    """Spellings for every written word when all of them name ``known`` (first, last, both)."""
    whole = normalise(" ".join(written.words))
    if whole in known.keys:
        return [known.keys[whole]]
    found: list[str] = []
    for word in written.words:
        spelling = _accepts(normalise(word), known, settings)
        if spelling is None:
            parts = [normalise(p) for p in word.split("-") if p]
            spellings = [_accepts(p, known, settings) for p in parts]
            if len(parts) < 2 or any(s is None for s in spellings):
                return None
            spelling = "-".join(s for s in spellings if s)
        found.append(spelling)
    return found


@dataclass(frozen=True, slots=True)
class _Near:
    distance: int
    known: KnownName
    spelling: str


def _nearest(written: WrittenName, known: KnownName, settings: NameSettings) -> _Near | None:
    """The closest recorded spelling within the edit limit, for a misspelled name."""
    best: _Near | None = None
    formal = written.form is not None
    targets = [normalise(w) for w in written.words]
    whole = normalise(" ".join(written.words))
    if len(targets) > 1:
        targets.append(whole)
    # A single first name that is no known first name at all (a garbled word, not
    # another person's name) may be one more edit off a short name: "Wve" for
    # Wade, "Wobf" for Rob. A real name that far off (Dave for Wade) stays
    # another person.
    garbled = not formal and len(written.words) == 1 and not known_given_name(targets[0])
    for key in targets:
        for name, spelling in known.keys.items():
            role = known.roles[name]
            if formal and role == "given" and len(written.words) == 1:
                continue  # "Herr Thomsa" is about the family name
            if (
                not formal
                and role == "family"
                and len(written.words) == 1
                and known_given_name(key)
            ):
                continue  # "Hi Andrew" to Mark Andrews uses a first name, not a typo
            if (" " in key) != (" " in name):
                continue
            limit = _allowed_edits(name, settings)
            if garbled and role in ("given", "nick", "other"):
                limit = max(limit, settings.max_edits)
            distance = OSA.distance(key, name)
            if distance == 0 or distance > limit:
                continue
            if best is None or distance < best.distance:
                best = _Near(distance, known, spelling)
    if best is None and settings.well_known_nicknames:
        best = _nearest_nickname(written, known, settings)
    if best is None:
        best = _nearest_short_form(written, known)
    return best


def _nearest_of(
    written: WrittenName, people: Iterable[KnownName], settings: NameSettings
) -> _Near | None:
    """:func:`_nearest` over several people: the closest, the first of them on a tie."""
    near: _Near | None = None
    for known in people:
        candidate = _nearest(written, known, settings)
        if candidate is not None and (near is None or candidate.distance < near.distance):
            near = candidate
    return near


@lru_cache(maxsize=4096)
def _short_forms(name: str) -> frozenset[str]:
    """The abbreviations :func:`_short_form` accepts for ``name`` (rosalee: rosie, rosy, rosa)."""
    forms: set[str] = set()
    for k in range(3, len(name) - 1):
        stem = name[:k]
        for form in (stem, stem + "ie", stem + "y", stem + "i"):
            if _short_form(form, name):
                forms.add(form)
    return frozenset(forms)


def _nearest_short_form(written: WrittenName, known: KnownName) -> _Near | None:
    """One slip in a short form of the recipient's given name: "Zosie" for Rosie (Rosalee).

    "Rosie" for Rosalee is accepted (:func:`_short_form`) though it is three
    edits from the booked name, so a typo in it is more than the edit limit
    away from the name itself; it is one letter from the short form, and that
    is a misspelling just like a typo in a well-known nickname. Only one edit,
    and only for a word that is no known first name itself (Rosa is a name of
    its own, not a slip); the suggestion is the short form.
    """
    if written.form is not None or len(written.words) != 1:
        return None
    key = normalise(written.words[0])
    if len(key) < 3 or known_given_name(key):
        return None
    for name, role in known.roles.items():
        if role not in ("given", "other", "nick") or " " in name:
            continue
        for form in sorted(_short_forms(name)):
            if OSA.distance(key, form) == 1:
                return _Near(1, known, form.capitalize())
    return None


def _nearest_nickname(
    written: WrittenName, known: KnownName, settings: NameSettings
) -> _Near | None:
    """A slip in a well-known nickname of the recipient's given name: "Jmi" for Jim (James).

    A greeting uses the nickname as often as the booked name, and a typo in it
    is just as much a misspelling; the suggestion is the nickname. A written
    word that is itself a known first name is a different name, not a slip.
    """
    if written.form is not None or len(written.words) != 1:
        return None
    key = normalise(written.words[0])
    if len(key) < 2 or known_given_name(key):
        return None
    best: _Near | None = None
    for name, role in known.roles.items():
        if role not in ("given", "other", "nick") or " " in name:
            continue
        for nick in _nicknames_by_name().get(name, ()):
            distance = OSA.distance(key, nick)
            if 0 < distance <= _allowed_edits(nick, settings) and (
                best is None or distance < best.distance
            ):
                best = _Near(distance, known, nick.capitalize())
    return best


def _first_name_like_surname(
    written: WrittenName, people: Iterable[KnownName], settings: NameSettings
) -> bool:
    """A first name that opens someone's patronymic family name: "Andrew" for Andrews.

    "Hi Andrew" to "Andrews, Mark" is a well-known first name, so
    :func:`_nearest` does not call it a misspelling of "Andrews"; but it is
    not *far* from every recipient's name either, which is what
    ``name.wrong_person`` means: the writer read a surname made from a first
    name (Andrews, Williams, Peters, Jameson) as the first name. Which one
    the writer meant the check cannot tell, so it stays silent. Only this
    pattern: "Ken" to Steven Kean is one edit away too, but not a reading of
    the surname, and remains the wrong person.
    """
    if written.form is not None or len(written.words) != 1:
        return False
    key = normalise(written.words[0])
    if not known_given_name(key):
        return False
    for known in people:
        for name, role in known.roles.items():
            if role == "family" and name.startswith(key) and 0 < len(name) - len(key) <= 3:
                return True
    return False


def _suggestion(written: WrittenName, near: _Near) -> str:
    if len(written.words) > 1 and " " not in near.spelling:
        # Replace only the misspelled word.
        words = list(written.words)
        best_i = min(
            range(len(words)),
            key=lambda i: OSA.distance(normalise(words[i]), normalise(near.spelling)),
        )
        words[best_i] = near.spelling
        return " ".join(words)
    return near.spelling


def _is_lowercase(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return bool(letters) and not any(c.isupper() for c in letters)


def _skipped(ctx: CheckContext, known: KnownName, code: str) -> bool:
    contact = known.contact
    if contact is not None and (code in contact.skip_checks or FAMILY in contact.skip_checks):
        return True
    return ctx.exceptions.allows(known.address.email, code)


def _recorded_form(known: KnownName) -> tuple[str, str] | None:
    """(recorded form as shown, gender) of a contact, from salutation or gender."""
    if known.salutation:
        for word in known.salutation.split():
            gender = FORMS.get(_clean(word).casefold())
            if gender:
                return known.salutation, gender
    if known.gender and known.gender.upper()[:1] in ("M", "F"):
        gender = known.gender.upper()[:1]
        return gender, gender
    return None


_GENDER_WORDS = {
    "en": {"M": "male", "F": "female"},
    "de": {"M": "männlich", "F": "weiblich"},
}


# --- the check ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Recipients:
    known: tuple[KnownName, ...]
    # Recipients whose given / family name nobody knows (lists, opaque addresses).
    unknown_given: bool
    unknown_family: bool
    # The same, counting only persons: a list or role address is left out.
    person_unknown_given: bool = False
    person_unknown_family: bool = False
    # The people the message answers (not the sender): authors of the quoted
    # messages, then of the answered messages the thread knows (In-Reply-To, References).
    quoted: tuple[KnownName, ...] = ()
    # Normalised words of the quoted text (names mentioned in the thread).
    quoted_words: frozenset[str] = frozenset()

    def undecided(self, name: WrittenName) -> bool:
        """Whether a name close to no one known may still be an unknown reader's."""
        if not (self.unknown_family if name.form else self.unknown_given):
            return False
        return not self.thread_decides(name)

    def thread_decides(self, name: WrittenName) -> bool:
        """A reply to a list or role address: its thread says who may be greeted.

        The readers of a mailing list (or of info@, support@) are unknown, so a
        greeting may name any of them; but a reply greets the people of its
        thread: the recipients, or the author of a quoted message, at any depth
        (a list reply often answers a third participant quoted deeper), or the
        author of a message it answers (In-Reply-To, References) as the thread
        knows it (``ctx.thread``: the poller stored the answered mail). So when
        the only unknown recipients are list or role addresses and the message
        quotes or answers somebody other than the sender, a greeting name far
        from all of them is the wrong person. A name that is written anywhere in
        the quoted text (a participant's signature, "Ian and Nick,") is a thread
        participant too and stays unflagged. Without a quote and without a known
        author of the answered messages (or with an opaque personal address
        among the recipients) nothing decides: silence.
        """
        if not self.quoted:
            return False
        return not (self.person_unknown_family if name.form else self.person_unknown_given)


def _recipients(ctx: CheckContext, settings: NameSettings) -> _Recipients:
    message = ctx.message
    own = ctx.own_emails
    groups: list[tuple[str, tuple[Address, ...]]] = [("to", message.to)]
    if settings.include_cc:
        groups.append(("cc", message.cc))
    known: list[KnownName] = []
    unknown_given = unknown_family = False
    person_given = person_family = False
    seen: set[str] = set()
    for field_name, addresses in groups:
        for address in addresses:
            email = address.email.lower()
            if email in seen:
                continue
            seen.add(email)
            group = is_group_address(email)
            if email in own and not group:
                continue  # a copy to oneself is no one to greet
            info = known_name(address, field_name, ctx)
            if info is None:
                unknown_given = unknown_family = True
                if not group:
                    person_given = person_family = True
                continue
            known.append(info)
            unknown_given = unknown_given or not info.knows_given
            unknown_family = unknown_family or not info.knows_family
            if not group:
                person_given = person_given or not info.knows_given
                person_family = person_family or not info.knows_family
            if _skipped(ctx, info, CODE_WRONG_PERSON):
                unknown_given = unknown_family = person_given = person_family = True
    for address in message.bcc:
        if address.email.lower() not in seen:
            info = known_name(address, "bcc", ctx)
            if info is not None:
                known.append(info)
    quoted: tuple[KnownName, ...] = ()
    words: frozenset[str] = frozenset()
    if (unknown_given or unknown_family) and (message.quoted_authors or ctx.thread.authors):
        quoted = _thread_people(ctx, own)
        if quoted:
            words = frozenset(normalise(w) for w in _WORD_RE.findall(message.quoted_text))
    return _Recipients(
        tuple(known), unknown_given, unknown_family, person_given, person_family, quoted, words
    )


_WORD_RE = re.compile(r"[^\W\d_][\w'-]{1,40}")


def _full_key(parsed: PersonName) -> str:
    """The normalised full name of a parsed name: given, family and other names."""
    given, family, other, _nicknames = parsed
    return normalise(" ".join(p for p in (given, family, *other) if p))


def _answered_authors(ctx: CheckContext) -> tuple[Address, ...]:
    """Who wrote the messages this one answers, as far as the thread knows them.

    In-Reply-To first, then References from the latest to the first: nearest first,
    like the quote headers.
    """
    message = ctx.message
    if not ctx.thread.authors or not message.is_reply:
        return ()
    ids = tuple(dict.fromkeys((*message.in_reply_to, *reversed(message.references))))
    return ctx.thread.authors_of(ids)


def _thread_people(ctx: CheckContext, own: frozenset[str]) -> tuple[KnownName, ...]:
    """The people the message answers with a person's name, except the sender.

    First the authors of the quoted messages (their quote headers), then the
    authors of the messages it answers as ``ctx.thread`` knows them (the From
    header of mail the poller stored), both read the same way.

    Recipients among them stay in: that the message answers somebody is what
    lets the thread decide (see :meth:`_Recipients.thread_decides`).

    A list's address in "Ann via users <list@…> wrote:" (or a From header
    "Ann via users <list@…>") is kept out of the result's addresses (the name
    is Ann's, the address the list's).
    """
    message = ctx.message
    sender_name = ""
    if message.sender is not None and message.sender.name:
        sender_name = _full_key(parse_person_name(message.sender.name))
    people: list[KnownName] = []
    seen: set[str] = set()
    authors = (
        *(Address(email=a.email, name=a.name) for a in message.quoted_authors),
        *_answered_authors(ctx),
    )
    for author in authors:
        email = author.email.lower()
        if email in own and not is_group_address(email):
            continue
        relayed = relayed_display_name(author.name)  # the poster's name, the list's address
        if echoes_local_part(author.name, email):
            g, f, o, n = _NO_NAME
        else:
            g, f, o, n = parse_person_name(author.name)
        if not (g or f or o) and email and not is_group_address(email):
            g, f = names_from_address(email)  # "On …, <steve.wakelam@…> wrote:"
        if not (g or f or o):
            continue
        full = _full_key((g, f, o, n))
        if full == sender_name or full in seen:
            continue  # the sender quoting themselves
        seen.add(full)
        shown = author.email if author.email and not (relayed or is_group_address(email)) else ""
        people.append(
            _from_header(Address(email=shown, name=author.name), "quoted", None, (g, f, o, n))
        )
    return tuple(people)


def check_written_names(
    ctx: CheckContext,
    settings: NameSettings,
    written: Sequence[WrittenName],
    evidence: str,
    recipients: _Recipients,
) -> list[Finding]:
    """Findings for the names of one salutation, against ``_recipients(ctx, settings)``."""
    if not written:
        return []
    if not recipients.known and not recipients.quoted:
        return []  # nothing known about anyone's name: no guessing
    findings: list[Finding] = []
    lang = ctx.language
    greeted: set[str] = set()
    wrong: list[WrittenName] = []
    for name in written:
        matched: tuple[KnownName, list[str]] | None = None
        for known in recipients.known:
            spellings = _accepts_words(name, known, settings)
            if spellings is not None:
                matched = (known, spellings)
                break
        if matched is not None:
            known, spellings = matched
            greeted.add(known.address.email.lower())
            findings.extend(_case_and_form(ctx, settings, name, known, spellings, evidence))
            continue
        near = _nearest_of(name, recipients.known, settings)
        if near is not None:
            greeted.add(near.known.address.email.lower())
            if not _skipped(ctx, near.known, CODE_MISSPELLED):
                findings.append(
                    Finding(
                        code=CODE_MISSPELLED,
                        severity=settings.misspelled_severity,
                        message=say(
                            TEXTS, "misspelled", lang, written=name.text, person=near.known.display
                        ),
                        evidence=evidence,
                        suggestion=_suggestion(name, near),
                    )
                )
            continue
        if recipients.undecided(name) or _first_name_like_surname(
            name, (*recipients.known, *recipients.quoted), settings
        ):
            continue
        if recipients.unknown_family if name.form else recipients.unknown_given:
            # Decided by the thread (see _Recipients.thread_decides).
            finding = _thread_check(ctx, settings, name, recipients, evidence)
            if finding is not None:
                findings.append(finding)
            continue
        wrong.append(name)
    for name in wrong:
        findings.append(_wrong_person(ctx, settings, name, recipients, greeted, evidence))
    return findings


def _thread_check(
    ctx: CheckContext,
    settings: NameSettings,
    name: WrittenName,
    recipients: _Recipients,
    evidence: str,
) -> Finding | None:
    """A list reply's greeting name against the people it answers (quoted or answered authors)."""
    lang = ctx.language
    for person in recipients.quoted:
        if _accepts_words(name, person, settings) is not None:
            return None
    if all(normalise(w) in recipients.quoted_words for w in name.words):
        return None  # named in the quoted conversation: a participant
    near = _nearest_of(name, recipients.quoted, settings)
    if near is not None:
        return Finding(
            code=CODE_MISSPELLED,
            severity=settings.misspelled_severity,
            message=say(
                TEXTS, "misspelled_quoted", lang, written=name.text, person=near.known.display
            ),
            evidence=evidence,
            suggestion=_suggestion(name, near),
        )
    people = ", ".join(
        dict.fromkeys(
            k.display for k in (*recipients.known, *recipients.quoted) if k.header != "bcc"
        )
    )
    answered = recipients.quoted[0]
    return Finding(
        code=CODE_WRONG_PERSON,
        severity=settings.wrong_person_severity,
        message=say(TEXTS, "wrong_person_thread", lang, written=name.text, people=people),
        evidence=evidence,
        suggestion=_address_as(name, answered),
    )


def _case_and_form(
    ctx: CheckContext,
    settings: NameSettings,
    name: WrittenName,
    known: KnownName,
    spellings: list[str],
    evidence: str,
) -> list[Finding]:
    findings: list[Finding] = []
    lang = ctx.language
    lowered = [w for w in name.words if _is_lowercase(w)]
    recorded_lower = all(_is_lowercase(s) for s in spellings)
    if lowered and not recorded_lower and not _skipped(ctx, known, CODE_MISSPELLED):
        findings.append(
            Finding(
                code=CODE_MISSPELLED,
                severity=settings.lowercase_severity,
                message=say(TEXTS, "lowercase", lang, written=name.text, person=known.display),
                evidence=evidence,
                suggestion=" ".join(spellings),
            )
        )
    if name.form and name.gender:
        recorded = _recorded_form(known)
        if (
            recorded is not None
            and recorded[1] != name.gender
            and not _skipped(ctx, known, CODE_SALUTATION_MISMATCH)
        ):
            shown = recorded[0]
            if shown in ("M", "F"):
                shown = _GENDER_WORDS.get(lang, _GENDER_WORDS["en"])[shown]
            suggestion = _form_suggestion(name.form, recorded[1], known)
            findings.append(
                Finding(
                    code=CODE_SALUTATION_MISMATCH,
                    severity=settings.salutation_mismatch_severity,
                    message=say(
                        TEXTS,
                        "mismatch",
                        lang,
                        form=name.form,
                        person=known.display,
                        recorded=shown,
                    ),
                    evidence=evidence,
                    suggestion=suggestion,
                )
            )
    return findings


_OPPOSITE = {
    "herr": "Frau",
    "herrn": "Frau",
    "frau": "Herr",
    "mr": "Ms",
    "ms": "Mr",
    "mrs": "Mr",
    "miss": "Mr",
    "monsieur": "Madame",
    "madame": "Monsieur",
    "señor": "Señora",
    "señora": "Señor",
    "signor": "Signora",
    "signora": "Signor",
    "meneer": "Mevrouw",
    "mevrouw": "Meneer",
}


def _form_suggestion(form: str, gender: str, known: KnownName) -> str | None:
    if known.salutation and FORMS.get(_clean(known.salutation.split()[0]).casefold()):
        return known.salutation
    other = _OPPOSITE.get(_clean(form).casefold())
    if other is None:
        return None
    return other + ("." if form.endswith(".") else "")


def _wrong_person(
    ctx: CheckContext,
    settings: NameSettings,
    name: WrittenName,
    recipients: _Recipients,
    greeted: set[str],
    evidence: str,
) -> Finding:
    lang = ctx.language
    recipient_emails = {k.address.email.lower() for k in recipients.known}
    other: Contact | None = None
    for candidate in ctx.contacts.by_name(name.text):
        if not any(e.lower() in recipient_emails for e in candidate.emails):
            other = candidate
            break
    people = ", ".join(k.display for k in recipients.known if k.header != "bcc")
    if other is not None:
        message = say(
            TEXTS,
            "wrong_person_known",
            lang,
            written=name.text,
            other=other.name or other.emails[0],
        )
    else:
        message = say(TEXTS, "wrong_person", lang, written=name.text, people=people)
    # Suggest the first To/Cc recipient the salutation does not name yet.
    first = next(
        (
            k
            for k in recipients.known
            if k.header != "bcc" and k.address.email.lower() not in greeted
        ),
        None,
    )
    suggestion = _address_as(name, first) if first is not None else None
    if first is not None:
        greeted.add(first.address.email.lower())
    return Finding(
        code=CODE_WRONG_PERSON,
        severity=settings.wrong_person_severity,
        message=message,
        evidence=evidence,
        suggestion=suggestion,
    )


def _address_as(name: WrittenName, known: KnownName) -> str | None:
    """How the first recipient would be named in the same style."""
    if name.form:
        return known.family or (known.other[0] if known.other else None)
    return known.first_given or (known.other[0] if known.other else None) or known.family


def check_names(ctx: CheckContext, settings: NameSettings) -> list[Finding]:
    """The family's entry point: read the salutation, then compare its names."""
    from courtesy.checks.greeting import find_salutation, vocabulary_for

    message = ctx.message
    vocabulary = vocabulary_for(ctx.greeting_words)
    recipients = _recipients(ctx, settings)
    hints = [a.name for a in (*message.to, *message.cc) if a.name]
    for known in (*recipients.known, *recipients.quoted):
        hints.extend(known.keys.values())
    salutation = find_salutation(message.new_text, hints, vocabulary)
    if salutation is None:
        # A bare vocative with a name nobody expects ("Zosie -- please ..."): the
        # parser accepts it once told the word is a name, which only we can say.
        opening = _opening_line(message.new_text)
        leading = _leading_words(opening)
        if _name_evidence(ctx, settings, recipients, leading) or _dash_vocative(opening):
            # One word is a name: its neighbours in the opening are, too ("Carlo Meier").
            salutation = find_salutation(message.new_text, [*hints, *leading], vocabulary)
    if salutation is None or salutation.group or not salutation.names:
        return []
    written = parse_written(salutation.names)
    return check_written_names(ctx, settings, written, salutation.line, recipients)


_LEADING = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)
_DASH_VOCATIVE = re.compile(r"\s*([A-Z][a-z]{2,20})\s?(?:--|—|–)\s*$")


def _opening_line(text: str) -> str:
    """The first line with text among the opening lines, cut to 120 characters."""
    return next((ln for ln in text.split("\n", 8) if ln.strip()), "")[:120]


def _dash_vocative(line: str) -> list[str]:
    """The name of an opening line that is one capitalised word and a dash: "Krishna --".

    In business mail a line of one capitalised word set off by a dash is a
    vocative (Lotus/Outlook-era style: "Louise --", "Jim --"), even when the
    name is in no dataset; a mere word there ("Update --") is rare, and the
    greeting parser's list of non-names and its group words ("Folks --") are
    kept out. The parser then reads the line with that word as a name.
    """
    from courtesy.checks.greeting import _NOT_NAMES

    m = _DASH_VOCATIVE.match(line)
    if m is None or m.group(1).casefold() in _NOT_NAMES:
        return []
    return [m.group(1)]


def _leading_words(line: str, limit: int = 4) -> list[str]:
    """Capitalised words that open ``line`` (candidate vocatives)."""
    words: list[str] = []
    for match in _LEADING.finditer(line):
        word = match.group()
        if word.casefold() in _CONNECTORS or word.casefold() in ("oh", "ach", "ah"):
            continue
        if not word[:1].isupper() or len(words) >= limit:
            break
        words.append(word)
    return words


def _name_evidence(
    ctx: CheckContext, settings: NameSettings, recipients: _Recipients, words: Sequence[str]
) -> list[str]:
    """Those of ``words`` that are names: near a recipient's, well known, or in the book."""
    found: list[str] = []
    for word in words:
        key = normalise(word)
        if len(key) < 2:
            continue
        probe = WrittenName(raw=word, words=(word,))
        if (
            known_given_name(key)
            or any(
                _accepts(key, k, settings) is not None or _nearest(probe, k, settings) is not None
                for k in (*recipients.known, *recipients.quoted)
            )
            or ctx.contacts.by_name(word)
        ):
            found.append(word)
    return found


register(
    CheckFamily(
        name=FAMILY,
        codes=(CODE_MISSPELLED, CODE_WRONG_PERSON, CODE_SALUTATION_MISMATCH),
        settings_type=NameSettings,
        run=check_names,
        description="The salutation names a recipient, spelled and addressed as recorded.",
    )
)
