"""Documented examples must work: README snippets are run or parsed here."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from courtesy.proxy.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_toml_snippets_are_valid_configs():
    blocks = re.findall(r"```toml\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        parse_config(tomllib.loads(block))


def test_readme_config_error_example_is_what_the_program_says(tmp_path: Path):
    example = re.search(r"courtesy: error: config\.toml: (.*)", README)
    assert example is not None
    path = tmp_path / "config.toml"
    path.write_text('[upstream]\nhost = "smtp.example.com"\nsecurity = "ssl"\n')
    done = subprocess.run(
        [sys.executable, "-m", "courtesy.proxy.cli", "config", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"courtesy: error: {path}: {example.group(1)}"


def test_quick_start_commands_exist():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "scripts/setup && .venv/bin/courtesy run" in quick
    assert "scripts/system-deps && scripts/test" in quick
    for script in ("setup", "system-deps", "test"):
        assert (ROOT / "scripts" / script).stat().st_mode & 0o111
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/system-deps" in ci and "scripts/test" in ci


def test_readme_imap_example_is_complete():
    blocks = re.findall(r"```toml\n(.*?)```", README, re.S)
    imap = [parse_config(tomllib.loads(b)) for b in blocks if "[imap]" in b]
    assert imap and all(c.imap is not None and c.imap.folders == ("INBOX",) for c in imap)
