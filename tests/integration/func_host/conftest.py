"""Fixtures for the local Functions host tests: hosts started on copies of the test apps, unique names."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from devstack.func_host.connections import AZURITE_CONNECTION_STRING
from tests.integration.func_host.hostproc import REPO, HostProcess


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def storage(request):
    """Storage for the host: the shared `stack` fixture; if the stack cannot start (another part of it is
    broken), Azurite alone on its default ports, started here when nothing listens there."""
    try:
        stack = request.getfixturevalue("stack")
        yield stack.storage_connection_string
        return
    except Exception as exc:  # noqa: BLE001 - fall back to Azurite only, and say why
        print(f"stack fixture unavailable ({type(exc).__name__}); using Azurite on the default ports")
    proc = None
    data = None
    if not all(_listening(p) for p in (10000, 10001)):
        data = Path(tempfile.mkdtemp(prefix="func-host-azurite-"))
        proc = subprocess.Popen([str(REPO / "node_modules/.bin/azurite"), "--silent", "--skipApiVersionCheck",
                                 "--loose", "--location", str(data)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not all(_listening(p) for p in (10000, 10001)):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("Azurite did not start on 127.0.0.1:10000/10001")
            time.sleep(0.1)
    yield AZURITE_CONNECTION_STRING
    if proc is not None:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


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
