"""Task completion, on the event of the task's completion marker (Event Grid blob trigger on MARKER_CONTAINER).

Every Batch task the app submits uploads a marker blob `<job id>/<task id>` when it completes (shared.task_spec);
its BlobCreated event arrives here. The SDK-type binding hands us a BlobClient: only the name is used, the marker's
content (a copy of the task's stderr) is never read. shared.completion records the run.
"""

from __future__ import annotations

import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from shared.completion import check_task, parse_marker_name
from shared.context import get_context

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.marker")


@bp.blob_trigger(arg_name="client", path="%MARKER_CONTAINER%/{name}", connection="EVENTBATCH_STORAGE",
                 source=func.BlobSource.EVENT_GRID)
def task_marker(client: blob.BlobClient) -> None:
    parsed = parse_marker_name(client.blob_name)
    if parsed is None:
        log.warning("ignoring %s/%s: not a completion marker (<job id>/<task id>)", client.container_name,
                    client.blob_name)
        return
    outcome = check_task(get_context(), *parsed)
    log.info("marker %s: %s", client.blob_name, outcome.status)
