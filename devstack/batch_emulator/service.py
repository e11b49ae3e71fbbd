"""One emulated Batch account: model + node agent + scheduler loop + store flusher + autoscaler, wired up.

The scheduler is a single thread that sleeps on the model's condition variable and, when anything changed,
claims assignments and hands them to the agent; it also flushes the store's write-behind queue and enforces
job wall-clock limits.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from devstack.batch_emulator.agent.node_agent import Agent, instance_id
from devstack.batch_emulator.autoscaler import Autoscaler
from devstack.batch_emulator.model import BatchModel
from devstack.batch_emulator.model.job_schedules import JobSchedules
from devstack.batch_emulator.preemption import Preempter, PreemptionSettings

log = logging.getLogger("batch_emulator.service")

FLUSH_INTERVAL = 0.05


class AccountService:
    def __init__(self, account: str, data_dir: Path, container_runtime, process_runtime, resolver, *,
                 allow_host_access: bool = False, on_blobs_created=None, preemption: PreemptionSettings | None = None):
        self.account = account
        self.data_dir = Path(data_dir)
        self.model = BatchModel(account, self.data_dir)
        self.model.allow_host_access = allow_host_access
        self.model.job_schedules = JobSchedules(self.model)
        self.agent = Agent(self.model, container_runtime, process_runtime, resolver, instance_id(self.data_dir),
                           on_blobs_created=on_blobs_created)
        self.agent.starts_log = self.data_dir / "container-starts.jsonl"
        self.model.on_node_created = lambda pool_key, node_id: self._pending_nodes.append((pool_key, node_id))
        self.model.on_node_removed = self._node_removed
        self._pending_nodes: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.autoscaler = None
        self.preempter = Preempter(self.model, preemption or PreemptionSettings())  # preemption.py

    def _node_removed(self, pool_key: str, node: dict) -> None:
        root = self.model.nodes_dir / pool_key / node["id"]
        threading.Thread(target=shutil.rmtree, args=(root,), kwargs={"ignore_errors": True}, daemon=True).start()

    def start(self) -> None:
        lost = self.model.recover()  # the nodes to boot again come through on_node_created
        self.agent.cleanup_stale(lost)
        self._thread = threading.Thread(target=self._loop, name=f"scheduler-{self.account}", daemon=True)
        self._thread.start()
        self.autoscaler = Autoscaler(self.model)
        self.autoscaler.start()
        self.preempter.start()

    def _loop(self) -> None:
        model = self.model
        ticks = 0
        while not self._stop.is_set():
            with model.lock:
                if not model.schedule_needed and not self._pending_nodes:
                    model.changed.wait(FLUSH_INTERVAL)
                nodes, self._pending_nodes = self._pending_nodes, []
            try:
                for pool_key, node_id in nodes:
                    self.agent.start_node(pool_key, node_id)
                for assignment in model.claim_assignments():
                    self.agent.run_task(assignment)
                model.store.flush()
                ticks += 1
                if ticks % 20 == 0:
                    model.check_job_deadlines()
                    model.job_schedules.tick()
            except Exception:  # noqa: BLE001 - the loop must survive a bad entity
                log.exception("scheduler pass failed")

    def stop(self) -> None:
        self._stop.set()
        self.preempter.stop()
        if self.autoscaler is not None:
            try:
                self.autoscaler.stop()
            except Exception:  # noqa: BLE001
                log.exception("autoscaler stop failed")
        with self.model.lock:
            self.model.changed.notify_all()
        if self._thread:
            self._thread.join(timeout=5)
        self.model.store.close()
