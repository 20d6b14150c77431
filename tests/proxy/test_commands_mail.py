"""Command mail: release+ID+TOKEN@courtesy.invalid and friends, sent through the proxy."""

from __future__ import annotations

import json
import logging
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from courtesy.proxy.commands_mail import is_command_address, parse_command_address
from courtesy.proxy.config import load_config
from courtesy.proxy.hold import hash_token, new_token, token_matches
from courtesy.proxy.inspect import ChecksInspector
from courtesy.store.db import open_store
from courtesy.store.held import load_exceptions
from tests.proxy.test_hold import (
    CC_FIVE,
    MEYER,
    RCPT,
    Env,
    command_link,
    config_data,
    held_notice,
    start_env,
    toml_text,
)
from tests.servers import ProxyInThread, RecordingUpstream, wait_for

COMMAND_BODY = b"Subject: command\r\n\r\nsend this as it is\r\n"


@pytest.fixture
def env(tmp_path: Path, upstream: RecordingUpstream) -> Iterator[Env]:
    running = start_env(tmp_path, upstream)
    yield running
    running.proxy.stop()


def test_command_addresses_parse():
    token = new_token()
    assert len(token) == 32 and token.isalnum() and token == token.lower()
    parsed = parse_command_address(f"Release+12+{token.upper()}@Courtesy.Invalid")
    assert parsed is not None
    assert (parsed.command, parsed.held_id, parsed.token) == ("release", 12, token)
    assert token_matches(parsed.token, hash_token(token))
    assert not token_matches(parsed.token, None)
    for bad in (
        "release+12@courtesy.invalid",
        "send+12+abc@courtesy.invalid",
        "release+x+abc@courtesy.invalid",
        f"release+12+{token}@courtesy.example",
    ):
        assert parse_command_address(bad) is None
    assert is_command_address("whatever@courtesy.invalid")
    assert not is_command_address("release+1+abc@example.org")


def test_forged_token_does_nothing_and_is_logged_without_the_token(
    env: Env, caplog: pytest.LogCaptureFixture
):
    env.send(MEYER)
    real = command_link(held_notice(env), "release")
    forged_token = new_token()
    forged = f"release+1+{forged_token}@courtesy.invalid"
    wrong_id = real.replace("release+1+", "release+2+")
    with caplog.at_level(logging.INFO):
        for address in (
            forged,
            wrong_id,
            "discard+1+zzzz@courtesy.invalid",
            "help@courtesy.invalid",
        ):
            assert env.send(COMMAND_BODY, rcpts=[address]) == {}
        assert wait_for(lambda: len(env.notices("command")) == 4)
    assert all(n["Subject"] == "[courtesy] Nothing done" for n in env.notices("command"))
    row = env.rows()[0]
    assert row.state == "held" and row.content == MEYER
    assert env.messages() == []

    def ours() -> str:
        # aiosmtpd's own "mail.log" echoes every command; `courtesy run` keeps it at WARNING.
        return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("courtesy"))

    assert "wrong or used token" in ours()
    assert forged_token not in ours() and forged_token[:4] in ours()
    real_token = real.split("+")[2].split("@")[0]
    # The real link still works afterwards.
    with caplog.at_level(logging.DEBUG):
        env.send(COMMAND_BODY, rcpts=[real])
        assert wait_for(lambda: len(env.messages()) == 1)
    assert "released #1 (by mail)" in ours()
    assert real_token not in ours()


def test_command_mail_is_never_mixed_with_real_recipients(env: Env):
    env.send(MEYER)
    address = command_link(held_notice(env), "release")
    with smtplib.SMTP(env.proxy.host, env.proxy.port, timeout=30) as client:
        client.ehlo()
        client.mail("anna@example.com")
        assert client.rcpt(RCPT)[0] == 250
        code, text = client.rcpt(address)
        assert code == 550 and b"mail of their own" in text
        client.rset()
        client.mail("anna@example.com")
        assert client.rcpt(address)[0] == 250
        code, text = client.rcpt(RCPT)
        assert code == 550 and b"mail of their own" in text
        client.rset()
    assert env.rows()[0].state == "held"
    assert env.messages() == []


def test_dont_ask_again_records_exceptions_the_checks_honour(
    tmp_path: Path, upstream: RecordingUpstream
):
    """The real checks: five on Cc is held; "allow" sends it and the next one goes through."""
    path = tmp_path / "config.toml"
    path.write_text(toml_text(config_data(tmp_path, upstream)))
    config = load_config(path)
    store = open_store(config.store_url)
    inspector = ChecksInspector(config, store, exception_source=load_exceptions)
    env = Env(ProxyInThread(config, inspector), upstream, path)
    rcpts = ["bob@client.example", *(f"p{i}@firm{i}.example" for i in range(5))]
    try:
        env.send(CC_FIVE, rcpts=rcpts)
        notice = held_notice(env)
        assert env.messages() == []
        env.send(COMMAND_BODY, rcpts=[command_link(notice, "allow")])
        assert wait_for(lambda: len(env.messages()) == 1)
        assert env.messages()[0].content == CC_FIVE
        confirmation = env.notices("command")[0]
        assert "won't ask again" in confirmation["Subject"]

        code, out, _ = env.cli("exceptions", "list", "--json")
        recorded = [json.loads(line) for line in out.splitlines()]
        assert {(r["email"], r["code"]) for r in recorded} == {(r, "cc.too_many") for r in rcpts}
        assert all(r["source"] == "held #1" for r in recorded)

        second = CC_FIVE.replace(b"cc-five-1@", b"cc-five-2@")
        env.send(second, rcpts=rcpts)  # the checks now let it through
        assert wait_for(lambda: len(env.messages()) == 2)
        assert env.messages()[1].content == second
        assert len(env.rows()) == 1

        code, out, _ = env.cli("exceptions", "list")
        assert code == 0 and "cc.too_many" in out
        for item in recorded:
            assert env.cli("exceptions", "remove", str(item["id"]))[0] == 0
        assert env.cli("exceptions", "remove", str(recorded[0]["id"]))[0] == 2
        env.send(second, rcpts=rcpts)  # asked again
        assert wait_for(lambda: len(env.rows()) == 2)
        assert len(env.messages()) == 2
    finally:
        env.proxy.stop()
        store.close()
