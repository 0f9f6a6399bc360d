"""Settings whose fields carry their own help, flag and limits: one convention for every config.

A frozen dataclass declares each field with ``setting(...)``; from that one declaration come the
check of a value (``check_fields``), the parsing of text from a CLI flag or a URL's query
(``parse_value``), the argparse flags (``add_flags`` / ``values_from_args``) and the words that
say what a field accepts (``describe``). The training configs (explorer/train/config.py) and the
playground's settings (explorer/playground/settings.py) both use it, so the app, the CLI, a URL
and a notebook accept exactly the same values and refuse the rest with the same sentence.

Flags take text and are parsed here, not by argparse's ``type=``: a bad value then fails with our
one-line reason (exit 2 in the CLI) instead of argparse's usage dump.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Limits:
    """What a value may be: within [low, high] (either end open or absent), or one of ``choices``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False
    choices: tuple | None = None

    def allows(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True

    def describe(self, noun: str) -> str:
        """``noun`` ("a whole number", "a number") with the range in words."""
        if self.choices is not None:
            return f"one of {', '.join(str(choice) for choice in self.choices)}"
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            if not self.low_open and not self.high_open:
                return f"{noun} from {low} to {high}"
            lower = f"above {low}" if self.low_open else f"of at least {low}"
            upper = f"below {high}" if self.high_open else f"at most {high}"
            return f"{noun} {lower} and {upper}"
        if self.low is not None:
            return f"{noun} {'above' if self.low_open else 'of at least'} {low}"
        if self.high is not None:
            return f"{noun} {'below' if self.high_open else 'of at most'} {high}"
        return noun


def _number(value) -> str:
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def setting(default=MISSING, *, help: str, flag: str | None = None, low=None, high=None, low_open: bool = False,
            high_open: bool = False, choices=None, default_factory=MISSING) -> dataclasses.Field:
    """A dataclass field with its help text, its flag name (default: the field's) and its limits."""
    metadata = {"help": help, "flag": flag,
                "limits": Limits(low, high, low_open, high_open, None if choices is None else tuple(choices))}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class FieldSpec:
    """One field as the checks and the flags see it."""

    name: str
    kind: type  # int, float, str or bool; for a tuple field, the type of its items
    is_tuple: bool
    optional: bool  # None is allowed
    limits: Limits
    help: str
    flag: str  # "--batch-size"
    default: object

    def describe(self) -> str:
        """What the field accepts, in words: "a whole number from 1 to 300", "one of spiral, circles"."""
        noun = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}[self.kind]
        words = self.limits.describe(noun)
        if self.is_tuple:
            words = f"comma-separated values, each {words}"
        return words + (" (or left out)" if self.optional else "")


@lru_cache(maxsize=None)
def specs(cls: type) -> dict[str, FieldSpec]:
    """The ``FieldSpec`` of every field of the dataclass ``cls`` declared with ``setting``."""
    hints = typing.get_type_hints(cls)
    result = {}
    for item in dataclasses.fields(cls):
        if "limits" not in item.metadata:
            continue
        kind, optional, is_tuple = _kind(hints[item.name])
        default = item.default if item.default is not MISSING else item.default_factory()
        result[item.name] = FieldSpec(item.name, kind, is_tuple, optional, item.metadata["limits"], item.metadata["help"],
                                      "--" + (item.metadata["flag"] or item.name).replace("_", "-"), default)
    return result


def _kind(annotation) -> tuple[type, bool, bool]:
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        (annotation,) = members
    if typing.get_origin(annotation) is tuple:
        return typing.get_args(annotation)[0], optional, True
    if annotation not in (int, float, str, bool):
        raise TypeError(f"a setting must be int, float, str, bool, a tuple of one of them, or optional; got {annotation}")
    return annotation, optional, False


def check_value(spec: FieldSpec, value, label: str | None = None):
    """``value`` if the field accepts it, else a ValueError naming the field and what it accepts."""
    if value is None and spec.optional:
        return value
    items = value if spec.is_tuple and isinstance(value, (tuple, list)) else None
    ok = (all(_allowed(spec, item) for item in items) if items is not None
          else not spec.is_tuple and _allowed(spec, value))
    if not ok:
        shown = _shown(value) if isinstance(value, tuple) else repr(value)
        raise ValueError(f"{label or spec.name} must be {spec.describe()}, got {shown}")
    return tuple(items) if items is not None else value


def _allowed(spec: FieldSpec, value) -> bool:
    if spec.kind is bool:
        return isinstance(value, bool)
    if spec.kind is str:
        return isinstance(value, str) and spec.limits.allows(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if spec.kind is int and not isinstance(value, int):
        return False
    return math.isfinite(value) and spec.limits.allows(value)


def parse_value(spec: FieldSpec, text, label: str | None = None):
    """A value from text (a CLI flag, a URL's query), checked like any other value."""
    cleaned = str(text).strip()
    if spec.is_tuple:
        parts = [part.strip() for part in cleaned.split(",") if part.strip()]
        try:
            value = tuple(_parse_one(spec, part) for part in parts)
        except ValueError:
            raise ValueError(f"{label or spec.name} must be {spec.describe()}, got {text!r}") from None
        return check_value(spec, value, label)
    try:
        value = _parse_one(spec, cleaned)
    except ValueError:
        raise ValueError(f"{label or spec.name} must be {spec.describe()}, got {text!r}") from None
    return check_value(spec, value, label)


def _parse_one(spec: FieldSpec, text: str):
    if spec.kind is int:
        return int(text)
    if spec.kind is float:
        return float(text)
    if spec.kind is bool:
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(text)
        return lowered in ("true", "1", "yes")
    # A choice is matched whatever its case and given back as declared; free text (a folder path)
    # keeps its case.
    for choice in spec.limits.choices or ():
        if str(choice).lower() == text.lower():
            return choice
    return text


def check_fields(instance, label=None) -> None:
    """Check every field of ``instance``; ``label(spec)`` names a field in the message (default: its name)."""
    for spec in specs(type(instance)).values():
        check_value(spec, getattr(instance, spec.name), label(spec) if label else None)


def add_flags(parser: argparse.ArgumentParser, cls: type, dest_prefix: str = "", skip: tuple[str, ...] = ()) -> None:
    """One flag per field of ``cls``: ``--name TEXT``, or ``--name/--no-name`` for a bool."""
    for spec in specs(cls).values():
        if spec.name in skip:
            continue
        # argparse reads "%" in help as a format; "50%" must reach it as "50%%".
        plain = spec.kind in (str, bool) and spec.limits.choices is None  # "text" says nothing
        accepts = "" if plain else f"; {spec.describe().removesuffix(' (or left out)')}"
        help_text = f"{spec.help}{accepts} (default: {_shown(spec.default)})".replace("%", "%%")
        if spec.kind is bool and not spec.is_tuple:
            parser.add_argument(spec.flag, dest=dest_prefix + spec.name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        else:
            parser.add_argument(spec.flag, dest=dest_prefix + spec.name, default=None,
                                metavar=spec.name.upper(), help=help_text)


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{item:g}" if isinstance(item, float) else str(item) for item in value)
    return str(value)


def values_from_args(args: argparse.Namespace, cls: type, dest_prefix: str = "", label=None) -> dict:
    """The fields of ``cls`` whose flags were given, parsed and checked."""
    values = vars(args)
    given = {}
    for spec in specs(cls).values():
        raw = values.get(dest_prefix + spec.name)
        if raw is None:
            continue
        given[spec.name] = raw if isinstance(raw, bool) else parse_value(spec, raw, label(spec) if label else None)
    return given


def to_text(value) -> str:
    """A value as text that ``parse_value`` reads back to the same value."""
    if isinstance(value, tuple):
        return ",".join(to_text(item) for item in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)
