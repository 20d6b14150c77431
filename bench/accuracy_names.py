"""Names accuracy on the labelled corpus: false alarms, misspellings, wrong persons.

For every message whose label names a person in the greeting, three copies
are checked: (a) as written, (b) with that name misspelled by one or two
random edits (seeded; never a transliteration and never a well-known
nickname of the name, which would not be a misspelling), (c) with the name
replaced by another person's name taken from the rest of the corpus (never
one that is the same name as a recipient's). The address book is the
corpus's ``contacts.vcf``, imported as the user would.

Display names seen in headers: a running proxy and IMAP poller harvest the
display names of every person's mail into the store (lower trust than the
address book), so the checks know people the address book does not. The
evaluation simulates that state: every *other* corpus message is read as
the poller reads an inbound message (its own ``read_message``: From, To and
Cc display names of mail from a person; list, bulk and automated mail give
none), and the pairs are harvested as ``harvest_display_names`` would. The
message being checked contributes nothing about itself (leave-one-out): its
own headers are checked exactly as stored. The Enron export moved the
original display names out of From/To/Cc into X-From/X-To/X-cc; those count
as the headers the poller would have seen, but only where they pair with an
address unambiguously (X-From with the one From address; an X-To/X-cc entry
that carries its own address, or the whole field when the header has one
address). The poller also stores who wrote every message it sees (list
mail too): the name check reads it for a reply to a list or role address
(the authors of the messages it answers). The evaluation gives each message
a thread view of the *other* corpus messages, Message-ID -> author from
their From header as ``read_message`` reads it (X-From where the export
moved the display name there). ``--no-harvest`` measures the address book
alone, without either.

Reported per language: the false-alarm rate on (a) (any ``name.*`` finding),
the detection rate on (b) and (c) (any ``name.*`` finding; the share with the
expected code in brackets). "decidable" restricts (b) and (c) to messages
where the check can tell a wrong first name: every To/Cc recipient has a
known given name, or the only unknown ones are mailing-list or role addresses
and the message quotes somebody, or answers a message whose author is known
(a list reply is decided by its thread). With an opaque personal address, or
a list reply with neither, it stays silent by design.

Run alone: ``python bench/accuracy_names.py [--corpus DIR] [--seed N] [--no-harvest] [-v]``.
"""

# No "from __future__ import annotations": bench/accuracy.py loads this file without
# registering it in sys.modules, and dataclasses then cannot resolve string annotations.
import argparse
import dataclasses
import json
import random
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's courtesy, not whichever one is installed

from courtesy.checks.greeting import find_salutation  # noqa: E402
from courtesy.checks.message import NotAMessage, parse_message  # noqa: E402
from courtesy.checks.model import (  # noqa: E402
    Address,
    AddressBook,
    CheckContext,
    Contact,
    ContactSource,
    MemoryAddressBook,
    OutgoingMessage,
    ThreadView,
)
from courtesy.checks.names import (  # noqa: E402
    CODE_MISSPELLED,
    CODE_WRONG_PERSON,
    NameSettings,
    _recipients,
    address_person_name,
    check_names,
    first_given_name,
    normalise,
    well_known_nickname,
)
from courtesy.proxy.contacts_import import read_contacts  # noqa: E402
from courtesy.proxy.headers import addresses, header_block, parse_header_block  # noqa: E402
from courtesy.proxy.imap import FetchedHeaders  # noqa: E402
from courtesy.proxy.poller import read_message  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class Tally:
    n: int = 0
    hits: int = 0
    exact: int = 0  # hits with the expected code

    def rate(self) -> str:
        if not self.n:
            return "   –"
        return f"{100 * self.hits / self.n:5.1f} % ({self.hits}/{self.n})"

    def exact_rate(self) -> str:
        return f"[{100 * self.exact / self.n:.0f} %]" if self.n else ""


@dataclass
class Results:
    clean: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    typo: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    typo_decidable: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    other: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    other_decidable: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    # Messages whose greeting names nobody (or that do not greet): any name.* is false.
    unnamed: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    not_located: int = 0
    details: list[str] = field(default_factory=list)


# --- display names a running proxy / poller would have harvested ---------------------

_EXPORT_FIELDS = (("x-from", "from"), ("x-to", "to"), ("x-cc", "cc"))
_BRACKETED = re.compile(r"<([^<>]*)>")


def _export_pairs(fields: dict[str, str]) -> list[tuple[str, str]]:
    """(address, display name) from the Enron export's X-From / X-To / X-cc.

    The export kept the original display names there and only the addresses in
    From/To/Cc. A name is paired with an address only when that is certain:
    an entry that carries its own address (one of the header's), or the
    whole field when the header has a single address and the field names a
    single person ("Presto, Kevin M. </O=ENRON/...>", "Benjamin Rogers").
    """
    pairs: list[tuple[str, str]] = []
    for export_name, name in _EXPORT_FIELDS:
        value = fields.get(export_name, "").strip()
        header = [a for _, a in addresses(fields.get(name))]
        if not value or not header:
            continue
        paired = False
        previous = 0
        for match in _BRACKETED.finditer(value):
            inside = match.group(1).strip().lower()
            segment = value[previous : match.start()]
            previous = match.end()
            segment = re.sub(r"^\s*@\s*[\w.-]+'?", "", segment).strip(" ,;")
            if inside not in header or not segment:
                continue
            quoted = re.fullmatch(r"[\"']([^\"']+)[\"']?|[\"']?([^\"']+)[\"']", segment)
            if quoted:
                segment = quoted.group(1) or quoted.group(2)
            elif "," in segment:
                continue  # "Ann Lee, Bob Roe <bob@...>": whose name is whose is unsure
            pairs.append((inside, segment.strip()))
            paired = True
        if paired or len(header) != 1:
            continue
        whole = _BRACKETED.sub(" ", value).strip(" ,;'\"")
        last, comma, _first = whole.partition(",")
        if comma and (len(last.split()) != 1 or "," in _first):
            continue  # several people, not "Last, First"
        pairs.append((header[0], whole))
    return pairs


def harvest_pairs(raw: bytes) -> list[tuple[str, str]]:
    """The (address, display name) pairs the IMAP poller would harvest from one message."""
    header = header_block(raw)
    reading = read_message(
        FetchedHeaders(uid=0, flags=(), internaldate=None, header=header),
        own=frozenset(),
    )
    if reading.message.exclude_reason is not None:
        return []  # list, bulk, automated: the poller harvests nothing from it
    return [*reading.names, *_export_pairs(parse_header_block(header))]


def harvested_contact(email: str, display: str) -> Contact | None:
    """The store's harvested contact for a pair (``harvest_display_names``'s rules)."""
    email = email.strip().lower()
    display = " ".join(display.split())
    if not email or "@" not in email or not display or "@" in display:
        return None
    given, family, other, nicks = address_person_name(email, display)
    if not (given or family or other):
        return None
    return Contact(
        emails=(email,),
        name=display,
        given=given or (other[0] if other else None),
        family=family,
        nicknames=nicks,
        source=ContactSource.HEADER,
    )


class HarvestedBook:
    """The address book plus display names harvested from the other corpus messages.

    ``exclude`` is the file being checked: what it says about its own
    recipients is not known before it is sent (leave-one-out). As in the
    store, the address book wins over a harvested name and a harvested name
    follows the latest message that showed it.
    """

    def __init__(self, book: MemoryAddressBook, seen: dict[str, list[tuple[str, Contact]]]):
        self.book = book
        self.seen = seen
        self.exclude = ""
        self._by_name: dict[str, list[Contact]] = {}
        for versions in seen.values():
            for _file, contact in versions:
                first = first_given_name(contact.given)  # the store's keys: "Anna" of "Anna Maria"
                names = (contact.name, contact.given, first, contact.family, *contact.nicknames)
                for name in names:
                    key = normalise(name or "")
                    if key:
                        self._by_name.setdefault(key, []).append(contact)

    def by_email(self, email: str) -> Contact | None:
        contact = self.book.by_email(email)
        if contact is not None:
            return contact
        for file, harvested in reversed(self.seen.get(email.lower(), ())):
            if file != self.exclude:
                return harvested
        return None

    def by_name(self, name: str) -> tuple[Contact, ...]:
        found = list(self.book.by_name(name))
        for contact in self._by_name.get(normalise(name), ()):
            if contact not in found and self.by_email(contact.emails[0]) is contact:
                found.append(contact)
        return tuple(found)


def harvest(corpus: Path, labels: list[dict[str, object]]) -> dict[str, list[tuple[str, Contact]]]:
    """address -> [(file, harvested contact)] over the whole corpus, in file order."""
    seen: dict[str, list[tuple[str, Contact]]] = {}
    for label in labels:
        file = str(label["file"])
        for email, display in harvest_pairs((corpus / "messages" / file).read_bytes()):
            contact = harvested_contact(email, display)
            if contact is not None:
                seen.setdefault(contact.emails[0], []).append((file, contact))
    return seen


def read_author(raw: bytes) -> tuple[str, Address] | None:
    """(Message-ID, author) as the poller stores a message: its From, read by ``read_message``.

    The poller keeps every message, list and bulk mail included. Where the
    Enron export moved the display name to X-From, that counts as the From
    header's, paired as ``_export_pairs`` pairs it.
    """
    header = header_block(raw)
    stored = read_message(
        FetchedHeaders(uid=0, flags=(), internaldate=None, header=header),
        own=frozenset(),
    ).message
    if stored.message_id is None or not (stored.from_address or stored.from_name):
        return None
    name = stored.from_name or ""
    if not name:
        fields = parse_header_block(header)
        only_from = {k: fields[k] for k in ("from", "x-from") if k in fields}
        name = next((n for a, n in _export_pairs(only_from) if a == stored.from_address), "")
    return stored.message_id, Address(email=stored.from_address, name=name)


class HarvestedThread:
    """Who wrote the other corpus messages, as the poller's rows would tell the proxy.

    ``view(exclude)`` is the ThreadView for checking the file ``exclude``:
    it knows every message but that one (leave-one-out, as ``HarvestedBook``);
    of several files with the same Message-ID the first one counts, as the
    store's first row would.
    """

    def __init__(self, seen: dict[str, list[tuple[str, Address]]]):
        self.seen = seen

    def view(self, exclude: str) -> ThreadView:
        authors: dict[str, Address] = {}
        for message_id, versions in self.seen.items():
            author = next((a for file, a in versions if file != exclude), None)
            if author is not None:
                authors[message_id] = author
        return ThreadView(authors=authors)


def harvest_authors(corpus: Path, labels: list[dict[str, object]]) -> HarvestedThread:
    """Message-ID -> [(file, author)] over the whole corpus, in file order."""
    seen: dict[str, list[tuple[str, Address]]] = {}
    for label in labels:
        file = str(label["file"])
        found = read_author((corpus / "messages" / file).read_bytes())
        if found is not None:
            seen.setdefault(found[0], []).append((file, found[1]))
    return HarvestedThread(seen)


def misspell(name: str, rng: random.Random) -> str | None:
    """One or two random letter edits that change the name for real."""
    word = name
    original = normalise(name)
    for _attempt in range(50):
        word = name
        for _ in range(rng.choice((1, 2))):
            letters = [i for i, c in enumerate(word) if c.isalpha()]
            if len(letters) < 2:
                return None
            op = rng.choice(("sub", "ins", "del", "swap"))
            i = rng.choice(letters)
            new = rng.choice(LETTERS)
            if i == 0 and word[0].isupper():
                new = new.upper()
            if op == "sub":
                word = word[:i] + new + word[i + 1 :]
            elif op == "ins":
                j = rng.choice([*letters[1:], len(word)])
                word = word[:j] + rng.choice(LETTERS) + word[j:]
            elif op == "del" and len(letters) > 2:
                word = word[:i] + word[i + 1 :]
            elif op == "swap" and i + 1 < len(word) and word[i + 1].isalpha() and i > 0:
                word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if name[:1].isupper():
            word = word[:1].upper() + word[1:]  # a typo keeps the capital letter
        key = normalise(word)
        if key == original or not key:
            continue  # no change, or a transliteration (Jörg -> Joerg)
        if well_known_nickname(key, original):
            continue  # Steven -> Steve is a nickname, not a typo
        return word
    return None


def _recipient_tokens(message: OutgoingMessage, book: AddressBook) -> set[str]:
    tokens: set[str] = set()
    for address in (*message.to, *message.cc):
        texts = [address.name, re.sub(r"[._\d-]+", " ", address.email.partition("@")[0])]
        contact = book.by_email(address.email)
        if contact is not None:
            texts += [contact.name, contact.given or "", contact.family or "", *contact.nicknames]
        for text in texts:
            tokens.update(normalise(t) for t in re.split(r"[\s,'\"]+", text) if t)
    return {t for t in tokens if len(t) > 1}


def _same_name(candidate: str, tokens: set[str]) -> bool:
    key = normalise(candidate)
    return any(key == t or well_known_nickname(key, t) for t in tokens)


def _replace_name(message: OutgoingMessage, old: str, new: str) -> OutgoingMessage | None:
    """The message with the greeting's ``old`` name replaced by ``new`` in its new text."""
    text = message.new_text
    salutation = find_salutation(text, [a.name for a in (*message.to, *message.cc) if a.name])
    start, end = (salutation.start, salutation.end) if salutation else (0, min(len(text), 300))
    pattern = re.compile(rf"(?<!\w){re.escape(old)}(?!\w)")
    found = pattern.search(text, start, end) or pattern.search(text, 0, min(len(text), 300))
    if found is None:
        return None
    changed = text[: found.start()] + new + text[found.end() :]
    return dataclasses.replace(message, new_text=changed)


def _findings(message: OutgoingMessage, book: AddressBook, thread: ThreadView) -> list[str]:
    ctx = CheckContext(message=message, contacts=book, language="en", thread=thread)
    return [f.code for f in check_names(ctx, NameSettings())]


def _decidable(message: OutgoingMessage, book: AddressBook, thread: ThreadView) -> bool:
    """Whether the check has what it needs to call a first name wrong.

    Every recipient's given name is known, or the only unknown ones are list or
    role addresses and the message quotes somebody or answers a message whose
    author is known (the thread decides).
    """
    ctx = CheckContext(message=message, contacts=book, thread=thread)
    recipients = _recipients(ctx, NameSettings())
    if not recipients.known and not recipients.quoted:
        return False
    if not recipients.unknown_given:
        return True
    return bool(recipients.quoted) and not recipients.person_unknown_given


def evaluate(corpus: Path, seed: int = 20250304, harvested: bool = True) -> Results:
    labels = [json.loads(line) for line in (corpus / "labels.jsonl").read_text().splitlines()]
    address_book = MemoryAddressBook(read_contacts(corpus / "contacts.vcf").contacts)
    store = HarvestedBook(address_book, harvest(corpus, labels))
    authors = harvest_authors(corpus, labels)
    # What the checks consult; the copies are made the same way either way.
    book: AddressBook = store if harvested else address_book
    pool = sorted(
        {
            n
            for label in labels
            for n in label.get("names") or ()
            if " " not in n and n[:1].isupper() and not n.isupper()
        }
    )
    results = Results()
    rng = random.Random(seed)
    for label in labels:
        names = label.get("names") or []
        lang = label.get("lang") or "?"
        store.exclude = label["file"]
        thread = authors.view(label["file"]) if harvested else ThreadView()
        try:
            message = parse_message((corpus / "messages" / label["file"]).read_bytes())
        except NotAMessage:
            continue
        if not names:
            codes = _findings(message, book, thread)
            unnamed = results.unnamed[lang]
            unnamed.n += 1
            unnamed.hits += bool(codes)
            if codes:
                greeting = label.get("greeting_text")
                results.details.append(f"(u) {label['file']} {greeting!r}: {codes}")
            continue
        codes = _findings(message, book, thread)
        tally = results.clean[lang]
        tally.n += 1
        tally.hits += bool(codes)
        if codes:
            results.details.append(f"(a) {label['file']} {names}: {codes}")
        decidable = _decidable(message, book, thread)
        target = rng.choice(names)
        word = rng.choice(target.split())
        typo = misspell(word, rng)
        tokens = _recipient_tokens(message, store) | {normalise(n) for n in names}
        others = [n for n in pool if not _same_name(n, tokens)]
        other = rng.choice(others) if others else None
        for copy_name, replacement, tallies, expected in (
            ("b", typo, (results.typo, results.typo_decidable), CODE_MISSPELLED),
            ("c", other, (results.other, results.other_decidable), CODE_WRONG_PERSON),
        ):
            if replacement is None:
                continue
            changed = _replace_name(message, word, replacement)
            if changed is None:
                results.not_located += 1
                continue
            codes = _findings(changed, book, thread)
            for i, table in enumerate(tallies):
                if i == 1 and not decidable:
                    continue
                t = table[lang]
                t.n += 1
                t.hits += bool(codes)
                t.exact += expected in codes
            if not codes:
                results.details.append(
                    f"({copy_name}) {label['file']} {word} -> {replacement}: missed"
                    + ("" if decidable else " (undecidable)")
                )
            elif expected not in codes:
                results.details.append(
                    f"({copy_name}) {label['file']} {word} -> {replacement}: found as {codes}"
                )
    return results


def names_section(corpus_dir: Path, show_errors: bool = False) -> str:
    """The names table for ``bench/accuracy.py``, with every wrong copy when asked."""
    results = evaluate(corpus_dir)
    text = _format(results)
    if show_errors and results.details:
        text += "\n" + "\n".join(results.details)
    return text


def _format(results: Results, harvested: bool = True) -> str:
    langs = sorted(set(results.clean) | set(results.typo) | set(results.other))
    source = "contacts.vcf"
    if harvested:
        source += " + display names and authors harvested from the other messages' headers"
    lines = [
        f"Names (greeting name vs recipients; address book: {source})",
        f"{'lang':5} {'(a) false alarms':24} {'(b) misspelling detected':30} "
        f"{'(c) wrong person detected':30}",
    ]

    def total(table: dict[str, Tally]) -> Tally:
        t = Tally()
        for item in table.values():
            t.n += item.n
            t.hits += item.hits
            t.exact += item.exact
        return t

    for lang in [*langs, "all"]:
        if lang == "all":
            a, b, c = total(results.clean), total(results.typo), total(results.other)
            bd, cd = total(results.typo_decidable), total(results.other_decidable)
        else:
            a, b, c = results.clean[lang], results.typo[lang], results.other[lang]
            bd, cd = results.typo_decidable[lang], results.other_decidable[lang]
        lines.append(
            f"{lang:5} {a.rate():24} {b.rate() + ' ' + b.exact_rate():30} "
            f"{c.rate() + ' ' + c.exact_rate():30}"
        )
        lines.append(f"{'':5} {'':24} {'decidable ' + bd.rate():30} {'decidable ' + cd.rate():30}")
    unnamed = total(results.unnamed)
    lines.append(
        "name.* findings on mail whose greeting names nobody (or that has none): "
        + ", ".join(f"{lang} {results.unnamed[lang].rate()}" for lang in sorted(results.unnamed))
        + f", all {unnamed.rate()}"
    )
    lines.append(
        "targets: false alarms <= 2 %, misspelling >= 95 %, wrong person >= 95 %; "
        "[..] = share with the expected code"
    )
    if results.not_located:
        lines.append(f"copies whose name was not found in the new text: {results.not_located}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--seed", type=int, default=20250304)
    parser.add_argument(
        "--no-harvest",
        action="store_true",
        help="the address book alone, without display names or authors harvested from headers",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="list every wrong copy")
    args = parser.parse_args(argv)
    if not (args.corpus / "labels.jsonl").exists():
        print(f"no labels.jsonl in {args.corpus}", file=sys.stderr)
        return 2
    results = evaluate(args.corpus, args.seed, harvested=not args.no_harvest)
    print(_format(results, harvested=not args.no_harvest))
    if args.verbose:
        print("\n".join(results.details))
    return 0


if __name__ == "__main__":
    sys.exit(main())
