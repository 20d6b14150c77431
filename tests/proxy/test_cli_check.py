"""``courtesy check`` and ``courtesy contacts`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import DATA
from tests.servers import run_courtesy

NAMES = DATA / "names"
CHECKS = DATA / "checks"


courtesy = run_courtesy


def test_json_output_and_exit_status(tmp_path: Path):
    good, bad = NAMES / "de_exact.eml", NAMES / "de_misspelled.eml"
    done = courtesy(tmp_path, "check", "--json", str(good), str(bad))
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(bad)]
    assert lines[0] == {"file": str(good), "action": "relay", "findings": []}
    assert lines[1]["action"] == "hold"
    (finding,) = lines[1]["findings"]
    assert set(finding) == {"code", "severity", "message", "evidence", "suggestion"}
    assert finding["code"] == "name.misspelled"
    assert finding["severity"] == "block"
    assert finding["evidence"] == "Hallo Herr Meyer,"
    assert finding["suggestion"] == "Meier"


def test_all_relayed_exits_0(tmp_path: Path):
    done = courtesy(
        tmp_path, "check", str(NAMES / "de_exact.eml"), str(NAMES / "de_transliteration.eml")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": relay") == 2


def test_not_a_message_is_one_line_and_others_still_checked(tmp_path: Path):
    done = courtesy(
        tmp_path,
        "check",
        "--json",
        str(CHECKS / "not_a_message.bin"),
        str(tmp_path / "missing.eml"),
        str(NAMES / "de_misspelled.eml"),
    )
    assert done.returncode == 2
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in done.stderr
    assert "not a mail message" in errors[0]
    assert "cannot read it" in errors[1]
    assert json.loads(done.stdout)["action"] == "hold"


def test_stdin_and_language(tmp_path: Path):
    (tmp_path / "config-home" / "courtesy").mkdir(parents=True)
    (tmp_path / "config-home" / "courtesy" / "config.toml").write_text('language = "de"\n')
    done = courtesy(
        tmp_path, "check", "--json", "-", stdin=(NAMES / "de_misspelled.eml").read_bytes()
    )
    record = json.loads(done.stdout)
    assert record["file"] == "-"
    assert record["findings"][0]["message"] == (
        "Die Anrede schreibt 'Meyer'; der Empfänger heißt Thomas Meier."
    )


def test_contacts_file_for_one_run(tmp_path: Path):
    message = str(NAMES / "de_salutation_mismatch.eml")
    without = courtesy(tmp_path, "check", "--json", message)
    assert json.loads(without.stdout)["findings"] == []
    with_book = courtesy(
        tmp_path, "check", "--json", "--contacts", str(DATA / "contacts" / "v3.vcf"), message
    )
    codes = [f["code"] for f in json.loads(with_book.stdout)["findings"]]
    assert codes == ["name.salutation_mismatch"]


def test_contacts_import_list_and_reimport(tmp_path: Path):
    book = str(DATA / "contacts" / "v3.vcf")
    first = courtesy(tmp_path, "contacts", "import", book)
    assert first.returncode == 0, first.stderr
    assert " new, " in first.stdout
    listed = courtesy(tmp_path, "contacts", "list", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows and all(
        set(r) == {"emails", "name", "given", "family", "nicknames", "salutation", "source"}
        for r in rows
    )
    again = courtesy(tmp_path, "contacts", "import", book)
    assert "0 new" in again.stdout
    assert len(courtesy(tmp_path, "contacts", "list", "--json").stdout.splitlines()) == len(rows)
    # the imported book is used by `check` from now on
    done = courtesy(tmp_path, "check", "--json", str(NAMES / "de_salutation_mismatch.eml"))
    assert [f["code"] for f in json.loads(done.stdout)["findings"]] == ["name.salutation_mismatch"]


def test_broken_contacts_file(tmp_path: Path):
    done = courtesy(tmp_path, "contacts", "import", str(DATA / "contacts" / "unknown.csv"))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    broken = courtesy(tmp_path, "contacts", "import", str(DATA / "contacts" / "broken.vcf"))
    assert "warning" in broken.stderr and "line" in broken.stderr
    assert broken.returncode == 0
