"""A small read-only facade over imapclient that speaks the poller's language.

One method per thing the poller does (``examine_folder``, ``fetch_headers``,
``wait_for_change``), UIDs only, Python types out, and one exception tree:
:class:`ImapConnectionError` (worth a retry with backoff) versus
:class:`ImapAuthError` / :class:`ImapError` (the user has to fix something).
Folders are only ever opened with EXAMINE and bodies only read with
BODY.PEEK, so nothing here can change a flag or a message.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imapclient import join_message_ids
from imapclient.response_parser import parse_fetch_response

from courtesy.proxy.config import ImapSettings
from courtesy.proxy.imap_fetch import FetchedHeaders, parse_header_fetch
from courtesy.proxy.secrets import SecretError, resolve_password

log = logging.getLogger(__name__)

# Header fields the poller needs: addressing, threading, and the signs of automated mail.
HEADER_FIELDS = (
    "FROM",
    "SENDER",
    "TO",
    "CC",
    "SUBJECT",
    "DATE",
    "MESSAGE-ID",
    "IN-REPLY-TO",
    "REFERENCES",
    "LIST-ID",
    "LIST-UNSUBSCRIBE",
    "LIST-POST",
    "AUTO-SUBMITTED",
    "PRECEDENCE",
    "CONTENT-TYPE",
    "RETURN-PATH",
    "X-AUTOREPLY",
    "X-AUTORESPOND",
    "X-FAILED-RECIPIENTS",
)
_HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS (" + " ".join(HEADER_FIELDS) + ")]"
_HEADER_KEY = b"BODY[HEADER.FIELDS (" + " ".join(HEADER_FIELDS).encode() + b")]"
# UIDs per FETCH FLAGS command: keeps the command line well under servers' limits.
_FLAGS_CHUNK = 1000


class ImapError(RuntimeError):
    """An IMAP problem the user has to fix (a missing folder, a refused command)."""


class ImapAuthError(ImapError):
    """The server refused the login; the message says with what, never the password."""


class ImapConnectionError(ImapError, ConnectionError):
    """The connection failed or broke; worth another try after a pause."""


class ImapCertificateError(ImapConnectionError):
    """The server's certificate did not verify (ca_file, host name)."""


@dataclass(frozen=True)
class FolderStatus:
    """What EXAMINE says about a folder."""

    name: str
    uidvalidity: int
    uidnext: int | None
    exists: int
    highest_modseq: int | None


def _token(command: str, timeout: float) -> str:
    """Run ``oauth2_token_command`` and return the access token it prints."""
    try:
        done = subprocess.run(
            command, shell=True, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise SecretError(
            f"imap.oauth2_token_command did not finish within {timeout:.0f}s"
        ) from None
    if done.returncode != 0:
        raise SecretError(f"imap.oauth2_token_command failed with exit status {done.returncode}")
    token = done.stdout.decode("utf-8", "replace").strip().split("\n", 1)[0].strip()
    if not token:
        raise SecretError("imap.oauth2_token_command printed nothing")
    return token


def _tls_context(settings: ImapSettings) -> ssl.SSLContext:
    """Certificate and host name verification always on; ca_file replaces the system CAs."""
    try:
        return ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ImapError(f"imap.ca_file: cannot load {settings.ca_file}: {exc}") from None


def _utc_or_none(when: object) -> datetime | None:
    """An INTERNALDATE from imapclient in UTC; None when missing or out of range in UTC.

    The poller then falls back to the Date header or the time of the poll.
    """
    if not isinstance(when, datetime):
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, year 9999 west of it
        return None


class Mailbox:
    """One logged-in, read-only IMAP connection.

    ``account`` ("user@host") names the mailbox in the store, so state of two
    servers or two users never mixes.
    """

    def __init__(self, settings: ImapSettings, *, use_condstore: bool = True) -> None:
        self.settings = settings
        self.use_condstore = use_condstore
        self.account = f"{settings.username or ''}@{settings.host}".lower()
        self._client: IMAPClient | None = None
        self.condstore = False
        self.can_idle = False
        self._idling = False

    # -- connection -------------------------------------------------------------------

    def connect(self) -> Mailbox:
        settings = self.settings
        where = f"{settings.host}:{settings.port}"
        timeout = settings.timeout.total_seconds()
        try:
            context = _tls_context(settings) if settings.security != "none" else None
            client = IMAPClient(
                settings.host,
                port=settings.port,
                ssl=settings.security == "tls",
                ssl_context=context,
                timeout=timeout,
            )
            if settings.security == "starttls":
                client.starttls(context)
        except ssl.SSLCertVerificationError as exc:
            raise ImapCertificateError(
                f"imap: the certificate of {where} did not verify ({exc.verify_message}); "
                "set imap.ca_file to the CA that signed it"
            ) from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ImapConnectionError(f"imap: cannot connect to {where}: {_why(exc)}") from None
        # INTERNALDATE as sent (with its offset), not "normalised" to a naive local time
        # with today's DST offset: exact for every date, and cheaper per message.
        client.normalise_times = False
        self._client = client
        try:
            self._login(client)
            caps = set(client.capabilities())
            self.can_idle = b"IDLE" in caps
            if self.use_condstore and b"CONDSTORE" in caps:
                client.enable("CONDSTORE")
                self.condstore = True
        except BaseException:
            self.close()
            raise
        return self

    def _login(self, client: IMAPClient) -> None:
        settings = self.settings
        username = settings.username or ""
        try:
            if settings.oauth2_token_command:
                token = _token(settings.oauth2_token_command, settings.timeout.total_seconds())
                client.oauth2_login(username, token)
                return
            password = resolve_password(settings, "imap", settings.username)
            if password is None:
                raise ImapAuthError(
                    "imap: no password configured (set password_command, password_env, "
                    "password_keyring or oauth2_token_command)"
                )
            client.login(username, password.reveal())
        except LoginError as exc:
            raise ImapAuthError(
                f"imap: {settings.host} refused the login of {username!r}: {_why(exc)}"
            ) from None
        except imaplib.IMAP4.abort as exc:
            raise ImapConnectionError(f"imap: connection lost at login: {_why(exc)}") from None
        except OSError as exc:
            raise ImapConnectionError(f"imap: connection lost at login: {_why(exc)}") from None

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self._idling:
                self._idling = False
                client.idle_done()
            client.logout()
        except Exception:
            try:
                client.shutdown()
            except Exception:
                log.debug("closing the IMAP connection failed", exc_info=True)

    def interrupt(self) -> None:
        """Break a blocking read from another thread; the reader gets ImapConnectionError."""
        client = self._client
        if client is not None:
            with contextlib.suppress(OSError):
                client.socket().shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise ImapConnectionError("imap: not connected")
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one imapclient call, turning its errors into ours."""
        try:
            return fn(*args, **kwargs)
        except (imaplib.IMAP4.abort, OSError) as exc:
            raise ImapConnectionError(f"imap: connection lost during {what}: {_why(exc)}") from None
        except imaplib.IMAP4.error as exc:
            raise ImapError(f"imap: {what} failed: {_why(exc)}") from None

    # -- folders ----------------------------------------------------------------------

    def find_sent_folder(self) -> str | None:
        """The folder with SPECIAL-USE \\Sent, else one of the usual names."""
        found = self._call("LIST", self.client.find_special_folder, b"\\Sent")
        return str(found) if found else None

    def folder_names(self) -> set[str]:
        return {str(name) for _, _, name in self._call("LIST", self.client.list_folders)}

    def examine_folder(self, name: str) -> FolderStatus:
        """Open a folder read-only (EXAMINE) and report its UID state."""
        try:
            info = self.client.select_folder(name, readonly=True)
        except (imaplib.IMAP4.abort, OSError) as exc:
            raise ImapConnectionError(
                f"imap: connection lost opening {name!r}: {_why(exc)}"
            ) from None
        except imaplib.IMAP4.error as exc:
            raise ImapError(f"imap: cannot open folder {name!r}: {_why(exc)}") from None
        modseq = info.get(b"HIGHESTMODSEQ") if self.condstore else None
        uidnext = info.get(b"UIDNEXT")
        return FolderStatus(
            name=name,
            uidvalidity=int(info[b"UIDVALIDITY"]),
            uidnext=int(uidnext) if uidnext is not None else None,
            exists=int(info.get(b"EXISTS", 0)),
            highest_modseq=int(modseq) if modseq is not None else None,
        )

    # -- reading ----------------------------------------------------------------------

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid`` in the open folder, ascending."""
        found = self._call("UID SEARCH", self.client.search, ["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in found if uid > last_uid)

    def all_uids(self) -> set[int]:
        return set(self._call("UID SEARCH", self.client.search, ["ALL"]))

    def changed_since(self, modseq: int) -> list[int]:
        """UIDs whose flags changed after ``modseq`` (CONDSTORE SEARCH MODSEQ)."""
        found = self._call("UID SEARCH MODSEQ", self.client.search, ["MODSEQ", str(modseq + 1)])
        return sorted(found)

    def fetch_headers(self, uids: Sequence[int]) -> Iterator[FetchedHeaders]:
        """Header fields (BODY.PEEK: \\Seen stays as it is), flags and INTERNALDATE."""
        if not uids:
            return
        found = self._call("FETCH headers", self._fetch_header_items, uids)
        for uid in sorted(found):
            yield found[uid]

    def _fetch_header_items(self, uids: Sequence[int]) -> dict[int, FetchedHeaders]:
        """One UID FETCH, read by :mod:`imap_fetch` or, for other shapes, by imapclient.

        This is imapclient's own ``fetch`` (same command, same checks) with
        the response handed to the fast reader first.
        """
        client = self.client
        wanted = set(uids)
        command = client._imap  # imapclient's imaplib connection, as its fetch() uses it
        tag = command._command(
            "UID", "FETCH", join_message_ids(list(uids)), f"({_HEADER_ITEM} FLAGS INTERNALDATE)"
        )
        typ, data = command._command_complete("FETCH", tag)
        if typ != "OK":
            said = data[0] if data else b""
            text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
            raise imaplib.IMAP4.error(f"FETCH failed: {text}")
        typ, data = command._untagged_response(typ, data, "FETCH")
        fast = parse_header_fetch(data)
        if fast is not None:
            return {uid: items for uid, items in fast.items() if uid in wanted}
        return self._slow_header_items(data, wanted)

    def _slow_header_items(self, data: Any, wanted: set[int]) -> dict[int, FetchedHeaders]:
        parsed = parse_fetch_response(data, self.client.normalise_times, True)
        out: dict[int, FetchedHeaders] = {}
        for uid, fields in parsed.items():
            if uid not in wanted:  # unsolicited FETCH of another message
                continue
            header = fields.get(_HEADER_KEY)
            if header is None:  # some servers echo the item name differently
                header = next((v for k, v in fields.items() if k.startswith(b"BODY[")), b"")
            when = _utc_or_none(fields.get(b"INTERNALDATE"))
            out[int(uid)] = FetchedHeaders(
                int(uid), tuple(fields.get(b"FLAGS", ())), when, header or b""
            )
        return out

    def fetch_flags(self, uids: Sequence[int]) -> dict[int, frozenset[bytes]]:
        """FLAGS of the given UIDs, in chunks; expunged ones are simply missing."""
        flags: dict[int, frozenset[bytes]] = {}
        ordered = sorted(uids)
        for start in range(0, len(ordered), _FLAGS_CHUNK):
            chunk = ordered[start : start + _FLAGS_CHUNK]
            found = self._call("FETCH FLAGS", self.client.fetch, chunk, ["FLAGS"])
            for uid, data in found.items():
                flags[int(uid)] = frozenset(data.get(b"FLAGS", ()))
        return flags

    # -- waiting ----------------------------------------------------------------------

    def wait_for_change(
        self,
        folder: str,
        seconds: float,
        stop: Any,
        known: FolderStatus | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> bool:
        """IDLE on ``folder`` for up to ``seconds``; True when something changed.

        ``known`` is the folder's state at the last sync: if the folder moved
        on since (mail arrived during the sync), this returns at once instead
        of waiting for news IDLE would never send. Checks ``stop`` (a
        threading.Event) every second so a shutdown is quick. An IDLE that
        ends early without any response means the connection died.
        """
        client = self.client
        now = self.examine_folder(folder)
        if known is not None and (
            now.uidvalidity != known.uidvalidity
            or now.uidnext != known.uidnext
            or now.exists != known.exists
            or now.highest_modseq != known.highest_modseq
        ):
            return True
        self._call("IDLE", client.idle)
        self._idling = True
        if on_idle is not None:
            on_idle()
        deadline = time.monotonic() + seconds
        changed = False
        try:
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                slice_ = min(1.0, left)
                began = time.monotonic()
                responses = self._call("IDLE", client.idle_check, timeout=slice_)
                if any(_is_change(r) for r in responses):
                    changed = True
                    break
                if not responses and time.monotonic() - began < slice_ / 2:
                    # poll() said readable but nothing came: end of stream.
                    raise ImapConnectionError("imap: the server closed the connection during IDLE")
        finally:
            if self._idling:
                self._idling = False
                self._call("IDLE DONE", client.idle_done)
        return changed


def _is_change(response: Any) -> bool:
    if isinstance(response, tuple) and len(response) >= 2:
        return response[1] in (b"EXISTS", b"EXPUNGE", b"FETCH", b"VANISHED")
    return False


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    if isinstance(exc, imaplib.IMAP4.error) and text.startswith("b'"):
        text = text[2:-1]
    return text or type(exc).__name__


def describe(settings: ImapSettings) -> str:
    """Where the poller connects, for log lines (never a password)."""
    return f"{settings.username or '?'}@{settings.host}:{settings.port} ({settings.security})"


__all__ = [
    "FetchedHeaders",
    "FolderStatus",
    "ImapAuthError",
    "ImapCertificateError",
    "ImapConnectionError",
    "ImapError",
    "Mailbox",
    "describe",
]
