"""Reading the header fields of a message fast, for the outgoing log and the IMAP poller.

Both read a few fields of every message (a first IMAP sync reads tens of
thousands), so this is a small hand-written scan instead of the email
package; the checks, which need the whole message, parse it properly.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.utils import getaddresses

from courtesy.checks.message import split_ids

MONTHS = {
    name: number
    for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}


def utc_time(
    year: int, month: int, day: int, hour: int, minute: int, second: int, offset_minutes: int
) -> datetime | None:
    """A wall-clock time at a UTC offset, in UTC (the IMAP INTERNALDATE and the Date header).

    None when it is no date ("31 Feb") or has no UTC time: "31 Dec 9999 23:30
    -0100" is after the last year a datetime holds, and a stranger's mail may
    say so.
    """
    try:
        wall = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        return wall - timedelta(minutes=offset_minutes) if offset_minutes else wall
    except (ValueError, OverflowError):
        return None


def header_block(content: bytes) -> bytes:
    """The header block of a raw message: everything before the first empty line."""
    end = content.find(b"\r\n\r\n")
    if end < 0:
        end = content.find(b"\n\n")
    return content if end < 0 else content[:end]


_FOLD = re.compile(r"\r?\n[ \t]+")
_JOINED = {"to": ", ", "cc": ", ", "references": " "}
# Field names as written ("Message-ID") -> as looked up ("message-id").
_FIELD_NAMES: dict[str, str] = {}


def parse_header_block(raw: bytes) -> dict[str, str]:
    """The header fields of a HEADER.FIELDS fetch, unfolded, by lower-case name.

    Deliberately small and fast (a first sync reads tens of thousands): To,
    Cc and References occurring more than once are joined, others keep
    their first value. 8-bit headers are read as UTF-8, else Latin-1.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if "\n " in text or "\n\t" in text:
        text = _FOLD.sub(" ", text)
    fields: dict[str, str] = {}
    names = _FIELD_NAMES
    for line in text.splitlines():
        raw_name, colon, value = line.partition(":")
        if not colon or not raw_name or raw_name[0] in " \t":
            continue
        name = names.get(raw_name)
        if name is None:
            name = raw_name.strip().lower()
            if len(names) < 1024:
                names[raw_name] = name
        value = value.strip()
        if name not in fields:
            fields[name] = value
        elif name in _JOINED:
            fields[name] += _JOINED[name] + value
    return fields


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words ("=?utf-8?q?M=C3=BCller?=") where there are any."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


# "Name <a@b>" or "a@b": the shape of nearly every address; others go to getaddresses.
_SIMPLE_ADDRESS = re.compile(
    r"\s*(?:"
    r"([^\"\\,;:<>()@]*?)\s*<\s*([^<>\s@\",;]+@[^<>\s\",;]+)\s*>"  # Name <a@b>
    r"|([^<>\s@\",;()]+@[^<>\s\",;()]+)"  # a@b
    r")\s*$"
)


_COMPLEX_ADDRESS = re.compile(r'["(\\;:]')


# Parsed address headers by their text: the same correspondents recur, a sync reads
# the same From, To and Cc values thousands of times. Bounded: cleared when full.
_ADDRESS_MEMORY = 4096
_address_cache: dict[str, list[tuple[str, str]]] = {}


def addresses(value: str | None) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs of an address header (do not modify it)."""
    if not value:
        return []
    found = _address_cache.get(value)
    if found is None:
        found = _parse_addresses(value)
        if len(_address_cache) >= _ADDRESS_MEMORY:
            _address_cache.clear()
        _address_cache[value] = found
    return found


def _parse_addresses(value: str) -> list[tuple[str, str]]:
    if _COMPLEX_ADDRESS.search(value) is None:
        fast: list[tuple[str, str]] = []
        for part in value.split(","):
            if not part.strip():
                continue
            match = _SIMPLE_ADDRESS.match(part)
            if match is None:
                break
            if match.group(2):
                fast.append((decode_words(match.group(1)), match.group(2).lower()))
            else:
                fast.append(("", match.group(3).lower()))
        else:
            return fast
    found = []
    for name, address in getaddresses([value]):
        address = address.strip().lower()
        if "@" in address:
            found.append((decode_words(name).strip(), address))
    return found


def first_message_id(value: str | None) -> str | None:
    """The first msg-id of a Message-ID or In-Reply-To value, bracketed (see ``split_ids``)."""
    ids = split_ids(value)
    return ids[0][:998] if ids else None
