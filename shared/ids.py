"""Deterministic identifiers: Batch task IDs, job IDs, request IDs and input keys.

A task ID is a hash of what makes the work unique (pipeline + input identity including the ETag, plus the request
for queue requests), so the same event delivered three times produces the same ID and Batch answers TaskExists
instead of running the work again. 130 bits of SHA-256 in lower-case base32 keep IDs short (at most 51 characters
with a 24-character pipeline name, Batch allows 64) and collision-resistant; Batch IDs are case-insensitive, so
the alphabet has one case only.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

_SEP = "\x1f"


def digest(*parts: str, length: int = 26) -> str:
    raw = hashlib.sha256(_SEP.join(parts).encode("utf-8")).digest()
    return base64.b32encode(raw).decode("ascii").lower().rstrip("=")[:length]


def input_key(container: str, name: str) -> str:
    """A short, path-safe stand-in for a blob's name (stable across versions of the blob)."""
    return digest("input", container, name, length=16)


def etag_of(etag: str) -> str:
    """An ETag in one form: unquoted, as listings and Event Grid events give it (an HTTP header quotes it)."""
    return str(etag or "").strip('"')


def blob_task_id(pipeline: str, container: str, name: str, etag: str) -> str:
    return f"{pipeline}-{digest('blob', pipeline, container, name, etag_of(etag))}"


def request_task_id(pipeline: str, request: str, container: str, name: str, etag: str) -> str:
    return f"{pipeline}-{digest('request', pipeline, request, container, name, etag_of(etag))}"


def merge_task_id(pipeline: str, request: str) -> str:
    return f"{pipeline}-m{digest('merge', pipeline, request, length=25)}"


def barrier_task_id(pipeline: str, request: str, index: int) -> str:
    return f"{pipeline}-b{digest('barrier', pipeline, request, str(index), length=25)}"


def request_id(idempotency_key: str | None, message_id: str | None, body: str) -> str:
    """The idempotency key when the client gave one (namespaced by hashing), else the queue message's identity:
    a redelivered message maps to the same request, a new message to a new one."""
    if idempotency_key:
        return "k" + digest("key", idempotency_key, length=20)
    if message_id:
        return "m" + digest("message", message_id, length=20)
    return "b" + digest("body", body, length=20)


def rejection_id(source: str, *identity: str) -> str:
    """The record id of a rejected input; a blob's identity ends with its ETag (any form)."""
    if source == "blob" and identity:
        identity = (*identity[:-1], etag_of(identity[-1]))
    return "rej-" + digest("rejection", source, *identity)


def job_id(prefix: str, pipeline: str, period: str, now: datetime | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = now.strftime("%Y%m%d") if period == "day" else now.strftime("%Y%m%dt%H")
    return f"{prefix}-{pipeline}-{stamp}"


def job_period_start(job: str, prefix: str) -> datetime | None:
    """The start of the period a job ID names (None for jobs that are not ours)."""
    if not job.startswith(prefix + "-"):
        return None
    stamp = job.rsplit("-", 1)[-1]
    for fmt in ("%Y%m%dt%H", "%Y%m%d"):
        try:
            return datetime.strptime(stamp, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None
