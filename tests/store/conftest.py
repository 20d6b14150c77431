"""Fixtures of the store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from courtesy.store.db import Store, open_store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """The store opened (migrated) on each back end, closed after the test."""
    opened = open_store(store_url)
    yield opened
    opened.close()
