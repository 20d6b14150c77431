"""closing.missing: a closing formula ("Viele Grüße", "Best regards") before the signature.

Off by default: many people close with just their name, and a missing
closing is a matter of taste more than courtesy. When switched on it reports
at ``info`` unless configured otherwise. The formula list (de/en/fr/es/it/nl)
lives in :mod:`courtesy.checks.newtext`, which also uses it to find where the
signature starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from courtesy.checks.greeting import first_line
from courtesy.checks.i18n import Texts, say
from courtesy.checks.model import CheckContext, Finding, Severity
from courtesy.checks.newtext import match_closing
from courtesy.checks.registry import CheckFamily, register

CODE_MISSING = "closing.missing"
# How many of the last lines of the new text may hold the closing.
_TAIL_LINES = 4


@dataclass(frozen=True, slots=True)
class ClosingSettings:
    """``[checks.closing]``."""

    enabled: bool = False
    severity: Severity = Severity.INFO
    # Extra closing formulas, matched case-insensitively at the start of a line.
    extra_words: tuple[str, ...] = ()
    # Messages without new text (bare forwards) need no closing.
    skip_without_new_text: bool = True


_TEXTS: Texts = {
    "missing": {
        "en": "The message ends without a closing formula; add one such as 'Best regards' "
        "before your name.",
        "de": "Die Nachricht endet ohne Grußformel; ergänzen Sie vor Ihrem Namen eine wie "
        "'Viele Grüße'.",
    },
}


def find_closing(new_text: str, signature: str = "", extra_words: tuple[str, ...] = ()) -> str:
    """The closing formula line of a message, or "" when it has none.

    It is either the first line of the signature block (where new-text
    extraction puts "Viele Grüße\\nAnna") or one of the last lines of the
    new text.
    """
    candidates = [line for line in signature.split("\n")[:1] if line.strip()]
    tail = [line for line in new_text.split("\n") if line.strip()][-_TAIL_LINES:]
    candidates.extend(reversed(tail))
    extras = tuple(w.casefold() for w in extra_words if w.strip())
    for line in candidates:
        found = match_closing(line)
        if found:
            return found
        stripped = line.strip()
        if extras and stripped.casefold().startswith(extras) and len(stripped) <= 80:
            return stripped
    return ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    return lines[-1][:120] if lines else ""


def check_closing(ctx: CheckContext, settings: ClosingSettings) -> list[Finding]:
    """Run closing.missing on one message."""
    message = ctx.message
    if not message.new_text.strip() and settings.skip_without_new_text:
        return []
    if find_closing(message.new_text, message.signature, settings.extra_words):
        return []
    return [
        Finding(
            CODE_MISSING,
            settings.severity,
            say(_TEXTS, "missing", ctx.language),
            evidence=_last_line(message.new_text) or first_line(message.signature),
        )
    ]


FAMILY = register(
    CheckFamily(
        name="closing",
        codes=(CODE_MISSING,),
        settings_type=ClosingSettings,
        run=check_closing,
        description="A closing formula before the signature.",
    )
)
