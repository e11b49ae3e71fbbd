"""The stack's local Functions host (`python -m devstack.func_host`): its settings file, and the fingerprint of the
app it loaded, so `up` restarts it when the app changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from devstack.common import paths
from devstack.common.procs import pid_alive
from devstack.stack.ports import PY
from devstack.stack.processes import Service, ensure_running, stop
from shared.image_rules import dump_facts

# Local-only timings, used unless local.settings.sample.json sets them. Runs are submitted and completed on events
# either way; these only shorten the safety net's waits for a one-machine stack, where a killed host is the usual
# way to lose work: the safety net every 10 s instead of Azure's 5 min, and it takes over a run left `received`
# after 10 s instead of 2 min, a message claimed but not marked sent after 30 s instead of 1 min (a live worker on a
# loaded machine can take several seconds between its claim and the mark, and a takeover then sends twice). Idle queues are polled at most 2 s apart
# instead of Azure's default minute (host.json stays as deployed; the setting overrides it as on Azure). The pool is
# fixed-size locally, so tasks never wait for an autoscale evaluation.
LOCAL_DEFAULTS = {
    "RECONCILE_SCHEDULE": "*/10 * * * * *",
    "RESUBMIT_AFTER": "PT10S",
    "NOTIFY_REPAIR_AFTER": "PT30S",
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:02",
    "POOL_SCALE_MODE": "fixed",
}


APP_FILES = ("function_app.py", "host.json", "pipelines.yaml", "requirements.txt")
APP_FOLDERS = ("functions", "shared", "devstack/func_host")  # the app, and the host code that runs it


def func_host_service(env: dict[str, str]) -> Service:
    state = paths.state_dir() / "func_host"
    settings = write_local_settings(env)

    def healthy() -> bool:
        status = state / "status.json"
        try:
            info = json.loads(status.read_text())
        except (OSError, ValueError):
            return False
        return info.get("state") == "running" and pid_alive(int(info.get("pid", 0)))

    return Service(
        name="func-host",
        command=[PY, "-m", "devstack.func_host", "--app-dir", str(paths.REPO_ROOT), "--settings", str(settings),
                 "--state-dir", str(state)],
        port=None,
        healthy=healthy,
        env=env,
        start_timeout=60,
        ensure=ensure_host,
    )


def app_fingerprint(settings: Path) -> str:
    """A hash of what the host loaded at start: the app's code, host.json, pipelines.yaml and its settings file.
    The host (like the real one) reads them once, so a change needs a restart."""
    digest = hashlib.sha256()
    files = [paths.REPO_ROOT / name for name in APP_FILES]
    for folder in APP_FOLDERS:
        files += sorted((paths.REPO_ROOT / folder).rglob("*.py"))
    for path in [*files, settings, paths.image_facts_file()]:
        if path.is_file():
            digest.update(str(path.relative_to(paths.REPO_ROOT) if path.is_relative_to(paths.REPO_ROOT)
                              else path.name).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def ensure_host(service: Service, log=print) -> str:
    """Start the Functions host, or reuse it if it runs the current app; restart it (gracefully: in-flight work
    finishes or is released) when the app or its settings changed since it started. Returns started | reused |
    restarted."""
    marker = paths.state_dir() / "func_host" / "app.sha256"
    fingerprint = app_fingerprint(paths.state_dir() / "local.settings.json")
    restarted = False
    if service.healthy() and (not marker.exists() or marker.read_text().strip() != fingerprint):
        log(f"  {service.name:<14} the app, pipelines.yaml or the settings changed since it started: restarting")
        stop(service)
        restarted = True
    action = ensure_running(service, log=log)
    if action == "started":
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(fingerprint + "\n")
    return "restarted" if restarted else action


def write_local_settings(env: dict[str, str]) -> Path:
    """local.settings.json for the local host: the sample's values (plus LOCAL_DEFAULTS), pointed at this stack's
    endpoints."""
    sample = paths.REPO_ROOT / "local.settings.sample.json"
    settings = json.loads(sample.read_text()) if sample.exists() else {"IsEncrypted": False, "Values": {}}
    values = settings.setdefault("Values", {})
    for key, value in LOCAL_DEFAULTS.items():
        values.setdefault(key, value)
    # The facts `up` reads from the registry (write_image_facts), for the app's start-up image check. Until it has
    # read them (or for a host started without `up`), an empty file: only the rules that need no image apply.
    facts = paths.image_facts_file()
    if not facts.exists():
        facts.parent.mkdir(parents=True, exist_ok=True)
        facts.write_text(dump_facts([]))
    values.setdefault("IMAGE_CHECK_FILE", str(facts))
    conn = env["AZURE_STORAGE_CONNECTION_STRING"]
    for key, value in list(values.items()):
        if isinstance(value, str) and (value.replace(" ", "").lower() == "usedevelopmentstorage=true"
                                       or "AccountName=devstoreaccount1" in value):
            values[key] = conn
        elif key in env:
            values[key] = env[key]
    out = paths.state_dir() / "local.settings.json"
    out.write_text(json.dumps(settings, indent=2) + "\n")
    return out
