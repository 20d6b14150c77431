"""The ``courtesy`` command line.

Errors a user can fix (config, store, input files) are one line on stderr and
exit status 2 — never a traceback. ``--debug`` shows tracebacks for bug reports.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from courtesy import __version__
from courtesy.proxy import eventloop
from courtesy.proxy.config import Config, load_config
from courtesy.proxy.secrets import SecretError
from courtesy.proxy.settings import ConfigError
from courtesy.store.db import StoreError

log = logging.getLogger("courtesy")

EXIT_OK = 0
EXIT_FINDINGS = 1  # courtesy check: a message would not be relayed
EXIT_FAILED = 1  # courtesy held release: upstream did not take the message
EXIT_USAGE = 2


class UserError(Exception):
    """A problem to report in one line (exit status 2)."""


Handler = Callable[[argparse.Namespace], int]


class RedactTokens(logging.Filter):
    """Hide the secrets of command addresses in any log line, whoever logs it.

    aiosmtpd logs SMTP lines (RCPT TO included) at DEBUG; a release link's
    token must never reach a log file.
    """

    _TOKEN = re.compile(r"((?:release|discard|allow)\+\d+\+)[A-Za-z0-9]+(@courtesy\.invalid)", re.I)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "courtesy.invalid" in message.lower():
            record.msg = self._TOKEN.sub(r"\1…\2", message)
            record.args = None
        return True


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactTokens())
    # aiosmtpd logs every SMTP line at DEBUG and each connection at INFO.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().level))


def config_from_args(args: argparse.Namespace) -> Config:
    """The config a command's ``-c/--config`` names, else the usual places."""
    path = Path(args.config) if getattr(args, "config", None) else None
    return load_config(path)


def cmd_run(args: argparse.Namespace) -> int:
    from courtesy.proxy.app import serve

    config = config_from_args(args)
    if args.log_level is None:
        logging.getLogger().setLevel(getattr(logging, config.log.level.upper()))
    try:
        eventloop.run(serve(config))
    except OSError as exc:
        raise UserError(str(exc)) from None
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    where = config.source or "embedded defaults (no config file found)"
    print(f"{where}: OK")
    if config.tryout_mode:
        print("no [upstream]: try-out mode, mail is kept in a local folder and never sent")
    else:
        assert config.upstream is not None
        print(
            f"upstream: {config.upstream.host}:{config.upstream.port} ({config.upstream.security})"
        )
    print(f"listen: {config.proxy.listen} (auth: {config.proxy.auth})")
    print(f"imap poller: {'on' if config.imap else 'off (no [imap])'}")
    return EXIT_OK


def cmd_config_hash(args: argparse.Namespace) -> int:
    from courtesy.proxy.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Again: ")
        if password != again:
            raise UserError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UserError("empty password")
    print(hash_password(password))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="courtesy",
        description="A local mail proxy that keeps business correspondence courteous.",
    )
    parser.add_argument("--version", action="version", version=f"courtesy {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=None,
        help="log level on stderr (default: from the config, else info)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c",
            "--config",
            metavar="CONFIG",
            help="config file (default: $COURTESY_CONFIG, else the user config dir)",
        )
        return p

    run = with_config(sub.add_parser("run", help="run the proxy (and poller and report schedule)"))
    run.set_defaults(handler=cmd_run)

    config = sub.add_parser("config", help="check the config file or hash a password")
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    config_sub.required = True
    check = with_config(config_sub.add_parser("check", help="validate a config file (exit 0/2)"))
    check.set_defaults(handler=cmd_config_check)
    hashp = config_sub.add_parser(
        "hash-password", help="hash a password for [proxy.users] (reads it from the terminal)"
    )
    hashp.set_defaults(handler=cmd_config_hash)

    for register in _EXTRA_COMMANDS:
        register(sub, with_config)
    return parser


# Other modules add their sub-commands here (checks, contacts, held, poll, report...).
_EXTRA_COMMANDS: list[Callable[..., None]] = []


def _register_extras() -> None:
    from courtesy.proxy import commands

    for register in commands.REGISTER:
        if register not in _EXTRA_COMMANDS:
            _EXTRA_COMMANDS.append(register)


def main(argv: Sequence[str] | None = None) -> int:
    _register_extras()
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level or "info")
    handler: Handler = args.handler
    try:
        return handler(args)
    except (ConfigError, StoreError, SecretError, UserError) as exc:
        if args.debug:
            raise
        print(f"courtesy: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
