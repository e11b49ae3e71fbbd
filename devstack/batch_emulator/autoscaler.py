"""Autoscaled pools in the Batch emulator: records metric samples and evaluates each pool's formula on its interval.

The service model owns pool state; this module only reads it through four model methods and hands back targets:

- ``model.list_autoscale_pools() -> list[dict]``: pool wire dicts with ``enableAutoScale`` true
  (``id``, ``autoScaleFormula``, ``autoScaleEvaluationInterval`` ISO-8601, ``targetDedicatedNodes``, ...)
- ``model.pool_metrics(pool_id) -> dict[str, float]``: PendingTasks, ActiveTasks, RunningTasks, ..., TaskSlotsPerNode
- ``model.apply_autoscale(pool_id, target_dedicated, target_low_priority, node_deallocation_option, run)``
- ``model.set_autoscale_run(pool_id, run)``: a failed evaluation (the pool keeps its size)

The pool handlers (handlers/pools.py) call ``check_formula`` before a formula is stored, ``evaluate_now`` when a
pool is added with autoscale or autoscale is enabled, and ``evaluate`` for evaluateautoscale.

A daemon thread records a sample per autoscaled pool every ``sample_interval`` (30 s like the service; tests use
1 s) and evaluates a pool when it first appears, when its formula or interval changes, and then every interval.
Intervals shorter than the service's 5-minute minimum are allowed here on purpose (see ``check_interval_for_azure``).

Environment knobs (read when the Autoscaler is built, so the emulator's server needs no flag for them):
``BATCH_EMULATOR_AUTOSCALE_SAMPLE_INTERVAL`` (seconds between samples, default 30) and
``BATCH_EMULATOR_AUTOSCALE_EVALUATION_INTERVAL`` (ISO-8601; when set, every pool is evaluated on this interval
instead of its own autoScaleEvaluationInterval: demos and tests use PT5S where the REST API insists on >= PT5M).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.batch_emulator import errors
from devstack.batch_emulator.autoscale import PoolState, SampleHistory, evaluate, parse, validate
from devstack.batch_emulator.autoscale.errors import FormulaError
from devstack.batch_emulator.periodic import PeriodicThread
from devstack.batch_emulator.timeutil import parse_timedelta

log = logging.getLogger(__name__)

__all__ = ["Autoscaler", "check_interval_for_azure"]

DEFAULT_EVALUATION_INTERVAL = timedelta(minutes=15)
AZURE_MIN_INTERVAL = timedelta(minutes=5)
AZURE_MAX_INTERVAL = timedelta(hours=168)

def check_interval_for_azure(interval: timedelta) -> str | None:
    """The service rejects intervals outside 5 minutes .. 168 hours; say so for configs meant for Azure."""
    if interval < AZURE_MIN_INTERVAL or interval > AZURE_MAX_INTERVAL:
        return (f"autoScaleEvaluationInterval {interval} is outside Azure Batch's allowed range "
                "(PT5M to PT168H); the emulator accepts it, the service answers 400")
    return None


@dataclass
class _PoolTrack:
    history: SampleHistory
    formula: str = ""
    interval: timedelta = DEFAULT_EVALUATION_INTERVAL
    next_sample: datetime | None = None
    next_evaluation: datetime | None = None


@dataclass
class Autoscaler:
    """Evaluates autoscale formulas of the emulator's pools. ``clock`` is injectable so tests can drive time."""

    model: Any
    sample_interval: float = field(default_factory=lambda: _env_seconds("BATCH_EMULATOR_AUTOSCALE_SAMPLE_INTERVAL",
                                                                        30.0))
    sample_delay: float = 0.0
    tick: float | None = None
    evaluation_interval: timedelta | None = field(default_factory=lambda: _env_interval(
        "BATCH_EMULATOR_AUTOSCALE_EVALUATION_INTERVAL"))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _pools: dict[str, _PoolTrack] = field(default_factory=dict, init=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False)
    _thread: PeriodicThread | None = field(default=None, init=False)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            tick = self.tick if self.tick is not None else min(1.0, self.sample_interval / 4)
            self._thread = PeriodicThread("batch-emulator-autoscaler", self.step, tick, log, "autoscale")
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    # -- API used by the pool handlers (handlers/pools.py) ---------------------------------------------------
    def validate(self, formula: str) -> dict | None:
        """None if the formula is acceptable to enableautoscale; else the AutoScaleRunError dict."""
        return validate(formula)

    def check_formula(self, formula: str | None) -> None:
        """400 InvalidAutoScalingFormula (or the formula's own error code) unless enableautoscale may take it."""
        if not formula:
            return
        problem = self.validate(formula)
        if problem:
            message = problem.get("message", "The autoscale formula is not valid.")
            if isinstance(message, dict):
                message = message.get("value")
            raise errors.BatchError(400, problem.get("code", "InvalidAutoScalingFormula"), message,
                                    {v.get("key", v.get("name", "")): v.get("value", "")
                                     for v in problem.get("values", [])})

    def evaluate(self, pool_id: str, formula: str) -> dict:
        """evaluateautoscale: the AutoScaleRun dict for ``formula`` on the pool's current state; nothing applied."""
        with self._lock:
            track = self._track(pool_id)
            return evaluate(formula, self._state(pool_id, track, self._pool(pool_id))).to_wire()

    def evaluate_now(self, pool_id: str) -> dict | None:
        """Run the pool's own formula now and apply it (what enableautoscale does on the service)."""
        pool = self._pool(pool_id)
        if pool is None:
            return None
        with self._lock:
            track = self._track(pool_id)
            self._sync(track, pool, self.clock())
            return self._run(pool, track, self.clock())

    def history(self, pool_id: str) -> SampleHistory:
        with self._lock:
            return self._track(pool_id).history

    # -- the periodic work ---------------------------------------------------------------------------------
    def step(self) -> None:
        """One tick: sample and evaluate every autoscaled pool that is due; forget pools no longer autoscaled."""
        now = self.clock()
        pools = {p["id"]: p for p in self.model.list_autoscale_pools()}
        with self._lock:
            for gone in set(self._pools) - set(pools):
                del self._pools[gone]
            for pool_id, pool in pools.items():
                track = self._track(pool_id)
                self._sync(track, pool, now)
                if track.next_sample is None or now >= track.next_sample:
                    track.history.record(now, self.model.pool_metrics(pool_id))
                    track.next_sample = now + timedelta(seconds=self.sample_interval)
                if track.next_evaluation is None or now >= track.next_evaluation:
                    self._run(pool, track, now)

    def _track(self, pool_id: str) -> _PoolTrack:
        track = self._pools.get(pool_id)
        if track is None:
            history = SampleHistory(period=timedelta(seconds=self.sample_interval),
                                    delay=timedelta(seconds=self.sample_delay))
            track = self._pools[pool_id] = _PoolTrack(history)
        return track

    def _sync(self, track: _PoolTrack, pool: dict, now: datetime) -> None:
        """A changed formula or interval means a fresh evaluation now, like enableautoscale on the service."""
        formula = pool.get("autoScaleFormula") or ""
        try:
            interval = parse_timedelta(pool.get("autoScaleEvaluationInterval") or "PT15M",
                                       "autoScaleEvaluationInterval")
        except ValueError:
            interval = DEFAULT_EVALUATION_INTERVAL
        if self.evaluation_interval is not None:
            interval = self.evaluation_interval
        if formula != track.formula or interval != track.interval:
            track.formula, track.interval = formula, interval
            track.next_evaluation = None

    def _run(self, pool: dict, track: _PoolTrack, now: datetime) -> dict:
        pool_id = pool["id"]
        track.next_evaluation = now + track.interval
        if track.next_sample is None:  # first sight: give the formula the pool's state as its first sample
            track.history.record(now, self.model.pool_metrics(pool_id))
            track.next_sample = now + timedelta(seconds=self.sample_interval)
        try:
            tree = parse(track.formula)
        except FormulaError as exc:
            run = {"timestamp": _wire_time(now), "results": "", "error": exc.to_wire()}
            self.model.set_autoscale_run(pool_id, run)
            return run
        evaluation = evaluate(tree, self._state(pool_id, track, pool, now))
        run = evaluation.to_wire()
        if evaluation.error is None:
            self.model.apply_autoscale(pool_id, evaluation.target_dedicated, evaluation.target_low_priority,
                                       evaluation.node_deallocation_option, run)
        else:
            self.model.set_autoscale_run(pool_id, run)
        return run

    def _pool(self, pool_id: str) -> dict | None:
        return next((p for p in self.model.list_autoscale_pools() if p.get("id") == pool_id), None)

    def _state(self, pool_id: str, track: _PoolTrack, pool: dict | None, now: datetime | None = None) -> PoolState:
        metrics = self.model.pool_metrics(pool_id)
        pool = pool or {}
        return PoolState(
            history=track.history,
            now=now or self.clock(),
            current=metrics,
            target_dedicated=float(pool.get("targetDedicatedNodes", metrics.get("CurrentDedicatedNodes", 0)) or 0),
            target_low_priority=float(pool.get("targetLowPriorityNodes",
                                               metrics.get("CurrentLowPriorityNodes", 0)) or 0),
        )


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a number of seconds such as 30 or 1") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r}: must be greater than 0")
    return value


def _env_interval(name: str) -> timedelta | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    interval = parse_timedelta(raw, name)
    if interval <= timedelta(0):
        raise ValueError(f"{name}={raw!r}: must be longer than zero")
    return interval


def _wire_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
