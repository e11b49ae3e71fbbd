"""`eventbatch up` twice reuses the services, `.devstack/env` works with the SDKs, `down` leaves nothing running.

Runs a second, private stack (its own state folder and ports) so the shared stack of the test session is untouched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest

from devstack.batch_emulator.launcher import free_port as _free_port
from devstack.stack.engine import remove_outside_runroot

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _eventbatch(env, *args):
    return subprocess.run([sys.executable, "-m", "devstack.cli", *args], env=env, capture_output=True, text=True,
                          timeout=240)


def _source(env_file) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f"set -a; source {env_file}; env -0"], capture_output=True, check=True)
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


@pytest.fixture
def state(tmp_path):
    """The private stack's state folder; pytest's temp path is deep, so its podman runroot is in /tmp."""
    folder = tmp_path / "state"
    yield folder
    remove_outside_runroot(folder)


def test_up_twice_reuses_then_down_stops_everything(state):
    env = {**os.environ, "EVENTBATCH_STATE_DIR": str(state),
           "EVENTBATCH_AZURITE_BLOB_PORT": str(_free_port()), "EVENTBATCH_AZURITE_QUEUE_PORT": str(_free_port()),
           "EVENTBATCH_AZURITE_TABLE_PORT": str(_free_port()), "EVENTBATCH_REGISTRY_PORT": str(_free_port()),
           "EVENTBATCH_BATCH_PORT": str(_free_port())}
    try:
        first = _eventbatch(env, "up", "--no-host")
        assert first.returncode == 0, first.stderr + first.stdout
        assert "started" in first.stdout and "reused" not in first.stdout
        pids = {p.stem: int(p.read_text()) for p in (state / "pids").iterdir()}
        assert {"azurite", "registry"} <= set(pids)

        second = _eventbatch(env, "up", "--no-host")
        assert second.returncode == 0, second.stderr
        assert "started" not in second.stdout
        assert second.stdout.count("reused") == len(pids)
        assert {p.stem: int(p.read_text()) for p in (state / "pids").iterdir()} == pids

        # `source .devstack/env` is enough for the azure SDKs.
        sourced = _source(state / "env")
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(sourced["AZURE_STORAGE_CONNECTION_STRING"])
        name = f"lifecycle-{uuid.uuid4().hex[:8]}"
        service.create_container(name).upload_blob("x.txt", b"x")
        assert [b.name for b in service.get_container_client(name).list_blobs()] == ["x.txt"]
        assert sourced["BATCH_ACCOUNT_URL"].endswith(env["EVENTBATCH_BATCH_PORT"])
    finally:
        down = _eventbatch(env, "down")
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid), f"{name} (pid {pid}) still running after down"
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    for key in ("EVENTBATCH_AZURITE_BLOB_PORT", "EVENTBATCH_REGISTRY_PORT", "EVENTBATCH_BATCH_PORT"):
        assert f"127.0.0.1:{env[key]} " not in listening


def test_port_taken_by_a_stranger_is_a_clear_error(state):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {**os.environ, "EVENTBATCH_STATE_DIR": str(state),
               "EVENTBATCH_AZURITE_BLOB_PORT": str(port), "EVENTBATCH_AZURITE_QUEUE_PORT": str(_free_port()),
               "EVENTBATCH_AZURITE_TABLE_PORT": str(_free_port())}
        result = _eventbatch(env, "up", "--no-host")
    assert result.returncode == 1
    assert f"port 127.0.0.1:{port} is taken" in result.stderr
    assert "EVENTBATCH_AZURITE_BLOB_PORT" in result.stderr


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
