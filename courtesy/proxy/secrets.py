"""Fetching passwords from a command, the environment or the keyring.

The password itself never appears in a log line, an error message or a repr:
errors say which source failed and why, not what it printed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from courtesy.proxy.config import PasswordSource

KEYRING_SERVICE = "courtesy"


class SecretError(RuntimeError):
    """A password source that could not deliver; the message names the source."""


class Secret:
    """A string that refuses to show itself in logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


def resolve_password(
    source: PasswordSource,
    section: str,
    username: str | None,
    environ: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Secret | None:
    """The password for ``section`` ("upstream", "imap"), or None when none is configured."""
    env = os.environ if environ is None else environ
    if source.password_command:
        try:
            done = subprocess.run(
                source.password_command,
                shell=True,  # like msmtp's passwordeval: the user's own shell line
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SecretError(
                f"{section}.password_command did not finish within {timeout:.0f}s"
            ) from None
        if done.returncode != 0:
            raise SecretError(
                f"{section}.password_command failed with exit status {done.returncode}"
            )
        value = done.stdout.decode("utf-8", "replace").split("\n", 1)[0].rstrip("\r")
        if not value:
            raise SecretError(f"{section}.password_command printed nothing")
        return Secret(value)
    if source.password_env:
        from_env = env.get(source.password_env)
        if not from_env:
            raise SecretError(
                f"{section}.password_env: the environment variable {source.password_env} is not set"
            )
        return Secret(from_env)
    if source.password_keyring:
        if not username:
            raise SecretError(f"{section}.password_keyring needs {section}.username")
        try:
            import keyring

            stored = keyring.get_password(KEYRING_SERVICE, username)
        except Exception as exc:  # the keyring backends raise many kinds
            raise SecretError(
                f"{section}.password_keyring: the system keyring failed ({type(exc).__name__})"
            ) from None
        if not stored:
            raise SecretError(
                f"{section}.password_keyring: no password for {username!r} under service "
                f"{KEYRING_SERVICE!r} (store one with: keyring set {KEYRING_SERVICE} {username})"
            )
        return Secret(stored)
    if source.password is not None:
        return Secret(source.password)
    return None
