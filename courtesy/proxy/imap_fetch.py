"""A fast reader for the one FETCH response shape the poller asks for.

imapclient's general response parser (a lexer over every byte, typed atoms,
dates through ``email.utils``) cost about 120 µs a message in a first sync,
more than the poller's own work on the message together
(``bench/imap_sync.py``). The poller always asks for the same three items —
UID, FLAGS, INTERNALDATE and one header literal — so this module reads
exactly that shape with a few regular expressions. Anything else (another
item, a quoted instead of a literal header, an unsolicited response without
the header, a date it cannot read) makes :func:`parse_header_fetch` return
``None`` and the caller hands the same raw response to imapclient's parser,
which stays the reference: a property test checks both agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from courtesy.proxy.headers import MONTHS, utc_time

# "<seq> (<items> BODY[HEADER.FIELDS (...)] {<n>}", the part imaplib hands over
# together with the literal.
_HEAD = re.compile(
    rb"(\d+) \(((?:[A-Z.\-]+ (?:\d+|\([^()\"{}]*\)|\"[^\"\\]*\") )*)"
    rb"BODY\[HEADER\.FIELDS \([^()\]]*\)\] \{(\d+)\}",
    re.IGNORECASE,
)
_ITEM = re.compile(rb"([A-Z.\-]+) (\d+|\([^()\"{}]*\)|\"[^\"\\]*\") ", re.IGNORECASE)
# date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
_DATE_TIME = re.compile(
    rb"\"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\""
)


class FetchedHeaders:
    """One message's fetched header fields, flags and INTERNALDATE (UTC), as the poller reads them.

    FLAGS stay the tuple the server sent; the poller only tests membership.
    """

    __slots__ = ("flags", "header", "internaldate", "uid")

    def __init__(
        self, uid: int, flags: tuple[bytes, ...], internaldate: datetime | None, header: bytes
    ) -> None:
        self.uid = uid
        self.flags = flags
        self.internaldate = internaldate
        self.header = header


def _date_time(value: bytes) -> datetime | None:
    """An IMAP INTERNALDATE in UTC, or None when it is not the RFC 3501 form."""
    found = _DATE_TIME.fullmatch(value)
    if found is None:
        return None
    day, month, year, hour, minute, second, sign, zh, zm = found.groups()
    number = MONTHS.get(month.decode("ascii").lower())  # three ASCII letters
    if number is None:
        return None
    offset = int(zh) * 60 + int(zm)
    return utc_time(
        int(year),
        number,
        int(day),
        int(hour),
        int(minute),
        int(second),
        -offset if sign == b"-" else offset,
    )


def parse_header_fetch(data: Sequence[object]) -> dict[int, FetchedHeaders] | None:
    """Read ``UID FETCH (BODY.PEEK[HEADER.FIELDS (...)] FLAGS INTERNALDATE)`` answers.

    ``data`` is the untagged FETCH data as imaplib returns it: for each
    message a ``(prefix, literal)`` tuple followed by ``b")"``. Returns the
    messages by UID, or None when any part has another shape.
    """
    found: dict[int, FetchedHeaders] = {}
    count = len(data)
    index = 0
    while index < count:
        part = data[index]
        if type(part) is not tuple or len(part) != 2 or index + 1 >= count:
            return None
        if data[index + 1] != b")":
            return None
        prefix, literal = part
        if type(prefix) is not bytes or type(literal) is not bytes:
            return None
        head = _HEAD.fullmatch(prefix)
        if head is None or int(head.group(3)) != len(literal):
            return None
        uid = None
        flags: tuple[bytes, ...] = ()
        internaldate = None
        for name, value in _ITEM.findall(head.group(2)):
            key = name.upper()
            if key == b"UID":
                if not value.isdigit():
                    return None
                uid = int(value)
            elif key == b"FLAGS":
                if value[:1] != b"(":
                    return None
                flags = tuple(value[1:-1].split())
            elif key == b"INTERNALDATE":
                internaldate = _date_time(value)
                if internaldate is None:
                    return None
            elif key != b"MODSEQ":
                return None
        if uid is None:
            return None
        found[uid] = FetchedHeaders(uid, flags, internaldate, literal)
        index += 2
    return found
