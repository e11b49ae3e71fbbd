"""The Batch data-plane client and the one retry rule every Batch call of the app follows.

azure-batch 15.1: `BatchClient(endpoint, credential)`; AzureNamedKeyCredential (local emulator, shared key) or a
token credential (DefaultAzureCredential on Azure; tokens are refused over plain http, which settings catch).
The SDK's own retries are off (retry_total=0) so that every HTTP call is visible and counted, and throttling is
handled in one place: `call()` retries 408/429/5xx and connection errors with exponential back-off, honouring
Retry-After, within a time budget.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.settings import BatchSettings
from shared.telemetry import BatchCallPolicy

log = logging.getLogger("eventbatch.batch")
T = TypeVar("T")
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


def make_batch_client(settings: BatchSettings, **kwargs):
    if settings.account_key:
        credential = AzureNamedKeyCredential(settings.account_name, settings.account_key)
    else:
        # Imported only where an identity is used (Azure): about 70 ms of every cold start the local stack,
        # which signs with keys, would pay for nothing.
        from azure.identity import DefaultAzureCredential

        credential = (DefaultAzureCredential(managed_identity_client_id=settings.client_id) if settings.client_id
                      else DefaultAzureCredential())
    kwargs.setdefault("retry_total", 0)
    kwargs.setdefault("connection_timeout", 10)
    kwargs.setdefault("read_timeout", 60)
    kwargs.setdefault("custom_hook_policy", BatchCallPolicy())  # every call counted and timed (shared.telemetry)
    return BatchClient(settings.url, credential, **kwargs)


def error_code(exc: HttpResponseError) -> str | None:
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None)
    if code:
        return code
    model = getattr(exc, "model", None)
    return getattr(model, "code", None)


def retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name in ("Retry-After", "retry-after", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value:
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds / 1000 if name.endswith("-ms") else seconds
    return None


def is_retryable(exc: Exception) -> bool:
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in RETRYABLE_STATUS


def backoff(attempt: int, hint: float | None = None, base: float = 0.25, cap: float = 20.0) -> float:
    if hint is not None:
        return min(max(hint, 0.0), 60.0)
    return min(cap, base * 2 ** attempt) * random.uniform(0.8, 1.2)


def call(fn: Callable[[], T], what: str, budget: float = 120.0, sleep: Callable[[float], None] | None = None) -> T:
    """Run one Batch operation, retrying throttling/server/connection errors until `budget` seconds are spent."""
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            delay = backoff(attempt, retry_after(exc))
            if time.monotonic() - started + delay > budget:
                raise
            log.warning("batch %s: %s; retrying in %.1fs", what, getattr(exc, "status_code", type(exc).__name__),
                        delay)
            (sleep or time.sleep)(delay)
            attempt += 1
