"""The one TOML file that holds every setting, parsed once into frozen dataclasses.

Every key has a default; sections a user does not need may be left out. No
``[upstream]`` means try-out mode (mail is written to a local folder and never
sent); no ``[imap]`` means no poller. Settings are passed down explicitly —
there is no global config object.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import platformdirs

from courtesy.checks import registry
from courtesy.proxy.settings import ByteSize, ConfigError, Duration, FieldError, build

APP_NAME = "courtesy"
ENV_CONFIG = "COURTESY_CONFIG"

Action = Literal["relay", "hold", "reject"]
Security = Literal["tls", "starttls", "none"]


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """Split "host:port", "[v6]:port" or "host" into its parts."""
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r} has an unclosed '['")
        host, rest = text[1:end], text[end + 1 :]
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ValueError(f"{text!r} names no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{port_text!r} is not a port number (1-65535)")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class PasswordSource:
    """Where a password comes from; never the password itself in a log line."""

    password_command: str | None = None
    password_env: str | None = None
    # Look the password up in the system keyring (service "courtesy", user name = username).
    password_keyring: bool = False
    # A password written in the file; accepted only when the file is private.
    password: str | None = None

    def password_sources(self) -> list[str]:
        return [
            name
            for name, given in (
                ("password_command", self.password_command),
                ("password_env", self.password_env),
                ("password_keyring", self.password_keyring),
                ("password", self.password),
            )
            if given
        ]

    def check_password_source(self) -> None:
        sources = self.password_sources()
        if len(sources) > 1:
            raise FieldError(sources[1], f"give only one of {', '.join(sources)}")

    def __repr__(self) -> str:  # keep a clear-text password out of every repr
        return f"{type(self).__name__}(sources={self.password_sources()})"


def _check_server(host: str, port: int, timeout: Duration, what: str) -> None:
    if not host:
        raise FieldError("host", f"missing: the {what}'s name")
    if not 0 < port < 65536:
        raise FieldError("port", f"{port} is not a port number (1-65535)")
    if timeout.total_seconds() <= 0:
        raise FieldError("timeout", "must be longer than 0s")


@dataclass(frozen=True, repr=False)
class UpstreamSettings(PasswordSource):
    host: str = ""
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    # CA bundle to verify the upstream certificate with (default: the system's).
    ca_file: Path | None = None
    timeout: Duration = Duration(seconds=60)
    # Idle upstream connections kept open for reuse, and for how long.
    pool_size: int = 4
    pool_idle: Duration = Duration(seconds=30)
    # The name we greet upstream with (EHLO); default: this machine's name.
    helo_name: str | None = None

    def validate(self) -> None:
        self.check_password_source()
        _check_server(self.host, self.port, self.timeout, "upstream SMTP server")
        if self.pool_size < 0:
            raise FieldError("pool_size", "cannot be negative")


@dataclass(frozen=True)
class ProxySettings:
    listen: str = "127.0.0.1:1587"
    # SMTP SIZE limit for one message.
    max_message_size: ByteSize = ByteSize(50 * 1000 * 1000)
    # "none": no AUTH (loopback only); "passthrough": the client's credentials are
    # tried against upstream; "local": checked against [proxy.users].
    auth: Literal["none", "passthrough", "local"] = "none"
    # user name -> password hash made by `courtesy config hash-password`.
    users: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Certificate and key for STARTTLS towards mail clients (needed off loopback).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    hostname: str | None = None
    # What happens to a message when a check crashes.
    on_check_error: Action = "relay"
    # Seconds a client may stay idle before it is disconnected.
    client_timeout: Duration = Duration(seconds=300)
    # How long a shutdown waits for messages in flight.
    shutdown_grace: Duration = Duration(seconds=30)

    @property
    def host(self) -> str:
        return parse_hostport(self.listen, 1587)[0]

    @property
    def port(self) -> int:
        return parse_hostport(self.listen, 1587)[1]

    def validate(self) -> None:
        try:
            host, _ = parse_hostport(self.listen, 1587)
        except ValueError as exc:
            raise FieldError("listen", str(exc)) from None
        if not is_loopback(host) and self.auth == "none":
            raise FieldError(
                "auth",
                f"listening on {host}, which is not loopback, needs AUTH "
                "('passthrough' or 'local'): courtesy is never an open relay",
            )
        if not is_loopback(host) and self.tls_cert is None:
            raise FieldError(
                "tls_cert",
                f"listening on {host}, which is not loopback, needs a certificate for STARTTLS",
            )
        if self.auth == "local" and not self.users:
            raise FieldError("users", "auth = 'local' needs at least one user")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise FieldError("tls_key", "give both tls_cert and tls_key, or neither")
        if self.max_message_size <= 0:
            raise FieldError("max_message_size", "must be larger than 0")


@dataclass(frozen=True)
class TryoutSettings:
    """Where try-out mode writes relayed mail (a Maildir)."""

    folder: Path | None = None


@dataclass(frozen=True)
class StoreSettings:
    # SQLAlchemy URL; default: courtesy.db in the user data dir.
    url: str = ""

    def validate(self) -> None:
        if self.url and "://" not in self.url:
            raise FieldError("url", f"{self.url!r} is not a database URL like 'sqlite:///path.db'")


@dataclass(frozen=True, repr=False)
class ImapSettings(PasswordSource):
    host: str = ""
    port: int = 993
    security: Security = "tls"
    username: str | None = None
    ca_file: Path | None = None
    # A command printing an OAuth2 access token (XOAUTH2) instead of a password.
    oauth2_token_command: str | None = None
    folders: tuple[str, ...] = ("INBOX",)
    # The Sent folder; default: found by SPECIAL-USE \\Sent.
    sent_folder: str | None = None
    poll_interval: Duration = Duration(minutes=5)
    idle: bool = True
    timeout: Duration = Duration(seconds=60)
    batch_size: int = 500

    def validate(self) -> None:
        self.check_password_source()
        _check_server(self.host, self.port, self.timeout, "IMAP server")
        if not self.folders:
            raise FieldError("folders", "name at least one folder to watch")
        if self.batch_size <= 0:
            raise FieldError("batch_size", "must be larger than 0")


@dataclass(frozen=True)
class UnansweredSettings:
    after: Duration = Duration(days=2)


@dataclass(frozen=True)
class ReportSettings:
    enabled: bool = True
    schedule: str = "mon 08:00"
    to: str | None = None
    deliver: Literal["smtp", "imap"] = "smtp"
    # IANA time zone name; default: the machine's local zone.
    timezone: str | None = None

    def validate(self) -> None:
        # Imported here: the report modules import this one.
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from courtesy.proxy.report import ReportError
        from courtesy.proxy.schedule import Schedule

        zone = None
        if self.timezone is not None:
            try:
                zone = ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise FieldError(
                    "timezone", f"{self.timezone!r} is not a time zone like 'Europe/Berlin'"
                ) from None
        try:
            Schedule.parse(self.schedule, zone or ZoneInfo("UTC"))
        except ReportError as exc:
            raise FieldError("schedule", str(exc).removeprefix("report.schedule: ")) from None


@dataclass(frozen=True)
class HoldSettings:
    # "" (never), or e.g. "2h release" / "7d discard".
    expire: str = ""
    notice: bool = True

    def validate(self) -> None:
        self.expire_rule()

    def expire_rule(self) -> tuple[Duration, str] | None:
        """``expire`` as (after, "release" | "discard"), or None for never."""
        if not self.expire:
            return None
        parts = self.expire.split()
        if len(parts) != 2 or parts[1] not in ("release", "discard"):
            raise FieldError("expire", f"{self.expire!r}: write e.g. '2h release' or '7d discard'")
        try:
            return Duration.parse(parts[0]), parts[1]
        except ValueError as exc:
            raise FieldError("expire", str(exc)) from None


@dataclass(frozen=True)
class RejectSettings:
    # Sending the same message again within this window sends it anyway.
    override_window: Duration = Duration(minutes=10)


@dataclass(frozen=True)
class ApiSettings:
    enabled: bool = True
    listen: str = "127.0.0.1:1588"

    def validate(self) -> None:
        try:
            host, _ = parse_hostport(self.listen, 1588)
        except ValueError as exc:
            raise FieldError("listen", str(exc)) from None
        if not is_loopback(host):
            raise FieldError("listen", f"{host} is not a loopback address; the API is local only")


@dataclass(frozen=True)
class LogSettings:
    level: Literal["debug", "info", "warning", "error"] = "info"


# Policy defaults: what a finding's code (or its family) leads to. Chosen so
# that what is almost surely a mistake (a wrong name, a cc spray) is held for a
# second look, while the greeting — skipped by most colleagues in running
# exchanges — is held only when there is no greeting at all in new text.
DEFAULT_POLICY: Mapping[str, Action] = MappingProxyType(
    {
        "greeting": "hold",
        "name": "hold",
        "cc": "hold",
        "closing": "relay",
    }
)


@dataclass(frozen=True)
class Config:
    language: Literal["de", "en"] = "en"
    # The user's own addresses (default: the IMAP and upstream user names).
    addresses: tuple[str, ...] = ()
    proxy: ProxySettings = ProxySettings()
    upstream: UpstreamSettings | None = None
    tryout: TryoutSettings = TryoutSettings()
    store: StoreSettings = StoreSettings()
    policy: Mapping[str, Action] = field(default_factory=lambda: DEFAULT_POLICY)
    checks: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    imap: ImapSettings | None = None
    unanswered: UnansweredSettings = UnansweredSettings()
    report: ReportSettings = ReportSettings()
    hold: HoldSettings = HoldSettings()
    reject: RejectSettings = RejectSettings()
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    # The file it came from; None for embedded defaults (try-out mode).
    source: Path | None = None

    @property
    def tryout_mode(self) -> bool:
        return self.upstream is None

    @property
    def own_addresses(self) -> frozenset[str]:
        found = {a.lower() for a in self.addresses}
        if not self.addresses:
            for section in (self.upstream, self.imap):
                if section is not None and section.username and "@" in section.username:
                    found.add(section.username.lower())
        return frozenset(found)

    @property
    def store_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite:///{default_data_dir() / 'courtesy.db'}"

    @property
    def tryout_folder(self) -> Path:
        return self.tryout.folder or default_data_dir() / "tryout-outbox"

    @property
    def report_recipient(self) -> str | None:
        """``report.to``, else the user's own address (the IMAP login, then the upstream one)."""
        if self.report.to:
            return self.report.to
        for section in (self.imap, self.upstream):
            if section is not None and section.username and "@" in section.username:
                return section.username
        return self.addresses[0] if self.addresses else None

    def action_for(self, code: str) -> Action:
        """The policy's action for a finding code: exact code first, then its family."""
        if code in self.policy:
            return self.policy[code]
        family = code.split(".", 1)[0]
        return self.policy.get(family, "relay")


_SECTIONS: dict[str, type[Any]] = {
    "proxy": ProxySettings,
    "upstream": UpstreamSettings,
    "tryout": TryoutSettings,
    "store": StoreSettings,
    "imap": ImapSettings,
    "unanswered": UnansweredSettings,
    "report": ReportSettings,
    "hold": HoldSettings,
    "reject": RejectSettings,
    "api": ApiSettings,
    "log": LogSettings,
}


def _parse_policy(table: Any, file: Path | None) -> Mapping[str, Action]:
    if not isinstance(table, dict):
        raise ConfigError("expected a table of check code -> action", file=file, key="policy")
    known_codes = set(registry.all_codes())
    known_families = set(registry.families())
    policy = dict(DEFAULT_POLICY)
    for key, value in table.items():
        if key not in known_codes and key not in known_families:
            raise ConfigError(
                "unknown check code or family (known: "
                + ", ".join(sorted(known_families | known_codes))
                + ")",
                file=file,
                key=f"policy.{key}",
            )
        if value not in ("relay", "hold", "reject"):
            raise ConfigError(
                f"expected 'relay', 'hold' or 'reject', got {value!r}",
                file=file,
                key=f"policy.{key}",
            )
        policy[key] = value
    return MappingProxyType(policy)


def _parse_checks(table: Any, file: Path | None) -> Mapping[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError("expected tables like [checks.cc]", file=file, key="checks")
    families = registry.families()
    parsed: dict[str, Any] = {}
    for name, sub in table.items():
        if name not in families:
            raise ConfigError(
                f"unknown check family (known: {', '.join(families)})",
                file=file,
                key=f"checks.{name}",
            )
        if not isinstance(sub, dict):
            raise ConfigError("expected a table", file=file, key=f"checks.{name}")
        parsed[name] = build(families[name].settings_type, sub, f"checks.{name}", file)
    for name, family in families.items():
        parsed.setdefault(name, family.settings_type())
    return MappingProxyType(parsed)


def parse_config(data: Mapping[str, Any], file: Path | None = None) -> Config:
    """Build a Config from a parsed TOML document."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "policy":
            values["policy"] = _parse_policy(value, file)
        elif key == "checks":
            values["checks"] = _parse_checks(value, file)
        elif key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError("expected a table", file=file, key=key)
            values[key] = build(_SECTIONS[key], value, key, file)
        elif key == "language":
            if value not in ("de", "en"):
                raise ConfigError(f"expected 'de' or 'en', got {value!r}", file=file, key=key)
            values[key] = value
        elif key == "addresses":
            if not isinstance(value, list) or not all(
                isinstance(a, str) and "@" in a for a in value
            ):
                raise ConfigError("expected a list of mail addresses", file=file, key=key)
            values[key] = tuple(value)
        else:
            known = ", ".join(["language", "addresses", "policy", "checks", *_SECTIONS])
            raise ConfigError(f"unknown key (known top-level keys: {known})", file=file, key=key)
    values.setdefault("checks", _parse_checks({}, file))
    config = Config(**values, source=file)
    _check_clear_passwords(config, file)
    return config


def _check_clear_passwords(config: Config, file: Path | None) -> None:
    """A password in the file is accepted only when nobody else can read the file."""
    if file is None:
        return
    for name, section in (("upstream", config.upstream), ("imap", config.imap)):
        if section is not None and section.password is not None:
            try:
                mode = file.stat().st_mode
            except OSError:
                continue
            if mode & 0o077:
                raise ConfigError(
                    "a password written in the config file needs a file only you can read "
                    f"(chmod 600 {file}); better use password_command or password_env",
                    file=file,
                    key=f"{name}.password",
                )


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load the config: ``path``, else $COURTESY_CONFIG, else the user config dir.

    With no file anywhere, the embedded defaults apply (try-out mode). A file
    named explicitly (argument or environment) must exist.
    """
    env = os.environ if environ is None else environ
    explicit = path or (Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else None)
    candidate = explicit or default_config_path()
    if not candidate.exists():
        if explicit is not None:
            raise ConfigError("no such file", file=candidate)
        return parse_config({})
    try:
        with candidate.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=candidate) from None
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror}", file=candidate) from None
    return parse_config(data, candidate)
