"""The stack's shared Batch emulator (`python -m devstack.batch_emulator`), and the env any emulator needs."""

from __future__ import annotations

import json
import os

from devstack.common import paths
from devstack.stack.engine import Engine
from devstack.stack.image_facts import write_image_facts
from devstack.stack.ports import PY, Ports
from devstack.stack.processes import Service, http_status
from devstack.stack.sample_images import build_and_push


def batch_emulator_env(env: dict[str, str]) -> dict[str, str]:
    """The stack env plus what a Batch emulator needs to stage files through Azurite and pull from the registry
    (the shared emulator and the tests' private ones alike)."""
    registry_creds = {env["REGISTRY_SERVER"]: {"username": env["REGISTRY_USERNAME"],
                                               "password": env["REGISTRY_PASSWORD"]}}
    return {**env,
            "BATCH_EMULATOR_STORAGE_CONNECTION_STRING": env["AZURE_STORAGE_CONNECTION_STRING"],
            "BATCH_EMULATOR_REGISTRY_CREDENTIALS": json.dumps(registry_creds)}


def batch_emulator_service(ports: Ports, env: dict[str, str], images_from: Engine | None = None) -> Service:
    """The emulator service. With `images_from`, `up()` first builds the sample images with that engine and
    pushes them (nodes prefetch them from the registry as soon as a pool starts), then reads their facts."""

    def build_images(log) -> None:
        build_and_push(images_from, env["REGISTRY_SERVER"], log=log)
        write_image_facts(env, log)

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
        before_up=build_images if images_from is not None else None,
    )
