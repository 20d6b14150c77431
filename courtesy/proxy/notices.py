"""What courtesy tells the user about held and rejected mail, in German or English.

Three kinds of text live here: the *notice* that a message was held (what was
found, one sentence per finding, and the ways out as ``mailto:`` links to
command addresses), the short *confirmation* after a command, and the 550
*reject* text a mail client shows when it keeps the draft.

Notices are delivered into the user's INBOX by IMAP APPEND when ``[imap]`` is
configured (nothing leaves the mailbox), else as a mail through the upstream
relay to the sender. They never pass through the proxy's own front, so they
are never checked or held.
"""

from __future__ import annotations

import asyncio
import html
import logging
import ssl
import subprocess
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from typing import Any, Literal
from urllib.parse import quote

from courtesy.proxy.config import Config, ImapSettings
from courtesy.proxy.relay import Credentials, Upstream, UpstreamAuthFailed, UpstreamUnavailable
from courtesy.proxy.secrets import Secret, SecretError, resolve_password

log = logging.getLogger(__name__)

Language = Literal["de", "en"]
Command = Literal["release", "discard", "allow"]

COMMAND_DOMAIN = "courtesy.invalid"
COMMANDS: tuple[Command, ...] = ("release", "discard", "allow")


def command_address(command: Command, held_id: int, token: str) -> str:
    """``release+12+TOKEN@courtesy.invalid``: .invalid, so it goes nowhere outside the proxy."""
    return f"{command}+{held_id}+{token}@{COMMAND_DOMAIN}"


def mailto(command: Command, held_id: int, token: str, subject: str) -> str:
    return f"mailto:{command_address(command, held_id, token)}?subject={quote(subject)}"


# --- wording ---------------------------------------------------------------------

_TEXTS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "held_subject": "[courtesy] Held: {subject}",
        "held_intro": (
            "courtesy held back your message {subject} to {to} (#{id}, {when}). "
            "It has not been sent."
        ),
        "found": "What was found:",
        "ways_out": "What you can do (each link opens a new mail: just send it):",
        "release": "Send it as it is",
        "discard": "Discard it (then correct the draft and send it again)",
        "allow": "Send it and don't ask again for these recipients",
        "cli": "Or on the command line: courtesy held release {id} / courtesy held discard {id}",
        "expire": "Unless you decide, it will be {action} automatically at {when}.",
        "expire_release": "sent",
        "expire_discard": "discarded",
        "evidence": 'you wrote "{evidence}"',
        "suggestion": "suggestion: {suggestion}",
        "no_subject": "(no subject)",
        "released_subject": "[courtesy] Sent: {subject}",
        "released": "Your message {subject} (#{id}) was sent to {to}.",
        "refused": "The upstream server refused these recipients: {refused}.",
        "allowed_subject": "[courtesy] Sent, won't ask again: {subject}",
        "allowed": "From now on courtesy will not raise these for the recipients:",
        "failed_subject": "[courtesy] Not sent yet: {subject}",
        "failed": (
            "Sending your message {subject} (#{id}) failed: {error}. It is still held; "
            "use the same link again later, or: courtesy held release {id}"
        ),
        "discarded_subject": "[courtesy] Discarded: {subject}",
        "discarded": (
            "Your message {subject} (#{id}) was discarded and not sent. If your mail program "
            "keeps a copy in Sent, you can correct it there and send it again."
        ),
        "invalid_subject": "[courtesy] Nothing done",
        "invalid": (
            "The command {command} for held message #{id} was not carried out: the link is not "
            "valid or was already used. Nothing was changed."
        ),
        "reject_head": "courtesy did not send this message:",
        "reject_tail": "Send it again unchanged within {window} to send it anyway.",
        "held_reply": "Held by courtesy as #{id}, not sent yet; a notice with the ways out follows",
        "command_reply": "courtesy command received; a confirmation follows",
    },
    "de": {
        "held_subject": "[courtesy] Zurückgehalten: {subject}",
        "held_intro": (
            "courtesy hat Ihre Nachricht {subject} an {to} zurückgehalten (#{id}, {when}). "
            "Sie wurde noch nicht gesendet."
        ),
        "found": "Gefunden:",
        "ways_out": "Was Sie tun können (jeder Link öffnet eine neue Mail: einfach absenden):",
        "release": "Unverändert senden",
        "discard": "Verwerfen (dann den Entwurf korrigieren und neu senden)",
        "allow": "Senden und bei diesen Empfängern nicht mehr fragen",
        "cli": (
            "Oder auf der Kommandozeile: courtesy held release {id} / courtesy held discard {id}"
        ),
        "expire": "Wenn Sie nichts tun, wird sie am {when} automatisch {action}.",
        "expire_release": "gesendet",
        "expire_discard": "verworfen",
        "evidence": "Sie schrieben „{evidence}“",
        "suggestion": "Vorschlag: {suggestion}",
        "no_subject": "(ohne Betreff)",
        "released_subject": "[courtesy] Gesendet: {subject}",
        "released": "Ihre Nachricht {subject} (#{id}) wurde an {to} gesendet.",
        "refused": "Der Mailserver hat diese Empfänger abgelehnt: {refused}.",
        "allowed_subject": "[courtesy] Gesendet, künftig ohne Rückfrage: {subject}",
        "allowed": "Künftig meldet courtesy Folgendes bei diesen Empfängern nicht mehr:",
        "failed_subject": "[courtesy] Noch nicht gesendet: {subject}",
        "failed": (
            "Das Senden Ihrer Nachricht {subject} (#{id}) ist gescheitert: {error}. Sie bleibt "
            "zurückgehalten; nutzen Sie den Link später erneut, oder: courtesy held release {id}"
        ),
        "discarded_subject": "[courtesy] Verworfen: {subject}",
        "discarded": (
            "Ihre Nachricht {subject} (#{id}) wurde verworfen und nicht gesendet. Wenn Ihr "
            "Mailprogramm eine Kopie unter „Gesendet“ ablegt, können Sie sie dort korrigieren "
            "und neu senden."
        ),
        "invalid_subject": "[courtesy] Nichts getan",
        "invalid": (
            "Der Befehl {command} für die zurückgehaltene Nachricht #{id} wurde nicht "
            "ausgeführt: Der Link ist ungültig oder wurde schon benutzt. Nichts wurde geändert."
        ),
        "reject_head": "courtesy hat diese Nachricht nicht gesendet:",
        "reject_tail": (
            "Senden Sie sie innerhalb von {window} unverändert erneut, um sie trotzdem zu "
            "verschicken."
        ),
        "held_reply": (
            "Von courtesy als #{id} zurückgehalten, noch nicht gesendet; "
            "ein Hinweis mit den Auswegen folgt"
        ),
        "command_reply": "courtesy-Befehl erhalten; eine Bestätigung folgt",
    },
}

_UNITS: Mapping[str, Sequence[tuple[int, str, str]]] = {
    "en": ((86400, "day", "days"), (3600, "hour", "hours"), (60, "minute", "minutes")),
    # dative after "innerhalb von"
    "de": ((86400, "Tag", "Tagen"), (3600, "Stunde", "Stunden"), (60, "Minute", "Minuten")),
}
_SECONDS = {"en": ("second", "seconds"), "de": ("Sekunde", "Sekunden")}


def text(language: str, key: str, **values: Any) -> str:
    table = _TEXTS.get(language, _TEXTS["en"])
    return table[key].format(**values)


def say_duration(value: timedelta, language: str) -> str:
    """ "10 minutes" / "10 Minuten": the largest unit that divides the duration."""
    seconds = max(0, round(value.total_seconds()))
    for size, one, many in _UNITS.get(language, _UNITS["en"]):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {one if count == 1 else many}"
    one, many = _SECONDS.get(language, _SECONDS["en"])
    return f"{seconds} {one if seconds == 1 else many}"


def quoted(subject: str | None, language: str) -> str:
    if not subject:
        return text(language, "no_subject")
    return f"„{subject}“" if language == "de" else f'"{subject}"'


def finding_sentence(finding: Mapping[str, Any], language: str) -> str:
    """One sentence: the check's message, then what was written and the suggestion."""
    sentence = str(finding.get("message") or finding.get("code") or "").strip()
    extras = []
    evidence = " ".join(str(finding.get("evidence") or "").split())
    if evidence:
        if len(evidence) > 120:
            evidence = evidence[:117] + "..."
        extras.append(text(language, "evidence", evidence=evidence))
    suggestion = finding.get("suggestion")
    if suggestion:
        extras.append(text(language, "suggestion", suggestion=suggestion))
    if extras:
        sentence = f"{sentence.rstrip('.')} ({'; '.join(extras)})."
    return sentence


def ascii_fold(value: str) -> str:
    """SMTP reply text is ASCII for every client: umlauts spelled out, the rest dropped."""
    for src, dst in (
        ("ä", "ae"),
        ("ö", "oe"),
        ("ü", "ue"),
        ("Ä", "Ae"),
        ("Ö", "Oe"),
        ("Ü", "Ue"),
        ("ß", "ss"),
        ("„", '"'),
        ("“", '"'),
        ("”", '"'),
        ("‘", "'"),
        ("’", "'"),
        ("–", "-"),
        ("—", "-"),
        ("…", "..."),
    ):
        value = value.replace(src, dst)
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if c.isascii() and (c.isprintable() or c == " "))


def reject_text(findings: Sequence[Mapping[str, Any]], window: timedelta, language: str) -> str:
    """The 550 text: a head line, one line per finding, how to send anyway.

    Every line carries the enhanced status code, and stays far below SMTP's
    512-byte reply-line limit.
    """
    lines = [text(language, "reject_head")]
    for finding in findings:
        line = "- " + finding_sentence(finding, language)
        lines.append(line if len(line) <= 300 else line[:297] + "...")
    lines.append(text(language, "reject_tail", window=say_duration(window, language)))
    return "\n".join("5.7.1 " + ascii_fold(line) for line in lines)


# --- messages ------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldInfo:
    """What a notice needs to know about a held message."""

    id: int
    sender: str
    recipients: tuple[str, ...]
    subject: str | None
    held_at: datetime
    findings: tuple[Mapping[str, Any], ...]


def _new_message(sender: str, subject: str, kind: str) -> EmailMessage:
    message = EmailMessage(policy=SMTP_POLICY)
    try:
        message["From"] = HeaderAddress("courtesy", addr_spec=sender)
        message["To"] = sender
    except (ValueError, IndexError):  # a sender the header model cannot write
        message["From"] = "courtesy <postmaster@courtesy.invalid>"
        message["To"] = "postmaster@courtesy.invalid"
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = make_msgid("courtesy", domain=COMMAND_DOMAIN)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Courtesy-Notice"] = kind
    return message


def _local_time(value: datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()


def hold_notice(
    info: HeldInfo,
    token: str,
    language: str,
    *,
    expire: tuple[datetime, str] | None = None,
) -> bytes:
    """The notice that a message was held: findings, then mailto: links to the ways out."""
    lang = language
    subject_q = quoted(info.subject, lang)
    to = ", ".join(info.recipients)
    intro = text(
        lang, "held_intro", subject=subject_q, to=to, id=info.id, when=_local_time(info.held_at)
    )
    findings = [finding_sentence(f, lang) for f in info.findings]
    tag = f"#{info.id} {info.subject or ''}".strip()
    links = [(text(lang, c), mailto(c, info.id, token, f"{c} {tag}")) for c in COMMANDS]
    plain = [intro, "", text(lang, "found")]
    plain += [f"- {f}" for f in findings]
    plain += ["", text(lang, "ways_out")]
    for label, link in links:
        plain += [f"- {label}:", f"  {link}"]
    plain += ["", text(lang, "cli", id=info.id)]
    expire_line = ""
    if expire is not None:
        when, action = expire
        expire_line = text(
            lang, "expire", when=_local_time(when), action=text(lang, f"expire_{action}")
        )
        plain += ["", expire_line]

    esc = html.escape
    parts = [f"<p>{esc(intro)}</p>", f"<p>{esc(text(lang, 'found'))}</p><ul>"]
    parts += [f"<li>{esc(f)}</li>" for f in findings]
    parts += [f"</ul><p>{esc(text(lang, 'ways_out'))}</p><ul>"]
    parts += [f'<li><a href="{esc(link)}">{esc(label)}</a></li>' for label, link in links]
    parts += [f"</ul><p>{esc(text(lang, 'cli', id=info.id))}</p>"]
    if expire_line:
        parts.append(f"<p>{esc(expire_line)}</p>")

    message = _new_message(
        info.sender, text(lang, "held_subject", subject=info.subject or ""), f"held {info.id}"
    )
    message.set_content("\n".join(plain) + "\n", cte="quoted-printable")
    message.add_alternative(
        '<!DOCTYPE html><html><body style="font-family:sans-serif">'
        + "".join(parts)
        + "</body></html>\n",
        subtype="html",
        cte="quoted-printable",
    )
    return message.as_bytes()


def confirmation(sender: str, subject: str, body: str, kind: str) -> bytes:
    """A short confirmation after a command mail."""
    message = _new_message(sender, subject, kind)
    message.set_content(body.rstrip("\n") + "\n", cte="quoted-printable")
    return message.as_bytes()


# --- delivery -----------------------------------------------------------------------


class NoticeError(RuntimeError):
    """A notice could not be delivered; the message says why in one line."""


class NoticeSender:
    """Delivers notices: IMAP APPEND into INBOX when ``[imap]`` is set, else upstream SMTP."""

    def __init__(self, config: Config, upstream: Upstream) -> None:
        self.config = config
        self.upstream = upstream
        self._imap_secret: Secret | None = None

    @property
    def via(self) -> str:
        return "imap" if self.config.imap is not None else "smtp"

    async def deliver(
        self, recipient: str, raw: bytes, credentials: Credentials | None = None
    ) -> None:
        if self.config.imap is not None:
            await asyncio.to_thread(self._append, self.config.imap, raw)
        else:
            await self._send(recipient, raw, credentials)

    async def _send(self, recipient: str, raw: bytes, credentials: Credentials | None) -> None:
        try:
            connection = await self.upstream.acquire(credentials)
        except (UpstreamUnavailable, UpstreamAuthFailed) as exc:
            raise NoticeError(f"upstream: {exc}") from None
        try:
            utf8 = not recipient.isascii() and connection.supports("smtputf8")
            options = ["SMTPUTF8"] if utf8 else []
            reply = await connection.mail(recipient, options)
            if reply.ok:
                reply = await connection.rcpt(recipient, [])
            if reply.ok:
                reply = await connection.data(raw)
            if not reply.ok:
                raise NoticeError(f"upstream answered {reply}")
        except UpstreamUnavailable as exc:
            raise NoticeError(f"upstream: {exc.reason}") from None
        finally:
            await self.upstream.release(connection)

    def _append(self, settings: ImapSettings, raw: bytes) -> None:
        from imapclient import IMAPClient
        from imapclient.exceptions import IMAPClientError

        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        try:
            client = IMAPClient(
                settings.host,
                port=settings.port,
                ssl=settings.security == "tls",
                ssl_context=context,
                timeout=settings.timeout.total_seconds(),
            )
        except (OSError, IMAPClientError) as exc:
            raise NoticeError(f"imap: cannot connect to {settings.host}: {exc}") from None
        try:
            if settings.security == "starttls":
                client.starttls(context)
            if settings.oauth2_token_command:
                client.oauth2_login(settings.username or "", self._oauth2_token(settings))
            else:
                secret = self._imap_password(settings)
                client.login(settings.username or "", secret.reveal() if secret else "")
            client.append("INBOX", raw)
        except (OSError, IMAPClientError) as exc:
            raise NoticeError(f"imap: {type(exc).__name__}: {exc}") from None
        finally:
            try:
                client.logout()
            except (OSError, IMAPClientError):
                client.shutdown()

    def _imap_password(self, settings: ImapSettings) -> Secret | None:
        if self._imap_secret is None:
            try:
                self._imap_secret = resolve_password(settings, "imap", settings.username)
            except SecretError as exc:
                raise NoticeError(str(exc)) from None
        return self._imap_secret

    @staticmethod
    def _oauth2_token(settings: ImapSettings) -> str:
        assert settings.oauth2_token_command is not None
        done = subprocess.run(
            settings.oauth2_token_command,
            shell=True,  # the user's own shell line, like password_command
            capture_output=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise NoticeError("imap.oauth2_token_command failed")
        return done.stdout.decode().split("\n", 1)[0].strip()
