"""Blob upload -> function start latency through the local Functions host, on the host tests' `blobs` app.

    .venv/bin/python -m bench.bench_func_host_latency [--uploads 30] [host options, e.g. --blob-scan-interval 0.1]
    (or: make bench BENCH_ARGS=func_host_latency)

Runs against the stack's Azurite (brought up when not running). Uploads land at random moments of the scan cycle,
as a user's would; the start time is what the test app's function records when its body begins.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from tests.helpers import wait_for
from tests.integration.func_host.hostproc import HostProcess


def main(argv: list[str] | None = None) -> int:
    from devstack.stack import lifecycle

    parser = argparse.ArgumentParser(prog="python -m bench.bench_func_host_latency")
    parser.add_argument("--uploads", type=int, default=30)
    args, host_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    connection_string = lifecycle.up(with_host=False, log=lambda line: None).env["AZURE_STORAGE_CONNECTION_STRING"]
    container = f"latency-{uuid.uuid4().hex[:8]}"
    client = BlobServiceClient.from_connection_string(connection_string).get_container_client(container)
    client.create_container()
    with tempfile.TemporaryDirectory() as tmp:
        host = HostProcess("blobs", Path(tmp), connection_string, host_id=f"lat-{uuid.uuid4().hex[:8]}",
                           env={"IN_CONTAINER": container, "SDK_CONTAINER": "unused-sdk", "BAD_CONTAINER": "unused-bad"},
                           extra_args=host_args).start()
        latencies = []
        try:
            for i in range(args.uploads):
                time.sleep(random.uniform(0.05, 0.6))
                uploaded = time.time()
                client.upload_blob(f"x{i}.txt", b"data")
                started = wait_for(lambda i=i: [e for e in host.events("on_blob", "start")
                                                if e["name"] == f"{container}/x{i}.txt"], 10, interval=0.01)
                latencies.append(started[0]["t"] - uploaded)
        finally:
            host.stop()
            client.delete_container()
    latencies.sort()
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(f"blob upload -> function start over {len(latencies)} uploads: p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
