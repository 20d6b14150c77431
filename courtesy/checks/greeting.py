"""greeting.missing: the new text should open with a salutation.

A salutation is a greeting word ("Hallo", "Dear", "Bonjour" ...), a bare
vocative name at the very start ("Jeff," / "Jeff -" / "Herr Meier,") or a
group salutation ("Hi all", "Hallo zusammen"). :func:`find_salutation` is the
shared parser: the names checks read the names out of its result, so the
rules for what counts as a salutation live in one place.

Defaults and why: ``greeting.missing`` is a *warning*, because real colleagues
often skip greetings in running exchanges; the policy (hold/relay) and the
per-recipient exceptions decide what happens. Mail to oneself and machine
formats (delivery reports, calendar replies, auto-replies) are exempt: nobody
reads a greeting there. A message without any new text (a bare forward) is
reported too, as forwards without a word are impersonal; that can be switched
to another severity or off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Literal

from courtesy.checks.i18n import Texts, say
from courtesy.checks.model import CheckContext, Finding, OutgoingMessage, Severity
from courtesy.checks.registry import CheckFamily, register

CODE_MISSING = "greeting.missing"

# Only the head of a line is inspected: bounds the work on arbitrary input.
_MAX_LINE = 300
# The salutation is the first line with text; the second is looked at for context.
_MAX_LEAD_LINES = 2


@dataclass(frozen=True, slots=True)
class Salutation:
    """The salutation that opens a text.

    ``line`` is the salutation line as written (stripped) and ``start``/``end``
    its span in the text given to :func:`find_salutation`.
    ``words`` are the greeting words as written, in order ("Sehr geehrte",
    "Hallo"); empty for a bare vocative ("Jeff,").
    ``names`` are the raw name parts, titles included, one per person
    addressed: ("Herr Dr. Müller-Lüdenscheidt",) or ("Pierre", "Odette") for
    "Hallo Pierre, hallo Odette". Empty for "Hallo," and for group salutations.
    ``group`` is true for "Hi all", "Hallo zusammen", "Liebe Kolleginnen und
    Kollegen": they name nobody and need no name check.
    ``language`` is the language of the first greeting word when it is
    specific to one ("de", "en", "fr", "es", "it", "nl"), else None.
    """

    line: str
    start: int
    end: int
    words: tuple[str, ...]
    names: tuple[str, ...]
    group: bool
    language: str | None = None

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    @property
    def vocative(self) -> bool:
        """True when the salutation is a bare name without a greeting word."""
        return not self.words


# --- lexicon -----------------------------------------------------------------
# Greeting phrases by language, lower case, as token sequences. "Strong" words
# greet whatever follows ("Hallo ich wollte ..."); "weak" ones only when a
# name, a group word, punctuation or the end of the line follows ("Liebe
# Grüße" closes a mail, "Care should be taken" is no greeting).
_STRONG: dict[str, tuple[str, ...]] = {
    "de": (
        "hallo",
        "hallöchen",
        "hallochen",
        "hallihallo",
        "halli hallo",
        "hi",
        "hey",
        "hei",
        "servus",
        "moin",
        "moin moin",
        "moinsen",
        "guten tag",
        "guten morgen",
        "guten abend",
        "guten mittag",
        "grüß gott",
        "grüss gott",
        "gruess gott",
        "grüß dich",
        "grüß euch",
        "grüezi",
        "grüzi",
        "sehr geehrte",
        "sehr geehrter",
        "sehr verehrte",
        "sehr verehrter",
        "huhu",
        "tach",
        "tachchen",
        "salü",
        "mahlzeit",
        "n'abend",
        "nabend",
    ),
    "en": (
        "hello",
        "hi",
        "hey",
        "heya",
        "hiya",
        "howdy",
        "greetings",
        "good morning",
        "good afternoon",
        "good evening",
        "good day",
        "g'day",
        "hullo",
    ),
    "fr": ("bonjour", "bonsoir", "salut", "coucou"),
    "es": (
        "hola",
        "buenos días",
        "buenos dias",
        "buenas tardes",
        "buenas noches",
        "buen día",
        "buen dia",
    ),
    "it": ("ciao", "buongiorno", "buonasera", "salve"),
    "nl": ("hoi", "hallo", "goedemorgen", "goedemiddag", "goedenavond", "goedendag", "hai"),
}
_WEAK: dict[str, tuple[str, ...]] = {
    "de": (
        "liebe",
        "lieber",
        "liebes",
        "liebste",
        "liebster",
        "geehrte",
        "geehrter",
        "werte",
        "werter",
        "verehrte",
        "verehrter",
        "tag",
        "morgen",
        "grüß",
        "grüss",
    ),
    "en": ("dear", "dearest", "morning", "afternoon", "evening"),
    "fr": (
        "cher",
        "chère",
        "chere",
        "chers",
        "chères",
        "madame",
        "monsieur",
        "mesdames",
        "messieurs",
        "mademoiselle",
    ),
    "es": (
        "estimado",
        "estimada",
        "estimados",
        "estimadas",
        "querido",
        "querida",
        "queridos",
        "queridas",
        "apreciado",
        "apreciada",
        "distinguido",
        "distinguida",
        "buenas",
    ),
    "it": (
        "caro",
        "cara",
        "cari",
        "care",
        "carissimo",
        "carissima",
        "gentile",
        "gentili",
        "gentilissimo",
        "gentilissima",
        "egregio",
        "egregia",
        "spettabile",
    ),
    "nl": ("beste", "geachte", "lieve", "dag"),
}


# Nouns after a weak word that make it a closing, not a greeting.
def _words(text: str) -> frozenset[str]:
    """A word set written as one string, to keep the lists readable."""
    return frozenset(text.split())


_CLOSING_NOUNS = _words(
    "grüße grüsse gruesse gruß gruss grüßen grüssen wishes regards groet groeten saluti "
    "saludos salutations greetings dank thanks"
)
# Words that turn a salutation into a group salutation.
_GROUP_WORDS = _words(
    """all alle allen allerseits zusammen miteinander everyone everybody everyone's team teams
    folks guys people colleagues colleague participants members friends community gentlemen
    ladies y'all yall ya leute kollegen kolleginnen kollegium freunde freundinnen mitglieder
    damen herren beide beiden ihr euch tous toutes équipe equipe collègues todos todas equipo
    compañeros tutti colleghi ragazzi iedereen allemaal collega's team's"""
)
_GROUP_SUFFIXES = ("freunde", "kollegen", "participants", "members", "colleagues", "team")
# Titles and forms of address that may stand before a name.
_TITLES = _words(
    """herr herrn frau fräulein dr dr. prof prof. professor mr mr. mrs mrs. ms ms. miss sir
    madam mme mme. mlle m. monsieur madame señor señora sr sr. sra sra. don doña signor
    signora sig sig. dott dott. ing ing. dipl meneer mevrouw dhr dhr. mevr mevr. mag mag."""
)
# Lower-case name particles and connectors allowed inside a name part.
_PARTICLES = _words("von van der den de di da du le la ten ter zu vom del della dos")
_CONNECTORS = _words("and und & oder or et y e en u. and/or /")
# Words that open sentences and are not names: "Thanks, ..." is no vocative.
_NOT_NAMES = _words(
    """thanks thank thx ty fyi fwiw btw ps pps nb re fw fwd aw wg tr yes no ok okay okey sure
    sorry please well so also and but or now then here there this that these those the a an
    yes yeah yep nope great good fine cool nice perfect excellent super wow oh ah hmm hm ahh
    agreed correct right exactly absolutely indeed interesting done noted understood attached
    enclosed update reminder note notice question questions answer answers subject date from
    to cc bcc sent attachment attachments agenda summary background problem issue status
    important urgent attention warning info information hint unfortunately however actually
    basically anyway anyhow hopefully obviously apparently meanwhile additionally furthermore
    first second third finally today tomorrow yesterday tonight morning afternoon evening
    again all everyone regards best cheers congratulations congrats welcome hey hi hello
    dear i we you he she it they my our your his her their me us them what why how when
    where who which whose if as because since though although while after before once just
    only even still yet maybe perhaps sounds looks seems think guess see let lets let's got
    ja nein jein doch danke dank vielen herzlichen besten schöne schönen gut gute super prima
    perfekt toll klasse genau richtig stimmt klar gerne gern okay achtung wichtig hinweis
    info anbei hier da dort jetzt heute morgen gestern übrigens uebrigens leider also aber
    und oder denn nun so sonst ach och naja na tja hmm ich wir du sie er es ihr mein meine
    unser unsere ihre ihr dein deine das der die dem den des ein eine einen einem einer
    wie was wo wann warum wer welche welcher welches wenn falls weil da dass ob nach vor
    bitte frage fragen antwort betreff termin termine zusammenfassung hintergrund problem
    status update erinnerung nachtrag ergänzung korrektur anmerkung gruß gruss grüße grüsse
    liebe lieber viele beste mfg lg vg gleichfalls ebenfalls natürlich selbstverständlich
    zunächst erstens zweitens drittens schließlich endlich außerdem zudem allerdings trotzdem
    dennoch deshalb daher darum sorry merci oui non voilà bien très bon bonne alors donc
    mais et gracias sí si no bueno vale pues grazie sì bene allora dank bedankt ja nee
    prima goed oké with without for from in on at by about into over under per via between
    mit ohne für von bei zu zum zur auf im am um aus über unter durch gegen seit bis beim
    hast habe hat haben bin bist ist sind war waren wird werden kann kannst können muss soll
    will would could should can may might must shall is are was were be been has have had do
    does did get gets monday tuesday wednesday thursday friday saturday sunday mon tue wed
    thu fri sat sun montag dienstag mittwoch donnerstag freitag samstag sonntag mo di mi do
    fr sa so january february march july september october november december feb mar apr
    jun jul aug sep sept oct nov dec januar februar märz oktober dezember mrz okt dez
    http https www mailto siehe see re aw wg fwd
    yup yo junior senior lunch dinner meeting call"""
)
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’.\-][^\W\d_]+){0,6}|\d+|--+|[^\w\s]")
_LETTERS_RE = re.compile(r"[^\W\d_]")
_PLAYFUL_RE = re.compile(r"hi{1,9}|he{1,9}y{1,9}|hel{1,9}o{2,9}")


_PhraseEntry = tuple[tuple[str, ...], str, bool]
ExtraWords = Mapping[str, Sequence[str]]


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: one per configuration
class GreetingVocabulary:
    """The greeting phrases a salutation may open with, by first word.

    Built once for the built-in lists and once per set of configured extra words
    (``[checks.greeting] extra_words``), so that a configuration never changes what
    another one (or a test) sees. Words listed for more than one language are no
    evidence of the language.
    """

    phrases: Mapping[str, tuple[_PhraseEntry, ...]]
    ambiguous: frozenset[str]

    @classmethod
    def of(cls, entries: Iterable[_PhraseEntry]) -> GreetingVocabulary:
        table: dict[str, list[_PhraseEntry]] = {}
        for entry in entries:
            table.setdefault(entry[0][0], []).append(entry)
        ambiguous = frozenset(
            word for word, found in table.items() if len({language for _, language, _ in found}) > 1
        )
        # Longest phrase first; the sort is stable, so built-in entries stay ahead.
        phrases = {
            word: tuple(sorted(found, key=lambda entry: -len(entry[0])))
            for word, found in table.items()
        }
        return cls(MappingProxyType(phrases), ambiguous)


def _builtin_entries() -> list[_PhraseEntry]:
    entries: list[_PhraseEntry] = []
    for strong, source in ((True, _STRONG), (False, _WEAK)):
        for language, phrases in source.items():
            for phrase in phrases:
                entries.append((tuple(phrase.split()), language, strong))
    return entries


DEFAULT_VOCABULARY = GreetingVocabulary.of(_builtin_entries())


def vocabulary_for(extra_words: ExtraWords) -> GreetingVocabulary:
    """The built-in phrases plus configured extra words (strong: they greet whatever follows)."""
    if not extra_words:
        return DEFAULT_VOCABULARY
    key = tuple(sorted((language, tuple(words)) for language, words in extra_words.items()))
    return _vocabulary_with(key)


@lru_cache(maxsize=16)
def _vocabulary_with(extra: tuple[tuple[str, tuple[str, ...]], ...]) -> GreetingVocabulary:
    entries = _builtin_entries()
    present = {(tokens, language) for tokens, language, _ in entries}
    for language, words in extra:
        for word in words:
            tokens = tuple(word.casefold().split())
            if tokens and (tokens, language) not in present:
                present.add((tokens, language))
                entries.append((tokens, language, True))
    return GreetingVocabulary.of(entries)


class _Token:
    """A word or punctuation mark of a line and where it starts.

    ``low`` and ``is_word`` are read many times per token while a line is
    parsed (and tokens of recurring lines are cached), so each is computed
    once, on first use.
    """

    __slots__ = ("_is_word", "_low", "start", "text")

    def __init__(self, text: str, start: int) -> None:
        self.text = text
        self.start = start
        self._low: str | None = None
        self._is_word: bool | None = None

    @property
    def low(self) -> str:
        low = self._low
        if low is None:
            low = self._low = self.text.casefold().rstrip(".")
        return low

    @property
    def stem(self) -> str:
        """The word before an apostrophe: "I've" -> "i"."""
        return self.low.replace("’", "'").split("'", 1)[0]

    @property
    def is_word(self) -> bool:
        is_word = self._is_word
        if is_word is None:
            is_word = self._is_word = bool(_LETTERS_RE.match(self.text))
        return is_word

    @property
    def capitalised(self) -> bool:
        return self.is_word and self.text[0].isupper()


_TERMINATORS = frozenset(",:;!?.-–—")


def _tokens(line: str, limit: int = 40) -> list[_Token]:
    """The first ``limit`` tokens: a salutation is short, the rest of the line is not read.

    Cached for lines up to _MAX_LINE (what the callers pass): the greeting and the
    names check read the same opening lines, and salutations recur. Tokens are
    never changed after they are made; each caller gets its own list.
    """
    if len(line) <= _MAX_LINE:
        return list(_cached_tokens(line, limit))
    return _scan_tokens(line, limit)


@lru_cache(maxsize=1024)
def _cached_tokens(line: str, limit: int) -> tuple[_Token, ...]:
    return tuple(_scan_tokens(line, limit))


def _scan_tokens(line: str, limit: int) -> list[_Token]:
    out: list[_Token] = []
    for m in _TOKEN_RE.finditer(line):
        out.append(_Token(m.group(), m.start()))
        if len(out) >= limit:
            break
    return out


def _is_terminator(token: _Token) -> bool:
    return not token.is_word and (token.text in _TERMINATORS or token.text.startswith("--"))


def _match_greeting(
    tokens: Sequence[_Token], i: int, vocabulary: GreetingVocabulary
) -> tuple[int, str, bool] | None:
    """Length, language and strength of a greeting phrase at ``tokens[i]``."""
    if i >= len(tokens) or not tokens[i].is_word:
        return None
    first = tokens[i].low
    candidates = vocabulary.phrases.get(first)
    if candidates is None:
        # "Hallihallöchen", "Hallooo", "Hiii": playful spellings of hallo/hi.
        if first.startswith(("hallo", "halli", "hallö")) or _PLAYFUL_RE.fullmatch(first):
            return (1, "de" if first.startswith("hal") else "en", True)
        return None
    for phrase, language, strong in candidates:
        n = len(phrase)
        if tuple(t.low for t in tokens[i : i + n]) == phrase:
            lang = language if first not in vocabulary.ambiguous else ""
            return (n, lang, strong)
    return None


def _weak_ok(
    tokens: Sequence[_Token], j: int, all_lower: bool, vocabulary: GreetingVocabulary
) -> bool:
    """Whether what follows a weak greeting word makes it a salutation."""
    if j >= len(tokens):
        return True
    nxt = tokens[j]
    if not nxt.is_word:
        return _is_terminator(nxt)
    if nxt.low in _CLOSING_NOUNS:
        return False
    if nxt.low in _GROUP_WORDS or nxt.low in _TITLES or _match_greeting(tokens, j, vocabulary):
        return True
    return nxt.capitalised or all_lower


def _is_group_word(word: str) -> bool:
    low = word.casefold()
    return low in _GROUP_WORDS or low.endswith(_GROUP_SUFFIXES)


def _name_like(token: _Token, all_lower: bool) -> bool:
    if not token.is_word:
        return False
    if token.low in _TITLES:
        return True
    if token.low in _NOT_NAMES:
        return False
    return token.capitalised or all_lower


def _name_part(
    tokens: Sequence[_Token], j: int, all_lower: bool
) -> tuple[list[list[_Token]], bool, int]:
    """Names (token groups), group flag and index after the name part."""
    names: list[list[_Token]] = []
    current: list[_Token] = []
    group = False
    k = j
    while k < len(tokens):
        tok = tokens[k]
        if tok.text == "." and current and current[-1].low in _TITLES:
            k += 1  # "Dr." / "Mr.": the dot belongs to the title
            continue
        if _is_terminator(tok):
            if tok.text == "," and k + 1 < len(tokens) and tokens[k + 1].low in _CONNECTORS:
                # "Anna, and Bob": the comma is part of a list of names.
                k += 1
                continue
            break
        if not tok.is_word:
            if tok.text in ("&", "/"):
                if current:
                    names.append(current)
                current = []
                k += 1
                continue
            break
        low = tok.low
        if low in _CONNECTORS:
            if current:
                names.append(current)
            current = []
        elif _is_group_word(tok.text):
            group = True
            current.append(tok)
        elif (
            (low in _PARTICLES and current and tok.text.islower())
            or ((tok.capitalised or all_lower) and low not in _NOT_NAMES)
            or low in _TITLES
        ):
            current.append(tok)
        else:
            break
        if len(current) > 5:
            break
        k += 1
    if current:
        names.append(current)
    return names, group, k


@cache
def _given_names() -> frozenset[str]:
    """Given names from the curated ``nicknames`` dataset: "Kevin" alone on a line is a name."""
    try:
        import nicknames
    except ImportError:  # the names helper's dependency; without it rely on structure
        return frozenset()
    return (
        frozenset(
            name for triplet in nicknames.name_triplets() for name in (triplet[0], triplet[2])
        )
        - _NOT_NAMES
    )


def _raw(line: str, group: list[_Token]) -> str:
    """The name as written, from its first to its last token."""
    last = group[-1]
    return line[group[0].start : last.start + len(last.text)].strip()


_LineReading = tuple[tuple[str, ...], tuple[str, ...], bool, str]


def _parse_line(
    line: str,
    known: frozenset[str],
    next_is_sentence: bool = False,
    vocabulary: GreetingVocabulary = DEFAULT_VOCABULARY,
) -> _LineReading | None:
    """Greeting words, names, group flag and language of a salutation line.

    Only the line's head is read, and of ``known`` only the words that occur in
    it matter; the reading is cached on those. Salutation lines recur ("Hallo
    Marco,"), and the greeting and the names check read the same one with
    different known names.
    """
    line = line[:_MAX_LINE]
    return _cached_line_reading(line, _line_words(line) & known, next_is_sentence, vocabulary)


@lru_cache(maxsize=1024)
def _line_words(line: str) -> frozenset[str]:
    """The folded words of a line's head, as _read_line compares them with known names."""
    return frozenset(t.low for t in _cached_tokens(line, 40))


@lru_cache(maxsize=4096)
def _cached_line_reading(
    line: str, known: frozenset[str], next_is_sentence: bool, vocabulary: GreetingVocabulary
) -> _LineReading | None:
    found = _read_line(line, known, next_is_sentence, vocabulary)
    if found is None:
        return None
    words, names, group, language = found
    return tuple(words), tuple(names), group, language


def _read_line(
    line: str, known: frozenset[str], next_is_sentence: bool, vocabulary: GreetingVocabulary
) -> tuple[list[str], list[str], bool, str] | None:
    tokens = _tokens(line)
    if not tokens:
        return None
    all_lower = line.islower()  # cut to _MAX_LINE by _parse_line
    i = 0
    # Leading interjection: "Oh Klaus," / "Oh, meta,".
    if tokens[0].low in ("oh", "ach", "och", "ah", "na") and len(tokens) > 1:
        i = 1
        if tokens[1].text == ",":
            i = 2
    words: list[str] = []
    names: list[str] = []
    group = False
    language = ""
    first_match = _match_greeting(tokens, i, vocabulary)
    if first_match is not None:
        while i < len(tokens):
            found = _match_greeting(tokens, i, vocabulary)
            if found is None:
                break
            n, lang, strong = found
            if not strong and not _weak_ok(tokens, i + n, all_lower, vocabulary):
                break
            last = tokens[i + n - 1]
            words.append(line[tokens[i].start : last.start + len(last.text)])
            language = language or lang
            j = i + n
            # "Hallo, Pierre oder Odette?": names after the comma, up to the end.
            parts, is_group, k = _name_part(tokens, j, all_lower)
            if (
                not parts
                and j < len(tokens)
                and tokens[j].text == ","
                and (j + 1 < len(tokens) and _match_greeting(tokens, j + 1, vocabulary) is None)
            ):
                parts2, is_group2, k2 = _name_part(tokens, j + 1, all_lower)
                ends_line = k2 >= len(tokens) or tokens[k2].text in ("?", "!", ",", ":")
                if (
                    parts2
                    and ends_line
                    and all(_name_like(t, all_lower) for part in parts2 for t in part)
                ):
                    parts, is_group, k = parts2, is_group2, k2
            group = group or is_group
            if not is_group:
                names.extend(_raw(line, part) for part in parts)
            i = k
            # ", hallo Odette" / "und hallo Odette": another greeting follows.
            while i < len(tokens) and (tokens[i].text in ",&" or tokens[i].low in _CONNECTORS):
                i += 1
            if _match_greeting(tokens, i, vocabulary) is None:
                break
        if not words:
            return None
        return words, names, group, language
    # No greeting word: a bare vocative or a group address at the very start.
    # After an interjection ("Oh, meta,") a lower-case nickname still addresses someone.
    interjected = i == 2 and len(tokens) > 3 and tokens[3].text == ","
    parts, is_group, k = _name_part(tokens, i, all_lower or interjected)
    if interjected and parts:
        return [], [_raw(line, parts[0])], False, ""
    if not parts:
        return None
    flat = [t for part in parts for t in part]
    if not all(
        _name_like(t, False) or (t.low in _PARTICLES and t.text.islower()) or _is_group_word(t.text)
        for t in flat
    ):
        return None
    if len(flat) > 6 or any(len(part) > 4 for part in parts):
        return None
    given = _given_names()
    known_hit = any(t.low in known for t in flat)
    name_hit = known_hit or any(t.low in given or t.low in _TITLES for t in flat)
    first_hit = any(
        part[0].low in known or part[0].low in given or part[0].low in _TITLES for part in parts
    )
    exclaimed = k < len(tokens) and tokens[k].text == "!"
    if len(flat) > 1 and not (first_hit or is_group or exclaimed):
        # "Vista Hotel, 1400 M Street": several capitalised words, not opening with a name.
        return None
    if k < len(tokens):
        term = tokens[k]
        if not _is_terminator(term) or term.text in (".", "?", ";"):
            return None
        if term.text in "-–—" or term.text.startswith("--"):
            if not line[: term.start].endswith((" ", "\t")) and not term.text.startswith("--"):
                return None  # "Ober-stimmt": a hyphen, not a dash after a name
            if not (name_hit or is_group):
                return None  # "Lunch - still open": a heading, not an address
        if term.text == "!" and not (known_hit or len(flat) >= 2 or is_group):
            # "Great!" is an exclamation; "Gühlcke Roger!" addresses someone.
            return None
        after = tokens[k + 1] if k + 1 < len(tokens) else None
        if (
            after is not None
            and term.text in ",:"
            and after.capitalised
            and after.low not in _NOT_NAMES
            and after.stem not in _NOT_NAMES
            and _match_greeting(tokens, k + 1, vocabulary) is None
            and not known_hit
            and (term.text == "," or not name_hit)
        ):
            # "Washington, DC", "Hartsoe: PJM, Hogan": a list of names, not an address.
            return None
    elif not (known_hit or is_group or (len(flat) == 1 and name_hit and next_is_sentence)):
        # A line that is only a name ("Kevin" above "I had ...") addresses someone;
        # a name above another name or a heading does not.
        return None
    if is_group:
        return [], [], True, ""
    if len(parts) == 1 and len(flat) == 1 and flat[0].text.isupper() and len(flat[0].text) <= 4:
        return None  # "FYI:", "PS:", "NB:"
    return [], [_raw(line, part) for part in parts], False, ""


def _lines(text: str) -> Iterable[tuple[int, str]]:
    """(offset, line) of the first lines of ``text`` that hold anything.

    Walks the text line by line instead of splitting all of it: only the
    opening lines are wanted.
    """
    offset = 0
    seen = 0
    size = len(text)
    while offset <= size:
        end = text.find("\n", offset)
        if end < 0:
            end = size
        line = text[offset:end]
        if line.strip():
            yield offset, line
            seen += 1
            if seen >= _MAX_LEAD_LINES:
                return
        offset = end + 1
        if offset > 20 * _MAX_LINE:
            return


_NAME_SPLIT_RE = re.compile(r"[\s,.;:<>\"'()@_+-]+")


def _name_words(names: Iterable[str]) -> frozenset[str]:
    words: set[str] = set()
    for name in names:
        words.update(_cached_name_words(name) if len(name) <= 200 else _words_of_name(name))
    return frozenset(words)


def _words_of_name(name: str) -> tuple[str, ...]:
    return tuple(part for part in _NAME_SPLIT_RE.split(name.casefold()) if len(part) > 1)


@lru_cache(maxsize=4096)
def _cached_name_words(name: str) -> tuple[str, ...]:
    """Short names are cached: the same correspondents recur in every mail."""
    return _words_of_name(name)


def find_salutation(
    new_text: str,
    known_names: Iterable[str] = (),
    vocabulary: GreetingVocabulary = DEFAULT_VOCABULARY,
) -> Salutation | None:
    """The salutation that opens ``new_text``, or None when it opens without one.

    Only the first line with text counts. ``known_names`` are
    names the writer may address (recipients' display names): a line that
    holds only such a name ("Kevin") is a vocative, while an unknown
    capitalised word alone on a line is not. ``vocabulary`` adds the configured
    extra greeting words (:func:`vocabulary_for`).
    """
    names = tuple(known_names)
    ordinary = len(names) <= 64 and sum(map(len, names)) <= 4096
    known = _cached_known_words(names) if ordinary else _name_words(names)
    for index, (offset, line, next_is_sentence) in enumerate(_lead(new_text)):
        parsed = _parse_line(line, known, next_is_sentence, vocabulary)
        if index == 1 and parsed is not None and not parsed[0]:
            return None  # below a heading only a greeting word counts, not a bare name
        if parsed is not None:
            words, names, group, language = parsed
            stripped = line.strip()
            start = offset + (len(line) - len(line.lstrip()))
            return Salutation(
                line=stripped,
                start=start,
                end=start + len(stripped),
                words=tuple(words),
                names=tuple(names),
                group=group,
                language=language or None,
            )
        if index == 0 and not _is_heading(new_text, offset, line):
            return None
    return None


@lru_cache(maxsize=1024)
def _cached_known_words(names: tuple[str, ...]) -> frozenset[str]:
    """The same recipients recur, and the greeting and the names check ask for them in turn."""
    return _name_words(names)


def _lead(new_text: str) -> tuple[tuple[int, str, bool], ...]:
    """(offset, line, whether the next lead line starts a sentence) of the opening lines.

    Kept for the few latest texts of ordinary size: the greeting and the names
    check read the same message one after the other.
    """
    if len(new_text) <= _MAX_CACHED_TEXT:
        return _cached_lead(new_text)
    return _read_lead(new_text)


_MAX_CACHED_TEXT = 64 * 1024


@lru_cache(maxsize=4)
def _cached_lead(new_text: str) -> tuple[tuple[int, str, bool], ...]:
    return _read_lead(new_text)


def _read_lead(new_text: str) -> tuple[tuple[int, str, bool], ...]:
    lead = [(o, line) for o, line in _lines(new_text) if not _is_id_line(line)][:2]
    return tuple(
        (offset, line, _starts_sentence(lead[i + 1][1] if i + 1 < len(lead) else ""))
        for i, (offset, line) in enumerate(lead)
    )


_ID_LINE_RE = re.compile(r"\s*<?[^\s<>@]{1,200}@[^\s<>@]{1,200}>?(?:\.\.\.|…|:)?\s*$")


def _is_id_line(line: str) -> bool:
    """A line that is only a Message-ID or an address: left over from an attribution."""
    return _ID_LINE_RE.match(line[:_MAX_LINE]) is not None


def _is_heading(text: str, offset: int, line: str) -> bool:
    """A short line without sentence punctuation, set off by a blank line (a title)."""
    stripped = line.strip()
    if len(stripped.split()) > 6 or stripped.endswith((".", ",", "?", "!", ":", ";")):
        return False
    rest = text[offset + len(line) : offset + len(line) + 3]
    return rest.startswith("\n") and rest[1:].lstrip(" \t").startswith("\n")


def _starts_sentence(line: str) -> bool:
    """Whether a line opens a sentence: "I had ...", "Please ...", "ich wollte ..."."""
    tokens = _tokens(line[:_MAX_LINE], 3)
    if len(tokens) < 3 or not tokens[0].is_word:
        return False
    return tokens[0].low in _NOT_NAMES or not tokens[0].capitalised


# --- the check ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GreetingSettings:
    """``[checks.greeting]``: what counts as a greeting and which mail is exempt."""

    enabled: bool = True
    severity: Severity = Severity.WARN
    # Extra greeting words per language, e.g. {"de": ("Grüß Gott",)}; they greet
    # whatever follows. A TOML table: extra_words = { de = ["Servus"] }.
    extra_words: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # Exemptions.
    exempt_to_self: bool = True
    exempt_automated: bool = True
    # A message without new text (a bare forward): a severity, or "off" to stay silent.
    no_new_text: Severity | Literal["off"] = Severity.WARN
    # A reply in a running exchange where the other side stopped greeting.
    exempt_quick_replies: bool = False
    quick_reply_max_words: int = 60


_TEXTS: Texts = {
    "missing": {
        "en": "The message does not open with a greeting; start with a salutation such as "
        "'Hello {hint},'.",
        "de": "Die Nachricht beginnt ohne Anrede; beginnen Sie mit einer Begrüßung wie "
        "'Hallo {hint},'.",
    },
    "empty": {
        "en": "The message has no text of its own; add a line with a greeting to the forward.",
        "de": "Die Nachricht enthält keinen eigenen Text; schreiben Sie ein paar Zeilen mit "
        "Anrede zur Weiterleitung.",
    },
}

_AUTOMATED_TYPES = (
    "multipart/report",
    "text/calendar",
    "message/disposition-notification",
    "message/delivery-status",
)


def _is_automated(message: OutgoingMessage) -> bool:
    if message.content_type.startswith(_AUTOMATED_TYPES):
        return True
    if any(t.startswith(_AUTOMATED_TYPES) for t in message.part_types):
        return True
    auto = " ".join(message.headers.get("auto-submitted", ())).strip().lower()
    return bool(auto) and auto != "no"


def _to_self(ctx: CheckContext) -> bool:
    message = ctx.message
    own = {a.lower() for a in ctx.own_addresses}
    # A From rewritten by a mailing list ("Ann via List <list@…>") names the list,
    # not the writer, so it does not make the list address one's own.
    if message.sender is not None and " via " not in message.sender.name:
        own.add(message.sender.email.lower())
    recipients = message.recipients
    return bool(recipients) and all(r.email.lower() in own for r in recipients)


def _recipient_names(message: OutgoingMessage) -> list[str]:
    names = [a.name for a in message.to + message.cc if a.name]
    for a in message.to + message.cc:
        local = a.email.partition("@")[0]
        names.append(local)
    return names


def _quick_reply(
    message: OutgoingMessage,
    settings: GreetingSettings,
    known: list[str],
    vocabulary: GreetingVocabulary,
) -> bool:
    """A short reply to a message that itself opened without a salutation."""
    if not message.is_reply or not message.quoted_text.strip():
        return False
    if len(message.new_text.split()) > settings.quick_reply_max_words:
        return False
    return find_salutation(message.quoted_text, known, vocabulary) is None


def first_line(text: str, limit: int = 120) -> str:
    """The first line with text, shortened for a finding's evidence."""
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            return stripped if len(stripped) <= limit else stripped[: limit - 1] + "…"
    return ""


def check_greeting(ctx: CheckContext, settings: GreetingSettings) -> list[Finding]:
    """Run greeting.missing on one message."""
    message = ctx.message
    if settings.exempt_automated and _is_automated(message):
        return []
    if settings.exempt_to_self and _to_self(ctx):
        return []
    if not message.new_text.strip():
        if settings.no_new_text == "off":
            return []
        return [
            Finding(
                CODE_MISSING,
                settings.no_new_text,
                say(_TEXTS, "empty", ctx.language),
                evidence=message.subject,
            )
        ]
    known = _recipient_names(message)
    vocabulary = vocabulary_for(settings.extra_words)
    if find_salutation(message.new_text, known, vocabulary) is not None:
        return []
    if settings.exempt_quick_replies and _quick_reply(message, settings, known, vocabulary):
        return []
    hint = _hint_name(message)
    return [
        Finding(
            CODE_MISSING,
            settings.severity,
            say(_TEXTS, "missing", ctx.language, hint=hint).replace(" ,", ","),
            evidence=first_line(message.new_text),
        )
    ]


def _hint_name(message: OutgoingMessage) -> str:
    """The first given name of the first To recipient, for the example greeting."""
    for address in message.to:
        name = address.name.strip()
        if not name:
            continue
        if "," in name:  # "Meier, Thomas"
            name = name.split(",", 1)[1].strip()
        return name.split()[0] if name.split() else ""
    return ""


FAMILY = register(
    CheckFamily(
        name="greeting",
        codes=(CODE_MISSING,),
        settings_type=GreetingSettings,
        run=check_greeting,
        description="The new text opens with a salutation.",
    )
)
