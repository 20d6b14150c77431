"""Holding end to end: real clients -> the proxy -> the store, notices and releases upstream."""

from __future__ import annotations

import contextlib
import email
import io
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from courtesy.checks.model import Finding, Severity
from courtesy.proxy.cli import main as cli_main
from courtesy.proxy.config import load_config
from courtesy.proxy.front import Transaction, Verdict
from courtesy.store.base import utcnow
from courtesy.store.held import HeldMessage
from courtesy.store.outgoing import OutgoingMessage
from tests.conftest import DATA, require_tool
from tests.servers import (
    ProxyInThread,
    Received,
    RecordingUpstream,
    free_port,
    start_courtesy_run,
    wait_for,
)

MEYER = (DATA / "hold" / "meyer.eml").read_bytes()
CC_FIVE = (DATA / "hold" / "cc_five.eml").read_bytes()
SENDER = "anna@example.com"
COMMAND = b"Subject: command\r\n\r\nsend this as it is\r\n"
RCPT = "thomas.meier@example.org"

MISSPELLED = Finding(
    "name.misspelled",
    Severity.BLOCK,
    "The greeting says 'Meyer'; the recipient is Thomas Meier.",
    evidence="Hallo Herr Meyer,",
    suggestion="Meier",
)


class FixedInspector:
    """Stands in for the checks: every message gets the same verdict."""

    def __init__(self, action: str = "hold", findings: Sequence[Finding] = (MISSPELLED,)) -> None:
        self.action = action
        self.findings = tuple(findings)

    async def inspect(self, transaction: Transaction) -> Verdict:
        return Verdict(action=self.action, findings=self.findings)  # type: ignore[arg-type]


def toml_text(data: dict[str, Any]) -> str:
    """Just enough TOML for our configs: top-level scalars, then tables of scalars."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return json.dumps(str(v))

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{name}]")
            lines += [f"{json.dumps(k)} = {value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def config_data(tmp_path: Path, upstream: RecordingUpstream, **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "proxy": {"listen": f"127.0.0.1:{free_port()}"},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "tryout": {"folder": str(tmp_path / "tryout")},
        "upstream": {
            "host": "127.0.0.1",
            "port": upstream.port,
            "security": "none",
            "timeout": "5s",
        },
    }
    for name, table in sections.items():
        if isinstance(table, dict):
            data[name] = {**data.get(name, {}), **table}
        else:
            data[name] = table
    return data


@dataclass
class Env:
    """A running proxy, its config file (for the CLI) and the recording upstream."""

    proxy: ProxyInThread
    upstream: RecordingUpstream
    config_path: Path

    @property
    def holder(self) -> Any:
        return self.proxy.running.holder

    def send(
        self, content: bytes, rcpts: Sequence[str] = (RCPT,), sender: str = SENDER
    ) -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(self.proxy.host, self.proxy.port, timeout=30) as client:
            return client.sendmail(sender, list(rcpts), content)

    def cli(self, *args: str) -> tuple[int, str, str]:
        """``courtesy ARGS -c CONFIG`` in this process (the real entry point)."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main([*args, "-c", str(self.config_path)])
        return code, out.getvalue(), err.getvalue()

    def rows(self) -> list[HeldMessage]:
        with self.proxy.running.store.sessions() as session:
            return list(session.scalars(select(HeldMessage).order_by(HeldMessage.id)))

    def messages(self) -> list[Received]:
        """What upstream received that is not a courtesy notice."""
        return [r for r in self.upstream.received if b"X-Courtesy-Notice:" not in r.content]

    def notices(self, kind: str = "") -> list[Message]:
        found = []
        for item in self.upstream.received:
            parsed = email.message_from_bytes(item.content)
            if parsed["X-Courtesy-Notice"] and parsed["X-Courtesy-Notice"].startswith(kind):
                found.append(parsed)
        return found


def start_env(
    tmp_path: Path, upstream: RecordingUpstream, inspector: Any = None, **sections: Any
) -> Env:
    path = tmp_path / "config.toml"
    path.write_text(toml_text(config_data(tmp_path, upstream, **sections)))
    proxy = ProxyInThread(load_config(path), inspector or FixedInspector())
    return Env(proxy, upstream, path)


@pytest.fixture
def env(tmp_path: Path, upstream: RecordingUpstream) -> Iterator[Env]:
    running = start_env(tmp_path, upstream)
    yield running
    running.proxy.stop()


def plain_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


def command_link(notice: Message, command: str) -> str:
    match = re.search(rf"mailto:({command}\+\d+\+[a-z0-9]+@courtesy\.invalid)", plain_text(notice))
    assert match, plain_text(notice)
    return match.group(1)


def held_notice(env: Env, count: int = 1) -> Message:
    assert wait_for(lambda: len(env.notices("held")) >= count), env.upstream.received
    return env.notices("held")[count - 1]


# -- hold ----------------------------------------------------------------------------------


def test_held_message_is_stored_listed_and_noticed_not_relayed(env: Env):
    refused = env.send(MEYER)
    assert refused == {}
    notice = held_notice(env)
    assert env.messages() == []  # the message itself did not leave

    # The notice went through upstream to the envelope sender.
    received = next(r for r in env.upstream.received if b"X-Courtesy-Notice" in r.content)
    assert received.mail_from == SENDER and received.rcpt_tos == [SENDER]
    subject = str(email.header.make_header(email.header.decode_header(notice["Subject"])))
    assert subject == "[courtesy] Held: Angebot für Dienstag"
    assert notice["Auto-Submitted"] == "auto-generated"
    body = plain_text(notice)
    assert "The greeting says 'Meyer'; the recipient is Thomas Meier" in body
    assert '"Hallo Herr Meyer,"' in body and "suggestion: Meier" in body
    for command in ("release", "discard", "allow"):
        assert command_link(notice, command).startswith(f"{command}+1+")

    rows = env.rows()
    assert len(rows) == 1 and rows[0].content == MEYER and rows[0].state == "held"
    assert rows[0].notice_sent_at is not None

    code, out, _ = env.cli("held", "list")
    assert code == 0 and "#1" in out and "Angebot" in out and "name.misspelled" in out
    code, out, _ = env.cli("held", "list", "--json")
    line = json.loads(out)
    assert set(line) == {"id", "held_at", "from", "to", "subject", "findings"}
    assert line["id"] == 1 and line["from"] == SENDER and line["to"] == [RCPT]
    assert line["subject"] == "Angebot für Dienstag"
    assert line["findings"] == [MISSPELLED.to_json()]
    assert line["held_at"].endswith("+00:00")
    code, out, _ = env.cli("held", "show", "1")
    assert code == 0 and "Hallo Herr Meyer," in out and "notice:     sent" in out


def test_held_outgoing_log_says_hold(env: Env):
    env.send(MEYER)
    env.proxy.flush_log()
    with env.proxy.running.store.sessions() as session:
        actions = list(session.scalars(select(OutgoingMessage.action)))
    assert actions == ["hold"]


def test_german_notice(tmp_path: Path, upstream: RecordingUpstream):
    env = start_env(tmp_path, upstream, language="de")
    try:
        env.send(MEYER)
        notice = held_notice(env)
        subject = str(email.header.make_header(email.header.decode_header(notice["Subject"])))
        assert subject == "[courtesy] Zurückgehalten: Angebot für Dienstag"
        body = plain_text(notice)
        assert "zurückgehalten" in body and "Sie schrieben „Hallo Herr Meyer,“" in body
        assert "Vorschlag: Meier" in body and "Unverändert senden" in body
    finally:
        env.proxy.stop()


# -- release -------------------------------------------------------------------------------


def test_release_by_cli_delivers_once_byte_identical(env: Env):
    env.send(MEYER)
    held_notice(env)
    code, out, _ = env.cli("held", "release", "1")
    assert code == 0, out
    assert "released" in out
    [got] = env.messages()
    assert got.content == MEYER
    assert got.mail_from == SENDER and got.rcpt_tos == [RCPT]
    assert "BODY=8BITMIME" in got.mail_options

    code, _, err = env.cli("held", "release", "1")
    assert code == 2 and "released, not held" in err
    assert len(env.messages()) == 1
    row = env.rows()[0]
    assert row.state == "released" and row.content is None and row.closed_by == "cli"
    code, out, _ = env.cli("held", "list")
    assert out == ""


def test_release_by_command_mail_with_swaks(env: Env, tmp_path: Path):
    swaks = require_tool("swaks")
    env.send(MEYER)
    address = command_link(held_notice(env), "release")

    def command() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                swaks,
                "--server",
                f"{env.proxy.host}:{env.proxy.port}",
                "-f",
                SENDER,
                "-t",
                address,
                "--h-Subject",
                "release",
                "--body",
                "release",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = command()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "courtesy command" in done.stdout
    assert wait_for(lambda: len(env.notices("command")) == 1)
    [got] = env.messages()
    assert got.content == MEYER and got.rcpt_tos == [RCPT]
    confirmation = env.notices("command")[0]
    assert confirmation["Subject"].startswith("[courtesy] Sent:")
    assert "was sent to thomas.meier@example.org" in plain_text(confirmation)
    # No command mail ever reaches upstream.
    assert not any("courtesy.invalid" in r for item in env.upstream.received for r in item.rcpt_tos)

    # The same link again: nothing happens, and the confirmation says so.
    done = command()
    assert done.returncode == 0
    assert wait_for(lambda: len(env.notices("command")) == 2)
    assert env.notices("command")[1]["Subject"] == "[courtesy] Nothing done"
    assert len(env.messages()) == 1
    assert env.rows()[0].closed_by == "mail"


def test_release_by_cli_and_by_mail_relays_once(env: Env):
    env.send(MEYER)
    address = command_link(held_notice(env), "release")
    assert env.cli("held", "release", "1")[0] == 0
    env.send(b"Subject: release\r\n\r\nrelease\r\n", rcpts=[address])
    assert wait_for(lambda: len(env.notices("command")) == 1)
    assert env.notices("command")[0]["Subject"] == "[courtesy] Nothing done"
    assert len(env.messages()) == 1


def test_failed_upstream_keeps_it_held_with_the_error(env: Env):
    env.send(MEYER)
    held_notice(env)
    env.upstream.behaviour.data_reply = "554 5.7.1 Message refused by policy"
    code, out, _ = env.cli("held", "release", "1")
    assert code == 1
    assert "still held" in out and "554 5.7.1 Message refused by policy" in out
    row = env.rows()[0]
    assert row.state == "held" and row.content == MEYER
    code, out, _ = env.cli("held", "list")
    assert "last release failed" in out and "554" in out
    code, out, _ = env.cli("held", "show", "1")
    assert "release:    upstream refused the message: 554" in out

    env.upstream.stop()  # unreachable now
    code, out, _ = env.cli("held", "release", "1")
    assert code == 1 and "still held" in out
    env.upstream.start()
    env.upstream.behaviour.data_reply = None
    code, out, _ = env.cli("held", "release", "1")
    assert code == 0, out
    [got] = env.messages()
    assert got.content == MEYER


def test_release_through_command_mail_that_fails_keeps_the_link_usable(env: Env):
    env.send(MEYER)
    address = command_link(held_notice(env), "release")
    env.upstream.behaviour.refuse_rcpts = {RCPT}
    env.send(b"Subject: release\r\n\r\nrelease\r\n", rcpts=[address])
    assert wait_for(lambda: len(env.notices("command")) == 1)
    confirmation = env.notices("command")[0]
    assert "Not sent yet" in confirmation["Subject"]
    assert "Recipient address rejected by upstream" in plain_text(confirmation)
    assert env.rows()[0].state == "held"
    env.upstream.behaviour.refuse_rcpts = set()
    env.send(b"Subject: release\r\n\r\nrelease\r\n", rcpts=[address])
    assert wait_for(lambda: len(env.messages()) == 1)
    assert env.messages()[0].content == MEYER


# -- discard -------------------------------------------------------------------------------


def test_discard_by_cli_deletes_the_body(env: Env):
    env.send(MEYER)
    held_notice(env)
    code, out, _ = env.cli("held", "discard", "1")
    assert code == 0 and "discarded" in out
    row = env.rows()[0]
    assert row.state == "discarded" and row.content is None and row.token_hash is None
    assert env.cli("held", "release", "1")[0] == 2
    assert env.messages() == []
    code, out, _ = env.cli("held", "list", "--all")
    assert "[discarded]" in out


def test_discard_by_command_mail(env: Env):
    env.send(MEYER)
    address = command_link(held_notice(env), "discard")
    env.send(b"Subject: discard\r\n\r\n", rcpts=[address])
    assert wait_for(lambda: len(env.notices("command")) == 1)
    assert "Discarded" in env.notices("command")[0]["Subject"]
    row = env.rows()[0]
    assert row.state == "discarded" and row.content is None
    assert env.messages() == []


# -- crash safety --------------------------------------------------------------------------


def test_kill_9_right_after_250_keeps_the_held_message(tmp_path: Path, upstream: RecordingUpstream):
    """A real `courtesy run` with the real checks: five on Cc is held (policy cc = hold)."""
    port = free_port()
    data = config_data(tmp_path, upstream, proxy={"listen": f"127.0.0.1:{port}"})
    path = tmp_path / "config.toml"
    path.write_text(toml_text(data))
    rcpts = ["bob@client.example", *(f"p{i}@firm{i}.example" for i in range(5))]

    process = start_courtesy_run(["-c", str(path)], port)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo()
            client.mail(SENDER)
            for rcpt in rcpts:
                assert client.rcpt(rcpt)[0] == 250
            code, text = client.data(CC_FIVE)
            assert code == 250, text
            os.kill(process.pid, signal.SIGKILL)  # right after 250
    finally:
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert [r for r in upstream.received if b"X-Courtesy-Notice" not in r.content] == []

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "courtesy.proxy.cli", *args, "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    process = start_courtesy_run(["-c", str(path)], port)  # restart
    try:
        listed = cli("held", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        [line] = [json.loads(x) for x in listed.stdout.splitlines()]
        assert line["to"] == rcpts and line["subject"] == "The offer"
        assert [f["code"] for f in line["findings"]] == ["cc.too_many"]
        # The notice arrives once (before the kill, or re-sent after the restart).
        assert wait_for(
            lambda: any(b"X-Courtesy-Notice: held" in r.content for r in upstream.received), 20
        )
        released = cli("held", "release", str(line["id"]))
        assert released.returncode == 0, released.stdout + released.stderr
        [got] = [r for r in upstream.received if b"X-Courtesy-Notice" not in r.content]
        assert got.content == CC_FIVE and got.rcpt_tos == rcpts
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert "Traceback" not in err


def test_held_bodies_are_private_to_the_owner(env: Env, tmp_path: Path):
    env.send(MEYER)
    files = sorted(tmp_path.glob("store.db*"))  # the database, its WAL and shared memory
    assert tmp_path / "store.db" in files and len(files) >= 2
    assert all(f.stat().st_mode & 0o077 == 0 for f in files), [oct(f.stat().st_mode) for f in files]


# -- hold.expire ---------------------------------------------------------------------------


def test_expire_release(tmp_path: Path, upstream: RecordingUpstream):
    env = start_env(tmp_path, upstream, hold={"expire": "2h release"})
    try:
        env.send(MEYER)
        notice = held_notice(env)
        assert "it will be sent automatically at" in plain_text(notice)
        assert env.proxy.call(env.holder.expire_once(utcnow() + timedelta(hours=1))) == []
        [outcome] = env.proxy.call(env.holder.expire_once(utcnow() + timedelta(hours=2, seconds=1)))
        assert outcome.result == "released"
        [got] = env.messages()
        assert got.content == MEYER
        row = env.rows()[0]
        assert row.state == "released" and row.closed_by == "expire"
        assert env.proxy.call(env.holder.expire_once(utcnow() + timedelta(days=1))) == []
    finally:
        env.proxy.stop()


def test_expire_discard(tmp_path: Path, upstream: RecordingUpstream):
    env = start_env(tmp_path, upstream, hold={"expire": "7d discard"})
    try:
        env.send(MEYER)
        env.send(MEYER)
        held_notice(env, 2)
        assert env.cli("held", "release", "2")[0] == 0
        [outcome] = env.proxy.call(env.holder.expire_once(utcnow() + timedelta(days=8)))
        assert outcome.held_id == 1 and outcome.result == "expired"
        rows = env.rows()
        assert rows[0].state == "expired" and rows[0].content is None
        assert rows[1].state == "released"
        assert len(env.messages()) == 1
    finally:
        env.proxy.stop()


def test_notice_off(tmp_path: Path, upstream: RecordingUpstream):
    env = start_env(tmp_path, upstream, hold={"notice": False})
    try:
        env.send(MEYER)
        assert len(env.rows()) == 1
        assert not wait_for(lambda: bool(upstream.received), 0.5)
    finally:
        env.proxy.stop()


def test_a_lost_notice_is_sent_again_with_fresh_links(env: Env):
    env.upstream.behaviour.data_reply = "451 4.3.0 try later"
    env.send(MEYER)
    assert wait_for(lambda: env.rows()[0].notice_attempts == 1)
    row = env.rows()[0]
    assert row.notice_sent_at is None and "451" in (row.notice_error or "")
    _, out, _ = env.cli("held", "show", "1")
    assert "not delivered (1x)" in out
    old_hash = row.token_hash
    env.upstream.behaviour.data_reply = None
    assert env.proxy.call(env.holder.retry_notices()) == 1
    notice = held_notice(env)
    assert env.rows()[0].token_hash != old_hash
    env.send(b"Subject: release\r\n\r\n", rcpts=[command_link(notice, "release")])
    assert wait_for(lambda: len(env.messages()) == 1)


# -- notices by IMAP APPEND ----------------------------------------------------------------


def test_notice_by_imap_append_into_a_real_dovecot(tmp_path: Path, upstream: RecordingUpstream):
    """With [imap] the notice lands in the sender's INBOX, and nothing goes upstream."""
    from tests.dovecot import Dovecot, DovecotMissing, imap_settings

    try:
        dovecot = Dovecot()
    except DovecotMissing as exc:
        pytest.fail(str(exc))
    dovecot.start()
    user = dovecot.new_user()
    imap = imap_settings(dovecot.imaps_port, user, security="tls", ca_file=str(dovecot.cert))
    path = tmp_path / "config.toml"
    path.write_text(toml_text(config_data(tmp_path, upstream, imap=imap)))
    path.chmod(0o600)
    env = Env(ProxyInThread(load_config(path), FixedInspector()), upstream, path)

    def inbox() -> list[Message]:
        with dovecot.client(user) as client:
            client.select_folder("INBOX", readonly=True)
            uids = client.search("ALL")
            fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [email.message_from_bytes(fetched[u][b"BODY[]"]) for u in sorted(fetched)]

    try:
        env.send(MEYER, sender=user)
        assert wait_for(lambda: len(inbox()) == 1, 20), dovecot.log()
        [notice] = inbox()
        assert notice["X-Courtesy-Notice"] == "held 1" and notice["To"] == user
        assert env.rows()[0].notice_sent_at is not None
        assert upstream.received == []
        env.send(COMMAND, rcpts=[command_link(notice, "release")], sender=user)
        assert wait_for(lambda: len(inbox()) == 2, 20)
        assert inbox()[1]["Subject"].startswith("[courtesy] Sent:")
        [got] = env.messages()
        assert got.content == MEYER and got.mail_from == user
    finally:
        env.proxy.stop()
        dovecot.close()
