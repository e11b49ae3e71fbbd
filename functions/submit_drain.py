"""Submit drain: every second (DRAIN_SCHEDULE), everything the blob intake buffered goes to Batch in bulk
(shared.drain)."""

from __future__ import annotations

import logging
import os

import azure.functions as func

from shared.context import get_context
from shared.drain import drain

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.drain")
# Read when the worker indexes the app; every second unless DRAIN_SCHEDULE says otherwise (a lone file then
# reaches Batch within about a second of its event).
SCHEDULE = os.environ.get("DRAIN_SCHEDULE", "").strip() or "*/1 * * * * *"


@bp.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False, use_monitor=False)
def submit_drain(timer: func.TimerRequest) -> None:
    result = drain(get_context())
    if result.messages:
        log.info("drain: %d message(s), %d submitted, %d rejected, %d deferred, %d Batch call(s)",
                 result.messages, result.submitted, result.rejected, result.deferred, result.batch_calls)
