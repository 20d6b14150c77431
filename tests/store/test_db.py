"""The store on SQLite and PostgreSQL: migrations, permissions, round trips."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from courtesy.store.db import StoreError, open_store
from courtesy.store.outgoing import OutgoingMessage


def test_migrations_upgrade_an_empty_database_and_are_idempotent(store_url: str):
    store = open_store(store_url)
    tables = set(inspect(store.engine).get_table_names())
    assert {"outgoing_messages", "alembic_version"} <= tables
    with store.engine.connect() as conn:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    store.close()
    again = open_store(store_url)  # a second start changes nothing
    with again.engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions == [head]
    again.close()


def test_outgoing_round_trip_keeps_time_zone_and_json(store_url: str):
    store = open_store(store_url)
    sent = datetime(2026, 11, 27, 9, 30, tzinfo=UTC) + timedelta(microseconds=5)
    with store.session() as session:
        session.add(
            OutgoingMessage(
                created_at=sent,
                message_id="<a@b>",
                envelope_from="anna@example.com",
                recipients=["x@example.org", "y@example.org"],
                action="relay",
                findings=[{"code": "cc.too_many", "severity": "warn"}],
            )
        )
    with store.session() as session:
        row = session.scalars(select(OutgoingMessage)).one()
        assert row.created_at == sent and row.created_at.tzinfo is not None
        assert row.recipients == ["x@example.org", "y@example.org"]
        assert row.findings[0]["code"] == "cc.too_many"
    store.close()


def test_naive_datetimes_are_refused(tmp_path: Path):
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(Exception, match="naive datetime"), store.session() as session:
        session.add(
            OutgoingMessage(
                created_at=datetime(2026, 1, 1), envelope_from="a", recipients=[], action="relay"
            )
        )
        session.flush()
    store.close()


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path):
    path = tmp_path / "deeper" / "courtesy.db"
    store = open_store(f"sqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 2  # FULL
    store.close()


def test_bad_urls_give_one_line_errors(tmp_path: Path):
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("not a url")
    with pytest.raises(StoreError, match="cannot"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none")
