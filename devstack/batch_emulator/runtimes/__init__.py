"""Container and process runtimes for the emulator's nodes (podman, docker, host processes); no HTTP."""

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
