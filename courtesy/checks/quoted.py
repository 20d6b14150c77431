"""Who wrote the quoted messages: names and addresses from their quote headers.

A reply's greeting usually names the person being answered, and that person's
name stands in the quote header even when the recipient's address is opaque
(``jwahl@…``) or the message goes to a mailing list. This module reads the
headers that :mod:`courtesy.checks.newtext` recognises as quote starts, in the
quoted text (where ``>`` marks are already removed, so deeper quotes count
too):

- attributions: "On Tue, 3 Mar 2009, Marcus D. Leech <m@x> wrote:",
  "Am 03.03.2009 um 10:00 schrieb Thomas Meier <t@x>:", "Le … a écrit :",
  "El … escribió:", also wrapped over two lines;
- Outlook header blocks: "From: Name [mailto:…]", "Von: Name <…>", "De : …"
  followed by "Sent:"/"Gesendet:"/"To:" lines;
- Lotus Notes blocks: "From: Jeffrey A Shankman @ ECT 09/13/2000 04:29 PM" and
  the name line above a date line and "To:".

It returns names as written; deciding whether a name is a person's (and which
part is the given name) is left to :func:`courtesy.checks.names.parse_person_name`.
Work is linear: lines are bounded and only a bounded number of headers is read.
"""

from __future__ import annotations

import re

from courtesy.checks.model import QuotedAuthor
from courtesy.checks.newtext import (
    _FROM_KEYS,
    _header_key,
    _is_attribution,
    _is_header_block,
    _is_notes_header,
)

_MAX_AUTHORS = 50  # quote headers read at most
_MAX_LINES = 5000
_MAX_LINE = 400

_EMAIL = r"[A-Za-z0-9._%+'=-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}"
_EMAIL_RE = re.compile(_EMAIL)
# "<a@b>", "(<a@b>)", "[mailto:a@b]", "<mailto:a@b>", and Exchange's "<a@b>@ENRON".
_BRACKETED_RE = re.compile(
    r"\(?\s?[<\[]\s?(?:mailto:|smtp:)?(" + _EMAIL + r")\s?[>\]]\)?(?:@[A-Za-z]{1,20}\b)?",
    re.IGNORECASE,
)
_MAILTO_RE = re.compile(r"[<\[]\s?(?:mailto|smtp):[^\]>]{0,400}[\]>]?", re.IGNORECASE)
# Outlook: "From: List <list@…> On Behalf Of Ann Smith" names Ann Smith.
_BEHALF_RE = re.compile(r"\bon behalf of\b|\bim auftrag von\b", re.IGNORECASE)
_VERB_RE = re.compile(
    r"\b(?:wrote|writes|said|schrieb|schreibt|sagte|meinte|a [ée]crit|escribi[óo]|ha scritto"
    r"|scrive|schreef|heeft geschreven|skrev|kirjoitti|napisał)\b",
    re.IGNORECASE,
)
# Words around the date in an attribution that are not a name.
_NOT_NAME = frozenset(
    [
        "am",
        "pm",
        "a.m.",
        "p.m.",
        "uhr",
        "um",
        "at",
        "à",
        "a",
        "las",
        "alle",
        "om",
        "kl.",
        "kl",
        "utc",
        "gmt",
        "cet",
        "cest",
        "mez",
        "mesz",
        "est",
        "edt",
        "cst",
        "cdt",
        "mst",
        "mdt",
        "pst",
        "pdt",
        "bst",
        "ist",
        "jst",
        "wet",
        "west",
        "eet",
        "eest",
    ]
)
_LEADING_WORDS = frozenset(
    ["on", "am", "le", "el", "il", "op", "den", "dne", "w", "dnia", "giorno", "the"]
)
# Lotus Notes: "Name/HOU/ECT@ECT", "Name@ENRON", "Name @ ECT", then a date.
_NOTES_TAIL_RE = re.compile(r"\s?(?:/[\w&. -]{0,40}){0,4}\s?@\s?[\w.&-]{1,40}(?:\s.*)?$")
_DATE_TAIL_RE = re.compile(r"\s(?:on\s)?\d{1,4}[./-]\d{1,2}[./-]\d{1,4}.*$", re.IGNORECASE)


def _clean_name(text: str) -> str:
    """Trim quotes, brackets and punctuation left around a display name."""
    text = " ".join(text.replace("\t", " ").split())
    return text.strip(" ,;:()[]<>\"'*“”‘’«»")


def _split_email(text: str) -> tuple[str, str]:
    """(text without addresses, the first address) of a header value."""
    email = ""
    found = _BRACKETED_RE.search(text)
    if found is not None:
        email = found.group(1)
    text = _BRACKETED_RE.sub(" ", text)
    text = _MAILTO_RE.sub(" ", text)
    bare = _EMAIL_RE.search(text)
    if bare is not None:
        email = email or bare.group()
        text = _EMAIL_RE.sub(" ", text)
    return text, email


def _name_or_empty(name: str, email: str) -> str:
    """The display name, or "" when it is none.

    A name starts with a capital letter and holds no digit; one that only
    repeats the address ("pschoenemann") is no name either. What is left is a
    display name as written, for :func:`courtesy.checks.names.parse_person_name`.
    """
    name = _clean_name(name)
    local = email.partition("@")[0].casefold()
    if not name[:1].isupper() or any(c.isdigit() for c in name):
        return ""
    if local and name.casefold() == local:
        return ""
    return name


def parse_attribution(line: str) -> QuotedAuthor | None:
    """The author of an "On … wrote:" / "Am … schrieb …:" line, or None."""
    verb = _VERB_RE.search(line)
    if verb is None:
        return None
    before, after = line[: verb.start()], line[verb.end() :]
    after = after.strip().rstrip(":.…").strip()
    # German, Dutch, Scandinavian: "Am … schrieb Thomas Meier <t@x>:"; but not
    # "Ann wrote in comp.lang.python:" or "Ann schrieb im Newsbeitrag …:".
    segment = after if after[:1].isupper() or "@" in after else before
    segment, email = _split_email(segment)
    tokens = segment.replace(",", " , ").split()
    # The date ends at the last token with a digit; the name follows it.
    last_digit = max((i for i, t in enumerate(tokens) if any(c.isdigit() for c in t)), default=-1)
    if last_digit >= 0:
        tokens = tokens[last_digit + 1 :]
    elif tokens and tokens[0].casefold() in _LEADING_WORDS and "," in tokens:
        tokens = tokens[tokens.index(",") + 1 :]  # "On Monday, Ann wrote:"
    while tokens and (tokens[0].casefold() in _NOT_NAME or tokens[0] == ","):
        tokens = tokens[1:]
    name = " ".join(tokens).replace(" , ", ", ")
    name = _name_or_empty(name, email)
    if not name and not email:
        return None
    return QuotedAuthor(name=name, email=email)


def parse_from_value(value: str) -> QuotedAuthor | None:
    """The author of an Outlook/Notes "From:" value, or None."""
    value = value[:_MAX_LINE]
    behalf = _BEHALF_RE.search(value)
    if behalf is not None:
        value = value[behalf.end() :]
    text, email = _split_email(value)
    text = _DATE_TAIL_RE.sub("", text)
    text = _NOTES_TAIL_RE.sub("", text)
    name = _name_or_empty(text, email)
    if not name and not email:
        return None
    return QuotedAuthor(name=name, email=email)


def _notes_name(line: str) -> QuotedAuthor | None:
    """The name line of a Lotus Notes header: "Cynthia Sandherr@ENRON"."""
    return parse_from_value(line.strip())


def quoted_authors(quoted: str) -> tuple[QuotedAuthor, ...]:
    """Every quoted message's author, nearest first (``depth`` 0, 1, …), without repeats."""
    lines = quoted.split("\n", _MAX_LINES)[:_MAX_LINES]
    found: list[QuotedAuthor] = []
    seen: set[tuple[str, str]] = set()
    depth = 0
    i = 0
    n = len(lines)
    while i < n and depth < _MAX_AUTHORS:
        line = lines[i][:_MAX_LINE]
        author: QuotedAuthor | None = None
        header = False
        step = 1
        if line.strip():
            nxt = lines[i + 1][:_MAX_LINE] if i + 1 < n else ""
            span = _is_attribution(line, nxt)
            if span:
                header = True
                joined = " ".join(x.strip() for x in lines[i : i + span])
                author = parse_attribution(joined)
                step = span
            elif _header_key(line) in _FROM_KEYS and _is_header_block(lines, i):
                header = True
                author = parse_from_value(line.split(":", 1)[1])
            elif _is_notes_header(lines, i):
                header = True
                author = _notes_name(line)
        if author is not None:
            key = (author.name.casefold(), author.email.casefold())
            if key not in seen:
                seen.add(key)
                found.append(QuotedAuthor(author.name, author.email, depth))
        if header:
            depth += 1
        i += step
    return tuple(found)
