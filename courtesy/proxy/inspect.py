"""Where findings enter the policy: parse once, run the checks, decide."""

from __future__ import annotations

from courtesy.proxy.config import Config
from courtesy.proxy.front import Inspector, NoChecks


def build_inspector(config: Config) -> Inspector:
    return NoChecks()
