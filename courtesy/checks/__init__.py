"""The courtesy rules: pure functions from a parsed message to findings.

Nothing here does I/O: no network, no database, no files. The proxy and
``courtesy check`` build a :class:`~courtesy.checks.model.CheckContext` and
call :func:`~courtesy.checks.registry.run_checks`.
"""

from courtesy.checks.model import (
    Address,
    AddressBook,
    CheckContext,
    Contact,
    ContactSource,
    Exceptions,
    Finding,
    MemoryAddressBook,
    OutgoingMessage,
    Severity,
    ThreadView,
)
from courtesy.checks.registry import CheckReport, families, run_checks

__all__ = [
    "Address",
    "AddressBook",
    "CheckContext",
    "CheckReport",
    "Contact",
    "ContactSource",
    "Exceptions",
    "Finding",
    "MemoryAddressBook",
    "OutgoingMessage",
    "Severity",
    "ThreadView",
    "families",
    "run_checks",
]
