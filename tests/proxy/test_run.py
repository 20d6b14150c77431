"""``courtesy run`` as a user starts it: a real process, signals, try-out mode."""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from courtesy.store.db import open_store
from courtesy.store.inbound import InboundMessage
from tests.conftest import DATA, require_tool
from tests.dovecot import PASSWORD, Dovecot, make_message
from tests.servers import RecordingUpstream, cli_env, free_port, start_courtesy_run, wait_for

PLAIN = (DATA / "proxy" / "plain.eml").read_bytes()


def start_run(tmp_path: Path, config_text: str | None, port: int) -> subprocess.Popen[str]:
    env = cli_env(tmp_path)
    args: list[str] = []
    if config_text is not None:
        path = tmp_path / "config.toml"
        path.write_text(config_text)
        args += ["-c", str(path)]
    return start_courtesy_run(args, port, env=env)


def test_tryout_mode_without_any_config(tmp_path: Path):
    """The README's first command: no config at all, mail lands in a local folder."""
    # The default port may be taken on a developer machine; try-out needs no file,
    # so point it elsewhere through the environment only when 1587 is busy.
    port = 1587
    config = None
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=1):
            pass
        port = free_port()
        config = f'[proxy]\nlisten = "127.0.0.1:{port}"\n'
    except OSError:
        pass
    process = start_run(tmp_path, config, port)
    try:
        swaks = require_tool("swaks")
        done = subprocess.run(
            [
                swaks,
                "--server",
                f"127.0.0.1:{port}",
                "-f",
                "anna@example.com",
                "-t",
                "bob@example.org",
                "--h-Subject",
                "try-out",
                "--body",
                "Hallo Bob,",
                "--silent",
                "2",
            ],
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "TRY-OUT MODE" in out
    outbox = tmp_path / "data-home" / "courtesy" / "tryout-outbox" / "new"
    files = list(outbox.iterdir())
    assert len(files) == 1 and b"Subject: try-out" in files[0].read_bytes()
    db = tmp_path / "data-home" / "courtesy" / "courtesy.db"
    assert db.stat().st_mode & 0o077 == 0


def test_sigterm_finishes_the_message_in_flight(tmp_path: Path, upstream: RecordingUpstream):
    port = free_port()
    config = (
        f'[proxy]\nlisten = "127.0.0.1:{port}"\n'
        f'[upstream]\nhost = "127.0.0.1"\nport = {upstream.port}\nsecurity = "none"\n'
        f'timeout = "20s"\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
    )
    process = start_run(tmp_path, config, port)
    upstream.behaviour.hang_data = 1.5
    result: dict[str, object] = {}

    def client() -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                result["refused"] = smtp.sendmail(
                    "anna@example.com", ["thomas.meier@example.org"], PLAIN
                )
        except Exception as exc:  # recorded for the assertion below
            result["error"] = exc

    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(0.7)  # the message is now waiting for upstream's answer
    process.send_signal(signal.SIGTERM)
    thread.join(30)
    _, err = process.communicate(timeout=30)
    assert result.get("refused") == {}, result
    assert process.returncode == 0, err
    assert len(upstream.received) == 1
    assert "Traceback" not in err


def test_port_in_use_is_one_line(tmp_path: Path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "c.toml"
        path.write_text(
            f'[proxy]\nlisten = "127.0.0.1:{port}"\n'
            f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "courtesy.proxy.cli", "run", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert "cannot listen on" in done.stderr and "Traceback" not in done.stderr


def test_run_polls_imap_beside_the_proxy(
    tmp_path: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
):
    """With [imap], `courtesy run` also tracks incoming mail, and stops cleanly."""
    user = dovecot.new_user()
    dovecot.append(
        user, [make_message(subject="Ihre Anfrage", message_id="<run-1@partner.example>")]
    )
    port = free_port()
    db = tmp_path / "s.db"
    config = (
        f'addresses = ["{user}"]\n'
        f'[proxy]\nlisten = "127.0.0.1:{port}"\n'
        f'[store]\nurl = "sqlite:///{db}"\n'
        f'[imap]\nhost = "127.0.0.1"\nport = {dovecot.imap_port}\nsecurity = "none"\n'
        f'username = "{user}"\npassword_env = "COURTESY_TEST_IMAP_PASSWORD"\n'
    )
    monkeypatch.setenv("COURTESY_TEST_IMAP_PASSWORD", PASSWORD)
    process = start_run(tmp_path, config, port)
    try:
        store = open_store(f"sqlite:///{db}", migrate=False)
        try:

            def seen() -> bool:
                with store.session() as session:
                    return session.scalar(select(func.count()).select_from(InboundMessage)) == 1

            assert wait_for(seen, timeout=30)
        finally:
            store.close()
    finally:
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert time.monotonic() - started < 15
    assert "watching INBOX" in out
    assert PASSWORD not in out + err
