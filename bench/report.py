"""How much one weekly report costs on a big store, against a bare count of the inbound table.

    .venv/bin/python bench/report.py [--inbound 1000000] [--outgoing 500000] [--runs 5]

Fills a fresh SQLite store (through the real migrations) with ``--inbound``
inbound and ``--outgoing`` outgoing rows spread over three years, by
INSERT ... SELECT from a recursive counter, so the setup takes seconds, not
minutes. The mix is plausible for a busy person: about half of the inbound
mail is lists and bulk, a few per cent the user's own, most person mail is
answered within hours to days, a small share never is; a sixth of the
outgoing mail has findings.

Then, in a fresh process (so the setup's memory does not count), it times
``SELECT count(*)`` over the inbound table and ``build_report`` for the
current week (median of ``--runs`` after one warm-up each), and prints both,
their ratio (target <= 5) and the process's peak RSS (target <= 200 MB).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from courtesy.store.db import open_store  # noqa: E402

YEARS = 3
SPAN = timedelta(days=365 * YEARS)


def _ts(expr: str) -> str:
    """A SQL expression: ``expr`` seconds after the start, in the store's datetime format."""
    return f"strftime('%Y-%m-%d %H:%M:%f', :start, '+' || ({expr}) || ' seconds') || '000'"


INBOUND = f"""
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :count),
rows AS (
  SELECT n,
         CAST(n * :step AS INTEGER) + (n * 7919) % 3600 AS at,
         (n * 2654435761) % 1000 AS r
  FROM seq
)
INSERT INTO inbound_messages (
  account, key, message_id, from_address, from_name, to_addresses, cc_addresses,
  user_role, subject, date, received_at, in_reply_to, "references", thread_id, own,
  excluded, exclude_reason, seen, seen_at, flag_answered, flag_answered_at,
  answered_at, answered_how, first_synced_at, gone_at)
SELECT
  'anna@example.test@imap.example.test',
  '<m' || n || '@example.net>',
  '<m' || n || '@example.net>',
  'person' || (n % 5000) || '@partner' || (n % 300) || '.example',
  'Person ' || (n % 5000),
  '["anna@example.test"]',
  '[]',
  CASE WHEN r < 850 THEN 'to' WHEN r < 950 THEN 'cc' ELSE '' END,
  'Subject ' || n,
  {_ts("at")},
  {_ts("at")},
  NULL, NULL,
  '<m' || (n - n % 4) || '@example.net>',
  r % 20 = 7,
  r % 20 < 11 OR r % 20 = 7,
  CASE WHEN r % 20 = 7 THEN 'own' WHEN r % 20 < 6 THEN 'list'
       WHEN r % 20 < 11 THEN 'bulk' END,
  r % 10 <> 3,
  NULL, 0, NULL,
  CASE WHEN (n * 31) % 1000 < 4 THEN NULL
       ELSE {_ts("at + 600 + (n * 104729) % (86400 * 3)")} END,
  CASE WHEN (n * 31) % 1000 < 4 THEN NULL WHEN n % 3 = 0 THEN 'proxy' ELSE 'sent' END,
  {_ts("at")},
  NULL
FROM rows
"""

OUTGOING = f"""
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :count),
rows AS (SELECT n, CAST(n * :step AS INTEGER) AS at, (n * 40503) % 100 AS r FROM seq)
INSERT INTO outgoing_messages (
  created_at, message_id, in_reply_to, "references", envelope_from, recipients,
  to_addresses, cc_addresses, to_count, cc_count, bcc_count, subject, size, action,
  upstream_reply, findings, check_errors, auth_user)
SELECT
  {_ts("at")},
  '<o' || n || '@example.test>',
  '<m' || (n * 2) || '@example.net>',
  '<m' || (n * 2) || '@example.net>',
  'anna@example.test',
  '["person' || (n % 5000) || '@partner.example"]',
  '["person' || (n % 5000) || '@partner.example"]',
  '[]', 1, 0, 0, 'Re: Subject ' || n, 2048,
  CASE WHEN r < 84 THEN 'relay' WHEN r < 91 THEN 'hold' WHEN r < 94 THEN 'reject'
       WHEN r < 96 THEN 'override' WHEN r < 97 THEN 'failed' ELSE 'tryout' END,
  '250 2.0.0 Ok',
  CASE WHEN r >= 84 AND r < 92 THEN
         '[{{"code": "name.misspelled", "severity": "block", "message": "The greeting says '
         || '''Meyer''; the recipient is Thomas Meier.", "evidence": "Hallo Herr Meyer,", '
         || '"suggestion": "Meier"}}]'
       WHEN r >= 92 AND r < 96 THEN
         '[{{"code": "greeting.missing", "severity": "warn", "message": "No greeting.", '
         || '"evidence": "", "suggestion": null}}]'
       WHEN r >= 96 AND r < 100 AND n % 2 = 0 THEN
         '[{{"code": "cc.too_many", "severity": "warn", "message": "5 on Cc.", '
         || '"evidence": "", "suggestion": null}}]'
       ELSE '[]' END,
  '[]', NULL
FROM rows
"""


def fill(url: str, inbound: int, outgoing: int, start: datetime) -> float:
    began = time.perf_counter()
    store = open_store(url)
    try:
        stamp = start.strftime("%Y-%m-%d %H:%M:%S")
        with store.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.execute(
                text(INBOUND),
                {"count": inbound, "step": SPAN.total_seconds() / inbound, "start": stamp},
            )
            conn.execute(
                text(OUTGOING),
                {"count": outgoing, "step": SPAN.total_seconds() / outgoing, "start": stamp},
            )
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        store.close()
    return time.perf_counter() - began


def measure(url: str, runs: int) -> dict[str, object]:
    """In this (fresh) process: count(*) and one weekly report, medians of ``runs``."""
    from courtesy.proxy.report import Week, build_report, render_html, to_json
    from courtesy.store.base import utcnow

    store = open_store(url, migrate=False)
    zone = UTC
    now = utcnow()
    week = Week.containing(now, zone)

    def count() -> int:
        with store.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM inbound_messages").scalar_one())

    def report() -> object:
        return build_report(
            store, week=week, zone=zone, after=timedelta(days=2), language="en", now=now
        )

    rows = count()
    built = report()
    counts, reports = [], []
    for _ in range(runs):
        began = time.perf_counter()
        count()
        counts.append(time.perf_counter() - began)
        began = time.perf_counter()
        built = report()
        reports.append(time.perf_counter() - began)
    data = to_json(built)  # type: ignore[arg-type]
    html_size = len(render_html(built))  # type: ignore[arg-type]
    store.close()
    return {
        "rows": rows,
        "count_s": statistics.median(counts),
        "report_s": statistics.median(reports),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "awaiting": len(data["awaiting"]),
        "answered_late": len(data["answered_late"]),
        "received_this_week": data["response"]["this_week"]["received"],
        "checked_this_week": data["checks"]["checked"],
        "html_kb": round(html_size / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inbound", type=int, default=1_000_000)
    parser.add_argument("--outgoing", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.runs)))
        return 0
    with tempfile.TemporaryDirectory(prefix="courtesy-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'report.db'}"
        start = datetime.now(UTC) - SPAN + timedelta(days=3)
        seconds = fill(url, args.inbound, args.outgoing, start)
        print(
            f"setup: {args.inbound:,} inbound + {args.outgoing:,} outgoing rows in {seconds:.1f}s"
        )
        done = subprocess.run(
            [sys.executable, __file__, "--measure", url, "--runs", str(args.runs)],
            check=True,
            capture_output=True,
            text=True,
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    ratio = result["report_s"] / result["count_s"]
    print(
        f"this week: {result['awaiting']} awaiting, {result['answered_late']} answered late, "
        f"{result['received_this_week']} received, {result['checked_this_week']} checked; "
        f"HTML {result['html_kb']} KB"
    )
    print(
        f"SELECT count(*) over {result['rows']:,} inbound rows: {result['count_s'] * 1000:.1f} ms"
    )
    print(f"weekly report:                          {result['report_s'] * 1000:.1f} ms")
    print(f"ratio report / count: {ratio:.2f}  (target <= 5)  {'OK' if ratio <= 5 else 'MISSED'}")
    rss = result["peak_rss_mb"]
    print(f"peak RSS: {rss:.0f} MB  (target <= 200 MB)  {'OK' if rss <= 200 else 'MISSED'}")
    return 0 if ratio <= 5 and rss <= 200 else 1


if __name__ == "__main__":
    sys.exit(main())
