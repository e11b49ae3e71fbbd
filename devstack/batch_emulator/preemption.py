"""Spot (low-priority) node preemption, as Azure Batch does it, on demand or at a rate.

On Batch a preempted Spot node stays in the pool in state ``preempted`` (it still counts in
``currentLowPriorityNodes`` and in ``$PreemptedNodeCount``); the tasks that were running on it go back to
``active`` with ``requeueCount`` + 1, which does not count against ``maxTaskRetryCount``; later the service gets
the capacity back and the node starts again. Dedicated nodes are never preempted.

The emulator does the same, driven by either:

- ``--preempt-rate FRACTION_PER_MINUTE`` (with ``--preempt-seed N`` for a repeatable sequence): every Spot node
  that is not already preempted is preempted with a chance that adds up to that fraction per minute;
- ``POST /_emulator/pools/{pool}/nodes/{node}/preempt`` (SharedKey, see handlers/admin.py): this node, now.

A preempted node comes back (``starting``, then ``idle`` after its start task) ``--preempt-duration`` seconds
later, or after the ``recoverAfterSeconds`` the endpoint was given.

The model half (:class:`PreemptionOps`) is a mixin of the service model and owns the transitions; the
:class:`Preempter` thread only decides *when*, from a seeded random generator and a clock that tests can drive.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.model_base import set_state, wire
from devstack.batch_emulator.periodic import PeriodicThread

log = logging.getLogger("batch_emulator.preemption")

DEFAULT_DURATION = 60.0
TICK = 0.25
# A node in these states can be preempted: it exists as a VM (booting, idle, busy, or failed to start).
PREEMPTIBLE_STATES = ("starting", "waitingforstarttask", "idle", "running", "starttaskfailed", "unusable")


@dataclass(frozen=True)
class PreemptionSettings:
    rate: float = 0.0                  # expected fraction of Spot nodes preempted per minute (0-1)
    seed: int | None = None
    duration: float = DEFAULT_DURATION  # seconds a preempted node stays preempted before it comes back

    def check(self) -> None:
        """Raise ValueError naming the option when a setting is out of range."""
        if not 0 <= self.rate <= 1:
            raise ValueError(f"--preempt-rate {self.rate:g}: must be a fraction per minute from 0 to 1, e.g. 0.1 "
                             "to preempt a tenth of the Spot nodes each minute")
        if not (self.duration >= 0 and math.isfinite(self.duration)):
            raise ValueError(f"--preempt-duration {self.duration:g}: must be 0 or more seconds")


def chance_per_step(rate: float, seconds: float) -> float:
    """The chance for one node to be preempted in ``seconds`` so that ``rate`` of the nodes go per minute."""
    if rate <= 0 or seconds <= 0:
        return 0.0
    if rate >= 1:
        return 1.0
    return 1.0 - (1.0 - rate) ** (seconds / 60.0)


class PreemptionOps:
    """Preempting and recovering Spot nodes (a mixin of the service model; uses its lock and task requeue)."""

    def preempt_node(self, pool_id: str, node_id: str, recover_after: float) -> dict:
        """Preempt one Spot node now: it shows ``preempted``, its running tasks are requeued.

        Raises 404 for an unknown pool/node, 409 ``NodeIsDedicated`` for a dedicated node and 409
        ``NodeNotPreemptible`` for one that is already preempted or leaving the pool.
        """
        with self.lock:
            pool = self._pool(pool_id)
            key = pool["id"].lower()
            node = self.nodes[key].get(node_id)
            if node is None:
                raise errors.not_found("node")
            if node.get("isDedicated"):
                raise errors.conflict("NodeIsDedicated", "Only Spot/low-priority nodes can be preempted; the "
                                      "specified node is dedicated.")
            if node.get("_leaving") or node.get("state") not in PREEMPTIBLE_STATES:
                raise errors.conflict("NodeNotPreemptible", f"The specified node is {node.get('state')} and "
                                      "cannot be preempted.")
            kills = self._preempt_locked(key, node, recover_after)
            result = wire(node)
        self._run_kills(kills)
        self.store.flush()
        return result

    def _preempt_locked(self, pool_key: str, node: dict, recover_after: float) -> list:
        set_state(node, "preempted")
        node["_recoverAt"] = time.time() + max(0.0, recover_after)
        kills, requeued = [], 0
        for job_key, task_key in list(node.get("_running", [])):
            task = self.tasks.get(job_key, {}).get(task_key)
            if task is not None:
                kills += self._requeue_task(job_key, task)
                requeued += 1
        node["_running"], node["_used"] = [], 0
        node["runningTasksCount"] = node["runningTaskSlotsCount"] = 0
        self.save_node(pool_key, node)
        log.info("node %s of pool %s preempted (%d task(s) requeued)", node["id"], pool_key, requeued)
        self.wake()
        return kills

    def preemptible_nodes(self) -> list[tuple[str, str]]:
        """(pool_key, node_id) of every Spot node that could be preempted now, in a stable order."""
        with self.lock:
            return sorted((pool_key, node["id"]) for pool_key, nodes in self.nodes.items()
                          if self.pools.get(pool_key, {}).get("state") == "active"
                          for node in nodes.values()
                          if not node.get("isDedicated") and not node.get("_leaving")
                          and node.get("state") in PREEMPTIBLE_STATES)

    def preempt_if_possible(self, pool_key: str, node_id: str, recover_after: float) -> bool:
        """The rate knob's preemption: quietly False when the node changed meanwhile."""
        with self.lock:
            node = self.nodes.get(pool_key, {}).get(node_id)
            if node is None or node.get("isDedicated") or node.get("_leaving") or (
                    node.get("state") not in PREEMPTIBLE_STATES):
                return False
            kills = self._preempt_locked(pool_key, node, recover_after)
        self._run_kills(kills)
        return True

    def recover_preempted(self, now: float | None = None) -> int:
        """Bring back the preempted nodes whose time is up: ``starting``, then booted by the agent."""
        now = time.time() if now is None else now
        count = 0
        with self.lock:
            for pool_key, nodes in self.nodes.items():
                for node in nodes.values():
                    if node.get("state") != "preempted" or node.get("_recoverAt", 0) > now:
                        continue
                    node.pop("_recoverAt", None)
                    stamp = timeutil.now_iso()
                    set_state(node, "starting", stamp)
                    node["lastBootTime"] = stamp
                    self.save_node(pool_key, node)
                    self.on_node_created(pool_key, node["id"])
                    count += 1
            if count:
                self.wake()
        return count


class Preempter:
    """A daemon thread: preempts Spot nodes at the configured rate and brings preempted nodes back.

    ``step()`` does one round and can be called directly with a fake ``clock`` (seconds, monotonic).
    """

    def __init__(self, model, settings: PreemptionSettings, clock: Callable[[], float] = time.monotonic,
                 tick: float = TICK):
        self.model = model
        self.settings = settings
        self.clock = clock
        self.random = random.Random(settings.seed)
        self.preempted = 0
        self._last: float | None = None
        self._thread = PeriodicThread("batch-emulator-preempter", self.step, tick, log, "preemption")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def step(self) -> int:
        """Preempt by chance (rate knob), then recover nodes whose time is up; returns how many were preempted."""
        now = self.clock()
        elapsed = 0.0 if self._last is None else now - self._last
        self._last = now
        done = 0
        chance = chance_per_step(self.settings.rate, elapsed)
        if chance > 0:
            for pool_key, node_id in self.model.preemptible_nodes():
                if self.random.random() < chance and self.model.preempt_if_possible(pool_key, node_id,
                                                                                      self.settings.duration):
                    done += 1
            if done:
                self.model.store.flush()
        self.preempted += done
        self.model.recover_preempted()
        return done
