"""Where a resource file may land: inside the task working directory, never outside it.

Batch: "The specified relative path cannot break out of the Task's working directory (for example by using
'..')." We reject any '..' segment and absolute paths outright rather than normalising them, as Batch does,
so a spec that would escape on Azure also fails here.

The lexical check is not enough on a node whose folders a task can change (a previous attempt, or a sibling
container that has the node root mounted, can leave `in -> /etc`). So files are created and opened through
directory file descriptors, one path segment at a time, with O_NOFOLLOW: a symlink anywhere on the way is an
error (ELOOP/ENOTDIR), never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SymlinkRefused(OSError):
    """A path segment is a symlink (or not a directory/regular file where one is needed)."""

    def __init__(self, path: str, what: str = "is a symbolic link"):
        super().__init__(errno.ELOOP, f"{path} {what}; the emulator does not follow links in task folders")
        self.path = path


def relative_parts(path: str, what: str) -> list[str]:
    """The '/'-separated segments of a relative path, with '' and '.' dropped; ValueError names the rule
    broken. Backslash is an ordinary character on Linux nodes, as on Batch."""
    if path.startswith("/"):
        raise ValueError(f"{what} {path!r} must be relative to the task working directory")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"{what} {path!r} cannot break out of the task working directory (no '..')")
    if any("\0" in p for p in parts):
        raise ValueError(f"{what} {path!r} contains a NUL character")
    return parts


def under(root: Path, path: str, what: str) -> Path:
    """`root` joined with a relative path checked by relative_parts."""
    return root.joinpath(*relative_parts(path, what))


def parse_file_mode(mode: str | None) -> int | None:
    """fileMode is an octal string such as '0755' or '755' (Batch's default when absent is 0770)."""
    if mode is None or mode == "":
        return None
    text = str(mode).strip()
    try:
        value = int(text, 8)
    except ValueError:
        raise ValueError(f"fileMode {mode!r} is not an octal number such as 0755") from None
    if value < 0 or value > 0o7777:
        raise ValueError(f"fileMode {mode!r} is out of range (0000-7777)")
    return value


def _open_segment(parent_fd: int, name: str, shown: str, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=parent_fd)
        return _open_segment(parent_fd, name, shown, False)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SymlinkRefused(shown, "is a symbolic link or not a directory") from None
        raise


@contextlib.contextmanager
def open_dir(root: Path, parts: list[str], create: bool = False) -> Iterator[int]:
    """A file descriptor of root/parts..., walked (and with `create`, made) without following any symlink,
    including `root` itself when it is a link."""
    fd = os.open(str(root), _DIR_FLAGS)
    try:
        shown = str(root)
        for part in parts:
            shown = f"{shown}/{part}"
            child = _open_segment(fd, part, shown, create)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def open_file_under(root: Path, path: Path) -> int:
    """An O_RDONLY descriptor of the regular file `path` below `root`, with no symlink followed on the way
    (a link swapped in after a check is refused rather than read). `path` must be lexically under `root`."""
    rel = Path(path).relative_to(root).parts
    if not rel:
        raise SymlinkRefused(str(path), "is the root folder, not a file")
    with open_dir(root, list(rel[:-1])) as dir_fd:
        try:
            fd = os.open(rel[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SymlinkRefused(str(path)) from None
            raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SymlinkRefused(str(path), "is not a regular file")
    return fd
