"""The IMAP poller against a real Dovecot: what counts as awaiting an answer, and how it syncs."""

from __future__ import annotations

import asyncio
import queue
import smtplib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from courtesy.checks.model import Address
from courtesy.proxy.cli import main
from courtesy.proxy.config import Config
from courtesy.proxy.imap import (
    FetchedHeaders,
    ImapAuthError,
    ImapCertificateError,
    ImapConnectionError,
    Mailbox,
)
from courtesy.proxy.poller import Poller, PollResult, poll_once, read_message, run_poller
from courtesy.proxy.secrets import SecretError
from courtesy.store.base import utcnow
from courtesy.store.contacts import StoreAddressBook, harvest_display_names
from courtesy.store.db import Store, open_store
from courtesy.store.inbound import (
    InboundLocation,
    InboundMessage,
    awaiting_answer,
    thread_view,
)
from tests.conftest import DATA
from tests.dovecot import PASSWORD, Dovecot, bulk_messages, make_message
from tests.servers import LoopThread, ProxyInThread, RecordingUpstream, proxy_config

INBOUND = DATA / "inbound"
ANNA = "anna@example.test"
RELAY_ALL = {"greeting": "relay", "name": "relay", "cc": "relay", "closing": "relay"}
LATER = timedelta(days=3)  # "now" for awaiting_answer: past unanswered.after


def sample(name: str) -> bytes:
    return (INBOUND / name).read_bytes()


@dataclass
class Account:
    """A fresh IMAP user on the session's Dovecot, with its own config and store."""

    dovecot: Dovecot
    user: str
    config: Config
    store: Store

    def append(
        self, *messages: bytes, folder: str = "INBOX", flags: tuple[bytes, ...] = ()
    ) -> None:
        self.dovecot.append(self.user, messages, folder=folder, flags=flags)

    def poll(self) -> PollResult:
        return poll_once(self.config, self.store, progress=False)

    def messages(self) -> dict[str, InboundMessage]:
        with self.store.session() as session:
            rows = session.scalars(select(InboundMessage)).all()
            return {row.key: row for row in rows}

    def awaiting(self) -> list[str]:
        with self.store.session() as session:
            found = awaiting_answer(session, after=timedelta(days=2), now=utcnow() + LATER)
            return [m.key for m in found]

    def count(self, model: Any) -> int:
        with self.store.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


AccountFactory = Callable[..., Account]


@pytest.fixture
def make_account(tmp_path: Path, dovecot: Dovecot) -> Iterator[AccountFactory]:
    stores: list[Store] = []

    def make(upstream: RecordingUpstream | None = None, **imap: Any) -> Account:
        user = dovecot.new_user()
        settings = dovecot.imap_settings(user, **{"timeout": "10s", **imap})
        config = proxy_config(
            tmp_path, upstream, imap=settings, addresses=[ANNA, user], policy=RELAY_ALL
        )
        store = open_store(config.store_url)
        stores.append(store)
        return Account(dovecot, user, config, store)

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def account(make_account: AccountFactory) -> Account:
    return make_account()


class PollerInThread:
    """``run_poller`` on its own event loop, reporting its events to the test through a queue."""

    def __init__(self, account: Account) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.thread = LoopThread("poller")

        async def make_event() -> asyncio.Event:
            return asyncio.Event()

        self.stop_event = self.thread.call(make_event())
        self.future = asyncio.run_coroutine_threadsafe(
            run_poller(
                account.config,
                account.store,
                self.stop_event,
                observer=lambda event, data: self.events.put((event, data)),
            ),
            self.thread.loop,
        )

    def wait_for(
        self, event: str, predicate: Callable[[Any], bool] = lambda _: True, timeout: float = 20
    ) -> Any:
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event!r} event within {timeout}s; got {seen}")
            try:
                name, data = self.events.get(timeout=left)
            except queue.Empty:
                continue
            seen.append(name)
            if name == event and predicate(data):
                return data

    def close(self) -> None:
        self.thread.loop.call_soon_threadsafe(self.stop_event.set)
        self.future.result(15)
        self.thread.close()


# -- what is recorded, what is excluded ----------------------------------------------------


def test_person_mail_is_awaiting_and_automated_mail_is_excluded_with_reason(account: Account):
    account.append(
        *(
            sample(name)
            for name in (
                "de_person.eml",
                "en_person.eml",
                "en_person_cc.eml",
                "de_list.eml",
                "de_autoreply.eml",
                "en_bounce.eml",
                "en_noreply.eml",
                "en_bulk.eml",
            )
        )
    )
    result = account.poll()
    assert (result.fetched, result.new) == (8, 8)
    rows = account.messages()
    reasons = {key: row.exclude_reason for key, row in rows.items()}
    assert reasons == {
        "<de-person-1@partner.example>": None,
        "<en-person-1@client.example>": None,
        "<en-person-cc-1@client.example>": None,
        "<de-list-1@verband.example>": "list",
        "<de-auto-1@partner.example>": "auto-submitted",
        "<en-bounce-1@mx.example.test>": "bounce",
        "<en-noreply-1@shop.example>": "no-reply",
        "<en-bulk-1@vendor.example>": "bulk",
    }
    person = rows["<de-person-1@partner.example>"]
    assert person.subject == "Rückfrage zum Angebot"
    assert (person.from_address, person.from_name) == (
        "thomas.meier@partner.example",
        "Thomas Meier",
    )
    assert person.user_role == "to" and not person.seen and person.answered_how is None
    cc_only = rows["<en-person-cc-1@client.example>"]
    assert cc_only.user_role == "cc"
    assert cc_only.thread_id == "<en-person-1@client.example>"
    # Direct recipient, from a person, unanswered: oldest first. Cc-only mail is not awaiting.
    assert account.awaiting() == ["<de-person-1@partner.example>", "<en-person-1@client.example>"]
    with account.store.session() as session:
        # Too new yet: unanswered.after has not passed.
        assert awaiting_answer(session, after=timedelta(days=2)) == []
        thread = thread_view(session, ["<en-person-1@client.example>", "<unknown@x>"])
    assert thread.participants == {
        "<en-person-1@client.example>": frozenset(
            {
                "sarah.johnson@client.example",
                "anna@example.test",
                "peter.brown@client.example",
                "lisa.green@client.example",
            }
        )
    }
    assert thread.authors == {
        "<en-person-1@client.example>": Address("sarah.johnson@client.example", "Johnson, Sarah")
    }
    # Display names of person mail feed the address book (harvested, lower trust).
    book = StoreAddressBook(account.store.sessions)
    contact = book.by_email("thomas.meier@partner.example")
    assert contact is not None and contact.family == "Meier"
    assert book.by_email("j.weber@verband.example") is None  # list mail: not harvested


def test_a_date_with_no_utc_time_does_not_stop_the_poll(make_account: AccountFactory):
    """'31 Dec 9999 23:30 -0100' is after the last UTC year a datetime holds.

    A stranger's mail may say so; the message is stored like any other.
    """
    account = make_account()
    account.append(sample("en_date_beyond_9999.eml"), sample("de_person.eml"))
    assert account.poll().new == 2
    assert "<en-date-9999@partner.example>" in account.awaiting()


def test_reply_sent_through_the_proxy_counts_as_answered(
    make_account: AccountFactory, upstream: RecordingUpstream
):
    account = make_account(upstream=upstream)
    account.append(sample("de_person.eml"))
    assert account.poll().new == 1
    assert account.awaiting() == ["<de-person-1@partner.example>"]
    proxy = ProxyInThread(account.config)
    try:
        reply = make_message(
            sender=f"Anna Schmidt <{ANNA}>",
            to="Thomas Meier <thomas.meier@partner.example>",
            subject="Re: Rückfrage zum Angebot",
            body="Hallo Herr Meier,\n\nanbei das Angebot.\n\nViele Grüße\nAnna Schmidt\n",
            message_id="<reply-1@example.test>",
            in_reply_to="<de-person-1@partner.example>",
            references="<de-person-1@partner.example>",
        )
        with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
            assert client.sendmail(ANNA, ["thomas.meier@partner.example"], reply) == {}
        proxy.flush_log()
    finally:
        proxy.stop()
    assert len(upstream.received) == 1
    result = account.poll()
    assert result.fetched == 0 and result.answered == 1
    row = account.messages()["<de-person-1@partner.example>"]
    assert row.answered_how == "proxy" and row.answered_at is not None
    assert account.awaiting() == []


def test_reply_in_sent_folder_answers_it_and_earlier_mail_of_the_thread(account: Account):
    first = make_message(message_id="<q1@partner.example>", subject="Frage")
    second = make_message(
        message_id="<q2@partner.example>",
        subject="Re: Frage",
        in_reply_to="<q1@partner.example>",
        references="<q1@partner.example>",
        date=None,
    )
    other = make_message(message_id="<q3@partner.example>", subject="Andere Frage")
    account.append(first, second, other)
    account.poll()
    assert set(account.awaiting()) == {
        "<q1@partner.example>",
        "<q2@partner.example>",
        "<q3@partner.example>",
    }
    # The user answers only the later message, from another mail program: it lands in Sent.
    reply = make_message(
        sender=f"Anna <{ANNA}>",
        to="thomas.meier@partner.example",
        subject="Re: Frage",
        message_id="<a2@example.test>",
        in_reply_to="<q2@partner.example>",
        references="<q1@partner.example> <q2@partner.example>",
    )
    account.append(reply, folder="Sent", flags=(b"\\Seen",))
    result = account.poll()
    assert "Sent" in result.folders and result.answered == 2
    rows = account.messages()
    assert rows["<q1@partner.example>"].answered_how == "sent"
    assert rows["<q2@partner.example>"].answered_how == "sent"
    assert rows["<a2@example.test>"].own and rows["<a2@example.test>"].exclude_reason == "own"
    assert account.awaiting() == ["<q3@partner.example>"]


@pytest.mark.parametrize("use_condstore", [True, False], ids=["condstore", "flags-sweep"])
def test_answered_flag_counts_and_flag_changes_are_noticed(account: Account, use_condstore: bool):
    account.append(make_message(message_id="<f1@partner.example>"))
    account.append(make_message(message_id="<f2@partner.example>"))
    poller = Poller(account.config, account.store, progress=False)
    assert account.config.imap is not None
    settings = account.config.imap

    def poll() -> PollResult:
        with Mailbox(settings, use_condstore=use_condstore).connect() as mailbox:
            assert mailbox.condstore is use_condstore
            return poller.poll(mailbox)

    poll()
    with account.dovecot.client(account.user) as client:  # the user's mail client
        client.select_folder("INBOX")
        uid = client.search(["HEADER", "Message-ID", "<f1@partner.example>"])[0]
        client.add_flags([uid], [b"\\Answered", b"\\Seen"])
    result = poll()
    assert (result.fetched, result.flag_changes, result.answered) == (0, 1, 1)
    row = account.messages()["<f1@partner.example>"]
    assert row.answered_how == "flag" and row.answered_at is not None
    assert row.seen and row.seen_at is not None
    assert account.awaiting() == ["<f2@partner.example>"]


def test_poller_never_changes_flags(account: Account):
    account.append(*(make_message(subject=f"neu {i}") for i in range(5)))
    account.append(*(make_message(subject=f"gelesen {i}") for i in range(3)), flags=(b"\\Seen",))
    account.append(make_message(subject="x"), flags=(b"\\Flagged", b"\\Answered"))
    account.append(make_message(sender=ANNA), folder="Sent")
    before = account.dovecot.flags(account.user), account.dovecot.flags(account.user, "Sent")
    account.poll()
    account.poll()
    after = account.dovecot.flags(account.user), account.dovecot.flags(account.user, "Sent")
    assert before == after
    assert any(b"\\Recent" in flags for flags in after[0].values())  # not even \Recent is claimed


# -- incremental sync ------------------------------------------------------------------------------


def test_big_folder_syncs_once_and_a_second_poll_fetches_nothing(make_account: AccountFactory):
    account = make_account(batch_size=500)
    account.append(*bulk_messages(5000, "big"))
    began = time.monotonic()
    first = account.poll()
    first_seconds = time.monotonic() - began
    assert (first.fetched, first.new) == (5000, 5000)
    began = time.monotonic()
    second = account.poll()
    second_seconds = time.monotonic() - began
    assert (second.fetched, second.new, second.flag_changes, second.expunged) == (0, 0, 0, 0)
    assert account.count(InboundMessage) == 5000
    assert second_seconds < first_seconds / 5
    account.append(make_message(message_id="<big-new@partner.example>"))
    third = account.poll()
    assert (third.fetched, third.new) == (1, 1)


def test_expunged_message_is_noticed_and_no_longer_awaiting(account: Account):
    account.append(*(make_message(message_id=f"<e{i}@partner.example>") for i in range(3)))
    account.poll()
    with account.dovecot.client(account.user) as client:
        client.select_folder("INBOX")
        uid = client.search(["HEADER", "Message-ID", "<e1@partner.example>"])[0]
        client.delete_messages([uid])
        client.expunge()
    result = account.poll()
    assert result.expunged == 1
    assert account.messages()["<e1@partner.example>"].gone_at is not None
    assert account.awaiting() == ["<e0@partner.example>", "<e2@partner.example>"]


def test_uidvalidity_change_resyncs_without_duplicates(account: Account):
    account.append(*(make_message(message_id=f"<v{i}@partner.example>") for i in range(4)))
    account.poll()
    account.dovecot.doveadm(
        "mailbox", "update", "--uid-validity", "777", "-u", account.user, "INBOX"
    )
    result = account.poll()
    assert result.resynced == ["INBOX"]
    assert (result.fetched, result.new) == (4, 0)
    assert account.count(InboundMessage) == 4
    assert account.count(InboundLocation) == 4
    assert all(row.gone_at is None for row in account.messages().values())
    assert len(account.awaiting()) == 4
    assert account.poll().fetched == 0


def test_server_restart_mid_sync_resumes_without_duplicates(make_account: AccountFactory):
    account = make_account(batch_size=100)
    account.append(*bulk_messages(500, "r"))
    assert account.config.imap is not None
    crashed = []

    def crash_after_two_batches(folder: str, done: int) -> None:
        if done == 200 and not crashed:
            crashed.append(done)
            account.dovecot.stop(kill=True)
            account.dovecot.start()

    poller = Poller(account.config, account.store, progress=False, on_batch=crash_after_two_batches)
    with pytest.raises(ImapConnectionError), Mailbox(account.config.imap).connect() as mailbox:
        poller.poll(mailbox)
    # Committed batch by batch: what was stored before the crash stays.
    stored = account.count(InboundMessage)
    assert stored == 200
    result = account.poll()
    assert (result.fetched, result.new) == (500 - stored, 500 - stored)
    assert account.count(InboundMessage) == 500 and account.count(InboundLocation) == 500


# -- the running poller ---------------------------------------------------------------------------


def test_new_mail_arrives_while_idle_and_the_poller_reconnects(make_account: AccountFactory):
    # A long poll interval: only IDLE can bring the new mail in quickly.
    account = make_account(poll_interval="30m")
    account.append(make_message(message_id="<i0@partner.example>"))
    poller = PollerInThread(account)
    try:
        assert poller.wait_for("pass").new == 1
        poller.wait_for("idle")
        began = time.monotonic()
        account.append(make_message(message_id="<i1@partner.example>"))
        assert poller.wait_for("pass", lambda r: r.new == 1, timeout=10).fetched == 1
        assert time.monotonic() - began < 5
        poller.wait_for("idle")
        # The server goes away while the poller idles, and comes back.
        account.dovecot.stop(kill=True)
        assert isinstance(poller.wait_for("error"), ImapConnectionError)
        account.dovecot.start()
        account.append(make_message(message_id="<i2@partner.example>"))
        poller.wait_for("pass", lambda r: r.new == 1, timeout=20)
    finally:
        poller.close()
    assert set(account.messages()) == {
        "<i0@partner.example>",
        "<i1@partner.example>",
        "<i2@partner.example>",
    }


# -- connection security and errors -----------------------------------------------------------------


def test_implicit_tls_and_starttls_verify_the_certificate(
    make_account: AccountFactory, dovecot: Dovecot
):
    tls = make_account(security="tls", port=dovecot.imaps_port, ca_file=str(dovecot.cert))
    tls.append(sample("de_person.eml"))
    assert tls.poll().new == 1
    starttls = make_account(security="starttls", ca_file=str(dovecot.cert))
    starttls.append(sample("en_person.eml"))
    assert starttls.poll().new == 1
    untrusted = make_account(security="tls", port=dovecot.imaps_port)  # system CAs only
    with pytest.raises(ImapCertificateError, match="did not verify"):
        untrusted.poll()


def test_wrong_password_is_an_auth_error_without_the_password(make_account: AccountFactory):
    account = make_account(password="not-the-password")
    with pytest.raises(ImapAuthError) as caught:
        account.poll()
    assert "not-the-password" not in str(caught.value)


def test_oauth2_token_command_is_used_and_its_failure_explained(make_account: AccountFactory):
    failing = make_account(oauth2_token_command="exit 3")
    with pytest.raises(SecretError, match="oauth2_token_command failed with exit status 3"):
        failing.poll()
    # This Dovecot offers no XOAUTH2: the token is sent and refused like a password.
    refused = make_account(oauth2_token_command="echo token-XYZ")
    with pytest.raises(ImapAuthError) as caught:
        refused.poll()
    assert "token-XYZ" not in str(caught.value)


def test_cli_poll_once(
    make_account: AccountFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    account = make_account()
    account.append(sample("de_person.eml"), sample("de_list.eml"))
    config = tmp_path / "config.toml"
    config.write_text(
        f'addresses = ["{ANNA}"]\n'
        f'[store]\nurl = "{account.config.store_url}"\n'
        f'[imap]\nhost = "127.0.0.1"\nport = {account.dovecot.imap_port}\nsecurity = "none"\n'
        f'username = "{account.user}"\npassword_env = "TEST_IMAP_PW"\n'
    )
    code = main(["poll", "--once", "-c", str(config)])
    out, err = capsys.readouterr()
    assert code == 2 and "TEST_IMAP_PW" in err and err.count("\n") == 1 and "Traceback" not in err
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEST_IMAP_PW", PASSWORD)
        code = main(["poll", "--once", "-c", str(config)])
        out, err = capsys.readouterr()
        assert code == 0 and "2 new" in out
        patch.setenv("TEST_IMAP_PW", "pw-XYZ-123")
        code = main(["poll", "--once", "-c", str(config)])
        out, err = capsys.readouterr()
        assert code == 2 and "refused the login" in err and "pw-XYZ-123" not in err


def test_read_message_takes_bare_ids_and_skips_uninformative_display_names(
    tmp_path: Path,
) -> None:
    """A bare In-Reply-To is still the id it answers; list rewrites and local parts name nobody."""
    header = (
        b'From: "Jerrid Plymale via USRP-users" <usrp-users@lists.example>\r\n'
        b"To: rcarroll <rcarroll@bracepatt.example>, Eva Roth <eva.roth@kunde.example>\r\n"
        b"Subject: Re: B210\r\n"
        b"Message-ID: 4711.0815@lists.example\r\n"
        b"In-Reply-To: 20250303.4711@bracepatt.example\r\n"
        b"References: 20250301.1@bracepatt.example 20250303.4711@bracepatt.example\r\n"
    )
    reading = read_message(
        FetchedHeaders(uid=1, flags=(), internaldate=None, header=header),
        own=frozenset({"me@example.org"}),
    )
    assert reading.message.message_id == "<4711.0815@lists.example>"
    assert reading.message.in_reply_to == "<20250303.4711@bracepatt.example>"
    assert reading.message.references == [
        "<20250301.1@bracepatt.example>",
        "<20250303.4711@bracepatt.example>",
    ]
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with store.session() as session:
            harvest_display_names(session, reading.names)
        book = StoreAddressBook(store.sessions)
        assert book.by_email("usrp-users@lists.example") is None
        assert book.by_email("rcarroll@bracepatt.example") is None
        eva = book.by_email("eva.roth@kunde.example")
        assert eva is not None and (eva.given, eva.family) == ("Eva", "Roth")
    finally:
        store.close()
