"""Times in the shapes Batch puts on the wire (ISO-8601 UTC bodies, RFC 1123 headers, ISO durations)."""

from __future__ import annotations

import itertools
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
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


def parse_duration(text: str) -> float | None:
    """Seconds of an ISO-8601 duration such as ``PT01H00M00S`` or ``P7D``; None when malformed."""
    if not isinstance(text, str):
        return None
    m = _DURATION.match(text.strip())
    if not m or text.strip() in ("P", "PT"):
        return None
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


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
