"""The list of check families the policy reads, and the loop that runs them.

Each family lives in its own module, owns a frozen settings dataclass (its
``[checks.NAME]`` table) and registers itself here. A family that raises is
reported as a :class:`CheckError` instead of breaking the message's path: the
proxy's ``on_check_error`` setting decides what then happens to the mail.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from courtesy.checks.model import CheckContext, Finding

CheckFunction = Callable[[CheckContext, Any], Sequence[Finding]]

# Modules that define check families; imported on first use so that importing
# the registry stays cheap and free of cycles.
FAMILY_MODULES: tuple[str, ...] = (
    "courtesy.checks.greeting",
    "courtesy.checks.names",
    "courtesy.checks.cc",
    "courtesy.checks.closing",
)


@dataclass(frozen=True, slots=True)
class CheckFamily:
    name: str
    codes: tuple[str, ...]
    settings_type: type[Any]
    run: CheckFunction
    description: str = ""


@dataclass(frozen=True, slots=True)
class CheckError:
    family: str
    error: str


@dataclass(frozen=True, slots=True)
class CheckReport:
    findings: tuple[Finding, ...]
    errors: tuple[CheckError, ...] = ()


_REGISTRY: dict[str, CheckFamily] = {}
_loaded = False


def register(family: CheckFamily) -> CheckFamily:
    if family.name in _REGISTRY and _REGISTRY[family.name] is not family:
        raise ValueError(f"check family {family.name!r} registered twice")
    _REGISTRY[family.name] = family
    return family


def families() -> Mapping[str, CheckFamily]:
    """All registered families by name, in registration order."""
    global _loaded
    if not _loaded:
        for module in FAMILY_MODULES:
            importlib.import_module(module)
        _loaded = True
    return dict(_REGISTRY)


def all_codes() -> tuple[str, ...]:
    return tuple(code for family in families().values() for code in family.codes)


def run_checks(context: CheckContext, settings: Mapping[str, Any] | None = None) -> CheckReport:
    """Run every enabled family; a family that raises becomes a CheckError."""
    findings: list[Finding] = []
    errors: list[CheckError] = []
    extra_words = getattr((settings or {}).get("greeting"), "extra_words", None)
    if extra_words and not context.greeting_words:
        # Greeting words are the greeting family's setting, but every check that
        # reads the salutation must know them.
        context = replace(context, greeting_words=extra_words)
    for name, family in families().items():
        family_settings = (settings or {}).get(name) or family.settings_type()
        if not getattr(family_settings, "enabled", True):
            continue
        try:
            produced = family.run(context, family_settings)
        except Exception as exc:  # a bug in one rule must never block mail
            errors.append(CheckError(name, f"{type(exc).__name__}: {exc}"))
            continue
        findings.extend(f for f in produced if not _excepted(context, f))
    return CheckReport(tuple(findings), tuple(errors))


def _excepted(context: CheckContext, finding: Finding) -> bool:
    """The user said "don't ask again" for this code: for everyone, or for every recipient.

    Checks that know which recipient a finding is about (the name checks) consult
    the exceptions themselves; this covers message-wide findings such as a
    missing greeting, which are dropped once every visible recipient is excepted.
    """
    exceptions = context.exceptions
    if not exceptions.pairs:
        return False
    if exceptions.allows("*", finding.code):
        return True
    message = context.message
    people = message.to + message.cc or message.recipients
    return bool(people) and all(exceptions.allows(p.email, finding.code) for p in people)
