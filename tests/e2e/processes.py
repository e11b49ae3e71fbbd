"""Waiting helpers of the e2e tests that kill and restart the stack's processes."""

from __future__ import annotations

import os
import time


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def gone(pid: int) -> bool:
    """True once `pid` no longer exists. Reaps it if it is our child; an orphan is reaped by init (the host's own
    "another host is running" check sees a zombie as alive)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return not os.path.exists(f"/proc/{pid}")
