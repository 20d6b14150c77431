"""Check speed and memory with a big address book, against stdlib parsing, in one run.

A store with 100,000 contacts; messages of about 5 KB to 3 recipients from
that book. For every message it times the proxy's whole inspection (parse
once, new text, every check family, address-book lookups in the store) and,
on the same bytes, a plain stdlib ``email`` parse that reads the body. It
prints p50/p99 of both and their ratio, and the process's peak RSS.

    .venv/bin/python bench/checks.py                 # 100,000 contacts, 2,000 messages
    .venv/bin/python bench/checks.py --contacts 20000 --messages 500
"""

from __future__ import annotations

import argparse
import email
import email.policy
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's courtesy, not whichever one is installed

from courtesy.checks.model import Contact  # noqa: E402
from courtesy.proxy.config import parse_config  # noqa: E402
from courtesy.proxy.front import Transaction  # noqa: E402
from courtesy.proxy.inspect import ChecksInspector  # noqa: E402
from courtesy.store.contacts import upsert_contacts  # noqa: E402
from courtesy.store.db import open_store  # noqa: E402

GIVEN = [
    "Thomas",
    "Anna",
    "Jürgen",
    "Eva",
    "Peter",
    "Maria",
    "Stefan",
    "Julia",
    "Michael",
    "Sabine",
    "John",
    "Mary",
    "Robert",
    "Linda",
    "James",
    "Susan",
    "Pierre",
    "Odette",
    "Marco",
    "Giulia",
    "Jan",
    "Sanne",
    "Carlos",
    "Lucía",
    "Hans",
    "Ingrid",
    "Klaus",
]
FAMILY = [
    "Meier",
    "Müller",
    "Schmidt",
    "Weber",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Richter",
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Wilson",
    "Dubois",
    "Rossi",
    "de Vries",
    "García",
    "Lüdenscheidt",
    "Strauß",
    "van der Berg",
    "Klein",
]


def ascii_local(text: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "í": "i", " ": ""})
    return text.lower().translate(table)


def make_contacts(count: int, rng: random.Random) -> list[Contact]:
    contacts = []
    for i in range(count):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        email_address = f"{ascii_local(given)}.{ascii_local(family)}{i}@firma{i % 997}.example"
        contacts.append(
            Contact(
                emails=(email_address,),
                name=f"{given} {family}",
                given=given,
                family=family,
                salutation=rng.choice(["Herr", "Frau", None]),
            )
        )
    return contacts


def make_message(i: int, people: list[Contact], rng: random.Random) -> bytes:
    to, cc1, cc2 = people
    greeting = rng.choice(
        [
            f"Hallo {to.given},",
            f"Dear {to.given},",
            "Hallo zusammen,",
            f"Guten Tag {to.given} {to.family},",
        ]
    )
    header = [
        "From: Anna Sommer <anna@sommer-beratung.example>",
        f"To: {to.name} <{to.emails[0]}>",
        f"Cc: {cc1.name} <{cc1.emails[0]}>, {cc2.name} <{cc2.emails[0]}>",
        f"Subject: Projekt {i}",
        f"Message-ID: <bench-{i}@sommer-beratung.example>",
        "Date: Fri, 27 Nov 2026 09:00:00 +0100",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    body = [greeting, ""]
    sentence = "wie besprochen schicke ich Ihnen die Unterlagen für das nächste Treffen. "
    while sum(len(line) + 2 for line in header + body) < 4600:
        body.append(sentence[: rng.randint(40, len(sentence))])
    body += [
        "",
        "Viele Grüße",
        "Anna Sommer",
        "",
        "> Am Donnerstag schrieb " + to.name + ":",
        "> Können Sie mir die Unterlagen schicken?",
    ]
    return ("\r\n".join([*header, "", *body]) + "\r\n").encode()


def stdlib_parse(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(("plain", "html"))  # type: ignore[attr-defined]
    return str(body.get_content()) if body is not None else ""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="courtesy-bench-") as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        contacts = make_contacts(args.contacts, rng)
        start = time.perf_counter()
        with store.session() as session:
            upsert_contacts(session, contacts)
        print(f"imported {len(contacts):,} contacts in {time.perf_counter() - start:.1f} s")

        config = parse_config({"store": {"url": store.url}})
        inspector = ChecksInspector(config, store)
        messages = [make_message(i, rng.sample(contacts, 3), rng) for i in range(args.messages)]
        del contacts
        transactions = [
            Transaction("anna@sommer-beratung.example", (), raw, None, "bench") for raw in messages
        ]
        for transaction in transactions[:50]:  # warm up imports and the parser
            inspector.evaluate(transaction)
            stdlib_parse(transaction.content)
        inspector.contacts.clear()

        check_times, parse_times, findings = [], [], 0
        for transaction in transactions:
            t0 = time.perf_counter()
            verdict = inspector.evaluate(transaction)
            t1 = time.perf_counter()
            stdlib_parse(transaction.content)
            t2 = time.perf_counter()
            check_times.append((t1 - t0) * 1000)
            parse_times.append((t2 - t1) * 1000)
            findings += len(verdict.findings)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        store.close()

    size = statistics.mean(len(m) for m in messages)
    c50, c99 = percentile(check_times, 0.5), percentile(check_times, 0.99)
    p50, p99 = percentile(parse_times, 0.5), percentile(parse_times, 0.99)
    print(
        f"{args.messages:,} messages of {size / 1000:.1f} KB, 3 recipients each, "
        f"every one new to the address-book cache; {findings} findings"
    )
    print(f"  checks (parse + new text + all checks + lookups): p50 {c50:.2f} ms  p99 {c99:.2f} ms")
    print(f"  stdlib email parse (policy.default + body):       p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    print(f"  ratio checks/parse: p50 {c50 / p50:.2f}  p99 {c99 / p99:.2f}  (target p99 <= 3)")
    print(f"  peak RSS with {args.contacts:,} contacts in the store: {peak:.0f} MB (target <= 150)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
