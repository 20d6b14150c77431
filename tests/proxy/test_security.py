"""The security promises of README "How it keeps your mail safe", each proven here or
named in SECURITY.md with the test that proves it.

- Loopback only by default; a listener off loopback without AUTH (or without a
  certificate) is refused at start-up.
- With AUTH on, a client that has not authenticated relays nothing: tested from
  a second address, in network namespaces this test creates (root and iproute2
  needed; without them it fails and says so).
- A whole session with a canary password never shows the password in any
  output, log, the store (SQLite with its WAL) or the try-out folder.
- Release tokens: 160 random bits, stored only as a hash, compared in constant time.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from courtesy.proxy import hold
from courtesy.proxy.config import is_loopback, parse_config
from courtesy.proxy.passwords import hash_password
from tests.conftest import DATA
from tests.servers import (
    RecordingUpstream,
    cli_env,
    free_port,
    make_certificate,
    run_courtesy,
    start_courtesy_run,
    wait_for,
)

PLAIN = (DATA / "proxy" / "plain.eml").read_bytes()
# No greeting: the default policy holds it.
NO_GREETING = (
    b"From: Anna Schmidt <anna@example.com>\r\nTo: Thomas Meier <thomas.meier@example.org>\r\n"
    b"Subject: Zahlen\r\nMessage-ID: <held-1@example.com>\r\n\r\nanbei die Zahlen.\r\n\r\nAnna\r\n"
)


courtesy = run_courtesy


# -- listening ---------------------------------------------------------------------------


def test_loopback_only_by_default():
    config = parse_config({})
    assert is_loopback(config.proxy.host) and config.proxy.auth == "none"
    assert is_loopback(config.api.listen.rpartition(":")[0])


@pytest.mark.parametrize(
    ("proxy", "key"),
    [
        ('listen = "10.77.0.1:1587"', "proxy.auth"),
        ('listen = "0.0.0.0:1587"', "proxy.auth"),
        ('listen = "[::]:1587"', "proxy.auth"),
        ('listen = "10.77.0.1:1587"\nauth = "passthrough"', "proxy.tls_cert"),
    ],
)
def test_non_loopback_without_auth_or_certificate_is_refused_at_start(
    tmp_path: Path, proxy: str, key: str
):
    path = tmp_path / "config.toml"
    path.write_text(f"[proxy]\n{proxy}\n")
    for args in (("run", "-c", str(path)), ("config", "check", "-c", str(path))):
        done = courtesy(tmp_path, *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        [line] = done.stderr.splitlines()
        assert line.startswith("courtesy: error: ") and key in line, line


# -- a second address: network namespaces -----------------------------------------------


class Namespaces:
    """Two network namespaces joined by a veth pair: the proxy's and a client's.

    The 10.x addresses live inside the namespaces only; nothing on the host's
    own interfaces changes, and deleting the namespaces removes everything.
    """

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.server_ns, self.client_ns = f"cty-s-{tag}", f"cty-c-{tag}"
        octet = int(tag[:2], 16) % 250 + 1
        self.server_ip, self.client_ip = f"10.201.{octet}.1", f"10.201.{octet}.2"
        self.created: list[str] = []

    def ip(self, *args: str) -> None:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")

    def setup(self) -> None:
        for ns in (self.server_ns, self.client_ns):
            self.ip("netns", "add", ns)
            self.created.append(ns)
            self.ip("-n", ns, "link", "set", "lo", "up")
        self.ip(
            "-n",
            self.server_ns,
            "link",
            "add",
            "veth-s",
            "type",
            "veth",
            "peer",
            "name",
            "veth-c",
            "netns",
            self.client_ns,
        )
        for ns, dev, address in (
            (self.server_ns, "veth-s", self.server_ip),
            (self.client_ns, "veth-c", self.client_ip),
        ):
            self.ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            self.ip("-n", ns, "link", "set", dev, "up")

    def teardown(self) -> None:
        for ns in self.created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail(
            "this test needs root and iproute2 to create network namespaces "
            "(CI runs as root); run it as root: sudo .venv/bin/pytest tests/proxy/test_security.py"
        )
    spaces = Namespaces()
    try:
        spaces.setup()
    except OSError as exc:
        spaces.teardown()
        pytest.fail(f"cannot create network namespaces here ({exc}); CI must run this test")
    yield spaces
    spaces.teardown()


CLIENT_SCRIPT = textwrap.dedent(
    """
    import base64, json, smtplib, socket, ssl, sys
    host, port, user, password, default_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    out = {}
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE  # the test is about AUTH, not the certificate
    msg = b"From: anna@example.com\\r\\nTo: bob@example.org\\r\\nSubject: from afar\\r\\n\\r\\nHallo Bob,\\r\\n"

    def attempt(starttls, login):
        with smtplib.SMTP(host, port, timeout=20) as c:
            c.ehlo()
            if starttls:
                c.starttls(context=tls)
                c.ehlo()
            if login is not None and not starttls:
                # smtplib will not offer AUTH that is not advertised: say it by hand.
                blob = base64.b64encode(("\\0" + user + "\\0" + login).encode()).decode()
                return {"login": c.docmd("AUTH", "PLAIN " + blob)[0]}
            if login is not None:
                try:
                    c.login(user, login)
                except smtplib.SMTPException as exc:
                    return {"login": getattr(exc, "smtp_code", str(exc))}
            mail = c.mail("anna@example.com")[0]
            rcpt = c.rcpt("bob@example.org")[0] if mail == 250 else None
            data = c.data(msg)[0] if rcpt == 250 else c.docmd("DATA")[0]
            return {"mail": mail, "rcpt": rcpt, "data": data}

    out["plain"] = attempt(False, None)
    out["starttls_no_auth"] = attempt(True, None)
    out["auth_without_tls"] = attempt(False, password)
    out["wrong_password"] = attempt(True, "wrong-" + password)
    out["good"] = attempt(True, password)
    try:
        socket.create_connection((host, default_port), timeout=5).close()
        out["loopback_default_reachable"] = True
    except OSError:
        out["loopback_default_reachable"] = False
    print(json.dumps(out))
    """
)


def test_no_relaying_for_unauthenticated_clients_from_another_address(
    tmp_path: Path, namespaces: Namespaces
):
    cert, key = make_certificate(tmp_path / "tls")
    port, default_port = 2587, 2588
    password = "s3cret-" + uuid.uuid4().hex[:8]
    tryout = tmp_path / "tryout"
    config = tmp_path / "config.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [proxy]
            listen = "{namespaces.server_ip}:{port}"
            auth = "local"
            tls_cert = "{cert}"
            tls_key = "{key}"
            [proxy.users]
            anna = "{hash_password(password)}"
            [store]
            url = "sqlite:///{tmp_path / "store.db"}"
            [tryout]
            folder = "{tryout}"
            [api]
            enabled = false
            [policy]
            greeting = "relay"
            """
        )
    )
    default_config = tmp_path / "default.toml"  # everything default but the port
    default_config.write_text(
        f'[proxy]\nlisten = "127.0.0.1:{default_port}"\n[api]\nenabled = false\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "default.db"}"\n'
        f'[tryout]\nfolder = "{tmp_path / "tryout-default"}"\n'
    )
    env = cli_env(tmp_path)
    servers = [
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                namespaces.server_ns,
                sys.executable,
                "-m",
                "courtesy.proxy.cli",
                "run",
                "-c",
                str(path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for path in (config, default_config)
    ]
    try:
        wait = (
            "import socket,sys,time\n"
            "for host, port in ((sys.argv[1], int(sys.argv[2])), ('127.0.0.1', int(sys.argv[3]))):\n"
            "    for _ in range(400):\n"
            "        try:\n"
            "            socket.create_connection((host, port), timeout=1).close(); break\n"
            "        except OSError: time.sleep(0.05)\n"
            "    else: sys.exit(1)\n"
        )
        up = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                namespaces.server_ns,
                sys.executable,
                "-c",
                wait,
                namespaces.server_ip,
                str(port),
                str(default_port),
            ],
            capture_output=True,
            timeout=60,
        )
        assert up.returncode == 0, [s.poll() for s in servers]
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                namespaces.client_ns,
                sys.executable,
                "-c",
                CLIENT_SCRIPT,
                namespaces.server_ip,
                str(port),
                "anna",
                password,
                str(default_port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
    finally:
        outputs = []
        for server in servers:
            server.send_signal(signal.SIGTERM)
            outputs.append(server.communicate(timeout=30))
    # Off loopback, STARTTLS comes first: nothing without it (RFC 3207: 530).
    assert result["plain"]["mail"] == 530, result
    # Encrypted but not authenticated: no MAIL, no RCPT, no DATA (RFC 4954: 530).
    assert result["starttls_no_auth"]["mail"] == 530, result
    assert result["starttls_no_auth"]["data"] in (503, 530), result
    # AUTH is refused without TLS off loopback, and a wrong password is 535.
    assert result["auth_without_tls"].get("login") in (530, 538), result
    assert result["wrong_password"].get("login") == 535, result
    # The positive control: the same client, authenticated, gets its mail through.
    assert result["good"] == {"mail": 250, "rcpt": 250, "data": 250}, result
    assert len(list((tryout / "new").iterdir())) == 1
    # A proxy with the default loopback listener is not reachable from the other address.
    assert result["loopback_default_reachable"] is False
    for out, err in outputs:
        assert "Traceback" not in err
        assert password not in out + err


# -- a whole session with a canary password ----------------------------------------------


def _grep_files(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found.extend(f"{path.name}: {n!r}" for n in needles if n in data)
    return found


def _needles(canary: str) -> list[bytes]:
    """The canary as written, and as it would appear base64-encoded or in UTF-16."""
    raw = canary.encode()
    return [raw, base64.b64encode(raw)[:16], canary.encode("utf-16-le")]


def test_a_canary_password_never_appears_anywhere(tmp_path: Path):
    canary_env = "CANARY-env-" + uuid.uuid4().hex
    canary_cmd = "CANARY-cmd-" + uuid.uuid4().hex
    wrong = "CANARY-wrong-" + uuid.uuid4().hex
    upstream = RecordingUpstream().start()
    upstream.behaviour.users = {"anna@example.com": canary_env}
    env = cli_env(
        tmp_path,
        COURTESY_TEST_PASSWORD=canary_env,
        COURTESY_TEST_CMD_SECRET=canary_cmd,
        COURTESY_TEST_WRONG=wrong,
    )
    work = tmp_path / "work"
    work.mkdir()
    outputs: list[str] = []

    def config(name: str, password_line: str, port: int) -> Path:
        path = work / f"{name}.toml"
        path.write_text(
            textwrap.dedent(
                f"""
                [proxy]
                listen = "127.0.0.1:{port}"
                [api]
                listen = "127.0.0.1:{free_port()}"
                [store]
                url = "sqlite:///{work / "store.db"}"
                [tryout]
                folder = "{work / "tryout"}"
                [upstream]
                host = "127.0.0.1"
                port = {upstream.port}
                security = "none"
                timeout = "5s"
                username = "anna@example.com"
                {password_line}
                """
            )
        )
        return path

    def session(path: Path, port: int, messages: list[bytes]) -> list[int]:
        check = courtesy(work, "--log-level", "debug", "config", "check", "-c", str(path), env=env)
        outputs.extend([check.stdout, check.stderr])
        assert check.returncode == 0, check.stderr
        server = start_courtesy_run(
            ["-c", str(path)], port, options=["--log-level", "debug"], env=env, cwd=work
        )
        codes = []
        try:
            for message in messages:
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                    try:
                        client.sendmail("anna@example.com", ["thomas.meier@example.org"], message)
                        codes.append(250)
                    except smtplib.SMTPResponseException as exc:
                        codes.append(exc.smtp_code)
                    except smtplib.SMTPRecipientsRefused as exc:
                        codes.extend(code for code, _ in exc.recipients.values())
            # The notice for the held message goes out with the same login.
            wait_for(lambda: any(b"X-Courtesy-Notice" in r.content for r in upstream.received), 10)
        finally:
            server.send_signal(signal.SIGTERM)
            out, err = server.communicate(timeout=60)
            outputs.extend([out, err])
        assert "Traceback" not in err, err
        return codes

    try:
        # password_env: a relayed and a held message.
        port = free_port()
        codes = session(
            config("env", 'password_env = "COURTESY_TEST_PASSWORD"', port),
            port,
            [PLAIN, NO_GREETING],
        )
        assert codes == [250, 250]
        assert any(b"Termin am Dienstag" in r.content for r in upstream.received)
        # password_command: the same, through a shell line (that names a variable, not the secret).
        upstream.behaviour.users = {"anna@example.com": canary_cmd}
        port = free_port()
        cmd = 'password_command = "printf \'%s\\\\n\' \\"$COURTESY_TEST_CMD_SECRET\\""'
        codes = session(config("cmd", cmd, port), port, [PLAIN])
        assert codes == [250]
        # A failed upstream login: the client is told to retry, the log says why.
        port = free_port()
        codes = session(
            config("wrong", 'password_env = "COURTESY_TEST_WRONG"', port), port, [PLAIN]
        )
        assert codes and all(400 <= c < 500 for c in codes), codes
        assert any("refused" in text for text in outputs)
    finally:
        upstream.close()

    needles = [n for canary in (canary_env, canary_cmd, wrong) for n in _needles(canary)]
    store_files = sorted(work.glob("store.db*"))
    assert [p.name for p in store_files][:1] == ["store.db"]
    leaks = [f"output {i}" for i, text in enumerate(outputs) for n in needles if n in text.encode()]
    leaks += _grep_files(work, needles)  # store.db, -wal, -shm, the try-out folder, configs
    assert leaks == []
    # The held message's release token is in the notice only, never in the store.
    notice = next(r.content for r in upstream.received if b"X-Courtesy-Notice: held" in r.content)
    tokens = {
        part.split(b"@")[0]
        for part in notice.replace(b"=\r\n", b"").split(b"+")
        if b"courtesy.invalid" in part
    }
    assert tokens, notice
    assert _grep_files(work, sorted(tokens)) == []


# -- release tokens ------------------------------------------------------------------------


def test_release_tokens_are_random_hashed_and_compared_in_constant_time():
    tokens = {hold.new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    assert hold.TOKEN_BYTES * 8 >= 128  # unguessable: 160 random bits from `secrets`
    assert all(len(t) == 32 and t.isalnum() for t in tokens)
    token = next(iter(tokens))
    stored = hold.hash_token(token)
    assert token not in stored and len(stored) == 64  # only the SHA-256 is stored
    assert hold.token_matches(token.upper(), stored)
    assert not hold.token_matches(hold.new_token(), stored)
    assert not hold.token_matches(token, None)  # used: the hash is cleared
    # Constant time: the comparison is hmac.compare_digest over equal-length digests.
    assert "hmac.compare_digest(" in inspect.getsource(hold.token_matches)


def test_security_md_names_only_tests_that_exist():
    """Every test SECURITY.md cites exists, so the document cannot rot."""
    root = Path(__file__).parents[2]
    text = (root / "SECURITY.md").read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)?)`|`::(\w+)`", text)
    assert len(cited) > 10
    current = ""
    for path, name, short in cited:
        if path:
            current = path
            assert (root / path).exists(), path
            name = name.removeprefix("::")
        else:
            name = short
        if name:
            assert f"def {name}(" in (root / current).read_text(), f"{current}::{name}"
    for bench in re.findall(r"`(bench/\w+\.py)`", text):
        assert (root / bench).exists(), bench
