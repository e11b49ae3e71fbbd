"""Times in the shapes Batch puts on the wire (ISO-8601 UTC bodies, RFC 1123 headers, ISO durations)."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import isodate

# What Batch's durations (.NET TimeSpan as XML Schema durations) are made of: days, then T and hours/minutes/seconds.
_DAY_PART = frozenset("0123456789.D")
_TIME_PART = frozenset("0123456789.HMS")
# Batch reports "no limit" as TimeSpan.MaxValue.
UNLIMITED = "P10675199DT2H48M5.4775807S"
UNLIMITED_SECONDS = 10675199 * 86400.0


def now() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    return iso(now())


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def rfc1123(text_iso: str) -> str:
    return format_datetime(parse_iso(text_iso), usegmt=True)


def parse_timedelta(text: str, setting: str) -> timedelta:
    """ISO-8601 duration such as ``PT5M``, ``PT01H00M00S`` or ``P1DT1H30M15.5S`` -> timedelta; ValueError naming
    ``setting`` and the expected form otherwise.

    isodate parses; the checks before it refuse what isodate takes but Batch does not: a sign, weeks, years,
    months, a decimal comma, the alternative ``P0001-02-03`` form, and a ``T`` with no time after it (``PT``).
    """
    stripped = text.strip() if isinstance(text, str) else ""
    days, designator, times = stripped.partition("T")
    if days[:1] == "P" and set(days[1:]) <= _DAY_PART and set(times) <= _TIME_PART and (times or not designator):
        try:
            return isodate.parse_duration(stripped)
        except (ValueError, OverflowError):
            pass
    raise ValueError(f"{setting}: '{text}' is not an ISO-8601 duration such as PT5M, PT30S or P1D")


def parse_duration(text: str) -> float | None:
    """Seconds of an ISO-8601 duration (see parse_timedelta); None when malformed."""
    try:
        return parse_timedelta(text, "duration").total_seconds()
    except ValueError:
        return None


def format_duration(seconds: float) -> str:
    td = timedelta(seconds=seconds)
    hours, rem = divmod(td.seconds, 3600)
    minutes, secs = divmod(rem, 60)
    out = "P"
    if td.days:
        out += f"{td.days}D"
    return out + f"T{hours}H{minutes}M{secs}S"


_etag_lock = threading.Lock()
_etag_counter = itertools.count()


def new_etag() -> str:
    """A fresh, strictly increasing ETag shaped like Batch's (``0x8D...``)."""
    with _etag_lock:
        n = next(_etag_counter)
    return f"0x8D{(time.time_ns() // 100 + n) & 0xFFFFFFFFFFFFF:013X}"
