"""The address book the proxy hands to the checks: store-backed, with a small cache.

Every message looks up each recipient; a store round trip per lookup would
cost more than the checks themselves, so answers are cached for a short time
(imports and overrides show up after at most ``ttl`` seconds).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Generic, TypeVar

from courtesy.checks.model import AddressBook, Contact

K = TypeVar("K")
V = TypeVar("V")


class _TimedLRU(Generic[K, V]):
    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> tuple[bool, V | None]:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                return False, None
            stamp, value = found
            if time.monotonic() - stamp > self.ttl:
                del self._data[key]
                return False, None
            self._data.move_to_end(key)
            return True, value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = (time.monotonic(), value)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class CachedAddressBook:
    """An AddressBook in front of a slower one."""

    def __init__(self, backend: AddressBook, size: int = 20_000, ttl: float = 60.0) -> None:
        self.backend = backend
        self._emails: _TimedLRU[str, Contact | None] = _TimedLRU(size, ttl)
        self._names: _TimedLRU[str, Sequence[Contact]] = _TimedLRU(size, ttl)

    def by_email(self, email: str) -> Contact | None:
        key = email.lower()
        hit, value = self._emails.get(key)
        if hit:
            return value
        contact = self.backend.by_email(email)
        self._emails.put(key, contact)
        return contact

    def by_name(self, name: str) -> Sequence[Contact]:
        key = name.casefold()
        hit, value = self._names.get(key)
        if hit and value is not None:
            return value
        contacts = tuple(self.backend.by_name(name))
        self._names.put(key, contacts)
        return contacts

    def clear(self) -> None:
        self._emails.clear()
        self._names.clear()

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()


class LayeredAddressBook:
    """Several address books, the first that knows an answer wins."""

    def __init__(self, *books: AddressBook) -> None:
        self.books = books

    def by_email(self, email: str) -> Contact | None:
        for book in self.books:
            found = book.by_email(email)
            if found is not None:
                return found
        return None

    def by_name(self, name: str) -> Sequence[Contact]:
        seen: list[Contact] = []
        for book in self.books:
            for contact in book.by_name(name):
                if contact not in seen:
                    seen.append(contact)
        return tuple(seen)
