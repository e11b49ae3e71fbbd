"""The safety net: every five minutes (RECONCILE_SCHEDULE), what no event reports (shared.reconcile): tasks that
failed before they ran, lost marker events, runs left behind by a worker that died, stuck runs, and cleanup.

The schedule is read when the worker indexes the app (app settings are environment variables by then, on Azure and
in the local host), with the Azure default when the setting is absent, so no deployment needs the setting. Work is
submitted and completed on events, so this timer is never on the path of a run that goes well.
"""

from __future__ import annotations

import logging
import os

import azure.functions as func

from shared.context import get_context
from shared.reconcile import reconcile

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.reconciler")
DEFAULT_SCHEDULE = "0 */5 * * * *"
SCHEDULE = os.environ.get("RECONCILE_SCHEDULE", "").strip() or DEFAULT_SCHEDULE


@bp.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False, use_monitor=False)
def reconciler(timer: func.TimerRequest) -> None:
    r = reconcile(get_context())
    if r.recorded or r.resubmitted or r.failed or r.renotified or r.deleted_jobs or r.errors:
        log.info("safety net: %d recorded, %d resubmitted, %d failed, %d re-notified, %d task(s) and %d job(s) "
                 "deleted, %d error(s), %d Batch call(s)", len(r.recorded), len(r.resubmitted), len(r.failed),
                 len(r.renotified), r.deleted_tasks, len(r.deleted_jobs), len(r.errors), r.batch_calls)
