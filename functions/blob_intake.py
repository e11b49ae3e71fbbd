"""Blob intake: an Event Grid trigger for BlobCreated events of the input container (infra's subscription
`input-blob-created`; locally the host's Event Grid stand-in, EventGridLocal__blob_intake).

The event says which blob version arrived (container, name, ETag, size, content type), so the function makes no
Storage call to learn it and never reads the content it only forwards to Batch; the host keeps no blob receipts
(Event Grid delivers at least once: a repeated event finds the run's record and is a duplicate). An event this app
does not act on (another type, a blob not yet committed, a malformed subject) is logged and acknowledged, so Event
Grid does not retry it; an exception (Storage unavailable) makes the host answer 500, and Event Grid delivers the
event again later, then dead-letters it (`eventbatch replay` brings dead letters back).
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.blob_events import NotABlobEvent, blob_created_in
from shared.context import get_context
from shared.intake import handle_blob

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.blob")


@bp.event_grid_trigger(arg_name="event")
def blob_intake(event: func.EventGridEvent) -> None:
    ctx = get_context()
    try:
        blob = blob_created_in(ctx.settings.input_container, event.event_type, event.subject, event.get_json())
    except NotABlobEvent as exc:
        log.warning("event %s ignored: %s", event.id, exc)
        return
    result = handle_blob(ctx, blob.container, blob.name, blob.properties)
    log.info("blob %s/%s: %s %s", blob.container, blob.name, result.status, result.reason or "")
