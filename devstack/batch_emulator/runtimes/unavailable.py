"""The runtime that stands in when no container engine was found (``--runtime auto``): a null object.

The emulator still starts, so that host-process pools work; every container use fails with the reason, which
the node shows as a ContainerMiscError. (Not to be confused with ``RuntimeUnavailable``, the exception that
detection raises.)
"""

from __future__ import annotations

from .base import PullError, StartError


class MissingRuntime:
    """Stands in for a container runtime that could not be found: every use fails with the reason."""

    name = "unavailable"

    def __init__(self, reason: str):
        self.reason = reason

    def pull(self, image, auth, timeout=300):
        raise PullError("ContainerMiscError", f"No container runtime is available: {self.reason}")

    def has_image(self, image):
        return False

    def start(self, spec):
        raise StartError("ContainerMiscError", f"No container runtime is available: {self.reason}")

    def cleanup(self, name):
        return None

    def list_names(self, prefix):
        return []
