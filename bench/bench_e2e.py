"""Local end-to-end latency: blob upload -> result manifest present, for a no-op container task.

    .venv/bin/python -m bench e2e          (or: .venv/bin/python -m bench.bench_e2e [--uploads N])

Through the whole local stack as a user meets it: the upload lands in Azurite, the Functions host's blob trigger
(container scan) runs the blob intake, the submit drain (timer) sends the task to the Batch emulator, a podman
container runs /app/noop.sh in the worker image on a node that prefetched it, Batch-style OutputFiles upload the
logs, and the reconciler (timer) writes manifest.json. One upload at a time, after a random pause so the timers'
phases are sampled evenly; a warm-up upload is not counted. Target: p50 <= 3 s.
The split (median per stage) comes from the run record and the manifest timestamps; all clocks are this machine's.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime

PIPELINE = "noop"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def one_upload(access, pipeline, tag: str, index: int, timeout: float) -> dict:
    """Upload one small blob; wait for its manifest. Returns latency and the stage timestamps."""
    from azure.core.exceptions import ResourceNotFoundError

    from shared import ids
    from shared.task_spec import render_path

    name = f"{pipeline.blob_input.prefix}{tag}/{index:03d}.txt"
    prefix = render_path(pipeline.outputs.path, {"pipeline": pipeline.name, "input": name})
    manifest = access.storage.blob.get_blob_client(pipeline.outputs.container, f"{prefix}/manifest.json")
    blob = access.storage.blob.get_blob_client(pipeline.blob_input.container, name)
    uploaded_at = time.time()
    t0 = time.perf_counter()
    result = blob.upload_blob(f"noop input {index}\n".encode(), overwrite=True)
    run_id = ids.blob_task_id(pipeline.name, pipeline.blob_input.container, name, str(result["etag"]))
    while True:
        try:
            data = manifest.download_blob().readall()
            latency = time.perf_counter() - t0
            break
        except ResourceNotFoundError:
            pass
        if time.perf_counter() - t0 > timeout:
            record = access.runs.get(pipeline.name, run_id) or {}
            raise RuntimeError(f"no manifest for {name} after {timeout:.0f}s (run {run_id} is "
                               f"{record.get('state', 'not recorded')}{': ' + record['reason'] if record.get('reason') else ''})")
        time.sleep(0.02)
    doc = json.loads(data)
    record = access.runs.get(pipeline.name, run_id) or {}
    return {"latency": latency, "state": doc.get("state"), "uploaded": uploaded_at,
            "received": _ts(record.get("receivedAt")), "submitted": _ts(record.get("submittedAt")),
            "start": _ts(doc.get("startTime")), "end": _ts(doc.get("endTime")), "recorded": _ts(doc.get("recordedAt"))}


STAGES = (("upload -> received (blob trigger, intake)", "uploaded", "received"),
          ("received -> submitted (drain timer, addTaskCollection)", "received", "submitted"),
          ("submitted -> task started (scheduler, container start)", "submitted", "start"),
          ("task started -> ended (no-op container, output upload)", "start", "end"),
          ("task ended -> manifest written (reconciler timer)", "end", "recorded"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=20, help="measured uploads (default 20)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one manifest")
    parser.add_argument("--no-up", action="store_true", help="use the running stack as is")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    from devstack import stack
    from devstack.app_access import AppAccess
    from devstack.demo import prepare_pools

    if not args.no_up:
        stack.up(with_host=True, log=lambda line: None)
    access = AppAccess.open()
    pipeline = access.config.pipeline(PIPELINE)
    if pipeline is None or pipeline.blob_input is None:
        print(f"pipelines.yaml has no blob-triggered pipeline {PIPELINE!r} running /app/noop.sh", file=sys.stderr)
        return 1
    prepare_pools(access, [pipeline.pool], say=lambda line: None)
    tag = f"bench-{datetime.now(UTC):%Y%m%dt%H%M%S}"
    try:
        one_upload(access, pipeline, tag, 0, args.timeout)  # warm-up: first job creation, first container
    except RuntimeError as exc:
        print(f"warm-up failed: {exc}\n(a host started before pipeline {PIPELINE} existed does not know it: "
              "`eventbatch down && eventbatch up`)", file=sys.stderr)
        return 1
    samples = []
    for i in range(1, args.uploads + 1):
        time.sleep(random.uniform(0.0, 1.0))
        samples.append(one_upload(access, pipeline, tag, i, args.timeout))
    latencies = [s["latency"] for s in samples]
    failed = [s for s in samples if s["state"] != "succeeded"]
    p50, p95 = _percentile(latencies, 0.5), _percentile(latencies, 0.95)
    print(f"end-to-end latency, blob upload -> manifest.json, no-op container task ({len(samples)} uploads, one "
          "at a time):")
    print(f"  p50 {p50:.2f} s   p95 {p95:.2f} s   min {min(latencies):.2f} s   max {max(latencies):.2f} s   "
          f"(target p50 <= 3 s: {'met' if p50 <= 3.0 else 'NOT met'})")
    print("  median per stage:")
    for label, a, b in STAGES:
        spans = [s[b] - s[a] for s in samples if s.get(a) is not None and s.get(b) is not None]
        if spans:
            print(f"    {label:<58} {statistics.median(spans):6.2f} s")
    if failed:
        print(f"  {len(failed)} run(s) did not succeed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
