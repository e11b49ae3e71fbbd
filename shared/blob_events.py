"""Storage BlobCreated events as Event Grid delivers them: which blob, which version, and whether it is complete.

Both blob functions (functions/blob_intake.py on the inputs, functions/task_marker.py on the completion markers) are
Event Grid triggers. An event carries what intake needs to know about the blob (its ETag, size and content type),
so no HEAD is made for it, and the host keeps no blob receipts: Event Grid delivers at least once, and the run
records (a task id per blob version) make a repeated event a duplicate.

Only the storage APIs that fire once a blob is fully committed count (CopyBlob, PutBlob, PutBlockList,
FlushWithClose: Microsoft's guidance for consuming BlobCreated); the Event Grid subscriptions in infra/ filter on
them too, and this module checks again, so a Data Lake create before its flush never becomes a run of an empty
file. The event schema: https://learn.microsoft.com/azure/event-grid/event-schema-blob-storage
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
SUBJECT_PREFIX = "/blobServices/default/containers/"
COMPLETE_APIS = frozenset({"CopyBlob", "PutBlob", "PutBlockList", "FlushWithClose"})


@dataclass(frozen=True)
class BlobCreated:
    container: str
    name: str
    etag: str
    size: int
    content_type: str | None
    api: str | None
    url: str | None

    def properties(self) -> SimpleNamespace:
        """The blob's properties as a HEAD would give them (etag, size, content_settings.content_type)."""
        return SimpleNamespace(etag=self.etag, size=self.size,
                               content_settings=SimpleNamespace(content_type=self.content_type))


class NotABlobEvent(ValueError):
    """The event is not a BlobCreated event this app acts on; the message says why."""


def blob_of_subject(subject: object) -> tuple[str, str] | None:
    """(container, blob name) of a blob event's subject `/blobServices/default/containers/<c>/blobs/<name>`."""
    if not isinstance(subject, str) or not subject.startswith(SUBJECT_PREFIX):
        return None
    container, sep, name = subject[len(SUBJECT_PREFIX):].partition("/blobs/")
    if not sep or not container or not name:
        return None
    return container, name


def blob_of_event(event: dict) -> tuple[str, str] | None:
    """(container, blob) of a BlobCreated event dict in the Event Grid or CloudEvents schema; None otherwise."""
    kind = event.get("eventType") or event.get("type")
    return blob_of_subject(event.get("subject")) if kind == BLOB_CREATED else None


def blob_created(event_type: str | None, subject: str | None, data: object) -> BlobCreated:
    """The blob version a delivered event announces; raises NotABlobEvent for anything else."""
    if event_type != BLOB_CREATED:
        raise NotABlobEvent(f"event type {event_type!r} is not {BLOB_CREATED}")
    where = blob_of_subject(subject)
    if where is None:
        raise NotABlobEvent(f"subject {subject!r} does not name a blob (/blobServices/default/containers/<c>/blobs/<n>)")
    if not isinstance(data, dict):
        raise NotABlobEvent(f"event for {where[0]}/{where[1]} has no data object")
    api = data.get("api")
    if api not in COMPLETE_APIS:
        raise NotABlobEvent(f"{where[0]}/{where[1]} was written by {api!r}, which does not commit a whole blob "
                            f"(only {', '.join(sorted(COMPLETE_APIS))} do)")
    etag = str(data.get("eTag") or "").strip('"')
    if not etag:
        raise NotABlobEvent(f"event for {where[0]}/{where[1]} carries no eTag")
    try:
        size = int(data.get("contentLength") or 0)
    except (TypeError, ValueError):
        raise NotABlobEvent(f"event for {where[0]}/{where[1]} has a bad contentLength "
                            f"{str(data.get('contentLength'))[:40]!r}") from None
    content_type = data.get("contentType")
    return BlobCreated(container=where[0], name=where[1], etag=etag, size=size,
                       content_type=content_type if isinstance(content_type, str) else None, api=api,
                       url=data.get("url") if isinstance(data.get("url"), str) else None)


def blob_created_in(container: str, event_type: str | None, subject: str | None, data: object) -> BlobCreated:
    """As blob_created, for a function that acts on one container only: an event of another container (a
    subscription whose filter is wrong) is refused too."""
    blob = blob_created(event_type, subject, data)
    if blob.container != container:
        raise NotABlobEvent(f"{blob.container}/{blob.name} is not in container {container} (check the Event Grid "
                            "subscription's filter)")
    return blob
