"""Task completion, on the BlobCreated event of the task's completion marker (an Event Grid trigger: infra's
subscription `task-markers-created` on MARKER_CONTAINER; locally EventGridLocal__task_marker, fed by the Batch
emulator as Batch's uploads feed Event Grid on Azure).

Every Batch task the app submits uploads a marker blob `<job id>/<task id>` when it completes (shared.task_spec);
only its name is used (the content, a copy of the task's stderr, is never read). shared.completion records the run.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.blob_events import NotABlobEvent, blob_created_in
from shared.completion import check_task, parse_marker_name
from shared.context import get_context

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.marker")


@bp.event_grid_trigger(arg_name="event")
def task_marker(event: func.EventGridEvent) -> None:
    ctx = get_context()
    try:
        blob = blob_created_in(ctx.settings.marker_container, event.event_type, event.subject, event.get_json())
    except NotABlobEvent as exc:
        log.warning("event %s ignored: %s", event.id, exc)
        return
    parsed = parse_marker_name(blob.name)
    if parsed is None:
        log.warning("ignoring %s/%s: not a completion marker (<job id>/<task id>)", blob.container, blob.name)
        return
    outcome = check_task(ctx, *parsed)
    log.info("marker %s: %s", blob.name, outcome.status)
