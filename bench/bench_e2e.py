"""Local end-to-end latency: blob upload -> result manifest for a no-op container task, against the platform floor
measured in the same run.

    .venv/bin/python -m bench.bench_e2e [--samples N] [--no-up]      (or: make bench BENCH_ARGS=e2e)

eventbatch: through the whole local stack as a user meets it (the stack's Functions host running the repo's
function_app.py): a blob uploaded to ``%INPUT_CONTAINER%/noop/...`` becomes a Batch task on the emulator, a podman
container runs /app/noop.sh in the worker image, Batch-style OutputFiles upload its logs, and the app writes
``manifest.json``. Timed from the start of the upload until the manifest can be read, polled every 50 ms, as the floor polls its task.

floor: what any app needs at least for the same work, straight through the SDKs from this process: upload a blob
(to a container no trigger watches), one create_task with the same image, command, resource file (the blob's SAS
URL) and output files (stdout/stderr to the output container on task completion) on the same pool, poll get_task
every 50 ms until it is completed, download its stdout.txt.

Samples alternate between the two in random order, each after a random 0-1 s pause (so any timer is met at every
phase); a warm-up of each is not counted. Prints p50/p95 of both, the ratio eventbatch/floor, the load average, the
median per stage of the eventbatch path (run record and manifest timestamps) and a JSON line.
Targets (issue 18, local stack, quiet machine): p50 <= 0.8 s, p95 <= 1.2 s, at most 1.5x the floor.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from bench.hosting import REPO, BenchError, load_average, percentile
from shared.pipelines import BlobInputPolicy
from shared.task_spec import relative_input, render_path

PIPELINE = "noop"
MANIFEST_POLL = 0.05  # the same interval as the floor polls its task
TASK_POLL = 0.05
TARGET_P50, TARGET_P95, TARGET_RATIO = 0.8, 1.2, 1.5
WRAPPER = ("/bin/sh -c 'INPUT_PATH=\"$AZ_BATCH_TASK_WORKING_DIR/$INPUT_FILE\"; export INPUT_PATH; "
           "exec \"$@\"' eventbatch-input ")


def _ts(text) -> float | None:
    if not text:
        return None
    if isinstance(text, datetime):
        return text.timestamp()
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pipeline_doc(name: str) -> dict:
    import yaml

    for item in yaml.safe_load((REPO / "pipelines.yaml").read_text()).get("pipelines") or []:
        if item.get("name") == name and (item.get("inputs") or {}).get("blob"):
            return item
    raise BenchError(f"pipelines.yaml has no blob-triggered pipeline {name!r} running /app/noop.sh")


class Stack:
    """The app's settings (.devstack/local.settings.json) and plain SDK clients: the app is watched from outside."""

    def __init__(self, values: dict[str, str]):
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential
        from azure.data.tables import TableServiceClient
        from azure.storage.blob import BlobServiceClient

        self.values = values
        conn = values["EVENTBATCH_STORAGE"]
        parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
        self.account, self.key = parts["AccountName"], parts["AccountKey"]
        self.blob = BlobServiceClient.from_connection_string(conn)
        self.runs = TableServiceClient.from_connection_string(conn).get_table_client(values["RUNS_TABLE"])
        self.batch = BatchClient(values["BATCH_ACCOUNT_URL"], AzureNamedKeyCredential(values["BATCH_ACCOUNT_NAME"],
                                                                                      values["BATCH_ACCOUNT_KEY"]))

    def blob_sas_url(self, container: str, name: str) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        sas = generate_blob_sas(self.account, container, name, account_key=self.key,
                                permission=BlobSasPermissions(read=True), expiry=datetime.now(UTC) + timedelta(hours=2))
        return f"{self.blob.url.rstrip('/')}/{quote(container)}/{quote(name)}?{sas}"

    def container_sas_url(self, container: str) -> str:
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        sas = generate_container_sas(self.account, container, account_key=self.key,
                                     permission=ContainerSasPermissions(write=True, create=True),
                                     expiry=datetime.now(UTC) + timedelta(hours=2))
        return f"{self.blob.url.rstrip('/')}/{quote(container)}?{sas}"


def announce(blob, result) -> None:
    """Tell the stack's host about the upload, as Event Grid does on Azure (devstack.func_host.events)."""
    from devstack.common import paths
    from devstack.func_host.events import publish_blob_created

    publish_blob_created(paths.state_dir() / "func_host", blob.url, blob.container_name, blob.blob_name,
                         etag=result["etag"], size=None, content_type="application/octet-stream")


def eventbatch_sample(stack: Stack, pipeline: dict, tag: str, index: int, timeout: float) -> dict:
    """Upload one small blob into the watched container; wait for its manifest (the app's own output path)."""
    from azure.core.exceptions import ResourceNotFoundError

    prefix = pipeline["inputs"]["blob"]["prefix"]
    name = f"{prefix}{tag}/{index:03d}.txt"
    policy = BlobInputPolicy(stack.values["INPUT_CONTAINER"], prefix)  # the app's own rule for {input}
    output_prefix = render_path(pipeline["outputs"]["path"], {"pipeline": PIPELINE, "input": relative_input(
        policy, policy.container, name)})
    manifest = stack.blob.get_blob_client(stack.values["OUTPUT_CONTAINER"], f"{output_prefix}/manifest.json")
    blob = stack.blob.get_blob_client(stack.values["INPUT_CONTAINER"], name)
    uploaded_at = time.time()
    t0 = time.perf_counter()
    result = blob.upload_blob(f"noop input {index}\n".encode(), overwrite=True)
    announce(blob, result)
    while True:
        try:
            data = manifest.download_blob().readall()
            latency = time.perf_counter() - t0
            break
        except ResourceNotFoundError:
            pass
        if time.perf_counter() - t0 > timeout:
            raise BenchError(f"no manifest {output_prefix}/manifest.json for {name} after {timeout:.0f}s")
        time.sleep(MANIFEST_POLL)
    doc = json.loads(data)
    try:
        record = dict(stack.runs.get_entity(doc.get("pipeline") or PIPELINE, doc["runId"]))
    except Exception:  # noqa: BLE001 - the stage split is optional; the latency is the figure
        record = {}
    return {"latency": latency, "ok": doc.get("state") == "succeeded", "uploaded": uploaded_at,
            "received": _ts(record.get("receivedAt")), "submitted": _ts(record.get("submittedAt")),
            "start": _ts(doc.get("startTime")), "end": _ts(doc.get("endTime")), "recorded": _ts(doc.get("recordedAt"))}


def floor_task(stack: Stack, pipeline: dict, container: str, name: str, task_id: str, output_path: str) -> dict:
    out_url = stack.container_sas_url(stack.values["OUTPUT_CONTAINER"])
    logs = [{"filePattern": f"../{log}", "destination": {"container": {"containerUrl": out_url,
                                                                       "path": f"{output_path}/logs/{log}"}},
             "uploadOptions": {"uploadCondition": "taskcompletion"}} for log in ("stdout.txt", "stderr.txt")]
    outputs = [{"filePattern": p, "destination": {"container": {"containerUrl": out_url, "path": output_path}},
                "uploadOptions": {"uploadCondition": pipeline["outputs"].get("uploadCondition", "tasksuccess")}}
               for p in pipeline["outputs"].get("patterns", [])]
    file_path = "in/" + name.rsplit("/", 1)[-1]
    image = stack.values["WORKER_IMAGE"]
    return {
        "id": task_id,
        "commandLine": WRAPPER + pipeline["commandLine"],
        "containerSettings": {"imageName": image, "workingDirectory": pipeline.get("workingDirectory",
                                                                                   "taskWorkingDirectory")},
        "resourceFiles": [{"httpUrl": stack.blob_sas_url(container, name), "filePath": file_path}],
        "outputFiles": outputs + logs,
        "environmentSettings": [{"name": "INPUT_FILE", "value": file_path}, {"name": "INPUT_NAME", "value": name}],
        "constraints": {"maxWallClockTime": "PT5M", "maxTaskRetryCount": 0},
    }


def floor_sample(stack: Stack, pipeline: dict, job_id: str, container: str, tag: str, index: int,
                 timeout: float) -> dict:
    """Upload, one create_task straight through the SDK, poll get_task until completed, download stdout.txt."""
    from azure.batch import models
    from azure.core.exceptions import ResourceNotFoundError

    name = f"{tag}/{index:03d}.txt"
    task_id = f"floor-{index:03d}"
    output_path = f"floor/{tag}/{index:03d}"
    stdout = stack.blob.get_blob_client(stack.values["OUTPUT_CONTAINER"], f"{output_path}/logs/stdout.txt")
    t0 = time.perf_counter()
    stack.blob.get_blob_client(container, name).upload_blob(f"floor input {index}\n".encode(), overwrite=True)
    body = floor_task(stack, pipeline, container, name, task_id, output_path)
    stack.batch.create_task(job_id, models.BatchTaskCreateOptions(body))
    while True:
        task = stack.batch.get_task(job_id, task_id, select=["id", "state", "executionInfo"])
        if str(getattr(task.state, "value", task.state)) == "completed":
            break
        if time.perf_counter() - t0 > timeout:
            raise BenchError(f"floor task {task_id} not completed after {timeout:.0f}s")
        time.sleep(TASK_POLL)
    while True:
        try:
            stdout.download_blob().readall()
            break
        except ResourceNotFoundError:
            if time.perf_counter() - t0 > timeout:
                raise BenchError(f"floor task {task_id}: no stdout.txt uploaded after {timeout:.0f}s") from None
            time.sleep(TASK_POLL)
    latency = time.perf_counter() - t0
    info = task.execution_info
    return {"latency": latency, "ok": info is not None and str(getattr(info.result, "value", info.result)) == "success"}


STAGES = (("upload -> run record received (Event Grid trigger, intake)", "uploaded", "received"),
          ("received -> submitted (to Batch)", "received", "submitted"),
          ("submitted -> task claimed by a node (scheduler)", "submitted", "start"),
          ("claimed -> ended (container create/start, no-op, output upload)", "start", "end"),
          ("ended -> manifest written (completion)", "end", "recorded"))


def _stats(values: list[float]) -> dict:
    return {"p50": round(percentile(values, 0.5), 3), "p95": round(percentile(values, 0.95), 3),
            "min": round(min(values), 3), "max": round(max(values), 3), "n": len(values)}


def _remove_inputs(stack: Stack, pipeline: dict, tag: str) -> None:
    """Delete this run's uploads from the watched container, so that it does not grow run after run (a listing
    of it is what the host's fallback scan pays for)."""
    container = stack.blob.get_container_client(stack.values["INPUT_CONTAINER"])
    prefix = f"{pipeline['inputs']['blob']['prefix']}{tag}/"
    try:
        names = [b.name for b in container.list_blobs(name_starts_with=prefix)]
        for start in range(0, len(names), 256):
            container.delete_blobs(*names[start:start + 256])
    except Exception:  # noqa: BLE001, S110 - best effort
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", "--uploads", dest="samples", type=int, default=100,
                        help="measured samples of each path (default 100)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one sample")
    parser.add_argument("--no-up", action="store_true", help="use the running stack as is")
    parser.add_argument("--seed", type=int, default=None, help="seed for the pauses and the order")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.samples < 1:
        parser.error("--samples must be >= 1")

    from azure.batch import models

    from devstack.stack import lifecycle
    from devstack.tools.access import AppAccess, local_settings_path, read_values
    from devstack.tools.demo import prepare_pools

    if not args.no_up:
        lifecycle.up(with_host=True, log=lambda line: None)
    rng = random.Random(args.seed)
    pipeline = pipeline_doc(PIPELINE)
    stack = Stack(read_values(local_settings_path()))
    prepare_pools(AppAccess.open(), [pipeline["pool"]], say=lambda line: None)
    tag = f"bench-{datetime.now(UTC):%Y%m%dt%H%M%S}"
    floor_container = f"floor{datetime.now(UTC):%Y%m%d%H%M%S}"
    floor_job = f"floor-{tag}"
    stack.blob.create_container(floor_container)
    stack.batch.create_job(models.BatchJobCreateOptions({"id": floor_job, "poolInfo": {"poolId": pipeline["pool"]}}))
    samples: dict[str, list[dict]] = {"eventbatch": [], "floor": []}
    load_before = load_average()
    try:
        try:  # warm-up: first job creation, first container, connections
            eventbatch_sample(stack, pipeline, tag, 0, args.timeout)
            floor_sample(stack, pipeline, floor_job, floor_container, tag, 0, args.timeout)
        except BenchError as exc:
            print(f"warm-up failed: {exc}\n(a host started before pipeline {PIPELINE} existed does not know it: "
                  "`eventbatch down && eventbatch up`)", file=sys.stderr)
            return 1
        for i in range(1, args.samples + 1):
            order = ["eventbatch", "floor"]
            rng.shuffle(order)
            for path in order:
                time.sleep(rng.uniform(0.0, 1.0))
                if path == "eventbatch":
                    samples[path].append(eventbatch_sample(stack, pipeline, tag, i, args.timeout))
                else:
                    samples[path].append(floor_sample(stack, pipeline, floor_job, floor_container, tag, i,
                                                      args.timeout))
    finally:
        try:
            stack.batch.begin_delete_job(floor_job)
            stack.blob.delete_container(floor_container)
        except Exception:  # noqa: BLE001, S110 - best effort
            pass
        _remove_inputs(stack, pipeline, tag)
    load_after = load_average()
    ours = _stats([s["latency"] for s in samples["eventbatch"]])
    floor = _stats([s["latency"] for s in samples["floor"]])
    ratio50, ratio95 = ours["p50"] / floor["p50"], ours["p95"] / floor["p95"]
    met = ours["p50"] <= TARGET_P50 and ours["p95"] <= TARGET_P95 and ratio50 <= TARGET_RATIO
    print(f"end-to-end latency, no-op container task, {args.samples} samples of each path interleaved in random "
          f"order (load average {load_before} before, {load_after} after):")
    print(f"eventbatch, blob upload -> manifest.json (polled every {MANIFEST_POLL * 1000:.0f} ms):")
    print(f"  p50 {ours['p50']:.2f} s   p95 {ours['p95']:.2f} s   min {ours['min']:.2f} s   max {ours['max']:.2f} s")
    print(f"floor, upload + create_task + get_task every {TASK_POLL * 1000:.0f} ms until completed + download "
          "stdout.txt:")
    print(f"  p50 {floor['p50']:.2f} s   p95 {floor['p95']:.2f} s   min {floor['min']:.2f} s   "
          f"max {floor['max']:.2f} s")
    print(f"ratio eventbatch/floor: p50 {ratio50:.2f}x   p95 {ratio95:.2f}x")
    print(f"targets (issue 18): p50 <= {TARGET_P50} s, p95 <= {TARGET_P95} s, p50 <= {TARGET_RATIO}x the floor: "
          f"{'met' if met else 'NOT met'}")
    print("median per stage (eventbatch; run record and manifest timestamps, this machine's clock):")
    for label, a, b in STAGES:
        spans = [s[b] - s[a] for s in samples["eventbatch"] if s.get(a) is not None and s.get(b) is not None]
        if spans:
            print(f"  {label:<66} {statistics.median(spans):6.2f} s")
    failed = {p: sum(not s["ok"] for s in items) for p, items in samples.items()}
    print(json.dumps({"samples": args.samples, "eventbatch": ours, "floor": floor, "ratio_p50": round(ratio50, 3),
                      "ratio_p95": round(ratio95, 3), "load_before": load_before, "load_after": load_after,
                      "failed": failed}))
    if any(failed.values()):
        print(f"runs that did not succeed: {failed}", file=sys.stderr)
        return 1
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
