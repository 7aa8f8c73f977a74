"""Typed access to a decoded JSON object, turning wrong types into RecordError instead of crashes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from ..exceptions import RecordError
from .timestamps import parse_iso, parse_timespan

T = TypeVar("T")


class Fields:
    """Reads one JSON object; every accessor returns None for a missing or null key."""

    def __init__(self, data: object, where: str = "record") -> None:
        if not isinstance(data, dict):
            raise RecordError(f"{where} is a {type(data).__name__}, expected an object")
        self.data: dict[str, Any] = data
        self.where = where

    def _typed(self, key: str, kind: type[T] | tuple[type, ...], label: str) -> Any:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise RecordError(f"{self.where}.{key} is a boolean, expected {label}")
        if not isinstance(value, kind):
            raise RecordError(f"{self.where}.{key} is {type(value).__name__}, expected {label}")
        return value

    def text(self, key: str) -> str | None:
        value: str | None = self._typed(key, str, "a string")
        return value

    def integer(self, key: str) -> int | None:
        value = self._typed(key, (int, float), "an integer")
        if value is None:
            return None
        if isinstance(value, float) and not value.is_integer():
            raise RecordError(f"{self.where}.{key} is {value!r}, expected an integer")
        return int(value)

    def number(self, key: str) -> float | None:
        value = self._typed(key, (int, float), "a number")
        if value is None:
            return None
        if not math.isfinite(value):
            raise RecordError(f"{self.where}.{key} is not a finite number")
        return float(value)

    def flag(self, key: str) -> bool | None:
        value: bool | None = self._typed(key, bool, "a boolean")
        return value

    def _converted(self, key: str, convert: Callable[[str], float], label: str) -> float | None:
        text = self.text(key)
        if text is None or text == "":
            return None
        try:
            return convert(text)
        except ValueError as exc:
            raise RecordError(f"{self.where}.{key}: {exc}") from None

    def time(self, key: str) -> float | None:
        """An ISO-8601 timestamp as epoch seconds."""
        return self._converted(key, parse_iso, "a timestamp")

    def duration(self, key: str) -> float | None:
        """A .NET TimeSpan string, or a plain number of seconds, as seconds."""
        if isinstance(self.data.get(key), (int, float)) and not isinstance(self.data.get(key), bool):
            return self.number(key)
        return self._converted(key, parse_timespan, "a TimeSpan")

    def obj(self, key: str) -> Fields | None:
        value = self.data.get(key)
        if value is None:
            return None
        return Fields(value, f"{self.where}.{key}")

    def items(self, key: str) -> list[Any]:
        value = self._typed(key, list, "a list")
        return value if value is not None else []

    def strings(self, key: str) -> list[str]:
        return [item for item in self.items(key) if isinstance(item, str)]
