"""Fixtures for the proxy tests: a real Dovecot IMAP server on loopback, started once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dovecot import Dovecot, DovecotMissing


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot for the session; each test takes its own user (``dovecot.new_user()``)."""
    try:
        server = Dovecot()
    except DovecotMissing as exc:
        pytest.fail(str(exc))
    server.start()
    yield server
    server.close()
