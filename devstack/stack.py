"""The local stack: Azurite, the private registry, the Batch emulator and the Functions host, started once.

`up()` health-checks each service, reuses any that is already healthy, starts the rest with logs under
`.devstack/logs/`, builds the sample images, and writes the stack's endpoints and (well-known, local-only)
credentials to `.devstack/env` so `source .devstack/env` points the azure SDKs at it. `down()` stops what the pid
files say we started, and the containers the emulator left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devstack import local_accounts, paths
from devstack.containers import Engine, detect_engine
from devstack.registry import registry_service
from devstack.services import Service, StackError, ensure_running, http_status, stop

PY = sys.executable
SERVICE_ORDER = ("azurite", "registry", "batch-emulator", "func-host")


@dataclass(frozen=True)
class Ports:
    blob: int = 10000
    queue: int = 10001
    table: int = 10002
    registry: int = 5055
    batch: int = 8095

    @classmethod
    def from_env(cls) -> Ports:
        def port(name: str, default: int) -> int:
            raw = os.environ.get(name)
            if not raw:
                return default
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise StackError(f"{name}={raw!r} is not a port number (1-65535)")
            return int(raw)

        return cls(
            port("EVENTBATCH_AZURITE_BLOB_PORT", 10000),
            port("EVENTBATCH_AZURITE_QUEUE_PORT", 10001),
            port("EVENTBATCH_AZURITE_TABLE_PORT", 10002),
            port("EVENTBATCH_REGISTRY_PORT", 5055),
            port("EVENTBATCH_BATCH_PORT", 8095),
        )


@dataclass
class StackInfo:
    env: dict[str, str]
    actions: dict[str, str] = field(default_factory=dict)  # service -> started | reused


def stack_env(ports: Ports, engine: Engine) -> dict[str, str]:
    registry = f"127.0.0.1:{ports.registry}"
    conn = local_accounts.azurite_connection_string("127.0.0.1", ports.blob, ports.queue, ports.table)
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": conn,
        "REGISTRY_SERVER": registry,
        "REGISTRY_USERNAME": local_accounts.REGISTRY_USERNAME,
        "REGISTRY_PASSWORD": local_accounts.REGISTRY_PASSWORD,
        "WORKER_IMAGE": f"{registry}/eventbatch/worker:1",
        "HELLO_IMAGE": f"{registry}/eventbatch/hello:1",
        "CONTAINER_RUNTIME": engine.name,
        "BATCH_ACCOUNT_URL": f"http://127.0.0.1:{ports.batch}",
        "BATCH_ACCOUNT_NAME": local_accounts.BATCH_ACCOUNT_NAME,
        "BATCH_ACCOUNT_KEY": local_accounts.BATCH_ACCOUNT_KEY,
    }
    env.update(engine.env)
    return env


def azurite_service(ports: Ports) -> Service:
    exe = paths.REPO_ROOT / "node_modules" / ".bin" / "azurite"
    location = paths.state_dir() / "azurite"
    location.mkdir(parents=True, exist_ok=True)

    def healthy() -> bool:
        for port in (ports.blob, ports.queue, ports.table):
            answer = http_status(f"http://127.0.0.1:{port}/{local_accounts.AZURITE_ACCOUNT}?comp=list")
            if not answer or "Azurite" not in answer[1].get("Server", ""):
                return False
        return True

    return Service(
        name="azurite",
        # --disableTelemetry: Azurite 3.35 otherwise sends usage data to Application Insights; nothing in the
        # local stack may open a connection off this machine (tests/integration/stack/test_stays_on_this_machine.py).
        command=[str(exe), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
                 "--location", str(location),
                 "--blobHost", "127.0.0.1", "--blobPort", str(ports.blob),
                 "--queueHost", "127.0.0.1", "--queuePort", str(ports.queue),
                 "--tableHost", "127.0.0.1", "--tablePort", str(ports.table)],
        port=ports.blob,
        healthy=healthy,
        hint="with EVENTBATCH_AZURITE_BLOB_PORT / _QUEUE_PORT / _TABLE_PORT",
    )


def batch_emulator_env(env: dict[str, str]) -> dict[str, str]:
    """The stack env plus what a Batch emulator needs to stage files through Azurite and pull from the registry
    (the shared emulator and the tests' private ones alike)."""
    registry_creds = {env["REGISTRY_SERVER"]: {"username": env["REGISTRY_USERNAME"],
                                               "password": env["REGISTRY_PASSWORD"]}}
    return {**env,
            "BATCH_EMULATOR_STORAGE_CONNECTION_STRING": env["AZURE_STORAGE_CONNECTION_STRING"],
            "BATCH_EMULATOR_REGISTRY_CREDENTIALS": json.dumps(registry_creds)}


def batch_emulator_service(ports: Ports, env: dict[str, str]) -> Service:
    return Service(
        name="batch-emulator",
        command=[PY, "-m", "devstack.batch_emulator", "--host", "127.0.0.1", "--port", str(ports.batch),
                 "--data-dir", str(paths.state_dir() / "batch"),
                 "--account", f"{env['BATCH_ACCOUNT_NAME']}:{env['BATCH_ACCOUNT_KEY']}",
                 "--runtime", os.environ.get("EVENTBATCH_BATCH_RUNTIME", "auto"),
                 # the output files tasks store reach the host as Event Grid would bring them (the markers)
                 "--blob-events", str(paths.state_dir() / "func_host"),
                 # Spot preemption (docs/batch-emulator.md#spot-preemption): off unless set
                 "--preempt-rate", os.environ.get("EVENTBATCH_BATCH_PREEMPT_RATE", "0")],
        port=ports.batch,
        healthy=lambda: (http_status(f"http://127.0.0.1:{ports.batch}/_emulator/health") or (0,))[0] == 200,
        env=batch_emulator_env(env),
        hint="with EVENTBATCH_BATCH_PORT",
    )


def func_host_service(env: dict[str, str]) -> Service:
    state = paths.state_dir() / "func_host"
    settings = write_local_settings(env)

    def healthy() -> bool:
        status = state / "status.json"
        try:
            info = json.loads(status.read_text())
        except (OSError, ValueError):
            return False
        from devstack.services import pid_alive

        return info.get("state") == "running" and pid_alive(int(info.get("pid", 0)))

    return Service(
        name="func-host",
        command=[PY, "-m", "devstack.func_host", "--app-dir", str(paths.REPO_ROOT), "--settings", str(settings),
                 "--state-dir", str(state)],
        port=None,
        healthy=healthy,
        env=env,
        start_timeout=60,
    )


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


def app_fingerprint(settings: Path) -> str:
    """A hash of what the host loaded at start: the app's code, host.json, pipelines.yaml and its settings file.
    The host (like the real one) reads them once, so a change needs a restart."""
    digest = hashlib.sha256()
    files = [paths.REPO_ROOT / name for name in APP_FILES]
    for folder in APP_FOLDERS:
        files += sorted((paths.REPO_ROOT / folder).rglob("*.py"))
    for path in [*files, settings, image_facts_file()]:
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
    facts = image_facts_file()
    if not facts.exists():
        from shared.image_rules import dump_facts

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


def provision_storage(env: dict[str, str]) -> list[str]:
    """Create the app's blob containers, as infra/modules/storage.bicep does on Azure.

    The app creates its queues and table itself, but not the containers: Batch refuses to upload outputs to a
    missing container (FileUploadContainerNotFound). Names come from the local settings (INPUT_CONTAINER,
    OUTPUT_CONTAINER, and DEADLETTER_CONTAINER where the host's Event Grid stand-in dead-letters events, as
    infra/modules/eventgrid.bicep's container). Returns the containers created now."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    sample = paths.REPO_ROOT / "local.settings.sample.json"
    values = json.loads(sample.read_text()).get("Values", {}) if sample.exists() else {}
    names = [values.get("INPUT_CONTAINER") or "input", values.get("OUTPUT_CONTAINER") or "output",
             values.get("DEADLETTER_CONTAINER") or "eventgrid-deadletter"]
    service = BlobServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"])
    created = []
    for name in dict.fromkeys(names):
        try:
            service.create_container(name)
            created.append(name)
        except ResourceExistsError:
            pass
    return created


def services(ports: Ports, env: dict[str, str], with_host: bool = True) -> list[Service]:
    result = [azurite_service(ports), registry_service(ports.registry)]
    if (paths.REPO_ROOT / "devstack" / "batch_emulator" / "__main__.py").exists():
        result.append(batch_emulator_service(ports, env))
    if with_host and (paths.REPO_ROOT / "function_app.py").exists() and \
            (paths.REPO_ROOT / "devstack" / "func_host" / "__main__.py").exists():
        result.append(func_host_service(env))
    return result


def up(with_host: bool = True, build_images: bool = True, log=print) -> StackInfo:
    ports = Ports.from_env()
    engine = detect_engine()
    env = stack_env(ports, engine)
    paths.state_dir().mkdir(parents=True, exist_ok=True)
    write_env_file(env)
    info = StackInfo(env)
    log("eventbatch local stack:")
    for service in services(ports, env, with_host):
        if service.name == "batch-emulator" and build_images:
            # Nodes prefetch the sample images from the registry as soon as a pool starts.
            from devstack.images import build_and_push

            build_and_push(engine, env["REGISTRY_SERVER"], log=log)
            write_image_facts(env, log)
            build_images = False
        if service.name == "func-host":
            info.actions[service.name] = ensure_host(service, log=log)
            continue
        info.actions[service.name] = ensure_running(service, log=log)
        if service.name == "azurite":
            provision_storage(env)
    if build_images:
        from devstack.images import build_and_push

        build_and_push(engine, env["REGISTRY_SERVER"], log=log)
        write_image_facts(env, log)
    log(f"endpoints and credentials written to {paths.env_file()} (source it to use the azure SDKs)")
    return info


def image_facts_file() -> Path:
    return paths.state_dir() / "image-check.json"


def write_image_facts(env: dict[str, str], log=print) -> Path:
    """Read the sample pipelines' images from the registry (`eventbatch images check`) and keep what was read in
    .devstack/image-check.json, which the local host's IMAGE_CHECK_FILE names: the app judges its pipelines with it
    at start-up. Verdicts are only summarised here; `eventbatch images check` prints them."""
    from devstack.image_check import run_check
    from shared.errors import ConfigError
    from shared.image_rules import dump_facts, failures
    from shared.pipelines import load_config

    out = image_facts_file()
    try:
        config = load_config(paths.REPO_ROOT / "pipelines.yaml", {**LOCAL_DEFAULTS, **env})
    except ConfigError as exc:
        log(f"  image check     skipped: {exc}")
        out.write_text(dump_facts([]))
        return out
    result = run_check(config, credential_factory=None)
    out.write_text(dump_facts(result.facts.values()))
    bad = failures(result.reports)
    verdict = (f"{len(bad)} rule(s) FAILED ({', '.join(sorted({v.rule for _, v in bad}))}): run "
               "`eventbatch images check`" if bad else "passed")
    log(f"  image check    {verdict} ({len(result.facts)} image(s); facts in {out})")
    return out


def down(log=print) -> list[str]:
    stopped = []
    env = read_env_file() or {}
    candidates = [Service(name, [name], None, lambda: False) for name in reversed(SERVICE_ORDER)]
    for service in candidates:
        if stop(service):
            stopped.append(service.name)
            log(f"  {service.name:<14} stopped")
    _remove_emulator_containers(env)
    if not stopped:
        log("nothing of ours was running")
    return stopped


def _remove_emulator_containers(env: dict[str, str]) -> None:
    """Containers the emulator started and did not get to remove (for example after a kill)."""
    if env.get("CONTAINER_RUNTIME") != "podman":
        return
    engine = Engine("podman", {k: env[k] for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF") if k in env})
    try:
        listing = engine.run("ps", "-aq", "--filter", "label=eventbatch.emulator", check=False, timeout=30)
        ids = listing.stdout.decode().split()
        if ids:
            engine.run("rm", "-f", *ids, check=False, timeout=60)
    except (OSError, StackError):
        pass


def write_env_file(env: dict[str, str]) -> Path:
    path = paths.env_file()
    lines = ["# eventbatch local stack: `source .devstack/env`. Well-known local credentials only."]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_env_file() -> dict[str, str] | None:
    path = paths.env_file()
    if not path.exists():
        return None
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            parts = shlex.split(value)
            env[key] = parts[0] if parts else ""
    return env
