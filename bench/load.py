"""Faults under load: does a message the client saw accepted ever get lost?

N messages (default 10,000) are sent by K concurrent smtplib clients (threads,
default 20) through a real ``courtesy run`` process to a recording upstream
process that appends one line per delivered Message-ID to a file before it
answers 250. Meanwhile the bench SIGKILLs the upstream twice (restarting it a
second later) and SIGKILLs the proxy once (restarting it). One message in ten
has no greeting, so the real checks hold it.

A client that gets 4xx, or loses its connection, retries the same message
(counted). Afterwards it prints

    sent / accepted (the client saw 250) / delivered / held / lost / duplicates

where lost = accepted but neither delivered nor held (must be 0) and
duplicates = Message-IDs that arrived upstream (or were held) more than once:
a 250 lost with a killed process makes the client send again, which is
allowed (at-least-once); a lost message is not. Exit status 1 when lost > 0.

    .venv/bin/python bench/load.py
    .venv/bin/python bench/load.py -n 2000 -k 10      # quicker
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import queue
import re
import signal
import smtplib
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.proxyconf import write_relay_config  # noqa: E402
from tests.servers import free_port, wait_port  # noqa: E402

UPSTREAM = textwrap.dedent(
    """
    import asyncio, os, re, sys
    from aiosmtpd.smtp import SMTP

    MSGID = re.compile(rb"^Message-ID:\\s*(<[^>]*>)", re.I | re.M)

    class Recorder:
        def __init__(self, path):
            self.out = open(path, "ab", buffering=0)

        async def handle_DATA(self, server, session, envelope):
            found = MSGID.search(envelope.original_content)
            # Written (unbuffered) before the 250: a kill after this line loses no record.
            self.out.write((found.group(1) if found else b"<none>") + b"\\n")
            return "250 2.0.0 Ok: recorded"

    async def main(port, path):
        recorder = Recorder(path)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(recorder, hostname="upstream.bench", data_size_limit=0),
            "127.0.0.1", port, reuse_address=True)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
    """
)


def message(index: int) -> bytes:
    greeting = "" if index % 10 == 0 else "Hallo Herr Meier,\r\n\r\n"
    return (
        f"From: Anna Schmidt <anna@example.com>\r\n"
        f"To: Thomas Meier <thomas.meier@example.org>\r\n"
        f"Subject: load {index}\r\n"
        f"Message-ID: <load-{index}@bench.example>\r\n"
        f"Date: Mon, 3 Mar 2025 10:00:00 +0100\r\n"
        f"\r\n{greeting}anbei Nachricht {index} des Lasttests.\r\n\r\n"
        f"Viele Grüße\r\nAnna\r\n"
    ).encode()


@dataclass
class Counts:
    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: set[int] = field(default_factory=set)
    refused: dict[int, str] = field(default_factory=dict)  # 5xx: a permanent answer
    retries: int = 0
    retry_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    gave_up: set[int] = field(default_factory=set)
    done: int = 0


class Process:
    """A child process that can be SIGKILLed and started again."""

    def __init__(self, name: str, args: list[str], port: int, log: Path) -> None:
        self.name, self.args, self.port, self.log = name, args, port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log, cwd=ROOT)
        wait_port(self.port)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def client(port: int, work: queue.Queue[int], counts: Counts, deadline: float) -> None:
    connection: smtplib.SMTP | None = None
    while True:
        try:
            index = work.get_nowait()
        except queue.Empty:
            break
        content = message(index)
        attempt = 0
        while True:
            reason = ""
            try:
                if connection is None:
                    connection = smtplib.SMTP("127.0.0.1", port, timeout=30)
                connection.sendmail("anna@example.com", ["thomas.meier@example.org"], content)
                with counts.lock:
                    counts.accepted.add(index)
                break
            except smtplib.SMTPResponseException as exc:
                if 400 <= exc.smtp_code < 500:
                    reason = f"{exc.smtp_code}"
                else:
                    with counts.lock:
                        counts.refused[index] = f"{exc.smtp_code} {exc.smtp_error!r}"
                    break
            except smtplib.SMTPRecipientsRefused as exc:
                codes = {code for code, _ in exc.recipients.values()}
                if all(400 <= c < 500 for c in codes):
                    reason = f"rcpt {sorted(codes)}"
                else:
                    with counts.lock:
                        counts.refused[index] = f"rcpt {sorted(codes)}"
                    break
            except (smtplib.SMTPException, OSError) as exc:
                reason = type(exc).__name__
            # A 4xx or a lost connection: the client keeps the message and tries again.
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.close()
                connection = None
            attempt += 1
            with counts.lock:
                counts.retries += 1
                counts.retry_reasons[reason] += 1
            if time.monotonic() > deadline:
                with counts.lock:
                    counts.gave_up.add(index)
                break
            time.sleep(min(2.0, 0.1 * attempt))
        with counts.lock:
            counts.done += 1
    if connection is not None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            connection.quit()


def chaos(upstream: Process, proxy: Process, counts: Counts, total: int, events: list[str]) -> None:
    """Kill the upstream at 20% and 50%, the proxy at 75% of the messages done."""
    plan = [(0.20, "upstream"), (0.50, "upstream"), (0.75, "proxy")]
    started = time.monotonic()
    for fraction, target in plan:
        while counts.done < fraction * total:
            time.sleep(0.05)
            if counts.done >= total:
                return
        victim = upstream if target == "upstream" else proxy
        victim.kill()
        events.append(f"{time.monotonic() - started:6.1f}s  SIGKILL {victim.name}")
        time.sleep(1.0)
        victim.start()
        events.append(f"{time.monotonic() - started:6.1f}s  restarted {victim.name}")


def held_message_ids(store_url: str) -> list[str]:
    from sqlalchemy import select

    from courtesy.store.db import open_store
    from courtesy.store.held import HeldMessage

    store = open_store(store_url)
    try:
        with store.sessions() as session:
            return [m or "<none>" for m in session.scalars(select(HeldMessage.message_id))]
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=10_000)
    parser.add_argument("-k", "--clients", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the whole run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="courtesy-load-"))
    delivered_file = work / "delivered.txt"
    upstream_port, proxy_port = free_port(), free_port()
    config, store_url = write_relay_config(
        work, proxy_port, upstream_port, proxy_options='shutdown_grace = "30s"'
    )
    upstream = Process(
        "upstream",
        [sys.executable, "-c", UPSTREAM, str(upstream_port), str(delivered_file)],
        upstream_port,
        work / "upstream.log",
    )
    proxy = Process(
        "proxy",
        [
            sys.executable,
            "-m",
            "courtesy.proxy.cli",
            "--log-level",
            "warning",
            "run",
            "-c",
            str(config),
        ],
        proxy_port,
        work / "proxy.log",
    )
    upstream.start()
    proxy.start()

    work_queue: queue.Queue[int] = queue.Queue()
    for index in range(args.messages):
        work_queue.put(index)
    counts = Counts()
    events: list[str] = []
    started = time.monotonic()
    deadline = started + args.timeout
    threads = [
        threading.Thread(target=client, args=(proxy_port, work_queue, counts, deadline))
        for _ in range(args.clients)
    ]
    chaos_thread = threading.Thread(
        target=chaos, args=(upstream, proxy, counts, args.messages, events), daemon=True
    )
    for thread in threads:
        thread.start()
    chaos_thread.start()
    last = 0.0
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if time.monotonic() - last > 10:
            last = time.monotonic()
            print(
                f"  {counts.done}/{args.messages} done, {counts.retries} retries",
                file=sys.stderr,
                flush=True,
            )
    elapsed = time.monotonic() - started
    chaos_thread.join(30)
    proxy.stop()
    upstream.stop()

    pattern = re.compile(r"<load-(\d+)@bench\.example>")
    delivered_lines = delivered_file.read_text().split()
    delivered_ids = [int(m.group(1)) for line in delivered_lines if (m := pattern.match(line))]
    held_ids = [int(m.group(1)) for h in held_message_ids(store_url) if (m := pattern.match(h))]
    both = collections.Counter(delivered_ids) + collections.Counter(held_ids)
    delivered, held = set(delivered_ids), set(held_ids)
    lost = counts.accepted - delivered - held
    duplicates = sum(n - 1 for n in both.values() if n > 1)
    unasked = (delivered | held) - counts.accepted  # arrived although the client saw no 250

    print(f"courtesy load bench: {args.messages} messages, {args.clients} clients, {elapsed:.0f}s")
    for line in events:
        print(f"  {line}")
    print(f"sent        {args.messages}")
    print(f"accepted    {len(counts.accepted)}   (the client saw 250)")
    print(f"delivered   {len(delivered)}   (distinct Message-IDs upstream)")
    print(f"held        {len(held)}")
    print(f"lost        {len(lost)}   (accepted, neither delivered nor held)")
    print(f"duplicates  {duplicates}   (extra copies upstream or held)")
    print(f"retries     {counts.retries}   {dict(counts.retry_reasons.most_common(6))}")
    print(f"refused     {len(counts.refused)}   (5xx)")
    print(f"gave up     {len(counts.gave_up)}   (still 4xx at the deadline)")
    print(f"unconfirmed {len(unasked)}   (arrived, but the client never saw the 250)")
    tracebacks = (work / "proxy.log").read_text(errors="replace").count("Traceback")
    print(f"proxy log   {tracebacks} traceback(s)")
    if lost:
        print(f"LOST: {sorted(lost)[:20]}")
    if args.keep:
        print(f"work directory: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if lost else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
