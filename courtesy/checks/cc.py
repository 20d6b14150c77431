"""cc.*: how widely a message is spread.

Too many people on Cc, many external addresses shown to each other (their
addresses leak to strangers: Bcc is the courteous way), and a reply that
pulls new people into a running thread without a word. Thread knowledge comes
from ``ctx.thread`` (the outgoing log, later the inbox): when none of the
answered messages is known, the check stays silent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from courtesy.checks.i18n import Texts, say
from courtesy.checks.model import Address, CheckContext, Finding, Severity
from courtesy.checks.registry import CheckFamily, register

CODE_TOO_MANY = "cc.too_many"
CODE_EXPOSED = "cc.recipients_exposed"
CODE_ADDED = "cc.added_to_thread"

# How many addresses a finding's evidence lists before it says "...".
_EVIDENCE_LIMIT = 8


@dataclass(frozen=True, slots=True)
class CcSettings:
    """``[checks.cc]``."""

    enabled: bool = True
    max_cc: int = 3
    max_exposed: int = 10
    # Domains that count as the sender's own (besides the sender's domain).
    own_domains: tuple[str, ...] = ()
    too_many_severity: Severity = Severity.WARN
    exposed_severity: Severity = Severity.WARN
    added_severity: Severity = Severity.WARN


TEXTS: Texts = {
    "too_many": {
        "en": "{count} people are on Cc (more than {limit}); does each of them need this mail?",
        "de": "{count} Personen stehen in Cc (mehr als {limit}); braucht jede diese Mail?",
    },
    "exposed": {
        "en": "{count} external addresses can see each other in To and Cc (more than {limit}); "
        "put them in Bcc.",
        "de": "{count} externe Adressen sehen einander in An und Cc (mehr als {limit}); "
        "setzen Sie sie in Bcc.",
    },
    "added": {
        "en": "This reply puts {who} on Cc, who {verb} on none of the earlier messages of the "
        "thread.",
        "de": "Diese Antwort nimmt {people_de} in Cc auf, die bei keiner früheren Nachricht des "
        "Verlaufs dabei {verb_de}: {who}.",
    },
}


def _unique(addresses: Iterable[Address]) -> list[Address]:
    seen: set[str] = set()
    result: list[Address] = []
    for address in addresses:
        key = address.email.lower()
        if key and key not in seen:
            seen.add(key)
            result.append(address)
    return result


def _own_domains(ctx: CheckContext, settings: CcSettings) -> set[str]:
    domains = {d.lower().lstrip("@") for d in (*settings.own_domains, *ctx.own_domains)}
    if ctx.message.sender is not None and ctx.message.sender.domain:
        domains.add(ctx.message.sender.domain)
    for address in ctx.own_addresses:
        domains.add(address.rpartition("@")[2].lower())
    return domains


def _is_own_domain(domain: str, own: set[str]) -> bool:
    """The domain or a subdomain of one of ours (mail.example.com under example.com)."""
    return any(domain == d or domain.endswith("." + d) for d in own if d)


def _listing(addresses: list[Address]) -> str:
    shown = ", ".join(a.email for a in addresses[:_EVIDENCE_LIMIT])
    if len(addresses) > _EVIDENCE_LIMIT:
        shown += f", … (+{len(addresses) - _EVIDENCE_LIMIT})"
    return shown


def check_cc(ctx: CheckContext, settings: CcSettings) -> list[Finding]:
    message = ctx.message
    lang = ctx.language
    own = ctx.own_emails
    findings: list[Finding] = []

    cc = [a for a in _unique(message.cc) if a.email.lower() not in own]
    if len(cc) > settings.max_cc and not all(
        ctx.exceptions.allows(a.email, CODE_TOO_MANY) for a in cc
    ):
        findings.append(
            Finding(
                code=CODE_TOO_MANY,
                severity=settings.too_many_severity,
                message=say(TEXTS, "too_many", lang, count=len(cc), limit=settings.max_cc),
                evidence="Cc: " + _listing(cc),
            )
        )

    domains = _own_domains(ctx, settings)
    visible = _unique((*message.to, *message.cc))
    external = [a for a in visible if not _is_own_domain(a.domain, domains)]
    if len(external) > settings.max_exposed and not all(
        ctx.exceptions.allows(a.email, CODE_EXPOSED) for a in external
    ):
        findings.append(
            Finding(
                code=CODE_EXPOSED,
                severity=settings.exposed_severity,
                message=say(
                    TEXTS, "exposed", lang, count=len(external), limit=settings.max_exposed
                ),
                evidence=_listing(external),
                suggestion="Bcc",
            )
        )

    if message.is_reply:
        answered = tuple(dict.fromkeys((*message.in_reply_to, *message.references)))
        earlier = ctx.thread.known(answered)
        if earlier is not None:
            before = {e.lower() for e in earlier}
            added = [
                a
                for a in cc
                if a.email.lower() not in before and not ctx.exceptions.allows(a.email, CODE_ADDED)
            ]
            if added:
                who = ", ".join(a.name or a.email for a in added[:_EVIDENCE_LIMIT])
                plural = len(added) > 1
                findings.append(
                    Finding(
                        code=CODE_ADDED,
                        severity=settings.added_severity,
                        message=say(
                            TEXTS,
                            "added",
                            lang,
                            who=who,
                            verb="were" if plural else "was",
                            people_de="neue Personen" if plural else "eine neue Person",
                            verb_de="waren" if plural else "war",
                        ),
                        evidence="Cc: " + _listing(added),
                    )
                )
    return findings


register(
    CheckFamily(
        name="cc",
        codes=(CODE_TOO_MANY, CODE_EXPOSED, CODE_ADDED),
        settings_type=CcSettings,
        run=check_cc,
        description="How widely a message is spread: Cc count, exposed addresses, new people.",
    )
)
