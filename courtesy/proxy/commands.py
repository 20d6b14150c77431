"""Sub-commands beyond ``run`` and ``config``, registered with the CLI parser."""

from __future__ import annotations

from collections.abc import Callable

from courtesy.proxy import cli_check

REGISTER: list[Callable[..., None]] = [
    cli_check.register,
]
