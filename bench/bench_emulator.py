"""Batch emulator figures: 1,000 no-op tasks end to end, container tasks per second, get-task latency.

    .venv/bin/python -m bench emulator            (or: .venv/bin/python -m bench.bench_emulator)

Each part starts a private emulator process on a free port with a temporary data dir and drives it through the
unmodified azure-batch 15.1 client, as an application would:
1. addTaskCollection of 1,000 no-op tasks (``/bin/true``) to one job on a pool of 4 nodes x 4 slots with the
   process runtime; seconds from the first add until every task is completed (target < 30 s on 2 cores).
2. container tasks per second with podman: N tasks running the sample worker image on 2 nodes x 2 slots.
3. p50/p95 of get_task against a completed task (target p50 < 5 ms).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from devstack.batch_emulator.launcher import EmulatorProcess
from devstack.common.local_accounts import BATCH_ACCOUNT_KEY, BATCH_ACCOUNT_NAME

ROOT = Path(__file__).resolve().parents[1]


def stack_env() -> dict[str, str]:
    env = {}
    path = ROOT / ".devstack" / "env"
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("export "):
                key, _, value = line[7:].partition("=")
                env[key] = shlex.split(value)[0] if value else ""
    return env


@contextmanager
def emulator(runtime: str, extra_env: dict | None = None):
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        with EmulatorProcess(Path(tmp) / "data", runtime, extra_env, ("--log-level", "WARNING")) as emu:
            yield emu.url


def client(url: str):
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential

    return BatchClient(url, AzureNamedKeyCredential(BATCH_ACCOUNT_NAME, BATCH_ACCOUNT_KEY))


def _pool(m, pool_id: str, nodes: int, slots: int, container: dict | None = None):
    vmc = m.VirtualMachineConfiguration(
        image_reference=m.BatchVmImageReference(publisher="microsoft-dsvm", offer="ubuntu-hpc", sku="2204"),
        node_agent_sku_id="batch.node.ubuntu 22.04", container_configuration=container)
    return m.BatchPoolCreateOptions(id=pool_id, vm_size="standard_d2s_v3", virtual_machine_configuration=vmc,
                                    target_dedicated_nodes=nodes, task_slots_per_node=slots)


def wait_idle(c, pool_id: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for n in c.list_nodes(pool_id) if n.state in ("idle", "running")) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"pool {pool_id} nodes did not become idle")


def wait_done(c, job_id: str, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = c.get_job_task_counts(job_id).task_counts
        if counts.completed >= total:
            if counts.failed:
                raise RuntimeError(f"{counts.failed} tasks failed")
            return
        time.sleep(0.05)
    raise RuntimeError(f"job {job_id} did not finish within {timeout}s")


def bench_many_tasks(n: int) -> tuple[float, list[float]]:
    from azure.batch import models as m

    with emulator("process") as url:
        c = client(url)
        c.create_pool(_pool(m, "bench", 4, 4))
        wait_idle(c, "bench", 4)
        c.create_job(m.BatchJobCreateOptions(id="bench-job", pool_info=m.BatchPoolInfo(pool_id="bench")))
        tasks = [m.BatchTaskCreateOptions(id=f"t{i:05d}", command_line="/bin/true") for i in range(n)]
        started = time.monotonic()
        c.create_tasks("bench-job", tasks)
        wait_done(c, "bench-job", n, timeout=300)
        elapsed = time.monotonic() - started
        samples = []
        for i in range(300):
            t0 = time.perf_counter()
            c.get_task("bench-job", f"t{i % n:05d}")
            samples.append((time.perf_counter() - t0) * 1000)
    return elapsed, samples


def bench_containers(n: int) -> float | str:
    from azure.batch import models as m

    env = stack_env()
    image = env.get("WORKER_IMAGE")
    if not image or not env.get("CONTAINERS_CONF"):
        return "skipped (no .devstack/env with WORKER_IMAGE/CONTAINERS_CONF: run `make up`)"
    registry = m.ContainerRegistryReference(registry_server=env.get("REGISTRY_SERVER"),
                                            username=env.get("REGISTRY_USERNAME"),
                                            password=env.get("REGISTRY_PASSWORD"))
    with emulator("podman", env) as url:
        c = client(url)
        cc = m.BatchContainerConfiguration(type="dockerCompatible", container_image_names=[image],
                                           container_registries=[registry])
        c.create_pool(_pool(m, "bench-c", 2, 2, cc))
        wait_idle(c, "bench-c", 2, timeout=300)
        c.create_job(m.BatchJobCreateOptions(id="bench-c-job", pool_info=m.BatchPoolInfo(pool_id="bench-c")))
        settings = m.BatchTaskContainerSettings(image_name=image)
        tasks = [m.BatchTaskCreateOptions(id=f"c{i:04d}", command_line="/bin/sh -c 'echo ok'",
                                          container_settings=settings) for i in range(n)]
        started = time.monotonic()
        c.create_tasks("bench-c-job", tasks)
        wait_done(c, "bench-c-job", n, timeout=600)
        return n / (time.monotonic() - started)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_emulator")
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--container-tasks", type=int, default=24)
    p.add_argument("--skip-containers", action="store_true")
    args = p.parse_args(argv)
    elapsed, samples = bench_many_tasks(args.tasks)
    print(f"batch emulator: {args.tasks} no-op tasks (addTaskCollection, 1 job, 4 nodes x 4 slots, process "
          f"runtime) all completed in {elapsed:.2f} s (target < 30 s)", flush=True)
    print(f"batch emulator: get_task latency p50 {percentile(samples, 0.5):.2f} ms, p95 "
          f"{percentile(samples, 0.95):.2f} ms over {len(samples)} calls (target p50 < 5 ms)", flush=True)
    if not args.skip_containers:
        rate = bench_containers(args.container_tasks)
        if isinstance(rate, str):
            print(f"batch emulator: container tasks per second: {rate}")
        else:
            print(f"batch emulator: {rate:.2f} container tasks per second with podman ({args.container_tasks} "
                  "tasks, 2 nodes x 2 slots, sample worker image)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
