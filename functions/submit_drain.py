"""Submit drain: the runs Batch could not take on arrival (it was unavailable, throttling, the job could not be
created) come back here on a submit-queue message after a back-off, and are tried again (shared.submission).

A queue trigger at the host's default polling, not a timer: nothing waits here in normal operation, because runs
are submitted on arrival (shared.batcher). Attempts are bounded by SUBMIT_MAX_ATTEMPTS, after which the runs are
failed with the last error as the reason; the function itself never fails for Batch's answers, so the host never
poisons a retry message.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.context import get_context
from shared.submission import retry_from_message

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.drain")


@bp.queue_trigger(arg_name="msg", queue_name="%SUBMIT_QUEUE%", connection="EVENTBATCH_STORAGE")
def submit_drain(msg: func.QueueMessage) -> None:
    report = retry_from_message(get_context(), msg.get_body())
    if report is not None and (report.submitted or report.deferred or report.failed or report.rejected):
        log.info("retry: %d submitted, %d deferred again, %d failed, %d rejected, %d Batch call(s)",
                 len(report.submitted), len(report.deferred), len(report.failed), len(report.rejected),
                 report.batch_calls)
