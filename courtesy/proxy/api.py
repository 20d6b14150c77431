"""The local check API for the mail-client add-on, and the override it hands out.

``POST /api/v1/check`` takes a message as JSON (what a compose window knows),
builds an RFC 5322 message from it with the ``email`` package and runs the
proxy's own inspector on it, so the add-on sees exactly the findings the SMTP
front would act on. The answer carries an ``override`` token: an HMAC, under a
per-installation key, over the message's content identity (sender, recipients,
subject, new text). When the user chooses "send anyway", the add-on puts the
token into an ``X-Courtesy-Override`` header; :class:`OverrideInspector` at
the SMTP front relays a message whose content matches, once, and strips the
header before relaying. A changed message, a reused or expired token is
checked as usual.

Only local software the user gave the token to may ask: loopback only, a
bearer token compared in constant time, JSON bodies only (a web page cannot
send those cross-site without a CORS preflight, which is never granted), and
any Origin but a ``moz-extension://`` one is refused.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from typing import Any

from aiohttp import web

from courtesy.checks.message import NotAMessage, parse_message
from courtesy.checks.model import OutgoingMessage
from courtesy.checks.newtext import split_html, split_plain
from courtesy.proxy.config import ApiSettings, is_loopback, parse_hostport
from courtesy.proxy.front import Inspector, Transaction, Verdict
from courtesy.proxy.headers import header_block
from courtesy.store.api import (
    API_TOKEN,
    OVERRIDE_KEY,
    forget_used_overrides,
    installation_secret,
    use_override,
)
from courtesy.store.base import utcnow
from courtesy.store.db import Store

log = logging.getLogger(__name__)

OVERRIDE_HEADER = "X-Courtesy-Override"
# Long enough for a message that waits in the outbox over a weekend; a token
# is single-use and bound to the content, so a longer life costs little.
OVERRIDE_LIFETIME = timedelta(days=3)
# A compose window's text and HTML; the add-on drops inline images (data: URIs) first.
MAX_REQUEST = 4 * 1024 * 1024
FIELDS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "text", "html", "in_reply_to", "references"}
)


# -- secrets --------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiSecrets:
    token: str
    override_key: bytes

    def __repr__(self) -> str:
        return "ApiSecrets(********)"


def load_secrets(store: Store) -> ApiSecrets:
    """The installation's API token and override key, made on first use."""
    with store.session() as session:
        token = installation_secret(session, API_TOKEN)
        key = installation_secret(session, OVERRIDE_KEY)
    return ApiSecrets(token=token, override_key=key.encode("ascii"))


def token_equals(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


# -- content identity -----------------------------------------------------------------


def _normal(text: str) -> str:
    """Letters and digits only, case-folded.

    The compose window's HTML and what the client finally sends differ in
    whitespace, line wrapping (format=flowed), entities and punctuation of the
    HTML-to-text conversion; a changed word still changes the result.
    """
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def _bodies(raw: bytes) -> tuple[str, str]:
    """The first inline text/html and text/plain bodies."""
    plain = html = ""
    for part in message_from_bytes(raw).walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/html" and not html:
            html = _part_text(part)
        elif kind == "text/plain" and not plain:
            plain = _part_text(part)
    return html, plain


def content_keys(
    raw: bytes,
    sender: str,
    recipients: Sequence[str],
    message: OutgoingMessage | None = None,
) -> tuple[str, ...]:
    """The message's content identity, once per body it has (HTML first, then plain).

    Like the reject override's key (``hold.override_key``): the same sender,
    recipients, subject and new text is the same message, whatever Message-ID
    and Date it got. One key per body, because the compose window knows the
    HTML while the client may send HTML, plain text or both. ``message`` is
    ``raw`` as the checks already parsed it; without it ``raw`` is parsed here.
    """
    try:
        if message is None:
            message = parse_message(raw, sender, recipients)
        subject = message.subject
    except NotAMessage:
        subject = ""
    html, plain = _bodies(raw)
    texts = []
    if html.strip():
        texts.append(split_html(html).text)
    if plain.strip():
        texts.append(split_plain(plain).text)
    identity: list[Any] = [
        sender.strip().lower(),
        sorted({r.strip().lower() for r in recipients}),
        _normal(subject),
    ]
    keys = []
    for text in texts or [""]:
        material = json.dumps([*identity, _normal(text)], ensure_ascii=False)
        keys.append(hashlib.sha256(material.encode("utf-8")).hexdigest())
    return tuple(dict.fromkeys(keys))


# -- override tokens ------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class OverrideTokens:
    """Issues tokens bound to a content key; redeems each at most once."""

    def __init__(self, store: Store, key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._key = key
        self._clock = clock

    def _mac(self, issued: int, nonce: str, content_key: str) -> str:
        material = f"v1|{issued}|{nonce}|{content_key}".encode("ascii")
        # 128 bits of the HMAC: plenty against forgery, and the whole header
        # line stays under 78 characters, so no client folds or encodes it.
        return _b64(hmac.new(self._key, material, hashlib.sha256).digest()[:16])

    def issue(self, content_key: str) -> str:
        issued = int(self._clock())
        nonce = secrets.token_urlsafe(12)
        return f"v1.{issued}.{nonce}.{self._mac(issued, nonce, content_key)}"

    def valid_for(self, token: str, content_keys: Sequence[str]) -> str | None:
        """The token's nonce when it is genuine, unexpired and bound to one of the keys."""
        parts = _unfolded(token).split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            return None
        issued, nonce, mac = int(parts[1]), parts[2], parts[3]
        age = self._clock() - issued
        if not -300 <= age <= OVERRIDE_LIFETIME.total_seconds() or not nonce.isascii():
            return None
        for content_key in content_keys:
            if hmac.compare_digest(self._mac(issued, nonce, content_key), mac):
                return nonce
        return None

    def redeem(self, token: str, content_keys: Sequence[str]) -> bool:
        """True once for a genuine token of this content; blocking (store access)."""
        nonce = self.valid_for(token, content_keys)
        if nonce is None:
            return False
        with self.store.session() as session:
            forget_used_overrides(session, utcnow() - OVERRIDE_LIFETIME - timedelta(hours=1))
            return use_override(session, nonce)


def _unfolded(value: str) -> str:
    """The token as issued, even if a client folded or RFC 2047-encoded the header."""
    if "=?" in value:
        with contextlib.suppress(HeaderParseError, LookupError, ValueError):
            value = str(make_header(decode_header(value)))
    return "".join(value.split())


def strip_header(content: bytes, name: str) -> tuple[bytes, list[str]]:
    """``content`` without the header field ``name`` (folded lines included), and its values.

    Every other byte stays as it was: the signature of a DKIM-signing
    client, the line endings and the body are untouched.
    """
    wanted = name.lower().encode("ascii") + b":"
    head = header_block(content)
    if wanted not in head.lower():
        return content, []  # every message passes here: look at the header block only
    lines = content.splitlines(keepends=True)
    kept: list[bytes] = []
    values: list[str] = []
    dropping = False
    for index, line in enumerate(lines):
        if line in (b"\r\n", b"\n"):  # end of the header block
            kept.extend(lines[index:])
            break
        if line[:1] in (b" ", b"\t") and dropping:
            values[-1] += " " + line.strip().decode("ascii", "replace")
            continue
        dropping = line.lower().startswith(wanted)
        if dropping:
            values.append(line[len(wanted) :].strip().decode("ascii", "replace"))
        else:
            kept.append(line)
    if not values:
        return content, []
    return b"".join(kept), values


def _token_hint(token: str) -> str:
    return token[:12] + "…" if len(token) > 12 else "…"


class OverrideInspector:
    """The front's inspector, plus ``X-Courtesy-Override``: the user already decided.

    A message with a valid token for its content is relayed without being
    held (still checked, so the outgoing log keeps its findings); the header
    never leaves the proxy.
    """

    def __init__(self, inner: Inspector, tokens: OverrideTokens) -> None:
        self.inner = inner
        self.tokens = tokens

    async def inspect(self, transaction: Transaction) -> Verdict:
        content, values = strip_header(transaction.content, OVERRIDE_HEADER)
        if not values:
            return await self.inner.inspect(transaction)
        transaction = replace(transaction, content=content)
        keys = await asyncio.to_thread(
            content_keys, content, transaction.mail_from, transaction.recipients
        )
        redeemed = await asyncio.to_thread(self.tokens.redeem, values[0], keys)
        if not redeemed:
            log.info(
                "%s %s from <%s> is not valid for this message (changed, used or expired); "
                "checking as usual",
                OVERRIDE_HEADER,
                _token_hint(values[0]),
                transaction.mail_from,
            )
            verdict = await self.inner.inspect(transaction)
            return replace(verdict, content=content)
        log.info("%s accepted for a message from <%s>", OVERRIDE_HEADER, transaction.mail_from)
        try:
            verdict = await self.inner.inspect(transaction)
        except Exception:  # the user's decision stands even when a check crashes
            log.exception("inspecting an overridden message failed; relaying it")
            verdict = Verdict(check_errors=("inspector",))
        return replace(verdict, action="relay", override=True, content=content)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


# -- the request ----------------------------------------------------------------------


class RequestError(ValueError):
    """A request the API refuses; the message says why in one sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _bad(message: str) -> RequestError:
    return RequestError(400, "bad_request", message)


def _string(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(f"'{name}' must be a string")
    if "\x00" in value:
        raise _bad(f"'{name}' contains a NUL character")
    return value


def _header_value(data: dict[str, Any], name: str) -> str:
    value = _string(data, name)
    if "\r" in value or "\n" in value:
        raise _bad(f"'{name}' must be one line")
    return value.strip()


def _address_list(data: dict[str, Any], name: str) -> list[tuple[str, str]]:
    value = data.get(name)
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _bad(f"'{name}' must be a list of addresses")
    pairs: list[tuple[str, str]] = []
    for item in items:
        if "\r" in item or "\n" in item or "\x00" in item:
            raise _bad(f"'{name}' has an address with a line break")
        for display, address in getaddresses([item]):
            if "@" not in address:
                raise _bad(f"'{name}': {item!r} is not a mail address")
            pairs.append((display, address))
    return pairs


@dataclass(frozen=True)
class BuiltMessage:
    raw: bytes
    sender: str
    recipients: tuple[str, ...]


def build_message(data: Any) -> BuiltMessage:
    """An RFC 5322 message from the API's JSON, as the mail client would send it.

    Bcc addresses are envelope recipients only, as on the wire.
    """
    if not isinstance(data, dict):
        raise _bad("the body must be a JSON object")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise _bad(f"unknown field(s): {', '.join(unknown)}")
    senders = _address_list(data, "from")
    if len(senders) != 1:
        raise _bad("'from' must be exactly one address")
    to, cc, bcc = (_address_list(data, n) for n in ("to", "cc", "bcc"))
    if not (to or cc or bcc):
        raise _bad("the message has no recipient (to, cc or bcc)")
    subject = _header_value(data, "subject")
    text, html = _string(data, "text"), _string(data, "html")
    in_reply_to = _header_value(data, "in_reply_to")
    references = data.get("references")
    if isinstance(references, list):
        if not all(isinstance(r, str) for r in references):
            raise _bad("'references' must be a string or a list of strings")
        data = {**data, "references": " ".join(references)}
    references_text = _header_value(data, "references")

    message = EmailMessage(policy=email_policy.default)
    try:
        message["From"] = formataddr(senders[0])
        if to:
            message["To"] = ", ".join(formataddr(p) for p in to)
        if cc:
            message["Cc"] = ", ".join(formataddr(p) for p in cc)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=senders[0][1].rpartition("@")[2] or None)
        if in_reply_to:
            message["In-Reply-To"] = in_reply_to
        if references_text:
            message["References"] = references_text
        if text or not html:
            message.set_content(text)
            if html:
                message.add_alternative(html, subtype="html")
        else:
            message.set_content(html, subtype="html")
        raw = message.as_bytes(policy=email_policy.SMTP)
    except (ValueError, TypeError, IndexError, HeaderParseError) as exc:
        raise _bad(f"cannot build a message from it: {exc}") from None
    recipients = tuple(address for _, address in to + cc + bcc)
    return BuiltMessage(raw=raw, sender=senders[0][1], recipients=recipients)


# -- the server -----------------------------------------------------------------------


def _error(status: int, code: str, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="courtesy"'} if status == 401 else None
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CheckApi:
    """The aiohttp application: guards first, then the check."""

    def __init__(self, inspector: Inspector, tokens: OverrideTokens, api_token: str) -> None:
        self.inspector = inspector
        self.tokens = tokens
        self._api_token = api_token

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST, middlewares=[self._guard])
        app.router.add_post("/api/v1/check", self.check)
        return app

    def _refusal(self, request: web.Request) -> web.Response | None:
        # A page on another site that a DNS name of its own points at 127.0.0.1
        # still sends its own Host: refuse anything but a loopback name.
        if not is_loopback(_host_name(request.host)):
            return _error(403, "forbidden_host", "the API answers only to a loopback host name")
        origin = request.headers.get("Origin")
        if origin is not None and not origin.startswith("moz-extension://"):
            return _error(403, "forbidden_origin", "requests from web pages are refused")
        token = _bearer(request)
        if token is None:
            return _error(
                401, "unauthorized", "an 'Authorization: Bearer <token>' header is needed"
            )
        if not token_equals(token, self._api_token):
            return _error(
                401, "unauthorized", "the token is wrong; 'courtesy api token' shows the right one"
            )
        return None

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            log.warning(
                "check API refused a request from %s: %s",
                request.remote,
                refusal.text,
            )
            return refusal
        try:
            return await handler(request)
        except RequestError as exc:
            return _error(exc.status, exc.code, str(exc))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", f"the request is larger than {MAX_REQUEST} bytes")
        except web.HTTPMethodNotAllowed:
            return _error(405, "method_not_allowed", "use POST")
        except web.HTTPNotFound:
            return _error(404, "not_found", "no such endpoint; use POST /api/v1/check")
        except web.HTTPException as exc:
            return _error(exc.status, "http_error", exc.reason)

    async def check(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            raise RequestError(415, "unsupported_media_type", "the body must be application/json")
        if request.content_length is not None and request.content_length > MAX_REQUEST:
            raise RequestError(413, "too_large", f"the request is larger than {MAX_REQUEST} bytes")
        body = await request.read()
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise _bad("the body is not valid JSON") from None
        built = build_message(data)
        verdict = await self.inspector.inspect(
            Transaction(
                mail_from=built.sender,
                recipients=built.recipients,
                content=built.raw,
                auth_user=None,
                peer=f"api:{request.remote}",
            )
        )
        keys = await asyncio.to_thread(
            content_keys, built.raw, built.sender, built.recipients, verdict.message
        )
        log.info(
            "check API: %s for a message to %d recipient(s): %s",
            verdict.action,
            len(built.recipients),
            ",".join(f.code for f in verdict.findings) or "-",
        )
        return web.json_response(
            {
                "action": verdict.action,
                "findings": [f.to_json() for f in verdict.findings],
                "override": self.tokens.issue(keys[0]),
            },
            dumps=lambda value: json.dumps(value, ensure_ascii=False),
        )


@dataclass
class ApiServer:
    runner: web.AppRunner

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.runner.addresses[0][:2]
        return str(host), int(port)

    async def aclose(self) -> None:
        await self.runner.cleanup()


async def start_api(
    settings: ApiSettings, inspector: Inspector, tokens: OverrideTokens, api_token: str
) -> ApiServer:
    """Listen on the configured loopback address, in the running event loop."""
    host, port = parse_hostport(settings.listen, 1588)
    runner = web.AppRunner(CheckApi(inspector, tokens, api_token).app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        message = f"check API cannot listen on {settings.listen}: {reason}"
        raise OSError(exc.errno, message) from None
    return ApiServer(runner)


@dataclass
class CheckService:
    """What ``courtesy run`` wires in: the front's inspector and the API to start."""

    settings: ApiSettings
    inner: Inspector
    tokens: OverrideTokens
    secrets: ApiSecrets

    @property
    def front_inspector(self) -> OverrideInspector:
        # Honoured even with the API off: tokens handed out before stay good.
        return OverrideInspector(self.inner, self.tokens)

    async def start(self) -> ApiServer | None:
        """The API, or None when it is off or cannot listen.

        A busy port does not stop the proxy: the SMTP front is the safety net
        for every client, and the add-on sends unchecked when the API is away.
        """
        if not self.settings.enabled:
            return None
        try:
            return await start_api(self.settings, self.inner, self.tokens, self.secrets.token)
        except OSError as exc:
            log.error("%s; running without it (the add-on sends unchecked)", exc)
            return None


def check_service(settings: ApiSettings, store: Store, inspector: Inspector) -> CheckService:
    """Load (or make) the installation's secrets; blocking (store access)."""
    found = load_secrets(store)
    return CheckService(settings, inspector, OverrideTokens(store, found.override_key), found)
