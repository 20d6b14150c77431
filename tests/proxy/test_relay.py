"""The outgoing path end to end: real clients -> the proxy -> a recording upstream."""

from __future__ import annotations

import email
import smtplib
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from courtesy.proxy.relay import Reply, data_wire
from courtesy.store.outgoing import OutgoingMessage
from tests.conftest import DATA, require_tool
from tests.servers import ProxyInThread, RecordingUpstream, proxy_config, wait_for

PLAIN = (DATA / "proxy" / "plain.eml").read_bytes()
UTF8 = (DATA / "proxy" / "utf8.eml").read_bytes()
SMTPUTF8 = (DATA / "proxy" / "smtputf8.eml").read_bytes()


@pytest.fixture
def proxy(tmp_path: Path, upstream: RecordingUpstream) -> Iterator[ProxyInThread]:
    running = ProxyInThread(proxy_config(tmp_path, upstream))
    yield running
    running.stop()


def send(
    proxy: ProxyInThread, sender: str, rcpts: list[str], content: bytes, **options: list[str]
) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
        return client.sendmail(sender, rcpts, content, mail_options=options.get("mail", []))


def test_plain_ascii_arrives_byte_identical(proxy: ProxyInThread, upstream: RecordingUpstream):
    refused = send(proxy, "anna@example.com", ["thomas.meier@example.org"], PLAIN)
    assert refused == {}
    assert len(upstream.received) == 1
    got = upstream.received[0]
    assert got.content == PLAIN
    assert got.mail_from == "anna@example.com"
    assert got.rcpt_tos == ["thomas.meier@example.org"]


def test_8bit_utf8_body_arrives_byte_identical(proxy: ProxyInThread, upstream: RecordingUpstream):
    send(proxy, "anna@example.com", ["juergen.mueller@example.org"], UTF8, mail=["BODY=8BITMIME"])
    got = upstream.received[0]
    assert got.content == UTF8
    assert "BODY=8BITMIME" in got.mail_options


def test_smtputf8_addresses(proxy: ProxyInThread, upstream: RecordingUpstream):
    with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail(
            "jörg@bücher.example",
            ["müller@bücher.example"],
            SMTPUTF8,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
    got = upstream.received[0]
    assert got.mail_from == "jörg@bücher.example"
    assert got.rcpt_tos == ["müller@bücher.example"]
    assert got.content == SMTPUTF8
    assert "SMTPUTF8" in got.mail_options


def test_20mb_attachment(proxy: ProxyInThread, upstream: RecordingUpstream):
    message = EmailMessage()
    message["From"] = "anna@example.com"
    message["To"] = "thomas.meier@example.org"
    message["Subject"] = "Die Unterlagen"
    message["Message-ID"] = "<big-1@example.com>"
    message.set_content("Hallo Herr Meier,\n\nanbei die Unterlagen.\n\nViele Grüße\nAnna\n")
    message.add_attachment(
        bytes(range(256)) * (20 * 1024 * 1024 // 256),
        maintype="application",
        subtype="octet-stream",
        filename="a.bin",
    )
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    assert len(raw) > 20 * 1024 * 1024
    send(proxy, "anna@example.com", ["thomas.meier@example.org"], raw)
    assert upstream.received[0].content == raw


def test_refused_recipients_are_refused_to_the_client(
    proxy: ProxyInThread, upstream: RecordingUpstream
):
    rcpts = [f"person{i}@example.org" for i in range(50)]
    upstream.behaviour.refuse_rcpts = {"person7@example.org", "person31@example.org"}
    refused = send(proxy, "anna@example.com", rcpts, PLAIN)
    assert set(refused) == {"person7@example.org", "person31@example.org"}
    assert all(code == 550 for code, _ in refused.values())
    assert b"rejected by upstream" in refused["person7@example.org"][1]
    assert upstream.received[0].rcpt_tos == [r for r in rcpts if r not in refused]


def test_swaks_client(proxy: ProxyInThread, upstream: RecordingUpstream, tmp_path: Path):
    swaks = require_tool("swaks")
    eml = tmp_path / "m.eml"
    eml.write_bytes(UTF8)
    done = subprocess.run(
        [
            swaks,
            "--server",
            f"{proxy.host}:{proxy.port}",
            "-f",
            "anna@example.com",
            "-t",
            "juergen.mueller@example.org",
            "--data",
            str(eml),
            "--silent",
            "2",
        ],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert upstream.received[0].content.rstrip(b"\r\n") == UTF8.rstrip(b"\r\n")


def test_swaks_pipelining(proxy: ProxyInThread, upstream: RecordingUpstream):
    swaks = require_tool("swaks")
    upstream.behaviour.refuse_rcpts = {"nobody@example.org"}
    done = subprocess.run(
        [
            swaks,
            "--server",
            f"{proxy.host}:{proxy.port}",
            "--pipeline",
            "-f",
            "anna@example.com",
            "-t",
            "thomas.meier@example.org,nobody@example.org",
            "--h-Subject",
            "pipelined",
            "--body",
            "Hallo Herr Meier,",
            "--silent",
            "2",
        ],
        capture_output=True,
        timeout=60,
    )
    # swaks exits 0 when at least one recipient was accepted
    assert done.returncode == 0, done.stderr
    assert upstream.received[0].rcpt_tos == ["thomas.meier@example.org"]


def test_msmtp_client(proxy: ProxyInThread, upstream: RecordingUpstream):
    msmtp = require_tool("msmtp")
    done = subprocess.run(
        [
            msmtp,
            f"--host={proxy.host}",
            f"--port={proxy.port}",
            "--auth=off",
            "--tls=off",
            "--from=anna@example.com",
            "thomas.meier@example.org",
        ],
        input=PLAIN,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    got = upstream.received[0]
    assert got.rcpt_tos == ["thomas.meier@example.org"]
    assert got.content == PLAIN


def test_outgoing_row_is_recorded_without_body(proxy: ProxyInThread, upstream: RecordingUpstream):
    send(proxy, "anna@example.com", ["thomas.meier@example.org", "hidden@example.net"], PLAIN)
    proxy.flush_log()
    with proxy.running.store.session() as session:
        row = session.scalars(select(OutgoingMessage)).one()
        assert row.message_id == "<plain-1@example.com>"
        assert row.action == "relay"
        assert row.to_count == 1 and row.cc_count == 0 and row.bcc_count == 1
        assert row.recipients == ["thomas.meier@example.org", "hidden@example.net"]
        assert row.upstream_reply is not None and row.upstream_reply.startswith("250")
        columns = {c.name for c in OutgoingMessage.__table__.columns}
        assert not {"body", "content", "raw"} & columns


# -- faults: the client always gets a 4xx and a retry delivers exactly once ----------


def _expect_4xx(proxy: ProxyInThread) -> int:
    with pytest.raises(smtplib.SMTPException) as caught:
        send(proxy, "anna@example.com", ["thomas.meier@example.org"], PLAIN)
    error = caught.value
    code = getattr(error, "smtp_code", None)
    if code is None and isinstance(error, smtplib.SMTPRecipientsRefused):
        code = next(iter(error.recipients.values()))[0]
    assert code is not None and 400 <= code < 500, repr(error)
    return code


def test_upstream_down_then_back(proxy: ProxyInThread, upstream: RecordingUpstream):
    upstream.stop()
    _expect_4xx(proxy)
    upstream.start()
    send(proxy, "anna@example.com", ["thomas.meier@example.org"], PLAIN)
    assert len(upstream.received) == 1


def test_upstream_answers_421(proxy: ProxyInThread, upstream: RecordingUpstream):
    upstream.behaviour.mail_reply = "421 4.3.2 Service shutting down"
    assert _expect_4xx(proxy) == 421
    upstream.behaviour.mail_reply = None
    send(proxy, "anna@example.com", ["thomas.meier@example.org"], PLAIN)
    assert len(upstream.received) == 1


def test_upstream_4xx_on_data_is_passed_on(proxy: ProxyInThread, upstream: RecordingUpstream):
    upstream.behaviour.data_reply = "452 4.3.1 Insufficient system storage"
    assert _expect_4xx(proxy) == 452
    upstream.behaviour.data_reply = None
    send(proxy, "anna@example.com", ["thomas.meier@example.org"], PLAIN)
    assert len(upstream.received) == 1


def test_upstream_hangs_past_timeout(tmp_path: Path, upstream: RecordingUpstream):
    config = proxy_config(tmp_path, upstream, upstream={"timeout": "1s"})
    proxy = ProxyInThread(config)
    try:
        upstream.behaviour.hang_data = 3
        _expect_4xx(proxy)
        upstream.behaviour.hang_data = 0
        send(proxy, "anna@example.com", ["thomas.meier@example.org"], PLAIN)
        assert wait_for(lambda: len(upstream.received) >= 1)
        # the hung attempt must not have been delivered as well
        assert len(upstream.received) == 1
    finally:
        proxy.stop()


def test_upstream_drops_connection_mid_data(proxy: ProxyInThread, upstream: RecordingUpstream):
    upstream.behaviour.drop_in_data = True
    _expect_4xx(proxy)
    upstream.behaviour.drop_in_data = False
    send(proxy, "anna@example.com", ["thomas.meier@example.org"], PLAIN)
    assert len(upstream.received) == 1


def test_connection_reused_across_messages(proxy: ProxyInThread, upstream: RecordingUpstream):
    with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
        for _ in range(5):
            client.sendmail("anna@example.com", ["thomas.meier@example.org"], PLAIN)
    assert len(upstream.received) == 5
    assert all(r.content == PLAIN for r in upstream.received)


def test_tryout_mode_keeps_mail_in_a_folder(tmp_path: Path):
    proxy = ProxyInThread(proxy_config(tmp_path, None))
    try:
        assert proxy.running.config.tryout_mode
        send(proxy, "anna@example.com", ["thomas.meier@example.org"], PLAIN)
    finally:
        proxy.stop()
    files = list((tmp_path / "tryout" / "new").iterdir())
    assert len(files) == 1
    assert files[0].read_bytes() == PLAIN
    assert files[0].stat().st_mode & 0o077 == 0
    assert email.message_from_bytes(files[0].read_bytes())["Subject"] == "Termin am Dienstag"


def test_a_slow_upload_is_not_cut_by_the_idle_timeout(tmp_path: Path, upstream: RecordingUpstream):
    """Data arriving counts as activity: only a silent client is disconnected."""
    import socket
    import time

    proxy = ProxyInThread(proxy_config(tmp_path, upstream, proxy={"client_timeout": "1s"}))
    try:
        with socket.create_connection((proxy.host, proxy.port), timeout=10) as sock:
            reader = sock.makefile("rb")

            def command(line: bytes) -> bytes:
                sock.sendall(line + b"\r\n")
                reply = reader.readline()
                while reply[3:4] == b"-":
                    reply = reader.readline()
                return reply

            reader.readline()
            assert command(b"EHLO client").startswith(b"250")
            assert command(b"MAIL FROM:<anna@example.com>").startswith(b"250")
            assert command(b"RCPT TO:<thomas.meier@example.org>").startswith(b"250")
            assert command(b"DATA").startswith(b"354")
            # dot-stuffed as any SMTP client does (RFC 5321 4.5.2)
            lines = [b"." + x if x.startswith(b".") else x for x in PLAIN.split(b"\r\n")]
            for start in range(0, len(lines), 3):  # ~0.4 s between pieces, 2.5 s in all
                chunk = b"\r\n".join(lines[start : start + 3])
                sock.sendall(chunk + (b"\r\n" if start + 3 < len(lines) else b""))
                time.sleep(0.4)
            reply = command(b".")
            assert reply.startswith(b"250"), reply
    finally:
        proxy.stop()
    assert upstream.received[0].content == PLAIN


def test_message_over_the_size_limit_gets_552_and_the_session_goes_on(
    tmp_path: Path, upstream: RecordingUpstream
):
    proxy = ProxyInThread(proxy_config(tmp_path, upstream, proxy={"max_message_size": 2000}))
    try:
        with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
            client.ehlo()
            assert client.has_extn("size") and client.esmtp_features["size"] == "2000"
            big = PLAIN + b"x" * 3000 + b"\r\n"
            client.mail("anna@example.com")  # no SIZE=: the limit must hold while reading
            client.rcpt("thomas.meier@example.org")
            code, text = client.data(big)
            assert code == 552, text
            # the same connection still delivers a message that fits
            assert client.sendmail("anna@example.com", ["thomas.meier@example.org"], PLAIN) == {}
    finally:
        proxy.stop()
    assert [r.content for r in upstream.received] == [PLAIN]


# --- the DATA payload ------------------------------------------------------------------

crlf_lines = st.lists(
    st.sampled_from([b"", b".", b"..", b".x", b"x.", b"Hallo Herr Meier,", b" .", b"\xc3\xa4."]),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(crlf_lines, st.booleans())
def test_data_wire_matches_aiosmtplib(lines: list[bytes], final_crlf: bool) -> None:
    """The cheap payload is byte for byte what aiosmtplib's data() would send."""
    content = b"\r\n".join(lines) + (b"\r\n" if final_crlf else b"")
    expected = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(content)) + b".\r\n"
    assert data_wire(content) == expected


@given(st.binary(max_size=200))
def test_data_wire_leaves_bare_line_ends_to_aiosmtplib(content: bytes) -> None:
    wire = data_wire(content)
    if b"\n" in content.replace(b"\r\n", b"") or b"\r" in content.replace(b"\r\n", b""):
        assert wire is None
    else:
        assert wire == PERIOD_REGEX.sub(b"..", normalize_message_line_endings(content)) + b".\r\n"


def test_bare_line_feeds_are_relayed_as_crlf(proxy: ProxyInThread, upstream: RecordingUpstream):
    """A message with bare LFs (smtplib would fix them, so sent raw) arrives with CRLFs."""
    bare = PLAIN.replace(b"\r\n", b"\n")
    with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
        client.ehlo()
        assert client.mail("anna@example.com")[0] == 250
        assert client.rcpt("thomas.meier@example.org")[0] == 250
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(bare.rstrip(b"\n") + b"\r\n.\r\n")  # the end marker needs its CRLF
        assert client.getreply()[0] == 250
    assert b"\n" in bare and b"\r" not in bare
    assert upstream.received[0].content == PLAIN


@given(st.integers(200, 599), st.text(max_size=40))
def test_reply_line_fast_path_is_the_general_rule(code: int, text: str) -> None:
    lines = text.splitlines() or [""]
    head = [f"{code}-{line}" for line in lines[:-1]]
    assert Reply(code, text).line() == "\r\n".join([*head, f"{code} {lines[-1]}"]).rstrip()
