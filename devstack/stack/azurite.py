"""Azurite (blob, queue, table) on loopback, and the app's blob containers in it."""

from __future__ import annotations

import json

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from devstack.common import local_accounts, paths
from devstack.stack.ports import Ports
from devstack.stack.processes import Service, http_status


def azurite_service(ports: Ports, env: dict[str, str] | None = None) -> Service:
    """The Azurite service; given the stack env, `up()` also creates the app's containers in it."""
    exe = paths.REPO_ROOT / "node_modules" / ".bin" / "azurite"
    location = paths.state_dir() / "azurite"
    location.mkdir(parents=True, exist_ok=True)

    def healthy() -> bool:
        for port in (ports.blob, ports.queue, ports.table):
            answer = http_status(f"http://127.0.0.1:{port}/{local_accounts.AZURITE_ACCOUNT}?comp=list")
            if not answer or "Azurite" not in answer[1].get("Server", ""):
                return False
        return True

    return Service(
        name="azurite",
        # --disableTelemetry: Azurite 3.35 otherwise sends usage data to Application Insights; nothing in the
        # local stack may open a connection off this machine (tests/integration/stack/test_stays_on_this_machine.py).
        command=[str(exe), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
                 "--location", str(location),
                 "--blobHost", "127.0.0.1", "--blobPort", str(ports.blob),
                 "--queueHost", "127.0.0.1", "--queuePort", str(ports.queue),
                 "--tableHost", "127.0.0.1", "--tablePort", str(ports.table)],
        port=ports.blob,
        healthy=healthy,
        hint="with EVENTBATCH_AZURITE_BLOB_PORT / _QUEUE_PORT / _TABLE_PORT",
        after_up=(lambda log: provision_storage(env)) if env is not None else None,
    )


def provision_storage(env: dict[str, str]) -> list[str]:
    """Create the app's blob containers, as infra/modules/storage.bicep does on Azure.

    The app creates its queues and table itself, but not the containers: Batch refuses to upload outputs to a
    missing container (FileUploadContainerNotFound). Names come from the local settings (INPUT_CONTAINER,
    OUTPUT_CONTAINER, and DEADLETTER_CONTAINER where the host's Event Grid stand-in dead-letters events, as
    infra/modules/eventgrid.bicep's container). Returns the containers created now."""
    sample = paths.REPO_ROOT / "local.settings.sample.json"
    values = json.loads(sample.read_text()).get("Values", {}) if sample.exists() else {}
    names = [values.get("INPUT_CONTAINER") or "input", values.get("OUTPUT_CONTAINER") or "output",
             values.get("DEADLETTER_CONTAINER") or "eventgrid-deadletter"]
    service = BlobServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"])
    created = []
    for name in dict.fromkeys(names):
        try:
            service.create_container(name)
            created.append(name)
        except ResourceExistsError:
            pass
    return created
