"""Inbound tracking in the store, on SQLite and PostgreSQL: rows, answers, queries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from courtesy.checks.model import Address
from courtesy.store.db import Store
from courtesy.store.held import HeldMessage
from courtesy.store.inbound import (
    ImapFolder,
    InboundLocation,
    InboundMessage,
    SeenMessage,
    apply_flags,
    awaiting_answer,
    folder_state,
    ingest_proxy_log,
    remove_locations,
    reset_folder,
    resolve_answered,
    store_batch,
    thread_view,
)
from courtesy.store.outgoing import OutgoingMessage

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ACCOUNT = "anna@imap.example.test"


def seen(uid: int, mid: str, **changes: object) -> SeenMessage:
    base = SeenMessage(
        uid=uid,
        key=mid,
        message_id=mid,
        from_address="thomas.meier@partner.example",
        from_name="Thomas Meier",
        to_addresses=["anna@example.test"],
        cc_addresses=["lisa@partner.example"],
        user_role="to",
        subject="Frage",
        date=T0 + timedelta(minutes=uid),
        received_at=T0 + timedelta(minutes=uid, microseconds=7),
        in_reply_to=None,
        references=[],
        own=False,
        exclude_reason=None,
        seen=False,
        answered=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def put(store: Store, folder_name: str, *messages: SeenMessage, role: str = "watch") -> None:
    with store.session() as session:
        folder = folder_state(session, ACCOUNT, folder_name, role)
        folder.uidvalidity = folder.uidvalidity or 1
        store_batch(session, folder, list(messages), T0)


def row(store: Store, mid: str) -> InboundMessage:
    with store.session() as session:
        return session.scalars(select(InboundMessage).where(InboundMessage.key == mid)).one()


def count(store: Store, model: type) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def resolve(store: Store) -> int:
    with store.session() as session:
        ingest_proxy_log(session)
        return resolve_answered(session)


def waiting(store: Store, now: datetime = T0 + timedelta(days=3)) -> list[str]:
    with store.session() as session:
        return [m.key for m in awaiting_answer(session, after=timedelta(days=2), now=now)]


def test_round_trip_keeps_time_zones_json_and_flags(store: Store):
    put(store, "INBOX", seen(1, "<a@x>", seen=True, subject="Grüße"))
    got = row(store, "<a@x>")
    assert got.received_at == T0 + timedelta(minutes=1, microseconds=7)
    assert got.received_at.tzinfo is not None
    assert got.to_addresses == ["anna@example.test"] and got.seen is True
    assert got.subject == "Grüße" and got.excluded is False and got.answered_how is None
    with store.session() as session:
        folder = session.scalars(select(ImapFolder)).one()
        assert folder.last_uid == 1


def test_a_message_is_one_row_whatever_folder_or_uidvalidity(store: Store):
    put(store, "INBOX", seen(1, "<a@x>"), seen(2, "<b@x>"))
    put(store, "Projekte", seen(7, "<a@x>"))  # a copy in another watched folder
    assert count(store, InboundMessage) == 2 and count(store, InboundLocation) == 3
    with store.session() as session:
        inbox = folder_state(session, ACCOUNT, "INBOX", "watch")
        assert reset_folder(session, inbox, 99, T0) == 2
    assert row(store, "<b@x>").gone_at is not None  # until the re-sync finds it again
    assert row(store, "<a@x>").gone_at is None  # still in Projekte
    put(store, "INBOX", seen(1, "<a@x>"), seen(2, "<b@x>"))
    assert count(store, InboundMessage) == 2 and row(store, "<b@x>").gone_at is None
    with store.session() as session:
        inbox = folder_state(session, ACCOUNT, "INBOX", "watch")
        assert remove_locations(session, inbox, [2], T0) == 1
    assert row(store, "<b@x>").gone_at is not None
    assert waiting(store) == ["<a@x>"]


def test_awaiting_needs_a_person_a_direct_recipient_and_time(store: Store):
    put(
        store,
        "INBOX",
        seen(1, "<person@x>"),
        seen(2, "<cc@x>", user_role="cc"),
        seen(3, "<list@x>", exclude_reason="list"),
        seen(4, "<mine@x>", own=True, exclude_reason="own"),
        seen(5, "<new@x>", received_at=T0 + timedelta(days=2, hours=1)),
    )
    assert waiting(store) == ["<person@x>"]
    assert waiting(store, now=T0 + timedelta(days=5)) == ["<person@x>", "<new@x>"]


def test_reply_in_the_proxy_log_answers_it_and_only_mail_that_left_counts(store: Store):
    put(store, "INBOX", seen(1, "<q1@x>"), seen(2, "<q2@x>"), seen(3, "<q3@x>"))
    sent_at = T0 + timedelta(hours=5)
    with store.session() as session:
        for action, parent, mid in (
            ("relay", "<q1@x>", "<r1@a>"),
            ("reject", "<q2@x>", "<r2@a>"),
            ("hold", "<q3@x>", "<r3@a>"),
        ):
            session.add(
                OutgoingMessage(
                    created_at=sent_at,
                    message_id=mid,
                    in_reply_to=parent,
                    references=parent,
                    envelope_from="anna@example.test",
                    recipients=["thomas.meier@partner.example"],
                    to_addresses=["thomas.meier@partner.example"],
                    cc_addresses=["neu@partner.example"],
                    action=action,
                )
            )
    assert resolve(store) == 1
    answered = row(store, "<q1@x>")
    assert (answered.answered_how, answered.answered_at) == ("proxy", sent_at)
    assert waiting(store) == ["<q2@x>", "<q3@x>"]
    # The held reply is released later: now it counts.
    with store.session() as session:
        session.add(
            HeldMessage(
                envelope_from="anna@example.test",
                recipients=["thomas.meier@partner.example"],
                message_id="<r3@a>",
                state="released",
            )
        )
    assert resolve(store) == 1
    assert waiting(store) == ["<q2@x>"]
    with store.session() as session:
        thread = thread_view(session, ["<q1@x>", "<r1@a>"])
    people = thread.participants
    assert people["<q1@x>"] == {
        "thomas.meier@partner.example",
        "anna@example.test",
        "lisa@partner.example",
    }
    assert people["<r1@a>"] == {
        "anna@example.test",
        "thomas.meier@partner.example",
        "neu@partner.example",
    }
    # The reply in the proxy log is the user's own: a participant list, no author.
    assert thread.authors == {
        "<q1@x>": Address(email="thomas.meier@partner.example", name="Thomas Meier")
    }


def test_the_thread_knows_who_wrote_a_stored_message(store: Store):
    put(
        store,
        "INBOX",
        seen(1, "<p1@x>"),
        # A list post (excluded from awaiting an answer), rewritten by the list.
        seen(
            2,
            "<l1@x>",
            from_address="usrp-users@lists.ettus.com",
            from_name="Martin Braun via USRP-users",
            exclude_reason="list",
        ),
        seen(3, "<n1@x>", from_address="martin.braun@ettus.example", from_name=None),
    )
    # The user's own message (found in Sent): no author to greet.
    put(
        store,
        "Sent",
        seen(1, "<s1@a>", from_address="anna@example.test", own=True, exclude_reason="own"),
        role="sent",
    )
    with store.session() as session:
        thread = thread_view(session, ["<p1@x>", "<l1@x>", "<n1@x>", "<s1@a>", "<unknown@x>"])
    assert thread.authors == {
        "<p1@x>": Address(email="thomas.meier@partner.example", name="Thomas Meier"),
        "<l1@x>": Address(email="usrp-users@lists.ettus.com", name="Martin Braun via USRP-users"),
        "<n1@x>": Address(email="martin.braun@ettus.example"),
    }
    assert set(thread.participants) == {"<p1@x>", "<l1@x>", "<n1@x>", "<s1@a>"}
    assert thread.authors_of(["<n1@x>", "<unknown@x>", "<p1@x>"]) == (
        Address(email="martin.braun@ettus.example"),
        Address(email="thomas.meier@partner.example", name="Thomas Meier"),
    )


def test_a_reply_to_a_later_message_of_the_thread_answers_the_earlier_ones(store: Store):
    put(
        store,
        "INBOX",
        seen(1, "<t1@x>"),
        seen(2, "<t2@x>", in_reply_to="<t1@x>", references=["<t1@x>"]),
        seen(3, "<t3@x>", in_reply_to="<t2@x>", references=["<t1@x>", "<t2@x>"]),
    )
    # The user's answer (from the Sent folder) names only t2 and has lost References.
    put(
        store,
        "Sent",
        seen(1, "<s1@a>", own=True, exclude_reason="own", in_reply_to="<t2@x>", user_role=""),
        role="sent",
    )
    assert resolve(store) == 2
    assert row(store, "<t1@x>").answered_how == "sent"
    assert row(store, "<t2@x>").answered_how == "sent"
    assert row(store, "<t3@x>").answered_how is None  # came after the message answered
    assert waiting(store) == ["<t3@x>"]


def test_the_answered_flag_counts_when_no_reply_is_known_and_the_earliest_answer_wins(
    store: Store,
):
    put(store, "INBOX", seen(1, "<f1@x>"), seen(2, "<f2@x>", answered=True))
    with store.session() as session:
        inbox = folder_state(session, ACCOUNT, "INBOX", "watch")
        inbox.initial_done = True
        apply_flags(session, inbox, {1: (True, True)}, T0 + timedelta(days=1))
    assert resolve(store) == 2
    first = row(store, "<f1@x>")
    assert (first.answered_how, first.answered_at) == ("flag", T0 + timedelta(days=1))
    assert first.seen_at == T0 + timedelta(days=1)
    # Already flagged at the first sync: answered, but when is unknown.
    second = row(store, "<f2@x>")
    assert (second.answered_how, second.answered_at) == ("flag", None)
    # A reply in Sent gives the time.
    put(
        store,
        "Sent",
        seen(9, "<s2@a>", own=True, exclude_reason="own", in_reply_to="<f2@x>"),
        role="sent",
    )
    assert resolve(store) == 1
    second = row(store, "<f2@x>")
    assert (second.answered_how, second.answered_at) == ("sent", T0 + timedelta(minutes=9))
