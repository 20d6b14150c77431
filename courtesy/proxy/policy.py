"""Turning findings into one action per message (detection is not decision).

The checks say what they noticed; ``[policy]`` says what that leads to, per
check code or family. A finding of severity ``info`` never changes the
action. The strongest action wins: reject > hold > relay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from courtesy.checks.model import Finding, Severity
from courtesy.proxy.config import Action, Config

_RANK: dict[str, int] = {"relay": 0, "hold": 1, "reject": 2}


def strongest(*actions: Action) -> Action:
    best: Action = "relay"
    for action in actions:
        if _RANK[action] > _RANK[best]:
            best = action
    return best


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    # The findings that led to the action (empty for relay).
    because: tuple[Finding, ...] = ()


def decide(findings: Sequence[Finding], config: Config, *, check_failed: bool = False) -> Decision:
    """The action for a message with these findings under ``config``'s policy."""
    action: Action = "relay"
    because: list[Finding] = []
    for finding in findings:
        if finding.severity == Severity.INFO:
            continue
        wanted = config.action_for(finding.code)
        if wanted != "relay":
            because.append(finding)
        action = strongest(action, wanted)
    if check_failed:
        action = strongest(action, config.proxy.on_check_error)
    return Decision(action, tuple(because) if action != "relay" else ())
