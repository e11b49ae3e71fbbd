from shared.manifest import build_manifest, completion_message, task_outcome
from shared.pipelines import load_config
from shared.pool_spec import build_pool
from tests.unit.app.conftest import LOCAL, REPO


def test_autoscale_pool_prefetches_images_with_registry_credentials(config):
    body = build_pool(config.pools["eventbatch-standard"])
    cc = body["virtualMachineConfiguration"]["containerConfiguration"]
    assert cc == {"type": "dockerCompatible", "containerImageNames": [LOCAL["WORKER_IMAGE"]],
                  "containerRegistries": [{"registryServer": "127.0.0.1:5055", "username": "eventbatch",
                                           "password": "eventbatch-local"}]}
    assert body["enableAutoScale"] and "$TargetDedicatedNodes" in body["autoScaleFormula"]
    assert body["startTask"]["waitForSuccess"] is True and body["taskSlotsPerNode"] == 4


def test_fixed_pool_and_identity_registry():
    cfg = load_config(REPO / "pipelines.yaml", {**LOCAL, "REGISTRY_USERNAME": "", "REGISTRY_PASSWORD": "",
                                                "POOL_IDENTITY_RESOURCE_ID": "/id/pool", "POOL_SCALE_MODE": "fixed"})
    body = build_pool(cfg.pools["eventbatch-standard"])
    assert body["targetDedicatedNodes"] == 2 and body["enableAutoScale"] is False
    reg = body["virtualMachineConfiguration"]["containerConfiguration"]["containerRegistries"][0]
    assert reg == {"registryServer": "127.0.0.1:5055", "identityReference": {"resourceId": "/id/pool"}}


def test_failed_task_manifest_and_message():
    task = {"id": "t1", "state": "completed", "executionInfo": {
        "startTime": "2026-11-28T10:00:00Z", "endTime": "2026-11-28T10:00:02.5Z", "exitCode": 3,
        "result": "failure", "retryCount": 1, "requeueCount": 0,
        "failureInfo": {"category": "usererror", "code": "FailureExitCode", "message": "exit code 3"}}}
    outcome = task_outcome(task)
    assert outcome["state"] == "failed" and outcome["durationSeconds"] == 2.5 and outcome["retryCount"] == 1
    record = {"RowKey": "t1", "pipeline": "transform", "inputContainer": "input", "inputName": "transform/a b",
              "inputEtag": "e", "inputSize": 3}
    m = build_manifest(record, "job", "t1", outcome, [], {}, "boom\n", "now")
    assert m["input"]["name"] == "transform/a b" and m["exitCode"] == 3 and m["stderrTail"] == "boom\n"
    msg = completion_message(m, "output", "x/manifest.json")
    assert msg["state"] == "failed" and msg["failure"]["code"] == "FailureExitCode"


def test_outputs_of_a_nested_run_are_not_claimed():
    from shared.manifest import split_outputs

    listing = [("t/a/result.txt", 3), ("t/a/logs/stdout.txt", 1), ("t/a/logs/stderr.txt", 0),
               ("t/a/sub/extra.txt", 2),  # the worker of run 'a' wrote out/sub/extra.txt
               ("t/a/b/result.txt", 5), ("t/a/b/logs/stdout.txt", 1),  # run 'a/b' (input named a/b)
               ("t/a/manifest.json", 9), ("t/ab/result.txt", 7)]
    outputs, logs = split_outputs("out", "t/a", listing)
    assert [o["name"] for o in outputs] == ["t/a/result.txt", "t/a/sub/extra.txt"]
    assert logs == {"stdout": {"container": "out", "name": "t/a/logs/stdout.txt", "size": 1},
                    "stderr": {"container": "out", "name": "t/a/logs/stderr.txt", "size": 0}}
