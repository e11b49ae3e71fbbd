"""A compute node's folders and the AZ_BATCH_* environment, laid out as Batch does on Linux.

    <data-dir>/nodes/<pool>/<node>/            AZ_BATCH_NODE_ROOT_DIR
        shared/  startup/wd  fsmounts/         AZ_BATCH_NODE_SHARED_DIR, _STARTUP_DIR, _MOUNTS_DIR
        workitems/<job>/job-1/<task>/          AZ_BATCH_TASK_DIR (stdout.txt, stderr.txt)
        workitems/<job>/job-1/<task>/wd        AZ_BATCH_TASK_WORKING_DIR
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NodeLayout:
    root: Path

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    @property
    def startup(self) -> Path:
        return self.root / "startup"

    @property
    def mounts(self) -> Path:
        return self.root / "fsmounts"

    def create(self) -> None:
        for d in (self.shared, self.startup / "wd", self.mounts, self.root / "workitems"):
            d.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        return self.root / "workitems" / job_id / "job-1"

    def task_dir(self, job_id: str, task_id: str) -> Path:
        return self.job_dir(job_id) / task_id

    def node_env(self, account: str, account_url: str, pool_id: str, node_id: str, dedicated: bool) -> dict:
        return {
            "AZ_BATCH_ACCOUNT_NAME": account,
            "AZ_BATCH_ACCOUNT_URL": account_url,
            "AZ_BATCH_POOL_ID": pool_id,
            "AZ_BATCH_NODE_ID": node_id,
            "AZ_BATCH_NODE_IS_DEDICATED": "true" if dedicated else "false",
            "AZ_BATCH_NODE_ROOT_DIR": str(self.root),
            "AZ_BATCH_NODE_SHARED_DIR": str(self.shared),
            "AZ_BATCH_NODE_STARTUP_DIR": str(self.startup),
            "AZ_BATCH_NODE_STARTUP_WORKING_DIR": str(self.startup / "wd"),
            "AZ_BATCH_NODE_MOUNTS_DIR": str(self.mounts),
            "AZ_BATCH_TASK_RESERVED_EPHEMERAL_DISK_SPACE_BYTES": "1000000000",
        }

    def start_task_env(self, base: dict) -> dict:
        env = dict(base)
        env["AZ_BATCH_TASK_DIR"] = str(self.startup)
        env["AZ_BATCH_TASK_WORKING_DIR"] = str(self.startup / "wd")
        return env

    def task_env(self, base: dict, job_id: str, task_id: str) -> dict:
        env = dict(base)
        task_dir = self.task_dir(job_id, task_id)
        env.update({
            "AZ_BATCH_JOB_ID": job_id,
            "AZ_BATCH_TASK_ID": task_id,
            "AZ_BATCH_TASK_DIR": str(task_dir),
            "AZ_BATCH_TASK_WORKING_DIR": str(task_dir / "wd"),
            "AZ_BATCH_CERTIFICATES_DIR": str(task_dir / "certs"),
        })
        return env


# containerHostBatchBindMounts source -> (folder relative to the node root or None for the task dir, env vars
# that stay visible when it is mounted)
BIND_SOURCE_VARS = {
    "Shared": ("shared", ("AZ_BATCH_NODE_SHARED_DIR",)),
    "Startup": ("startup", ("AZ_BATCH_NODE_STARTUP_DIR", "AZ_BATCH_NODE_STARTUP_WORKING_DIR")),
    "VfsMounts": ("fsmounts", ("AZ_BATCH_NODE_MOUNTS_DIR",)),
    "Task": (None, ("AZ_BATCH_TASK_DIR", "AZ_BATCH_TASK_WORKING_DIR", "AZ_BATCH_CERTIFICATES_DIR")),
    "JobPrep": ("", ()),
    "Applications": ("applications", ()),
}
