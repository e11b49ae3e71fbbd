"""The runtime contract shared by the container runtimes and the process runtime.

The scheduler knows tasks and nodes; a runtime knows only "run this argv in this image with these files and
this environment, and tell me how it ended". Keeping these types free of Batch vocabulary lets the same
runtime serve tasks, start tasks and image prefetch without knowing which one it is serving.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Mount:
    """A host folder made visible inside the container (a bind mount)."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one registry server. `repr` hides the password so it never lands in a log."""

    server: str
    username: str
    password: str = field(repr=False)


@dataclass
class RunSpec:
    """Everything a runtime needs to run one command.

    `command` None or [] means "the image's ENTRYPOINT/CMD" (Batch's empty command line). `run_options` are
    extra `create` arguments, already split into argv words (Batch's containerRunOptions). `stdout_path` and
    `stderr_path` are host files the runtime creates (truncating) and streams the output into.
    """

    name: str
    command: list[str] | None
    env: dict[str, str]
    workdir: str | None
    mounts: list[Mount]
    image: str | None
    run_options: list[str]
    stdout_path: str
    stderr_path: str
    network: str | None = None
    user: str | None = None  # uid:gid inside the container (task_user.py); None = the image's USER


class PullError(Exception):
    """An image could not be pulled. `code` uses Batch's TaskFailureInformationCodes vocabulary
    (ContainerInvalidImage, ContainerInvalidRegistry, ContainerMiscError) so the caller can put it straight
    into failureInfo / a node error; `message` is safe to show (no credentials)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StartError(Exception):
    """The command could not be started at all (bad image, bad run options, program not found).

    `code` is a Batch TaskFailureInformationCodes value: ContainerInvalidImage, ContainerInvalidSettings,
    ContainerMiscError, CommandProgramNotFound or CommandLaunchFailed.
    """

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RuntimeUnavailable(RuntimeError):
    """The requested runtime cannot run on this machine; the message says what to install or set."""


class Handle(Protocol):
    """A started command. `container_id` is None for the process runtime."""

    container_id: str | None

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None if still running when `timeout` seconds have passed."""
        ...

    def kill(self) -> None:
        """Stop the command and everything it started, now (SIGKILL)."""
        ...


class Runtime(Protocol):
    name: str

    def pull(self, image: str, auth: RegistryAuth | None, timeout: float = 300) -> None: ...

    def has_image(self, image: str) -> bool: ...

    def start(self, spec: RunSpec) -> Handle: ...

    def cleanup(self, name: str) -> None: ...

    def list_names(self, prefix: str) -> list[str]: ...
