"""End-to-end fixtures: the shared stack (tests/conftest.py `stack`, started without the host) plus the local
Functions host running function_app.py, and the app's own view of storage (devstack.app_access).

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
    access: object  # devstack.app_access.AppAccess
    host_service: object  # devstack.services.Service of the Functions host

    def host_pid(self) -> int | None:
        from devstack.services import read_pid

        return read_pid(self.host_service)

    def start_host(self) -> str:
        from devstack.services import ensure_running

        return ensure_running(self.host_service, log=lambda line: None)


@pytest.fixture(scope="session")
def app_stack(stack):
    from devstack import stack as devstack_stack
    from devstack.app_access import AppAccess
    from devstack.demo import prepare_pools
    from devstack.services import stop

    service = devstack_stack.func_host_service(stack.env)
    action = devstack_stack.ensure_host(service, log=lambda line: None)  # restarted if it runs an older app
    access = AppAccess.open()
    prepare_pools(access, [p for p, pool in access.config.pools.items() if pool.enabled], say=lambda line: None)
    yield AppStack(stack=stack, access=access, host_service=service)
    if action == "started" and os.environ.get("EVENTBATCH_KEEP_STACK") != "1":
        stop(service)
