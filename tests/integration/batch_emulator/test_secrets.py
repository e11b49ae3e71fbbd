"""Secrets given to the emulator are write-only, as in Batch (issue 17 item 9): a container registry password sent
with a pool or a task is used for pulls but never returned by GET or list, whatever $select asks for."""

from __future__ import annotations

import json

import pytest
from azure.batch import models as m

from .conftest import vm_config

pytestmark = pytest.mark.integration
SECRET = "s3cret-registry-password"


def _registry():
    return m.ContainerRegistryReference(registry_server="registry.example:5000", username="puller", password=SECRET)


@pytest.fixture(scope="module")
def client(process_emulator):
    c = process_emulator.client()
    container = m.BatchContainerConfiguration(type="dockerCompatible", container_registries=[_registry()])
    c.create_pool(m.BatchPoolCreateOptions(id="sp", vm_size="standard_d2s_v3", target_dedicated_nodes=0,
                                           virtual_machine_configuration=vm_config(m, container)))
    c.create_job(m.BatchJobCreateOptions(id="sj", pool_info=m.BatchPoolInfo(pool_id="sp")))
    c.create_task("sj", m.BatchTaskCreateOptions(
        id="st", command_line="/bin/true",
        container_settings=m.BatchTaskContainerSettings(image_name="registry.example:5000/worker:1",
                                                         registry=_registry())))
    return c


def _text(model) -> str:
    return json.dumps(model.as_dict())


def test_get_and_list_pools_never_return_the_registry_password(client):
    pool = client.get_pool("sp")
    [registry] = pool.virtual_machine_configuration.container_configuration.container_registries
    assert registry.username == "puller" and registry.registry_server == "registry.example:5000"
    assert registry.password is None
    listed = [p for p in client.list_pools() if p.id == "sp"]
    selected = client.get_pool("sp", select=["id", "virtualMachineConfiguration"])
    for shown in (pool, *listed, selected):
        assert SECRET not in _text(shown)


def test_get_and_list_tasks_never_return_the_registry_password(client):
    task = client.get_task("sj", "st")
    assert task.container_settings.registry.username == "puller"
    assert task.container_settings.registry.password is None
    for shown in (task, *client.list_tasks("sj")):
        assert SECRET not in _text(shown)
