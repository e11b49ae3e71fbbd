"""Which user a container task runs as, and giving that user its task folders, as Batch does on Linux.

Batch maps the task's user into the container: an admin auto-user (or admin named user) runs as root in the
container, a non-admin one as an unprivileged user, so a non-admin task cannot write root-owned paths of the
image. Batch makes the task's folders (wd, stdout.txt, stderr.txt) owned by the task user. The emulator does
the same with fixed, Batch-like ids (Batch's own are not documented; these stay stable so tests can name them):

    admin (any scope)                 uid 0    gid 0
    non-admin, pool scope             uid 1000 gid 1000   (the pool's shared auto-user)
    non-admin, task scope             uid 1001 gid 1000   (Batch: one user per task; here one uid for all)
    named user (pool userAccounts)    its linuxUserConfiguration uid/gid, else 1002:1000; admin -> 0:0

No userIdentity at all is Batch's default: a non-admin auto-user unique to the task (task scope).
Folders are chowned when the emulator runs as root (rootful podman/docker, where the container's uids are the
host's). Otherwise (rootless) the container's uids are mapped and cannot be chowned to from outside: the folders
are made world-writable instead, so a non-admin task can still write its outputs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("batch_emulator.task_user")

POOL_USER = (1000, 1000)
TASK_USER = (1001, 1000)
NAMED_USER = (1002, 1000)


@dataclass(frozen=True)
class TaskUser:
    uid: int
    gid: int

    @property
    def admin(self) -> bool:
        return self.uid == 0

    def user_arg(self) -> str:
        return f"{self.uid}:{self.gid}"


def resolve(user_identity: dict | None, pool: dict | None = None) -> TaskUser:
    """The container user for a task's (or start task's) userIdentity on this pool."""
    if not user_identity:
        return TaskUser(*TASK_USER)
    name = user_identity.get("username") or user_identity.get("userName")
    if name:
        for account in (pool or {}).get("userAccounts") or []:
            if account.get("name") == name:
                if (account.get("elevationLevel") or "nonadmin").lower() == "admin":
                    return TaskUser(0, 0)
                linux = account.get("linuxUserConfiguration") or {}
                return TaskUser(int(linux.get("uid", NAMED_USER[0])), int(linux.get("gid", NAMED_USER[1])))
        return TaskUser(*NAMED_USER)
    auto = user_identity.get("autoUser") or {}
    if (auto.get("elevationLevel") or "nonadmin").lower() == "admin":
        return TaskUser(0, 0)
    return TaskUser(*(TASK_USER if (auto.get("scope") or "pool").lower() == "task" else POOL_USER))


def give_folders(user: TaskUser, task_dir: Path, wd: Path) -> None:
    """Make the task folder, its wd tree (resource files included) and stdout/stderr the task user's."""
    if user.admin:
        return
    paths = [task_dir, *(p for p in (task_dir / "stdout.txt", task_dir / "stderr.txt") if p.exists())]
    paths.append(wd)
    for root, dirs, files in os.walk(wd, followlinks=False):
        paths += [Path(root, d) for d in dirs] + [Path(root, f) for f in files]
    as_root = os.geteuid() == 0
    for path in paths:
        try:
            if path.is_symlink():
                continue
            if as_root:
                os.chown(path, user.uid, user.gid, follow_symlinks=False)
            else:
                os.chmod(path, 0o777 if path.is_dir() else 0o666)
        except OSError as exc:
            log.warning("could not give %s to uid %s: %s", path, user.uid, exc)
