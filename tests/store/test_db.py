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


def test_head_revision_constant_matches_the_migrations():
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from courtesy.store.db import HEAD_REVISION, MIGRATIONS_DIR

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def _schema(engine) -> dict[str, object]:
    found: dict[str, object] = {}
    inspector = inspect(engine)
    for table in sorted(inspector.get_table_names()):
        columns = sorted(
            (c["name"], str(c["type"]).split("(")[0], c["nullable"])
            for c in inspector.get_columns(table)
        )
        indexes = sorted(
            (tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
        )
        found[table] = (columns, indexes)
    return found


def test_new_database_from_models_equals_the_migrated_one(store_url: str, tmp_path: Path):
    """open_store builds an empty database from the models; Alembic's migrations must agree."""
    from sqlalchemy import create_engine

    from courtesy.store.db import alembic_upgrade

    fresh = open_store(store_url)
    from_models = _schema(fresh.engine)
    fresh.close()
    if store_url.startswith("sqlite"):
        other_url = f"sqlite:///{tmp_path / 'migrated.db'}"
    else:
        base, _, _ = store_url.rpartition("/")
        import psycopg

        plain = base.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
            conn.execute('CREATE DATABASE "migrated_compare"')
        other_url = f"{base}/migrated_compare"
    engine = create_engine(other_url)
    try:
        alembic_upgrade(engine)
        assert _schema(engine) == from_models
    finally:
        engine.dispose()
