"""Opening the store: engine, sessions, file permissions and migrations.

SQLite by default (WAL, synchronous FULL so a commit survives a crash, file
mode 0600); PostgreSQL when ``store.url`` says so. Every open runs the Alembic
migrations up to head, which is a no-op on an up-to-date database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class StoreError(RuntimeError):
    """The store could not be opened or written; the message says why in one line."""


def store_fault(error: BaseException) -> str | None:
    """Why the store failed, in one line, when ``error`` is the store's; else None.

    A store that is locked, full or gone is an expected fault the caller answers
    with a retry; it is logged in one line, not as a bug with a traceback.
    """
    if isinstance(error, SQLAlchemyError):
        return str(getattr(error, "orig", None) or error)
    return None


def log_failure(logger: logging.Logger, error: BaseException, what: str, *args: object) -> None:
    """Log that ``what`` failed: a store fault in one line, anything else with its traceback."""
    reason = store_fault(error)
    if reason is not None:
        logger.error(f"{what}: the store failed: %s", *args, reason)
    else:
        logger.error(what, *args, exc_info=error)


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]
    url: str

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _prepare_sqlite_file(path: Path) -> None:
    """Create the database file private to its owner before SQLite opens it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


_migrate_lock = threading.Lock()


# The newest migration's revision id; a test keeps it equal to Alembic's head.
HEAD_REVISION = "0001"


def _current_revision(engine: Engine) -> tuple[bool, str | None]:
    """(database has any table, revision recorded in alembic_version)."""
    with engine.connect() as connection:
        tables = inspect(connection).get_table_names()
        if "alembic_version" not in tables:
            return bool(tables), None
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return True, version


def alembic_upgrade(engine: Engine) -> None:
    """Run the Alembic migrations up to head."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    alembic_cfg = AlembicConfig()
    alembic_cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        alembic_cfg.attributes["connection"] = connection
        command.upgrade(alembic_cfg, "head")


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to call on every start.

    The common cases do without Alembic, whose import alone costs the
    long-running proxy about 11 MB of memory (bench/relay.py reports peak
    RSS): a database already at head is left alone, and an empty one gets
    the tables from the models plus the head revision stamp — what Alembic
    itself recommends for new databases; a test checks that this and the
    migrations give the same schema. Anything else runs the migrations.
    """
    with _migrate_lock:
        has_tables, revision = _current_revision(engine)
        if revision == HEAD_REVISION:
            return
        if not has_tables:
            from courtesy.store.models import Base

            with engine.begin() as connection:
                Base.metadata.create_all(connection)
                connection.execute(
                    text(
                        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
                    )
                )
                connection.execute(
                    text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                    {"v": HEAD_REVISION},
                )
            return
        alembic_upgrade(engine)


def open_store(url: str, *, migrate: bool = True, echo: bool = False) -> Store:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"store.url: {url!r} is not a database URL") from None
    kwargs: dict[str, Any] = {"echo": echo}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        database = parsed.database
        if database and database != ":memory:":
            try:
                _prepare_sqlite_file(Path(database).expanduser())
            except OSError as exc:
                raise StoreError(f"store: cannot create {database}: {exc.strerror}") from None
        kwargs["connect_args"] = {"check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"store.url: cannot use {parsed.get_backend_name()!r}: {exc}") from None
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        try:
            upgrade(engine)
        except OperationalError as exc:
            engine.dispose()
            raise StoreError(
                f"store: cannot open {parsed.render_as_string()}: {exc.orig}"
            ) from None
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(f"store: migration failed: {exc}") from None
    sessions = sessionmaker(engine, expire_on_commit=False)
    return Store(engine=engine, sessions=sessions, url=parsed.render_as_string())
