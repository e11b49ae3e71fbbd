"""What the test suites share that is not a fixture: waiting for a condition or a process to end (standard library
only, so the azure-batch 14.2 env of tests/compat14 can import it too)."""

from __future__ import annotations

import os
import time


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.1):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def gone(pid: int) -> bool:
    """True once `pid` no longer exists. Reaps it if it is our child; an orphan is reaped by init (the host's own
    "another host is running" check sees a zombie as alive)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return not os.path.exists(f"/proc/{pid}")
