"""Scheduled pipelines (pipelines.yaml `schedule:`): one timer trigger per scheduled pipeline, registered when the
worker indexes the app, named `scheduled_<pipeline>` (hyphens become underscores).

Why one timer per pipeline rather than one timer polling every schedule: each timer fires exactly when its
pipeline's cron asks, so an app whose schedules run nightly wakes nightly (on a Consumption/Flex plan the app idles
and costs nothing in between); one shared timer would have to fire as often as the most frequent schedule, or
every minute, to serve them all. Each pipeline also gets its own invocations, logs and failures in the portal.

`use_monitor=True` (the host records the schedule status in storage) so an occurrence missed while the app was down
runs once, past due, when it comes back; `run_on_startup=False` so a restart or a scale-out does not fire an extra
run. The occurrence a firing belongs to is the latest one of the cron at or before the firing time (timer request
or past due alike), and the request id derives from it: firing the same occurrence twice creates no new runs.
The schedules are read at indexing time, as functions/reconciler.py reads its own: a changed pipelines.yaml takes
effect when the app restarts (a deployment does that).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func

from shared.context import get_context
from shared.errors import RequestDeferred
from shared.pipelines import load_config
from shared.scheduled_run import run_occurrence
from shared.schedules import function_name, latest_occurrence

log = logging.getLogger("eventbatch.functions.scheduled")
APP_ROOT = Path(__file__).resolve().parent.parent


def scheduled_pipelines(environ=None) -> dict[str, str]:
    """{pipeline name: cron} of the scheduled pipelines in PIPELINES_FILE; {} (and an error logged) when the file
    cannot be read: the other triggers then report the configuration error on their first event."""
    env = os.environ if environ is None else environ
    path = Path(env.get("PIPELINES_FILE") or "pipelines.yaml")
    if not path.is_absolute():
        path = APP_ROOT / path
    try:
        config = load_config(path, env)
    except Exception as exc:  # noqa: BLE001 - indexing must not fail for the intake triggers' sake
        log.error("scheduled pipelines not registered: %s", exc)
        return {}
    # A disabled pipeline (its own `enabled`, or its pool's) gets no timer: it takes no work, so it never wakes.
    return {p.name: p.schedule.cron for p in config.pipelines.values()
            if p.schedule is not None and config.takes_work(p)}


def fire(pipeline: str, cron: str, now: datetime | None = None):
    """One firing of `pipeline`'s timer at `now`: its occurrence, run over the schedule's prefix."""
    occurrence = latest_occurrence(cron, now or datetime.now(UTC))
    try:
        return run_occurrence(get_context(), pipeline, occurrence)
    except RequestDeferred as exc:
        # The runs are recorded (`received`); the safety net submits them when Batch answers again.
        log.warning("schedule %s of %s: %s", occurrence.isoformat(), pipeline, exc)
        return None


def _timer(pipeline: str, cron: str):
    def scheduled(timer: func.TimerRequest) -> None:
        if timer.past_due:
            log.info("schedule of %s is past due: running its latest occurrence", pipeline)
        fire(pipeline, cron)

    scheduled.__name__ = scheduled.__qualname__ = function_name(pipeline)
    return scheduled


bp = func.Blueprint()
for _name, _cron in scheduled_pipelines().items():
    bp.function_name(name=function_name(_name))(
        bp.timer_trigger(arg_name="timer", schedule=_cron, run_on_startup=False, use_monitor=True)(
            _timer(_name, _cron)))
