"""Names accuracy on the labelled corpus: false alarms, misspellings, wrong persons.

For every message whose label names a person in the greeting, three copies
are checked: (a) as written, (b) with that name misspelled by one or two
random edits (seeded; never a transliteration and never a well-known
nickname of the name, which would not be a misspelling), (c) with the name
replaced by another person's name taken from the rest of the corpus (never
one that is the same name as a recipient's). The address book is the
corpus's ``contacts.vcf``, imported as the user would.

Reported per language: the false-alarm rate on (a) (any ``name.*`` finding),
the detection rate on (b) and (c) (any ``name.*`` finding; the share with the
expected code in brackets). "decidable" restricts (b) and (c) to messages
where the check can tell a wrong first name: every To/Cc recipient has a
known given name, or the only unknown ones are mailing-list or role addresses
and the message quotes somebody (a list reply is decided by its thread). With
an opaque personal address, or a list without a quote, it stays silent by
design.

Run alone: ``python bench/accuracy_names.py [--corpus DIR] [--seed N] [-v]``.
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

from courtesy.checks.greeting import find_salutation
from courtesy.checks.message import NotAMessage, parse_message
from courtesy.checks.model import CheckContext, MemoryAddressBook, OutgoingMessage
from courtesy.checks.names import (
    CODE_MISSPELLED,
    CODE_WRONG_PERSON,
    NameSettings,
    _recipients,
    check_names,
    normalise,
    well_known_nickname,
)
from courtesy.proxy.contacts_import import read_contacts

REPO = Path(__file__).resolve().parent.parent
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


def _recipient_tokens(message: OutgoingMessage, book: MemoryAddressBook) -> set[str]:
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


def _findings(message: OutgoingMessage, book: MemoryAddressBook) -> list[str]:
    ctx = CheckContext(message=message, contacts=book, language="en")
    return [f.code for f in check_names(ctx, NameSettings())]


def _decidable(message: OutgoingMessage, book: MemoryAddressBook) -> bool:
    """Whether the check has what it needs to call a first name wrong.

    Every recipient's given name is known, or the only unknown ones are list or
    role addresses and the message quotes somebody (the thread decides).
    """
    ctx = CheckContext(message=message, contacts=book)
    recipients = _recipients(ctx, NameSettings())
    if not recipients.known and not recipients.quoted:
        return False
    if not recipients.unknown_given:
        return True
    return bool(recipients.quoted) and not recipients.person_unknown_given


def evaluate(corpus: Path, seed: int = 20250304) -> Results:
    labels = [json.loads(line) for line in (corpus / "labels.jsonl").read_text().splitlines()]
    book = MemoryAddressBook(read_contacts(corpus / "contacts.vcf").contacts)
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
        try:
            message = parse_message((corpus / "messages" / label["file"]).read_bytes())
        except NotAMessage:
            continue
        if not names:
            codes = _findings(message, book)
            unnamed = results.unnamed[lang]
            unnamed.n += 1
            unnamed.hits += bool(codes)
            if codes:
                greeting = label.get("greeting_text")
                results.details.append(f"(u) {label['file']} {greeting!r}: {codes}")
            continue
        codes = _findings(message, book)
        tally = results.clean[lang]
        tally.n += 1
        tally.hits += bool(codes)
        if codes:
            results.details.append(f"(a) {label['file']} {names}: {codes}")
        decidable = _decidable(message, book)
        target = rng.choice(names)
        word = rng.choice(target.split())
        typo = misspell(word, rng)
        tokens = _recipient_tokens(message, book) | {normalise(n) for n in names}
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
            codes = _findings(changed, book)
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
    return results


def names_section(corpus_dir: Path) -> str:
    """The names table for ``bench/accuracy.py`` (and for running this file alone)."""
    return _format(evaluate(corpus_dir))


def _format(results: Results) -> str:
    langs = sorted(set(results.clean) | set(results.typo) | set(results.other))
    lines = [
        "Names (greeting name vs recipients; address book: contacts.vcf)",
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
    parser.add_argument("-v", "--verbose", action="store_true", help="list every miss")
    args = parser.parse_args(argv)
    if not (args.corpus / "labels.jsonl").exists():
        print(f"no labels.jsonl in {args.corpus}", file=sys.stderr)
        return 2
    results = evaluate(args.corpus, args.seed)
    print(_format(results))
    if args.verbose:
        print("\n".join(results.details))
    return 0


if __name__ == "__main__":
    sys.exit(main())
