"""Runs an autoscale formula against an arrival trace in simulated time, to see cost and latency before Azure.

The model is the pool as Batch runs it: a sample of the pool's metrics every ``sample_period`` (30 s), the formula
evaluated every ``interval`` (first at t=0, when autoscale is enabled), nodes that take ``startup`` seconds from
allocation to running tasks (and are billed from allocation), ``slots_per_node`` tasks per node filled FIFO with
the ``spread`` or ``pack`` node fill type, and node removal honouring $NodeDeallocationOption: requeue (running
tasks go back to the front of the queue and start over), terminate (they fail), taskcompletion and retaineddata
(the node takes no new task and leaves when its tasks end). Spot nodes are never preempted here.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .evaluator import PoolState, evaluate
from .functions import new_rng
from .parser import parse
from .samples import SampleHistory

EPOCH = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday, so time-based formulas behave predictably


@dataclass(frozen=True)
class Task:
    arrival: float
    duration: float


@dataclass
class SimConfig:
    interval: float = 300.0
    startup: float = 180.0
    slots_per_node: int = 1
    sample_period: float = 30.0
    sample_delay: float = 0.0
    drain: float = 4 * 3600.0  # how long to keep simulating after the last arrival
    fill: str = "spread"
    start: datetime = EPOCH
    seed: int = 1


@dataclass
class _Node:
    spot: bool
    allocated: float
    ready: float
    running: dict[int, float] = field(default_factory=dict)  # task index -> end time
    leaving: bool = False


@dataclass
class SimResult:
    name: str
    dedicated_node_minutes: float
    spot_node_minutes: float
    lower_bound_node_minutes: float
    waits: list[float]
    tasks: int
    succeeded: int
    failed: int
    unfinished: int
    evaluations: int
    evaluation_errors: int
    first_error: str | None
    end_time: float
    nodes_at_end: int
    timeline: list[tuple[float, int, int, int, int]]  # t, active, running, dedicated nodes, spot nodes

    @property
    def node_minutes(self) -> float:
        return self.dedicated_node_minutes + self.spot_node_minutes

    @property
    def ratio_to_lower_bound(self) -> float:
        return self.node_minutes / self.lower_bound_node_minutes if self.lower_bound_node_minutes else math.inf

    def wait_percentile(self, p: float) -> float:
        if not self.waits:
            return 0.0
        ordered = sorted(self.waits)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    def summary(self) -> dict:
        return {
            "formula": self.name,
            "dedicated_node_minutes": round(self.dedicated_node_minutes, 1),
            "spot_node_minutes": round(self.spot_node_minutes, 1),
            "node_minutes": round(self.node_minutes, 1),
            "lower_bound_node_minutes": round(self.lower_bound_node_minutes, 1),
            "ratio_to_lower_bound": round(self.ratio_to_lower_bound, 3),
            "wait_p50_s": round(self.wait_percentile(50), 1),
            "wait_p95_s": round(self.wait_percentile(95), 1),
            "wait_max_s": round(max(self.waits, default=0.0), 1),
            "tasks": self.tasks, "succeeded": self.succeeded, "failed": self.failed, "unfinished": self.unfinished,
            "evaluations": self.evaluations, "evaluation_errors": self.evaluation_errors,
            "first_error": self.first_error, "end_time_s": round(self.end_time, 1), "nodes_at_end": self.nodes_at_end,
        }


def load_trace(path: str | Path) -> list[Task]:
    """CSV with a header row ``arrival_s,duration_s`` (seconds from the start of the trace)."""
    tasks: list[Task] = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"arrival_s", "duration_s"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: a trace is a CSV with the columns arrival_s,duration_s")
        for row_no, row in enumerate(reader, start=2):
            try:
                task = Task(float(row["arrival_s"]), float(row["duration_s"]))
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{row_no}: arrival_s and duration_s must be numbers") from None
            if task.arrival < 0 or task.duration <= 0:
                raise ValueError(f"{path}:{row_no}: arrival_s must be >= 0 and duration_s > 0")
            tasks.append(task)
    tasks.sort(key=lambda t: t.arrival)
    return tasks


def simulate(formula: str, tasks: list[Task], config: SimConfig, name: str = "formula") -> SimResult:
    return _Simulation(formula, tasks, config, name).run()


class _Simulation:
    def __init__(self, formula: str, tasks: list[Task], config: SimConfig, name: str) -> None:
        if config.slots_per_node < 1:
            raise ValueError("slots_per_node must be at least 1")
        if config.fill not in ("spread", "pack"):
            raise ValueError("fill must be 'spread' or 'pack'")
        self.tree = parse(formula)
        self.tasks = tasks
        self.cfg = config
        self.name = name
        self.history = SampleHistory(period=timedelta(seconds=config.sample_period),
                                     delay=timedelta(seconds=config.sample_delay))
        self.rng = new_rng(config.seed)
        self.nodes: list[_Node] = []
        self.queue: list[int] = []  # task indexes, FIFO
        self.started: dict[int, float] = {}
        self.succeeded = self.failed = 0
        self.billed = {False: 0.0, True: 0.0}
        self.targets = (0, 0)
        self.evaluations = self.errors = 0
        self.first_error: str | None = None
        self.timeline: list[tuple[float, int, int, int, int]] = []

    def run(self) -> SimResult:
        cfg = self.cfg
        last_arrival = self.tasks[-1].arrival if self.tasks else 0.0
        horizon = last_arrival + cfg.drain
        next_arrival = 0
        next_sample = 0.0
        next_eval = 0.0
        t = 0.0
        while True:
            self._finish_tasks(t)
            while next_arrival < len(self.tasks) and self.tasks[next_arrival].arrival <= t:
                self.queue.append(next_arrival)
                next_arrival += 1
            self._remove_drained(t)
            self._schedule(t)
            if t >= next_sample:
                self._sample(t)
                next_sample += cfg.sample_period
            if t >= next_eval:
                self._evaluate(t)
                self._schedule(t)
                next_eval += cfg.interval
            done = next_arrival == len(self.tasks) and not self.queue and not self._running()
            if (done and not self.nodes) or t >= horizon:
                break
            candidates = [next_sample, next_eval, horizon]
            if next_arrival < len(self.tasks):
                candidates.append(self.tasks[next_arrival].arrival)
            candidates += [n.ready for n in self.nodes if n.ready > t]
            candidates += [end for n in self.nodes for end in n.running.values()]
            nt = min(c for c in candidates if c > t) if any(c > t for c in candidates) else horizon
            self._bill(t, nt)
            t = nt
        return self._result(t)

    # -- mechanics ---------------------------------------------------------------------------------------------
    def _running(self) -> int:
        return sum(len(n.running) for n in self.nodes)

    def _bill(self, t0: float, t1: float) -> None:
        for n in self.nodes:
            self.billed[n.spot] += (t1 - t0)

    def _finish_tasks(self, t: float) -> None:
        for n in self.nodes:
            for idx, end in list(n.running.items()):
                if end <= t:
                    del n.running[idx]
                    self.succeeded += 1

    def _remove_drained(self, t: float) -> None:
        self.nodes = [n for n in self.nodes if not (n.leaving and not n.running)]

    def _schedule(self, t: float) -> None:
        slots = self.cfg.slots_per_node
        while self.queue:
            free = [n for n in self.nodes if not n.leaving and n.ready <= t and len(n.running) < slots]
            if not free:
                return
            key = (lambda n: len(n.running)) if self.cfg.fill == "spread" else (lambda n: -len(n.running))
            node = min(free, key=key)
            idx = self.queue.pop(0)
            self.started.setdefault(idx, t)
            node.running[idx] = t + self.tasks[idx].duration

    def metrics(self, t: float) -> dict[str, float]:
        active = len(self.queue)
        running = self._running()
        ready = [n for n in self.nodes if n.ready <= t]
        busy_slots = sum(len(n.running) for n in ready)
        total_slots = len(ready) * self.cfg.slots_per_node
        return {
            "ActiveTasks": active, "RunningTasks": running, "PendingTasks": active + running,
            "SucceededTasks": self.succeeded, "FailedTasks": self.failed,
            "CurrentDedicatedNodes": sum(1 for n in self.nodes if not n.spot),
            "CurrentLowPriorityNodes": sum(1 for n in self.nodes if n.spot),
            "PreemptedNodeCount": 0, "SampleNodeCount": len(ready),
            "UsableNodeCount": sum(1 for n in ready if not n.leaving),
            "TaskSlotsPerNode": self.cfg.slots_per_node,
            "CPUPercent": 100.0 * busy_slots / total_slots if total_slots else 0.0,
        }

    def _sample(self, t: float) -> None:
        m = self.metrics(t)
        self.history.record(self.cfg.start + timedelta(seconds=t), m)
        self.timeline.append((t, int(m["ActiveTasks"]), int(m["RunningTasks"]), int(m["CurrentDedicatedNodes"]),
                              int(m["CurrentLowPriorityNodes"])))

    def _evaluate(self, t: float) -> None:
        self.evaluations += 1
        state = PoolState(history=self.history, now=self.cfg.start + timedelta(seconds=t), current=self.metrics(t),
                          target_dedicated=self.targets[0], target_low_priority=self.targets[1], rng=self.rng)
        result = evaluate(self.tree, state)
        if result.error is not None:
            self.errors += 1
            self.first_error = self.first_error or f"t={t:.0f}s {result.error.code}: {result.error.value}"
            return
        self.targets = (result.target_dedicated, result.target_low_priority)
        self._resize(t, False, result.target_dedicated, result.node_deallocation_option)
        self._resize(t, True, result.target_low_priority, result.node_deallocation_option)

    def _resize(self, t: float, spot: bool, target: int, option: str) -> None:
        members = [n for n in self.nodes if n.spot == spot and not n.leaving]
        for _ in range(target - len(members)):
            self.nodes.append(_Node(spot, t, t + self.cfg.startup))
        excess = len(members) - target
        if excess <= 0:
            return
        # Cheapest to lose first: nodes still starting, then idle nodes, then those with the least work left.
        members.sort(key=lambda n: (n.ready <= t, len(n.running), max(n.running.values(), default=0.0)))
        for node in members[:excess]:
            node.leaving = True
            if option in ("requeue", "terminate"):
                for idx in sorted(node.running, key=lambda i: self.started[i]):
                    if option == "requeue":
                        self.queue.insert(0, idx)
                    else:
                        self.failed += 1
                node.running.clear()
        self._remove_drained(t)

    def _result(self, t: float) -> SimResult:
        slots = self.cfg.slots_per_node
        task_seconds = sum(task.duration for task in self.tasks)
        waits = [self.started[i] - task.arrival if i in self.started else t - task.arrival
                 for i, task in enumerate(self.tasks)]
        unfinished = len(self.tasks) - self.succeeded - self.failed
        return SimResult(
            name=self.name,
            dedicated_node_minutes=self.billed[False] / 60, spot_node_minutes=self.billed[True] / 60,
            lower_bound_node_minutes=task_seconds / slots / 60, waits=waits, tasks=len(self.tasks),
            succeeded=self.succeeded, failed=self.failed, unfinished=unfinished, evaluations=self.evaluations,
            evaluation_errors=self.errors, first_error=self.first_error, end_time=t, nodes_at_end=len(self.nodes),
            timeline=self.timeline,
        )
