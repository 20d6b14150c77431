"""Read address-book files into :class:`~courtesy.checks.model.Contact` values.

vCard 3.0 and 4.0 (one or many cards per file) through ``vobject``; CSV
exports of Google Contacts, Outlook (English and German) and Thunderbird,
told apart by their header row. A broken record becomes a one-line error that
names its line and the rest is still imported: one bad card in an export of
thousands must not cost the user the others.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import vobject

from courtesy.checks.model import Contact, ContactSource
from courtesy.checks.names import FORMS, given_names, parse_person_name

# (records done, records in total); total is 0 when unknown.
Progress = Callable[[int, int], None]

_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


class ContactsFormatError(ValueError):
    """The file is none of the address-book formats we read."""


@dataclass(slots=True)
class ImportResult:
    """Contacts read, one-line errors for broken records, and the detected format."""

    format: str
    contacts: list[Contact] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Records without any e-mail address: nothing to look up, so not imported.
    skipped: int = 0


def read_contacts(path: Path, progress: Progress | None = None) -> ImportResult:
    """Read an address-book file of any supported format."""
    data = path.read_bytes()
    text = _decode(data)
    return parse_contacts(text, progress=progress)


def parse_contacts(text: str, progress: Progress | None = None) -> ImportResult:
    head = text.lstrip("\ufeff \r\n\t")[:200].upper()
    if head.startswith("BEGIN:VCARD"):
        return parse_vcards(text, progress)
    return parse_csv(text, progress)


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM (Outlook), else Windows-1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# --- vCard --------------------------------------------------------------------


def _vcard_chunks(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each BEGIN:VCARD ... END:VCARD block."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start: int | None = None
    depth = 0
    for number, line in enumerate(lines, 1):
        upper = line.strip().upper()
        if upper == "BEGIN:VCARD":
            if depth == 0:
                start = number
            depth += 1
        elif upper == "END:VCARD" and depth:
            depth -= 1
            if depth == 0 and start is not None:
                yield start, "\n".join(lines[start - 1 : number]) + "\n"
                start = None
    if depth and start is not None:
        yield start, "\n".join(lines[start - 1 :]) + "\n"


def parse_vcards(text: str, progress: Progress | None = None) -> ImportResult:
    result = ImportResult(format="vcard")
    chunks = list(_vcard_chunks(text))
    for done, (line, chunk) in enumerate(chunks, 1):
        try:
            if not chunk.rstrip().upper().endswith("END:VCARD"):
                raise ValueError("card is not closed by END:VCARD")
            card = vobject.readOne(chunk)
            contact = _contact_from_vcard(card, _raw_nicknames(chunk))
        except Exception as exc:  # vobject raises many kinds; each is one bad record
            reason = re.sub(r"^At line \d+: ", "", _one_line(exc))
            result.errors.append(f"line {line}: vCard record {done}: {reason}")
        else:
            if contact is None:
                result.skipped += 1
            else:
                result.contacts.append(contact)
        if progress is not None:
            progress(done, len(chunks))
    return result


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _values(card: object, name: str) -> list[object]:
    contents: Mapping[str, list[object]] = getattr(card, "contents", {})
    return [getattr(item, "value", None) for item in contents.get(name, [])]


_NICKNAME_LINE = re.compile(
    r"^(?:[\w-]+\.)?NICKNAME(?:;[^:]*)?:(.*)$", re.IGNORECASE | re.MULTILINE
)


def _raw_nicknames(chunk: str) -> list[str]:
    """NICKNAME values as written: vobject keeps only the first of "Tom,Tommy"."""
    unfolded = re.sub(r"\n[ \t]", "", chunk)
    names: list[str] = []
    for value in _NICKNAME_LINE.findall(unfolded):
        names.extend(n.strip().replace("\\,", ",") for n in re.split(r"(?<!\\),", value))
    return [n for n in names if n]


def _contact_from_vcard(card: object, raw_nicknames: Sequence[str] = ()) -> Contact | None:
    emails = _clean_emails(str(v) for v in _values(card, "email") if v)
    if not emails:
        return None
    fn = next((str(v).strip() for v in _values(card, "fn") if v), "")
    given = family = prefix = None
    for n in _values(card, "n"):
        # Given and additional (middle) names: a person may go by either.
        first = _join(getattr(n, "given", ""))
        given = given_names(first, _join(getattr(n, "additional", ""))) or first or None
        family = _join(getattr(n, "family", "")) or None
        prefix = _join(getattr(n, "prefix", "")) or None
        break
    nicknames: list[str] = list(raw_nicknames)
    for value in _values(card, "nickname"):
        items = value if isinstance(value, list) else str(value).split(",")
        nicknames.extend(str(i).strip() for i in items if str(i).strip())
    gender = None
    for value in (*_values(card, "gender"), *_values(card, "x-gender")):
        gender = _gender(str(value))
        if gender:
            break
    if fn:
        g, f, _other, nicks = parse_person_name(fn)
        nicknames.extend(nicks)  # "Jingming 'Marshall' Yan"
        if not (given or family):
            given, family = g, f
    name = fn or " ".join(p for p in (prefix, given, family) if p) or emails[0]
    return Contact(
        emails=emails,
        name=name,
        given=given,
        family=family,
        nicknames=tuple(dict.fromkeys(nicknames)),
        salutation=_salutation(prefix),
        gender=gender,
        source=ContactSource.ADDRESS_BOOK,
    )


def _join(value: object) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v).strip() for v in value if str(v).strip())
    return str(value or "").strip()


def _salutation(prefix: str | None) -> str | None:
    """An N prefix is a form of address only when it holds one ("Frau Dr.", not "Dr.")."""
    if not prefix:
        return None
    words = [w.strip(".,").casefold() for w in prefix.split()]
    return prefix if any(w in FORMS for w in words) else None


def _gender(value: str) -> str | None:
    """vCard 4 GENDER ("F", "M;", "F;Frau") or a CSV word ("Female", "weiblich")."""
    word = value.split(";", 1)[0].strip().casefold()
    if word in ("m", "male", "man", "männlich", "mann", "masculin", "masculino"):
        return "M"
    if word in ("f", "female", "woman", "weiblich", "frau", "w", "féminin", "femenino"):
        return "F"
    if word in ("o", "n", "u"):
        return word.upper()
    return None


def _clean_emails(values: Iterator[str] | Sequence[str]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for value in values:
        for part in re.split(r"[\s,;]+|:::", value):
            email = part.strip().strip("<>").removeprefix("mailto:").lower()
            if _EMAIL.match(email):
                found[email] = None
    return tuple(found)


# --- CSV ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CsvFormat:
    name: str
    given: tuple[str, ...]
    middle: tuple[str, ...]
    family: tuple[str, ...]
    display: tuple[str, ...]
    nickname: tuple[str, ...]
    prefix: tuple[str, ...]
    gender: tuple[str, ...]
    # Exact e-mail columns, and a pattern for numbered ones ("E-mail 2 - Value").
    emails: tuple[str, ...]
    email_pattern: str | None = None


_GOOGLE = _CsvFormat(
    name="google",
    given=("First Name", "Given Name"),
    middle=("Middle Name", "Additional Name"),
    family=("Last Name", "Family Name"),
    display=("Name", "File As"),
    nickname=("Nickname",),
    prefix=("Name Prefix",),
    gender=("Gender",),
    emails=(),
    email_pattern=r"^E-mail \d+ - Value$",
)
_OUTLOOK = _CsvFormat(
    name="outlook",
    given=("First Name", "Vorname"),
    middle=("Middle Name", "Weitere Vornamen"),
    family=("Last Name", "Nachname"),
    display=("E-mail Display Name", "E-Mail: Angezeigter Name", "Name"),
    nickname=("Nickname", "Spitzname"),
    prefix=("Title", "Anrede"),
    gender=("Gender", "Geschlecht"),
    emails=(
        "E-mail Address",
        "E-mail 2 Address",
        "E-mail 3 Address",
        "E-Mail-Adresse",
        "E-Mail 2: Adresse",
        "E-Mail 3: Adresse",
    ),
)
_THUNDERBIRD = _CsvFormat(
    name="thunderbird",
    given=("First Name", "Vorname"),
    middle=(),
    family=("Last Name", "Nachname"),
    display=("Display Name", "Anzeigename"),
    nickname=("Nickname", "Spitzname"),
    prefix=(),
    gender=(),
    emails=(
        "Primary Email",
        "Secondary Email",
        "Primäre E-Mail-Adresse",
        "Sekundäre E-Mail-Adresse",
    ),
)


def detect_csv_format(header: Sequence[str]) -> _CsvFormat:
    """Which export a header row comes from."""
    names = {h.strip() for h in header}
    if any(re.match(_GOOGLE.email_pattern or "$^", h) for h in names):
        return _GOOGLE
    if names & {"Primary Email", "Primäre E-Mail-Adresse"}:
        return _THUNDERBIRD
    if names & {"E-mail Address", "E-Mail-Adresse"}:
        return _OUTLOOK
    raise ContactsFormatError(
        "not a vCard nor a Google, Outlook or Thunderbird CSV export "
        f"(header: {', '.join(list(names)[:6])})"
    )


def parse_csv(text: str, progress: Progress | None = None) -> ImportResult:
    text = text.lstrip("\ufeff")
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            sample.split("\n", 1)[0], delimiters=",;\t"
        )
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ContactsFormatError("empty file") from None
    fmt = detect_csv_format(header)
    columns = {h.strip(): i for i, h in enumerate(header)}
    email_columns = [columns[c] for c in fmt.emails if c in columns]
    if fmt.email_pattern:
        email_columns += [i for h, i in columns.items() if re.match(fmt.email_pattern, h)]
    result = ImportResult(format=fmt.name)
    total = max(text.count("\n") - 1, 0)
    done = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.errors.append(f"line {reader.line_num}: {_one_line(exc)}")
            continue
        done += 1
        if not any(cell.strip() for cell in row):
            continue
        try:
            contact = _contact_from_row(row, fmt, columns, email_columns)
        except Exception as exc:  # one malformed row must not stop the import
            result.errors.append(f"line {reader.line_num}: {_one_line(exc)}")
            continue
        if contact is None:
            result.skipped += 1
        else:
            result.contacts.append(contact)
        if progress is not None:
            progress(done, total)
    return result


def _cell(row: Sequence[str], columns: Mapping[str, int], names: Sequence[str]) -> str:
    for name in names:
        index = columns.get(name)
        if index is not None and index < len(row) and row[index].strip():
            return row[index].strip()
    return ""


def _contact_from_row(
    row: Sequence[str],
    fmt: _CsvFormat,
    columns: Mapping[str, int],
    email_columns: Sequence[int],
) -> Contact | None:
    if len(row) > len(columns) + 1 or len(row) < min(len(columns), 2):
        raise ValueError(f"{len(row)} fields where the header has {len(columns)}")
    emails = _clean_emails([row[i] for i in email_columns if i < len(row)])
    if not emails:
        return None
    given = _cell(row, columns, fmt.given) or None
    if given:
        given = given_names(given, _cell(row, columns, fmt.middle)) or given
    family = _cell(row, columns, fmt.family) or None
    display = _cell(row, columns, fmt.display)
    if "@" in display:
        display = ""
    nicknames = tuple(n.strip() for n in _cell(row, columns, fmt.nickname).split(",") if n.strip())
    if not (given or family) and display:
        g, f, _other, nicks = parse_person_name(display)
        given, family = g, f
        nicknames += nicks
    name = display or " ".join(p for p in (given, family) if p) or emails[0]
    return Contact(
        emails=emails,
        name=name,
        given=given,
        family=family,
        nicknames=nicknames,
        salutation=_salutation(_cell(row, columns, fmt.prefix) or None),
        gender=_gender(_cell(row, columns, fmt.gender)),
        source=ContactSource.ADDRESS_BOOK,
    )
