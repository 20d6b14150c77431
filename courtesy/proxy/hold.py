"""Hold and reject: what happens to a message the policy did not let through.

``hold`` commits the envelope, the raw bytes, the findings and the hash of a
fresh secret in one transaction, and only then answers 250; the notice with
the command links goes out afterwards (a failed or lost notice is retried by
:func:`expire_loop`, the message itself is already safe). ``reject`` answers
550 with the findings and remembers the message, so that sending it again
unchanged within the override window relays it.

Release, discard and "don't ask again" are the same code for the CLI, for
command mail and for ``hold.expire``: a conditional UPDATE claims the row, so
a message is relayed at most once however many releasers race.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from courtesy.checks.message import NotAMessage, parse_message
from courtesy.checks.model import OutgoingMessage
from courtesy.proxy.config import Config
from courtesy.proxy.front import Transaction, Verdict
from courtesy.proxy.notices import (
    HeldInfo,
    NoticeError,
    NoticeSender,
    ascii_fold,
    hold_notice,
    reject_text,
    text,
)
from courtesy.proxy.recorder import header_facts
from courtesy.proxy.relay import (
    Credentials,
    Reply,
    Upstream,
    UpstreamAuthFailed,
    UpstreamUnavailable,
)
from courtesy.store.base import rowcount, utcnow
from courtesy.store.db import Store, log_failure
from courtesy.store.held import (
    HeldMessage,
    HeldState,
    RejectOverride,
    add_exceptions,
    add_held,
    claim,
    find_override,
    forget_old_overrides,
    remember_reject,
)

log = logging.getLogger(__name__)

# 160 random bits, base32 in lower case: survives mail clients that change the
# case of an address and needs no characters that are special in a local part.
TOKEN_BYTES = 20
# Notice attempts per held message before giving up (the message stays held and listed).
NOTICE_ATTEMPTS = 5
NOTICE_SETTLE = timedelta(minutes=1)

ClosedBy = Literal["cli", "mail", "expire"]


def new_token() -> str:
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").rstrip("=").lower()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.strip().lower().encode("utf-8")).hexdigest()


def token_matches(token: str, stored: str | None) -> bool:
    """Constant-time comparison against the stored hash; a used token (None) never matches."""
    if not stored:
        return False
    return hmac.compare_digest(hash_token(token), stored)


def token_hint(token: str) -> str:
    """Enough of a token for a log line, never the whole secret."""
    return f"{token[:4]}…" if len(token) > 4 else "…"


@dataclass(frozen=True)
class Outcome:
    """What a release, discard or "don't ask again" did; printed by the CLI, mailed back."""

    held_id: int
    # released | discarded | expired | failed | missing | not_held
    result: str
    subject: str | None = None
    sender: str = ""
    recipients: tuple[str, ...] = ()
    language: str = "en"
    detail: str = ""
    refused: tuple[str, ...] = ()
    exceptions: tuple[tuple[str, str], ...] = ()
    state: str = ""

    @property
    def ok(self) -> bool:
        return self.result in ("released", "discarded", "expired")

    @classmethod
    def of(cls, row: HeldMessage, result: str, **details: Any) -> Outcome:
        """The outcome for a stored message, with its subject, envelope and language."""
        return cls(
            row.id,
            result,
            subject=row.subject,
            sender=row.envelope_from,
            recipients=tuple(row.recipients),
            language=row.language,
            **details,
        )


@dataclass(frozen=True)
class _Claimed:
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    subject: str | None
    language: str


def override_key(transaction: Transaction, message: OutgoingMessage | None = None) -> str:
    """Same sender, recipients, subject and new text: the same message, whatever
    Message-ID and Date the resend got.

    ``message`` is the transaction's content as the checks already parsed it;
    without it the content is parsed here.
    """
    try:
        if message is None:
            message = parse_message(
                transaction.content, transaction.mail_from, transaction.recipients
            )
        subject, body = message.subject, message.new_text
    except NotAMessage:
        subject, body = "", transaction.content.decode("utf-8", "replace")
    material = [
        transaction.mail_from.lower(),
        sorted({r.lower() for r in transaction.recipients}),
        " ".join(subject.split()),
        " ".join(body.split()),
    ]
    return hashlib.sha256(json.dumps(material, ensure_ascii=False).encode()).hexdigest()


def _needs_8bit(content: bytes) -> bool:
    return not content.isascii()


class Holder:
    """The front's Disposer, and the one place that releases and discards held mail."""

    def __init__(
        self,
        store: Store,
        upstream: Upstream,
        config: Config,
        *,
        notices: NoticeSender | None = None,
    ) -> None:
        self.store = store
        self.upstream = upstream
        self.config = config
        self.notices = notices or NoticeSender(config, upstream)
        self._tasks: set[asyncio.Task[None]] = set()
        self._notifying: set[int] = set()

    @property
    def language(self) -> str:
        return self.config.language

    # -- hold --------------------------------------------------------------------------

    async def hold(self, transaction: Transaction, verdict: Verdict) -> Reply:
        token = new_token()
        facts: Mapping[str, Any] = verdict.facts or header_facts(transaction.content)
        subject = facts.get("subject")
        findings = [f.to_json() for f in verdict.findings]
        row = HeldMessage(
            held_at=utcnow(),
            state=HeldState.HELD.value,
            envelope_from=transaction.mail_from,
            recipients=list(transaction.recipients),
            subject=str(subject) if subject else None,
            message_id=facts.get("message_id"),
            size=len(transaction.content),
            content=transaction.content,
            findings=findings,
            token_hash=hash_token(token),
            auth_user=transaction.auth_user,
            language=self.language,
        )
        # A store that is locked, full or gone raises: the front answers 451
        # (ProxyHandler.handle_exception), the client keeps the message and retries.
        held_id = await asyncio.to_thread(self._insert, row)
        # Committed (SQLite: synchronous=FULL): from here on a crash loses nothing.
        log.info(
            "held #%d from <%s> to %d recipient(s): %s",
            held_id,
            transaction.mail_from,
            len(transaction.recipients),
            ", ".join(f.code for f in verdict.findings) or "-",
        )
        if self.config.hold.notice:
            info = HeldInfo(
                id=held_id,
                sender=transaction.mail_from,
                recipients=transaction.recipients,
                subject=row.subject,
                held_at=row.held_at,
                findings=tuple(findings),
            )
            self._notifying.add(held_id)
            self._spawn(self._notify(info, token, transaction.credentials))
        return Reply(250, "2.0.0 " + ascii_fold(text(self.language, "held_reply", id=held_id)))

    def _insert(self, row: HeldMessage) -> int:
        with self.store.session() as session:
            return add_held(session, row)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _expiry(self, held_at: datetime) -> tuple[datetime, str] | None:
        rule = self.config.hold.expire_rule()
        if rule is None:
            return None
        return held_at + rule[0], rule[1]

    async def _notify(self, info: HeldInfo, token: str, credentials: Credentials | None) -> None:
        if "@" not in info.sender:
            log.warning("held #%d has no sender address to notify", info.id)
            await asyncio.to_thread(self._mark_notice, info.id, "no sender address")
            self._notifying.discard(info.id)
            return
        self._notifying.add(info.id)
        try:
            raw = hold_notice(info, token, self.language, expire=self._expiry(info.held_at))
            await self.notices.deliver(info.sender, raw, credentials)
        except NoticeError as exc:
            log.warning("notice for held #%d not delivered: %s", info.id, exc)
            await asyncio.to_thread(self._mark_notice, info.id, str(exc))
        except Exception as exc:
            log.exception("notice for held #%d failed", info.id)
            await asyncio.to_thread(self._mark_notice, info.id, f"{type(exc).__name__}: {exc}")
        else:
            log.info(
                "notice for held #%d delivered to <%s> by %s",
                info.id,
                info.sender,
                self.notices.via,
            )
            await asyncio.to_thread(self._mark_notice, info.id, None)
        finally:
            self._notifying.discard(info.id)

    def _mark_notice(self, held_id: int, error: str | None) -> None:
        with self.store.session() as session:
            row = session.get(HeldMessage, held_id)
            if row is None:
                return
            row.notice_attempts = (row.notice_attempts or 0) + 1
            row.notice_error = error
            if error is None:
                row.notice_sent_at = utcnow()

    async def retry_notices(self, *, settle: bool = True) -> int:
        """Send notices that failed or were lost in a crash; each retry gets a fresh secret.

        The old secret was never delivered (or it would be marked sent), so
        replacing it invalidates nothing the user has.
        """
        if not self.config.hold.notice:
            return 0
        due = await asyncio.to_thread(self._rotate_unnoticed, settle)
        for info, token in due:
            await self._notify(info, token, None)
        return len(due)

    def _rotate_unnoticed(self, settle: bool) -> list[tuple[HeldInfo, str]]:
        found: list[tuple[HeldInfo, str]] = []
        # A first attempt may still be on its way from a hold that just committed
        # (not at start-up: then every unsent notice is from an earlier run).
        settled = utcnow() - (NOTICE_SETTLE if settle else timedelta(0))
        with self.store.session() as session:
            rows = session.scalars(
                select(HeldMessage).where(
                    HeldMessage.state == HeldState.HELD.value,
                    HeldMessage.notice_sent_at.is_(None),
                    HeldMessage.notice_attempts < NOTICE_ATTEMPTS,
                    (HeldMessage.notice_attempts > 0) | (HeldMessage.held_at < settled),
                )
            )
            for row in rows:
                if row.id in self._notifying or "@" not in row.envelope_from:
                    continue
                self._notifying.add(row.id)
                token = new_token()
                row.token_hash = hash_token(token)
                info = HeldInfo(
                    id=row.id,
                    sender=row.envelope_from,
                    recipients=tuple(row.recipients),
                    subject=row.subject,
                    held_at=row.held_at,
                    findings=tuple(row.findings),
                )
                found.append((info, token))
        return found

    # -- reject and override ----------------------------------------------------------------

    async def overridden(self, transaction: Transaction, verdict: Verdict) -> bool:
        """True when this message was rejected before and is sent again within the window."""
        key = await asyncio.to_thread(override_key, transaction, verdict.message)
        row = await asyncio.to_thread(self._find_override, key)
        if row is None:
            return False
        log.info(
            "override: message from <%s> (%s) sent again after the reject at %s; relaying",
            transaction.mail_from,
            ", ".join(f.code for f in verdict.findings) or "-",
            row[0].isoformat(timespec="seconds"),
        )
        return True

    def _find_override(self, key: str) -> tuple[datetime] | None:
        with self.store.session() as session:
            row = find_override(session, key, utcnow())
            return (row.rejected_at,) if row is not None else None

    async def reject(self, transaction: Transaction, verdict: Verdict) -> Reply:
        window = self.config.reject.override_window
        findings = [f.to_json() for f in verdict.findings]
        key = await asyncio.to_thread(override_key, transaction, verdict.message)
        facts: Mapping[str, Any] = verdict.facts or header_facts(transaction.content)
        now = utcnow()
        memory = RejectOverride(
            key=key,
            rejected_at=now,
            expires_at=now + window,
            envelope_from=transaction.mail_from,
            subject=facts.get("subject"),
            findings=findings,
        )
        await asyncio.to_thread(self._remember, memory)
        log.info(
            "rejected message from <%s>: %s; sent again unchanged within %s it is relayed",
            transaction.mail_from,
            ", ".join(f.code for f in verdict.findings) or "-",
            window,
        )
        return Reply(550, reject_text(findings, window, self.language))

    def _remember(self, row: RejectOverride) -> None:
        with self.store.session() as session:
            remember_reject(session, row)

    async def forget_overrides(self) -> int:
        def run() -> int:
            with self.store.session() as session:
                return forget_old_overrides(session, utcnow() - timedelta(days=1))

        return await asyncio.to_thread(run)

    # -- release, discard, allow ------------------------------------------------------------

    async def release(
        self, held_id: int, *, by: ClosedBy, credentials: Credentials | None = None
    ) -> Outcome:
        """Relay the stored bytes with the original envelope; at most once.

        A refused or unreachable upstream puts the message back to ``held``
        with the reason in ``release_error``.
        """
        claimed = await asyncio.to_thread(self._claim_release, held_id)
        if isinstance(claimed, Outcome):
            return claimed
        try:
            ok, detail, refused = await self._relay(claimed, credentials)
        except BaseException:
            await asyncio.to_thread(
                self._finish_release, held_id, False, "release interrupted", (), by
            )
            raise
        await asyncio.to_thread(self._finish_release, held_id, ok, detail, refused, by)
        outcome = Outcome(
            held_id=held_id,
            result="released" if ok else "failed",
            subject=claimed.subject,
            sender=claimed.sender,
            recipients=claimed.recipients,
            language=claimed.language,
            detail=detail,
            refused=refused,
        )
        if ok:
            log.info("released #%d (by %s): %s", held_id, by, detail)
        else:
            log.warning("releasing #%d (by %s) failed, still held: %s", held_id, by, detail)
        return outcome

    def _unavailable(self, held_id: int, session: Session) -> Outcome:
        row = session.get(HeldMessage, held_id)
        if row is None:
            return Outcome(held_id, "missing")
        return Outcome.of(row, "not_held", state=row.state)

    def _claim_release(self, held_id: int) -> _Claimed | Outcome:
        with self.store.session() as session:
            if not claim(session, held_id, HeldState.RELEASING):
                return self._unavailable(held_id, session)
            row = session.get(HeldMessage, held_id)
            assert row is not None and row.content is not None
            return _Claimed(
                sender=row.envelope_from,
                recipients=tuple(row.recipients),
                content=row.content,
                subject=row.subject,
                language=row.language,
            )

    def _finish_release(
        self, held_id: int, ok: bool, detail: str, refused: Sequence[str], by: str
    ) -> None:
        with self.store.session() as session:
            if ok:
                values: dict[str, Any] = dict(
                    state=HeldState.RELEASED.value,
                    content=None,
                    token_hash=None,
                    upstream_reply=detail,
                    release_error=(
                        "refused by upstream: " + ", ".join(refused) if refused else None
                    ),
                    closed_at=utcnow(),
                    closed_by=by,
                )
            else:
                values = dict(state=HeldState.HELD.value, release_error=detail)
            session.execute(
                update(HeldMessage)
                .where(HeldMessage.id == held_id, HeldMessage.state == HeldState.RELEASING.value)
                .values(**values)
            )

    async def _relay(
        self, message: _Claimed, credentials: Credentials | None
    ) -> tuple[bool, str, tuple[str, ...]]:
        """MAIL, RCPT for each original recipient, DATA with the stored bytes."""
        try:
            connection = await self.upstream.acquire(credentials)
        except UpstreamUnavailable as exc:
            return False, exc.reason, ()
        except UpstreamAuthFailed as exc:
            return False, f"upstream refused the login: {exc.reply}", ()
        try:
            options = []
            addresses = (message.sender, *message.recipients)
            if not all(a.isascii() for a in addresses) and connection.supports("smtputf8"):
                options.append("SMTPUTF8")
            if _needs_8bit(message.content) and connection.supports("8bitmime"):
                options.append("BODY=8BITMIME")
            reply = await connection.mail(message.sender, options)
            if not reply.ok:
                return False, f"upstream refused the sender: {reply}", ()
            refused: list[str] = []
            answers: list[str] = []
            for recipient in message.recipients:
                reply = await connection.rcpt(recipient, [])
                if not reply.ok:
                    refused.append(recipient)
                    answers.append(f"<{recipient}>: {reply}")
            if len(refused) == len(message.recipients):
                return False, "upstream refused every recipient: " + "; ".join(answers), ()
            reply = await connection.data(message.content)
            if not reply.ok:
                return False, f"upstream refused the message: {reply}", ()
            return True, str(reply), tuple(refused)
        except UpstreamUnavailable as exc:
            return False, exc.reason, ()
        finally:
            await self.upstream.release(connection)

    async def discard(self, held_id: int, *, by: ClosedBy) -> Outcome:
        """Drop the message and its body; it is never sent."""
        state = HeldState.EXPIRED if by == "expire" else HeldState.DISCARDED

        def run() -> Outcome:
            with self.store.session() as session:
                if not claim(session, held_id, state):
                    return self._unavailable(held_id, session)
                row = session.get(HeldMessage, held_id)
                assert row is not None
                row.content = None
                row.token_hash = None
                row.closed_at = utcnow()
                row.closed_by = by
                return Outcome.of(row, "expired" if state is HeldState.EXPIRED else "discarded")

        outcome = await asyncio.to_thread(run)
        if outcome.ok:
            log.info("discarded #%d (by %s)", held_id, by)
        return outcome

    async def allow(
        self, held_id: int, *, by: ClosedBy, credentials: Credentials | None = None
    ) -> Outcome:
        """ "Don't ask again": an exception per recipient and finding code, then release."""

        def record() -> Outcome | tuple[tuple[str, str], ...]:
            with self.store.session() as session:
                row = session.get(HeldMessage, held_id)
                if row is None or row.state != HeldState.HELD.value:
                    return self._unavailable(held_id, session)
                codes = sorted({str(f.get("code")) for f in row.findings if f.get("code")})
                pairs = tuple(
                    (rcpt.lower(), code)
                    for code in codes
                    for rcpt in dict.fromkeys(r.lower() for r in row.recipients)
                )
                add_exceptions(session, pairs, f"held #{held_id}")
                return pairs

        recorded = await asyncio.to_thread(record)
        if isinstance(recorded, Outcome):
            return recorded
        log.info("held #%d: %d exception(s) recorded (by %s)", held_id, len(recorded), by)
        outcome = await self.release(held_id, by=by, credentials=credentials)
        return replace(outcome, exceptions=recorded)

    # -- expiry and upkeep ------------------------------------------------------------------

    async def expire_once(self, now: datetime | None = None) -> list[Outcome]:
        """Apply ``hold.expire`` to every message held longer than its limit."""
        rule = self.config.hold.expire_rule()
        if rule is None:
            return []
        after, action = rule
        horizon = (now or utcnow()) - after

        def due() -> list[int]:
            with self.store.session() as session:
                return list(
                    session.scalars(
                        select(HeldMessage.id)
                        .where(
                            HeldMessage.state == HeldState.HELD.value,
                            HeldMessage.held_at <= horizon,
                        )
                        .order_by(HeldMessage.id)
                    )
                )

        outcomes = []
        for held_id in await asyncio.to_thread(due):
            if action == "release":
                outcome = await self.release(held_id, by="expire")
            else:
                outcome = await self.discard(held_id, by="expire")
            log.info("hold.expire (%s): #%d %s", self.config.hold.expire, held_id, outcome.result)
            outcomes.append(outcome)
        return outcomes

    async def recover(self) -> int:
        """Put back messages whose release was cut off by a crash (they may have gone out)."""

        def run() -> int:
            with self.store.session() as session:
                result = session.execute(
                    update(HeldMessage)
                    .where(HeldMessage.state == HeldState.RELEASING.value)
                    .values(
                        state=HeldState.HELD.value,
                        release_error="a release was interrupted; it may have reached upstream",
                    )
                )
                return rowcount(result)

        count = await asyncio.to_thread(run)
        if count:
            log.warning("%d held message(s) had an interrupted release; they are held again", count)
        return count

    async def aclose(self, grace: float = 10.0) -> None:
        """Let notices in flight finish (bounded), then stop them."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def expire_loop(holder: Holder, interval: float = 60.0) -> None:
    """Periodic upkeep for ``courtesy run``: hold.expire, notice retries, old overrides.

    Start it as a task next to the front and cancel it on shutdown.
    """
    first = True
    while True:
        try:
            if first:
                await holder.recover()
            await holder.expire_once()
            await holder.retry_notices(settle=not first)
            await holder.forget_overrides()
        except Exception as exc:  # upkeep must keep running; the next round retries
            log_failure(log, exc, "hold upkeep failed")
        first = False
        await asyncio.sleep(interval)
