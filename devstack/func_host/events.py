"""Post BlobCreated events to a running local host, in the place of Event Grid (see devstack.func_host.webhook).

The local stack's own uploaders call `publish_blob_created` after each upload, so their blobs reach the blob
trigger at once instead of at the next container scan. Blob triggers with source EventGrid get the event on their
webhook; eventGridTrigger functions with a local subscription (devstack.func_host.eventgrid_local) get it through
the host's local publish endpoint, which journals it and delivers it like Event Grid (one POST for all of them). It never fails the upload: when no host runs, or the host
cannot be reached, the event is simply not sent, and the scan finds the blob (as Event Grid's retries would).
"""

from __future__ import annotations

import json
import logging
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger("eventbatch.events")


def _status(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / "host.json").read_text())
    except (OSError, ValueError):
        return {}


def _subscribed(fn: dict, container: str, name: str) -> bool:
    """An eventGridTrigger function of the status file whose local subscription covers the blob."""
    sub = fn.get("subscription") if fn.get("trigger") == "eventGridTrigger" else None
    return isinstance(sub, dict) and sub.get("container") == container and name.startswith(sub.get("prefix") or "")


def blob_created_event(url: str, container: str, name: str, etag: str | None, size: int | None,
                       content_type: str | None, api: str = "PutBlob") -> dict:
    return {"id": str(uuid.uuid4()), "eventType": "Microsoft.Storage.BlobCreated",
            "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
            "eventTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "dataVersion": "",
            "metadataVersion": "1",
            "data": {"api": api, "eTag": etag, "contentType": content_type, "contentLength": size,
                     "blobType": "BlockBlob", "url": url}}


def publish_blob_created(state_dir: Path, blob_url: str, container: str, name: str, *, etag: str | None = None,
                         size: int | None = None, content_type: str | None = None, timeout: float = 2.0) -> int:
    """Send the event to every blob function of the host (state dir) that watches `container` and to every
    eventGridTrigger subscription covering the blob; returns how many accepted it."""
    status = _status(state_dir)
    hook = status.get("webhook") or {}
    if status.get("state") != "running" or not hook.get("url") or not hook.get("key"):
        return 0
    body = json.dumps([blob_created_event(blob_url, container, name, etag, size, content_type)]).encode()
    sent = 0
    subscribed = [fn for fn in status.get("functions") or [] if _subscribed(fn, container, name)]
    if subscribed and hook.get("publish_url"):
        request = urllib.request.Request(f"{hook['publish_url']}?code={quote(hook['key'])}", data=body,
                                         method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URL
                if response.status == 200:
                    sent += int((json.loads(response.read() or b"{}") or {}).get("deliveries") or 0)
        except (OSError, ValueError) as exc:
            log.debug("event for %s/%s not published (%s); the host's fallback scan will find the blob", container,
                      name, exc)
    for fn in status.get("functions") or []:
        if fn.get("container") != container or fn.get("source") != "EventGrid":
            continue
        url = f"{hook['url']}?functionName=Host.Functions.{quote(fn['name'])}&code={quote(hook['key'])}"
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URL
                sent += response.status == 202
        except OSError as exc:
            log.debug("event for %s/%s not delivered (%s); the host's scan will find the blob", container, name, exc)
    return sent
