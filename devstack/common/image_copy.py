"""Keep podman's image copies from writing outside the repository.

Run as root, podman records what it learns about registry blobs in
/var/lib/containers/cache/blob-info-cache-v1.boltdb on every pull, push and import. No containers.conf or
storage.conf setting moves that file: containers/image picks the path itself for root. When it cannot create
the file's folder it keeps the cache in memory for that one command, which costs nothing for a local stack
(the cache only saves re-uploads of blobs a registry already has, across commands).

So the verbs that copy images run in a private mount namespace in which the nearest existing ancestor of that
folder is read-only. Nothing else changes for them: storage, run state and temp files are where
devstack/stack/engine.py puts them, and a namespace made with `unshare --mount` ends with the command.
Where that is not possible (not root, no `unshare`, no permission to make mount namespaces, docker) the
command runs as it is, and podman writes its cache where it always does.

`argv()` is the one place that builds such a command line: the stack, the Batch emulator's runtime and the
tests that push or pull all go through it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

# containers/image's folder for root's blob-info cache (pkg/blobinfocache/default.go).
BLOB_INFO_CACHE_DIR = Path("/var/lib/containers/cache")
COPY_VERBS = frozenset({"pull", "push", "import", "load", "save", "build", "commit"})

# $1 is the folder to make read-only; the rest is the command. Nothing untrusted is in the script itself.
_SCRIPT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" || exit 126; shift; exec "$@"'


def copies_images(args: list[str] | tuple[str, ...]) -> bool:
    """Whether podman's argv (without the executable) is a verb that copies an image: `pull`, `image pull`..."""
    words = [a for a in args if not a.startswith("-")][:2]
    if not words:
        return False
    if words[0] == "image" and len(words) > 1:
        return words[1] in COPY_VERBS
    return words[0] in COPY_VERBS


def argv(executable: str, args: list[str] | tuple[str, ...], engine: str = "podman") -> list[str]:
    """The command line to run `executable args`; image copies by podman get the read-only cache folder."""
    if engine != "podman" or not copies_images(args) or not namespace_available():
        return [executable, *args]
    return _wrapped(executable, list(args))


def _wrapped(executable: str, args: list[str]) -> list[str]:
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _SCRIPT, "sh",
            str(_nearest_existing(BLOB_INFO_CACHE_DIR)), executable, *args]


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@functools.lru_cache(maxsize=1)
def namespace_available() -> bool:
    """Root, util-linux's unshare and mount, and permission to make a mount namespace (once per process)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    try:
        probe = subprocess.run(_wrapped("true", []), capture_output=True, timeout=10, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0
