"""The long-running commands and the test servers share one event loop choice."""

from __future__ import annotations

import asyncio

import uvloop

from courtesy.proxy import eventloop
from tests.servers import LoopThread


def test_uvloop_is_used_when_installed() -> None:
    loop = eventloop.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_run_returns_the_coroutines_result_on_that_loop() -> None:
    async def which() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert eventloop.run(which()).startswith("uvloop")


def test_the_suites_servers_run_on_the_same_loop() -> None:
    thread = LoopThread("probe")
    try:
        assert isinstance(thread.loop, uvloop.Loop)
    finally:
        thread.close()
