"""Sample histories of the read-only service variables, and the GetSample family of methods over them.

The service records one sample of each metric every 30 seconds and makes it visible to formulas after a delay.
A SampleHistory holds those samples per metric; ``period`` and ``delay`` are configurable so that the emulator
can sample every second and the simulator can model the service's propagation delay.

Semantics chosen where the docs are silent (see docs/autoscale.md):
- GetSample(count) returns up to ``count`` most recent visible samples, newest first, and never fails.
- GetSample(interval[, interval][, percent]) returns the visible samples in the window, newest first, and fails
  with InsufficientSampleData when fewer than ``percent`` (default 70, as the service's messages show) of the
  samples expected in the window (window length / period) are present.
- GetSamplePercent(...) returns that percentage (capped at 100) and never fails.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .values import DoubleVec, Interval

DEFAULT_PERIOD = timedelta(seconds=30)
DEFAULT_SAMPLE_PERCENT = 70.0
DEFAULT_MAX_SAMPLES = 20_160  # one week at 30 s

# Read-only service variables. Those in CURRENT_VALUE_METRICS can also be used directly as a double (their latest
# value); the others are only sample sets and must be read through GetSample.
SAMPLED_METRICS = (
    "CPUPercent", "WallClockSeconds", "MemoryBytes", "DiskBytes", "DiskReadBytes", "DiskWriteBytes",
    "DiskReadOps", "DiskWriteOps", "NetworkInBytes", "NetworkOutBytes", "SampleNodeCount", "ActiveTasks",
    "RunningTasks", "PendingTasks", "SucceededTasks", "FailedTasks", "TaskSlotsPerNode", "CurrentDedicatedNodes",
    "CurrentLowPriorityNodes", "PreemptedNodeCount", "UsableNodeCount",
)
CURRENT_VALUE_METRICS = ("CurrentDedicatedNodes", "CurrentLowPriorityNodes", "PreemptedNodeCount",
                         "TaskSlotsPerNode", "UsableNodeCount", "SampleNodeCount")


class InsufficientSamples(Exception):  # noqa: N818 - mapped to the service's InsufficientSampleData by the evaluator
    def __init__(self, metric: str, wanted: float, received: float) -> None:
        super().__init__(f"Insufficient data from data set: ${metric} wanted {_pct(wanted)}%, "
                         f"received {_pct(received)}%")


def _pct(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class SampleHistory:
    """Timestamped samples per metric, oldest first."""

    period: timedelta = DEFAULT_PERIOD
    delay: timedelta = timedelta(0)
    max_samples: int = DEFAULT_MAX_SAMPLES
    _times: dict[str, list[datetime]] = field(default_factory=dict)
    _values: dict[str, list[float]] = field(default_factory=dict)

    def record(self, when: datetime, metrics: dict[str, float]) -> None:
        """Record one sample of every metric in ``metrics`` (missing metrics simply have a gap)."""
        for name, value in metrics.items():
            times = self._times.setdefault(name, [])
            values = self._values.setdefault(name, [])
            i = bisect.bisect_left(times, when)
            if i < len(times) and times[i] == when:
                values[i] = float(value)
                continue
            times.insert(i, when)
            values.insert(i, float(value))
            if len(times) > self.max_samples:
                del times[: len(times) - self.max_samples]
                del values[: len(values) - self.max_samples]

    def extend(self, name: str, points: Iterable[tuple[datetime, float]]) -> None:
        for when, value in points:
            self.record(when, {name: value})

    def visible(self, name: str, now: datetime) -> tuple[list[datetime], list[float]]:
        times = self._times.get(name, [])
        cut = bisect.bisect_right(times, now - self.delay)
        return times[:cut], self._values.get(name, [])[:cut]

    def latest(self, name: str, now: datetime) -> float | None:
        _, values = self.visible(name, now)
        return values[-1] if values else None


@dataclass(frozen=True)
class Metric:
    """A read-only service variable as a formula sees it: ``$PendingTasks`` and friends."""

    TYPE_NAME = "sampled variable"  # not a field: no annotation

    name: str
    history: SampleHistory
    now: datetime
    current: float | None = None

    # -- helpers -----------------------------------------------------------------------------------------
    def _bounds(self, start: object, end: object | None) -> tuple[datetime, datetime]:
        a = self._absolute(start)
        b = self.now if end is None else self._absolute(end)
        return (a, b) if a <= b else (b, a)

    def _absolute(self, point: object) -> datetime:
        if isinstance(point, Interval):
            return self.now - point.to_timedelta()
        if isinstance(point, datetime):
            return point
        raise TypeError("a time range bound must be a timestamp or a timeinterval")

    def _window(self, start: object, end: object | None) -> tuple[list[float], float]:
        lo, hi = self._bounds(start, end)
        times, values = self.history.visible(self.name, self.now)
        i = bisect.bisect_right(times, lo)
        j = bisect.bisect_right(times, hi)
        got = values[i:j]
        expected = max(1, math.floor((hi - lo) / self.history.period + 1e-9))
        percent = min(100.0, 100.0 * len(got) / expected)
        return got, percent

    # -- the methods a formula can call ------------------------------------------------------------------
    def get_sample(self, args: list[object]) -> DoubleVec:
        if len(args) == 1 and isinstance(args[0], float | int):
            count = int(args[0])
            if count < 0:
                raise ValueError("GetSample(count) needs a count of at least 0")
            _, values = self.history.visible(self.name, self.now)
            return DoubleVec(reversed(values[len(values) - count:] if count else []))
        start, end, percent = _range_args(args)
        got, available = self._window(start, end)
        wanted = DEFAULT_SAMPLE_PERCENT if percent is None else percent
        if available + 1e-9 < wanted:
            raise InsufficientSamples(self.name, wanted, math.floor(available))
        return DoubleVec(reversed(got))

    def get_sample_percent(self, args: list[object]) -> float:
        if not 1 <= len(args) <= 2 or not all(isinstance(a, Interval | datetime) for a in args):
            raise TypeError("GetSamplePercent takes (timestamp or timeinterval) startTime "
                            "[, (timestamp or timeinterval) endTime]")
        _, percent = self._window(args[0], args[1] if len(args) == 2 else None)
        return percent

    def get_sample_period(self) -> Interval:
        return Interval.from_timedelta(self.history.period)

    def count(self) -> float:
        return float(len(self.history.visible(self.name, self.now)[0]))

    def history_begin_time(self) -> datetime:
        times, _ = self.history.visible(self.name, self.now)
        if not times:
            raise InsufficientSamples(self.name, 1, 0)
        return times[0]


def _range_args(args: list[object]) -> tuple[object, object | None, float | None]:
    def is_time(v: object) -> bool:
        return isinstance(v, Interval | datetime)

    def is_num(v: object) -> bool:
        return isinstance(v, float | int)

    if len(args) == 1 and is_time(args[0]):
        return args[0], None, None
    if len(args) == 2 and is_time(args[0]) and is_num(args[1]):
        return args[0], None, float(args[1])
    if len(args) == 2 and is_time(args[0]) and is_time(args[1]):
        return args[0], args[1], None
    if len(args) == 3 and is_time(args[0]) and is_time(args[1]) and is_num(args[2]):
        return args[0], args[1], float(args[2])
    raise TypeError("GetSample takes (double count), ((timestamp or timeinterval) startTime [, double samplePercent])"
                    " or (startTime, endTime [, double samplePercent])")
