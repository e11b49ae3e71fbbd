"""Reconciler: every five seconds (RECONCILE_SCHEDULE), completed Batch tasks become manifests, records and
messages (shared.reconcile).

The schedule is read when the worker indexes the app (app settings are environment variables by then, on Azure and
in the local host), with the Azure default when the setting is absent, so no deployment needs the setting. The local
stack sets `*/1 * * * * *`: a manifest then follows its task within about a second (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import os

import azure.functions as func

from shared.context import get_context
from shared.reconcile import reconcile

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.reconciler")
SCHEDULE = os.environ.get("RECONCILE_SCHEDULE", "").strip() or "*/5 * * * * *"


@bp.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=True, use_monitor=False)
def reconciler(timer: func.TimerRequest) -> None:
    result = reconcile(get_context())
    if result.recorded or result.deleted_jobs or result.errors:
        log.info("reconcile: %d recorded, %d task(s) and %d job(s) deleted, %d error(s), %d Batch call(s)",
                 len(result.recorded), result.deleted_tasks, len(result.deleted_jobs), len(result.errors),
                 result.batch_calls)
