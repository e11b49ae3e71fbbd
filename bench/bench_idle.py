"""Idle cost: Storage + Batch calls per minute of the function app with no work at all, with Azure's settings.

    .venv/bin/python -m bench.bench_idle [--settle S] [--minutes M]      (or: make bench BENCH_ARGS=idle)

A private Functions host runs the repo's function_app.py with the repo's host.json and the app settings Azure
would have: local.settings.sample.json's values without the local timing overrides (devstack/stack/host.py
LOCAL_DEFAULTS is NOT applied, so every schedule and timeout is the app's default) and with infra/main.bicep's
POOL_SCALE_MODE=autoscale and CREATE_MISSING_POOLS=false, against a private Batch emulator (no pools, no jobs)
and the stack's Azurite (fresh, empty containers, queues and table). After ``--settle`` seconds (default 30) it
counts, with the host's call counter, every request over ``--minutes`` (default 2) and prints calls per minute:

- app: requests made by function code (timers' work: drain, reconciler, ...);
- host: the host's own machinery (queue polling with back-off up to host.json maxPollingInterval, timer status,
  lease renewals, receipts);
- host blob scans, separately: the local host lists the watched containers every 0.25 s as its stand-in for Event
  Grid, which pushes events on Azure and costs the app nothing; they are not counted against the target.

It also lists every function with its trigger and, for timers, the interval between occurrences, flagging any
timer that runs more often than once a minute. Target (issue 18): <= 6 Storage + Batch calls per minute, queue
polling included, and no timer more often than once a minute.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.hosting import REPO, PrivateHost, app_settings, delta, load_average, summarize, unique_tag

TARGET_PER_MINUTE = 6.0
# infra/main.bicep appSettings: infra creates the pools, queues, table and containers (made here before the host starts)
AZURE_SETTINGS = {"POOL_SCALE_MODE": "autoscale", "CREATE_MISSING_POOLS": "false", "CREATE_STORAGE_RESOURCES": "false"}


def _names(tag: str) -> dict[str, str]:
    return {"INPUT_CONTAINER": f"in{tag}", "OUTPUT_CONTAINER": f"out{tag}", "REQUESTS_QUEUE": f"req{tag}",
            "SUBMIT_QUEUE": f"sub{tag}", "REJECTED_QUEUE": f"rej{tag}", "COMPLETIONS_QUEUE": f"done{tag}",
            "FAILURES_QUEUE": f"fail{tag}", "CHECK_QUEUE": f"chk{tag}", "MARKER_CONTAINER": f"mk{tag}",
            "RUNS_TABLE": f"runs{tag}", "JOB_ID_PREFIX": f"j{tag}"}


def max_polling_seconds() -> float:
    from devstack.func_host.host_config import load_host_json

    return load_host_json(REPO).queues.max_polling_interval


def schedules(functions: list[dict]) -> list[dict]:
    """Each function's trigger, and for timers the shortest interval between its next occurrences."""
    from shared.ncrontab import min_interval, parse_schedule

    out = []
    for item in functions:
        row = {"name": item.get("name"), "trigger": item.get("trigger"), "detail": item.get("detail"),
               "interval_s": None, "too_often": False}
        match = re.match(r"timerTrigger '(.+)'$", str(item.get("detail") or ""))
        if item.get("trigger") == "timerTrigger" and match:
            interval = min_interval(parse_schedule(match.group(1)), datetime.now(UTC))
            row["interval_s"] = interval
            row["too_often"] = interval < 60
        out.append(row)
    return out


def _queues(names: dict[str, str]) -> list[str]:
    return [v for k, v in names.items() if k.endswith("_QUEUE")]


def _create_queues_and_table(env: dict[str, str], names: dict[str, str]) -> None:
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    queues = QueueServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"])
    for name in _queues(names):
        queues.create_queue(name)
    TableServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"]).create_table(
        names["RUNS_TABLE"])


def _delete_queues_and_table(env: dict[str, str], names: dict[str, str]) -> None:
    from azure.core.exceptions import AzureError
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    queues = QueueServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"])
    for name in _queues(names):
        try:
            queues.delete_queue(name)
        except AzureError:
            pass
    try:
        TableServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"]).delete_table(
            names["RUNS_TABLE"])
    except AzureError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_idle", description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=30.0, help="seconds to let the host settle (default 30)")
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes to count (default 5: one whole period "
                                                                   "of the safety net's schedule)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.settle < 0 or args.minutes <= 0:
        parser.error("--settle must be >= 0 and --minutes > 0")

    from azure.storage.blob import BlobServiceClient

    from devstack.batch_emulator.launcher import EmulatorProcess
    from devstack.stack import lifecycle
    from devstack.stack.emulator import batch_emulator_env

    env = dict(lifecycle.up(with_host=False, log=lambda line: None).env)
    tag = unique_tag("idle")
    names = _names(tag)
    blob = BlobServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"])
    with (tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp,
          EmulatorProcess(Path(tmp) / "emulator", "process", batch_emulator_env(env),
                          account=env["BATCH_ACCOUNT_NAME"], key=env["BATCH_ACCOUNT_KEY"],
                          stop_timeout=15) as emulator):
        for container in (names["INPUT_CONTAINER"], names["OUTPUT_CONTAINER"], names["MARKER_CONTAINER"]):
            blob.create_container(container)
        _create_queues_and_table(env, names)  # as infra/ does on Azure
        settings = app_settings(env, emulator.url, {**names, **AZURE_SETTINGS}, local_defaults=False)
        host = PrivateHost(REPO, settings, Path(tmp) / "host", host_id=f"b{tag}")
        try:
            with host:
                functions = schedules(host.functions())
                print(f"idle app with Azure's settings (no local overrides), private host {host.host_id}, "
                      f"load average {load_average()}; settling {args.settle:g} s, then counting "
                      f"{args.minutes:g} min", flush=True)
                time.sleep(args.settle)
                before = host.fresh_counts()
                t0 = time.monotonic()
                time.sleep(args.minutes * 60)
                after = host.fresh_counts()
                elapsed = (time.monotonic() - t0) / 60
        finally:
            for container in (names["INPUT_CONTAINER"], names["OUTPUT_CONTAINER"], names["MARKER_CONTAINER"]):
                try:
                    blob.delete_container(container)
                except Exception:  # noqa: BLE001, S110 - best effort
                    pass
            _delete_queues_and_table(env, names)
    calls = delta(after, before)
    totals = summarize(calls)
    app_batch = sum(c for k, c in calls.items() if k.startswith("app batch "))
    host_batch = sum(c for k, c in calls.items() if k.startswith("host batch "))
    per_min = {
        "app_storage": totals["app_storage"] / elapsed, "app_batch": app_batch / elapsed,
        "host_storage_excluding_scans": (totals["host_storage"] - totals["host_blob_scans"]) / elapsed,
        "host_batch": host_batch / elapsed, "host_blob_scans": totals["host_blob_scans"] / elapsed,
    }
    counted = sum(v for k, v in per_min.items() if k != "host_blob_scans")
    print(f"calls per minute over {elapsed:.2f} min with no work (load average {load_average()}):")
    print(f"  app  (function code): Storage {per_min['app_storage']:7.1f}   Batch {per_min['app_batch']:7.1f}")
    print(f"  host (trigger machinery, without blob scans): Storage {per_min['host_storage_excluding_scans']:7.1f}"
          f"   Batch {per_min['host_batch']:7.1f}")
    print(f"  host blob scans (stand-in for Event Grid, not counted): {per_min['host_blob_scans']:7.1f}")
    print(f"  counted total: {counted:.1f} calls/min (target <= {TARGET_PER_MINUTE:g})")
    print("  by request (per minute):")
    for key, count in sorted(calls.items(), key=lambda kv: -kv[1]):
        print(f"    {key:<48} {count / elapsed:8.1f}")
    poll = max_polling_seconds()
    print(f"functions (host.json queues.maxPollingInterval {poll:g} s: an idle queue trigger polls at least "
          f"{60 / poll:.0f} times a minute once backed off):")
    for row in functions:
        extra = ""
        if row["interval_s"] is not None:
            extra = f"  every {row['interval_s']:g} s" + ("  <- more often than once a minute" if row["too_often"]
                                                       else "")
        print(f"  {row['name']:<20} {row['detail']}{extra}")
    too_often = [r["name"] for r in functions if r["too_often"]]
    met = counted <= TARGET_PER_MINUTE and not too_often
    print(f"targets (issue 18): <= {TARGET_PER_MINUTE:g} calls/min incl. queue polling: "
          f"{'met' if counted <= TARGET_PER_MINUTE else 'NOT met'} ({counted:.1f}); no timer more often than once a "
          f"minute: {'met' if not too_often else 'NOT met (' + ', '.join(too_often) + ')'}")
    print(json.dumps({"minutes": round(elapsed, 3), "per_minute": {k: round(v, 2) for k, v in per_min.items()},
                      "counted_per_minute": round(counted, 2), "functions": functions,
                      "max_polling_interval_s": poll, "met": met}))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
