"""Plain data that flows into and out of the checks.

The checks never see the store or the network: the proxy (or ``courtesy check``)
builds these values and hands them in, which keeps every rule testable on a
single ``.eml`` file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Severity(StrEnum):
    INFO = "info"
    WARN = "warn"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check noticed, phrased for the user in one sentence."""

    code: str
    severity: Severity
    message: str
    evidence: str = ""
    suggestion: str | None = None

    @property
    def family(self) -> str:
        return self.code.split(".", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "evidence": self.evidence,
            "suggestion": self.suggestion,
        }


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox as written in a header: display name (may be empty) and address."""

    email: str
    name: str = ""

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


class ContactSource(StrEnum):
    """Where a name came from, strongest first."""

    ADDRESS_BOOK = "addressbook"
    OVERRIDE = "override"
    HEADER = "header"
    ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class Contact:
    """What is known about a person's name and form of address."""

    emails: tuple[str, ...]
    name: str
    given: str | None = None
    family: str | None = None
    nicknames: tuple[str, ...] = ()
    # "Herr", "Frau", "Mr", "Ms", "Mrs" ... as recorded; None when unknown.
    salutation: str | None = None
    # "M", "F", "O", "N", "U" (vCard 4 GENDER) or None.
    gender: str | None = None
    source: ContactSource = ContactSource.ADDRESS_BOOK
    # Per-contact switches, e.g. never check the greeting name for this person.
    skip_checks: frozenset[str] = frozenset()


def first_given_name(given: str | None) -> str | None:
    """The first of a person's given names: "Anna" of "Anna Maria", "Hans-Peter" itself."""
    if not given:
        return None
    words = given.split()
    return words[0] if words else None


class AddressBook(Protocol):
    """Read-only view of the contacts the checks may consult."""

    def by_email(self, email: str) -> Contact | None:
        """The strongest known contact for an address (case-insensitive)."""
        ...

    def by_name(self, name: str) -> Sequence[Contact]:
        """Contacts whose given, family, full or nick name equals ``name`` (normalised)."""
        ...


@dataclass
class MemoryAddressBook:
    """An address book held in memory: for ``courtesy check`` and tests."""

    contacts: list[Contact] = field(default_factory=list)
    _by_email: dict[str, Contact] = field(default_factory=dict, init=False, repr=False)
    _by_name: dict[str, list[Contact]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for contact in list(self.contacts):
            self._index(contact)

    def add(self, contact: Contact) -> None:
        self.contacts.append(contact)
        self._index(contact)

    def _index(self, contact: Contact) -> None:
        for email in contact.emails:
            key = email.lower()
            known = self._by_email.get(key)
            if known is None or _rank(contact.source) < _rank(known.source):
                self._by_email[key] = contact
        # The first given name too: "Anna" finds "Anna Maria" (middle names are kept in given).
        first = first_given_name(contact.given)
        names = (contact.name, contact.given, first, contact.family, *contact.nicknames)
        for name in dict.fromkeys(n.casefold() for n in names if n):
            self._by_name.setdefault(name, []).append(contact)

    def by_email(self, email: str) -> Contact | None:
        return self._by_email.get(email.lower())

    def by_name(self, name: str) -> Sequence[Contact]:
        return tuple(self._by_name.get(name.casefold(), ()))


_SOURCE_ORDER = (
    ContactSource.OVERRIDE,
    ContactSource.ADDRESS_BOOK,
    ContactSource.HEADER,
    ContactSource.ADDRESS,
)


def _rank(source: ContactSource) -> int:
    return _SOURCE_ORDER.index(source)


@dataclass(frozen=True, slots=True)
class QuotedAuthor:
    """Who wrote a message this one quotes, as its quote header gives it.

    ``name`` is the display name as written ("Marcus D. Leech", "Steffes,
    James D."), empty when the header shows only an address; ``email`` is
    empty when it shows only a name. ``depth`` counts quote headers from the
    top: 0 is the message being answered, 1 the one it quoted, and so on.
    """

    name: str
    email: str = ""
    depth: int = 0


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message parsed once, with its new text separated from quotes and signature."""

    raw_size: int
    sender: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    # Envelope recipients that appear in neither To nor Cc.
    bcc: tuple[Address, ...]
    subject: str
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    # Top-level MIME type, lower case ("text/plain", "multipart/report", ...).
    content_type: str
    # Lower-cased header names -> all values, decoded to str.
    headers: Mapping[str, tuple[str, ...]]
    # The whole readable body as text (HTML converted), quotes included.
    body_text: str
    # What the author wrote in this message: no quote, no signature.
    new_text: str
    # The signature block, when one was recognised.
    signature: str = ""
    # The quoted part of the body (earlier messages), as text, without ">" marks.
    quoted_text: str = ""
    # Content types of every MIME part, lower case (finds text/calendar inside alternatives).
    part_types: tuple[str, ...] = ()
    # Authors of the quoted messages, from their quote headers, nearest first.
    quoted_authors: tuple[QuotedAuthor, ...] = ()

    @property
    def is_reply(self) -> bool:
        return bool(self.in_reply_to or self.references)

    @property
    def recipients(self) -> tuple[Address, ...]:
        return self.to + self.cc + self.bcc


@dataclass(frozen=True, slots=True)
class ThreadView:
    """What is known of the earlier messages of a thread, keyed by Message-ID.

    ``participants``: everyone who was on a message (From, To, Cc; lower
    case). ``authors``: who wrote a message, as its From header gave it
    (display name, possibly empty, and address); only for mail somebody else
    sent to the user, never for the user's own messages.
    """

    participants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    authors: Mapping[str, Address] = field(default_factory=dict)

    def known(self, message_ids: Sequence[str]) -> frozenset[str] | None:
        """Everyone on any of the given messages, or None when none of them is known."""
        found = [self.participants[mid] for mid in message_ids if mid in self.participants]
        if not found:
            return None
        return frozenset().union(*found)

    def authors_of(self, message_ids: Sequence[str]) -> tuple[Address, ...]:
        """The known authors of the given messages, in the order given, each once."""
        found = (self.authors[mid] for mid in message_ids if mid in self.authors)
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class Exceptions:
    """The user's "don't ask again" decisions: (recipient or '*', check code or family)."""

    pairs: frozenset[tuple[str, str]] = frozenset()

    def allows(self, email: str, code: str) -> bool:
        family = code.split(".", 1)[0]
        email = email.lower()
        return any((who in (email, "*")) and (what in (code, family)) for who, what in self.pairs)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """Everything a check may look at."""

    message: OutgoingMessage
    contacts: AddressBook
    language: str = "en"
    own_addresses: frozenset[str] = frozenset()
    own_domains: frozenset[str] = frozenset()
    thread: ThreadView = ThreadView()
    exceptions: Exceptions = Exceptions()
    # ``[checks.greeting] extra_words``: the names check reads salutations too.
    greeting_words: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def own_emails(self) -> frozenset[str]:
        """The writer's own addresses, lower case: ``own_addresses`` and the sender's."""
        own = {a.lower() for a in self.own_addresses}
        if self.message.sender is not None:
            own.add(self.message.sender.email.lower())
        return frozenset(own)
