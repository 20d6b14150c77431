"""The checks inside the running proxy: findings recorded, history used, crashes contained."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from courtesy.checks import registry
from courtesy.checks.registry import CheckFamily
from courtesy.proxy.front import Transaction
from courtesy.proxy.inspect import ChecksInspector, build_inspector
from courtesy.store.contacts import StoreAddressBook
from courtesy.store.db import open_store
from courtesy.store.held import add_exceptions
from courtesy.store.inbound import SeenMessage, folder_state, store_batch
from courtesy.store.outgoing import OutgoingMessage
from tests.conftest import DATA
from tests.servers import ProxyInThread, RecordingUpstream, proxy_config


def send(proxy: ProxyInThread, raw: bytes, rcpts: list[str]) -> None:
    with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
        client.sendmail("anna@sommer-beratung.de", rcpts, raw)


def rows(proxy: ProxyInThread) -> list[OutgoingMessage]:
    proxy.flush_log()
    with proxy.running.store.session() as session:
        return list(session.scalars(select(OutgoingMessage).order_by(OutgoingMessage.id)))


@pytest.fixture
def proxy(tmp_path: Path, upstream: RecordingUpstream) -> Iterator[ProxyInThread]:
    running = ProxyInThread(proxy_config(tmp_path, upstream))
    yield running
    running.stop()


def test_findings_are_recorded_with_the_outgoing_row(
    proxy: ProxyInThread, upstream: RecordingUpstream
):
    raw = (DATA / "names" / "de_misspelled.eml").read_bytes()
    send(proxy, raw, ["thomas.meier@kunde.de"])
    (row,) = rows(proxy)
    assert [f["code"] for f in row.findings] == ["name.misspelled"]
    assert row.findings[0]["suggestion"] == "Meier"
    assert row.subject and row.message_id


def reply_to(message_id: str, cc: str) -> bytes:
    return (
        "From: Anna Sommer <anna@sommer-beratung.de>\r\n"
        "To: Thomas Meier <thomas.meier@kunde.de>\r\n"
        f"Cc: {cc}\r\n"
        "Subject: Re: Angebot\r\n"
        f"In-Reply-To: {message_id}\r\n"
        f"References: {message_id}\r\n"
        "Message-ID: <reply-1@sommer-beratung.de>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hallo Herr Meier,\r\n\r\ngerne, bis Dienstag.\r\n\r\nViele Grüße\r\nAnna Sommer\r\n"
    ).encode()


def test_cc_added_to_thread_uses_the_outgoing_log(
    proxy: ProxyInThread, upstream: RecordingUpstream
):
    first = (
        "From: Anna Sommer <anna@sommer-beratung.de>\r\n"
        "To: Thomas Meier <thomas.meier@kunde.de>\r\n"
        "Cc: Eva Klein <eva.klein@kunde.de>\r\n"
        "Subject: Angebot\r\nMessage-ID: <first-1@sommer-beratung.de>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hallo Herr Meier,\r\n\r\nanbei das Angebot.\r\n\r\nViele Grüße\r\nAnna Sommer\r\n"
    ).encode()
    send(proxy, first, ["thomas.meier@kunde.de", "eva.klein@kunde.de"])
    proxy.flush_log()
    send(
        proxy,
        reply_to("<first-1@sommer-beratung.de>", "Eva Klein <eva.klein@kunde.de>"),
        ["thomas.meier@kunde.de", "eva.klein@kunde.de"],
    )
    send(
        proxy,
        reply_to("<first-1@sommer-beratung.de>", "Boss <chef@kunde.de>"),
        ["thomas.meier@kunde.de", "chef@kunde.de"],
    )
    _, same_people, boss_added = rows(proxy)
    assert same_people.findings == []
    assert [f["code"] for f in boss_added.findings] == ["cc.added_to_thread"]
    assert "Boss" in boss_added.findings[0]["message"]


def test_display_names_are_harvested(proxy: ProxyInThread, upstream: RecordingUpstream):
    send(
        proxy,
        reply_to("<unknown@x>", "Eva Klein <eva.klein@kunde.de>"),
        ["thomas.meier@kunde.de", "eva.klein@kunde.de"],
    )
    proxy.flush_log()
    book = StoreAddressBook(proxy.running.store.sessions)
    contact = book.by_email("eva.klein@kunde.de")
    assert contact is not None and contact.name == "Eva Klein"
    assert str(contact.source) == "header"


def test_a_crashing_check_relays_by_default_and_is_recorded(
    proxy: ProxyInThread, upstream: RecordingUpstream, monkeypatch: pytest.MonkeyPatch
):
    def broken(context: object, settings: object) -> list[object]:
        raise RuntimeError("a bug in a rule")

    families = registry.families()
    family = families["cc"]
    monkeypatch.setitem(
        registry._REGISTRY,
        "cc",
        CheckFamily(family.name, family.codes, family.settings_type, broken),
    )
    raw = (DATA / "names" / "de_exact.eml").read_bytes()
    send(proxy, raw, ["thomas.meier@kunde.de"])
    assert len(upstream.received) == 1
    (row,) = rows(proxy)
    assert row.check_errors == ["cc"]
    assert row.action == "relay"


def test_the_proxy_reads_exceptions_fresh_for_every_message(tmp_path: Path, store_url: str):
    """Its cheap raw read sees what another connection (the CLI, a notice) just added."""
    config = proxy_config(tmp_path, None, store={"url": store_url})
    store = open_store(store_url)
    inspector = build_inspector(config, store)
    assert isinstance(inspector, ChecksInspector)
    try:
        assert not inspector._exceptions().allows("thomas.meier@example.org", "greeting.missing")
        with store.session() as session:
            add_exceptions(session, [("thomas.meier@example.org", "greeting")], "held #1")
        exceptions = inspector._exceptions()
        assert exceptions.allows("thomas.meier@example.org", "greeting.missing")
        assert not exceptions.allows("eva.weber@example.org", "greeting.missing")
        with store.session() as session:
            add_exceptions(session, [("*", "name.misspelled")], "cli")
        assert inspector._exceptions().allows("eva.weber@example.org", "name.misspelled")
    finally:
        inspector.close()
        store.close()


def test_the_author_of_a_stored_list_post_decides_a_list_replys_greeting(
    tmp_path: Path, store_url: str
):
    """A list reply without a quote: the poller's row of the answered post names its author."""
    config = proxy_config(tmp_path, None, store={"url": store_url})
    store = open_store(store_url)
    inspector = build_inspector(config, store)
    assert isinstance(inspector, ChecksInspector)
    raw = (DATA / "names" / "en_list_answer_no_quote.eml").read_bytes()

    def codes(greeting: bytes) -> list[str]:
        transaction = Transaction(
            mail_from="anna@summers.example",
            recipients=("usrp-users@lists.ettus.com",),
            content=raw.replace(b"Hi Martin,", greeting),
            auth_user=None,
            peer="127.0.0.1",
        )
        return [f.code for f in inspector.evaluate(transaction).findings]

    try:
        # Nothing stored yet: any list member may be called Wade.
        assert codes(b"Hi Wade,") == []
        received = datetime(2025, 3, 5, 8, 0, tzinfo=UTC)
        post = SeenMessage(
            uid=1,
            key="<martin-2@courtesy.test>",
            message_id="<martin-2@courtesy.test>",
            from_address="martin@ettus.example",
            from_name="Martin Braun",
            to_addresses=["usrp-users@lists.ettus.com"],
            cc_addresses=[],
            user_role="",
            subject="Re: [USRP-users] X310 clock source",
            date=received,
            received_at=received,
            in_reply_to="<ian-2@courtesy.test>",
            references=["<ian-2@courtesy.test>"],
            own=False,
            exclude_reason="list",
            seen=True,
            answered=False,
        )
        with store.session() as session:
            folder = folder_state(session, "anna@imap.example.test", "INBOX", "watch")
            folder.uidvalidity = 1
            store_batch(session, folder, [post], received)
        assert codes(b"Hi Wade,") == ["name.wrong_person"]
        assert codes(b"Hi Martin,") == []
    finally:
        inspector.close()
        store.close()
