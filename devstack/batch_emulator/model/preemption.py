"""Spot node preemption, the model's side: a preempted node shows ``preempted`` and its tasks are requeued
(``requeueCount`` + 1, not a retry); later it starts again. The top-level preemption.py decides when.
"""

from __future__ import annotations

import logging
import time

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.model.scheduling import Scheduling
from devstack.batch_emulator.model.state import State, run_kills, set_state, wire

log = logging.getLogger("batch_emulator.preemption")

# A node in these states can be preempted: it exists as a VM (booting, idle, busy, or failed to start).
PREEMPTIBLE_STATES = ("starting", "waitingforstarttask", "idle", "running", "starttaskfailed", "unusable")


class NodePreemption:
    """Preempting and recovering Spot nodes; the tasks on a preempted node are requeued by the Scheduling group."""

    def __init__(self, state: State, scheduling: Scheduling):
        self.state = state
        self.scheduling = scheduling

    def preempt_node(self, pool_id: str, node_id: str, recover_after: float) -> dict:
        """Preempt one Spot node now: it shows ``preempted``, its running tasks are requeued.

        Raises 404 for an unknown pool/node, 409 ``NodeIsDedicated`` for a dedicated node and 409
        ``NodeNotPreemptible`` for one that is already preempted or leaving the pool.
        """
        with self.state.lock:
            pool = self.state.pool(pool_id)
            key = pool["id"].lower()
            node = self.state.nodes[key].get(node_id)
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
        run_kills(kills)
        self.state.store.flush()
        return result

    def _preempt_locked(self, pool_key: str, node: dict, recover_after: float) -> list:
        set_state(node, "preempted")
        node["_recoverAt"] = time.time() + max(0.0, recover_after)
        kills, requeued = [], 0
        for job_key, task_key in list(node.get("_running", [])):
            task = self.state.tasks.get(job_key, {}).get(task_key)
            if task is not None:
                kills += self.scheduling.requeue_task(job_key, task)
                requeued += 1
        node["_running"], node["_used"] = [], 0
        node["runningTasksCount"] = node["runningTaskSlotsCount"] = 0
        self.state.save_node(pool_key, node)
        log.info("node %s of pool %s preempted (%d task(s) requeued)", node["id"], pool_key, requeued)
        self.state.wake()
        return kills

    def preemptible_nodes(self) -> list[tuple[str, str]]:
        """(pool_key, node_id) of every Spot node that could be preempted now, in a stable order."""
        with self.state.lock:
            return sorted((pool_key, node["id"]) for pool_key, nodes in self.state.nodes.items()
                          if self.state.pools.get(pool_key, {}).get("state") == "active"
                          for node in nodes.values()
                          if not node.get("isDedicated") and not node.get("_leaving")
                          and node.get("state") in PREEMPTIBLE_STATES)

    def preempt_if_possible(self, pool_key: str, node_id: str, recover_after: float) -> bool:
        """The rate knob's preemption: quietly False when the node changed meanwhile."""
        with self.state.lock:
            node = self.state.nodes.get(pool_key, {}).get(node_id)
            if node is None or node.get("isDedicated") or node.get("_leaving") or (
                    node.get("state") not in PREEMPTIBLE_STATES):
                return False
            kills = self._preempt_locked(pool_key, node, recover_after)
        run_kills(kills)
        return True

    def recover_preempted(self, now: float | None = None) -> int:
        """Bring back the preempted nodes whose time is up: ``starting``, then booted by the agent."""
        now = time.time() if now is None else now
        count = 0
        with self.state.lock:
            for pool_key, nodes in self.state.nodes.items():
                for node in nodes.values():
                    if node.get("state") != "preempted" or node.get("_recoverAt", 0) > now:
                        continue
                    node.pop("_recoverAt", None)
                    stamp = timeutil.now_iso()
                    set_state(node, "starting", stamp)
                    node["lastBootTime"] = stamp
                    self.state.save_node(pool_key, node)
                    self.state.on_node_created(pool_key, node["id"])
                    count += 1
            if count:
                self.state.wake()
        return count
