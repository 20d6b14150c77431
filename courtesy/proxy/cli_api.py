"""``courtesy api token``: what the mail-client add-on needs to talk to the check API."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from courtesy.proxy.api import load_secrets
from courtesy.proxy.cli import EXIT_OK, config_from_args
from courtesy.store.db import open_store


def cmd_api_token(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    # Made on first use, so the add-on can be set up before the first `courtesy run`.
    store = open_store(config.store_url)
    try:
        secrets = load_secrets(store)
    finally:
        store.close()
    print(secrets.token)
    return EXIT_OK


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], Any]) -> None:
    api = sub.add_parser("api", help="the local check API used by the Thunderbird add-on")
    api_sub = api.add_subparsers(dest="api_command", metavar="SUBCOMMAND")
    api_sub.required = True
    token = with_config(
        api_sub.add_parser(
            "token",
            help="print the token the add-on needs (made on first use)",
            description="Print this installation's check API token. Paste it into the "
            "add-on's options; keep it private like a password.",
        )
    )
    token.set_defaults(handler=cmd_api_token)
