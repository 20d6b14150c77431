"""Malformed and unusual messages through ``courtesy check`` and the running proxy.

Sources (each used when present; the output names the ones used):

- ``--corpus DIR``: every file under DIR (default: ``../shared/corpus/mime``
  next to the repository, when it exists);
- CPython's own email test data (``test/test_email/data/*.txt`` of the stdlib);
- every ``.eml`` under ``tests/data/`` (with the hostile cases).

Each message goes (1) through the checks in this process, timed, (2) through
``courtesy check --json`` in batches (exit 0/1/2, one answer per file, never a
traceback), and (3) through a real ``courtesy run`` process to a recording
upstream: relayed, held, or refused with an SMTP error; a 250 for a message
that is then neither upstream nor held is *lost*. Prints the counts; exits 1
when anything crashed, hung or was lost.

    .venv/bin/python bench/robustness.py
    .venv/bin/python bench/robustness.py --corpus ~/mime-corpus --limit 200
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import smtplib
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.proxyconf import write_relay_config  # noqa: E402
from courtesy.checks.message import NotAMessage  # noqa: E402
from courtesy.checks.model import MemoryAddressBook  # noqa: E402
from courtesy.proxy.config import parse_config  # noqa: E402
from courtesy.proxy.inspect import evaluate  # noqa: E402
from tests.servers import RecordingUpstream, free_port, wait_port  # noqa: E402

SLOW = 5.0  # seconds for one message's checks before it counts as hanging


def sources(corpus: Path | None) -> list[tuple[str, list[Path]]]:
    found: list[tuple[str, list[Path]]] = []
    default = ROOT.parent / "shared" / "corpus" / "mime"
    directory = corpus or (default if default.is_dir() else None)
    if directory is not None:
        if not directory.is_dir():
            raise SystemExit(f"robustness: --corpus {directory}: not a directory")
        found.append(
            (f"corpus {directory}", sorted(p for p in directory.rglob("*") if p.is_file()))
        )
    stdlib = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
    if stdlib.is_dir():
        found.append((f"CPython email test data {stdlib}", sorted(stdlib.glob("*.txt"))))
    found.append(("tests/data/**/*.eml", sorted((ROOT / "tests" / "data").rglob("*.eml"))))
    return found


def run_checks(files: list[Path]) -> tuple[collections.Counter[str], list[str], float]:
    config = parse_config({})
    book = MemoryAddressBook([])
    counts: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    slowest = 0.0
    for path in files:
        started = time.monotonic()
        try:
            result = evaluate(path.read_bytes(), config, book)
        except NotAMessage:
            counts["not a message"] += 1
        except Exception as exc:
            counts["crashed"] += 1
            problems.append(f"checks crashed on {path}: {type(exc).__name__}: {exc}")
        else:
            counts[result.decision.action] += 1
            if result.report.errors:
                counts["check errors"] += 1
                problems.append(f"a check failed on {path}: {result.report.errors}")
        took = time.monotonic() - started
        slowest = max(slowest, took)
        if took > SLOW:
            counts["slow"] += 1
            problems.append(f"checks took {took:.1f}s on {path}")
    return counts, problems, slowest


def run_cli(files: list[Path], work: Path) -> tuple[collections.Counter[str], list[str]]:
    counts: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "cfg"), "XDG_DATA_HOME": str(work / "data")}
    env.pop("COURTESY_CONFIG", None)
    for start in range(0, len(files), 100):
        batch = [str(p) for p in files[start : start + 100]]
        try:
            done = subprocess.run(
                [sys.executable, "-m", "courtesy.proxy.cli", "check", "--json", *batch],
                capture_output=True,
                text=True,
                timeout=SLOW * len(batch) + 30,
                env=env,
            )
        except subprocess.TimeoutExpired:
            counts["hung"] += len(batch)
            problems.append(f"courtesy check hung on the batch from {batch[0]}")
            continue
        if done.returncode not in (0, 1, 2) or "Traceback" in done.stderr:
            counts["crashed"] += len(batch)
            problems.append(f"courtesy check exit {done.returncode}: {done.stderr[-500:]}")
            continue
        answered = {json.loads(line)["file"] for line in done.stdout.splitlines()}
        errors = {line for line in done.stderr.splitlines() if line.startswith("courtesy: error:")}
        counts["answered"] += len(answered)
        counts["input error"] += len(errors)
        if len(answered) + len(errors) != len(batch):
            problems.append(f"courtesy check answered {len(answered) + len(errors)}/{len(batch)}")
    return counts, problems


def run_proxy(files: list[Path], work: Path) -> tuple[collections.Counter[str], list[str]]:
    from sqlalchemy import func, select

    from courtesy.store.db import open_store
    from courtesy.store.held import HeldMessage

    counts: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    upstream = RecordingUpstream().start()
    port = free_port()
    config, store_url = write_relay_config(work, port, upstream.port)
    log = open(work / "proxy.log", "wb")  # noqa: SIM115 - open for the process's lifetime
    proxy = subprocess.Popen(
        [sys.executable, "-m", "courtesy.proxy.cli", "run", "-c", str(config)],
        stdout=log,
        stderr=log,
    )
    try:
        wait_port(port, timeout=30)
        store = open_store(store_url)

        def held() -> int:
            with store.sessions() as session:
                return int(session.scalar(select(func.count()).select_from(HeldMessage)) or 0)

        for path in files:
            before_up, before_held = len(upstream.received), held()
            accepted = False
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
                    client.sendmail(
                        "anna@example.com", ["thomas.meier@example.org"], path.read_bytes()
                    )
                    accepted = True
            except smtplib.SMTPResponseException as exc:
                counts[f"refused {exc.smtp_code // 100}xx"] += 1
            except smtplib.SMTPException as exc:
                counts["refused (other)"] += 1
                problems.append(f"{path}: {type(exc).__name__}: {exc}")
            except OSError as exc:
                counts["connection error"] += 1
                problems.append(f"{path}: connection error: {exc}")
            if proxy.poll() is not None:
                problems.append(f"the proxy died on {path}")
                counts["proxy died"] += 1
                break
            up, now_held = len(upstream.received) - before_up, held() - before_held
            if accepted:
                if (up, now_held) == (1, 0):
                    counts["relayed"] += 1
                elif (up, now_held) == (0, 1):
                    counts["held"] += 1
                else:
                    counts["lost"] += 1
                    problems.append(f"{path}: 250 but upstream {up}, held {now_held}")
        store.close()
    finally:
        proxy.send_signal(signal.SIGTERM)
        try:
            proxy.wait(60)
        except subprocess.TimeoutExpired:
            proxy.kill()
            problems.append("the proxy did not stop on SIGTERM")
        log.close()
        upstream.close()
    if "Traceback" in (work / "proxy.log").read_text(errors="replace"):
        counts["tracebacks logged"] += 1
    return counts, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="a folder of messages (every file in it)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many messages")
    args = parser.parse_args()

    files: list[Path] = []
    print("sources:")
    for name, listed in sources(args.corpus):
        print(f"  {len(listed):5d}  {name}")
        files.extend(listed)
    if args.limit:
        files = files[: args.limit]
    print(f"  {len(files):5d}  in all")

    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="courtesy-robustness-") as tmp:
        work = Path(tmp)
        checks, found, slowest = run_checks(files)
        problems += found
        print(f"checks:          {dict(sorted(checks.items()))}  slowest {slowest:.2f}s")
        cli, found = run_cli(files, work)
        problems += found
        print(f"courtesy check:  {dict(sorted(cli.items()))}")
        proxy, found = run_proxy(files, work)
        problems += found
        print(f"through proxy:   {dict(sorted(proxy.items()))}")
    for line in problems[:50]:
        print(f"  ! {line}")
    bad = ("crashed", "hung", "slow", "lost", "proxy died", "connection error", "check errors")
    failed = any(c[k] for c in (checks, cli, proxy) for k in bad)
    print("FAILED" if failed else "OK: nothing crashed, hung or was lost")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
