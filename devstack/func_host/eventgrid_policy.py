"""Event Grid's delivery policy and dead-letter blobs, for the local Event Grid (devstack.func_host.eventgrid_local).

Retry schedule (delivery-and-retry docs, as the brief fixes it): 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h,
then hourly, until maxDeliveryAttempts (default 30, 1-30) attempts were made or eventTimeToLive (default 1440 min)
has passed since the event was published, whichever comes first. Then the event is dead-lettered, if a
dead-letter container is configured, as one blob ``<function>/<yyyy>/<mm>/<dd>/<hh>/<uuid>.json`` holding a JSON
array with the event plus Event Grid's dead-letter properties; otherwise it is dropped (logged).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import ResourceExistsError

from devstack.func_host.errors import ConfigError
from devstack.func_host.eventgrid_journal import Entry

DEFAULT_SCHEDULE = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)  # then hourly (the last step repeats)
MAX_DELIVERY_ATTEMPTS = 30
EVENT_TIME_TO_LIVE_MINUTES = 1440.0
MAX_ATTEMPTS_EXCEEDED = "MaxDeliveryAttemptsExceeded"
TTL_EXCEEDED = "TimeToLiveExceeded"


@dataclass(frozen=True)
class RetryPolicy:
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    max_delivery_attempts: int = MAX_DELIVERY_ATTEMPTS
    event_time_to_live: float = EVENT_TIME_TO_LIVE_MINUTES * 60  # seconds

    def delay_after(self, attempts: int) -> float:
        """The wait before attempt ``attempts + 1``, after ``attempts`` failed ones (>= 1)."""
        return self.schedule[min(max(attempts, 1), len(self.schedule)) - 1]

    def expires_at(self, published: float) -> float:
        return published + self.event_time_to_live


def parse_policy(schedule: str | None, max_attempts: str | int | None, ttl_minutes: str | float | None,
                 where: str = "EventGridLocal") -> RetryPolicy:
    """Settings/flags -> policy; each bad value names its setting."""
    steps = DEFAULT_SCHEDULE
    if schedule not in (None, ""):
        try:
            steps = tuple(float(part) for part in str(schedule).split(",") if part.strip())
        except ValueError:
            steps = ()
        if not steps or any(step < 0 for step in steps):
            raise ConfigError(f"{where} retry schedule {schedule!r}: use comma-separated seconds >= 0, e.g. "
                              "\"10,30,60,300,600,1800,3600\" (the last step repeats)")
    attempts = MAX_DELIVERY_ATTEMPTS
    if max_attempts not in (None, ""):
        if not str(max_attempts).strip().isdigit() or not 1 <= int(max_attempts) <= 30:
            raise ConfigError(f"{where} maxDeliveryAttempts {max_attempts!r}: must be an integer from 1 to 30")
        attempts = int(max_attempts)
    ttl = EVENT_TIME_TO_LIVE_MINUTES
    if ttl_minutes not in (None, ""):
        try:
            ttl = float(ttl_minutes)
        except ValueError:
            ttl = -1.0
        if not 0 < ttl <= 1440:
            raise ConfigError(f"{where} eventTimeToLive {ttl_minutes!r}: minutes, more than 0 and at most 1440")
    return RetryPolicy(schedule=steps, max_delivery_attempts=attempts, event_time_to_live=ttl * 60)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def dead_letter_document(entry: Entry, reason: str) -> list[dict]:
    """What Event Grid writes for one dead-lettered event (EventGridSchema): the event and its delivery story."""
    return [{**entry.event, "deadLetterReason": reason, "deliveryAttempts": entry.attempts,
             "lastDeliveryOutcome": entry.last_outcome, "lastHttpStatusCode": entry.last_status,
             "publishTime": _iso(entry.published), "lastDeliveryAttemptTime": _iso(entry.last_attempt)}]


def dead_letter_blob_name(function: str, when: float) -> str:
    moment = datetime.fromtimestamp(when, UTC)
    return f"{function}/{moment:%Y/%m/%d/%H}/{uuid.uuid4()}.json"


class DeadLetterWriter:
    """Writes dead-letter blobs into ``container`` (created on demand) with the host's storage client."""

    def __init__(self, blob_service, container: str):
        self.container = container
        self._client = blob_service.get_container_client(container)
        self._created = False

    def write(self, entry: Entry, reason: str, now: float) -> str:
        if not self._created:
            try:
                self._client.create_container()
            except ResourceExistsError:
                pass
            self._created = True
        name = dead_letter_blob_name(entry.function, now)
        self._client.upload_blob(name, json.dumps(dead_letter_document(entry, reason)).encode("utf-8"),
                                 overwrite=True)
        return name
