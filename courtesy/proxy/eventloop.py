"""The event loop the long-running commands use: uvloop where it is installed.

uvloop (libuv under asyncio's API) cut the proxy's CPU per relayed message
by about a sixth in bench/relay.py — timers, callbacks and socket I/O are
C code there. asyncio's own loop is the fallback (e.g. on Windows, where
uvloop does not exist); everything courtesy does works on both, and the test
suite's servers run on the same loop as the product (tests/servers.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Like asyncio.run, on :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
