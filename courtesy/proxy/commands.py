"""Sub-commands beyond ``run`` and ``config``, registered with the CLI parser."""

from __future__ import annotations

from collections.abc import Callable

from courtesy.proxy import cli_api, cli_check, cli_held, cli_poll, cli_report

REGISTER: list[Callable[..., None]] = [
    cli_check.register,
    cli_held.register,
    cli_poll.register,
    cli_api.register,
    cli_report.register,
]
