"""ISO 8601 durations (PT10M, P1D, PT0S) as used by Batch and by our settings.

Batch speaks ISO 8601 durations on the wire; parsing them once here lets settings and pipelines be validated at
start-up instead of failing on the first submitted task.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """ValueError (with the accepted shape) when `text` is not a days/hours/minutes/seconds ISO 8601 duration."""
    m = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not m or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT10M, PT1H30M or P1D")
    parts = {k: float(v) for k, v in m.groupdict().items() if v}
    return timedelta(**parts)


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
