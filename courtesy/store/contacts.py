"""Contacts: what the user's address book and their outgoing mail say about names.

A contact is a person with one or more addresses. Imported address-book data
is trusted; display names harvested from outgoing headers are kept too but
never override imported data. The user's own overrides ("never check the
name for bob@", "address as Frau Dr. Weber") live in separate columns, so a
re-import never wipes them. :class:`StoreAddressBook` is the read-only view
the checks get: one indexed lookup per address or name, never a scan.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    String,
    Text,
    bindparam,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column, relationship, selectinload

from courtesy.checks.model import Contact, ContactSource
from courtesy.checks.names import PersonName, address_person_name, first_given_name, normalise
from courtesy.store.base import Base, UTCDateTime, utcnow

# How many contacts one lookup of by_name returns at most.
_BY_NAME_LIMIT = 20
# Contacts upserted per round trip in an import.
_BATCH = 500


class ContactRow(Base):
    """One person; emails and searchable name keys hang off it."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    given: Mapped[str | None] = mapped_column(Text)
    family: Mapped[str | None] = mapped_column(Text)
    nicknames: Mapped[list[str]] = mapped_column(JSON, default=list)
    salutation: Mapped[str | None] = mapped_column(String(64))
    gender: Mapped[str | None] = mapped_column(String(8))
    # addressbook | header (ContactSource values)
    source: Mapped[str] = mapped_column(String(16), index=True)
    # The user's overrides: win over imported data, survive re-imports.
    override_salutation: Mapped[str | None] = mapped_column(String(64))
    override_given: Mapped[str | None] = mapped_column(Text)
    override_family: Mapped[str | None] = mapped_column(Text)
    # Check codes or families never run for this person ("name", "name.misspelled").
    skip_checks: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    emails: Mapped[list[ContactEmail]] = relationship(
        back_populates="contact",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="ContactEmail.position",
    )
    name_keys: Mapped[list[ContactNameKey]] = relationship(
        back_populates="contact", cascade="all, delete-orphan"
    )


class ContactEmail(Base):
    """An address of a contact, lower case; unique: one address, one person."""

    __tablename__ = "contact_emails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    contact: Mapped[ContactRow] = relationship(back_populates="emails")


class ContactNameKey(Base):
    """A normalised name a contact goes by (given, family, full, nickname): for by_name."""

    __tablename__ = "contact_name_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(255), index=True)

    contact: Mapped[ContactRow] = relationship(back_populates="name_keys")


# --- conversions ---------------------------------------------------------------


def to_contact(row: ContactRow) -> Contact:
    """The checks' view of a row, overrides applied."""
    return _contact_from_columns(row, [e.email for e in row.emails])


def contact_json(contact: Contact) -> dict[str, Any]:
    """One line of ``courtesy contacts list --json``."""
    return {
        "emails": list(contact.emails),
        "name": contact.name,
        "given": contact.given,
        "family": contact.family,
        "nicknames": list(contact.nicknames),
        "salutation": contact.salutation,
        "source": str(contact.source),
    }


def _name_keys(row: ContactRow) -> set[str]:
    keys: set[str] = set()
    given = row.override_given or row.given
    family = row.override_family or row.family
    for value in (row.name, given, family, *(row.nicknames or ())):
        if value:
            keys.add(normalise(value))
    first = first_given_name(given)
    if first:
        keys.add(normalise(first))  # "Anna" of "Anna Maria"
    if given and family:
        keys.add(normalise(f"{given} {family}"))
        keys.add(normalise(f"{first} {family}"))
    return {k[:255] for k in keys if k}


def _reindex(session: Session, row: ContactRow) -> None:
    wanted = _name_keys(row)
    have = {k.key: k for k in row.name_keys}
    for key, item in have.items():
        if key not in wanted:
            row.name_keys.remove(item)  # delete-orphan removes the row
    for key in wanted - set(have):
        row.name_keys.append(ContactNameKey(key=key))


# --- writing -----------------------------------------------------------------------


def _rows_by_email(session: Session, emails: Iterable[str]) -> dict[str, ContactRow]:
    wanted = sorted({e.lower() for e in emails})
    found: dict[str, ContactRow] = {}
    for start in range(0, len(wanted), _BATCH):
        chunk = wanted[start : start + _BATCH]
        stmt = (
            select(ContactRow)
            .join(ContactEmail, ContactEmail.contact_id == ContactRow.id)
            .where(ContactEmail.email.in_(chunk))
            .options(selectinload(ContactRow.emails), selectinload(ContactRow.name_keys))
        )
        for row in session.scalars(stmt).unique():
            for item in row.emails:
                found[item.email] = row
    return found


def upsert_contacts(
    session: Session,
    contacts: Iterable[Contact],
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Store imported contacts; keyed on their addresses, so a re-import updates.

    A contact whose addresses belong to several stored rows (say, two
    harvested from headers) merges them into one. Returns (created, updated).
    """
    created = updated = 0
    batch: list[Contact] = []
    done = 0

    def flush() -> None:
        nonlocal created, updated, done
        known = _rows_by_email(session, (e for c in batch for e in c.emails))
        fresh: list[Contact] = []
        claimed: set[str] = set()
        for contact in batch:
            emails = [e.lower() for e in contact.emails]
            rows = list(dict.fromkeys(known[e] for e in emails if e in known))
            if not rows:
                if claimed.isdisjoint(emails):
                    claimed.update(emails)
                    fresh.append(contact)
                    continue
                # The same address twice in one batch: let the ORM path merge it.
                session.flush()
                _insert_new(session, fresh)
                created += len(fresh)
                fresh.clear()
                claimed.clear()
                known.update(_rows_by_email(session, emails))
                rows = list(dict.fromkeys(known[e] for e in emails if e in known))
            row = rows[0]
            for other in rows[1:]:
                _merge_into(session, other, row, known)
            updated += 1
            if len(rows) == 1 and _unchanged(row, contact):
                continue
            _apply(row, contact)
            have = {e.email for e in row.emails}
            for email in emails:
                if email not in have:
                    row.emails.append(ContactEmail(email=email, position=len(row.emails)))
                    have.add(email)
                known[email] = row
            _reindex(session, row)
        session.flush()
        _insert_new(session, fresh)
        created += len(fresh)
        done += len(batch)
        batch.clear()
        if progress is not None:
            progress(done)

    for contact in contacts:
        if not contact.emails:
            continue
        batch.append(contact)
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    return created, updated


def _insert_new(session: Session, contacts: Sequence[Contact]) -> None:
    """Insert contacts none of whose addresses is stored yet: bulk, without the unit of work.

    An import of 100,000 contacts spends most of its time here; row-by-row ORM
    objects would take about ten times as long.
    """
    if not contacts:
        return
    now = utcnow()
    rows: list[ContactRow] = []
    values = []
    for contact in contacts:
        row = ContactRow(nicknames=[], skip_checks=[])
        _apply(row, contact)
        rows.append(row)
        values.append(
            {
                "name": row.name,
                "given": row.given,
                "family": row.family,
                "nicknames": row.nicknames,
                "salutation": row.salutation,
                "gender": row.gender,
                "source": row.source,
                "skip_checks": row.skip_checks or [],
                "created_at": now,
                "updated_at": now,
            }
        )
    ids = list(
        session.scalars(
            insert(ContactRow).returning(ContactRow.id, sort_by_parameter_order=True),
            values,
        )
    )
    emails: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    for contact_id, contact, row in zip(ids, contacts, rows, strict=True):
        for position, email in enumerate(dict.fromkeys(e.lower() for e in contact.emails)):
            emails.append({"contact_id": contact_id, "email": email, "position": position})
        keys.extend({"contact_id": contact_id, "key": k} for k in _name_keys(row))
    session.execute(insert(ContactEmail), emails)
    if keys:
        session.execute(insert(ContactNameKey), keys)


def _unchanged(row: ContactRow, contact: Contact) -> bool:
    """Whether a re-import would change nothing (the common case: skip the writes)."""
    return (
        row.source == str(ContactSource.ADDRESS_BOOK)
        and row.name == contact.name
        and row.given == contact.given
        and row.family == contact.family
        and list(row.nicknames or ()) == list(contact.nicknames)
        and row.salutation == contact.salutation
        and row.gender == contact.gender
        and contact.skip_checks <= set(row.skip_checks or ())
        and {e.lower() for e in contact.emails} <= {e.email for e in row.emails}
    )


def _apply(row: ContactRow, contact: Contact) -> None:
    row.name = contact.name
    row.given = contact.given
    row.family = contact.family
    row.nicknames = list(contact.nicknames)
    row.salutation = contact.salutation
    row.gender = contact.gender
    row.source = str(
        ContactSource.ADDRESS_BOOK
        if contact.source in (ContactSource.ADDRESS_BOOK, ContactSource.OVERRIDE)
        else contact.source
    )
    if contact.skip_checks:
        row.skip_checks = sorted(set(row.skip_checks or ()) | contact.skip_checks)


def _merge_into(
    session: Session, old: ContactRow, row: ContactRow, known: dict[str, ContactRow]
) -> None:
    """Move ``old``'s addresses and overrides to ``row`` and drop ``old``."""
    for item in list(old.emails):
        item.position = len(row.emails)
        item.contact = row  # moves it between the collections; not an orphan
        known[item.email] = row
    row.override_salutation = row.override_salutation or old.override_salutation
    row.override_given = row.override_given or old.override_given
    row.override_family = row.override_family or old.override_family
    row.skip_checks = sorted(set(row.skip_checks or ()) | set(old.skip_checks or ()))
    session.delete(old)
    session.flush()


def harvest_display_names(session: Session, addresses: Iterable[tuple[str, str]]) -> int:
    """Remember (address, display name) pairs seen in outgoing headers.

    Lower trust: a contact from the address book is never touched; a
    harvested one follows the latest display name. Lists and role names
    ("usrp-users", "Info") are not people and are skipped, and so are display
    names that say nothing of the address's own person: a list's rewrite of a
    poster's name ("Ann Lee via users <users@…>") and a bare lower-case local
    part ("rcarroll <rcarroll@…>"); see :func:`address_person_name`, which
    the name check reads display names through too. Returns how many rows
    were created or changed.
    """
    pairs: dict[str, tuple[str, PersonName]] = {}
    for email, display in addresses:
        email = email.strip().lower()
        display = " ".join(display.split())
        if not email or "@" not in email or not display or "@" in display:
            continue
        person = address_person_name(email, display)
        given, family, other, _ = person
        if not (given or family or other):
            continue
        pairs[email] = (display, person)
    if not pairs:
        return 0
    known = _rows_by_email(session, pairs)
    changed = 0
    for email, (display, person) in pairs.items():
        row = known.get(email)
        if row is not None and row.source != str(ContactSource.HEADER):
            continue
        if row is not None and row.name == display:
            continue
        given, family, other, nicks = person
        if row is None:
            row = ContactRow(source=str(ContactSource.HEADER), nicknames=[])
            row.emails.append(ContactEmail(email=email, position=0))
            session.add(row)
            known[email] = row
        row.name = display
        row.given = given or (other[0] if other else None)
        row.family = family
        row.nicknames = list(nicks)
        _reindex(session, row)
        changed += 1
    session.flush()
    return changed


def set_override(
    session: Session,
    email: str,
    *,
    salutation: str | None = None,
    given: str | None = None,
    family: str | None = None,
    skip_checks: Sequence[str] | None = None,
) -> ContactRow:
    """Record how the user wants a person addressed, or which checks to skip for them.

    ``None`` leaves a field as it is; an empty string clears it. Creates the
    contact (source "addressbook": the user said so) when the address is new.
    """
    email = email.strip().lower()
    row = _rows_by_email(session, [email]).get(email)
    if row is None:
        row = ContactRow(source=str(ContactSource.ADDRESS_BOOK), name="", nicknames=[])
        row.emails.append(ContactEmail(email=email, position=0))
        session.add(row)
    if salutation is not None:
        row.override_salutation = salutation or None
    if given is not None:
        row.override_given = given or None
    if family is not None:
        row.override_family = family or None
    if skip_checks is not None:
        row.skip_checks = sorted(set(skip_checks))
    _reindex(session, row)
    session.flush()
    return row


def delete_contact(session: Session, email: str) -> bool:
    email = email.strip().lower()
    row = _rows_by_email(session, [email]).get(email)
    if row is None:
        return False
    session.execute(delete(ContactRow).where(ContactRow.id == row.id))
    return True


# --- reading ----------------------------------------------------------------------------


def list_contacts(session: Session, *, source: ContactSource | None = None) -> Iterable[Contact]:
    """Every contact, ordered by name; streamed in batches for large books."""
    stmt = select(ContactRow).order_by(ContactRow.name, ContactRow.id)
    if source is not None:
        stmt = stmt.where(ContactRow.source == str(source))
    for row in session.scalars(stmt.execution_options(yield_per=_BATCH)):
        yield to_contact(row)


def count_contacts(session: Session) -> int:
    from sqlalchemy import func

    return session.scalar(select(func.count()).select_from(ContactRow)) or 0


def dump_json_lines(contacts: Iterable[Contact]) -> Iterable[str]:
    for contact in contacts:
        yield json.dumps(contact_json(contact), ensure_ascii=False)


_CONTACT_COLUMNS = (
    ContactRow.id,
    ContactRow.name,
    ContactRow.given,
    ContactRow.family,
    ContactRow.nicknames,
    ContactRow.salutation,
    ContactRow.gender,
    ContactRow.source,
    ContactRow.override_salutation,
    ContactRow.override_given,
    ContactRow.override_family,
    ContactRow.skip_checks,
)


def _contact_from_columns(row: Any, emails: Sequence[str]) -> Contact:
    """A Contact from a row (ORM or Core result columns), the user's overrides applied."""
    source = ContactSource(row.source)
    given = row.override_given or row.given
    family = row.override_family or row.family
    if row.override_given or row.override_family or row.override_salutation:
        source = ContactSource.OVERRIDE
    name = row.name
    if row.override_given or row.override_family:
        name = " ".join(p for p in (given, family) if p) or row.name
    return Contact(
        emails=tuple(emails),
        name=name,
        given=given,
        family=family,
        nicknames=tuple(row.nicknames or ()),
        salutation=row.override_salutation or row.salutation,
        gender=row.gender,
        source=source,
        skip_checks=frozenset(row.skip_checks or ()),
    )


# Built once: constructing a SQLAlchemy statement costs more than running it.
_LOOKED_UP = aliased(ContactEmail)
_ALL_EMAILS = aliased(ContactEmail)
# The contact and every one of its addresses in one round trip.
_BY_EMAIL = (
    select(*_CONTACT_COLUMNS, _ALL_EMAILS.email.label("address"))
    .join(_LOOKED_UP, _LOOKED_UP.contact_id == ContactRow.id)
    .join(_ALL_EMAILS, _ALL_EMAILS.contact_id == ContactRow.id)
    .where(_LOOKED_UP.email == bindparam("email"))
    .order_by(_ALL_EMAILS.position, _ALL_EMAILS.id)
)
_BY_NAME = (
    select(*_CONTACT_COLUMNS)
    .join(ContactNameKey, ContactNameKey.contact_id == ContactRow.id)
    .where(ContactNameKey.key == bindparam("key"))
    .order_by(ContactRow.source, ContactRow.id)
    .limit(_BY_NAME_LIMIT)
)
_EMAILS_OF = (
    select(ContactEmail.contact_id, ContactEmail.email)
    .where(ContactEmail.contact_id.in_(bindparam("ids", expanding=True)))
    .order_by(ContactEmail.contact_id, ContactEmail.position)
)


class StoreAddressBook:
    """The AddressBook the checks read, backed by the store.

    Each call runs two indexed Core queries on one pooled connection (no ORM
    objects: bench/checks.py measured the ORM path at several times the cost
    of parsing the message), so it is safe to share between threads and
    cheap with 100,000 contacts.
    """

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._sessions = session_factory
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._opened_lock = threading.Lock()

    def _connection(self) -> Connection:
        """One autocommit connection per thread: no pool checkout or snapshot per lookup."""
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.invalidated:
            with self._sessions() as session:
                engine = session.get_bind()
            assert isinstance(engine, Engine)
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._local.connection = connection
            with self._opened_lock:
                self._opened.append(connection)
        return connection

    def close(self) -> None:
        """Close the per-thread connections (before the store's engine is disposed)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            with contextlib.suppress(Exception):
                connection.close()

    def reader(self) -> contextlib.AbstractContextManager[Connection]:
        """This thread's autocommit connection, for other cheap reads."""
        return self._session()

    @contextlib.contextmanager
    def _session(self) -> Iterator[Connection]:
        try:
            yield self._connection()
        except DBAPIError:
            # A broken connection (server restart): drop it, the next call reconnects.
            connection = getattr(self._local, "connection", None)
            self._local.connection = None
            if connection is not None:
                connection.invalidate()
            raise

    def _emails_of(self, session: Connection, ids: Sequence[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {i: [] for i in ids}
        rows = session.execute(_EMAILS_OF, {"ids": list(ids)})
        for contact_id, address in rows:
            found[contact_id].append(address)
        return found

    def by_email(self, email: str) -> Contact | None:
        with self._session() as session:
            rows = session.execute(_BY_EMAIL, {"email": email.strip().lower()}).all()
        if not rows:
            return None
        return _contact_from_columns(rows[0], [row.address for row in rows])

    def by_name(self, name: str) -> Sequence[Contact]:
        key = normalise(name)
        if not key:
            return ()
        with self._session() as session:
            rows = list({row.id: row for row in session.execute(_BY_NAME, {"key": key})}.values())
            if not rows:
                return ()
            # Address-book contacts before harvested ones.
            rows.sort(key=lambda r: r.source != str(ContactSource.ADDRESS_BOOK))
            emails = self._emails_of(session, [r.id for r in rows])
            return tuple(_contact_from_columns(r, emails[r.id]) for r in rows)
