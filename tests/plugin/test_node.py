"""The Thunderbird add-on's own checks, so the suite fails loudly when it breaks:
node's test runner on its logic, web-ext lint on manifest and sources, the .xpi build."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import zipfile
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from courtesy.proxy.api import load_secrets
from tests.conftest import require_tool
from tests.servers import ProxyInThread, RecordingUpstream, proxy_config, wait_for

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugin" / "thunderbird"


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "npm_config_update_notifier": "false"}
    return subprocess.run(
        argv, cwd=PLUGIN, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def node_modules() -> Path:
    require_tool("node")
    npm = require_tool("npm")
    if not (PLUGIN / "node_modules" / ".bin" / "web-ext").exists():
        done = run(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", timeout=900)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return PLUGIN / "node_modules"


def test_node_tests_pass(node_modules: Path):
    done = run(require_tool("npm"), "test")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "# fail 0" in done.stdout
    tests = [line for line in done.stdout.splitlines() if line.startswith("# tests ")]
    assert tests and int(tests[0].split()[-1]) >= 20, tests


def test_web_ext_lint_has_no_errors(node_modules: Path):
    done = run(require_tool("npm"), "run", "--silent", "lint", "--", "--output", "json")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert report["errors"] == [], report["errors"]
    # Thunderbird's own permissions are unknown to the Firefox-made linter; nothing else.
    unknown = [w for w in report["warnings"] if "Invalid permissions" not in w["message"]]
    assert unknown == [], unknown


def test_xpi_holds_the_add_on_and_no_tests(node_modules: Path, tmp_path: Path):
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-plugin"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    xpi = Path(done.stdout.strip().splitlines()[-1])
    assert xpi.parent == tmp_path and xpi.suffix == ".xpi"
    with zipfile.ZipFile(xpi) as archive:
        names = set(archive.namelist())
    for wanted in (
        "manifest.json",
        "background.js",
        "lib/guard.js",
        "warning/warning.html",
        "options/options.html",
        "_locales/de/messages.json",
        "_locales/en/messages.json",
    ):
        assert wanted in names
    assert not any(
        n.startswith(("test/", "node_modules/")) or n.startswith("package") for n in names
    )


# The add-on's request against the real API: the two sides agree on the contract.
CONTRACT = """
import { askApi, buildRequest, createSendGuard } from "./lib/guard.js";
const [apiUrl, token] = process.argv.slice(1);
const details = {
  from: "Anna Schmidt <anna@example.com>",
  to: ["Thomas Meier <thomas.meier@example.org>"],
  cc: [], bcc: [{ id: "contact-1", type: "contact" }],
  subject: "Angebot für Dienstag",
  isPlainText: false,
  body: '<p>Hallo Herr Meyer,</p><p>anbei das Angebot.<img src="data:image/png;base64,AAAA"></p>'
    + '<p>Viele Grüße<br>Anna Schmidt</p>',
  type: "new",
  customHeaders: [],
};
const answer = await askApi(buildRequest(details), { apiUrl, token }, { fetch });
const set = [];
const messenger = {
  storage: { local: { get: async () => ({ apiUrl, token }) } },
  compose: { setComposeDetails: async (tab, d) => set.push(d) },
  notifications: { create: async () => {} },
  i18n: { getMessage: (name) => name },
  messages: { getFull: async () => null },
};
const guard = createSendGuard({ messenger, fetch, openWarning: async () => "send" });
const decision = await guard({ id: 1 }, details);
console.log(JSON.stringify({ answer, decision }));
"""


def test_add_on_and_api_agree(node_modules: Path, tmp_path: Path, upstream: RecordingUpstream):
    proxy = ProxyInThread(proxy_config(tmp_path, upstream, hold={"notice": False}))
    try:
        assert proxy.running.api is not None
        host, port = proxy.running.api.address
        token = load_secrets(proxy.running.store).token
        done = run(
            require_tool("node"),
            "--input-type=module",
            "-e",
            CONTRACT,
            f"http://{host}:{port}",
            token,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        answer = result["answer"]
        assert answer["ok"], answer
        assert answer["result"]["action"] == "hold"
        assert [f["code"] for f in answer["result"]["findings"]] == ["name.misspelled"]
        headers = result["decision"]["details"]["customHeaders"]
        assert result["decision"]["cancel"] is False
        assert headers[0]["name"] == "X-Courtesy-Override"

        # What Thunderbird then sends: HTML and plain text, with the header.
        message = EmailMessage()
        message["From"] = "Anna Schmidt <anna@example.com>"
        message["To"] = "Thomas Meier <thomas.meier@example.org>"
        message["Subject"] = "Angebot für Dienstag"
        message["X-Courtesy-Override"] = headers[0]["value"]
        message.set_content(
            "Hallo Herr Meyer,\n\nanbei das Angebot.\n\nViele Grüße\nAnna Schmidt\n"
        )
        message.add_alternative(
            "<html><body><p>Hallo Herr Meyer,</p><p>anbei das Angebot.</p>"
            "<p>Viele Grüße<br>Anna Schmidt</p></body></html>",
            subtype="html",
        )
        with smtplib.SMTP(proxy.host, proxy.port, timeout=10) as client:
            client.sendmail(
                "anna@example.com",
                ["thomas.meier@example.org"],
                message.as_bytes(policy=SMTP),
            )
        assert wait_for(lambda: len(upstream.received) == 1)
        assert b"X-Courtesy-Override" not in upstream.received[0].content
    finally:
        proxy.stop()
