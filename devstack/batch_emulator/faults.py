"""Fault injection: answer a share of API requests with 429 or 503 (with Retry-After) and add latency.

For testing what a Batch client does when the service throttles or is briefly unavailable, which Azure Batch
does under load: the azure-batch SDKs' default retry policy retries both statuses and honours Retry-After, and
the app's submitter backs off on them. An injected fault is answered *before* the operation runs, so the request
had no effect and a retry is always safe. The health endpoint is never faulted (launchers poll it).

    --fault-rate 0.1          10 % of API requests fail: half 429 TooManyRequests, half 503 ServerBusy
    --fault-retry-after 1     seconds, sent as Retry-After (default 1)
    --fault-latency-ms 20     added before every API request is handled (faulted or not)
    --fault-seed 7            make the sequence of faults repeatable
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from devstack.batch_emulator import errors


@dataclass(frozen=True)
class FaultSettings:
    rate: float = 0.0
    retry_after: int = 1
    latency_ms: float = 0.0
    seed: int | None = None

    @property
    def active(self) -> bool:
        return self.rate > 0 or self.latency_ms > 0


class FaultInjector:
    """Thread-safe; counts what it injected so tests and benchmarks can report it."""

    def __init__(self, settings: FaultSettings):
        self.settings = settings
        self._random = random.Random(settings.seed)
        self._lock = threading.Lock()
        self.injected = {429: 0, 503: 0}
        self.requests = 0

    def before_request(self) -> None:
        """Sleep the configured latency, then maybe raise the 429/503 BatchError the server answers with."""
        s = self.settings
        if s.latency_ms > 0:
            time.sleep(s.latency_ms / 1000)
        with self._lock:
            self.requests += 1
            if s.rate <= 0 or self._random.random() >= s.rate:
                return
            status = 429 if self._random.random() < 0.5 else 503
            self.injected[status] += 1
        headers = {"Retry-After": str(s.retry_after)}
        if status == 429:
            raise errors.BatchError(429, "TooManyRequests", "The server is throttling requests (injected by "
                                    "--fault-rate). Retry after the time given in Retry-After.",
                                    {"Reason": "fault injection"}, headers=headers)
        raise errors.BatchError(503, "ServerBusy", "The server is currently unable to receive requests (injected "
                                "by --fault-rate). Please retry your request.", {"Reason": "fault injection"},
                                headers=headers)

    def report(self) -> dict:
        with self._lock:
            return {"requests": self.requests, "injected429": self.injected[429],
                    "injected503": self.injected[503]}
