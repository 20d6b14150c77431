"""The local check API: real HTTP against the running proxy, and the override header at
the SMTP front with a real SMTP client through the proxy to the recording upstream."""

from __future__ import annotations

import http.client
import json
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from courtesy.checks.message import parse_message
from courtesy.proxy.api import (
    OVERRIDE_HEADER,
    OVERRIDE_LIFETIME,
    OverrideTokens,
    build_message,
    content_keys,
    strip_header,
)
from courtesy.proxy.cli import main
from courtesy.proxy.config import load_config
from courtesy.store.held import HeldMessage
from courtesy.store.outgoing import OutgoingMessage
from tests.servers import ProxyInThread, RecordingUpstream, free_port, wait_for

SENDER = "anna@example.com"
MEIER = "thomas.meier@example.org"

MEYER_JSON: dict[str, Any] = {
    "from": f"Anna Schmidt <{SENDER}>",
    "to": [f"Thomas Meier <{MEIER}>"],
    "subject": "Angebot für Dienstag",
    "text": "Hallo Herr Meyer,\n\nanbei das Angebot für Dienstag.\n\nViele Grüße\nAnna Schmidt\n",
}


@dataclass
class Api:
    proxy: ProxyInThread
    upstream: RecordingUpstream
    config_file: Path
    token: str
    port: int

    def request(
        self,
        body: bytes | dict[str, Any] | None,
        *,
        method: str = "POST",
        path: str = "/api/v1/check",
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, dict[str, str], Any]:
        sent = {"Content-Type": "application/json"}
        if auth:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            raw = response.read()
            answer = {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return response.status, answer, parsed

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        status, _, answer = self.request(body)
        assert status == 200, answer
        assert isinstance(answer, dict)
        return answer

    def send(self, content: bytes, recipients: list[str]) -> None:
        with smtplib.SMTP(self.proxy.host, self.proxy.port, timeout=10) as client:
            client.sendmail(SENDER, recipients, content)

    def held(self) -> list[HeldMessage]:
        with self.proxy.running.store.sessions() as session:
            return list(session.scalars(select(HeldMessage).order_by(HeldMessage.id)))

    def actions(self) -> list[str]:
        self.proxy.flush_log()
        with self.proxy.running.store.sessions() as session:
            rows = session.scalars(select(OutgoingMessage.action).order_by(OutgoingMessage.id))
            return list(rows)


def write_config(tmp_path: Path, upstream: RecordingUpstream, api_port: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[proxy]
listen = "127.0.0.1:{free_port()}"

[upstream]
host = "127.0.0.1"
port = {upstream.port}
security = "none"
timeout = "5s"

[store]
url = "sqlite:///{tmp_path / "store.db"}"

[hold]
notice = false

[api]
listen = "127.0.0.1:{api_port}"
""",
        encoding="utf-8",
    )
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(list(argv))
    return status, capsys.readouterr().out


@pytest.fixture
def api(
    tmp_path: Path, upstream: RecordingUpstream, capsys: pytest.CaptureFixture[str]
) -> Iterator[Api]:
    port = free_port()
    config_file = write_config(tmp_path, upstream, port)
    # The token exists before the first run: the user sets up the add-on first.
    status, out = cli(capsys, "api", "token", "-c", str(config_file))
    assert status == 0
    proxy = ProxyInThread(load_config(config_file))
    try:
        yield Api(proxy, upstream, config_file, out.strip(), port)
    finally:
        proxy.stop()


def eml(fields: dict[str, Any]) -> bytes:
    """The message as a mail client would write it, built independently of the API."""
    message = EmailMessage()
    message["From"] = fields["from"]
    message["To"] = ", ".join(fields.get("to", []))
    if fields.get("cc"):
        message["Cc"] = ", ".join(fields["cc"])
    message["Subject"] = fields.get("subject", "")
    if fields.get("in_reply_to"):
        message["In-Reply-To"] = fields["in_reply_to"]
    text, html = fields.get("text"), fields.get("html")
    if text is not None:
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
    else:
        message.set_content(html or "", subtype="html")
    return message.as_bytes(policy=SMTP_POLICY)


# -- the token --------------------------------------------------------------------------


def test_token_is_made_once_per_installation(api: Api, capsys: pytest.CaptureFixture[str]):
    status, out = cli(capsys, "api", "token", "-c", str(api.config_file))
    assert status == 0
    assert out.strip() == api.token
    assert len(api.token) >= 40


# -- same findings as `courtesy check` ----------------------------------------------------

MESSAGES: dict[str, dict[str, Any]] = {
    "misspelled name": MEYER_JSON,
    "no greeting": {
        "from": f"Anna Schmidt <{SENDER}>",
        "to": ["Jon Smith <jon.smith@example.net>"],
        "subject": "Report",
        "text": "here is the report you asked for.\n\nBest regards\nAnna\n",
    },
    "cc spray": {
        "from": SENDER,
        "to": ["Jon Smith <jon.smith@example.net>"],
        "cc": [f"p{i}@firm{i}.example" for i in range(5)],
        "subject": "Termine",
        "text": "Hi Jon,\n\nthe dates are fixed.\n\nBest regards\nAnna\n",
    },
    "html only, courteous": {
        "from": f"Anna Schmidt <{SENDER}>",
        "to": [f"Thomas Meier <{MEIER}>"],
        "subject": "Rückfrage",
        "html": "<p>Hallo Herr Meier,</p><p>passt Ihnen Dienstag?</p>"
        "<p>Viele Grüße<br>Anna Schmidt</p>",
    },
    "text and html, wrong name": {
        "from": f"Anna Schmidt <{SENDER}>",
        "to": [f"Thomas Meier <{MEIER}>"],
        "subject": "Rückfrage",
        "text": "Hallo Herr Maier,\n\npasst Ihnen Dienstag?\n\nViele Grüße\nAnna Schmidt\n",
        "html": "<p>Hallo Herr Maier,</p><p>passt Ihnen Dienstag?</p>"
        "<p>Viele Grüße<br>Anna Schmidt</p>",
    },
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_findings_match_courtesy_check(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
):
    fields = MESSAGES[name]
    answer = api.check(fields)
    path = tmp_path / "message.eml"
    path.write_bytes(eml(fields))
    status, out = cli(capsys, "check", "--json", "-c", str(api.config_file), str(path))
    expected = json.loads(out)
    assert answer["action"] == expected["action"]
    assert answer["findings"] == expected["findings"]
    assert status == (0 if expected["action"] == "relay" else 1)
    assert answer["override"].startswith("v1.")
    if name == "misspelled name":
        assert answer["action"] == "hold"
        assert [f["suggestion"] for f in answer["findings"]] == ["Meier"]
    # Asking changes nothing: no message was sent, held or logged.
    assert api.upstream.received == [] and api.held() == [] and api.actions() == []


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "kwargs", "status", "error"),
    [
        ("no token", {"auth": False}, 401, "unauthorized"),
        ("wrong token", {"headers": {"Authorization": "Bearer nope"}}, 401, "unauthorized"),
        ("basic auth", {"headers": {"Authorization": "Basic YTpi"}}, 401, "unauthorized"),
        ("web origin", {"headers": {"Origin": "https://evil.example"}}, 403, "forbidden_origin"),
        (
            "local web origin",
            {"headers": {"Origin": "http://127.0.0.1:8000"}},
            403,
            "forbidden_origin",
        ),
        ("opaque origin", {"headers": {"Origin": "null"}}, 403, "forbidden_origin"),
        ("rebound host name", {"headers": {"Host": "evil.example:1588"}}, 403, "forbidden_host"),
        ("text/plain", {"headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
        (
            "form",
            {"headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            415,
            "unsupported_media_type",
        ),
        ("GET", {"method": "GET"}, 405, "method_not_allowed"),
        ("other path", {"path": "/api/v1/nothing"}, 404, "not_found"),
    ],
)
def test_refused(api: Api, case: str, kwargs: dict[str, Any], status: int, error: str):
    got, headers, answer = api.request(MEYER_JSON, **kwargs)
    assert got == status, answer
    assert answer["error"] == error
    assert answer["message"]
    assert not any(h.startswith("access-control-") for h in headers)
    if status == 401:
        assert headers["www-authenticate"].startswith("Bearer")


def test_web_origin_refused_even_with_the_token(api: Api):
    # What a page could do if it had learnt the token: still no.
    status, _, answer = api.request(MEYER_JSON, headers={"Origin": "https://mail.example"})
    assert status == 403 and answer["error"] == "forbidden_origin"


def test_preflight_gets_no_cors_grant(api: Api):
    status, headers, _ = api.request(
        None,
        method="OPTIONS",
        auth=False,
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert status == 403
    assert not any(h.startswith("access-control-") for h in headers)


def test_extension_origin_and_no_origin_accepted(api: Api):
    for headers in ({"Origin": "moz-extension://3f1c0b2e-1111-4a4a-9b9b-123456789abc"}, {}):
        status, answer_headers, answer = api.request(MEYER_JSON, headers=headers)
        assert status == 200, answer
        assert not any(h.startswith("access-control-") for h in answer_headers)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({**MEYER_JSON, "bogus": 1}).encode(), "unknown field(s): bogus"),
        (json.dumps({**MEYER_JSON, "from": None}).encode(), "'from'"),
        (json.dumps({**MEYER_JSON, "to": [], "cc": []}).encode(), "no recipient"),
        (json.dumps({**MEYER_JSON, "to": ["nobody"]}).encode(), "not a mail address"),
        (json.dumps({**MEYER_JSON, "subject": "a\r\nBcc: x@evil.example"}).encode(), "one line"),
        (json.dumps({**MEYER_JSON, "to": 5}).encode(), "list of addresses"),
    ],
)
def test_bad_requests_answered_in_json(api: Api, body: bytes, fragment: str):
    status, headers, answer = api.request(body)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert answer["error"] == "bad_request"
    assert fragment in answer["message"]


def test_request_size_limited(api: Api):
    big = {**MEYER_JSON, "html": "<p>" + "x" * (5 * 1024 * 1024) + "</p>"}
    status, _, answer = api.request(big)
    assert status == 413 and answer["error"] == "too_large"
    # Still serving afterwards.
    assert api.check(MEYER_JSON)["action"] == "hold"


# -- the override header at the SMTP front --------------------------------------------------


def with_override(content: bytes, token: str) -> bytes:
    head, _, body = content.partition(b"\r\n\r\n")
    return head + f"\r\n{OVERRIDE_HEADER}: {token}".encode() + b"\r\n\r\n" + body


def test_send_anyway_relayed_once_without_the_header(api: Api):
    token = api.check(MEYER_JSON)["override"]
    plain = eml(MEYER_JSON)
    api.send(with_override(plain, token), [MEIER])
    assert wait_for(lambda: len(api.upstream.received) == 1)
    relayed = api.upstream.received[0].content
    assert relayed == plain  # header gone, every other byte as the client sent it
    assert api.held() == []
    assert api.actions() == ["override"]

    # The same token again for the same message: checked as usual, so held.
    api.send(with_override(plain, token), [MEIER])
    held = api.held()
    assert len(held) == 1
    assert held[0].content == plain  # the header never stays with the message either
    assert len(api.upstream.received) == 1
    assert api.actions() == ["override", "hold"]


def test_changed_content_is_checked_as_usual(api: Api):
    token = api.check(MEYER_JSON)["override"]
    changed = {**MEYER_JSON, "text": MEYER_JSON["text"].replace("Dienstag", "Mittwoch")}
    api.send(with_override(eml(changed), token), [MEIER])
    # Another recipient is another message too.
    api.send(with_override(eml(MEYER_JSON), token), [MEIER, "boss@example.org"])
    assert len(api.held()) == 2
    assert api.upstream.received == []
    assert api.actions() == ["hold", "hold"]


def test_forged_token_is_checked_as_usual(api: Api):
    real = api.check(MEYER_JSON)["override"]
    version, issued, nonce, mac = real.split(".")
    forged = ".".join([version, issued, nonce, mac[::-1]])
    api.send(with_override(eml(MEYER_JSON), forged), [MEIER])
    api.send(with_override(eml(MEYER_JSON), "garbage"), [MEIER])
    assert len(api.held()) == 2 and api.upstream.received == []


def test_html_compose_sent_as_text_and_html(api: Api):
    """The compose window knows the HTML; the client sends both; the token still fits."""
    fields = {
        "from": f"Anna Schmidt <{SENDER}>",
        "to": [f"Thomas Meier <{MEIER}>"],
        "subject": "Angebot",
        "html": "<p>Hallo Herr Meyer,</p><p>anbei das&nbsp;Angebot.</p><p>Viele Grüße<br>Anna</p>",
    }
    token = api.check(fields)["override"]
    sent = eml(
        {
            **fields,
            "text": "Hallo Herr Meyer,\r\n\r\nanbei das Angebot.\r\n\r\nViele Grüße\r\nAnna\r\n",
        }
    )
    api.send(with_override(sent, token), [MEIER])
    assert wait_for(lambda: len(api.upstream.received) == 1)
    assert api.upstream.received[0].content == sent


# -- pieces --------------------------------------------------------------------------------


def test_strip_header_keeps_every_other_byte():
    content = (
        b"From: a@example.com\r\nX-Courtesy-Override: v1.1.\r\n abc.def\r\n"
        b"Subject: x\r\n\r\nX-Courtesy-Override: in the body stays\r\n"
    )
    stripped, values = strip_header(content, OVERRIDE_HEADER)
    assert values == ["v1.1. abc.def"]
    assert (
        stripped
        == b"From: a@example.com\r\nSubject: x\r\n\r\nX-Courtesy-Override: in the body stays\r\n"
    )
    unchanged = b"From: a@example.com\nSubject: x\n\nbody\n"
    assert strip_header(unchanged, OVERRIDE_HEADER) == (unchanged, [])
    lf = b"x-courtesy-override: t\nFrom: a@example.com\n\nbody\n"
    assert strip_header(lf, OVERRIDE_HEADER) == (b"From: a@example.com\n\nbody\n", ["t"])


def test_content_keys_from_the_checks_parse_are_the_keys_of_the_message():
    """The API reuses the inspector's parse; the keys must not change by it."""
    built = build_message(MEYER_JSON)
    parsed = parse_message(built.raw, built.sender, built.recipients)
    assert content_keys(built.raw, built.sender, built.recipients, parsed) == content_keys(
        built.raw, built.sender, built.recipients
    )


def test_tokens_expire_and_bind_to_content(tmp_path: Path):
    from courtesy.store.db import open_store

    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    now = [1_800_000_000.0]
    tokens = OverrideTokens(store, b"k" * 32, clock=lambda: now[0])
    built = build_message(MEYER_JSON)
    keys = content_keys(built.raw, built.sender, built.recipients)
    token = tokens.issue(keys[0])
    assert tokens.valid_for(token, keys) is not None
    assert tokens.valid_for(token, ["0" * 64]) is None
    assert OverrideTokens(store, b"other" * 8, clock=lambda: now[0]).valid_for(token, keys) is None
    now[0] += OVERRIDE_LIFETIME.total_seconds() + 1
    assert tokens.valid_for(token, keys) is None
    now[0] -= 2
    assert tokens.redeem(token, keys) is True
    assert tokens.redeem(token, keys) is False
    store.close()


def test_busy_api_port_does_not_stop_the_proxy(
    tmp_path: Path, upstream: RecordingUpstream, caplog: pytest.LogCaptureFixture
):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proxy = ProxyInThread(load_config(write_config(tmp_path, upstream, port)))
        try:
            assert proxy.running.api is None
            assert f"check API cannot listen on 127.0.0.1:{port}" in caplog.text
            with smtplib.SMTP(proxy.host, proxy.port, timeout=10) as client:
                client.sendmail(SENDER, [MEIER], eml(MESSAGES["html only, courteous"]))
            assert wait_for(lambda: len(upstream.received) == 1)
        finally:
            proxy.stop()


def test_api_off(tmp_path: Path, upstream: RecordingUpstream):
    from tests.servers import proxy_config

    proxy = ProxyInThread(proxy_config(tmp_path, upstream, api={"enabled": False}))
    try:
        assert proxy.running.api is None
    finally:
        proxy.stop()


def test_token_survives_folding_and_encoding(tmp_path: Path):
    from email.header import Header

    from courtesy.store.db import open_store

    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    tokens = OverrideTokens(store, b"k" * 32)
    built = build_message(MEYER_JSON)
    keys = content_keys(built.raw, built.sender, built.recipients)
    token = tokens.issue(keys[0])
    # Short enough that the header line is never folded by a client...
    assert len(f"{OVERRIDE_HEADER}: {token}") <= 78
    # ...and still understood when one folds or encodes it anyway.
    cut = len(token) // 2
    folded = f"{OVERRIDE_HEADER}: {token[:cut]}\r\n {token[cut:]}\r\n".encode()
    _, values = strip_header(folded + b"From: a@example.com\r\n\r\nbody\r\n", OVERRIDE_HEADER)
    assert tokens.valid_for(values[0], keys) is not None
    encoded = Header(token, "utf-8").encode()
    assert encoded.startswith("=?utf-8?")
    assert tokens.valid_for(encoded, keys) is not None
    store.close()
