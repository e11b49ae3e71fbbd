"""Protocol, auth, errors and paging of the emulator through the unmodified azure-batch 15.1 client."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from urllib.parse import urlparse

import pytest
from azure.batch import models as m
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from .conftest import ACCOUNT, vm_config, wait_nodes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(process_emulator):
    c = process_emulator.client()
    c.create_pool(m.BatchPoolCreateOptions(id="proto", vm_size="standard_d2s_v3", virtual_machine_configuration=
                                           vm_config(m), target_dedicated_nodes=1, task_slots_per_node=4))
    c.create_job(m.BatchJobCreateOptions(id="proto-job", pool_info=m.BatchPoolInfo(pool_id="proto")))
    wait_nodes(c, "proto", 1)
    yield c
    c.close()


def raw(emu, method, path, body=None, headers=None):
    u = urlparse(emu.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def test_wrong_key_is_refused_with_authentication_failed(process_emulator, client):
    bad = process_emulator.client(key=base64.b64encode(b"not the key").decode())
    with pytest.raises(HttpResponseError) as err:  # 15.1 maps only 401 to ClientAuthenticationError
        bad.get_pool("proto")
    assert err.value.status_code == 403
    assert err.value.error.code == "AuthenticationFailed"


def test_missing_auth_is_refused(process_emulator):
    resp, data = raw(process_emulator, "GET", "/pools?api-version=2025-06-01")
    assert resp.status == 401
    with pytest.raises(ClientAuthenticationError):
        from azure.batch import BatchClient
        from azure.core.credentials import AccessToken

        class Token:
            def get_token(self, *scopes, **kw):
                return AccessToken("not-a-jwt", 4102444800)
        BatchClient(process_emulator.url, Token()).get_pool("proto", enforce_https=False)
    assert json.loads(data)["code"] == "AuthenticationFailed"


def test_tampered_request_is_refused(process_emulator, client):
    """A signature made for one URL does not authorise another (the path is part of the string to sign)."""
    captured = {}

    def grab(request):
        captured.update(request.http_request.headers)
    client.get_pool("proto", raw_request_hook=grab)
    headers = {k: v for k, v in captured.items() if k.lower() in ("authorization", "ocp-date")}
    ok, _ = raw(process_emulator, "GET", "/pools/proto?api-version=2025-06-01", headers=headers)
    assert ok.status == 200
    resp, data = raw(process_emulator, "GET", "/pools/proto-other?api-version=2025-06-01", headers=headers)
    assert resp.status == 403 and json.loads(data)["code"] == "AuthenticationFailed"
    headers["ocp-date"] = "Mon, 01 Jan 2024 00:00:00 GMT"
    resp, _ = raw(process_emulator, "GET", "/pools/proto?api-version=2025-06-01", headers=headers)
    assert resp.status == 403


@pytest.mark.parametrize("version", ["2025-06-01", "2024-02-01.19.0", "2021-06-01.14.0"])
def test_api_versions_of_the_15_14_and_11_clients(process_emulator, client, version):
    c = process_emulator.client(api_version=version)
    assert c.get_pool("proto").id == "proto"


def test_health_needs_no_auth(process_emulator):
    assert process_emulator.health()["status"] == "ok"


def test_exists_errors_are_409_with_batch_codes(client):
    pool = m.BatchPoolCreateOptions(id="PROTO", vm_size="standard_d2s_v3", virtual_machine_configuration=vm_config(m))
    with pytest.raises(ResourceExistsError) as err:
        client.create_pool(pool)
    assert err.value.error.code == "PoolExists"
    with pytest.raises(ResourceExistsError) as err:
        client.create_job(m.BatchJobCreateOptions(id="Proto-Job", pool_info=m.BatchPoolInfo(pool_id="proto")))
    assert err.value.error.code == "JobExists"
    client.create_task("proto-job", m.BatchTaskCreateOptions(id="dup", command_line="/bin/true"))
    with pytest.raises(ResourceExistsError) as err:
        client.create_task("proto-job", m.BatchTaskCreateOptions(id="DUP", command_line="/bin/true"))
    assert err.value.error.code == "TaskExists"


def test_not_found_errors_are_404_with_batch_codes(client):
    for call, code in ((lambda: client.get_pool("nope"), "PoolNotFound"),
                       (lambda: client.get_job("nope"), "JobNotFound"),
                       (lambda: client.get_task("proto-job", "nope"), "TaskNotFound")):
        with pytest.raises(ResourceNotFoundError) as err:
            call()
        assert err.value.status_code == 404
        assert err.value.error.code == code


def test_pool_exists_quirk_of_15_1(client):
    assert client.pool_exists("proto") is True
    with pytest.raises(ResourceNotFoundError):
        client.pool_exists("no-such-pool")


@pytest.mark.parametrize("task_id", ["has space", "x" * 65, "dots.not.allowed", ""])
def test_invalid_ids_are_rejected(client, task_id):
    with pytest.raises(HttpResponseError) as err:
        client.create_task("proto-job", m.BatchTaskCreateOptions(id=task_id, command_line="/bin/true"))
    assert err.value.status_code == 400
    assert err.value.error.code in ("InvalidPropertyValue", "MissingRequiredProperty")


def test_missing_required_property_names_it(client):
    with pytest.raises(HttpResponseError) as err:
        client.create_job(m.BatchJobCreateOptions(id="no-pool-info", pool_info=m.BatchPoolInfo()))
    assert err.value.error.code == "MissingRequiredProperty"
    assert ("PropertyName", "poolInfo.poolId") in [(d.key, d.value) for d in err.value.model.error_values]


def test_enum_values_are_validated(client):
    with pytest.raises(HttpResponseError) as err:
        client.create_job(m.BatchJobCreateOptions(id="bad-enum", pool_info=m.BatchPoolInfo(pool_id="proto"),
                                                  all_tasks_complete_mode="sometimes"))
    assert err.value.error.code == "InvalidPropertyValue"


def test_invalid_json_body(process_emulator, client):
    captured = {}
    client.get_pool("proto", raw_request_hook=lambda r: captured.update(r.http_request.headers))
    # unsigned garbage is refused by auth first; a signed garbage body gets InvalidRequestBody
    from devstack.batch_emulator.protocol import auth as emu_auth
    body = b"{not json"
    headers = {"Content-Type": "application/json; odata=minimalmetadata", "Content-Length": str(len(body)),
               "ocp-date": captured["ocp-date"]}
    sts = emu_auth.string_to_sign("POST", "/jobs", "api-version=2025-06-01", headers, ACCOUNT)
    from .conftest import KEY
    headers["Authorization"] = f"SharedKey {ACCOUNT}:{emu_auth.sign(base64.b64decode(KEY), sts)}"
    resp, data = raw(process_emulator, "POST", "/jobs?api-version=2025-06-01", body=body, headers=headers)
    assert resp.status == 400 and json.loads(data)["code"] == "InvalidRequestBody"


def test_more_than_100_tasks_is_request_body_too_large(client):
    tasks = [m.BatchTaskCreateOptions(id=f"big{i}", command_line="/bin/true") for i in range(101)]
    with pytest.raises(HttpResponseError) as err:
        client.create_task_collection("proto-job", m.BatchTaskGroup(task_values=tasks))
    assert err.value.status_code == 413
    assert err.value.error.code == "RequestBodyTooLarge"


def test_over_1mb_is_request_body_too_large_and_create_tasks_splits(client):
    env = [m.EnvironmentSetting(name="PAD", value="x" * 20000)]
    tasks = [m.BatchTaskCreateOptions(id=f"pad{i}", command_line="/bin/true", environment_settings=env)
             for i in range(60)]
    with pytest.raises(HttpResponseError) as err:
        client.create_task_collection("proto-job", m.BatchTaskGroup(task_values=tasks))
    assert err.value.error.code == "RequestBodyTooLarge"
    result = client.create_tasks("proto-job", tasks)  # the SDK halves chunks on RequestBodyTooLarge
    assert sorted(r.status for r in result.result_values) == ["success"] * 60


def test_add_task_collection_reports_per_task_results(client):
    tasks = [m.BatchTaskCreateOptions(id="col-ok", command_line="/bin/true"),
             m.BatchTaskCreateOptions(id="dup", command_line="/bin/true"),
             m.BatchTaskCreateOptions(id="bad id", command_line="/bin/true")]
    result = client.create_task_collection("proto-job", m.BatchTaskGroup(task_values=tasks))
    by_id = {r.task_id: r for r in result.result_values}
    assert by_id["col-ok"].status == "success" and by_id["col-ok"].etag and by_id["col-ok"].location
    assert by_id["dup"].status == "clienterror" and by_id["dup"].error.code == "TaskExists"
    assert by_id["bad id"].error.code == "InvalidPropertyValue"


def test_container_settings_rules(client):
    with pytest.raises(HttpResponseError) as err:
        client.create_task("proto-job", m.BatchTaskCreateOptions(
            id="ctr-on-plain", command_line="", container_settings=m.BatchTaskContainerSettings(image_name="x:1")))
    assert err.value.error.code == "InvalidPropertyValue"
    cc = m.BatchContainerConfiguration(type="dockerCompatible")
    client.create_pool(m.BatchPoolCreateOptions(id="ctr-rules", vm_size="standard_d2s_v3",
                                                virtual_machine_configuration=vm_config(m, cc)))
    client.create_job(m.BatchJobCreateOptions(id="ctr-rules-job", pool_info=m.BatchPoolInfo(pool_id="ctr-rules")))
    with pytest.raises(HttpResponseError) as err:
        client.create_task("ctr-rules-job", m.BatchTaskCreateOptions(id="plain-on-ctr", command_line="/bin/true"))
    assert err.value.error.code == "InvalidPropertyValue"
    client.begin_delete_job("ctr-rules-job").result()
    client.begin_delete_pool("ctr-rules").result()


def test_entities_carry_what_the_sdk_reads(process_emulator, client):
    pool = client.get_pool("proto")
    assert pool.url == f"{process_emulator.url}/pools/proto"
    assert pool.etag and pool.last_modified and pool.creation_time and pool.state_transition_time
    assert pool.state == "active" and pool.allocation_state == "steady"
    assert pool.current_dedicated_nodes == 1 and pool.task_slots_per_node == 4
    headers = {}
    client.get_job("proto-job", raw_response_hook=lambda r: headers.update(r.http_response.headers))
    assert headers["ETag"] and headers["Last-Modified"].endswith("GMT")
    job = client.get_job("proto-job")
    assert job.execution_info.pool_id == "proto" and job.state == "active"
    node = client.list_nodes("proto").__next__()
    assert node.id.startswith("tvm-") and node.state in ("idle", "running") and node.is_dedicated


def test_paging_filter_and_select(client):
    job = f"page-{uuid.uuid4().hex[:6]}"
    client.create_job(m.BatchJobCreateOptions(id=job, pool_info=m.BatchPoolInfo(pool_id="proto"),
                                              uses_task_dependencies=True))
    tasks = [m.BatchTaskCreateOptions(id=f"p{i}", command_line="/bin/true") for i in range(7)]
    tasks.append(m.BatchTaskCreateOptions(id="blocked", command_line="/bin/true",
                                          depends_on=m.BatchTaskDependencies(task_ids=["never"])))
    client.create_tasks(job, tasks)
    from tests.helpers import wait_for
    wait_for(lambda: client.get_job_task_counts(job).task_counts.completed == 7, what="7 completed")
    pages = client.list_tasks(job, max_results=3).by_page()
    sizes = [len(list(p)) for p in pages]
    assert sizes == [3, 3, 2]
    done = [t.id for t in client.list_tasks(job, filter="state eq 'completed'", max_results=2)]
    assert sorted(done) == [f"p{i}" for i in range(7)]
    active = [t.id for t in client.list_tasks(job, filter="state ne 'completed'")]
    assert active == ["blocked"]
    both = [t.id for t in client.list_tasks(job, filter="(state eq 'active' or state eq 'running') and id eq "
                                                        "'blocked'")]
    assert both == ["blocked"]
    selected = list(client.list_tasks(job, select=["id", "state"], max_results=5))
    assert len(selected) == 8 and all(t.command_line is None and t.state for t in selected)
    jobs = [j.id for j in client.list_jobs(filter=f"state eq 'active' and id eq '{job}'")]
    assert jobs == [job]
    assert [p.id for p in client.list_pools(filter="state eq 'active' and id eq 'proto'")] == ["proto"]
    assert len(list(client.list_nodes("proto", filter="state eq 'idle' or state eq 'running'"))) == 1
    with pytest.raises(HttpResponseError) as err:
        list(client.list_tasks(job, filter="state eq"))
    assert err.value.error.code == "InvalidQueryParameterValue"


def test_supported_images(client):
    images = list(client.list_supported_images())
    assert any("DockerCompatible" in (i.capabilities or []) for i in images)
    assert all(i.node_agent_sku_id and i.image_reference.publisher for i in images)


def test_job_update_terminate_delete_and_counts(client):
    client.create_job(m.BatchJobCreateOptions(id="lifecycle", pool_info=m.BatchPoolInfo(pool_id="proto")))
    client.update_job("lifecycle", m.BatchJobUpdateOptions(priority=100, metadata=[m.BatchMetadataItem(
        name="k", value="v")]))
    job = client.get_job("lifecycle")
    assert job.priority == 100 and job.metadata[0].value == "v"
    counts = client.get_job_task_counts("lifecycle")
    assert counts.task_counts.active == 0 and counts.task_slot_counts.completed == 0
    from azure.batch.models._models import BatchJobTerminateOptions  # not exported by 15.1

    client.begin_terminate_job("lifecycle", BatchJobTerminateOptions(termination_reason="Done here"),
                               polling_interval=0.2).result()
    job = client.get_job("lifecycle")
    assert job.state == "completed" and job.execution_info.termination_reason == "Done here"
    assert job.previous_state == "terminating" and job.execution_info.end_time
    with pytest.raises(HttpResponseError) as err:
        client.create_task("lifecycle", m.BatchTaskCreateOptions(id="late", command_line="/bin/true"))
    assert err.value.error.code == "JobCompleted"
    client.begin_delete_job("lifecycle", polling_interval=0.2).result()
    with pytest.raises(ResourceNotFoundError):
        client.get_job("lifecycle")


def test_pool_resize_and_autoscale_formula_is_stored(client):
    client.create_pool(m.BatchPoolCreateOptions(id="sizing", vm_size="standard_d2s_v3",
                                                virtual_machine_configuration=vm_config(m), target_dedicated_nodes=1))
    client.begin_resize_pool("sizing", m.BatchPoolResizeOptions(target_dedicated_nodes=3, target_low_priority_nodes=1),
                             polling_interval=0.2).result()
    nodes = wait_nodes(client, "sizing", 4)
    assert sum(1 for n in nodes if not n.is_dedicated) == 1
    pool = client.get_pool("sizing")
    assert (pool.target_dedicated_nodes, pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (3, 3, 1)
    client.begin_resize_pool("sizing", m.BatchPoolResizeOptions(target_dedicated_nodes=1, target_low_priority_nodes=0),
                             polling_interval=0.2).result()
    assert len(list(client.list_nodes("sizing"))) == 1
    client.enable_pool_auto_scale("sizing", m.BatchPoolEnableAutoScaleOptions(
        auto_scale_formula="$TargetDedicatedNodes = 2;", auto_scale_evaluation_interval="PT5M"))
    pool = client.get_pool("sizing")
    assert pool.enable_auto_scale and pool.auto_scale_formula == "$TargetDedicatedNodes = 2;"
    # enableautoscale evaluates at once (the autoscale module) and the model adds the node
    assert pool.target_dedicated_nodes == 2 and pool.auto_scale_run.results
    wait_nodes(client, "sizing", 2)
    run = client.evaluate_pool_auto_scale("sizing", m.BatchPoolEvaluateAutoScaleOptions(
        auto_scale_formula="$TargetDedicatedNodes = 2;"))
    assert run.timestamp
    with pytest.raises(HttpResponseError) as err:
        client.begin_resize_pool("sizing", m.BatchPoolResizeOptions(target_dedicated_nodes=1)).result()
    assert err.value.status_code == 409
    client.disable_pool_auto_scale("sizing")
    assert client.get_pool("sizing").enable_auto_scale is False
    client.begin_delete_pool("sizing", polling_interval=0.2).result()
    with pytest.raises(ResourceNotFoundError):
        client.get_pool("sizing")
