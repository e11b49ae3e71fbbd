"""Shared fixtures: the real local stack, started once per test session and reused when already running.

Integration and end-to-end tests take `stack` (endpoints and well-known local credentials). Services this
session started are stopped at the end; services that were already running (for example from `make up`) are
left alone. EVENTBATCH_KEEP_STACK=1 keeps what we started, to speed up repeated runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class StackHandle:
    env: dict[str, str]

    @property
    def storage_connection_string(self) -> str:
        return self.env["AZURE_STORAGE_CONNECTION_STRING"]

    @property
    def registry_server(self) -> str:
        return self.env["REGISTRY_SERVER"]

    @property
    def registry_username(self) -> str:
        return self.env["REGISTRY_USERNAME"]

    @property
    def registry_password(self) -> str:
        return self.env["REGISTRY_PASSWORD"]

    @property
    def worker_image(self) -> str:
        return self.env["WORKER_IMAGE"]

    @property
    def hello_image(self) -> str:
        return self.env["HELLO_IMAGE"]

    @property
    def runtime(self) -> str:
        return self.env["CONTAINER_RUNTIME"]

    @property
    def batch_url(self) -> str:
        return self.env["BATCH_ACCOUNT_URL"]

    @property
    def batch_account(self) -> str:
        return self.env["BATCH_ACCOUNT_NAME"]

    @property
    def batch_key(self) -> str:
        return self.env["BATCH_ACCOUNT_KEY"]

    def container_env(self) -> dict[str, str]:
        """Environment for running the container CLI against the stack's engine and storage."""
        keys = ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF")
        return {**os.environ, **{k: self.env[k] for k in keys if k in self.env}}

    def batch_emulator_env(self) -> dict[str, str]:
        """What a private Batch emulator needs on top of os.environ to run the stack's containers and staging."""
        from devstack.stack.emulator import batch_emulator_env

        return batch_emulator_env(self.env)


@pytest.fixture(scope="session")
def stack():
    from devstack.stack import lifecycle
    from devstack.stack.processes import Service, stop

    info = lifecycle.up(with_host=False, log=lambda line: None)
    yield StackHandle(dict(info.env))
    if os.environ.get("EVENTBATCH_KEEP_STACK") == "1":
        return
    for name, action in reversed(list(info.actions.items())):
        if action == "started":
            stop(Service(name, [name], None, lambda: False))


@pytest.fixture(scope="session")
def batch_client(stack):
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential

    client = BatchClient(stack.batch_url, AzureNamedKeyCredential(stack.batch_account, stack.batch_key))
    yield client
    client.close()


@pytest.fixture(scope="session")
def blob_service(stack):
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(stack.storage_connection_string)


@pytest.fixture(scope="session")
def queue_service(stack):
    from azure.storage.queue import QueueServiceClient

    return QueueServiceClient.from_connection_string(stack.storage_connection_string)
