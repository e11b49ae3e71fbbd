"""userIdentity, containerHostBatchBindMounts and registry per pipeline; start task elevation per pool."""

import pytest
import yaml

from shared.errors import ConfigError
from shared.pipelines import parse_config
from shared.pool_spec import build_pool
from shared.task_spec import build_task
from shared.work_items import BlobInfo, WorkItem
from tests.unit.shared.conftest import LOCAL, REPO


def _doc():
    return yaml.safe_load((REPO / "pipelines.yaml").read_text())


def _with(**fields):
    doc = _doc()
    doc["pipelines"][0].update(fields)
    return doc


def _task(cfg, access):
    item = WorkItem(pipeline="transform", blob=BlobInfo("input", "transform/a.txt", '"0x1"', 3, "text/plain"),
                    source="blob")
    return build_task(item, cfg.pipeline("transform"), access).body


def test_fields_reach_the_batch_task(access):
    cfg = parse_config(_with(userIdentity={"autoUser": {"scope": "task", "elevationLevel": "Admin"}},
                             containerHostBatchBindMounts=[{"source": "shared", "isReadOnly": True},
                                                           {"source": "Task"}],
                             registry={"server": "reg.example", "username": "u", "password": "p"}), LOCAL)
    body = _task(cfg, access)
    assert body["userIdentity"] == {"autoUser": {"scope": "task", "elevationLevel": "admin"}}
    cs = body["containerSettings"]
    assert cs["containerHostBatchBindMounts"] == [{"source": "Shared", "isReadOnly": True},
                                                  {"source": "Task", "isReadOnly": False}]
    assert cs["registry"] == {"registryServer": "reg.example", "username": "u", "password": "p"}


def test_omitted_fields_leave_batch_defaults(config, access):
    body = _task(parse_config(_with(), LOCAL), access)
    assert "userIdentity" not in body or body["userIdentity"]["autoUser"]["elevationLevel"] == "nonadmin"
    assert "containerHostBatchBindMounts" not in body["containerSettings"]
    assert "registry" not in body["containerSettings"]


@pytest.mark.parametrize("fields, match", [
    ({"userIdentity": {"autoUser": {"elevationLevel": "root"}}}, r"userIdentity\.autoUser\.elevationLevel: 'root'"),
    ({"userIdentity": {"autoUser": {"scope": "node"}}}, r"userIdentity\.autoUser\.scope: 'node'"),
    ({"userIdentity": {"userName": "bob"}}, r"userIdentity: unknown key\(s\) userName"),
    ({"containerHostBatchBindMounts": [{"source": "Root"}]}, r"containerHostBatchBindMounts\[0\]\.source: 'Root'"),
    ({"containerHostBatchBindMounts": "Shared"}, r"containerHostBatchBindMounts: must be a list"),
    ({"registry": {"server": "r", "username": "u"}}, r"registry\.username: username and password go together"),
])
def test_bad_fields_name_the_field(fields, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(_with(**fields), LOCAL)


def test_start_task_elevation_reaches_the_pool():
    doc = _doc()
    doc["pools"][0]["startTask"]["userIdentity"] = {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}
    pool = parse_config(doc, LOCAL).pools["eventbatch-standard"]
    assert build_pool(pool)["startTask"]["userIdentity"] == {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}
    default = parse_config(_doc(), LOCAL).pools["eventbatch-standard"]
    assert build_pool(default)["startTask"]["userIdentity"]["autoUser"]["elevationLevel"] == "nonadmin"
    doc["pools"][0]["startTask"]["userIdentity"] = {"autoUser": {"elevationLevel": "sudo"}}
    with pytest.raises(ConfigError, match=r"startTask\.userIdentity\.autoUser\.elevationLevel"):
        parse_config(doc, LOCAL)


def test_generate_pools_carries_start_task_elevation():
    from infra.generate_pools import start_task
    doc = _doc()
    doc["pools"][0]["startTask"] = {"commandLine": "mount.sh", "userIdentity": {"autoUser": {"elevationLevel": "admin"}}}
    out = start_task(parse_config(doc, LOCAL).pools["eventbatch-standard"])
    assert out["userIdentity"] == {"autoUser": {"scope": "Pool", "elevationLevel": "Admin"}}
