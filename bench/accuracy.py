"""Accuracy of the checks on the labelled real-mail corpus (not part of the test suite).

Usage: ``python bench/accuracy.py [--corpus DIR] [--show-errors]``; the
default corpus is ``../shared/corpus`` next to the repository.

Greeting section, per language and source:
- false alarms: ``greeting.missing`` on a message labelled as greeting,
  over all messages labelled as greeting;
- misses: no ``greeting.missing`` on a message labelled without greeting,
  over all of those.

Label semantics followed: ``greeting`` is the truth. Messages labelled
``new_text: false`` (``lang`` null) have nothing of their own to greet with;
they count as "without greeting" (the default setting reports them) and are
listed under language "none", outside the de/en targets. ``lang`` picks the
row, the first path part of ``source`` the sub-row.

A second section, names accuracy, comes from ``bench/accuracy_names.py``
(``names_section(corpus_dir, show_errors) -> str``) when that module exists.
``--show-errors`` lists the wrong messages of both sections: greeting false
alarms and misses, and every names copy that went wrong (a name.* finding on
a correct greeting, a misspelling or wrong person left unflagged, with
"(undecidable)" where no source knows the recipient's name).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's courtesy, not whichever one is installed

from courtesy.checks.greeting import CODE_MISSING, GreetingSettings, check_greeting  # noqa: E402
from courtesy.checks.message import NotAMessage, parse_message  # noqa: E402
from courtesy.checks.model import CheckContext, MemoryAddressBook  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"


@dataclass
class Tally:
    greets: int = 0
    false_alarms: int = 0
    without: int = 0
    misses: int = 0
    errors: list[str] = field(default_factory=list)


def _rate(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.1f} % ({part}/{whole})" if whole else "    -"


def load_labels(corpus: Path) -> list[dict[str, object]]:
    with (corpus / "labels.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def greeting_section(corpus: Path, show_errors: bool = False) -> str:
    labels = load_labels(corpus)
    settings = GreetingSettings()
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    totals: dict[str, Tally] = defaultdict(Tally)
    durations: list[float] = []
    for label in labels:
        raw = (corpus / "messages" / str(label["file"])).read_bytes()
        lang = str(label["lang"]) if label["lang"] else "none"
        source = str(label["source"]).split("/", 1)[0]
        started = time.perf_counter()
        try:
            message = parse_message(raw)
        except NotAMessage:
            continue
        ctx = CheckContext(message=message, contacts=MemoryAddressBook())
        findings = check_greeting(ctx, settings)
        durations.append(time.perf_counter() - started)
        fired = any(f.code == CODE_MISSING for f in findings)
        for tally in (tallies[(lang, source)], totals[lang]):
            if label["greeting"]:
                tally.greets += 1
                if fired:
                    tally.false_alarms += 1
                    tally.errors.append(
                        f"FA   {label['file']}: label {label['greeting_text']!r}, "
                        f"new text starts {message.new_text[:60]!r}"
                    )
            else:
                tally.without += 1
                if not fired:
                    tally.misses += 1
                    tally.errors.append(
                        f"MISS {label['file']}: new text starts {message.new_text[:60]!r}"
                    )
    lines = [
        "Greeting (greeting.missing)",
        f"{'language':8} {'source':32} {'false alarms':>22} {'misses':>22}",
    ]
    for lang in sorted(totals):
        for (tl, source), tally in sorted(tallies.items()):
            if tl != lang:
                continue
            lines.append(
                f"{lang:8} {source:32} {_rate(tally.false_alarms, tally.greets):>22} "
                f"{_rate(tally.misses, tally.without):>22}"
            )
        total = totals[lang]
        lines.append(
            f"{lang:8} {'ALL':32} {_rate(total.false_alarms, total.greets):>22} "
            f"{_rate(total.misses, total.without):>22}"
        )
    durations.sort()
    if durations:
        p50 = durations[len(durations) // 2] * 1e3
        p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))] * 1e3
        lines.append(f"parse + greeting check per message: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    if show_errors:
        for lang in sorted(totals):
            lines.extend(totals[lang].errors)
    return "\n".join(lines)


def _names_section(corpus: Path, show_errors: bool = False) -> str | None:
    path = Path(__file__).with_name("accuracy_names.py")
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("accuracy_names", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    section = module.names_section(corpus, show_errors)
    return str(section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--show-errors", action="store_true", help="list every wrong message")
    args = parser.parse_args(argv)
    corpus: Path = args.corpus
    if not (corpus / "labels.jsonl").exists():
        print(f"no corpus at {corpus} (labels.jsonl missing); use --corpus", file=sys.stderr)
        return 2
    print(greeting_section(corpus, args.show_errors))
    names = _names_section(corpus, args.show_errors)
    if names:
        print()
        print(names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
