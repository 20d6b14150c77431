"""Sub-commands beyond ``run`` and ``config``, registered with the CLI parser."""

from __future__ import annotations

from collections.abc import Callable

REGISTER: list[Callable[..., None]] = []
