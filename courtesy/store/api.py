"""Secrets of the local check API and the memory of used override tokens.

Per installation (one store): the bearer token the mail-client add-on sends,
and the key that signs ``X-Courtesy-Override`` tokens. They live in the store
rather than in a file of their own so that they follow the store (a
PostgreSQL-backed shared instance, a backup) and need no path setting; the
SQLite file is already private to its owner.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from courtesy.store.base import Base, UTCDateTime, rowcount, utcnow

API_TOKEN = "api_token"
OVERRIDE_KEY = "override_key"


class InstallationSecret(Base):
    """A named random secret, made once per store."""

    __tablename__ = "installation_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UsedOverride(Base):
    """An override token's nonce that has let a message through: it never does again."""

    __tablename__ = "used_overrides"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


def installation_secret(session: Session, name: str) -> str:
    """The secret called ``name``, created on first use.

    The proxy and ``courtesy api token`` may both create it at the same time:
    the primary key lets one insert win and the other reads the winner.
    """
    found = session.get(InstallationSecret, name)
    if found is not None:
        return found.value
    value = secrets.token_urlsafe(32)
    try:
        with session.begin_nested():
            session.add(InstallationSecret(name=name, value=value))
    except IntegrityError:
        winner = session.scalar(
            select(InstallationSecret.value).where(InstallationSecret.name == name)
        )
        assert winner is not None
        return winner
    return value


def use_override(session: Session, nonce: str) -> bool:
    """Mark ``nonce`` used; False when it was used before."""
    try:
        with session.begin_nested():
            session.add(UsedOverride(nonce=nonce, used_at=utcnow()))
    except IntegrityError:
        return False
    return True


def forget_used_overrides(session: Session, before: datetime) -> int:
    """Drop nonces of tokens that have expired anyway."""
    result = session.execute(delete(UsedOverride).where(UsedOverride.used_at < before))
    return rowcount(result)
