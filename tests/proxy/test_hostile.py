"""Hostile and broken messages (tests/data/hostile, written by its make.py).

Each one through ``courtesy check`` (exit 0, 1 or 2, one answer per file,
never a traceback, bounded time) and through the running proxy with the real
checks to a recording upstream: relayed, held, or refused with a clear SMTP
reply; the proxy never crashes, never hangs, and never answers 250 for a
message that is then neither upstream nor held.
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from courtesy.checks.message import NotAMessage
from courtesy.checks.model import MemoryAddressBook
from courtesy.proxy.config import parse_config
from courtesy.proxy.inspect import evaluate
from courtesy.store.held import HeldMessage
from tests.conftest import DATA
from tests.servers import ProxyInThread, RecordingUpstream, cli_env, proxy_config

HOSTILE = DATA / "hostile"
CASES = sorted(HOSTILE.glob("*.eml"))
# Per message, on a loaded two-core machine; the slowest case takes about 2 s alone.
BOUND = 15.0


def test_the_cases_are_there():
    assert len(CASES) >= 30, "run tests/data/hostile/make.py"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_checks_finish_without_raising(path: Path):
    """evaluate() (what both `check` and the proxy run) raises nothing but NotAMessage."""
    config = parse_config({})
    started = time.monotonic()
    try:
        result = evaluate(path.read_bytes(), config, MemoryAddressBook([]))
    except NotAMessage:
        pass
    else:
        assert result.decision.action in ("relay", "hold", "reject")
        assert not result.report.errors, result.report.errors  # no check crashed
    assert time.monotonic() - started < BOUND


def test_courtesy_check_answers_every_file(tmp_path: Path):
    env = cli_env(tmp_path)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "courtesy.proxy.cli", "check", "--json", *map(str, CASES)],
        capture_output=True,
        text=True,
        timeout=BOUND * 4,
        env=env,
    )
    assert time.monotonic() - started < BOUND * 4
    assert done.returncode in (0, 1, 2), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    answered = {json.loads(line)["file"] for line in done.stdout.splitlines()}
    refused = {
        line.removeprefix("courtesy: error: ").removesuffix(": not a mail message")
        for line in done.stderr.splitlines()
        if line.endswith(": not a mail message")
    }
    assert answered | refused == {str(p) for p in CASES}
    assert not answered & refused
    # Junk is refused as "not a mail message"; a message with headers is always checked.
    assert {Path(p).stem for p in refused} == {"binary_junk", "empty_file", "only_newlines"}
    assert done.returncode == 2


@pytest.fixture(scope="module")
def proxied(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ProxyInThread, RecordingUpstream]]:
    upstream = RecordingUpstream().start()
    config = proxy_config(tmp_path_factory.mktemp("hostile"), upstream, hold={"notice": False})
    proxy = ProxyInThread(config)  # the real checks and the real hold path
    yield proxy, upstream
    proxy.stop()
    upstream.close()


def _held(proxy: ProxyInThread) -> int:
    with proxy.running.store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(HeldMessage)) or 0)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_through_the_proxy(path: Path, proxied: tuple[ProxyInThread, RecordingUpstream]):
    proxy, upstream = proxied
    delivered, held = len(upstream.received), _held(proxy)
    started = time.monotonic()
    with smtplib.SMTP(proxy.host, proxy.port, timeout=BOUND * 2) as client:
        try:
            client.sendmail("anna@example.com", ["thomas.meier@example.org"], path.read_bytes())
        except smtplib.SMTPDataError as exc:
            # Refused: a clear SMTP error, never a dropped connection.
            assert 400 <= exc.smtp_code < 600 and exc.smtp_error, exc
            accepted = False
        else:
            accepted = True
        assert client.noop()[0] == 250  # the session is still usable
    assert time.monotonic() - started < BOUND
    now_delivered, now_held = len(upstream.received) - delivered, _held(proxy) - held
    if accepted:
        assert (now_delivered, now_held) in ((1, 0), (0, 1)), (now_delivered, now_held)
    else:
        assert (now_delivered, now_held) == (0, 0)


def test_proxy_still_serves_a_normal_message(proxied: tuple[ProxyInThread, RecordingUpstream]):
    proxy, upstream = proxied
    before = len(upstream.received)
    normal = (DATA / "proxy" / "plain.eml").read_bytes()
    with smtplib.SMTP(proxy.host, proxy.port, timeout=30) as client:
        assert client.sendmail("anna@example.com", ["bob@example.org"], normal) == {}
    assert len(upstream.received) == before + 1
