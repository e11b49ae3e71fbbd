"""Container and process runtimes for the Batch emulator; they know nothing of HTTP or Batch state.

    from devstack.batch_emulator.runtimes import detect_runtime, RunSpec, Mount, RegistryAuth, PullError
    runtime = detect_runtime("auto", env)          # podman | docker | process
    runtime.pull(image, RegistryAuth(server, user, password))
    handle = runtime.start(RunSpec(...)); code = handle.wait(timeout=None); runtime.cleanup(name)
"""

from .base import Handle, Mount, PullError, RegistryAuth, RunSpec, Runtime, RuntimeUnavailable, StartError
from .cli import ContainerCliRuntime
from .detect import PREFERENCES, detect_runtime
from .process import ProcessRuntime
from .unavailable import MissingRuntime

__all__ = [
    "PREFERENCES",
    "ContainerCliRuntime",
    "Handle",
    "MissingRuntime",
    "Mount",
    "ProcessRuntime",
    "PullError",
    "RegistryAuth",
    "RunSpec",
    "Runtime",
    "RuntimeUnavailable",
    "StartError",
    "detect_runtime",
]
