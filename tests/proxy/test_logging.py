"""Secrets never reach a log line."""

from __future__ import annotations

import io
import logging

from courtesy.proxy.cli import RedactTokens


def test_command_tokens_are_redacted_from_every_logger():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactTokens())
    logger = logging.getLogger("mail.log.test-redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "%r >> b'RCPT TO:<%s>'",
            ("127.0.0.1", 4242),
            "Release+17+abcdefghijklmnopqrstuvwxyz234567@Courtesy.Invalid",
        )
        logger.warning("plain line about bob@example.org")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "abcdefghijklmnop" not in out
    assert "Release+17+…@Courtesy.Invalid" in out
    assert "plain line about bob@example.org" in out
