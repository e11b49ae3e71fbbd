import json
import shlex
from dataclasses import replace

import pytest

from shared.errors import Rejection
from shared.task_spec import INPUT_PATH_WRAPPER, build_merge_task, build_task, fanout_prefix, plan_merge
from shared.work_items import BlobInfo, Overrides, WorkItem

HOSTILE = "transform/$(touch /tmp/pwned); `id` 'q' \"dq\" café.txt"


def _item(name="transform/hello.txt", **kw):
    return WorkItem(pipeline=kw.pop("pipeline", "transform"),
                    blob=BlobInfo("input", name, '"0x8D1"', 42, "text/plain"), source="blob", **kw)


def _env(spec):
    return {e["name"]: e["value"] for e in spec.body["environmentSettings"]}


def test_blob_task_has_input_outputs_logs_container_and_constraints(config, access):
    spec = build_task(_item(), config.pipeline("transform"), access)
    body = spec.body
    assert body["id"] == spec.task_id and spec.output_prefix == "transform/hello.txt"
    assert body["resourceFiles"] == [{"httpUrl": access.endpoint + "/input/transform/hello.txt?sig=read",
                                      "filePath": "in/hello.txt"}]
    patterns = {f["filePattern"]: f for f in body["outputFiles"]}
    assert patterns["out/**"]["destination"]["container"]["path"] == spec.output_prefix
    assert patterns["out/**"]["uploadOptions"]["uploadCondition"] == "tasksuccess"
    assert patterns["../stderr.txt"]["destination"]["container"]["path"] == spec.output_prefix + "/logs/stderr.txt"
    assert patterns["../stderr.txt"]["uploadOptions"]["uploadCondition"] == "taskcompletion"
    assert body["containerSettings"] == {"imageName": config.pipeline("transform").image,
                                         "workingDirectory": "taskWorkingDirectory"}
    assert body["constraints"] == {"maxWallClockTime": "PT10M", "maxTaskRetryCount": 1}
    assert _env(spec)["TRANSFORM_MODE"] == "upper" and _env(spec)["INPUT_FILE"] == "in/hello.txt"
    assert spec.manifest_blob == "transform/hello.txt/manifest.json"


def test_hostile_name_travels_only_in_the_environment(config, access):
    spec = build_task(_item(HOSTILE), config.pipeline("transform"), access)
    body = spec.body
    assert _env(spec)["INPUT_NAME"] == HOSTILE
    assert body["resourceFiles"][0]["filePath"] == "in/input.txt"
    argv = shlex.split(body["commandLine"])
    assert argv[-1] == "/app/transform.sh" and body["commandLine"] == INPUT_PATH_WRAPPER + "/app/transform.sh"
    assert "touch" not in body["commandLine"] and "pwned" not in body["displayName"]
    assert "%24%28touch%20/tmp/pwned%29%3B%20%60id%60" in body["resourceFiles"][0]["httpUrl"]
    assert spec.output_prefix == HOSTILE  # exact name preserved in the output path (transform/ + below transform/)


def test_same_input_same_task_new_version_new_task(config, access):
    p = config.pipeline("transform")
    assert build_task(_item(), p, access).task_id == build_task(_item(), p, access).task_id
    other = WorkItem(pipeline="transform", blob=BlobInfo("input", "transform/hello.txt", '"0x8D2"', 42),
                     source="blob")
    assert build_task(other, p, access).task_id != build_task(_item(), p, access).task_id


def test_name_too_long_for_the_output_path_is_rejected(config, access):
    with pytest.raises(Rejection, match="too long.*output path"):
        build_task(_item("transform/" + "n" * 1000), config.pipeline("transform"), access)
    build_task(_item("transform/" + "n" * 800), config.pipeline("transform"), access)


def test_overrides_change_env_retries_and_time(config, access):
    item = _item(overrides=Overrides(environment={"TRANSFORM_MODE": "lower"}, retries=0, max_wall_clock_time="PT2M"))
    spec = build_task(item, config.pipeline("transform"), access)
    assert _env(spec)["TRANSFORM_MODE"] == "lower"
    assert spec.body["constraints"] == {"maxWallClockTime": "PT2M", "maxTaskRetryCount": 0}


def test_identity_reference_replaces_sas(config):
    from shared.task_access import IdentityAccess

    access = IdentityAccess("https://acct.blob.core.windows.net", "/subscriptions/s/rg/id")
    spec = build_task(_item(), config.pipeline("transform"), access)
    rf = spec.body["resourceFiles"][0]
    assert rf["identityReference"] == {"resourceId": "/subscriptions/s/rg/id"} and "?" not in rf["httpUrl"]
    assert all(f["destination"]["container"]["identityReference"] for f in spec.body["outputFiles"])


def test_fan_out_and_merge(config, access):
    p = config.pipeline("wordcount")
    specs = [build_task(WorkItem(pipeline="wordcount", blob=BlobInfo("data", f"part-{i}.txt", "e", 1),
                                 source="queue", request_id="kabc"), p, access, merge_follows=True)
             for i in range(3)]
    assert all(s.body["exitConditions"] == {"default": {"dependencyAction": "satisfy"}} for s in specs)
    assert len({s.task_id for s in specs}) == 3
    assert specs[0].output_prefix == "wordcount/kabc/part-0.txt"
    merge = build_merge_task(p, "kabc", [s.task_id for s in specs], access)
    assert merge.kind == "merge" and merge.body["dependsOn"] == {"taskIds": [s.task_id for s in specs]}
    assert merge.body["resourceFiles"] == [{"storageContainerUrl": access.endpoint + "/output?sig=list",
                                            "blobPrefix": "wordcount/kabc/", "filePath": "in"}]
    assert merge.output_prefix == "wordcount/kabc/_merged"
    assert fanout_prefix(p, "kabc") == "wordcount/kabc"
    assert len(json.dumps(merge.body)) < 10_000


def _fanout(p, access, n, request="kreq"):
    return [build_task(WorkItem(pipeline=p.name, blob=BlobInfo("data", f"part-{i}.txt", "e", 1), source="queue",
                                request_id=request), p, access, merge_follows=True) for i in range(n)]


def test_small_fan_out_waits_directly_on_its_tasks(config, access):
    p = config.pipeline("wordcount")
    plan = plan_merge(p, "kreq", _fanout(p, access, 5), access)
    merge = plan[-1]
    assert [s.kind for s in plan] == ["task"] * 5 + ["merge"]
    assert merge.body["dependsOn"]["taskIds"] == [s.task_id for s in plan[:5]]
    assert {s.merge_task_id for s in plan[:5]} == {merge.task_id}


def test_large_fan_out_goes_through_barriers_within_the_dependency_limit(config, access):
    from dataclasses import replace

    p = config.pipeline("wordcount")
    fanout = _fanout(p, access, 2500)
    plan = plan_merge(p, "kreq", fanout, access)
    tasks, barriers, merge = plan[:2500], plan[2500:-1], plan[-1]
    assert [b.kind for b in barriers] == ["barrier"] * 3 and merge.kind == "merge"
    assert [len(b.body["dependsOn"]["taskIds"]) for b in barriers] == [1000, 1000, 500]
    assert merge.body["dependsOn"]["taskIds"] == [b.task_id for b in barriers]
    assert all(len(json.dumps(b.body["dependsOn"])) < 64000 for b in barriers)
    assert tasks[0].merge_task_id == barriers[0].task_id and tasks[-1].merge_task_id == barriers[2].task_id
    assert {b.merge_task_id for b in barriers} == {merge.task_id}
    assert {"name": "EVENTBATCH_INPUT_COUNT", "value": "2500"} in merge.body["environmentSettings"]
    assert barriers[0].body["exitConditions"] == {"default": {"dependencyAction": "satisfy"}}
    small = replace(p, merge=replace(p.merge, fan_in=2))
    with pytest.raises(Rejection, match="split the request"):
        plan_merge(small, "kreq", _fanout(small, access, 5), access)


def test_entrypoint_mode_sends_an_empty_command_line_as_batch_expects(config, access):
    """The greet pipeline (empty commandLine): Batch runs the image's ENTRYPOINT when the task's command line is ""
    (docs: "To use the default ENTRYPOINT of the container image, set the task command line to the empty string").
    No wrapper, so INPUT_PATH stays relative to the task working directory, where the container starts."""
    greet = config.pipeline("greet")
    assert greet.command_line == "" and greet.working_directory == "taskWorkingDirectory"
    spec = build_task(_item("greet/hello.txt", pipeline="greet"), greet, access)
    assert spec.body["commandLine"] == ""
    assert spec.body["containerSettings"] == {"imageName": greet.image, "workingDirectory": "taskWorkingDirectory"}
    assert _env(spec)["INPUT_PATH"] == _env(spec)["INPUT_FILE"] == "in/hello.txt"


def _with_outputs(pipeline, path, prefix=None):
    blob = pipeline.blob_input if prefix is None else replace(pipeline.blob_input, prefix=prefix)
    return replace(pipeline, outputs=replace(pipeline.outputs, path=path), blob_input=blob)


def test_input_in_an_output_path_is_the_name_below_the_pipelines_folder(config, access):
    transform = config.pipeline("transform")  # inputs: input/transform/*, outputs: output/{pipeline}/{input}
    spec = build_task(_item("transform/a/b.txt"), transform, access)
    assert spec.output_prefix == "transform/a/b.txt"  # not transform/transform/a/b.txt
    assert _env(spec)["INPUT_NAME"] == "transform/a/b.txt"  # the worker still gets the whole name
    whole = _with_outputs(transform, "{pipeline}/{inputName}")
    assert build_task(_item("transform/a/b.txt"), whole, access).output_prefix == "transform/transform/a/b.txt"
    # A prefix that ends mid-name cuts its folder only: names stay whole words and apart.
    dated = _with_outputs(transform, "results/{input}", prefix="transform/2026-")
    assert build_task(_item("transform/2026-01.csv"), dated, access).output_prefix == "results/2026-01.csv"
    bare = _with_outputs(transform, "results/{input}", prefix="transform")
    assert build_task(_item("transform/x.txt"), bare, access).output_prefix == "results/transform/x.txt"


def test_input_outside_the_blob_policy_keeps_its_whole_name(config, access):
    # wordcount takes queue requests only: there is no folder to cut.
    item = _item("uploads/wordcount/t1/a.txt", pipeline="wordcount", request_id="kabc")
    assert build_task(item, config.pipeline("wordcount"), access).output_prefix == "wordcount/kabc/uploads/wordcount/t1/a.txt"
    other = WorkItem(pipeline="transform", blob=BlobInfo("elsewhere", "transform/a.txt", '"0x1"', 1, "text/plain"),
                     source="queue")
    assert build_task(other, config.pipeline("transform"), access).output_prefix == "transform/transform/a.txt"


def test_fields_inside_a_blob_name_are_not_filled_in(config, access):
    spec = build_task(_item("transform/{date}-{task}.txt"), config.pipeline("transform"), access)
    assert spec.output_prefix == "transform/{date}-{task}.txt"
