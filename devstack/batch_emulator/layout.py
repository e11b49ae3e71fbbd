"""A compute node's folders and the AZ_BATCH_* environment, laid out as Batch does on Linux.

    <data-dir>/nodes/<pool>/<node>/            AZ_BATCH_NODE_ROOT_DIR
        shared/  startup/wd  fsmounts/         AZ_BATCH_NODE_SHARED_DIR, _STARTUP_DIR, _MOUNTS_DIR
        workitems/<job>/job-1/<task>/          AZ_BATCH_TASK_DIR (stdout.txt, stderr.txt)
        workitems/<job>/job-1/<task>/wd        AZ_BATCH_TASK_WORKING_DIR

:class:`TaskFolder` is a task's folder as the task-file operations see it (list, stat, open, delete), so that the
handlers never touch the node disk; no path it is given can lead out of the folder.
"""

from __future__ import annotations

import mimetypes
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from devstack.batch_emulator import errors


@dataclass(frozen=True)
class NodeLayout:
    root: Path

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    @property
    def startup(self) -> Path:
        return self.root / "startup"

    @property
    def mounts(self) -> Path:
        return self.root / "fsmounts"

    def create(self) -> None:
        for d in (self.shared, self.startup / "wd", self.mounts, self.root / "workitems"):
            d.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        return self.root / "workitems" / job_id / "job-1"

    def task_dir(self, job_id: str, task_id: str) -> Path:
        return self.job_dir(job_id) / task_id

    def node_env(self, account: str, account_url: str, pool_id: str, node_id: str, dedicated: bool) -> dict:
        return {
            "AZ_BATCH_ACCOUNT_NAME": account,
            "AZ_BATCH_ACCOUNT_URL": account_url,
            "AZ_BATCH_POOL_ID": pool_id,
            "AZ_BATCH_NODE_ID": node_id,
            "AZ_BATCH_NODE_IS_DEDICATED": "true" if dedicated else "false",
            "AZ_BATCH_NODE_ROOT_DIR": str(self.root),
            "AZ_BATCH_NODE_SHARED_DIR": str(self.shared),
            "AZ_BATCH_NODE_STARTUP_DIR": str(self.startup),
            "AZ_BATCH_NODE_STARTUP_WORKING_DIR": str(self.startup / "wd"),
            "AZ_BATCH_NODE_MOUNTS_DIR": str(self.mounts),
            "AZ_BATCH_TASK_RESERVED_EPHEMERAL_DISK_SPACE_BYTES": "1000000000",
        }

    def start_task_env(self, base: dict) -> dict:
        env = dict(base)
        env["AZ_BATCH_TASK_DIR"] = str(self.startup)
        env["AZ_BATCH_TASK_WORKING_DIR"] = str(self.startup / "wd")
        return env

    def task_env(self, base: dict, job_id: str, task_id: str) -> dict:
        env = dict(base)
        task_dir = self.task_dir(job_id, task_id)
        env.update({
            "AZ_BATCH_JOB_ID": job_id,
            "AZ_BATCH_TASK_ID": task_id,
            "AZ_BATCH_TASK_DIR": str(task_dir),
            "AZ_BATCH_TASK_WORKING_DIR": str(task_dir / "wd"),
            "AZ_BATCH_CERTIFICATES_DIR": str(task_dir / "certs"),
        })
        return env


# containerHostBatchBindMounts source -> (folder relative to the node root or None for the task dir, env vars
# that stay visible when it is mounted)
BIND_SOURCE_VARS = {
    "Shared": ("shared", ("AZ_BATCH_NODE_SHARED_DIR",)),
    "Startup": ("startup", ("AZ_BATCH_NODE_STARTUP_DIR", "AZ_BATCH_NODE_STARTUP_WORKING_DIR")),
    "VfsMounts": ("fsmounts", ("AZ_BATCH_NODE_MOUNTS_DIR",)),
    "Task": (None, ("AZ_BATCH_TASK_DIR", "AZ_BATCH_TASK_WORKING_DIR", "AZ_BATCH_CERTIFICATES_DIR")),
    "JobPrep": ("", ()),
    "Applications": ("applications", ()),
}


@dataclass(frozen=True)
class TaskFile:
    """One file or directory of a task's folder: ``name`` is its path relative to the folder (``/``-separated)."""

    name: str
    is_directory: bool
    is_file: bool
    created: datetime
    modified: datetime
    size: int  # 0 for anything but a regular file
    mode: str  # octal, four digits: "0644"

    @property
    def content_type(self) -> str | None:
        if not self.is_file:
            return None
        return mimetypes.guess_type(self.name.rpartition("/")[2])[0] or "application/octet-stream"


def _task_file(path: Path, name: str) -> TaskFile:
    st = path.stat()
    is_file = path.is_file()
    return TaskFile(name, path.is_dir(), is_file, datetime.fromtimestamp(st.st_ctime, UTC),
                    datetime.fromtimestamp(st.st_mtime, UTC), st.st_size if is_file else 0,
                    oct(st.st_mode & 0o7777)[2:].rjust(4, "0"))


class TaskFolder:
    """The folder of a task that has run on a node (the model's ``task_paths``)."""

    def __init__(self, task_dir: str | None):
        """409 TaskNotStarted when the task has no folder yet, 409 TaskFilesUnavailable when it is gone."""
        if not task_dir or not Path(task_dir).is_dir():
            raise errors.BatchError(409, "TaskNotStarted" if not task_dir else "TaskFilesUnavailable",
                                    "The task has not run on a compute node yet, so it has no files.")
        self.root = Path(task_dir)

    def list(self, recursive: bool) -> list[TaskFile]:
        """The folder's entries (or, recursively, all below it), directories before files, each group by name."""
        root = self.root
        if recursive:
            walker = ((Path(d), dirs, files) for d, dirs, files in os.walk(root))
        else:
            walker = [(root, [p.name for p in root.iterdir() if p.is_dir()],
                       [p.name for p in root.iterdir() if not p.is_dir()])]
        items = []
        for d, dirs, files in walker:
            for name in sorted(dirs) + sorted(files):
                path = d / name
                items.append(_task_file(path, path.relative_to(root).as_posix()))
        return items

    def _path(self, rel: str) -> Path:
        rel = rel.replace("\\", "/").strip("/")
        root = self.root.resolve()
        target = (root / rel).resolve()
        if root != target and root not in target.parents:
            raise errors.invalid_query("filePath", rel, "The path must stay inside the task directory")
        if not target.exists():
            raise errors.BatchError(404, "FileNotFound", "The specified file does not exist.")
        return target

    def find(self, rel: str) -> TaskFile:
        """The entry at ``rel`` (400 when it leads out of the folder, 404 when there is none)."""
        path = self._path(rel)
        return _task_file(path, path.relative_to(self.root.resolve()).as_posix())

    def open(self, rel: str) -> tuple[BinaryIO, int]:
        """(an open binary file, its size) for a regular file, opened without following a final symlink."""
        path = self._path(rel)
        if path.is_dir():
            raise errors.BatchError(409, "FileIsDirectory", "The specified path is a directory.")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            raise errors.BatchError(404, "FileNotFound", "The specified file does not exist.") from None
        fh = os.fdopen(fd, "rb")
        try:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise errors.BatchError(404, "FileNotFound", "The specified path is not a regular file.")
        except BaseException:
            fh.close()
            raise
        return fh, st.st_size

    def delete(self, rel: str, recursive: bool) -> None:
        """Remove a file, or a directory with everything in it when ``recursive`` (409 DirectoryNotEmpty if not)."""
        path = self._path(rel)
        if path.is_dir():
            if not recursive:
                raise errors.BatchError(409, "DirectoryNotEmpty", "Use recursive=true to delete a directory.")
            shutil.rmtree(path)
        else:
            path.unlink()
