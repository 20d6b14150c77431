"""AUTH towards clients and TLS towards upstream, with real servers and clients."""

from __future__ import annotations

import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from courtesy.proxy.passwords import hash_password
from tests.conftest import DATA, require_tool
from tests.servers import ProxyInThread, RecordingUpstream, proxy_config

PLAIN = (DATA / "proxy" / "plain.eml").read_bytes()


@pytest.fixture
def passthrough(tmp_path: Path, upstream: RecordingUpstream) -> Iterator[ProxyInThread]:
    upstream.behaviour.users = {"anna@example.com": "upstream-secret"}
    proxy = ProxyInThread(proxy_config(tmp_path, upstream, proxy={"auth": "passthrough"}))
    yield proxy
    proxy.stop()


def test_passthrough_auth_uses_the_clients_credentials_upstream(
    passthrough: ProxyInThread, upstream: RecordingUpstream
):
    with smtplib.SMTP(passthrough.host, passthrough.port, timeout=30) as client:
        client.login("anna@example.com", "upstream-secret")
        client.sendmail("anna@example.com", ["thomas.meier@example.org"], PLAIN)
    assert upstream.received[0].auth_user == "anna@example.com"
    assert upstream.received[0].content == PLAIN


def test_passthrough_wrong_password_gets_535(
    passthrough: ProxyInThread, upstream: RecordingUpstream
):
    with smtplib.SMTP(passthrough.host, passthrough.port, timeout=30) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.login("anna@example.com", "wrong")
        assert caught.value.smtp_code == 535
    assert upstream.received == []


def test_unauthenticated_client_is_refused_when_auth_is_on(
    passthrough: ProxyInThread, upstream: RecordingUpstream
):
    with smtplib.SMTP(passthrough.host, passthrough.port, timeout=30) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            client.sendmail("anna@example.com", ["thomas.meier@example.org"], PLAIN)
        assert caught.value.smtp_code == 530
    assert upstream.received == []


def test_msmtp_auth_login_through_passthrough(
    passthrough: ProxyInThread, upstream: RecordingUpstream
):
    msmtp = require_tool("msmtp")
    done = subprocess.run(
        [
            msmtp,
            f"--host={passthrough.host}",
            f"--port={passthrough.port}",
            "--auth=login",
            "--user=anna@example.com",
            "--passwordeval=echo upstream-secret",
            "--tls=off",
            "--from=anna@example.com",
            "thomas.meier@example.org",
        ],
        input=PLAIN,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert upstream.received[0].auth_user == "anna@example.com"


def test_local_auth(tmp_path: Path, upstream: RecordingUpstream):
    config = proxy_config(
        tmp_path,
        upstream,
        proxy={"auth": "local", "users": {"anna": hash_password("local-secret")}},
    )
    proxy = ProxyInThread(config)
    try:
        with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("anna", "nope")
        with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
            client.login("anna", "local-secret")
            client.sendmail("anna@example.com", ["thomas.meier@example.org"], PLAIN)
    finally:
        proxy.stop()
    assert len(upstream.received) == 1


def test_no_auth_advertised_when_auth_is_off(tmp_path: Path, upstream: RecordingUpstream):
    proxy = ProxyInThread(proxy_config(tmp_path, upstream))
    try:
        with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
            client.ehlo()
            assert not client.has_extn("auth")
            assert client.has_extn("size") and client.has_extn("8bitmime")
            assert client.has_extn("pipelining") and client.has_extn("smtputf8")
    finally:
        proxy.stop()


# -- TLS to upstream: certificates are verified ------------------------------------------


@pytest.fixture(params=["starttls", "tls"])
def tls_upstream(
    request: pytest.FixtureRequest, certificate: tuple[Path, Path]
) -> Iterator[RecordingUpstream]:
    server = RecordingUpstream(tls=request.param, cert=certificate).start()
    yield server
    server.close()


def test_self_signed_upstream_is_refused_by_default(
    tmp_path: Path, tls_upstream: RecordingUpstream
):
    proxy = ProxyInThread(proxy_config(tmp_path, tls_upstream))
    try:
        with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as caught:
                client.sendmail("anna@example.com", ["thomas.meier@example.org"], PLAIN)
        assert caught.value.smtp_code == 451
        assert b"certificate" in caught.value.smtp_error
    finally:
        proxy.stop()
    assert tls_upstream.received == []


def test_self_signed_upstream_is_accepted_with_its_ca(
    tmp_path: Path, tls_upstream: RecordingUpstream, certificate: tuple[Path, Path]
):
    config = proxy_config(tmp_path, tls_upstream, upstream={"ca_file": str(certificate[0])})
    proxy = ProxyInThread(config)
    try:
        with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
            client.sendmail("anna@example.com", ["thomas.meier@example.org"], PLAIN)
    finally:
        proxy.stop()
    assert tls_upstream.received[0].tls
    assert tls_upstream.received[0].content == PLAIN
