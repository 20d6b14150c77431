"""How much the poller costs over a bare IMAP FETCH, against a Dovecot this script starts.

    .venv/bin/python bench/imap_sync.py [--messages 20000] [--small 5000] [--runs 3]

Seeds a mailbox with ``--messages`` messages (MULTIAPPEND), then, in one run:

- times a bare imapclient FETCH of the same header fields, FLAGS and
  INTERNALDATE, in the same UID batches the poller uses (``imap.batch_size``;
  imapclient 4.1 cannot FETCH a "1:*" range and servers refuse a 20,000-UID
  list, so one single command is not an option for either);
- times the poller's first sync (``poll_once`` into an empty SQLite store) and
  prints the ratio to the bare FETCH (target <= 1.5);
- times the poller's own FETCH alone (its fast reader of the answer, nothing
  stored), to show how the sync's time splits between reading and storing;
- times a poll when nothing changed (target <= 0.05x the first sync);
- measures the poller's peak RSS in a fresh process at two folder sizes
  (target <= 120 MB, flat in the folder size).

Timings are medians over ``--runs``, bare and poller alternating, after one
warm-up FETCH so Dovecot's header cache is equally warm for both.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imapclient import IMAPClient  # noqa: E402

from courtesy.proxy.config import Config, parse_config  # noqa: E402
from courtesy.proxy.imap import HEADER_FIELDS, Mailbox  # noqa: E402
from courtesy.proxy.poller import poll_once  # noqa: E402
from courtesy.store.db import open_store  # noqa: E402
from tests.dovecot import PASSWORD, Dovecot, imap_settings  # noqa: E402

USER_ADDRESS = "anna@example.test"
FIRST = ["Thomas", "Sarah", "Jürgen", "Lisa", "Peter", "Aylin", "Marco", "Chloé"]
LAST = ["Meier", "Johnson", "Weber", "Green", "Brown", "Yılmaz", "Rossi", "Dubois"]
DOMAINS = ["partner.example", "client.example", "verband.example", "kunde.example"]


def messages(count: int, seed: int = 7) -> list[bytes]:
    """Plausible business mail: people, some threads, some list and automated mail."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
    out = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        domain = rng.choice(DOMAINS)
        sender = f"{first} {last} <{first.lower()}.{last.lower()}@{domain}>"
        extra = ""
        kind = rng.random()
        if kind < 0.1:
            extra = "List-Id: <team.lists.example>\r\n"
            extra += "List-Unsubscribe: <mailto:leave@lists.example>\r\n"
        elif kind < 0.13:
            extra = "Auto-Submitted: auto-replied\r\n"
        refs = ""
        if i > 10 and rng.random() < 0.3:
            parent = rng.randrange(i)
            refs = f"In-Reply-To: <m{parent}@{domain}>\r\nReferences: <m{parent}@{domain}>\r\n"
        colleague = i % 50
        cc = (
            f"Cc: {FIRST[colleague % 8]} {LAST[colleague // 8 % 8]} <cc{colleague}@{domain}>\r\n"
            if rng.random() < 0.3
            else ""
        )
        date = format_datetime(start + timedelta(minutes=17 * i))
        head = (
            f"From: {sender}\r\nTo: Anna Schmidt <{USER_ADDRESS}>\r\n{cc}"
            f"Subject: Anfrage {i}: Angebot und Termine\r\nDate: {date}\r\n"
            f"Message-ID: <m{i}@{domain}>\r\n{refs}{extra}"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
        )
        body = f"Hallo Frau Schmidt,\r\n\r\nkönnen Sie mir zu Punkt {i} Bescheid geben?\r\n" * 4
        out.append((head + "\r\n" + body + "\r\nViele Grüße\r\n" + first + "\r\n").encode())
    return out


def config_for(imap_port: int, user: str, store_url: str, batch: int) -> Config:
    return parse_config(
        {
            "addresses": [USER_ADDRESS],
            "store": {"url": store_url},
            "imap": imap_settings(imap_port, user, batch_size=batch),
        }
    )


def bare_fetch(dovecot: Dovecot, user: str, batch: int) -> float:
    """The floor: imapclient fetching the same items, doing nothing with them."""
    items = [
        "BODY.PEEK[HEADER.FIELDS (" + " ".join(HEADER_FIELDS) + ")]",
        "FLAGS",
        "INTERNALDATE",
    ]
    began = time.perf_counter()
    with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False) as client:
        client.login(user, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        got = 0
        for start in range(0, len(uids), batch):
            got += len(client.fetch(uids[start : start + batch], items))
    assert got == len(uids)
    return time.perf_counter() - began


def poller_fetch(dovecot: Dovecot, user: str, batch: int, workdir: Path) -> float:
    """The poller's own FETCH (its fast reader, see courtesy/proxy/imap_fetch.py), no store."""
    config = config_for(dovecot.imap_port, user, f"sqlite:///{workdir}/unused.db", batch)
    assert config.imap is not None
    began = time.perf_counter()
    with Mailbox(config.imap).connect() as mailbox:
        mailbox.examine_folder("INBOX")
        uids = mailbox.uids_after(0)
        got = 0
        for start in range(0, len(uids), batch):
            got += sum(1 for _ in mailbox.fetch_headers(uids[start : start + batch]))
    assert got == len(uids)
    return time.perf_counter() - began


def poller_sync(dovecot: Dovecot, user: str, batch: int, workdir: Path) -> tuple[float, float]:
    """First sync into an empty store, then a poll with nothing new: both in seconds."""
    store_url = f"sqlite:///{tempfile.mkdtemp(dir=workdir)}/store.db"
    config = config_for(dovecot.imap_port, user, store_url, batch)
    store = open_store(store_url)
    try:
        began = time.perf_counter()
        first = poll_once(config, store, progress=False)
        first_s = time.perf_counter() - began
        began = time.perf_counter()
        again = poll_once(config, store, progress=False)
        again_s = time.perf_counter() - began
    finally:
        store.close()
    assert again.fetched == 0, again.summary()
    assert first.new > 0
    return first_s, again_s


def child(args: argparse.Namespace) -> None:
    """Run in a fresh process: one first sync, then report time and peak RSS."""
    dovecot_port, user, store_url, batch = args.child
    config = config_for(int(dovecot_port), user, store_url, int(batch))
    store = open_store(store_url)
    began = time.perf_counter()
    result = poll_once(config, store, progress=False)
    seconds = time.perf_counter() - began
    store.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"fetched": result.fetched, "seconds": seconds, "peak_mb": peak_kb / 1024}))


def rss_at(dovecot: Dovecot, user: str, batch: int, workdir: Path) -> dict[str, float]:
    store_url = f"sqlite:///{tempfile.mkdtemp(dir=workdir)}/store.db"
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            str(dovecot.imap_port),
            user,
            store_url,
            str(batch),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--small", type=int, default=5000, help="second folder size for RSS")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="imap.batch_size")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="courtesy-bench-"))
    dovecot = Dovecot().start()
    try:
        big, small = dovecot.new_user(), dovecot.new_user()
        began = time.perf_counter()
        dovecot.append(big, messages(args.messages))
        dovecot.append(small, messages(args.small))
        print(
            f"seeded {args.messages} + {args.small} messages in {time.perf_counter() - began:.1f}s"
        )
        bare_fetch(dovecot, big, args.batch)  # warm-up: Dovecot caches the header fields
        bare_fetch(dovecot, small, args.batch)
        bare, own, first, nochange = [], [], [], []
        for _ in range(args.runs):
            bare.append(bare_fetch(dovecot, big, args.batch))
            own.append(poller_fetch(dovecot, big, args.batch, workdir))
            first_s, again_s = poller_sync(dovecot, big, args.batch, workdir)
            first.append(first_s)
            nochange.append(again_s)
        bare_m, own_m = statistics.median(bare), statistics.median(own)
        first_m, nochange_m = statistics.median(first), statistics.median(nochange)
        rss_big = rss_at(dovecot, big, args.batch, workdir)
        rss_small = rss_at(dovecot, small, args.batch, workdir)
    finally:
        dovecot.close()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)

    n = args.messages
    print(f"messages: {n}, batch: {args.batch}, runs: {args.runs} (medians)")
    print(f"bare imapclient FETCH, batches of {args.batch}: {bare_m:.3f}s ({n / bare_m:,.0f}/s)")
    print(f"poller's FETCH alone (its own reader):    {own_m:.3f}s ({n / own_m:,.0f}/s)")
    print(f"poller first sync:                        {first_m:.3f}s ({n / first_m:,.0f}/s)")
    ratio = first_m / bare_m
    print(f"ratio first sync / bare FETCH (same batches): {ratio:.2f}  (target <= 1.5)")
    print(f"ratio first sync / the poller's FETCH alone:  {first_m / own_m:.2f}  (its own work)")
    share = nochange_m / first_m
    print(
        f"no-change poll: {nochange_m * 1000:.1f} ms = {share:.3f}x the first sync"
        "  (target <= 0.05)"
    )
    print(
        f"peak RSS of a first sync in a fresh process: {rss_big['peak_mb']:.1f} MB at "
        f"{rss_big['fetched']:.0f} messages, {rss_small['peak_mb']:.1f} MB at "
        f"{rss_small['fetched']:.0f}  (target <= 120 MB, flat)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
