"""A pipeline's `schedule:` (pipelines.yaml): run the pipeline at fixed times over every blob under a prefix.

    schedule: {cron: "0 0 2 * * *", prefix: "nightly/", glob: "*.csv"}

`cron` is a six-field NCRONTAB expression in UTC, validated with the same parser the local Functions host uses for
timer triggers (shared/ncrontab.py), so an expression the host would refuse fails at config load with the
field named. `prefix` is a blob prefix in the pipeline's input container (inputs.blob.container) and must lie within
inputs.blob.prefix; `glob` (default: the pipeline's inputs.blob.glob) filters the names under it.

Each occurrence is ONE request whose idempotency key is derived from the pipeline and the scheduled occurrence time
(`occurrence_key`), so a timer that fires the same occurrence twice (at-least-once delivery, a host restart, a
past-due catch-up) maps to the same request id and the same run ids: the run records make the repeat a duplicate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.errors import ConfigError
from shared.ncrontab import parse_schedule  # the one NCRONTAB parser, the local host uses it too

_FUNCTION_NAME_BAD = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class Schedule:
    cron: str
    prefix: str
    glob: str | None = None  # None = the pipeline's inputs.blob.glob


def check_cron(expression: str, where: str) -> None:
    """ConfigError naming `where` unless `expression` is a six-field NCRONTAB the Functions host accepts."""
    if not isinstance(expression, str) or len(expression.split()) != 6:
        raise ConfigError(f"pipelines.yaml {where}: {expression!r} is not a six-field NCRONTAB expression "
                          "'{second} {minute} {hour} {day} {month} {day-of-week}', e.g. '0 0 2 * * *' for 02:00 UTC "
                          "daily")
    try:
        parsed = parse_schedule(expression)
    except ConfigError as exc:  # the parser's message names the field at fault
        raise ConfigError(f"pipelines.yaml {where}: {exc}") from None
    if parsed.next_after(datetime.now(UTC)) is None:
        raise ConfigError(f"pipelines.yaml {where}: {expression!r} never occurs")


def parse_schedule_section(data, where: str, blob_policy) -> Schedule:
    """The `schedule:` mapping of one pipeline; `blob_policy` is its inputs.blob (BlobInputPolicy or None)."""
    if not isinstance(data, dict):
        raise ConfigError(f"pipelines.yaml {where}: expected a mapping {{cron, prefix, glob?}}, got "
                          f"{type(data).__name__}")
    unknown = sorted(set(map(str, data)) - {"cron", "prefix", "glob"})
    if unknown:
        raise ConfigError(f"pipelines.yaml {where}: unknown key(s) {', '.join(unknown)}; allowed: cron, prefix, glob")
    if blob_policy is None:
        raise ConfigError(f"pipelines.yaml {where}: a scheduled pipeline needs inputs.blob (the container its "
                          "prefix is in)")
    cron = data.get("cron")
    if cron is None or cron == "":
        raise ConfigError(f"pipelines.yaml {where}.cron: is required")
    check_cron(cron, f"{where}.cron")
    prefix = data.get("prefix", "")
    if not isinstance(prefix, str):
        raise ConfigError(f"pipelines.yaml {where}.prefix: expected text, got {type(prefix).__name__}")
    if not prefix.startswith(blob_policy.prefix):
        raise ConfigError(f"pipelines.yaml {where}.prefix: {prefix!r} is outside inputs.blob.prefix "
                          f"{blob_policy.prefix!r} of container {blob_policy.container}")
    glob = data.get("glob")
    if glob is not None and (not isinstance(glob, str) or not glob):
        raise ConfigError(f"pipelines.yaml {where}.glob: expected a non-empty glob pattern")
    return Schedule(cron=cron.strip(), prefix=prefix, glob=glob)


def occurrence_time(value: datetime) -> datetime:
    """The scheduled occurrence, in UTC, to the second (NCRONTAB's resolution)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def occurrence_key(pipeline: str, occurrence: datetime) -> str:
    """The idempotency key of one occurrence: the same pipeline and scheduled time give the same key (and so the
    same request id and run ids); within IDEMPOTENCY_KEY's alphabet (letters, digits, ._:@-)."""
    return f"schedule:{pipeline}:{occurrence_time(occurrence).strftime('%Y%m%dT%H%M%SZ')}"


def function_name(pipeline: str) -> str:
    """A valid Functions function name for a pipeline's timer (letters, digits, _; starts with a letter)."""
    return "scheduled_" + _FUNCTION_NAME_BAD.sub("_", pipeline)


def latest_occurrence(expression: str, now: datetime) -> datetime:
    """The scheduled occurrence a timer firing at `now` belongs to: the latest one at or before `now` (a late or
    past-due firing, or a second firing after a restart, maps to the same occurrence until the next one is due)."""
    schedule = parse_schedule(expression)
    now = occurrence_time(now)
    for back in (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=32),
                 timedelta(days=367), timedelta(days=366 * 28)):
        t = schedule.next_after(now - back)
        if t is not None and t <= now:
            while True:
                following = schedule.next_after(t)
                if following is None or following > now:
                    return t
                t = following
    return now
