"""The host's status file, ``<state-dir>/host.json``: what the stack health-checks and what a restart reads.

The same document is also written as ``<state-dir>/status.json`` (the name devstack/stack/host.py checks).

Holds pid, state (starting/running/stopping/stopped), start time, host id, the instance's lease id (so a
successor can release receipt leases of a host that was killed) and the indexed functions. Written atomically.
"""

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from devstack.common.procs import pid_alive
from devstack.func_host.errors import HostError


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class StatusFile:
    def __init__(self, state_dir: Path):
        self.path = state_dir / "host.json"
        self.alias = state_dir / "status.json"
        self.data: dict = {}

    def read_previous(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def check_not_running(self, previous: dict, host_id: str) -> None:
        pid = previous.get("pid")
        if (isinstance(pid, int) and pid != os.getpid() and previous.get("state") not in ("stopped", None)
                and pid_alive(pid)):
            raise HostError(f"another functions host (pid {pid}, host id {previous.get('host_id')!r}) is running "
                            f"with state dir {self.path.parent}; stop it first or pass a different --state-dir")

    def protect(self) -> None:
        """Owner-only: the file holds the webhook key once the webhook runs."""
        for target in (self.path, self.alias):
            os.chmod(target, 0o600)

    def write(self, **fields) -> None:
        self.data.update(fields)
        self.data["updated"] = now_iso()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.data, indent=2) + "\n"
        for target in (self.path, self.alias):
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(tmp, target)
