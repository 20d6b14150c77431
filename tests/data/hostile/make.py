"""Write the hostile and broken messages of this folder (``python make.py``).

Each case is a function returning the raw bytes of one ``.eml`` file; the
file name is the function name without the leading ``case_``. Most are
malformed on purpose: broken MIME, bad charsets, binary junk, absurd sizes.
Several are not mail messages at all (``courtesy check`` says so, exit 2).
The files are committed; run this again after changing a case.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent

HEAD = (
    b"From: Anna Schmidt <anna@example.com>\r\n"
    b"To: Thomas Meier <thomas.meier@example.org>\r\n"
    b"Date: Mon, 3 Mar 2025 10:00:00 +0100\r\n"
)
BODY = b"Hallo Herr Meier,\r\n\r\nanbei das Angebot.\r\n\r\nViele Gr=C3=BC=C3=9Fe\r\nAnna\r\n"


def _msg(headers: bytes, body: bytes = b"Hallo Herr Meier,\r\n\r\nanbei das Angebot.\r\n") -> bytes:
    return HEAD + headers + b"\r\n" + body


def case_unknown_charset() -> bytes:
    return _msg(
        b"Subject: =?x-no-such-charset?Q?Angebot_f=FCr_Sie?=\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n",
        "Hallo Herr Meier,\r\n\r\nanbei das Angebot für Sie.\r\n".encode("latin-1"),
    )


def case_charset_lies_utf16() -> bytes:
    return _msg(
        b'Subject: utf-16 claimed\r\nContent-Type: text/plain; charset="utf-16"\r\n',
        b"Hallo Herr Meier,\r\n\r\n\xff\xfe\xd8\x00 odd bytes\r\n",
    )


def case_charset_garbage_param() -> bytes:
    return _msg(
        b'Subject: charset junk\r\nContent-Type: text/plain; charset="\x00\xff";;;=\r\n',
        b"Hallo Herr Meier,\r\n\r\ntext\r\n",
    )


def case_utf7_subject() -> bytes:
    return _msg(
        b"Subject: =?utf-7?Q?+AGQAZQBy- Angebot +ZeVnLGqe-?=\r\n"
        b"Content-Type: text/plain; charset=utf-7\r\n",
        b"Hallo Herr Meier,\r\n\r\n+AFw-+AFw-+AFw-+- broken utf-7 +ZeVnLGqe\r\n",
    )


def case_broken_encoded_words() -> bytes:
    return _msg(
        b"Subject: =?utf-8?B?not base64!!?= =?utf-8?Q?=ZZ=?= =?=?= =?utf-8??x?=\r\n"
        b'To: "=?utf-8?B?////?=" <x@example.org>, =?utf-8?q?a?= <b@c>\r\n',
    )


def case_missing_boundary() -> bytes:
    return _msg(
        b"Subject: no boundary\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n",
        b"--foo\r\nContent-Type: text/plain\r\n\r\nHallo Herr Meier,\r\n--foo--\r\n",
    )


def case_boundary_never_used() -> bytes:
    return _msg(
        b'Subject: unused boundary\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="XYZ"\r\n',
        b"Hallo Herr Meier,\r\n\r\nno parts at all\r\n",
    )


def case_unterminated_multipart() -> bytes:
    return _msg(
        b'Subject: no end\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
        b"--b\r\nContent-Type: text/plain\r\n\r\nHallo Herr Meier,\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Hallo",
    )


def case_empty_boundary() -> bytes:
    return _msg(
        b'Subject: empty boundary\r\nContent-Type: multipart/mixed; boundary=""\r\n',
        b"--\r\n\r\nHallo\r\n----\r\n",
    )


def case_nested_1000() -> bytes:
    depth = 1000
    out = [HEAD, b"Subject: deep\r\nMIME-Version: 1.0\r\n"]
    for level in range(depth):
        out.append(
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
        )
    out.append(b"Content-Type: text/plain\r\n\r\nHallo Herr Meier,\r\n")
    for level in reversed(range(depth)):
        out.append(b"--b%d--\r\n" % level)
    return b"".join(out)


def case_nested_rfc822_300() -> bytes:
    inner = b"From: x@example.org\r\nSubject: inner\r\n\r\nHallo Herr Meier,\r\n"
    for _ in range(300):
        inner = b"From: x@example.org\r\nContent-Type: message/rfc822\r\n\r\n" + inner
    return HEAD + b"Subject: rfc822 nest\r\n" + inner


def case_many_parts_5000() -> bytes:
    parts = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(5000))
    return _msg(
        b'Subject: many parts\r\nContent-Type: multipart/mixed; boundary="p"\r\n',
        parts + b"--p--\r\n",
    )


def case_nul_bytes() -> bytes:
    return _msg(
        b"Subject: nul\x00in\x00subject\r\nX-Nul: \x00\x00\x00\r\n",
        b"Hallo Herr\x00 Meier,\r\n\x00\x00\x00\r\nangebot\x00\r\n",
    )


def case_header_line_1mb() -> bytes:
    return _msg(b"Subject: long\r\nX-Long: " + b"A" * (1024 * 1024) + b"\r\n")


def case_subject_1mb_folded() -> bytes:
    return _msg(b"Subject: " + b"word \r\n " * (1024 * 1024 // 8) + b"end\r\n")


def case_body_line_1mb() -> bytes:
    return _msg(
        b"Subject: long body line\r\n", b"Hallo Herr Meier, " + b"x" * (1024 * 1024) + b"\r\n"
    )


def case_invalid_base64() -> bytes:
    return _msg(
        b"Subject: bad base64\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n",
        b"SGFsbG8gSGVyciBNZWllciwK!!!***===\r\n====\r\nnot base64 at all \xff\xfe\r\n",
    )


def case_invalid_quoted_printable() -> bytes:
    return _msg(
        b"Subject: bad qp\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Hallo Herr Meier=\r\n=ZZ=G1=\r\n=" + b"=" * 1000 + b"\r\n",
    )


def case_unknown_transfer_encoding() -> bytes:
    return _msg(
        b"Subject: x-uuencode\r\nContent-Transfer-Encoding: x-uuencode\r\n",
        b"begin 644 a\r\n#0V%T\r\n`\r\nend\r\n",
    )


def case_recipients_100000() -> bytes:
    to = b", ".join(b"p%d@e.x" % i for i in range(100_000))
    return (
        b"From: anna@example.com\r\nTo: "
        + to
        + b"\r\nSubject: everybody\r\n\r\nHallo zusammen,\r\n"
    )


def case_cc_10000_named() -> bytes:
    cc = b",\r\n ".join(
        b'"Person, No %d" <n%d@firm%d.example>' % (i, i, i % 50) for i in range(10_000)
    )
    return _msg(b"Subject: cc\r\nCc: " + cc + b"\r\n")


def case_unterminated_headers() -> bytes:
    return HEAD + b"Subject: no blank line\r\nX-A: b"


def case_headers_only() -> bytes:
    return HEAD + b"Subject: headers only\r\n"


def case_header_without_colon() -> bytes:
    return (
        HEAD
        + b"Subject: broken\r\nThis is not a header\r\nX-After: yes\r\n\r\nHallo Herr Meier,\r\n"
    )


def case_binary_junk() -> bytes:
    # Deterministic junk (a linear congruential generator), not a message at all.
    state = 12345
    out = bytearray()
    for _ in range(64 * 1024):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(state >> 16 & 0xFF)
    return bytes(out)


def case_binary_after_headers() -> bytes:
    return _msg(b"Subject: binary body\r\n", bytes(range(256)) * 64)


def case_empty_file() -> bytes:
    return b""


def case_only_newlines() -> bytes:
    return b"\r\n" * 1000


def case_bare_cr_lines() -> bytes:
    return (HEAD + b"Subject: bare CR\r\n\r\nHallo Herr Meier,\r\rline\rline\r").replace(
        b"\r\n", b"\r"
    )


def case_bare_lf_lines() -> bytes:
    return (HEAD + b"Subject: bare LF\r\n\r\n" + BODY).replace(b"\r\n", b"\n")


def case_dot_lines() -> bytes:
    return _msg(b"Subject: dots\r\n", b".\r\n..\r\n. \r\nHallo Herr Meier,\r\n.\r\n.x\r\n")


def case_html_only_malformed() -> bytes:
    html = b"<html><body><p>Hallo Herr Meier,<blockquote><div class=gmail_quote>" * 2000 + b"<!--"
    return _msg(b"Subject: html\r\nContent-Type: text/html; charset=utf-8\r\n", html)


def case_html_deep_nesting() -> bytes:
    html = b"<div>" * 50_000 + b"Hallo Herr Meier," + b"</div>" * 50_000
    return _msg(b"Subject: deep html\r\nContent-Type: text/html\r\n", html)


def case_html_bad_charrefs() -> bytes:
    html = b"<p>Hallo &#xFFFFFFFF; &#99999999999; &#0; &#xD800; &bogus; &#; &amp Herr Meier,</p><![CDATA[x<"
    return _msg(b"Subject: charrefs\r\nContent-Type: text/html\r\n", html)


def case_attachment_only() -> bytes:
    payload = base64.encodebytes(b"%PDF-1.4 junk" * 100)
    return _msg(
        b'Subject: attachment only\r\nContent-Type: application/pdf; name="a.pdf"\r\n'
        b"Content-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n",
        payload.replace(b"\n", b"\r\n"),
    )


def case_addresses_malformed() -> bytes:
    return (
        b'From: "unterminated <anna@example.com\r\n'
        b'To: <<<>>>, @@@, a@, @b, <a@b@c>, (comment (nested (deep))) x@y, "\\" <q@r>\r\n'
        b"Cc: ;;;,,,:::, group: ; other group: a@b, c@d;\r\n"
        b"Subject: bad addresses\r\n\r\nHallo Herr Meier,\r\n"
    )


def case_comment_bomb_address() -> bytes:
    return (
        b"From: anna@example.com\r\nTo: " + b"(" * 5000 + b"x@y" + b")" * 5000 + b"\r\n"
        b"Subject: comments\r\n\r\nHallo,\r\n"
    )


def case_message_id_junk() -> bytes:
    return _msg(
        b"Subject: ids\r\nMessage-ID: <" + b"<" * 10_000 + b">\r\n"
        b"In-Reply-To: " + b"<a@b> " * 20_000 + b"\r\nReferences: <\x00@\xff>\r\n"
    )


def case_latin1_raw_headers() -> bytes:
    return _msg(
        "Subject: Grüße aus Köln\r\nX-Name: Müller\r\n".encode("latin-1"),
        "Hallo Herr Müller,\r\n".encode("latin-1"),
    )


def case_quote_lines_100000() -> bytes:
    return _msg(b"Subject: quotes\r\n", b"Hallo Herr Meier,\r\n" + b"> On x wrote:\r\n" * 100_000)


def case_attribution_like_lines() -> bytes:
    line = (
        b"On " + b"Mon, 1.2.2025 " * 40 + b"12:00 " + b"a" * 300 + b" wrote" + b" x" * 100 + b"\r\n"
    )
    return _msg(b"Subject: attributions\r\n", b"Hallo Herr Meier,\r\n" + line * 500)


def case_greeting_like_lines() -> bytes:
    line = b"Hallo Herr Dr. Prof. " + b"Meier-" * 200 + b"M\xc3\xbcller,\r\n"
    return _msg(b"Subject: greetings\r\nContent-Type: text/plain; charset=utf-8\r\n", line * 500)


def case_from_mbox_line() -> bytes:
    return b"From anna@example.com Mon Mar  3 10:00:00 2025\r\n" + _msg(b"Subject: mbox\r\n")


CASES: dict[str, Callable[[], bytes]] = {
    name.removeprefix("case_"): function
    for name, function in sorted(globals().items())
    if name.startswith("case_") and callable(function)
}


def main() -> int:
    for old in HERE.glob("*.eml"):
        old.unlink()
    for name, make in CASES.items():
        (HERE / f"{name}.eml").write_bytes(make())
    print(f"wrote {len(CASES)} cases to {HERE.name}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
