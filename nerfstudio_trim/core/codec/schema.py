"""Exact, bounded validation of a file's JSON header before anything uses it.

A header comes from a file a stranger may have crafted (its checksum is unkeyed), so parsing and checking
are both bounded: ``parse_json`` refuses integers of more than ``MAX_INT_DIGITS`` digits, non-finite and
out-of-range numbers, ``NaN``/``Infinity`` and nesting deeper than ``MAX_DEPTH``; the schema types then
check every field exactly: an ``Int`` is a JSON integer (not ``true``, not ``3.0``), a ``Float`` a finite
number (not a string, not a boolean) in its range, strings and lists have bounded lengths, and an
``Object`` lists its fields (unknown fields are ignored only where a schema says so, as minor versions
may add them). A failed check raises ``SchemaError`` naming the field's path, e.g.
``attributes[2].bits must be an integer from 1 to 16``.

Examples:
    >>> HEADER = Object({"count": Int(0, 10), "name": Str(choices=("a", "b"))})
    >>> HEADER.check(parse_json(b'{"count": 3, "name": "a"}'))
    {'count': 3, 'name': 'a'}
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

MAX_INT_DIGITS = 20
"""Longest JSON integer accepted anywhere in a header (a uint64 has 20 digits)."""
MAX_DEPTH = 16
"""Deepest nesting of arrays and objects accepted in a header."""
FLOAT32_MAX = 3.4028234663852886e38


class SchemaError(ValueError):
    """A header that does not match its schema (the message names the field)."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise SchemaError(f"an integer of {len(text.lstrip('-')):,} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise SchemaError(f"a number beyond the range of a double ({text[:40]})")
    return value


def _refuse_constant(text: str) -> Any:
    raise SchemaError(f"{text} is not a number JSON allows")


_BRACKETS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def nesting_depth(data: bytes) -> int:
    """Deepest nesting of arrays and objects in JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def parse_json(data: bytes) -> Any:
    """Parse a header's UTF-8 JSON text with every number and the nesting bounded.

    Raises:
        SchemaError: invalid UTF-8 or JSON, an over-long integer, a non-finite number, or nesting deeper
            than ``MAX_DEPTH``.
    """
    if nesting_depth(data) > MAX_DEPTH:
        raise SchemaError(f"the header is nested more than {MAX_DEPTH} levels deep")
    try:
        text = data.decode("utf-8")
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant)
    except SchemaError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise SchemaError(f"the header is not valid JSON ({' '.join(str(exc).split())[:200]})") from None


class Schema:
    """Checks one JSON value; ``check`` returns it (possibly converted, e.g. lists to tuples) or raises."""

    def check(self, value: Any, path: str = "header") -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Schema):
    """A JSON integer (never a boolean or a float) from ``low`` to ``high``."""

    low: int = 0
    high: int = 2**63 - 1

    def check(self, value: Any, path: str = "header") -> int:
        if type(value) is not int or not self.low <= value <= self.high:
            raise SchemaError(f"{path} must be an integer from {self.low:,} to {self.high:,}")
        return value


@dataclass(frozen=True)
class Float(Schema):
    """A finite JSON number (an integer is accepted; a boolean or string is not) from ``low`` to ``high``
    (float32's range by default: the values the codecs carry are float32)."""

    low: float = -FLOAT32_MAX
    high: float = FLOAT32_MAX

    def check(self, value: Any, path: str = "header") -> float:
        if type(value) not in (int, float) or not self.low <= value <= self.high:
            raise SchemaError(f"{path} must be a number from {self.low:g} to {self.high:g}")
        return float(value)


@dataclass(frozen=True)
class Str(Schema):
    """A JSON string of at most ``max_chars`` characters, one of ``choices`` when given."""

    max_chars: int = 256
    choices: Optional[Tuple[str, ...]] = None

    def check(self, value: Any, path: str = "header") -> str:
        if type(value) is not str or len(value) > self.max_chars:
            raise SchemaError(f"{path} must be a string of at most {self.max_chars} characters")
        if self.choices is not None and value not in self.choices:
            raise SchemaError(f"{path} must be one of {', '.join(map(repr, self.choices))}")
        return value


@dataclass(frozen=True)
class Array(Schema):
    """A JSON array of ``items``, of exactly ``length`` entries or ``min_length``..``max_length``; a tuple."""

    items: Schema
    length: Optional[int] = None
    min_length: int = 0
    max_length: int = 1024

    def check(self, value: Any, path: str = "header") -> Tuple[Any, ...]:
        low, high = (self.length, self.length) if self.length is not None else (self.min_length, self.max_length)
        if type(value) is not list or not low <= len(value) <= high:
            size = f"{low}" if low == high else f"{low} to {high}"
            raise SchemaError(f"{path} must be an array of {size} entries")
        return tuple(self.items.check(item, f"{path}[{index}]") for index, item in enumerate(value))


def Matrix(rows: int, columns: int, entry: Schema = Float()) -> Array:
    """A rows x columns array of arrays (e.g. a 3 x 4 transform)."""
    return Array(Array(entry, length=columns), length=rows)


@dataclass(frozen=True)
class Object(Schema):
    """A JSON object with ``fields`` (each required unless named in ``optional``); other keys are refused,
    or ignored when ``ignore_unknown`` (a minor version may add fields). Returns a dict of the checked fields."""

    fields: Mapping[str, Schema]
    optional: Tuple[str, ...] = ()
    ignore_unknown: bool = False

    def check(self, value: Any, path: str = "header") -> Dict[str, Any]:
        if type(value) is not dict:
            raise SchemaError(f"{path} must be an object")
        unknown = [key for key in value if key not in self.fields]
        if unknown and not self.ignore_unknown:
            raise SchemaError(f"{path} has an unknown field {unknown[0][:64]!r}")
        checked: Dict[str, Any] = {}
        for key, schema in self.fields.items():
            if key not in value:
                if key in self.optional:
                    continue
                raise SchemaError(f"{path}.{key} is missing")
            checked[key] = schema.check(value[key], f"{path}.{key}")
        return checked


@dataclass(frozen=True)
class Scalars(Schema):
    """A flat object of informational scalars (strings, numbers, booleans, null), bounded in size."""

    max_fields: int = 32
    max_chars: int = 256

    def check(self, value: Any, path: str = "header") -> Dict[str, Any]:
        if type(value) is not dict or len(value) > self.max_fields:
            raise SchemaError(f"{path} must be an object of at most {self.max_fields} fields")
        for key, item in value.items():
            if len(key) > self.max_chars or not (
                item is None or type(item) in (bool, int, float) or (type(item) is str and len(item) <= self.max_chars)
            ):
                raise SchemaError(f"{path}.{key[:64]} must be a string of at most {self.max_chars} characters, a number, a boolean or null")
        return dict(value)
