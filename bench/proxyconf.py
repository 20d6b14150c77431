"""The config file the load and robustness benches run ``courtesy run`` with."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_relay_config(
    work: Path, proxy_port: int, upstream_port: int, proxy_options: str = ""
) -> tuple[Path, str]:
    """A proxy on ``proxy_port`` relaying to a plain local upstream: (config file, store URL).

    The check API is off and no notices are sent, so the upstream sees only
    the benchmark's own mail. ``proxy_options`` are more lines of ``[proxy]``.
    """
    store_url = f"sqlite:///{work / 'store.db'}"
    config = work / "config.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [proxy]
            listen = "127.0.0.1:{proxy_port}"
            {proxy_options}
            [api]
            enabled = false
            [store]
            url = "{store_url}"
            [upstream]
            host = "127.0.0.1"
            port = {upstream_port}
            security = "none"
            timeout = "10s"
            [hold]
            notice = false
            """
        )
    )
    return config, store_url
