"""Fixtures for the local Functions host tests: hosts started on copies of the test apps, unique names."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.func_host.hostproc import HostProcess


@pytest.fixture(scope="session")
def storage(stack):
    """Storage for the host: the shared `stack` fixture's Azurite."""
    return stack.storage_connection_string


@pytest.fixture
def unique():
    """unique("q") -> "q-1a2b3c4d5e": queue/container names no other test (or earlier run) uses."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_host(storage, tmp_path):
    """Build (not start) a HostProcess against the stack's Azurite; every host is stopped after the test."""
    hosts: list[HostProcess] = []
    counter = iter(range(100))
    run_id = uuid.uuid4().hex[:12]  # receipts and timer status of earlier runs never match this host id

    def make(app: str, **kwargs) -> HostProcess:
        folder = tmp_path / f"run{next(counter)}"
        folder.mkdir()
        kwargs.setdefault("host_id", f"fh-{run_id}")
        host = HostProcess(app, folder, storage, **kwargs)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        if host.proc is not None and host.proc.poll() is None:
            host.kill()
