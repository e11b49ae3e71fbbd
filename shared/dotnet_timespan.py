"""Parse .NET TimeSpan strings as host.json writes them ("00:00:02", "1.02:00:00", "00:00:00.250"); not ISO 8601
(that is shared.durations)."""

import re

from shared.errors import ConfigError

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2})(?:\.(?P<frac>\d{1,7}))?$")


def parse_timespan(value: object, setting: str) -> float | None:
    """Return seconds, or None for "-1" (unbounded); raise ConfigError naming ``setting`` otherwise.

    host.json holds TimeSpans as strings; numbers are not accepted by the real host either, so a bare
    number is reported with the expected format instead of being guessed at.
    """
    if isinstance(value, str) and value.strip() == "-1":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{setting}: expected a TimeSpan string like \"00:00:02\", got {value!r}")
    match = _TIMESPAN.match(value.strip())
    if not match:
        raise ConfigError(f"{setting}: {value!r} is not a TimeSpan; use \"hh:mm:ss\" (e.g. \"00:05:00\")")
    days = int(match["days"] or 0)
    hours, minutes, seconds = int(match["h"]), int(match["m"]), int(match["s"])
    if minutes > 59 or seconds > 59 or hours > 23:
        raise ConfigError(f"{setting}: {value!r} has a field out of range; use \"hh:mm:ss\" with mm, ss < 60")
    frac = float("0." + match["frac"]) if match["frac"] else 0.0
    return days * 86400 + hours * 3600 + minutes * 60 + seconds + frac


def format_timespan(seconds: float) -> str:
    """Format seconds as "hh:mm:ss" for log messages that quote host.json values back to the user."""
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
