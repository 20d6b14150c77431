"""New text: quotes, quote headers, HTML quote containers and signatures are cut off."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from courtesy.checks.newtext import html_to_text, match_closing, split_html, split_plain


def test_top_post_with_angle_quote_and_wrapped_gmail_header() -> None:
    text = (
        "Hi Jon,\n\nSounds good.\n\nOn Mon, Mar 2, 2026 at 9:00 AM Jon Smith <\n"
        "jon@example.com> wrote:\n\n> Hi Anna,\n> lunch?\n"
    )
    parts = split_plain(text)
    assert parts.text == "Hi Jon,\n\nSounds good."
    assert "lunch?" in parts.quoted


def test_bottom_post_keeps_text_below_quote() -> None:
    text = "Am 02.03.2026 um 10:00 schrieb Thomas:\n> Frage?\n\nHallo Thomas,\n\nja.\n"
    assert split_plain(text).text == "Hallo Thomas,\n\nja."


def test_inline_reply_collects_unquoted_lines() -> None:
    text = "On Monday Ann wrote:\n> one?\nYes.\n> two?\nNo.\n"
    assert split_plain(text).text == "Yes.\nNo."


def test_outlook_headers_de_and_en() -> None:
    de = (
        "Passt.\n\nVon: Thomas Meier\nGesendet: Montag, 2. März 2026\nAn: Anna\nBetreff: X\n\nHallo"
    )
    en = "Ok.\n\n-----Original Message-----\nFrom: Kean, Steve\nSent: Tuesday\n\nHi Anna"
    assert split_plain(de).text == "Passt."
    assert split_plain(en).text == "Ok."
    assert "Hallo" in split_plain(de).quoted


def test_forward_with_note_on_top() -> None:
    text = "FYI, see below.\n\n---------- Forwarded message ---------\nFrom: x@y.z\n\nHello Anna"
    assert split_plain(text).text == "FYI, see below."
    de = "Zur Info.\n\n-------- Weitergeleitete Nachricht --------\nBetreff: X\n\nHallo"
    assert split_plain(de).text == "Zur Info."


def test_other_languages_attribution() -> None:
    for header in (
        "Le lun. 2 mars 2026 à 09:00, Pierre <p@x.fr> a écrit :",
        "El lun, 2 mar 2026 a las 9:00, Ana (<a@x.es>) escribió:",
        "Il giorno lun 2 mar 2026 alle ore 09:00 Marco <m@x.it> ha scritto:",
        "Op ma 2 mrt. 2026 om 09:00 schreef Jan <j@x.nl>:",
    ):
        parts = split_plain(f"Merci.\n\n{header}\n> Bonjour\n")
        assert parts.text == "Merci.", header


def test_lotus_notes_header() -> None:
    text = (
        "ok\n\n\n\nJanel Guerrero\n03/13/2001 08:04 PM\nTo: Steven J Kean\ncc:\n\nSteve, see this"
    )
    assert split_plain(text).text == "ok"


def test_signatures_dash_and_closing() -> None:
    parts = split_plain("Hallo Jan,\n\nanbei.\n\nViele Grüße\nAnna Schmidt\nTel. 030 123\n")
    assert parts.text == "Hallo Jan,\n\nanbei."
    assert parts.closing == "Viele Grüße"
    dashed = split_plain("Hi,\n\nsee attached.\n-- \nAnna Schmidt\nACME Ltd\n")
    assert dashed.text == "Hi,\n\nsee attached."
    assert dashed.signature.startswith("Anna Schmidt")
    mobile = split_plain("Ok, passt.\n\nVon meinem iPhone gesendet\n")
    assert mobile.text == "Ok, passt."


def test_hyphen_list_is_not_a_signature() -> None:
    text = "Hallo Jan,\n\noffen:\n- Budget\n- Termin\n-Raum\n\nGruß\nAnna\n"
    parts = split_plain(text)
    assert "- Termin" in parts.text and "-Raum" in parts.text


def test_thanks_sentence_is_not_a_closing() -> None:
    assert match_closing("Thanks for the file, I will read it tonight.") is None
    assert match_closing("Thanks, Jeff") == "Thanks, Jeff"
    assert match_closing("Mit freundlichen Grüßen") == "Mit freundlichen Grüßen"
    assert match_closing("Best regards,") == "Best regards,"
    assert match_closing("Cordialement") == "Cordialement"
    assert split_plain("Thanks for the quick answer.\n\nAnna").text.startswith("Thanks for")


def test_html_quote_containers() -> None:
    gmail = (
        '<div dir="ltr">Sure.</div><div class="gmail_quote"><div class="gmail_attr">On Mon '
        "Jon wrote:</div><blockquote>Hi Anna</blockquote></div>"
    )
    outlook = (
        '<p>Danke.</p><div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>Von:</b> '
        "Thomas</div><div>Hallo Anna</div>"
    )
    border = (
        "<p>Hallo Thomas,</p><p>ja.</p><div style='border:none;border-top:solid #E1E1E1 1pt'>"
        "<p><b>From:</b> Thomas<br><b>Sent:</b> Monday</p></div><p>Tuesday?</p>"
    )
    apple = '<div>Jeff -<br><br>done.</div><blockquote type="cite">Hi Anna</blockquote>'
    thunderbird = (
        '<p>Hallo zusammen,</p><div class="moz-cite-prefix">Am 02.03.26 schrieb T:</div>'
        '<blockquote type="cite">Wo?</blockquote><div class="moz-signature">-- <br>Anna</div>'
    )
    assert split_html(gmail).text == "Sure."
    assert split_html(outlook).text == "Danke."
    assert split_html(border).text == "Hallo Thomas,\n\nja."
    assert split_html(apple).text == "Jeff -\n\ndone."
    tb = split_html(thunderbird)
    assert tb.text == "Hallo zusammen,"
    assert "Anna" in tb.signature
    assert "Hi Anna" in split_html(gmail).quoted


def test_html_to_text_keeps_lines_and_drops_style() -> None:
    html = "<html><head><style>p{}</style><title>T</title></head><body><p>A &amp; B</p>x<br>y"
    assert html_to_text(html) == "A & B\nx\ny"


def test_bordered_div_without_header_is_kept() -> None:
    html = "<p>Hi,</p><div style='border-top:solid 1px'>Important note</div><p>more</p>"
    assert "Important note" in split_html(html).text


def test_long_lines_are_fast() -> None:
    nasty = ("Am " * 3000 + "schrieb " * 3000 + "On " * 2000 + ":") * 3
    started = time.perf_counter()
    split_plain(nasty + "\n" + "> x\n" * 1000 + ("From: a\n" * 500))
    split_html("<div>" * 3000 + "text" + "<blockquote>" * 3000)
    assert time.perf_counter() - started < 1.0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000))
def test_arbitrary_text_never_raises_and_is_fast(text: str) -> None:
    started = time.perf_counter()
    parts = split_plain(text)
    html_parts = split_html(text)
    assert time.perf_counter() - started < 0.5
    assert isinstance(parts.text, str) and isinstance(html_parts.text, str)
    assert len(parts.text) <= len(text)
