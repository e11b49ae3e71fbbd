"""Six-field NCRONTAB schedules (``{second} {minute} {hour} {day} {month} {day-of-week}``), evaluated in UTC.

Supports what the Functions docs list: ``*``, values, ranges ``a-b``, lists ``a,b``, steps ``*/n``, ``a-b/n``
and ``a/n``, month names (Jan-Dec) and day names (Sun-Sat, Sunday = 0; 7 is accepted as Sunday).
As in NCrontab (the library the host uses), a day of month and a day of week that are both restricted must
both match; classic cron would fire when either does.
A TimeSpan schedule ("hh:mm:ss", App Service plans) is accepted as a fixed interval.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.dotnet_timespan import parse_timespan
from shared.errors import ConfigError

_MONTHS = {n: i + 1 for i, n in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {n: i for i, n in enumerate("sun mon tue wed thu fri sat".split())}
_FIELDS = (  # name, low, high, names
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)
_HORIZON_DAYS = 366 * 28  # the calendar repeats every 28 years (within a century): beyond it means "never"


def _value(token: str, field: tuple, expr: str) -> int:
    name, low, high, names = field
    key = token.strip().lower()
    if key[:3] in names and (len(key) == 3 or key in _full_names(names)):
        return names[key[:3]]
    if not key.isdigit():
        raise ConfigError(f"schedule {expr!r}: {token!r} is not a valid {name} value")
    number = int(key)
    if not low <= number <= high:
        raise ConfigError(f"schedule {expr!r}: {name} value {number} is outside {low}-{high}")
    return number


def _full_names(names: dict) -> set[str]:
    if names is _DAYS:
        return {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}
    if names is _MONTHS:
        return {"january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december"}
    return set()


def _parse_field(text: str, field: tuple, expr: str) -> frozenset[int]:
    name, low, high, _ = field
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ConfigError(f"schedule {expr!r}: empty list item in the {name} field")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ConfigError(f"schedule {expr!r}: step {step_text!r} in the {name} field must be a positive integer")
            step = int(step_text)
        if base == "*":
            start, end = low, high if name != "day-of-week" else 6
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, field, expr), _value(b, field, expr)
            if start > end:
                raise ConfigError(f"schedule {expr!r}: range {base!r} in the {name} field runs backwards")
        else:
            start = _value(base, field, expr)
            end = (high if name != "day-of-week" else 6) if step_text else start
        values.update(range(start, end + 1, step))
    if name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    def _day_matches(self, when: datetime) -> bool:
        return when.day in self.days and (when.isoweekday() % 7) in self.weekdays

    def next_after(self, after: datetime) -> datetime | None:
        """First occurrence strictly after ``after`` (an aware datetime), or None if there is none."""
        t = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=_HORIZON_DAYS)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t = t + timedelta(seconds=1)
            else:
                return t
        return None


@dataclass(frozen=True)
class IntervalSchedule:
    expression: str
    interval: float

    def next_after(self, after: datetime) -> datetime:
        return after.astimezone(UTC) + timedelta(seconds=self.interval)


def parse_schedule(expression: str) -> CronSchedule | IntervalSchedule:
    """Parse a timer trigger schedule; errors quote the expression and the field at fault."""
    expr = (expression or "").strip()
    fields = expr.split()
    if len(fields) == 1 and ":" in expr:
        interval = parse_timespan(expr, f"schedule {expr!r}")
        if not interval:
            raise ConfigError(f"schedule {expr!r}: a TimeSpan schedule must be positive")
        return IntervalSchedule(expr, interval)
    if len(fields) != 6:
        raise ConfigError(f"schedule {expr!r}: NCRONTAB needs six fields "
                          "'{second} {minute} {hour} {day} {month} {day-of-week}', got "
                          f"{len(fields)}; e.g. '0 */5 * * * *' for every five minutes")
    parsed = [_parse_field(text, field, expr) for text, field in zip(fields, _FIELDS, strict=True)]
    return CronSchedule(expr, *parsed)


def min_interval(schedule: CronSchedule | IntervalSchedule, start: datetime) -> float:
    """Smallest gap between the next few occurrences; the host enables useMonitor when it is >= 1 minute."""
    if isinstance(schedule, IntervalSchedule):
        return schedule.interval
    gaps = []
    previous = schedule.next_after(start)
    for _ in range(4):
        if previous is None:
            break
        nxt = schedule.next_after(previous)
        if nxt is None:
            break
        gaps.append((nxt - previous).total_seconds())
        previous = nxt
    return min(gaps) if gaps else float("inf")
