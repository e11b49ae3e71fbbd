"""Queue intake: a JSON request naming a pipeline and its inputs (see shared.work_items for the schema).

Bad requests are rejected once (record + rejected queue) and the function returns normally, so the host never
retries them; only transient failures (Batch or Storage unavailable) raise and let the host retry the message, and
its last delivery (host.json maxDequeueCount) fails the runs with the reason rather than leaving them to poison.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.context import get_context
from shared.intake import handle_request_delivery

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.queue")


@bp.queue_trigger(arg_name="msg", queue_name="%REQUESTS_QUEUE%", connection="EVENTBATCH_STORAGE")
def queue_intake(msg: func.QueueMessage) -> None:
    result = handle_request_delivery(get_context(), msg.get_body(), msg.id, msg.dequeue_count)
    log.info("request %s: %s, %d run(s) %s", msg.id, result.status, len(result.run_ids), result.reason or "")
