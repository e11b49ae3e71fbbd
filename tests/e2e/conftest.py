"""End-to-end fixtures: the shared stack (tests/conftest.py `stack`, started without the host) plus the local
Functions host running function_app.py, and the app's own view of storage (devstack.tools.access).

The host is started once per session if it is not already running, and stopped at the end only if this session
started it. Tests that kill it (test_host_restart.py) start it again before they finish.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@dataclass
class AppStack:
    stack: object  # tests.conftest.StackHandle
    access: object  # devstack.tools.access.AppAccess
    host_service: object  # devstack.stack.processes.Service of the Functions host

    def host_pid(self) -> int | None:
        from devstack.stack.processes import read_pid

        return read_pid(self.host_service)

    def start_host(self) -> str:
        from devstack.stack.processes import ensure_running

        return ensure_running(self.host_service, log=lambda line: None)


@pytest.fixture(scope="session")
def app_stack(stack):
    from devstack.stack.host import ensure_host, func_host_service
    from devstack.stack.processes import stop
    from devstack.tools.access import AppAccess
    from devstack.tools.demo import prepare_pools

    service = func_host_service(stack.env)
    action = ensure_host(service, log=lambda line: None)  # restarted if it runs an older app
    access = AppAccess.open()
    prepare_pools(access, [p for p, pool in access.config.pools.items() if pool.enabled], say=lambda line: None)
    yield AppStack(stack=stack, access=access, host_service=service)
    if action == "started" and os.environ.get("EVENTBATCH_KEEP_STACK") != "1":
        stop(service)
