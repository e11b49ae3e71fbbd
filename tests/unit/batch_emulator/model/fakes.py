"""A BatchModel on a temporary store with a fake agent: nodes boot at once, attempts end as a test scripts them."""

from __future__ import annotations

from devstack.batch_emulator.model import BatchModel
from devstack.batch_emulator.model.scheduling import Assignment, Outcome

IMAGE = {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts", "version": "latest"}
POOL = {"id": "p", "vmSize": "standard_d2s_v3", "targetDedicatedNodes": 1,
        "virtualMachineConfiguration": {"imageReference": IMAGE, "nodeAgentSKUId": "batch.node.ubuntu 22.04"}}


class FakeAgent:
    """Stands in for agent/node_agent.py: boots the nodes the model hands it, runs nothing, reports what the test
    says through the same calls the real agent makes (register_kill, task_finished)."""

    def __init__(self, model: BatchModel):
        self.model = model
        self.pending: list[tuple[str, str]] = []
        self.running: dict[str, Assignment] = {}
        self.killed: list[str] = []
        model.on_node_created = lambda pool_key, node_id: self.pending.append((pool_key, node_id))

    def boot(self) -> None:
        """Every node handed over becomes idle (a node with no start task)."""
        nodes, self.pending = self.pending, []
        for pool_key, node_id in nodes:
            self.model.node_transition(pool_key, node_id, "idle")

    def schedule(self) -> list[str]:
        """One scheduler pass: claim assignments and start them; returns the task ids started."""
        self.boot()
        started = []
        for a in self.model.claim_assignments():
            key = a.task_key
            self.running[key] = a
            self.model.register_kill(a.job_key, key, a.attempt, lambda key=key: self.killed.append(key), None)
            started.append(a.task["id"])
        return started

    def finish(self, task_id: str, exit_code: int = 0, **outcome) -> Assignment:
        """The attempt of ``task_id`` that was started last ends with ``exit_code`` (or another outcome)."""
        a = self.running.pop(task_id.lower())
        self.model.task_finished(a.job_key, a.task_key, a.attempt, Outcome(exit_code=exit_code, **outcome))
        return a


def new_model(tmp_path, pool: dict | None = None) -> tuple[BatchModel, FakeAgent]:
    model = BatchModel("acct", tmp_path / "account")
    model.account_url = "http://127.0.0.1:1/acct"
    agent = FakeAgent(model)
    model.create_pool(dict(pool or POOL))
    agent.boot()
    return model, agent


def add_job(model: BatchModel, job_id: str = "j", **fields) -> dict:
    return model.create_job({"id": job_id, "poolInfo": {"poolId": "p"}, **fields})


def add_task(model: BatchModel, task_id: str, job_id: str = "j", **fields) -> dict:
    return model.create_task(job_id, {"id": task_id, "commandLine": "/bin/true", **fields})
