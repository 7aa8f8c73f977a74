"""Time formats found in job records: .NET ISO-8601 (7 fractional digits), TimeSpan strings, log prefixes."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})?")
_TIMESPAN = re.compile(r"(-)?(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?")
# datetime's range, less a day each side so any UTC offset of a displayed time stays inside it.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
_LOG_PREFIX = re.compile(r"\[(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})\]")


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO-8601 stamp; .NET writes up to 7 fractional digits, which datetime rejects."""
    m = _ISO.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not an ISO-8601 timestamp: {text[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction = float("0." + m.group(7)) if m.group(7) else 0.0
    zone = m.group(8)
    base = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    offset = 0
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    if abs(offset) >= 24 * 3600:
        raise ValueError(f"UTC offset {zone} is not below 24 hours: {text[:40]!r}")
    epoch = base.timestamp() - offset + fraction
    if not _EARLIEST <= epoch <= _LATEST:
        # A time every later format_iso would fail on (year 0 or 10000): refused here, once, by field.
        raise ValueError(f"{text[:40]!r} lies outside the years 1-9999")
    return epoch


def format_iso(epoch: float) -> str:
    """UTC ISO-8601 with millisecond precision and a Z, as the API returns times."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timespan(text: str) -> float:
    """Seconds of a .NET TimeSpan string `[-][d.]hh:mm:ss[.fffffff]`."""
    m = _TIMESPAN.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a TimeSpan: {text[:40]!r}")
    negative, days, hours, minutes, seconds, fraction = m.groups()
    if days is not None and len(days) > 7:  # 10 million days is already 27,000 years
        raise ValueError(f"TimeSpan of {len(days)}-digit days: {text[:40]!r}")
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    total_f = total + (float("0." + fraction) if fraction else 0.0)
    return -total_f if negative else total_f


def parse_log_time(line: str) -> float | None:
    """Epoch seconds of an Aura log line's `[yyyy-MM-dd HH:mm:ss]` prefix, which is in local time."""
    m = _LOG_PREFIX.match(line)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    try:
        return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
    except (OverflowError, ValueError):
        return None
