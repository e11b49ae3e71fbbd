"""Compute nodes: get/list, the agent's view, new nodes, lifecycle transitions, slots and the pool's node counts.

Nothing here touches tasks: taking a node out of its pool, which first requeues or ends the tasks on it, is
pools.py's (and preemption.py's) job; they call :meth:`Nodes.leave` once the node is empty.
"""

from __future__ import annotations

import hashlib
import itertools

from devstack.batch_emulator import errors, timeutil
from devstack.batch_emulator.model.state import State, set_state, wire

_node_counter = itertools.count(1)


class Nodes:
    def __init__(self, state: State):
        self.state = state

    def list_nodes(self, pool_id: str) -> list[dict]:
        s = self.state
        with s.lock:
            pool = s.pool(pool_id)
            return [wire(n) for n in s.nodes[pool["id"].lower()].values()]

    def get_node(self, pool_id: str, node_id: str) -> dict:
        s = self.state
        with s.lock:
            pool = s.pool(pool_id)
            node = s.nodes[pool["id"].lower()].get(node_id)
            if node is None:
                raise errors.not_found("node")
            return wire(node)

    def node_internal(self, pool_key: str, node_id: str) -> dict | None:
        """A copy of a node including bookkeeping (for the agent)."""
        s = self.state
        with s.lock:
            node = s.nodes.get(pool_key, {}).get(node_id)
            pool = s.pools.get(pool_key)
            if node is None or pool is None:
                return None
            return {"node": dict(node), "pool": dict(pool)}

    def add_node(self, pool_key: str, pool: dict, dedicated: bool) -> None:
        """A new node in ``starting``, handed to the agent to boot (caller holds the lock)."""
        node = self._new_node(pool, dedicated)
        self.state.nodes[pool_key][node["id"]] = node
        self.state.save_node(pool_key, node)
        self.state.on_node_created(pool_key, node["id"])

    def _new_node(self, pool: dict, dedicated: bool) -> dict:
        now = timeutil.now_iso()
        stamp = timeutil.now().strftime("%Y%m%dt%H%M%Sz")
        digest = int(hashlib.sha1(f"{self.state.data_dir}/{pool['id']}".encode()).hexdigest()[:8], 16) % 10**10
        existing = self.state.nodes.get(pool["id"].lower(), {})
        node_id = f"tvm-{digest}_{next(_node_counter)}-{stamp}"
        while node_id in existing:  # the counter restarts with the process; ids must stay unique in a pool
            node_id = f"tvm-{digest}_{next(_node_counter)}-{stamp}"
        node = {
            "id": node_id, "state": "starting", "schedulingState": "enabled", "stateTransitionTime": now,
            "allocationTime": now, "lastBootTime": now, "ipAddress": "127.0.0.1",
            "affinityId": f"TVM:{node_id}", "vmSize": pool.get("vmSize"), "totalTasksRun": 0,
            "totalTasksSucceeded": 0, "runningTasksCount": 0, "runningTaskSlotsCount": 0,
            "isDedicated": dedicated, "nodeAgentInfo": {"version": "1.12.0.0-emulator", "lastUpdateTime": now},
            "virtualMachineInfo": {"imageReference": (pool.get("virtualMachineConfiguration") or {})
                                   .get("imageReference", {})},
            "_used": 0, "_running": [],
        }
        if pool.get("startTask"):
            node["startTask"] = pool["startTask"]
        return node

    def update_pool_counts(self, pool_key: str) -> None:
        """currentDedicatedNodes / currentLowPriorityNodes and allocationState from the nodes (lock held)."""
        s = self.state
        pool = s.pools[pool_key]
        nodes = [n for n in s.nodes[pool_key].values() if not n.get("_leaving")]
        pool["currentDedicatedNodes"] = sum(1 for n in nodes if n["isDedicated"])
        pool["currentLowPriorityNodes"] = sum(1 for n in nodes if not n["isDedicated"])
        alloc = "steady"
        if pool["currentDedicatedNodes"] != pool.get("targetDedicatedNodes", 0) or (
                pool["currentLowPriorityNodes"] != pool.get("targetLowPriorityNodes", 0)):
            alloc = "resizing"
        if any(n.get("_leaving") for n in s.nodes[pool_key].values()):
            alloc = "resizing"
        if pool.get("allocationState") != alloc:
            pool["allocationState"] = alloc
            pool["allocationStateTransitionTime"] = timeutil.now_iso()
        s.save_pool(pool)

    def leave_later(self, pool_key: str, node: dict, option: str) -> None:
        """taskcompletion / retaineddata: the node leaves once its running tasks are done (lock held)."""
        node["_leaving"] = option
        set_state(node, "leavingpool")
        self.state.save_node(pool_key, node)

    def leave(self, pool_key: str, node: dict) -> None:
        """Take an empty node out of its pool now (lock held)."""
        set_state(node, "leavingpool")
        self.state.nodes[pool_key].pop(node["id"], None)
        self.state.forget_node(pool_key, node["id"])
        self.state.on_node_removed(pool_key, dict(node))

    def node_transition(self, pool_key: str, node_id: str, state: str, **fields) -> bool:
        """Move a node to ``state`` (agent callback); False when the node is gone."""
        s = self.state
        with s.lock:
            node = s.nodes.get(pool_key, {}).get(node_id)
            if node is None:
                return False
            if node.get("_leaving") and state not in ("leavingpool",):
                return True
            if node.get("state") == "preempted":  # a boot that was under way when the node was preempted
                return True
            for key, value in fields.items():
                if value is None:
                    node.pop(key, None)
                else:
                    node[key] = value
            if state == "idle" and node.get("_used"):
                state = "running"
            set_state(node, state)
            s.save_node(pool_key, node)
            s.wake()
            return True

    def set_node_scheduling(self, pool_id: str, node_id: str, enabled: bool) -> None:
        s = self.state
        with s.lock:
            pool = s.pool(pool_id)
            node = s.nodes[pool["id"].lower()].get(node_id)
            if node is None:
                raise errors.not_found("node")
            node["schedulingState"] = "enabled" if enabled else "disabled"
            s.save_node(pool["id"].lower(), node)
            s.wake()

    def take_slot(self, node: dict, job_key: str, task: dict, now: str) -> None:
        """A task starts on the node: it holds ``requiredSlots`` until :meth:`release_slot` (lock held)."""
        node["_used"] += task.get("requiredSlots", 1)
        node["_running"].append([job_key, task["id"].lower()])
        node["runningTasksCount"] = len(node["_running"])
        node["runningTaskSlotsCount"] = node["_used"]
        node["totalTasksRun"] = node.get("totalTasksRun", 0) + 1
        if node["state"] == "idle":
            set_state(node, "running", now)

    def release_slot(self, task: dict, job_key: str) -> None:
        """Free the node slots a task held (caller holds the lock)."""
        s = self.state
        where = task.pop("_node", None)
        if not where:
            return
        pool_key, node_id = where
        node = s.nodes.get(pool_key, {}).get(node_id)
        if node is None:
            return
        ref = [job_key, task["id"].lower()]
        if ref in node["_running"]:
            node["_running"].remove(ref)
            node["_used"] = max(0, node["_used"] - task.get("requiredSlots", 1))
        node["runningTasksCount"] = len(node["_running"])
        node["runningTaskSlotsCount"] = node["_used"]
        if node.get("_leaving") and not node["_running"]:
            s.nodes[pool_key].pop(node_id, None)
            s.forget_node(pool_key, node_id)
            s.on_node_removed(pool_key, dict(node))
            if pool_key in s.pools:
                self.update_pool_counts(pool_key)
            return
        if node["state"] == "running" and not node["_running"]:
            set_state(node, "idle")
        s.save_node(pool_key, node)

    def succeeded_on(self, node_ref: list | None) -> None:
        """Count a successful task on the node it ran on (lock held)."""
        node = self.state.nodes.get(node_ref[0], {}).get(node_ref[1]) if node_ref else None
        if node is not None:
            node["totalTasksSucceeded"] = node.get("totalTasksSucceeded", 0) + 1

    def recover_pool(self, pool_key: str) -> None:
        """After :meth:`State.load`: the pool's nodes that were leaving are gone; the others boot again (lock held)."""
        s = self.state
        nodes = s.nodes[pool_key]
        for node in list(nodes.values()):
            if node.get("_leaving"):
                nodes.pop(node["id"])
                s.forget_node(pool_key, node["id"])
            else:
                s.on_node_created(pool_key, node["id"])
