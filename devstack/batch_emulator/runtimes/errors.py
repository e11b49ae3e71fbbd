"""Turning a container engine's stderr into Batch's TaskFailureInformationCodes.

Codes come from the Batch TaskFailureInformationCodes list (learn.microsoft.com, Microsoft.Azure.Batch.Common.
TaskFailureInformationCodes: ContainerInvalidImage "The container image was invalid", ContainerInvalidRegistry
"The specified container registry was invalid", ContainerInvalidSettings "At least one value of the specified
Task container settings is invalid", ContainerMiscError "There was an unknown error encountered while attempting
to run a Task in a container"). podman and docker word their errors differently; the substrings below cover both.
"""

from __future__ import annotations

_AUTH = (
    "unauthorized",
    "authentication required",
    "invalid username/password",
    "no basic auth credentials",
    "access to the requested resource is not authorized",
)
_MISSING = (
    "manifest unknown",
    "name unknown",
    "not found",
    "repository does not exist",
    "no such image",
    "image not known",
    "invalid reference format",
    "unable to find image",
)
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "server gave http response to https client",
    "x509:",
    "network is unreachable",
)
_BAD_OPTION = ("unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument", "invalid ")


def classify_pull_error(stderr: str) -> str:
    low = stderr.lower()
    if any(s in low for s in _AUTH):
        return "ContainerInvalidRegistry"
    if any(s in low for s in _UNREACHABLE):
        return "ContainerInvalidRegistry"
    if any(s in low for s in _MISSING):
        return "ContainerInvalidImage"
    return "ContainerMiscError"


def classify_create_error(stderr: str) -> str:
    low = stderr.lower()
    if any(s in low for s in ("no such image", "image not known", "unable to find image", "invalid reference")):
        return "ContainerInvalidImage"
    if any(s in low for s in _BAD_OPTION):
        return "ContainerInvalidSettings"
    return "ContainerMiscError"


def brief(stderr: str, limit: int = 600) -> str:
    """The engine's last meaningful lines, short enough for a failureInfo message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(lines[-3:])
    return text[:limit] if text else "(no output from the container engine)"
