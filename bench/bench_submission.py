"""Submission benchmark: a burst of blob events through the local Functions host, eventbatch against the naive
one-create_task-per-blob function, paired, interleaved and repeated in one run.

    .venv/bin/python -m bench.bench_submission [--files N] [--rounds K] [--latency-ms MS]
    (or: make bench BENCH_ARGS=submission)

Both paths are function apps run by the same local host code (``python -m devstack.func_host``), each in a private
host instance (own host id, state dir, settings file, call counter) with the same settings apart from names:

- eventbatch: the repo's function_app.py (whatever its core does: the benchmark only watches from outside);
- naive: bench/naive_app (a blob trigger that calls create_task once per blob, as in Azure's batch-functions
  tutorial), with the repo's host.json.

Both go to one private Batch emulator whose pool has 0 nodes (tasks stay queued: only submission is measured) and
to the stack's Azurite, with separate containers, queues, table and job per run. A run: start the host, warm up with
3 blobs (job/pool set-up, first connections; counted separately as set-up), then upload N blobs on 16 threads and
wait until N tasks are listed in the path's job(s). Figures per run:

- tasks: tasks the emulator lists with a creation time after the first upload;
- seconds: first upload started -> the latest of those tasks' creation times (the emulator's clock, same machine):
  the same window for both paths;
- calls: every Batch request of the host process from the first upload until its calls settle (no more than the
  idle rate for a second), from the host's call counter; calls per task = calls / tasks (listings by timers
  included; ``batch_ops`` has them by operation, ``submit_calls`` counts the non-GET ones);
- Storage calls per event: the host process's Storage requests over the same span / N, split into app (function
  code) and host (scans, receipts, queue polling, timers); the host's container scans are shown separately (they
  stand in for Event Grid, which costs the app nothing on Azure).

K rounds, alternating which path goes first (A/B, B/A, ...), load average printed before and after each run; then
the same with ``--latency-ms`` (default 50) added client side to every Batch request of the host process
(EVENTBATCH_BATCH_LATENCY_MS), an Azure-like Batch round trip. The last line is the JSON summary
``{"eventbatch": {...}, "naive": {...}, ...}`` (tasks, calls, seconds: medians over the rounds).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.hosting import (
    REPO,
    BenchError,
    PrivateHost,
    app_settings,
    delta,
    load_average,
    median,
    prepare_naive_app,
    summarize,
    unique_tag,
)

PIPELINE = "transform"
WARM_UP = 3
TARGET_CALLS_PER_TASK = 0.012


def pipeline_pool(pipeline: str) -> tuple[str, str]:
    """(pool id, blob prefix) of a blob-triggered pipeline in pipelines.yaml."""
    import yaml

    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    for item in doc.get("pipelines") or []:
        if item.get("name") == pipeline:
            prefix = ((item.get("inputs") or {}).get("blob") or {}).get("prefix")
            if not prefix:
                break
            return item["pool"], prefix
    raise BenchError(f"pipelines.yaml has no blob-triggered pipeline {pipeline!r}")


class Clients:
    """The benchmark's own clients (its requests are not counted: the counter is in the host process)."""

    def __init__(self, env: dict[str, str], batch_url: str):
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential
        from azure.data.tables import TableServiceClient
        from azure.storage.blob import BlobServiceClient
        from azure.storage.queue import QueueServiceClient

        conn = env["AZURE_STORAGE_CONNECTION_STRING"]
        self.blob = BlobServiceClient.from_connection_string(conn)
        self.queue = QueueServiceClient.from_connection_string(conn)
        self.table = TableServiceClient.from_connection_string(conn)
        self.batch = BatchClient(batch_url, AzureNamedKeyCredential(env["BATCH_ACCOUNT_NAME"],
                                                                    env["BATCH_ACCOUNT_KEY"]))

    def jobs(self, job_prefix: str) -> list[str]:
        return [job.id for job in self.batch.list_jobs(select=["id"]) if job.id.startswith(job_prefix)]

    def task_count(self, job_prefix: str) -> int:
        """Tasks in the matching jobs, from the cheap task counts (no listing while the burst is running)."""
        total = 0
        for job_id in self.jobs(job_prefix):
            counts = self.batch.get_job_task_counts(job_id).task_counts
            total += counts.active + counts.running + counts.completed
        return total

    def tasks_created(self, job_prefix: str) -> list[float]:
        """Creation times (epoch seconds) of every task in the jobs whose id starts with job_prefix."""
        times = []
        for job_id in self.jobs(job_prefix):
            times += [t.creation_time.timestamp() for t in self.batch.list_tasks(job_id, select=["id", "creationTime"])]
        return times


def _names(tag: str) -> dict[str, str]:
    return {"INPUT_CONTAINER": f"in{tag}", "OUTPUT_CONTAINER": f"out{tag}", "REQUESTS_QUEUE": f"req{tag}",
            "SUBMIT_QUEUE": f"sub{tag}", "REJECTED_QUEUE": f"rej{tag}", "COMPLETIONS_QUEUE": f"done{tag}",
            "FAILURES_QUEUE": f"fail{tag}", "CHECK_QUEUE": f"chk{tag}", "MARKER_CONTAINER": f"mk{tag}",
            "RUNS_TABLE": f"runs{tag}", "JOB_ID_PREFIX": f"j{tag}"}


def _upload(clients: Clients, container: str, names: list[str], state_dir: Path) -> None:
    """Upload, then announce each blob to the host as Event Grid would (devstack.func_host.events); both paths'
    hosts get their events the same way."""
    from devstack.func_host.events import publish_blob_created

    client = clients.blob.get_container_client(container)

    def one(name: str) -> None:
        blob = client.get_blob_client(name)
        result = blob.upload_blob(b"bench input\n", overwrite=True)
        publish_blob_created(state_dir, blob.url, container, name, etag=result["etag"], size=12,
                             content_type="application/octet-stream")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, names))


def _wait_tasks(clients: Clients, job_prefix: str, count: int, since: float, timeout: float,
                already: int = 0) -> list[float]:
    """Creation times of the tasks created since ``since``, once ``already + count`` tasks exist (or at timeout)."""
    deadline = time.monotonic() + timeout
    while clients.task_count(job_prefix) < already + count and time.monotonic() < deadline:
        time.sleep(0.25)
    return [t for t in clients.tasks_created(job_prefix) if t >= since]


def _settle(host: PrivateHost, quiet_calls: int = 15, limit: float = 60.0) -> dict:
    """The host's counter once a second passes with at most quiet_calls new requests (the idle rate)."""
    deadline = time.monotonic() + limit
    previous = host.fresh_counts()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        current = host.fresh_counts()
        if sum(delta(current, previous).values()) <= quiet_calls:
            return current
        previous = current
    return previous


def _cleanup(clients: Clients, names: dict[str, str], host_id: str, job_prefix: str) -> None:
    from azure.core.exceptions import AzureError

    for container in (names["INPUT_CONTAINER"], names["OUTPUT_CONTAINER"], names["MARKER_CONTAINER"]):
        try:
            clients.blob.delete_container(container)
        except AzureError:
            pass
    for key in ("REQUESTS_QUEUE", "SUBMIT_QUEUE", "REJECTED_QUEUE", "COMPLETIONS_QUEUE", "FAILURES_QUEUE"):
        try:
            clients.queue.delete_queue(names[key])
        except AzureError:
            pass
    try:
        clients.table.delete_table(names["RUNS_TABLE"])
    except AzureError:
        pass
    try:  # this run's blob receipts, so Azurite does not grow run after run
        hosts = clients.blob.get_container_client("azure-webjobs-hosts")
        receipts = [b.name for b in hosts.list_blobs(name_starts_with=f"blobreceipts/{host_id}/")]
        for start in range(0, len(receipts), 256):
            hosts.delete_blobs(*receipts[start:start + 256])
    except AzureError:
        pass
    try:
        for job in clients.batch.list_jobs(select=["id"]):
            if job.id.startswith(job_prefix):
                clients.batch.begin_delete_job(job.id)
    except AzureError:
        pass


def run_path(path: str, env: dict[str, str], batch_url: str, clients: Clients, files: int, latency_ms: float,
             workdir: Path, naive_dir: Path, round_no: int) -> dict:
    from azure.batch import models

    pool_id, prefix = pipeline_pool(PIPELINE)
    tag = unique_tag(f"s{path[0]}")
    names = _names(tag)
    overrides = {**names, "POOL_SCALE_MODE": "fixed", "POOL_FIXED_NODES": "0", "CREATE_MISSING_POOLS": "true"}
    if path == "naive":
        job_prefix = overrides["NAIVE_JOB_ID"] = f"naive{tag}"
        clients.batch.create_job(models.BatchJobCreateOptions({"id": job_prefix, "poolInfo": {"poolId": pool_id}}))
        app_dir = naive_dir
    else:
        job_prefix = names["JOB_ID_PREFIX"]
        app_dir = REPO
    for container in (names["INPUT_CONTAINER"], names["OUTPUT_CONTAINER"]):
        clients.blob.create_container(container)
    settings = app_settings(env, batch_url, overrides, local_defaults=False)  # Azure's safety-net schedule
    host = PrivateHost(app_dir, settings, workdir / tag, host_id=f"b{tag}", batch_latency_ms=latency_ms)
    load_before = load_average()
    try:
        with host:
            started = host.fresh_counts()
            warm_since = time.time()
            _upload(clients, names["INPUT_CONTAINER"], [f"{prefix}warm-{i}.txt" for i in range(WARM_UP)],
                    host.state_dir)
            warm = _wait_tasks(clients, job_prefix, WARM_UP, warm_since - 1, timeout=120)
            if len(warm) < WARM_UP:
                raise BenchError(f"{path}: {len(warm)} of {WARM_UP} warm-up tasks reached Batch in 120 s; host log "
                                 f"{host.log}:\n{host.log_tail()}")
            time.sleep(1.0)
            before = host.fresh_counts()
            t0 = time.time()
            _upload(clients, names["INPUT_CONTAINER"], [f"{prefix}burst-{i:05d} file.txt" for i in range(files)],
                    host.state_dir)
            uploaded = time.time()
            created = _wait_tasks(clients, job_prefix, files, t0, timeout=max(120.0, files * 0.5),
                                  already=len(warm))
            after = _settle(host)
    finally:
        _cleanup(clients, names, host.host_id, job_prefix)
    setup = summarize(delta(before, started))
    window = delta(after, before)
    calls = summarize(window)
    batch_ops: dict[str, int] = {}
    for key, count in window.items():
        origin, service, method, op = key.split(" ", 3)
        if service == "batch":
            batch_ops[f"{method} {op}"] = batch_ops.get(f"{method} {op}", 0) + count
    seconds = (max(created) - t0) if created else float("nan")
    result = {
        "path": path, "round": round_no, "latency_ms": latency_ms, "tasks": len(created), "calls": calls["batch"],
        "seconds": round(seconds, 3), "upload_seconds": round(uploaded - t0, 3),
        "tasks_per_s": round(len(created) / seconds, 1) if created and seconds > 0 else 0.0,
        "calls_per_task": round(calls["batch"] / max(len(created), 1), 4),
        "submit_calls": sum(c for op, c in batch_ops.items() if not op.startswith("GET ")),
        "storage_per_event_app": round(calls["app_storage"] / files, 2),
        "storage_per_event_host": round(calls["host_storage"] / files, 2),
        "host_blob_scans": calls["host_blob_scans"],
        "setup_batch_calls": setup["batch"], "batch_ops": batch_ops, "load_before": load_before, "load_after": load_average(),
    }
    print(f"  round {round_no} {path:<10} {result['tasks']:>5} tasks in {result['seconds']:6.2f} s "
          f"({result['tasks_per_s']:6.1f}/s, upload {result['upload_seconds']:.2f} s)  Batch calls {result['calls']:>5} "
          f"({result['calls_per_task']:.4f}/task)  Storage/event app {result['storage_per_event_app']:.2f} "
          f"host {result['storage_per_event_host']:.2f} (scans {result['host_blob_scans']})  "
          f"load {load_before} -> {result['load_after']}", flush=True)
    if len(created) < files:
        print(f"  {path}: only {len(created)} of {files} tasks reached Batch; host log {host.log}", file=sys.stderr)
    return result


FIELDS = ("tasks", "calls", "seconds", "tasks_per_s", "calls_per_task", "submit_calls", "storage_per_event_app",
          "storage_per_event_host", "setup_batch_calls")


def _medians(runs: list[dict]) -> dict:
    out = {f: median([r[f] for r in runs]) for f in FIELDS}
    out["tasks"], out["calls"] = int(out["tasks"]), int(out["calls"])
    out["rounds"] = len(runs)
    return out


def run_phase(label: str, latency_ms: float, args, env, emulator_url, clients, workdir, naive_dir) -> dict:
    print(f"{label}: {args.files}-file burst, {args.rounds} round(s), load average {load_average()}", flush=True)
    runs: dict[str, list[dict]] = {"eventbatch": [], "naive": []}
    for r in range(1, args.rounds + 1):
        order = ("eventbatch", "naive") if r % 2 else ("naive", "eventbatch")
        for path in order:
            runs[path].append(run_path(path, env, emulator_url, clients, args.files, latency_ms, workdir,
                                       naive_dir, r))
    ratios = [round(a["tasks_per_s"] / b["tasks_per_s"], 3) if b["tasks_per_s"] else None
              for a, b in zip(runs["eventbatch"], runs["naive"], strict=True)]
    summary = {path: _medians(items) for path, items in runs.items()}
    summary["paired_ratio_tasks_per_s"] = ratios
    summary["runs"] = runs["eventbatch"] + runs["naive"]
    eb, nv = summary["eventbatch"], summary["naive"]
    print(f"  {'median over rounds':<34} {'eventbatch':>14} {'naive':>14}")
    for name, fmt in (("tasks", "{:.0f}"), ("calls", "{:.0f}"), ("calls_per_task", "{:.4f}"), ("submit_calls", "{:.0f}"),
                      ("tasks_per_s", "{:.1f}"), ("seconds", "{:.2f}"), ("storage_per_event_app", "{:.2f}"),
                      ("storage_per_event_host", "{:.2f}"), ("setup_batch_calls", "{:.0f}")):
        print(f"  {name:<34} {fmt.format(eb[name]):>14} {fmt.format(nv[name]):>14}")
    print(f"  paired ratio eventbatch/naive tasks per second, per round: {ratios}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_submission", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="blob events in the burst (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds per phase (default 3)")
    parser.add_argument("--latency-ms", type=float, default=50.0,
                        help="simulated Batch round trip of the second phase (default 50; 0 skips the phase)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.files < 1 or args.rounds < 1 or args.latency_ms < 0:
        parser.error("--files and --rounds must be >= 1, --latency-ms >= 0")

    from devstack.batch_emulator.launcher import EmulatorProcess
    from devstack.stack import lifecycle
    from devstack.stack.emulator import batch_emulator_env

    env = dict(lifecycle.up(with_host=False, log=lambda line: None).env)
    with (tempfile.TemporaryDirectory(prefix="bench-submission-") as tmp,
          EmulatorProcess(Path(tmp) / "emulator", "process", batch_emulator_env(env),
                          account=env["BATCH_ACCOUNT_NAME"], key=env["BATCH_ACCOUNT_KEY"],
                          stop_timeout=15) as emulator):
        workdir = Path(tmp)
        naive_dir = prepare_naive_app(workdir)
        clients = Clients(env, emulator.url)
        print(f"submission through the local Functions host (private Batch emulator, pool without nodes; "
              f"emulator log {emulator.log})")
        plain = run_phase("Batch as the local emulator answers", 0.0, args, env, emulator.url, clients, workdir,
                          naive_dir)
        slow = None
        if args.latency_ms > 0:
            slow = run_phase(f"Batch with {args.latency_ms:g} ms added per request", args.latency_ms, args, env,
                             emulator.url, clients, workdir, naive_dir)
    eb, nv = plain["eventbatch"], plain["naive"]
    ratio = median([r for r in plain["paired_ratio_tasks_per_s"] if r is not None] or [0.0])
    calls_ok = eb["calls_per_task"] <= TARGET_CALLS_PER_TASK and eb["tasks"] == args.files
    print(f"targets (issue 18): Batch calls per task <= {TARGET_CALLS_PER_TASK}: "
          f"{'met' if calls_ok else 'NOT met'} ({eb['calls_per_task']:.4f}); tasks/s >= naive's in the same run: "
          f"{'met' if ratio >= 1.0 else 'NOT met'} (median paired ratio {ratio:.2f}); Storage calls per event "
          f"(app + host): {eb['storage_per_event_app'] + eb['storage_per_event_host']:.2f} eventbatch, "
          f"{nv['storage_per_event_app'] + nv['storage_per_event_host']:.2f} naive")
    summary = {"files": args.files, "rounds": args.rounds, "eventbatch": eb, "naive": nv,
               "paired_ratio_tasks_per_s": plain["paired_ratio_tasks_per_s"], "runs": plain["runs"]}
    if slow is not None:
        summary[f"latency_{args.latency_ms:g}ms"] = slow
    print(json.dumps(summary))
    return 0 if calls_ok and ratio >= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
