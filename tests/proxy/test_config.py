"""Config loading: defaults, the example file, and one precise line for each mistake."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest

from courtesy.checks import registry
from courtesy.proxy import config as config_module
from courtesy.proxy.config import Config, load_config, parse_config
from courtesy.proxy.secrets import SecretError, resolve_password
from courtesy.proxy.settings import ConfigError, Duration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "courtesy.proxy.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_no_file_means_embedded_defaults_and_tryout(tmp_path: Path):
    config = load_config(environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert config.source is None or not config.source.exists()
    assert config.tryout_mode
    assert config.proxy.listen == "127.0.0.1:1587"
    assert config.proxy.max_message_size == 50_000_000
    assert config.unanswered.after == Duration(days=2)


def test_example_file_loads_and_matches_the_defaults():
    config = load_config(EXAMPLE)
    defaults = Config()
    assert config.language == defaults.language
    assert config.proxy == defaults.proxy
    assert config.unanswered == defaults.unanswered
    assert config.report == defaults.report
    assert config.hold == defaults.hold
    assert config.reject == defaults.reject
    assert dict(config.policy) == dict(defaults.policy)
    assert config.upstream is not None and config.upstream.port == 587
    for name, family in registry.families().items():
        assert config.checks[name] == family.settings_type(), f"[checks.{name}] differs"


def _settings_classes() -> dict[str, type]:
    classes: dict[str, type] = {name: cls for name, cls in config_module._SECTIONS.items()}
    for name, family in registry.families().items():
        classes[f"checks.{name}"] = family.settings_type
    return classes


def test_example_file_documents_every_key():
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)
    missing = []
    for section, cls in _settings_classes().items():
        table: typing.Any = data
        for part in section.split("."):
            table = table.get(part, {}) if isinstance(table, dict) else {}
        section_text = _section_text(text, section)
        for field in dataclasses.fields(cls):
            written = field.name in table
            commented = re.search(rf"^#\s*{field.name}\s*=", section_text, re.M)
            if (
                not written
                and not commented
                and not (field.name == "users" and "[proxy.users]" in text)
            ):
                missing.append(f"{section}.{field.name}")
    for top in ("language", "addresses"):
        if top not in data:
            missing.append(top)
    assert missing == [], f"config.example.toml does not document: {missing}"


def _section_text(text: str, section: str) -> str:
    found = re.search(rf"^\[{re.escape(section)}\]", text, re.M)
    if found is None:
        return ""
    start = found.start()
    nxt = re.compile(r"^\[(?!proxy\.users)", re.M).search(text, start + 1)
    return text[start : nxt.start() if nxt else len(text)]


BAD_CONFIGS = [
    ("language = 'fr'", "language", "expected 'de' or 'en'"),
    ("[proxy]\nlisten = '127.0.0.1:99999'", "proxy.listen", "not a port"),
    ("[proxy]\nlisten = '0.0.0.0:1587'", "proxy.auth", "never an open relay"),
    ("[proxy]\nmax_message_size = 'huge'", "proxy.max_message_size", "not a size"),
    ("[proxy]\nauth = 'kerberos'", "proxy.auth", "one of 'none', 'passthrough', 'local'"),
    ("[proxy]\nauth = 'local'", "proxy.users", "at least one user"),
    ("[proxy]\nlistn = '127.0.0.1:25'", "proxy.listn", "unknown key"),
    ("[upstream]\nport = 587", "upstream.host", "missing"),
    ("[upstream]\nhost = 'smtp.example.com'\nport = '587'", "upstream.port", "whole number"),
    ("[upstream]\nhost = 'h'\nsecurity = 'ssl'", "upstream.security", "'tls', 'starttls', 'none'"),
    ("[upstream]\nhost = 'h'\ntimeout = 'soon'", "upstream.timeout", "duration"),
    (
        "[upstream]\nhost = 'h'\npassword_env = 'A'\npassword_command = 'b'",
        "upstream.password_env",
        "only one of",
    ),
    ("[imap]\nhost = 'h'\nfolders = []", "imap.folders", "at least one folder"),
    ("[imap]\nhost = 'h'\nfolders = 'INBOX'", "imap.folders", "list of strings"),
    ("[unanswered]\nafter = 3", "unanswered.after", None),
    ("[hold]\nexpire = 'later'", "hold.expire", "'2h release'"),
    ("[policy]\n'greeting' = 'shout'", "policy.greeting", "'relay', 'hold' or 'reject'"),
    ("[policy]\n'spelling' = 'hold'", "policy.spelling", "unknown check code"),
    ("[checks.spelling]\nx = 1", "checks.spelling", "unknown check family"),
    ("[api]\nlisten = '192.0.2.1:1588'", "api.listen", "not a loopback"),
    ("[report]\nschedule = 'someday'", "report.schedule", "weekday and time"),
    ("[report]\nschedule = 'mon 25:00'", "report.schedule", "not a time"),
    ("[report]\ntimezone = 'Mars/Olympus'", "report.timezone", "not a time zone"),
    ("[store]\nurl = 'courtesy.db'", "store.url", "not a database URL"),
    ("colour = 'blue'", "colour", "unknown key"),
    ("[proxy\nlisten = 1", None, "not valid TOML"),
]


@pytest.mark.parametrize(("text", "key", "expected"), BAD_CONFIGS)
def test_bad_config_is_one_line_naming_the_key(
    tmp_path: Path, text: str, key: str | None, expected: str | None
):
    path = tmp_path / "config.toml"
    path.write_text(text)
    if key == "unanswered.after":
        # a bare number is accepted as seconds: this one must load
        assert load_config(path).unanswered.after == Duration(seconds=3)
        return
    done = run_cli("config", "check", "-c", str(path))
    assert done.returncode == 2, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert str(path) in lines[0]
    if key:
        assert f": {key}:" in lines[0]
    if expected:
        assert expected in lines[0]


def test_config_check_ok_exits_0(tmp_path: Path):
    done = run_cli("config", "check", "-c", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_missing_explicit_file_is_an_error(tmp_path: Path):
    done = run_cli("config", "check", "-c", str(tmp_path / "nope.toml"))
    assert done.returncode == 2
    assert "no such file" in done.stderr


def test_config_from_environment_variable(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text("language = 'de'\n")
    config = load_config(environ={"COURTESY_CONFIG": str(path)})
    assert config.language == "de" and config.source == path


def test_clear_password_needs_a_private_file(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text("[upstream]\nhost = 'h'\npassword = 'hunter2-canary'\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "upstream.password"
    assert "hunter2-canary" not in str(caught.value)
    path.chmod(0o600)
    config = load_config(path)
    assert config.upstream is not None
    assert "hunter2-canary" not in repr(config)


def test_password_sources(tmp_path: Path):
    upstream = parse_config({"upstream": {"host": "h", "password_command": "echo s3cret"}}).upstream
    assert upstream is not None
    secret = resolve_password(upstream, "upstream", "anna")
    assert secret is not None and secret.reveal() == "s3cret"
    assert "s3cret" not in repr(secret)

    from_env = parse_config({"upstream": {"host": "h", "password_env": "MY_PW"}}).upstream
    assert from_env is not None
    secret = resolve_password(from_env, "upstream", "anna", environ={"MY_PW": "envpw"})
    assert secret is not None and secret.reveal() == "envpw"
    with pytest.raises(SecretError, match="MY_PW is not set"):
        resolve_password(from_env, "upstream", "anna", environ={})

    failing = parse_config({"upstream": {"host": "h", "password_command": "exit 3"}}).upstream
    assert failing is not None
    with pytest.raises(SecretError, match="exit status 3"):
        resolve_password(failing, "upstream", "anna")


def test_run_with_bad_config_exits_2_without_traceback(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text("[proxy]\nlisten = 'nonsense:port'\n")
    done = run_cli("run", "-c", str(path))
    assert done.returncode == 2
    assert "proxy.listen" in done.stderr and "Traceback" not in done.stderr


def test_help_and_version():
    assert run_cli("--version").stdout.startswith("courtesy ")
    for command in (["run"], ["config", "check"], ["config"]):
        done = run_cli(*command, "--help")
        assert done.returncode == 0 and "usage:" in done.stdout
