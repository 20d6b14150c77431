"""Parse an outgoing message once into :class:`~courtesy.checks.model.OutgoingMessage`.

Parser choice: the stdlib ``email`` package with the ``compat32`` policy and
our own header decoding. Measured on a 5 KB message (p50): compat32 ≈ 0.15 ms,
mail-parser ≈ 0.85 ms (it runs compat32 itself and then much more),
``policy.default`` ≈ 2.1 ms (its header registry). The checks' budget is a
multiple of the stdlib parse time, so the parse must not eat it.

Nothing in here raises on malformed MIME, unknown charsets or binary junk:
text is decoded with replacement. Only bytes that are clearly not a mail
message (no header block at all) raise :class:`NotAMessage`.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from email.header import decode_header
from email.message import Message
from email.parser import Parser
from email.policy import compat32
from email.utils import getaddresses
from functools import lru_cache

from courtesy.checks.model import Address, OutgoingMessage
from courtesy.checks.newtext import read_body
from courtesy.checks.quoted import quoted_authors

_MAX_PARTS = 200
# An address header is read up to this many characters and this many addresses:
# enough for any cc check, while 100,000 addresses in To took seconds to parse
# and as long again in the name checks (tests/data/hostile/recipients_100000.eml).
_MAX_ADDRESS_TEXT = 64 * 1024
_MAX_ADDRESSES = 1000
_HEADER_FIELD_RE = re.compile(rb"[!-9;-~]{1,76}[ \t]*:")
_MSGID_RE = re.compile(r"<[^<>\s]{1,998}>")
# A msg-id some clients write without its angle brackets ("In-Reply-To:
# 1234.5678@host"): id-left "@" id-right, no spaces, brackets or quotes.
_BARE_MSGID_RE = re.compile(r"[^<>\s()\",;@]{1,500}@[^<>\s()\",;@]{1,496}")
_COMMENT_RE = re.compile(r"\([^()]*\)")
_ENCODED_WORD_RE = re.compile(r"=\?[^?\s]{1,40}\?[bBqQ]\?")
_BOUNDARY_RE = re.compile(rb"boundary\s*=", re.IGNORECASE)
# A header field line as the feed parser takes it: a name of printable ASCII
# other than ":" (not empty), then ":".
_FIELD_NAME_RE = re.compile(r"[!-9;-~]+:")
# The end of the header block: a blank line, split right after a "\n" (always a
# line boundary, so both halves break into the same lines as the whole).
_HEADER_END_RE = re.compile(r"\n\r?\n")
_NESTED = frozenset(("multipart", "message"))


class NotAMessage(ValueError):
    """The bytes are not a mail message (no header block)."""


def _looks_like_message(raw: bytes) -> bool:
    head = raw.lstrip(b"\r\n")[:1000]
    if head.startswith(b"From "):  # mbox "From " line
        head = head.partition(b"\n")[2]
    first = head.split(b"\n", 1)[0]
    return _HEADER_FIELD_RE.match(first) is not None


def _too_many_containers(raw: bytes) -> bool:
    """More multipart boundaries than parts we would read: MIME nested or stacked absurdly.

    The stdlib parser checks every line against every open boundary (quadratic
    in the nesting depth) and recurses once per level; a thousand levels took
    two seconds and then exhausted the recursion limit.
    """
    found = _BOUNDARY_RE.finditer(raw)
    return sum(1 for _ in zip(found, range(_MAX_PARTS + 1), strict=False)) > _MAX_PARTS


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        return codecs.lookup(charset.strip().strip('"').lower()).name
    except (LookupError, ValueError):
        return None


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes to text: the declared charset, else UTF-8, else Windows-1252."""
    name = _codec(charset)
    if name is not None:
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(name or "cp1252", errors="replace")


def _unsurrogate(value: str) -> str:
    """Raw 8-bit header bytes (kept as surrogates by compat32) as text."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return _decode_bytes(value.encode("ascii", "surrogateescape"), None)


def decode_header_value(value: object) -> str:
    """A header value as readable text: RFC 2047 words decoded, never raising."""
    text = _unsurrogate(str(value))
    if "=?" not in text or _ENCODED_WORD_RE.search(text) is None:
        return " ".join(text.split())
    try:
        parts = decode_header(text)
    except Exception:  # malformed encoded words: show them as written
        return " ".join(text.split())
    out: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            out.append(_decode_bytes(chunk, charset))
        else:
            out.append(chunk)
    return " ".join("".join(out).split())


def _addresses(values: Sequence[str]) -> tuple[Address, ...]:
    raw: list[str] = []
    budget = _MAX_ADDRESS_TEXT
    for value in values:
        if budget <= 0:
            break
        if len(value) > budget:
            # Cut after the last complete address that fits (a comma), not inside one.
            value = value[: value.rfind(",", 0, budget) + 1 or budget]
        raw.append(_unsurrogate(value))
        budget -= len(value)
    if sum(len(value) for value in raw) <= 2048:
        return _cached_address_list(tuple(raw))
    return _parse_address_list(tuple(raw))


@lru_cache(maxsize=4096)
def _cached_address_list(raw: tuple[str, ...]) -> tuple[Address, ...]:
    """Short address headers are cached: the same correspondents recur in every mail."""
    return _parse_address_list(raw)


def _parse_address_list(raw: tuple[str, ...]) -> tuple[Address, ...]:
    try:
        pairs = getaddresses(list(raw))
    except Exception:
        return ()
    result: list[Address] = []
    for name, email in pairs:
        email = email.strip()
        if not email or "@" not in email:
            continue
        result.append(Address(email=email, name=decode_header_value(name).strip().strip('"')))
        if len(result) >= _MAX_ADDRESSES:
            break
    return tuple(result)


def split_ids(text: str | None) -> list[str]:
    """The msg-ids in a Message-ID, In-Reply-To or References value, with brackets.

    A value without any ``<…>`` is read as bare ids (some clients write
    ``In-Reply-To: 1234.5678@host``): each ``left@right`` word is one,
    bracketed so it matches the Message-ID it answers; comments and words
    without "@" are not ids.
    """
    if not text:
        return []
    if "<" in text:
        return _MSGID_RE.findall(text)
    return [f"<{m}>" for m in _BARE_MSGID_RE.findall(_COMMENT_RE.sub(" ", text))]


# A Content-Type value up to this long has its reading cached (_content_type, _charset).
_MAX_CACHED_TYPE = 1000


def _content_type(part: Message) -> str:
    """``part.get_content_type()``, read once per Content-Type value."""
    value = part.get("content-type")
    if isinstance(value, str) and len(value) <= _MAX_CACHED_TYPE:
        # A value present decides the type alone (the default type only stands
        # in for a missing one).
        return _cached_type(value)
    return part.get_content_type()


def _charset(part: Message) -> str | None:
    """``part.get_content_charset()``, read once per Content-Type value."""
    value = part.get("content-type")
    if isinstance(value, str) and len(value) <= _MAX_CACHED_TYPE:
        return _cached_charset(value)
    return part.get_content_charset()


def _probe(value: str) -> Message:
    """A message with only this Content-Type: the same readings as any part with it.

    ``get_content_type`` and ``get_content_charset`` read nothing but
    ``get("content-type")``, which returns a str value as it was stored.
    """
    probe = Message(policy=compat32)
    probe["Content-Type"] = value
    return probe


@lru_cache(maxsize=256)
def _cached_type(value: str) -> str:
    return _probe(value).get_content_type()


@lru_cache(maxsize=256)
def _cached_charset(value: str) -> str | None:
    return _probe(value).get_content_charset()


def _payload_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        return _decode_bytes(payload, _charset(part))
    raw = part.get_payload()
    return _unsurrogate(raw) if isinstance(raw, str) else ""


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("content-disposition", "")).split(";", 1)[0].strip().lower()
    return disposition == "attachment"


def _bodies(msg: Message) -> tuple[str, str, tuple[str, ...]]:
    """The first inline text/plain and text/html bodies, and every part's type."""
    plain = ""
    html = ""
    types: list[str] = []
    for count, part in enumerate(msg.walk()):
        if count >= _MAX_PARTS:
            break
        ctype = _content_type(part)
        types.append(ctype)
        if part.is_multipart() or _is_attachment(part):
            continue
        if ctype == "text/plain" and not plain:
            plain = _payload_text(part)
        elif ctype == "text/html" and not html:
            html = _payload_text(part)
    return plain, html, tuple(types)


def _empty_payload(msg: Message) -> bool:
    try:  # get_payload() decodes 8-bit text with the charset parameter, whatever it holds
        return msg.get_payload() == ""
    except Exception:
        return False


def _header_block_message(fields: list[list[str]]) -> Message:
    """What the feed parser makes of a simple header block (see _simple_headers)."""
    msg = Message(policy=compat32)
    for lines in fields:
        msg.set_raw(*compat32.header_source_parse(lines))
    msg.set_payload("")
    return msg


def _simple_headers(block: str) -> list[list[str]] | None:
    """The lines of each header field in ``block``, or None when the feed parser must read it.

    Simple is the usual block: lines end in CRLF or LF (no lone CR), every line
    is a field ("Name: value", the name in printable ASCII without ":") or
    continues one (starts with a blank), and the blank line ends it. The feed
    parser then stores each field as compat32's ``header_source_parse`` of its
    lines, with no defects and an empty payload. A "From " line, a first line
    that continues nothing, a line without a field name and the like go to the
    feed parser.
    """
    if "\r" in block and block.count("\r") != block.count("\r\n"):
        return None
    pieces = block.split("\n")
    # The block ends in "\n", "\r\n" or "\n\n": the last piece is empty, the one
    # before it the blank line that ends the block.
    if len(pieces) < 3 or pieces[-1] or pieces[-2] not in ("", "\r"):
        return None
    fields: list[list[str]] = []
    for piece in pieces[:-2]:
        line = piece + "\n"
        if piece[:1] in (" ", "\t"):
            if not fields:
                return None
            fields[-1].append(line)
        elif piece.startswith("From ") or _FIELD_NAME_RE.match(piece) is None:
            return None
        else:
            fields.append([line])
    return fields


def _parse(raw: bytes) -> Message:
    """``raw`` as a compat32 :class:`Message`.

    A single-part message (the usual case) has its header block parsed alone and
    the rest set as its payload: exactly what the feed parser makes of it, without
    walking the body line by line (half of the parse time of a 4 KB message). A
    simple header block (_simple_headers) is read without the feed parser too.
    """
    text = raw.decode("ascii", errors="surrogateescape")  # as BytesParser does
    end = _HEADER_END_RE.search(text)
    if end is not None:
        block = text[: end.end()]
        fields = _simple_headers(block)
        if fields is not None:
            msg = _header_block_message(fields)
            empty = True
        else:
            msg = Parser(policy=compat32).parsestr(block, headersonly=True)
            empty = _empty_payload(msg)
        # The header block ended at that blank line (nothing of the body in this
        # half), and the type is not multipart or message/*: the payload is then
        # every line after it, joined as they came.
        if empty and _content_type(msg).split("/")[0] not in _NESTED:
            msg.set_payload(text[end.end() :])
            return msg
    # What BytesParser.parsebytes does after decoding ``raw`` as above.
    parser = Parser(policy=compat32)
    try:
        # Absurd MIME structure (tests/data/hostile/nested_1000.eml): the headers only.
        return parser.parsestr(text, headersonly=_too_many_containers(raw))
    except RecursionError:
        return parser.parsestr(text, headersonly=True)


def parse_message(
    raw: bytes,
    envelope_from: str | None = None,
    envelope_recipients: Sequence[str] | None = None,
) -> OutgoingMessage:
    """Parse ``raw`` once: headers, recipients, body text and the new text.

    ``bcc`` holds the envelope recipients that appear in neither To nor Cc;
    ``quoted_authors`` who wrote the quoted messages, from their quote headers.
    """
    if not _looks_like_message(raw):
        raise NotAMessage("not a mail message: no header block")
    msg = _parse(raw)

    headers: dict[str, list[str]] = {}
    raw_headers: dict[str, list[str]] = {}
    # raw_items(): 8-bit header bytes stay as surrogates, decoded below as UTF-8/1252.
    for key, value in msg.raw_items():
        raw_headers.setdefault(key.lower(), []).append(str(value))
        headers.setdefault(key.lower(), []).append(decode_header_value(value))

    def _all(name: str) -> list[str]:
        return raw_headers.get(name, [])

    senders = _addresses(_all("from"))
    sender = senders[0] if senders else None
    if sender is None and envelope_from:
        sender = Address(email=envelope_from)
    to = _addresses(_all("to"))
    cc = _addresses(_all("cc"))
    visible = {a.email.lower() for a in to + cc}
    bcc: list[Address] = []
    for rcpt in envelope_recipients or ():
        if rcpt.lower() not in visible:
            visible.add(rcpt.lower())
            bcc.append(Address(email=rcpt))

    message_ids = split_ids(" ".join(headers.get("message-id", [])))
    try:
        plain, html, types = _bodies(msg)
    except RecursionError:  # walk() recurses once per nesting level
        plain, html, types = "", "", (msg.get_content_type(),)
    parts, body_text = read_body(plain, html)

    return OutgoingMessage(
        raw_size=len(raw),
        sender=sender,
        to=to,
        cc=cc,
        bcc=tuple(bcc),
        subject=(headers.get("subject") or [""])[0],
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=tuple(split_ids(" ".join(headers.get("in-reply-to", [])))),
        references=tuple(split_ids(" ".join(headers.get("references", [])))),
        content_type=types[0],  # msg.get_content_type(): walk() starts at msg
        headers={k: tuple(v) for k, v in headers.items()},
        body_text=body_text,
        new_text=parts.text,
        signature=parts.signature,
        quoted_text=parts.quoted,
        part_types=types,
        quoted_authors=quoted_authors(parts.quoted) if parts.quoted else (),
    )
