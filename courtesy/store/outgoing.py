"""The log of every outgoing message: metadata only, never a body."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from courtesy.store.base import Base, UTCDateTime, utcnow


class OutgoingMessage(Base):
    """One message that reached the proxy's DATA stage, and what became of it."""

    __tablename__ = "outgoing_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998), index=True)
    # Message-IDs of References, space-separated, as written.
    references: Mapped[str | None] = mapped_column(Text)
    envelope_from: Mapped[str] = mapped_column(String(320))
    # Envelope recipients as given to RCPT TO.
    recipients: Mapped[list[str]] = mapped_column(JSON)
    # Header recipients, lower-cased addresses; feed cc.added_to_thread.
    to_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    to_count: Mapped[int] = mapped_column(Integer, default=0)
    cc_count: Mapped[int] = mapped_column(Integer, default=0)
    bcc_count: Mapped[int] = mapped_column(Integer, default=0)
    subject: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer, default=0)
    # relay | hold | reject | override | tryout | failed
    action: Mapped[str] = mapped_column(String(16), index=True)
    # The upstream server's answer to DATA (or why there was none).
    upstream_reply: Mapped[str | None] = mapped_column(Text)
    # Findings as in `courtesy check --json`.
    findings: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    # Check families that crashed on this message.
    check_errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The authenticated SMTP user, when AUTH was used.
    auth_user: Mapped[str | None] = mapped_column(String(320))

    __table_args__ = (Index("ix_outgoing_messages_action_created", "action", "created_at"),)
