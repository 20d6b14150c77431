"""The *new text* of a message: what the author wrote, without quotes and signature.

Every check reads the new text, not what it quotes, so this module decides
where the author's words end. It works line by line with short, anchored
patterns (bounded line length, no nested quantifiers), so arbitrary input
costs linear time.

Quote starts recognised in plain text: ``>`` lines; attribution lines in
de/en/fr/es/it/nl and the other languages of mail-parser-reply ("Am … schrieb
…:", "On … wrote:", also wrapped over two lines); separators
("-----Original Message-----", "-----Ursprüngliche Nachricht-----",
"Begin forwarded message:", Lotus Notes "Forwarded by"); Outlook header
blocks ("From: … Sent: …", "Von: … Gesendet: …"); Lotus Notes headers (a
name, a date line, "To:"). HTML is turned into text with the stdlib HTML
parser, dropping ``<blockquote>`` and the quote containers of Gmail, Outlook,
Apple Mail and Thunderbird. Signatures: "-- ", "Sent from my …", and a closing
formula ("Viele Grüße", "Best regards") followed by a short name block.

mail-parser-reply's own splitter is not used on whole bodies: its patterns
backtrack heavily on long lines, and it takes hyphen lists for signatures. Its
per-language attribution patterns are used, one short line at a time.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser

from mailparser_reply.constants import MAIL_LANGUAGES

# Bounds that keep the work linear on arbitrary input.
_MAX_TEXT = 256 * 1024
_MAX_LINE = 400


@dataclass(frozen=True, slots=True)
class NewText:
    """A body split into what the author wrote, what it quotes and the signature.

    ``closing`` is the closing formula line ("Viele Grüße,") when one was
    found; it is the first line of ``signature``.
    """

    text: str
    quoted: str
    signature: str
    closing: str = ""


# --- closing formulas (also used by closing.py) -------------------------------
_CLOSINGS = (
    # de
    "viele grüße",
    "viele grüsse",
    "viele gruesse",
    "vielen gruß",
    "liebe grüße",
    "liebe grüsse",
    "liebe gruesse",
    "lieben gruß",
    "lieben gruss",
    "beste grüße",
    "beste grüsse",
    "besten gruß",
    "besten gruss",
    "herzliche grüße",
    "herzliche grüsse",
    "herzlichen gruß",
    "herzlichen gruss",
    "freundliche grüße",
    "freundliche grüsse",
    "freundlichen gruß",
    "mit freundlichen grüßen",
    "mit freundlichen grüssen",
    "mit freundlichen gruessen",
    "mit besten grüßen",
    "mit besten grüssen",
    "mit herzlichen grüßen",
    "mit lieben grüßen",
    "mit freundlichem gruß",
    "mit freundlichem gruss",
    "schöne grüße",
    "schöne grüsse",
    "schönen gruß",
    "schönen gruss",
    "sonnige grüße",
    "gruß",
    "gruss",
    "grüße",
    "grüsse",
    "gruesse",
    "grüßle",
    "grüssle",
    "mfg",
    "lg",
    "vg",
    "bg",
    "tschüss",
    "tschüs",
    "ciao",
    "bis bald",
    "bis dann",
    "bis später",
    "danke und gruß",
    "danke und grüße",
    "danke",
    "vielen dank",
    "besten dank",
    "herzlichen dank",
    "herzlichst",
    "alles gute",
    "beste wünsche",
    "hochachtungsvoll",
    "servus",
    "ciao ciao",
    # en
    "best regards",
    "kind regards",
    "warm regards",
    "warmest regards",
    "kindest regards",
    "with best regards",
    "with kind regards",
    "many regards",
    "regards",
    "best wishes",
    "all the best",
    "all best",
    "best",
    "cheers",
    "thanks",
    "thank you",
    "many thanks",
    "thanks again",
    "thanks in advance",
    "thanks and regards",
    "thanks & regards",
    "thx",
    "sincerely",
    "yours sincerely",
    "sincerely yours",
    "yours truly",
    "yours faithfully",
    "faithfully",
    "take care",
    "talk soon",
    "rgds",
    "br",
    "brgds",
    "ta",
    "love",
    # fr
    "cordialement",
    "bien cordialement",
    "bien à vous",
    "salutations",
    "meilleures salutations",
    "sincères salutations",
    "amitiés",
    "amicalement",
    "bises",
    "à bientôt",
    "merci",
    "merci beaucoup",
    "bonne journée",
    # es
    "saludos",
    "un saludo",
    "saludos cordiales",
    "atentamente",
    "cordialmente",
    "un abrazo",
    "gracias",
    "muchas gracias",
    "abrazos",
    # it
    "cordiali saluti",
    "saluti",
    "distinti saluti",
    "un saluto",
    "a presto",
    "grazie",
    "grazie mille",
    "un caro saluto",
    # nl
    "met vriendelijke groet",
    "met vriendelijke groeten",
    "vriendelijke groet",
    "vriendelijke groeten",
    "hartelijke groet",
    "hartelijke groeten",
    "groeten",
    "groet",
    "mvg",
    "gr",
    "dank je",
    "dank u",
    "bedankt",
    "tot ziens",
)
_CLOSING_RE = re.compile(
    r"(?P<formula>"
    + "|".join(re.escape(c) for c in sorted(_CLOSINGS, key=len, reverse=True))
    + r")(?![\w-])(?P<rest>[^\n]{0,60})",
    re.IGNORECASE,
)
_CLOSING_TAIL_RE = re.compile(
    r"[\s,.!:;\-–—/]*"  # punctuation after the formula
    r"(?:(?:aus|from|de|da|van|und|and|&|an|to)\s+)?"  # "Grüße aus Berlin", "Thanks and ..."
    r"(?:[\w.'’-]{1,30}[\s,.!]{0,3}){0,4}$"  # up to four more short words (a name, a place)
)
_LOWER_AFTER_RE = re.compile(r"[\s,]*[a-zäöüß]")


def match_closing(line: str) -> str | None:
    """The closing formula a line consists of ("Viele Grüße,", "Thanks, Jeff"), or None.

    The line must be short and hold only the formula, punctuation and a few
    more words such as a name: "Thanks for the file." is a sentence, not a
    closing.
    """
    stripped = line.strip().lstrip("-–—*_ ").rstrip()
    if not stripped or len(stripped) > 80:
        return None
    return _match_closing(stripped)


@lru_cache(maxsize=4096)
def _match_closing(stripped: str) -> str | None:
    """match_closing on a stripped line of at most 80 characters.

    Cached: the lines it reads end a message (closing, name, title, phone), and a
    writer's signature block recurs in every mail.
    """
    m = _CLOSING_RE.match(stripped)
    if m is None:
        return None
    rest = m.group("rest")
    if not rest.strip(" ,.!:;-–—"):
        return stripped
    low_rest = rest.strip(" ,.!:;-–—").casefold()
    formula = m.group("formula").casefold()
    # "Thanks for ...", "Danke für ...", "Gruß an alle" is still a closing;
    # a lower-case word after a thank-you formula makes a sentence.
    if (
        formula in _THANKS
        and _LOWER_AFTER_RE.match(rest)
        and not low_rest.startswith(("und ", "and ", "& ", "again", "in advance", "so much"))
    ):
        return None
    if "?" in rest:
        return None
    if _CLOSING_TAIL_RE.match(rest) is None:
        return None
    return stripped


_THANKS = frozenset(
    (
        "thanks",
        "thank you",
        "many thanks",
        "thx",
        "danke",
        "vielen dank",
        "besten dank",
        "herzlichen dank",
        "merci",
        "merci beaucoup",
        "gracias",
        "muchas gracias",
        "grazie",
        "grazie mille",
        "dank je",
        "dank u",
        "bedankt",
        "ta",
        "best",
        "love",
        "cheers",
        "br",
        "gr",
        "bg",
        "lg",
        "vg",
        "regards",
        "ciao",
        "servus",
        "salutations",
        "bises",
        "saludos",
        "saluti",
        "groeten",
        "groet",
        "gruß",
        "gruss",
        "grüße",
        "grüsse",
        "gruesse",
        "all best",
        "alles gute",
        "take care",
        "talk soon",
        "sincerely",
        "faithfully",
    )
)


# --- quote headers -------------------------------------------------------------
_SEPARATOR_RE = re.compile(
    r"[-_=*~ ]{2,}\s?(?:original message|original-nachricht|ursprüngliche nachricht"
    r"|urspr.ngliche nachricht|message d'origine|message original|mensaje original"
    r"|messaggio originale|oorspronkelijk bericht|oorspronkelijk bericht|forwarded message"
    r"|weitergeleitete nachricht|message transféré|mensaje reenviado|messaggio inoltrato"
    r"|doorgestuurd bericht|forwarded by|weitergeleitet von|original text|reply message"
    r"|forward message)",
    re.IGNORECASE,
)
_FORWARD_INTRO_RE = re.compile(
    r"(?:begin forwarded message|anfang der weitergeleiteten nachricht"
    r"|début du message réexpédié|inicio del mensaje reenviado|inizio messaggio inoltrato"
    r"|begin doorgestuurd bericht)\s?:",
    re.IGNORECASE,
)
_UNDERSCORES_RE = re.compile(r"\s{0,8}_{10,}\s*$")
_HEADER_KEYS = (
    "from|von|de|da|van|sent|gesendet|date|datum|envoyé|enviado|inviato|verzonden|to|an|à|a"
    "|para|aan|subject|betreff|objet|asunto|oggetto|onderwerp|cc|kopie|importance|wichtigkeit"
    "|reply-to|antwort an"
)
_HEADER_LINE_RE = re.compile(r"\s{0,8}[*>]{0,3}\s{0,2}(" + _HEADER_KEYS + r")\s{0,3}\*{0,2}:", re.I)
_FROM_KEYS = frozenset(("from", "von", "de", "da", "van"))
_AFTER_FROM_KEYS = frozenset(
    (
        "sent",
        "gesendet",
        "date",
        "datum",
        "envoyé",
        "enviado",
        "inviato",
        "verzonden",
        "to",
        "an",
        "à",
        "a",
        "para",
        "aan",
        "subject",
        "betreff",
        "objet",
        "asunto",
        "oggetto",
        "onderwerp",
        "cc",
    )
)
# "On … wrote:" and relatives, checked one line (or two joined) at a time.
_ATTRIBUTION_END_RE = re.compile(
    r"(?:wrote|writes|schrieb|schreibt|a écrit|a ecrit|escribió|escribio|ha scritto|scrive"
    r"|schreef|heeft geschreven|menulis[^:]{0,40}|napisał|skrev|kirjoitti|написал|meinte"
    r"|sagte|said|schrieb in nachricht[^:]{0,80})"
    r"[^:]{0,80}(?::|\.\.\.|…)\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START_RE = re.compile(
    r"\s{0,4}(?:on|am|le|el|il|op|den|dne|w dniu|dnia)\s", re.IGNORECASE
)
_LANGUAGE_WROTE = tuple(
    re.compile(spec["wrote_header"], re.IGNORECASE)
    for spec in MAIL_LANGUAGES.values()
    if isinstance(spec.get("wrote_header"), str)
)
# "Sent from my iPhone", "Von meinem iPhone gesendet", "Get Outlook for iOS".
_SENT_FROM_RE = re.compile(
    r"\s{0,4}(?:sent from my|sent from (?:mail|outlook|yahoo)|get outlook for|von meinem \S{1,30}"
    r" gesendet|gesendet von|gesendet mit|envoyé de mon|envoyé depuis|enviado desde"
    r"|inviato da|verzonden vanaf|verstuurd vanaf)",
    re.IGNORECASE,
)
_DATE_TIME_RE = re.compile(
    r".{0,60}\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b.{0,12}\d{1,2}:\d{2}", re.IGNORECASE
)
_DATED_RE = re.compile(
    r"\s{0,4}\w{1,4}\s{1,3}(?:\w{2,10}[.,]?\s{1,3})?\d{1,4}[.,/ -]{1,3}\w{1,10}[.,/ -]{1,3}\d{2,4}"
    r"[^\n]{0,40}\d{1,2}:\d{2}"
)
_ID_ATTRIBUTION_RE = re.compile(
    r"(?:in\s)?<?[^\s<>@]{1,200}@[^\s<>@]{1,200}>?(?:\.\.\.|…|:)$", re.IGNORECASE
)
_QUOTED_RE = re.compile(r"\s{0,4}>")


def _is_attribution(line: str, nxt: str = "") -> int:
    """How many lines (1 or 2) an attribution line "On … wrote:" spans, or 0."""
    stripped = line.strip()
    if not stripped or len(stripped) > _MAX_LINE:
        return 0
    if stripped.endswith((":", "...", "…")) and _attribution_one(stripped):
        return 1
    if _ID_ATTRIBUTION_RE.match(stripped):
        return 1  # "<id@host>..." or "In <id@host>, Ann wrote:" cut short
    if _ATTRIBUTION_START_RE.match(stripped) and _DATED_RE.match(stripped):
        # "On Mon, 20 Mar 2002 23:10:02 +0200, "Ann"": the verb fell off or wrapped.
        tail = nxt.strip()
        if tail.endswith(":") and len(tail) <= 120 and ("@" in tail or _attribution_one(tail)):
            return 2
        return 1
    # A Gmail header wrapped over two lines: "On Mon, … Doe <" / "jd@x.com> wrote:".
    joined = stripped + " " + nxt.strip()
    if (
        nxt.strip().endswith(":")
        and len(joined) <= _MAX_LINE
        and _ATTRIBUTION_START_RE.match(stripped)
        and _attribution_one(joined)
    ):
        return 2
    return 0


def _attribution_one(text: str) -> bool:
    if _ATTRIBUTION_END_RE.search(text) is not None:
        return True
    return any(p.match(text) for p in _LANGUAGE_WROTE)


def _header_key(line: str) -> str | None:
    m = _HEADER_LINE_RE.match(line[:_MAX_LINE])
    return m.group(1).casefold() if m else None


def _is_header_block(lines: Sequence[str], i: int) -> bool:
    """An Outlook-style block: "From:" then "Sent:"/"To:"/"Subject:" within a few lines."""
    key = _header_key(lines[i])
    if key not in _FROM_KEYS and key not in ("sent", "gesendet", "date", "datum"):
        return False
    found = 0
    for j in range(i + 1, min(len(lines), i + 6)):
        if not lines[j].strip():
            continue
        other = _header_key(lines[j])
        if other in _AFTER_FROM_KEYS or other in _FROM_KEYS:
            found += 1
            if found >= 1 and key in _FROM_KEYS:
                return True
            if found >= 2:
                return True
    return False


def _is_notes_header(lines: Sequence[str], i: int) -> bool:
    """Lotus Notes: a name line, a date-and-time line, then "To:" (``i`` is the name line)."""
    line = lines[i].strip()
    if not line or len(line) > 80 or i + 2 >= len(lines):
        return False
    date_line = lines[i + 1].strip()
    if not date_line or len(date_line) > 60 or not _DATE_TIME_RE.match(date_line):
        return False
    return _header_key(lines[i + 2]) in ("to", "an")


def _quote_start(lines: Sequence[str], i: int) -> int:
    """Lines taken by a quote header starting at ``lines[i]`` (0 when it is none)."""
    line = lines[i]
    if len(line) > _MAX_LINE:
        return 0
    if _SEPARATOR_RE.match(line) or _FORWARD_INTRO_RE.match(line):
        return 1
    if _UNDERSCORES_RE.match(line):
        for j in range(i + 1, min(len(lines), i + 3)):
            if _header_key(lines[j]) in _FROM_KEYS:
                return 1
        return 0
    if _is_header_block(lines, i):
        return 1
    if _is_notes_header(lines, i):
        return 1
    return 0


# --- plain text -----------------------------------------------------------------


def _normalise(text: str) -> str:
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT]
    return (
        text.replace("\r\n", "\n")
        .replace("\r", "\n")
        .replace("\u00a0", " ")
        .replace("\u200b", "")
        .replace("\ufeff", "")
    )


# First characters after which split_plain must look closer: a quote mark, a
# separator character or a blank.
_CLOSER_STARTS = frozenset(">-_=*~ \t")
_ELLIPSES = ("...", "…")


# A line that starts with one of _CLOSER_STARTS, and a line that ends in an
# ellipsis (blanks after it allowed, as line.rstrip() drops them).
_CLOSER_LINE_RE = re.compile(r"\n[" + re.escape("".join(sorted(_CLOSER_STARTS))) + "]")
_ELLIPSIS_END_RE = re.compile(r"(?:\.\.\.|…)[^\S\n]*(?:\n|\Z)")


def _all_prose(text: str) -> bool:
    """Whether every line of the normalised ``text`` is the author's own, by its first test.

    That test in _split_quotes takes a line whole when it does not start with
    one of _CLOSER_STARTS, neither it nor the next line holds a ":", it holds
    no "@" and it does not end in an ellipsis. When no line of the text can
    fail it, the split has nothing to do: a few scans of the whole text
    decide that instead of several tests per line.
    """
    return not (
        ":" in text
        or "@" in text
        or text[:1] in _CLOSER_STARTS
        or _CLOSER_LINE_RE.search(text) is not None
        or (("..." in text or "…" in text) and _ELLIPSIS_END_RE.search(text) is not None)
    )


def split_plain(text: str) -> NewText:
    """Split a plain-text body into new text, quoted text and signature."""
    normal = _normalise(text)
    lines = normal.split("\n")
    quoted: list[str]
    if _all_prose(normal):
        # Ordinary prose (the usual new mail): every line is the author's own.
        own, quoted = lines, []
    else:
        own, quoted = _split_quotes(lines)
    body, signature, closing = _split_signature(own)
    return NewText(
        text=_strip_blank(body),
        quoted="\n".join(quoted).strip(),
        signature="\n".join(signature).strip(),
        closing=closing,
    )


def _split_quotes(lines: list[str]) -> tuple[list[str], list[str]]:
    """The author's own lines and the quoted lines, in their order."""
    own: list[str] = []
    quoted: list[str] = []
    n = len(lines)
    i = 0
    cut = n
    while i < n:
        line = lines[i]
        head = line[:1]
        if (
            head not in _CLOSER_STARTS
            and ":" not in line
            and "@" not in line
            and (i + 1 >= n or ":" not in lines[i + 1])
            and not line.rstrip().endswith(_ELLIPSES)
        ):
            # Blank, or prose: no quote-header rule can match here. Every
            # attribution and header rule needs a ":" or "@" on this line or a
            # ":" on the next (a time, a "wrote:"), a trailing ellipsis, or a
            # line that starts with a separator character or blank. Testing for
            # them first makes the split several times faster.
            own.append(line)
            i += 1
            continue
        if head == ">" or (head in " \t" and head and _QUOTED_RE.match(line)):
            quoted.append(line.lstrip()[1:].lstrip(" >"))
            i += 1
            continue
        if line.strip():
            nxt = lines[i + 1] if i + 1 < n else ""
            span = _is_attribution(line, nxt)
            if span:
                # It introduces a ">" quote, or stands alone (quote stripped): either
                # way the line itself is not the author's text. Text right below it,
                # without a blank line, is the quote with its ">" marks lost.
                quoted.extend(lines[i : i + span])
                i += span
                end = i
                while end < n and end - i < 15 and lines[end].strip():
                    if _QUOTED_RE.match(lines[end]):
                        break
                    end += 1
                if end < n and end - i < 15 and not _QUOTED_RE.match(lines[end]):
                    quoted.extend(lines[i:end])
                    i = end
                continue
            if _quote_start(lines, i):
                cut = i
                break
        own.append(line)
        i += 1
    if cut < n:
        quoted.extend(lines[cut:])
    return own, quoted


# How the _SENT_FROM_RE phrases begin (the same case folding applies).
_SENT_FROM_HEAD_RE = re.compile(r"sen|get|ges|von|ver|env|inv", re.IGNORECASE)


@lru_cache(maxsize=4096)
def _may_cut(head: str) -> bool:
    """Whether a line starting with ``head`` (3 characters) can be a "-- " or "Sent from" line.

    Any other line (most text, an empty line) fails every test in the first loop
    of _split_signature, which can then pass it over.
    """
    if not head:
        return False
    first = head[0]
    return first.isspace() or first in "-—_" or _SENT_FROM_HEAD_RE.match(head) is not None


# First characters of a line that _may_cut always refuses: ASCII letters and
# digits that begin none of the "Sent from" phrases. Testing them inline spares
# most lines a call; anything else (a blank, a dash, a non-ASCII letter that may
# fold to one of those initials) still goes through _may_cut.
_PLAIN_STARTS = frozenset(
    c for c in string.ascii_letters + string.digits if c.lower() not in "sgvei"
)


def _split_signature(lines: list[str]) -> tuple[list[str], list[str], str]:
    """Cut the signature off the author's lines: "-- ", "Sent from …", closing + name."""
    first_text = next((k for k, line in enumerate(lines) if line.strip()), len(lines))
    for k, line in enumerate(lines):
        if line[:1] in _PLAIN_STARTS or not _may_cut(line[:3]):
            continue
        stripped = line.strip()
        if k > first_text and stripped in ("--", "-- ", "—", "__"):
            return lines[:k], lines[k + 1 :], ""
        if stripped == "--" or line.rstrip("\n") == "-- ":
            return lines[:k], lines[k + 1 :], ""
        if k > first_text and _SENT_FROM_RE.match(line[:_MAX_LINE]):
            return lines[:k], lines[k:], ""
    # A closing formula followed only by a short block (name, title, phone ...):
    # one of the last nine non-blank lines.
    last: list[int] = []
    for k in range(len(lines) - 1, -1, -1):
        if lines[k].strip():
            last.append(k)
            if len(last) > 8:
                break
    for k in reversed(last):
        if k == first_text:
            continue
        closing = match_closing(lines[k])
        if closing is None:
            continue
        return lines[:k], lines[k:], closing
    return lines, [], ""


def _strip_blank(lines: list[str]) -> str:
    return "\n".join(map(str.rstrip, lines)).strip("\n").strip()


# --- HTML -------------------------------------------------------------------------
def _tags(text: str) -> frozenset[str]:
    return frozenset(text.split())


_BLOCK_TAGS = _tags(
    "p div br li ul ol tr table h1 h2 h3 h4 h5 h6 hr pre section article header footer"
    " blockquote dd dt dl address center form"
)
_SKIP_TAGS = frozenset(("script", "style", "head", "title", "template", "noscript"))
_VOID_TAGS = _tags("br hr img meta link input area base col embed param source wbr")
_QUOTE_CLASSES = (
    "gmail_quote",
    "moz-cite-prefix",
    "gmail_extra",
    "yahoo_quoted",
    "protonmail_quote",
    "zmail_extra",
    "ms-outlook-mobile-reference-message",
)
_SIGNATURE_CLASSES = ("gmail_signature", "moz-signature", "signature")
_CUT_IDS = (
    "divrplyfwdmsg",
    "appendonsend",
    "x_divrplyfwdmsg",
    "mail-editor-reference-message-container",
)
_BORDER_TOP_RE = re.compile(r"border-top\s*:\s*solid", re.IGNORECASE)


class _HtmlSplitter(HTMLParser):
    """Collects text into new / quoted / signature buffers while walking the tags.

    ``everything`` gets every piece too, in document order: the whole body as
    text, from the same reading.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.new: list[str] = []
        self.quoted: list[str] = []
        self.signature: list[str] = []
        self.everything: list[str] = []
        # (tag, depth of that tag when the container opened, buffer name)
        self._containers: list[tuple[str, int, str]] = []
        self._depth: dict[str, int] = {}
        self._skip: tuple[str, int] | None = None
        self._cut = False
        self._pre = 0
        self._outlook: list[str] = []
        # Open "outlook" containers, counted: scanning the stack for each piece of
        # text was quadratic on unclosed containers (tests/data/hostile).
        self._outlook_open = 0

    def _line_break(self) -> None:
        self._target().append("\n")
        self.everything.append("\n")

    def _target(self) -> list[str]:
        if self._cut:
            return self.quoted
        if self._containers:
            kind = self._containers[-1][2]
            return self.quoted if kind == "quote" else self.signature
        return self.new

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip is not None:
            if tag == self._skip[0]:
                self._depth[tag] = self._depth.get(tag, 0) + 1
            return
        if tag in _SKIP_TAGS:
            depth = self._depth.get(tag, 0)
            self._depth[tag] = depth + 1
            self._skip = (tag, depth)
            return
        if tag in _BLOCK_TAGS:
            self._line_break()
        if tag in _VOID_TAGS:
            return
        depth = self._depth.get(tag, 0)
        self._depth[tag] = depth + 1
        if tag == "pre":
            self._pre += 1
        kind = self._classify(tag, attrs)
        if kind == "cut":
            self._cut = True
        elif kind is not None:
            self._containers.append((tag, depth, kind))
            if kind == "outlook":
                self._outlook_open += 1

    def _classify(self, tag: str, attrs: list[tuple[str, str | None]]) -> str | None:
        if tag == "blockquote":
            return "quote"
        cls = ""
        ident = ""
        style = ""
        for name, value in attrs:
            if value is None:
                continue
            if name == "class":
                cls = value.casefold()
            elif name == "id":
                ident = value.casefold()
            elif name == "style":
                style = value
        if ident in _CUT_IDS or ident.startswith("divrplyfwdmsg"):
            return "cut"
        if cls:
            if any(c in cls for c in _QUOTE_CLASSES):
                return "quote"
            if any(c in cls.split() for c in _SIGNATURE_CLASSES):
                return "signature"
        if tag == "div" and style and _BORDER_TOP_RE.search(style[:500]):
            # Outlook's reply header: a bordered div holding "From: … Sent: …".
            return "outlook"
        return None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip is not None:
            return
        if tag in _BLOCK_TAGS:
            self._line_break()
        if tag not in _VOID_TAGS:
            kind = self._classify(tag, attrs)
            if kind == "cut":
                self._cut = True

    def handle_endtag(self, tag: str) -> None:
        depth = self._depth.get(tag, 0)
        if depth == 0:
            if tag in _BLOCK_TAGS:
                self._line_break()
            return
        self._depth[tag] = depth - 1
        if self._skip is not None:
            if tag == self._skip[0] and depth - 1 == self._skip[1]:
                self._skip = None
            return
        if tag == "pre" and self._pre:
            self._pre -= 1
        if self._containers:
            ctag, cdepth, kind = self._containers[-1]
            if ctag == tag and cdepth == depth - 1:
                self._containers.pop()
                if kind == "outlook":
                    self._outlook_open -= 1
                    self._outlook_block_closed()
        if tag in _BLOCK_TAGS:
            self._line_break()

    def _outlook_block_closed(self) -> None:
        """A bordered div that holds a "From:" header: the rest is the quoted mail."""
        text = "".join(self._outlook)
        self._outlook = []
        if _header_key(text.lstrip()) in _FROM_KEYS:
            self.quoted.append(text)
            self._cut = True
        else:
            self._target().append(text)

    def handle_data(self, data: str) -> None:
        if self._skip is not None:
            return
        text = data if self._pre else _collapse(data)
        self.everything.append(text)
        if self._outlook_open:
            self._outlook.append(text)
            return
        self._target().append(text)


_SPACE_RE = re.compile(r"[ \t\r\n\f\v]+")


def _collapse(data: str) -> str:
    return _SPACE_RE.sub(" ", data)


def _read_html(html: str) -> _HtmlSplitter:
    parser = _HtmlSplitter()
    try:
        parser.feed(html[:_MAX_TEXT])
        parser.close()
    except (AssertionError, ValueError):  # malformed markup: keep what was read
        pass
    return parser


def html_to_text(html: str) -> str:
    """HTML as plain text with its line structure, everything included."""
    return _tidy("".join(_read_html(html).everything))


def split_html(html: str) -> NewText:
    """Split an HTML body: quote containers and signatures go to their own buffers."""
    return _split_read(_read_html(html))


def _split_read(parser: _HtmlSplitter) -> NewText:
    new = _tidy("".join(parser.new))
    # The converted text may still hold plain-text quotes (">" or "From: … Sent:").
    plain = split_plain(new)
    signature = _tidy("".join(parser.signature))
    return NewText(
        text=plain.text,
        quoted="\n".join(s for s in (plain.quoted, _tidy("".join(parser.quoted))) if s),
        signature="\n".join(s for s in (plain.signature, signature) if s),
        closing=plain.closing,
    )


def _tidy(text: str) -> str:
    lines = [line.strip() for line in text.split("\n")]
    out: list[str] = []
    blank = 0
    for line in lines:
        if not line:
            blank += 1
            if blank > 1:
                continue
        else:
            blank = 0
        out.append(line)
    return "\n".join(out).strip()


def extract(text: str, html: str | None = None) -> NewText:
    """The new text of a body: from the plain part when there is one, else from HTML."""
    return read_body(text, html)[0]


def read_body(text: str, html: str | None = None) -> tuple[NewText, str]:
    """:func:`extract`, and the whole body as text (HTML converted), from one reading."""
    if text.strip():
        return split_plain(text), text
    if html:
        parser = _read_html(html)
        return _split_read(parser), _tidy("".join(parser.everything))
    return NewText(text="", quoted="", signature=""), ""
