"""The held-message, exception and override tables on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from courtesy.store.base import utcnow
from courtesy.store.db import Store
from courtesy.store.held import (
    HeldMessage,
    HeldState,
    RejectOverride,
    add_exceptions,
    add_held,
    claim,
    find_override,
    get_held,
    held_json,
    list_exceptions,
    list_held,
    load_exceptions,
    remember_reject,
    remove_exception,
)

RAW = b"From: anna@example.com\r\nTo: t@example.org\r\nSubject: x\r\n\r\n\xe4\x00\xff binary\r\n"


def _row(**changes: object) -> HeldMessage:
    values: dict[str, object] = dict(
        envelope_from="anna@example.com",
        recipients=["thomas.meier@example.org", "b@example.org"],
        subject="Angebot",
        size=len(RAW),
        content=RAW,
        findings=[{"code": "name.misspelled", "severity": "block", "message": "m"}],
        token_hash="0" * 64,
    )
    values.update(changes)
    return HeldMessage(**values)


def test_held_row_round_trip_keeps_bytes(store: Store):
    with store.session() as session:
        held_id = add_held(session, _row())
    with store.session() as session:
        row = get_held(session, held_id)
        assert row is not None
        assert row.content == RAW
        assert row.state == HeldState.HELD
        assert row.held_at.tzinfo is not None
        line = held_json(row)
        assert set(line) == {"id", "held_at", "from", "to", "subject", "findings"}
        assert line["to"] == ["thomas.meier@example.org", "b@example.org"]
        assert [r.id for r in list_held(session)] == [held_id]


def test_claim_is_won_once(store: Store):
    with store.session() as session:
        held_id = add_held(session, _row())
    with store.session() as session:
        assert claim(session, held_id, HeldState.RELEASING)
    with store.session() as session:
        assert not claim(session, held_id, HeldState.RELEASING)
        assert not claim(session, held_id, HeldState.DISCARDED)
        assert list_held(session) == []


def test_exceptions_add_list_remove(store: Store):
    with store.session() as session:
        added = add_exceptions(
            session,
            [("Thomas.Meier@example.org", "name.misspelled"), ("*", "greeting")],
            "held #1",
        )
        assert added == 2
        assert add_exceptions(session, [("thomas.meier@example.org", "name.misspelled")], "x") == 0
    with store.session() as session:
        exceptions = load_exceptions(session)
        assert exceptions.allows("thomas.meier@example.org", "name.misspelled")
        assert exceptions.allows("anyone@example.org", "greeting.missing")
        assert not exceptions.allows("thomas.meier@example.org", "name.wrong_person")
        rows = list_exceptions(session)
        assert [(r.email, r.code) for r in rows] == [
            ("*", "greeting"),
            ("thomas.meier@example.org", "name.misspelled"),
        ]
        assert remove_exception(session, rows[0].id)
        assert not remove_exception(session, rows[0].id)


def test_override_holds_only_within_its_window(store: Store):
    now = utcnow()
    with store.session() as session:
        for key, expires in (("a" * 64, now + timedelta(minutes=10)), ("b" * 64, now)):
            remember_reject(
                session,
                RejectOverride(
                    key=key, expires_at=expires, envelope_from="anna@example.com", findings=[]
                ),
            )
    with store.session() as session:
        assert find_override(session, "b" * 64, now + timedelta(seconds=1)) is None
        assert find_override(session, "a" * 64, now) is not None
    with store.session() as session:
        again = find_override(session, "a" * 64, now + timedelta(minutes=9))
        assert again is not None and again.used_at is not None
        assert find_override(session, "a" * 64, now + timedelta(minutes=11)) is None
