"""A delayed look at a task whose completion marker arrived before Batch showed the task completed (Batch does not
order a task's uploads, and flips its state only once they are all done). shared.completion sends these with a
short, growing delay, a bounded number of times; the safety net catches the rest."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.completion import check_task
from shared.context import get_context
from shared.messages import CheckMessage

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.check")


@bp.queue_trigger(arg_name="msg", queue_name="%CHECK_QUEUE%", connection="EVENTBATCH_STORAGE")
def task_check(msg: func.QueueMessage) -> None:
    try:
        check = CheckMessage.from_body(msg.get_body())
    except ValueError:
        log.error("dropping a task check message that is not ours: %.200r", msg.get_body())
        return
    outcome = check_task(get_context(), check.job_id, check.task_id, check.attempt)
    log.info("check %s/%s (look %d): %s", check.job_id, check.task_id, check.attempt, outcome.status)
