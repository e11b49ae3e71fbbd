"""Reconciler: every five seconds, completed Batch tasks become manifests, records and messages
(shared.reconcile)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.context import get_context
from shared.reconcile import reconcile

bp = func.Blueprint()
log = logging.getLogger("eventbatch.functions.reconciler")


@bp.timer_trigger(arg_name="timer", schedule="*/5 * * * * *", run_on_startup=True, use_monitor=False)
def reconciler(timer: func.TimerRequest) -> None:
    result = reconcile(get_context())
    if result.recorded or result.deleted_jobs or result.errors:
        log.info("reconcile: %d recorded, %d task(s) and %d job(s) deleted, %d error(s), %d Batch call(s)",
                 len(result.recorded), result.deleted_tasks, len(result.deleted_jobs), len(result.errors),
                 result.batch_calls)
