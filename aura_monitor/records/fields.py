"""Typed access to a decoded JSON object, turning wrong types into RecordError instead of crashes."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ..exceptions import RecordError
from .timestamps import parse_iso, parse_timespan

T = TypeVar("T")

# json.loads keeps a lone `\ud800` as a surrogate code point, which no UTF-8 encoder (HTTP, SSE, the
# terminal) accepts: one such record used to turn every list into a bare 500. Valid pairs are already
# combined by the decoder, so any surrogate left in a str is a lone one.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Linux's PID_MAX_LIMIT (2^22): beyond it, and at 0 or below, a "pid" names no process (and psutil or
# os.kill would act on a process group or raise).
PID_MAX = 4_194_304
# Percentages and durations are stored as floats; an int beyond this cannot become one.
_FLOAT_MAX = 1.0e300
_INT_MAX = 2**53


def clean_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so it can always be encoded."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


class Fields:
    """Reads one JSON object; every accessor returns None for a missing or null key."""

    def __init__(self, data: object, where: str = "record", notes: list[str] | None = None) -> None:
        if not isinstance(data, dict):
            raise RecordError(f"{where} is a {type(data).__name__}, expected an object")
        self.data: dict[str, Any] = data
        self.where = where
        # Values ignored as nonsense (a pid of -1): shared with child objects, shown as inconsistencies.
        self.notes: list[str] = notes if notes is not None else []

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
        return None if value is None else clean_text(value)

    def integer(self, key: str) -> int | None:
        value = self._typed(key, (int, float), "an integer")
        if value is None:
            return None
        if isinstance(value, float) and not value.is_integer():
            raise RecordError(f"{self.where}.{key} is {value!r}, expected an integer")
        if abs(value) > _INT_MAX:
            raise RecordError(f"{self.where}.{key} is beyond +/-2^53, the largest integer JSON clients read exactly")
        return int(value)

    def number(self, key: str) -> float | None:
        value = self._typed(key, (int, float), "a number")
        if value is None:
            return None
        if isinstance(value, int) and abs(value) > _FLOAT_MAX:
            raise RecordError(f"{self.where}.{key} is a {len(str(abs(value)))}-digit integer, too large for a number")
        if not math.isfinite(value):
            raise RecordError(f"{self.where}.{key} is {value!r}, expected a finite number")
        return float(value)

    def percent(self, key: str) -> float | None:
        """An optional percentage; one outside 0-100 is ignored with a note rather than shown."""
        value = self.number(key)
        if value is not None and not 0 <= value <= 100:
            self.notes.append(f"{self.where}.{key} is {value:g}, outside 0-100; ignored")
            return None
        return value

    def seconds(self, key: str) -> float | None:
        """An optional non-negative duration; a negative one is ignored with a note."""
        value = self.duration(key)
        if value is not None and value < 0:
            self.notes.append(f"{self.where}.{key} is {value:g} s, a negative duration; ignored")
            return None
        return value

    def pid(self, key: str) -> int | None:
        """A process id; a value no process can have (0, negative, above PID_MAX) is ignored with a note."""
        value = self._typed(key, (int, float), "a process id")
        if value is None:
            return None
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise RecordError(f"{self.where}.{key} is {value!r}, expected a process id")
        if not 1 <= value <= PID_MAX:
            shown = value if abs(value) < 10**12 else f"a {len(str(int(abs(value))))}-digit number"
            self.notes.append(f"{self.where}.{key} is {shown}, which no process can have; ignored")
            return None
        return int(value)

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
        return Fields(value, f"{self.where}.{key}", self.notes)

    def items(self, key: str) -> list[Any]:
        value = self._typed(key, list, "a list")
        return value if value is not None else []

    def strings(self, key: str) -> list[str]:
        return [clean_text(item) for item in self.items(key) if isinstance(item, str)]
