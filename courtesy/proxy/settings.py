"""Turning TOML tables into frozen dataclasses, with errors that name the key.

One generic loader serves the whole config and every check family's
``[checks.NAME]`` table: unknown keys, wrong types and impossible values
become a :class:`ConfigError` naming the file, the dotted key and what was
expected, and never a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, phrased for the user in one line."""

    def __init__(self, message: str, *, file: Path | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.detail = message
        where = []
        if file is not None:
            where.append(str(file))
        if key:
            where.append(key)
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class FieldError(ValueError):
    """Raised by a settings class's ``validate()`` to blame one of its keys."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class Duration(timedelta):
    """A timedelta written as "90s", "10m", "2h", "2d", "1w" or "1h30m" in the config."""

    _PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
    _UNITS: typing.ClassVar[dict[str, str]] = {
        "w": "weeks",
        "d": "days",
        "h": "hours",
        "m": "minutes",
        "s": "seconds",
    }

    @classmethod
    def parse(cls, text: str) -> Duration:
        compact = text.replace(" ", "")
        if not compact:
            raise ValueError("empty duration")
        pos = 0
        total = timedelta()
        for match in cls._PART.finditer(compact):
            if match.start() != pos:
                break
            total += timedelta(**{cls._UNITS[match.group(2).lower()]: float(match.group(1))})
            pos = match.end()
        if pos != len(compact):
            raise ValueError(f"{text!r} is not a duration like '90s', '10m', '2h', '2d'")
        return cls(seconds=total.total_seconds())


class ByteSize(int):
    """A size written as a number of bytes or "50MB", "512KB", "1GB"."""

    _UNITS: typing.ClassVar[dict[str, int]] = {
        "": 1,
        "B": 1,
        "KB": 1000,
        "KIB": 1024,
        "MB": 1000**2,
        "MIB": 1024**2,
        "GB": 1000**3,
        "GIB": 1024**3,
    }

    @classmethod
    def parse(cls, value: object) -> ByteSize:
        if isinstance(value, bool):
            raise ValueError("a size is a number of bytes or a string like '50MB'")
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a size cannot be negative")
            return cls(value)
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", value)
            if match and match.group(2).upper() in cls._UNITS:
                return cls(int(match.group(1)) * cls._UNITS[match.group(2).upper()])
        raise ValueError(f"{value!r} is not a size like 52428800 or '50MB'")


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is Duration:
        return "a duration like '10m' or '2d'"
    if tp is ByteSize:
        return "a size like '50MB'"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if origin is tuple:
        return f"a list of {_describe(get_args(tp)[0]).removeprefix('a ')}s"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    if origin in (dict, Mapping):
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def convert(tp: Any, value: Any, key: str, file: Path | None) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it."""
    origin = get_origin(tp)
    try:
        if origin in (types.UnionType, typing.Union):
            for option in get_args(tp):
                if option is type(None):
                    continue
                with contextlib.suppress(ConfigError):
                    return convert(option, value, key, file)
            raise ConfigError(f"expected {_describe(tp)}, got {value!r}", file=file, key=key)
        if tp is Any:
            return value
        if tp is bool:
            if isinstance(value, bool):
                return value
        elif tp is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif tp is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif tp is str:
            if isinstance(value, str):
                return value
        elif tp is Path:
            if isinstance(value, str) and value:
                return Path(value).expanduser()
        elif tp is Duration:
            if isinstance(value, str):
                return Duration.parse(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return Duration(seconds=value)
        elif tp is ByteSize:
            return ByteSize.parse(value)
        elif origin is Literal:
            if value in get_args(tp):
                return value
        elif isinstance(tp, type) and issubclass(tp, Enum):
            try:
                return tp(value)
            except ValueError:
                pass
        elif origin is tuple:
            if isinstance(value, list):
                inner = get_args(tp)[0]
                return tuple(
                    convert(inner, item, f"{key}[{i}]", file) for i, item in enumerate(value)
                )
        elif origin in (dict, Mapping):
            if isinstance(value, dict):
                key_type, value_type = get_args(tp)
                return types.MappingProxyType(
                    {
                        convert(key_type, k, key, file): convert(value_type, v, f"{key}.{k}", file)
                        for k, v in value.items()
                    }
                )
        elif dataclasses.is_dataclass(tp) and isinstance(tp, type):
            if isinstance(value, dict):
                return build(tp, value, key, file)
        else:  # pragma: no cover - a programming error in a settings class
            raise TypeError(f"unsupported settings type {tp!r} for {key}")
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(exc), file=file, key=key) from None
    raise ConfigError(f"expected {_describe(tp)}, got {value!r}", file=file, key=key)


def build(cls: type[T], table: Mapping[str, Any], prefix: str = "", file: Path | None = None) -> T:
    """Build the frozen dataclass ``cls`` from a TOML table; unknown keys are errors."""
    if not dataclasses.is_dataclass(cls):  # pragma: no cover - programming error
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    # TOML keys use the field names as written; dashes are accepted for underscores.
    values: dict[str, Any] = {}
    for raw_key, value in table.items():
        name = raw_key.replace("-", "_")
        dotted = f"{prefix}.{raw_key}" if prefix else raw_key
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"unknown key (known keys here: {known})", file=file, key=dotted)
        values[name] = convert(hints[name], value, dotted, file)
    try:
        instance = cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), file=file, key=prefix or None) from None
    validate = getattr(instance, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise
        except FieldError as exc:
            dotted = f"{prefix}.{exc.field}" if prefix else exc.field
            raise ConfigError(str(exc), file=file, key=dotted) from None
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, key=prefix or None) from None
    return instance
