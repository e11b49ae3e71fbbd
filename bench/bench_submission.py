"""Submission benchmark: Batch API calls per task and tasks submitted per second for a burst of blob events,
eventbatch's buffered bulk path side by side with a naive one-call-per-event submitter, in the same run.

Both paths run against a private Batch emulator (free port, temp data dir) whose pool has no nodes, so only
submission is measured, and against the stack's Azurite. Every HTTP request to the emulator is counted by an
azure-core policy on the client.

- eventbatch: N blob events go through the real blob intake (run record + submit message) on 8 threads, as the
  host's blob trigger would, while the submit drain ticks every second on its own thread, as its timer would.
  Calls/task = all Batch HTTP calls (pool, job, addTaskCollection) / N; tasks/s = N / (first event -> last task
  accepted by Batch).
- naive: the same N tasks (same specs), one create_task call per event, on 8 threads.
- drain alone: another N events queued first, then drained: the drain's own throughput (receive, bulk add,
  records, message deletes).
- single file: one event on an idle system, time from the event to Batch accepting its task, with a 1 s drain
  tick (the wait for the next tick is included).

Run: `make bench BENCH_ARGS=submission` or `.venv/bin/python -m bench.bench_submission [--files N]`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from azure.core.pipeline.policies import SansIOHTTPPolicy

from devstack.batch_emulator.launcher import EmulatorProcess


class CallCounter(SansIOHTTPPolicy):
    """Counts every HTTP request the Batch client sends (a per-retry policy sees each attempt)."""

    def __init__(self):
        self.calls = []
        self._lock = threading.Lock()

    def on_request(self, request):
        with self._lock:
            self.calls.append(request.http_request.url.split("?")[0].rsplit("/", 1)[-1])

    def reset(self) -> list[str]:
        with self._lock:
            out, self.calls = self.calls, []
        return out


def _context(stack_env: dict, batch_url: str, tag: str, counter: CallCounter):
    from shared.batch_client import make_batch_client
    from shared.context import AppContext
    from shared.settings import load_settings

    settings = load_settings({
        "EVENTBATCH_STORAGE": stack_env["AZURE_STORAGE_CONNECTION_STRING"], "BATCH_ACCOUNT_URL": batch_url,
        "BATCH_ACCOUNT_NAME": stack_env["BATCH_ACCOUNT_NAME"], "BATCH_ACCOUNT_KEY": stack_env["BATCH_ACCOUNT_KEY"],
        "WORKER_IMAGE": stack_env["WORKER_IMAGE"], "REGISTRY_SERVER": stack_env["REGISTRY_SERVER"],
        "INPUT_CONTAINER": f"bin-{tag}", "OUTPUT_CONTAINER": f"bout-{tag}", "REQUESTS_QUEUE": f"breq-{tag}",
        "SUBMIT_QUEUE": f"bsub-{tag}", "REJECTED_QUEUE": f"brej-{tag}", "COMPLETIONS_QUEUE": f"bdone-{tag}",
        "FAILURES_QUEUE": f"bfail-{tag}", "RUNS_TABLE": f"bruns{tag}", "JOB_ID_PREFIX": f"b{tag}",
        # A pool without nodes: tasks stay queued, so only submission is measured.
        "POOL_SCALE_MODE": "fixed", "POOL_FIXED_NODES": "0",
    })
    client = make_batch_client(settings.batch, per_retry_policies=[counter])
    return AppContext.create(settings, batch_client=client)


def _upload(ctx, names: list[str]) -> None:
    container = ctx.storage.blob.get_container_client(ctx.settings.environ["INPUT_CONTAINER"])
    container.create_container()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda n: container.upload_blob(n, b"bench input\n", overwrite=True), names))


def run_eventbatch(ctx, names: list[str], counter: CallCounter) -> dict:
    from shared.drain import drain
    from shared.intake import handle_blob

    container = ctx.settings.environ["INPUT_CONTAINER"]
    counter.reset()
    stop = threading.Event()
    accepted = [0]
    last_accept = [0.0]
    busy = [0.0]

    def ticker():
        while not stop.is_set():
            tick_started = time.monotonic()
            result = drain(ctx)
            if result.submitted:
                accepted[0] += result.submitted
                last_accept[0] = time.monotonic()
                busy[0] += last_accept[0] - tick_started
            stop.wait(max(0.0, 1.0 - (time.monotonic() - tick_started)))

    started = time.monotonic()
    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: handle_blob(ctx, container, n), names))
    intake_done = time.monotonic()
    deadline = time.monotonic() + 300
    while accepted[0] < len(names) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()
    calls = counter.reset()
    elapsed = last_accept[0] - started
    return {"tasks": accepted[0], "calls": len(calls), "adds": calls.count("addtaskcollection"),
            "seconds": elapsed, "intake_seconds": intake_done - started, "drain_busy_seconds": busy[0]}


def run_drain_only(ctx, names: list[str], counter: CallCounter) -> dict:
    """The same burst, but the drain starts only once every event is queued: the drain's own throughput."""
    from shared.drain import drain_until_empty
    from shared.intake import handle_blob

    container = ctx.settings.environ["INPUT_CONTAINER"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: handle_blob(ctx, container, n), names))
    counter.reset()
    started = time.monotonic()
    result = drain_until_empty(ctx, budget_seconds=300)
    elapsed = time.monotonic() - started
    calls = counter.reset()
    return {"tasks": result.submitted, "calls": len(calls), "adds": calls.count("addtaskcollection"),
            "seconds": elapsed}


def run_naive(ctx, names: list[str], counter: CallCounter) -> dict:
    from azure.batch import models

    from shared import ids
    from shared.task_spec import build_task
    from shared.work_items import BlobInfo, WorkItem

    container = ctx.settings.environ["INPUT_CONTAINER"]
    pipeline = ctx.config.pipeline("transform")
    job_id = ids.job_id(ctx.settings.job_prefix + "n", "transform", ctx.settings.job_period)
    ctx.submitter.ensure_job(job_id, "transform")
    counter.reset()

    def one(name: str) -> None:
        props = ctx.storage.blob.get_blob_client(container, name).get_blob_properties()
        item = WorkItem(pipeline="transform", blob=BlobInfo(container, name, props.etag, props.size), source="blob")
        spec = build_task(item, pipeline, ctx.access)
        ctx.batch.create_task(job_id, models.BatchTaskCreateOptions(spec.body))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, names))
    elapsed = time.monotonic() - started
    calls = counter.reset()
    return {"tasks": len(names), "calls": len(calls), "seconds": elapsed}


def run_single(ctx, counter: CallCounter) -> dict:
    """One file on an idle system: event -> task accepted, with the drain on a 1 s tick."""
    from shared.drain import drain
    from shared.intake import handle_blob

    container = ctx.settings.environ["INPUT_CONTAINER"]
    name = f"transform/single-{secrets.token_hex(3)}.txt"
    ctx.storage.blob.get_blob_client(container, name).upload_blob(b"one\n")
    counter.reset()
    next_tick = time.monotonic() + 1.0 * secrets.randbelow(1000) / 1000  # the event lands mid-interval
    started = time.monotonic()
    handle_blob(ctx, container, name)
    while True:
        time.sleep(max(0.0, next_tick - time.monotonic()))
        result = drain(ctx)
        if result.submitted:
            return {"seconds": time.monotonic() - started, "calls": len(counter.reset())}
        next_tick += 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_submission", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="blob events in the burst (default 1000)")
    args = parser.parse_args(argv)

    from devstack import stack

    info = stack.up(with_host=False, log=lambda line: None)
    env = dict(info.env)
    tag = secrets.token_hex(3)
    counter = CallCounter()
    with (tempfile.TemporaryDirectory(prefix="bench-submission-") as tmp,
          EmulatorProcess(Path(tmp) / "data", "process", env, account=env["BATCH_ACCOUNT_NAME"],
                          key=env["BATCH_ACCOUNT_KEY"], stop_timeout=15) as emulator):
        ctx = None
        try:
            ctx = _context(env, emulator.url, tag, counter)
            names = [f"transform/burst-{i:05d} file.txt" for i in range(args.files)]
            queued = [f"transform/queued-{i:05d} file.txt" for i in range(args.files)]
            _upload(ctx, names + queued)
            ours = run_eventbatch(ctx, names, counter)
            drain_only = run_drain_only(ctx, queued, counter)
            naive = run_naive(ctx, names, counter)
            singles = [run_single(ctx, counter) for _ in range(3)]
        finally:
            if ctx is not None:
                _cleanup(ctx)
    n = args.files
    rows = [
        ("Batch API calls per task", f"{ours['calls'] / n:.3f} ({ours['calls']} calls, {ours['adds']} "
         "addTaskCollection)", f"{naive['calls'] / n:.3f} ({naive['calls']} calls)"),
        ("tasks submitted per second", f"{n / ours['seconds']:.0f} (burst of {n} in {ours['seconds']:.2f} s)",
         f"{n / naive['seconds']:.0f} ({naive['seconds']:.2f} s)"),
    ]
    print(f"submission of a {n}-file burst of blob events (private emulator, pool without nodes)")
    print(f"{'figure':<30} {'eventbatch (buffer + drain)':<48} naive (one create_task per event)")
    for label, a, b in rows:
        print(f"{label:<30} {a:<48} {b}")
    print(f"blob intake of the burst (HEAD + run record + submit message, 8 threads): {ours['intake_seconds']:.2f} s; "
          f"drain time with work (receive, addTaskCollection, records, delete messages): "
          f"{ours['drain_busy_seconds']:.2f} s = {n / max(ours['drain_busy_seconds'], 1e-9):.0f} tasks/s")
    print(f"drain alone, {n} events already queued: {drain_only['seconds']:.2f} s = "
          f"{drain_only['tasks'] / max(drain_only['seconds'], 1e-9):.0f} tasks/s, {drain_only['calls']} Batch calls "
          f"({drain_only['adds']} addTaskCollection)")
    lat = sorted(s["seconds"] for s in singles)
    print(f"single file, event -> task accepted by Batch (1 s drain tick): {', '.join(f'{x:.2f}' for x in lat)} s")
    print(json.dumps({"files": n, "eventbatch": ours, "drain_only": drain_only, "naive": naive, "single": singles}))
    target = ours["calls"] / n <= 0.02 and ours["tasks"] == n
    print("target <= 0.02 calls/task:", "met" if target else "NOT met")
    return 0 if target else 1


def _cleanup(ctx) -> None:
    for container in (ctx.settings.environ["INPUT_CONTAINER"], ctx.settings.environ["OUTPUT_CONTAINER"]):
        try:
            ctx.storage.blob.delete_container(container)
        except Exception:  # noqa: BLE001, S110 - best effort
            pass
    for queue in ctx.settings.queues.all():
        try:
            ctx.messenger.client(queue).delete_queue()
        except Exception:  # noqa: BLE001, S110 - best effort
            pass
    try:
        ctx.runs.table.delete_table()
    except Exception:  # noqa: BLE001, S110 - best effort
        pass


if __name__ == "__main__":
    sys.exit(main())
