"""The fast FETCH reader agrees with imapclient's parser, and hands every other shape back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from imapclient.response_parser import parse_fetch_response

from courtesy.proxy.imap import _HEADER_ITEM, _HEADER_KEY, Mailbox, _utc_or_none
from courtesy.proxy.imap_fetch import FetchedHeaders, parse_header_fetch
from tests.dovecot import Dovecot, make_message
from tests.servers import proxy_config

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
FIELDS = b"BODY[HEADER.FIELDS (FROM TO SUBJECT)]"

flag_names = st.sampled_from(
    [b"\\Seen", b"\\Answered", b"\\Flagged", b"\\Recent", b"$Forwarded", b"NonJunk", b"$label1"]
)


@st.composite
def internaldates(draw: st.DrawFn) -> bytes:
    day = draw(st.integers(1, 28))
    day_text = f"{day:2d}" if draw(st.booleans()) else f"{day:02d}"
    month = draw(st.sampled_from(MONTHS))
    year = draw(st.integers(1971, 2099))
    hour, minute, second = (
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )
    sign = draw(st.sampled_from("+-"))
    zone = f"{draw(st.integers(0, 14)):02d}{draw(st.sampled_from([0, 30, 45])):02d}"
    return f'"{day_text}-{month}-{year} {hour:02d}:{minute:02d}:{second:02d} {sign}{zone}"'.encode()


@st.composite
def fetch_responses(draw: st.DrawFn) -> list[object]:
    """imaplib's untagged FETCH data for a few messages, items in any order."""
    data: list[object] = []
    uids = draw(st.lists(st.integers(1, 10**9), min_size=1, max_size=5, unique=True))
    for seq, uid in enumerate(uids, 1):
        flags = draw(st.lists(flag_names, unique=True, max_size=4))
        items = [
            b"UID " + str(uid).encode(),
            b"FLAGS (" + b" ".join(flags) + b")",
            b"INTERNALDATE " + draw(internaldates()),
        ]
        if draw(st.booleans()):
            items.append(b"MODSEQ (" + str(draw(st.integers(1, 2**40))).encode() + b")")
        items = draw(st.permutations(items))
        header = draw(st.binary(max_size=300))
        prefix = f"{seq} (".encode() + b" ".join(items) + b" " + FIELDS + b" {%d}" % len(header)
        data += [(prefix, header), b")"]
    return data


def reference(data: list[object]) -> dict[int, tuple[Any, ...]]:
    """What the poller made of imapclient's parse before the fast reader existed."""
    out = {}
    for uid, fields in parse_fetch_response(data, False, True).items():
        when = fields[b"INTERNALDATE"].astimezone(UTC)
        out[uid] = (frozenset(fields[b"FLAGS"]), when, fields[FIELDS])
    return out


def plain(found: dict[int, FetchedHeaders]) -> dict[int, tuple[Any, ...]]:
    return {
        uid: (frozenset(items.flags), items.internaldate, items.header)
        for uid, items in found.items()
    }


@settings(max_examples=300, deadline=None)
@given(fetch_responses())
def test_fast_reader_agrees_with_imapclient(data: list[object]) -> None:
    found = parse_header_fetch(data)
    assert found is not None
    assert plain(found) == reference(data)
    assert all(items.internaldate.tzinfo is UTC for items in found.values())  # type: ignore[union-attr]


def test_reads_dovecots_answer_with_an_offset() -> None:
    data: list[object] = [
        (
            b'7 (UID 42 MODSEQ (12) FLAGS (\\Seen $Forwarded) INTERNALDATE " 3-Mar-2026 23:30:00 -0130" '
            + FIELDS
            + b" {9}",
            b"From: a\r\n",
        ),
        b")",
    ]
    found = parse_header_fetch(data)
    assert found is not None and list(found) == [42]
    items = found[42]
    assert items.flags == (b"\\Seen", b"$Forwarded")
    assert items.internaldate == datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
    assert items.header == b"From: a\r\n"


GOOD_PREFIX = b'1 (UID 5 FLAGS () INTERNALDATE "01-Jan-2026 10:00:00 +0000" ' + FIELDS + b" {3}"


def test_other_shapes_are_handed_back() -> None:
    """Each of these must go to imapclient's parser, never be half-read."""
    cases: list[list[object]] = [
        [None],  # no FETCH response at all
        [b"1 (UID 5 FLAGS (\\Seen))"],  # unsolicited flag update, no header
        [(GOOD_PREFIX, b"abc")],  # closing parenthesis missing
        [(GOOD_PREFIX, b"abc"), b" X-GM-LABELS ())"],  # items after the literal
        [(GOOD_PREFIX, b"abcd"), b")"],  # literal length differs from {3}
        [(GOOD_PREFIX.replace(b"UID 5 ", b""), b"abc"), b")"],  # no UID
        [(GOOD_PREFIX.replace(b"FLAGS ()", b"X-GM-THRID 123"), b"abc"), b")"],  # unknown item
        [(GOOD_PREFIX.replace(b"Jan", b"Foo"), b"abc"), b")"],  # unreadable date
        [(GOOD_PREFIX.replace(b"01-Jan", b"31-Feb"), b"abc"), b")"],  # impossible date
        [
            (
                GOOD_PREFIX.replace(b"01-Jan-2026 10:00:00 +0000", b"31-Dec-9999 23:30:00 -0100"),
                b"abc",
            ),
            b")",
        ],
        [(GOOD_PREFIX.replace(b"INTERNALDATE", b"INTERNALDATE NIL X"), b"abc"), b")"],
        [(b'1 (UID 5 BODY[HEADER.FIELDS (FROM)] "quoted"', b""), b")"],
    ]
    for data in cases:
        assert parse_header_fetch(data) is None, data


def test_an_internaldate_out_of_range_in_utc_is_unknown_not_a_crash() -> None:
    """The end of year 9999 west of UTC has no UTC time: the poller uses the Date header."""
    prefix = GOOD_PREFIX.replace(b"01-Jan-2026 10:00:00 +0000", b"31-Dec-9999 23:30:00 -0100")
    parsed = parse_fetch_response([(prefix, b"abc"), b")"], False, True)
    assert _utc_or_none(parsed[5][b"INTERNALDATE"]) is None
    assert _utc_or_none(datetime(2026, 1, 1, 10, 0)) == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def test_mailbox_reads_like_imapclient(tmp_path: Path, dovecot: Dovecot) -> None:
    """Against Dovecot: the poller's fetch and imapclient's fetch see the same messages."""
    user = dovecot.new_user()
    messages = [
        make_message(
            message_id=f"<m{i}@partner.example>",
            subject=f"Ünïcode {i}",
            sender="Jürgen Weiß <j@x.example>",
        )
        for i in range(30)
    ]
    dovecot.append(user, messages[:10], flags=(b"\\Seen",))
    dovecot.append(user, messages[10:], flags=(b"\\Answered", b"$Forwarded"))
    config = proxy_config(tmp_path, None, imap=dovecot.imap_settings(user))
    with dovecot.client(user) as client:
        client.normalise_times = False
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        expected = client.fetch(uids, [_HEADER_ITEM, "FLAGS", "INTERNALDATE"])
    assert config.imap is not None
    with Mailbox(config.imap).connect() as mailbox:
        assert mailbox.condstore  # Dovecot then adds MODSEQ to every FETCH answer
        mailbox.examine_folder("INBOX")
        got = {f.uid: f for f in mailbox.fetch_headers([*uids, 999])}  # 999: no such UID
    assert sorted(got) == sorted(expected) and len(got) == 30
    for uid, fields in expected.items():
        assert frozenset(got[uid].flags) == frozenset(fields[b"FLAGS"])
        assert got[uid].header == fields[_HEADER_KEY]
        assert got[uid].internaldate == fields[b"INTERNALDATE"].astimezone(UTC)
    assert {frozenset(f.flags) - {b"\\Recent"} for f in got.values()} == {
        frozenset({b"\\Seen"}),
        frozenset({b"\\Answered", b"$Forwarded"}),
    }
