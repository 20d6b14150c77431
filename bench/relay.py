"""Relay throughput: the proxy against direct delivery, measured in one run.

N messages of about 4 KB are pushed by K concurrent smtplib clients (separate
processes, one connection each) (a) straight into an aiosmtpd sink and (b)
through ``courtesy run`` into the same sink. The two are alternated for
several pairs because this machine's speed drifts; the median ratio (b)/(a)
is printed, with the proxy's peak RSS and the CPU time per message of the
proxy and of the sink (user and system, from /proc).

The messages vary (German and English, twelve people, five or six salutations
per language, shuffled paragraphs), so checks and caches see many different
openings and recipients rather than one message repeated; all of them pass
the default checks, so every one is relayed. They are built before any
timing starts: making them costs more than sending them.

    .venv/bin/python bench/relay.py                      # checks off
    .venv/bin/python bench/relay.py --checks             # all checks on
    .venv/bin/python bench/relay.py -n 10000 -k 4 --pairs 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ may use the test servers' helpers

from tests.servers import free_port, wait_port  # noqa: E402

SINK = textwrap.dedent(
    """
    import asyncio, signal, sys
    from aiosmtpd.smtp import SMTP

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 Ok: discarded"

    async def main(port):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Sink(), hostname="sink", enable_SMTPUTF8=True), "127.0.0.1", port)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(main(int(sys.argv[1])))
    """
)


PEOPLE = [  # given name, family name, feminine
    ("Thomas", "Meier", False),
    ("Eva", "Weber", True),
    ("Jürgen", "Müller", False),
    ("Sarah", "Johnson", True),
    ("Peter", "Brown", False),
    ("Aylin", "Yılmaz", True),
    ("Marco", "Rossi", False),
    ("Chloé", "Dubois", True),
    ("Lisa", "Schmitt", True),
    ("David", "Green", False),
    ("Katharina", "von Berg", True),
    ("Robert", "Miller", False),
]
GREETINGS_DE = [
    "Hallo {title} {last},",
    "Sehr geehrte{r} {title} {last},",
    "Guten Tag {title} {last},",
    "Liebe{r} {first},",
    "Hallo {first},",
    "Hallo zusammen,",
]
GREETINGS_EN = ["Dear {title} {last},", "Hi {first},", "Hello {first},", "Dear {first},", "Hi all,"]
SENTENCES_DE = [
    "vielen Dank für Ihre Nachricht und die Unterlagen vom Dienstag.",
    "Wir melden uns bis Freitag mit dem überarbeiteten Angebot.",
    "Die Lieferung verschiebt sich leider um eine Woche.",
    "Könnten Sie uns die Rechnungsadresse noch einmal bestätigen?",
    "Im Anhang finden Sie das Protokoll der letzten Besprechung.",
    "Der Termin am Donnerstag um 14 Uhr passt uns gut.",
    "Bitte geben Sie uns Bescheid, falls sich etwas ändert.",
    "Die Preise gelten bis zum Ende des Quartals.",
]
SENTENCES_EN = [
    "thank you for your message and the documents you sent on Tuesday.",
    "We will get back to you by Friday with the revised offer.",
    "Unfortunately the delivery is delayed by one week.",
    "Could you confirm the billing address once more?",
    "Please find attached the minutes of our last meeting.",
    "Thursday at 2 pm works well for us.",
    "Please let us know if anything changes.",
    "The prices are valid until the end of the quarter.",
]


def make_message(i: int) -> bytes:
    """About 4 KB of plausible business mail; greeting, people and text vary per message.

    Deterministic in ``i`` (direct and proxied runs send the same mail), and
    varied so the checks see many different openings and recipients, not
    one message over and over.
    """
    rng = random.Random(i)
    to, cc = rng.sample(PEOPLE, 2)
    german = rng.random() < 0.6
    first, last, feminine = to
    if german:
        title, r = ("Frau", "") if feminine else ("Herr", "r")
        template = rng.choice(GREETINGS_DE)
    else:
        title, r = ("Ms", "") if feminine else ("Mr", "")
        template = rng.choice(GREETINGS_EN)
    greeting = template.format(first=first, last=last, title=title, r=r)
    sentences = SENTENCES_DE if german else SENTENCES_EN
    lines = [
        "From: Anna Schmidt <anna@example.com>",
        f"To: {first} {last} <{address(to)}>",
        f"Cc: {cc[0]} {cc[1]} <{address(cc)}>",
        f"Subject: {'Angebot' if german else 'Offer'} Nr. {i}",
        f"Message-ID: <bench-{i}@example.com>",
        "Date: Fri, 27 Nov 2026 09:00:00 +0100",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        greeting,
        "",
    ]
    # Lines of 60-75 characters, one blank line, as a mail client wraps text:
    # the line count (aiosmtpd's DATA reading costs per line) stays that of
    # a plain 4 KB message.
    words = " ".join(rng.choices(sentences, k=80)).split()[::-1]  # popped from the end
    line: list[str] = []
    while sum(len(x.encode()) + 2 for x in lines) < 3900:
        line.append(words.pop())
        if len(" ".join(line)) >= 56 + len(lines) % 15:
            lines.append(" ".join(line))
            line = []
            if len(lines) == 30:
                lines.append("")
    lines += ["Viele Grüße" if german else "Best regards", "Anna Schmidt"]
    return ("\r\n".join(lines) + "\r\n").encode()


def recipients_of(raw: bytes) -> list[str]:
    """The To and Cc addresses of a message made by make_message."""
    found = []
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.startswith((b"To: ", b"Cc: ")):
            found.append(line.decode().rpartition("<")[2].rstrip(">"))
    return found


def address(person: tuple[str, str, bool]) -> str:
    first, last, _ = person
    ascii_name = f"{first}.{last}".lower().replace(" ", "")
    for plain, fancy in (("ae", "ä"), ("oe", "ö"), ("ue", "ü"), ("e", "é"), ("i", "ı")):
        ascii_name = ascii_name.replace(fancy, plain)
    return f"{ascii_name}@example.org"


# Made once before any timing (the client processes are forked and inherit
# them): building varied mail costs more than sending it.
MESSAGES: list[tuple[bytes, list[str]]] = []


def client(port: int, count: int, offset: int) -> int:
    sent = 0
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        for i in range(offset, offset + count):
            raw, recipients = MESSAGES[i % len(MESSAGES)]
            smtp.sendmail("anna@example.com", recipients, raw)
            sent += 1
    return sent


def push(port: int, total: int, clients: int) -> float:
    """Messages per second for ``total`` messages over ``clients`` processes."""
    share = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    offsets = [sum(share[:i]) for i in range(clients)]
    with multiprocessing.Pool(clients) as pool:
        start = time.perf_counter()
        done = pool.starmap(client, [(port, n, o) for n, o in zip(share, offsets, strict=True)])
        elapsed = time.perf_counter() - start
    assert sum(done) == total
    return total / elapsed


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_per_message(pid: int, before: tuple[float, float], count: int) -> tuple[float, float]:
    user, system = cpu_seconds(pid)
    return (user - before[0]) / count, (system - before[1]) / count


def describe_cpu(samples: list[tuple[float, float]]) -> str:
    user = statistics.median(u for u, _ in samples) * 1000
    system = statistics.median(s for _, s in samples) * 1000
    return f"{user + system:.2f} ms (user {user:.2f}, system {system:.2f})"


def write_config(folder: Path, proxy_port: int, sink_port: int, checks: bool) -> Path:
    config = folder / "config.toml"
    text = f"""
[proxy]
listen = "127.0.0.1:{proxy_port}"
[upstream]
host = "127.0.0.1"
port = {sink_port}
security = "none"
[store]
url = "sqlite:///{folder / "bench.db"}"
[log]
level = "warning"
"""
    if not checks:
        for family in ("greeting", "name", "cc", "closing"):
            text += f"[checks.{family}]\nenabled = false\n"
    config.write_text(text)
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=2000, help="messages per run")
    parser.add_argument("-k", "--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--pairs", type=int, default=3, help="direct/proxy pairs to alternate")
    parser.add_argument("--checks", action="store_true", help="run with all checks on")
    parser.add_argument(
        "--rss-messages", type=int, default=10000, help="messages before reading the proxy RSS"
    )
    args = parser.parse_args()

    for i in range(max(args.messages, 200)):
        raw = make_message(i)
        MESSAGES.append((raw, recipients_of(raw)))
    multiprocessing.set_start_method("fork")  # the clients inherit MESSAGES
    with tempfile.TemporaryDirectory(prefix="courtesy-bench-") as tmp:
        folder = Path(tmp)
        sink_port, proxy_port = free_port(), free_port()
        sink = subprocess.Popen([sys.executable, "-c", SINK, str(sink_port)])
        config = write_config(folder, proxy_port, sink_port, args.checks)
        env = {**os.environ, "XDG_DATA_HOME": str(folder / "data")}
        proxy = subprocess.Popen(
            [sys.executable, "-m", "courtesy.proxy.cli", "run", "-c", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_port(sink_port, timeout=30)
            wait_port(proxy_port, timeout=30)
            push(sink_port, 200, args.clients)  # warm up both paths
            push(proxy_port, 200, args.clients)
            direct, proxied, ratios, proxy_cpu, sink_cpu = [], [], [], [], []
            for pair in range(args.pairs):
                before = cpu_seconds(sink.pid)
                d = push(sink_port, args.messages, args.clients)
                sink_cpu.append(cpu_per_message(sink.pid, before, args.messages))
                before = cpu_seconds(proxy.pid)
                p = push(proxy_port, args.messages, args.clients)
                proxy_cpu.append(cpu_per_message(proxy.pid, before, args.messages))
                direct.append(d)
                proxied.append(p)
                ratios.append(p / d)
                print(
                    f"pair {pair + 1}: direct {d:7.0f} msg/s   proxy {p:7.0f} msg/s   "
                    f"ratio {p / d:.2f}",
                    flush=True,
                )
            sent = 200 + args.pairs * args.messages
            if sent < args.rss_messages:
                push(proxy_port, args.rss_messages - sent, args.clients)
                sent = args.rss_messages
            rss = peak_rss_mb(proxy.pid)
        finally:
            proxy.send_signal(signal.SIGTERM)
            sink.send_signal(signal.SIGTERM)
            proxy.wait(60)
            sink.wait(60)

    print()
    print(
        f"relay benchmark: {args.messages} messages x {args.pairs} pairs, ~4 KB each, "
        f"{args.clients} clients, checks {'on' if args.checks else 'off'}"
    )
    print(f"  direct to sink   median {statistics.median(direct):7.0f} msg/s")
    print(f"  through proxy    median {statistics.median(proxied):7.0f} msg/s")
    print(
        f"  ratio proxy/direct: median {statistics.median(ratios):.2f} "
        f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(f"  CPU per message, proxy: {describe_cpu(proxy_cpu)}")
    print(f"  CPU per message, sink (direct runs): {describe_cpu(sink_cpu)}")
    print(f"  proxy peak RSS after {sent} messages: {rss:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
