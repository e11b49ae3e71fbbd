"""Control messages (CONTROL_QUEUE): cancel or retry runs on Azure without the CLI (shared.control_messages).

A bad message is rejected once with its reason (a record and a message on the rejected queue) and the function
returns, so the host never retries it; only a retry whose new attempts Batch did not take yet raises, and the host
delivers the message again (the same retry submits them and creates nothing twice).
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.context import get_context
from shared.control_messages import handle_control_message
from shared.outcomes import IntakeResult

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.control")


@bp.queue_trigger(arg_name="msg", queue_name="%CONTROL_QUEUE%", connection="EVENTBATCH_STORAGE")
def control(msg: func.QueueMessage) -> None:
    result = handle_control_message(get_context(), msg.get_body(), msg.id, msg.dequeue_count)
    if isinstance(result, IntakeResult):
        log.warning("control message %s rejected: %s", msg.id, result.reason)
        return
    log.info("control message %s: %s by %s: %s", msg.id, result.action, result.by, result.counts())
