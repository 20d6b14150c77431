"""Every table of the store, imported in one place for Alembic and create_all."""

from courtesy.store.api import InstallationSecret, UsedOverride  # noqa: F401  (API secrets)
from courtesy.store.base import Base
from courtesy.store.contacts import ContactEmail, ContactNameKey, ContactRow
from courtesy.store.held import CheckException, HeldMessage, RejectOverride
from courtesy.store.inbound import ImapFolder, InboundLocation, InboundMessage, ReplyRef
from courtesy.store.outgoing import OutgoingMessage
from courtesy.store.reports import SentReport

__all__ = [
    "Base",
    "CheckException",
    "ContactEmail",
    "ContactNameKey",
    "ContactRow",
    "HeldMessage",
    "ImapFolder",
    "InboundLocation",
    "InboundMessage",
    "OutgoingMessage",
    "RejectOverride",
    "ReplyRef",
    "SentReport",
]
