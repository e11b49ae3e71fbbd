"""Run-time values of the formula language and their service-style text form.

double -> float, doubleVec -> DoubleVec, string -> str, timestamp -> aware datetime (UTC), timeinterval -> Interval
(100 ns ticks, so that TimeInterval_100ns is not rounded away), node deallocation keywords -> DeallocationOption,
service-defined sampled variables -> Metric (an object with GetSample and friends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

TICKS_PER_SECOND = 10_000_000


class DoubleVec(tuple):
    """A doubleVec: an immutable vector of floats."""

    TYPE_NAME = "doubleVec"


@dataclass(frozen=True, order=True)
class Interval:
    """A timeinterval, held in 100-nanosecond ticks like .NET's TimeSpan."""

    TYPE_NAME = "timeinterval"  # not a field: no annotation

    ticks: int

    @classmethod
    def from_seconds(cls, seconds: float) -> Interval:
        return cls(round(seconds * TICKS_PER_SECOND))

    @classmethod
    def from_timedelta(cls, td: timedelta) -> Interval:
        return cls(round(td.total_seconds() * TICKS_PER_SECOND))

    @property
    def seconds(self) -> float:
        return self.ticks / TICKS_PER_SECOND

    def to_timedelta(self) -> timedelta:
        return timedelta(microseconds=self.ticks / 10)


TIME_INTERVALS = {
    "TimeInterval_Zero": Interval(0),
    "TimeInterval_100ns": Interval(1),
    "TimeInterval_Microsecond": Interval(10),
    "TimeInterval_Millisecond": Interval(10_000),
    "TimeInterval_Second": Interval(TICKS_PER_SECOND),
    "TimeInterval_Minute": Interval(60 * TICKS_PER_SECOND),
    "TimeInterval_Hour": Interval(3600 * TICKS_PER_SECOND),
    "TimeInterval_Day": Interval(86400 * TICKS_PER_SECOND),
    "TimeInterval_Week": Interval(7 * 86400 * TICKS_PER_SECOND),
    "TimeInterval_Year": Interval(365 * 86400 * TICKS_PER_SECOND),
}


class DeallocationOption(str):
    """One of the $NodeDeallocationOption keywords."""

    TYPE_NAME = "nodeDeallocationOption"


DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")


def type_name(value: object) -> str:
    """The formula language's name for a value's type, as its error messages say it: a class of the language
    (DoubleVec, Interval, DeallocationOption, samples.Metric) names itself in TYPE_NAME."""
    own = getattr(type(value), "TYPE_NAME", None)
    if own:
        return own
    if isinstance(value, bool | int | float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "timestamp"
    return type(value).__name__


def format_double(value: float) -> str:
    """Like .NET's double.ToString() (15 significant digits): 10 -> '10', 0.5 -> '0.5', 1/3 -> '0.333333333333333'."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    text = f"{value:.15g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        return f"{mantissa}E{sign}{abs(int(exp)):02d}"
    return text


def format_timestamp(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def format_interval(value: Interval) -> str:
    """.NET TimeSpan text: [-][d.]hh:mm:ss[.fffffff]."""
    ticks = abs(value.ticks)
    sign = "-" if value.ticks < 0 else ""
    seconds, frac = divmod(ticks, TICKS_PER_SECOND)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{sign}{f'{days}.' if days else ''}{hours:02d}:{minutes:02d}:{seconds:02d}"
    return text + (f".{frac:07d}" if frac else "")


def format_value(value: object) -> str:
    """The text the service puts after ``name=`` in AutoScaleRun.results."""
    if isinstance(value, bool | int | float):
        return format_double(float(value))
    if isinstance(value, DoubleVec):
        return "[" + ",".join(format_double(v) for v in value) + "]"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, Interval):
        return format_interval(value)
    return str(value)
