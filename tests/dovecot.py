"""A real Dovecot IMAP server on loopback, in a temporary directory, for tests and benchmarks.

Any user name logs in with the one shared password (static passdb), and each
user's Maildir is created on first login, so every test can take a fresh
mailbox with :meth:`Dovecot.new_user` instead of cleaning up after others.

Pitfalls this handles: ``mkdtemp`` makes 0700 directories that Dovecot's
mail processes (uid 5000 when run as root) cannot traverse, so the run
directory is made 0755 and is not nested under a private parent; stopping
takes one to three seconds (the log process exits last), so ``stop`` waits on
the master pid and then kills the process group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from tests.servers import free_port, make_certificate, wait_port

PASSWORD = "secret-pw"
MAIL_UID = 5000


class DovecotMissing(RuntimeError):
    pass


def _config(base: Path, imap: int, imaps: int, cert: Path, key: str, as_root: bool) -> str:
    if as_root:
        users = f"uid={MAIL_UID} gid={MAIL_UID} home={base}/mail/%u"
        owner = f"first_valid_uid = {MAIL_UID}\nlast_valid_uid = {MAIL_UID}\n"
    else:
        user = os.environ.get("USER") or str(os.getuid())
        users = f"uid={os.getuid()} gid={os.getgid()} home={base}/mail/%u"
        owner = (
            f"default_internal_user = {user}\ndefault_internal_group = {user}\n"
            f"default_login_user = {user}\n"
            "service anvil {\n  chroot =\n}\nservice imap-login {\n  chroot =\n}\n"
        )
    return f"""\
base_dir = {base}/run
state_dir = {base}/state
instance_name = courtesy-test-{imap}
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
{owner}
mail_location = maildir:~/Maildir
mail_fsync = never
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = {users}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
"""


@dataclass
class Dovecot:
    """One Dovecot instance; ``start``/``stop`` may be called repeatedly (restart tests)."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="courtesy-dovecot-")))
    imap_port: int = field(default_factory=free_port)
    imaps_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        if shutil.which("dovecot") is None or shutil.which("doveadm") is None:
            raise DovecotMissing(
                "dovecot is not installed; run .ci/run or apt-get install dovecot-imapd"
            )
        os.chmod(self.base, 0o755)
        as_root = os.geteuid() == 0
        for sub in ("run", "state", "mail"):
            (self.base / sub).mkdir(exist_ok=True)
        if as_root:
            os.chown(self.base / "mail", MAIL_UID, MAIL_UID)
        self.cert, self.key = make_certificate(self.base / "tls")
        self.conf = self.base / "dovecot.conf"
        self.conf.write_text(
            _config(self.base, self.imap_port, self.imaps_port, self.cert, str(self.key), as_root)
        )
        self.pid: int | None = None

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> Dovecot:
        # After a kill the old pid file stays behind; never read a dead master's pid.
        (self.base / "run" / "master.pid").unlink(missing_ok=True)
        # The daemon keeps inherited pipes open: give it no pipe to wait on.
        with (self.base / "start.err").open("wb") as err:
            done = subprocess.run(
                ["dovecot", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=err
            )
        if done.returncode != 0:
            raise RuntimeError(
                "dovecot did not start: " + (self.base / "start.err").read_text(errors="replace")
            )
        wait_port(self.imap_port)
        wait_port(self.imaps_port)
        pid_file = self.base / "run" / "master.pid"
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            # The master writes it just after it starts listening.
            text = pid_file.read_text().strip() if pid_file.exists() else ""
            if text:
                break
            time.sleep(0.01)
        self.pid = int(text)
        return self

    def stop(self, timeout: float = 5.0, *, kill: bool = False) -> None:
        """SIGTERM and wait (1-3 s); ``kill`` is a crash: SIGKILL to the whole group at once."""
        pid, self.pid = self.pid, None
        if pid is None:
            return
        try:
            if kill:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.base / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    # -- users and mail ----------------------------------------------------------

    def new_user(self) -> str:
        return f"u{uuid.uuid4().hex[:10]}@example.test"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def imap_settings(self, user: str, /, **extra: Any) -> dict[str, Any]:
        """The ``[imap]`` table for ``user`` on the plain port; ``extra`` adds or overrides."""
        return imap_settings(self.imap_port, user, **extra)

    def client(self, user: str) -> IMAPClient:
        """A plain-port imapclient connection logged in as ``user`` (test driver side)."""
        client = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=30)
        client.login(user, PASSWORD)
        return client

    def append(
        self,
        user: str,
        messages: Iterable[bytes],
        folder: str = "INBOX",
        flags: Sequence[bytes] = (),
        chunk: int = 1000,
    ) -> None:
        """Seed mail with MULTIAPPEND, a thousand messages per command."""
        with self.client(user) as client:
            batch: list[dict[str, object]] = []
            for raw in messages:
                batch.append({"msg": raw, "flags": list(flags)})
                if len(batch) >= chunk:
                    client.multiappend(folder, batch)
                    batch = []
            if batch:
                client.multiappend(folder, batch)

    def doveadm(self, *args: str) -> str:
        done = subprocess.run(
            ["doveadm", "-c", str(self.conf), *args], check=True, capture_output=True, text=True
        )
        return done.stdout

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, frozenset[bytes]]:
        """Every message's flags by UID, read with EXAMINE (changes nothing)."""
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            found = client.fetch(client.search("ALL"), ["FLAGS"])
            return {uid: frozenset(data[b"FLAGS"]) for uid, data in found.items()}


def imap_settings(port: int, user: str, /, **extra: Any) -> dict[str, Any]:
    """The ``[imap]`` table for ``user`` on a plain IMAP port of the test server."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": user,
        "password": PASSWORD,
        **extra,
    }


def make_message(
    *,
    sender: str = "Thomas Meier <thomas.meier@partner.example>",
    to: str = "anna@example.test",
    cc: str | None = None,
    subject: str = "Angebot",
    body: str = "Hallo Anna,\n\nkönnen Sie mir das Angebot schicken?\n\nViele Grüße\nThomas\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    date: datetime | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    message["Message-ID"] = message_id or make_msgid(domain="partner.example")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def bulk_messages(count: int, prefix: str = "bulk") -> list[bytes]:
    """Many small person messages, built as bytes (EmailMessage takes ~2 ms each)."""
    return [
        (
            f"From: Thomas Meier <thomas.meier@partner.example>\r\n"
            f"To: anna@example.test\r\nSubject: Nachricht {i}\r\n"
            f"Date: Mon, 02 Mar 2026 09:{i % 60:02d}:00 +0100\r\n"
            f"Message-ID: <{prefix}-{i}@partner.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Hallo Anna,\r\n\r\nbitte um Rückmeldung zu Punkt {i}.\r\n\r\nThomas\r\n"
        ).encode()
        for i in range(count)
    ]
