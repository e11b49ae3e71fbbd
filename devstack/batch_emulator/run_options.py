"""Which containerRunOptions reach past a task's container into the host, and so are refused by default.

The emulator runs task containers with rootful podman or docker on the developer's own machine: a task that may
pass `--privileged -v /:/host` is root on that machine, and any task holding the (well-known) account key could
ask for one. So options that add privileges, share a host namespace, expose devices or mount host paths are
refused with 400 InvalidPropertyValue naming the option, unless the emulator was started with
--allow-host-access. This is a guard against asking for host access, not a sandbox: see docs/batch-emulator.md
for what a task can reach anyway.
"""

from __future__ import annotations

import shlex

# Flags that are refused whatever their value (podman and docker spellings).
_ALWAYS = {
    "--privileged": "gives the container every capability and all host devices",
    "--cap-add": "adds Linux capabilities",
    "--security-opt": "can turn off seccomp, AppArmor or SELinux confinement",
    "--device": "exposes a host device",
    "--device-cgroup-rule": "allows access to host devices",
    "--gpus": "exposes host devices",
    "--volumes-from": "mounts another container's volumes",
    "--rootfs": "runs a host directory as the root file system",
    "--env-host": "copies the emulator's own environment (storage key, registry credentials) into the task",
    "--env-file": "reads a file of the host",
    "--cidfile": "writes a file on the host",
    "--oom-kill-disable": "can take the host's memory",
    "--init-path": "runs a host binary in the container",
    "--hooks-dir": "runs host hooks",
}
# Namespaces: any value that is not private ('host' or 'container:<id>' joins a namespace).
_NAMESPACES = ("--pid", "--ipc", "--uts", "--userns", "--cgroupns", "--network", "--net")
_VOLUMES = ("-v", "--volume", "--mount")
_WITH_VALUE = set(_ALWAYS) - {"--privileged", "--env-host", "--oom-kill-disable"}


def host_access_option(run_options: str | None) -> tuple[str, str] | None:
    """(the offending option as written, why it is refused), or None when the options stay inside the
    container. Raises ValueError when the text cannot be split like a shell would (unbalanced quotes)."""
    tokens = shlex.split(run_options or "")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, inline = token.partition("=")
        if not token.startswith("--") and token.startswith("-v") and len(token) > 2:
            name, eq, inline = "-v", "=", token[2:]  # -v/src:dst
        elif not token.startswith("--") and token.startswith("-") and token.endswith("v") and len(token) > 2:
            name = "-v"  # a cluster of short flags ending in -v, e.g. -itv /src:/dst
        value = inline if eq else (tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].startswith("-")
                                   else "")
        takes_value = name in _WITH_VALUE or name in _NAMESPACES or name in _VOLUMES
        written = token if eq or not takes_value or not value else f"{token} {value}"
        if name in _ALWAYS:
            if name in ("--privileged", "--env-host", "--oom-kill-disable") and value.lower() == "false" and eq:
                pass
            else:
                return written, _ALWAYS[name]
        elif name in _NAMESPACES:
            if value.startswith(("container:", "ns:", "/")) or (value == "host" and name not in ("--network",
                                                                                                  "--net")):
                return written, f"joins a namespace outside the task container ({name.lstrip('-')} {value})"
        elif name in _VOLUMES:
            if _mounts_host_path(name, value):
                return written, "mounts a host path into the container"
        if takes_value and not eq and value:
            i += 1
        i += 1
    return None


def _mounts_host_path(name: str, value: str) -> bool:
    if name == "--mount":
        fields = dict(part.partition("=")[::2] for part in value.split(","))
        return fields.get("type", "volume") in ("bind", "devpts") or "src" in fields and \
            fields.get("src", "").startswith(("/", ".")) and fields.get("type") != "volume"
    source = value.split(":", 1)[0]
    return source.startswith(("/", ".", "~")) or value.startswith("/")  # a path, not a named volume
