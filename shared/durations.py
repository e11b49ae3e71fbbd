"""ISO 8601 durations (PT10M, P1D, PT0S) as used by Batch and by our settings, parsed with `isodate`; and the
ISO 8601 timestamps the records carry (`parse_timestamp`).

Batch speaks ISO 8601 durations on the wire; parsing them once here lets settings and pipelines be validated at
start-up instead of failing on the first submitted task. Only days, hours, minutes and seconds are taken, never
negative: years and months (P1M has no length in seconds), weeks, decimal commas and signs are refused, and so is
a designator with no number after it (P, PT, P1DT). The .NET TimeSpan form of host.json ("00:05:00") is another
format: shared.dotnet_timespan.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import isodate


def parse_duration(text: str) -> timedelta:
    """ValueError (with the accepted shape) when `text` is not a days/hours/minutes/seconds ISO 8601 duration."""
    value = text.strip() if isinstance(text, str) else ""
    try:
        if not value.startswith("P") or value.endswith(("P", "T")) or "W" in value or "," in value:
            raise ValueError(value)
        parsed = isodate.parse_duration(value)
    except (ValueError, isodate.ISO8601Error):
        parsed = None
    if not isinstance(parsed, timedelta) or parsed < timedelta(0):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT10M, PT1H30M or P1D")
    return parsed


def format_duration(value: timedelta) -> str:
    total = int(value.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{seconds}S" if seconds else "")
    if time or not days:
        out += "T" + (time or "0S")
    return out


def parse_timestamp(value: Any) -> datetime | None:
    """A record's ISO 8601 timestamp (`2026-12-04T10:00:00.123Z`, or a datetime as the table SDK gives it); None
    when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
