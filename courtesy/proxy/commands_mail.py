"""Command mail: release, discard or "don't ask again" by sending a mail, from any client.

The hold notice links to ``release+ID+TOKEN@courtesy.invalid`` (and
``discard+…``, ``allow+…``). When such an address shows up at RCPT the front
accepts it without asking upstream; at DATA the mail is executed here and
never relayed, and the sender gets a short confirmation. A wrong, forged or
already used token changes nothing: it is logged (never in full) and the
confirmation says nothing was done. Commands come in a mail of their own: a
command address next to a real recipient is refused, so no real mail is ever
swallowed by mistake.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import cast

from aiosmtpd.smtp import Envelope

from courtesy.proxy.front import Transaction
from courtesy.proxy.hold import Holder, Outcome, token_hint, token_matches
from courtesy.proxy.notices import (
    COMMAND_DOMAIN,
    Command,
    ascii_fold,
    confirmation,
    quoted,
    text,
)
from courtesy.proxy.relay import Reply
from courtesy.store.held import HeldMessage, HeldState

log = logging.getLogger(__name__)

_ADDRESS = re.compile(
    r"(release|discard|allow)\+(\d{1,18})\+([a-z0-9]{1,128})@" + re.escape(COMMAND_DOMAIN),
    re.IGNORECASE,
)
# Anything at the command domain, well-formed or not, is ours: it must never go upstream.
_DOMAIN = "@" + COMMAND_DOMAIN


@dataclass(frozen=True)
class CommandAddress:
    command: Command
    held_id: int
    token: str


def parse_command_address(address: str) -> CommandAddress | None:
    match = _ADDRESS.fullmatch(address.strip())
    if match is None:
        return None
    return CommandAddress(
        cast(Command, match.group(1).lower()), int(match.group(2)), match.group(3).lower()
    )


def is_command_address(address: str) -> bool:
    return address.strip().lower().endswith(_DOMAIN)


class CommandMail:
    """The front's hook for command addresses; executes them through the Holder."""

    def __init__(self, holder: Holder) -> None:
        self.holder = holder

    @property
    def language(self) -> str:
        return self.holder.language

    def rcpt(self, envelope: Envelope, address: str) -> str | None:
        """Answer RCPT for a command address (or refuse mixing); None: not ours."""
        commands = [r for r in envelope.rcpt_tos if is_command_address(r)]
        if is_command_address(address):
            if len(commands) < len(envelope.rcpt_tos):
                return "550 5.5.1 Send courtesy commands in a mail of their own"
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 courtesy command address"
        if commands:
            return "550 5.5.1 Send courtesy commands in a mail of their own"
        return None

    def wants(self, transaction: Transaction) -> bool:
        return any(is_command_address(r) for r in transaction.recipients)

    async def execute(self, transaction: Transaction) -> Reply:
        """Carry out every command address of the mail; answer 250 either way.

        What was done is said in the confirmation mail, not in the SMTP reply,
        so a forged token learns nothing from the answer.
        """
        for address in dict.fromkeys(transaction.recipients):
            outcome = await self._run_one(transaction, address)
            await self._confirm(transaction, address, outcome)
        return Reply(250, "2.0.0 " + ascii_fold(text(self.language, "command_reply")))

    async def _run_one(self, transaction: Transaction, address: str) -> Outcome | None:
        parsed = parse_command_address(address)
        if parsed is None:
            log.warning("command mail from <%s>: malformed command address", transaction.mail_from)
            return None
        if not await asyncio.to_thread(self._authorised, transaction, parsed):
            log.warning(
                "command mail from <%s>: %s #%d with a wrong or used token (%s); nothing done",
                transaction.mail_from,
                parsed.command,
                parsed.held_id,
                token_hint(parsed.token),
            )
            return None
        credentials = transaction.credentials
        if parsed.command == "release":
            return await self.holder.release(parsed.held_id, by="mail", credentials=credentials)
        if parsed.command == "discard":
            return await self.holder.discard(parsed.held_id, by="mail")
        return await self.holder.allow(parsed.held_id, by="mail", credentials=credentials)

    def _authorised(self, transaction: Transaction, parsed: CommandAddress) -> bool:
        with self.holder.store.session() as session:
            row = session.get(HeldMessage, parsed.held_id)
            if row is None or row.state != HeldState.HELD.value:
                # Still compare, so a missing ID takes as long as a wrong token.
                token_matches(parsed.token, "0" * 64)
                return False
            if not token_matches(parsed.token, row.token_hash):
                return False
            # On a shared instance, only the user who sent the message may command it.
            return not (row.auth_user and row.auth_user != transaction.auth_user)

    async def _confirm(
        self, transaction: Transaction, address: str, outcome: Outcome | None
    ) -> None:
        sender = transaction.mail_from
        if "@" not in sender:
            return
        lang = self.language
        parsed = parse_command_address(address)
        if outcome is None or (not outcome.ok and outcome.result != "failed"):
            subject = text(lang, "invalid_subject")
            body = text(
                lang,
                "invalid",
                command=parsed.command if parsed else "?",
                id=parsed.held_id if parsed else "?",
            )
            kind = "invalid"
        else:
            q = quoted(outcome.subject, lang)
            values = dict(subject=q, id=outcome.held_id, to=", ".join(outcome.recipients))
            plain = outcome.subject or ""
            if outcome.result == "failed":
                subject = text(lang, "failed_subject", subject=plain)
                body = text(lang, "failed", error=outcome.detail, **values)
            elif outcome.result == "discarded":
                subject = text(lang, "discarded_subject", subject=plain)
                body = text(lang, "discarded", **values)
            else:
                key = "allowed_subject" if outcome.exceptions else "released_subject"
                subject = text(lang, key, subject=plain)
                body = text(lang, "released", **values)
                if outcome.refused:
                    body += "\n\n" + text(lang, "refused", refused=", ".join(outcome.refused))
                if outcome.exceptions:
                    body += "\n\n" + text(lang, "allowed") + "\n"
                    body += "\n".join(f"- {code}: {email}" for email, code in outcome.exceptions)
            kind = outcome.result
        raw = confirmation(sender, subject, body, f"command {kind}")
        try:
            await self.holder.notices.deliver(sender, raw, transaction.credentials)
        except Exception as exc:  # the command itself is done; the confirmation is a courtesy
            log.warning("confirmation to <%s> not delivered: %s", sender, exc)
