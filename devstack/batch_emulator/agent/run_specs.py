"""What the agent hands a runtime, by Batch's conventions: argv from the command line, image names, failure
infos, and a fresh, symlink-free task folder for each attempt."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

_AGENT_FILES = ("stdout.txt", "stderr.txt", "fileuploadout.txt", "fileuploaderr.txt")


def split_command_line(command_line: str | None) -> list[str] | None:
    """Batch runs the command line without a shell: split it into argv like a POSIX shell would tokenise it,
    with no expansion. Empty means "the image's ENTRYPOINT"."""
    if command_line is None or not command_line.strip():
        return None
    return shlex.split(command_line)


def normalize_image(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last or ":" in last:
        return image
    return image + ":latest"


def failure(code: str, message: str, category: str = "usererror") -> dict:
    """A failureInfo as Batch reports it."""
    return {"category": category, "code": code, "message": message,
            "details": [{"name": "Message", "value": message}]}


def runtime_failure(exc: Exception, default_code: str) -> dict:
    """The failureInfo of a PullError / StartError (or any exception) from a runtime."""
    return failure(getattr(exc, "code", default_code), getattr(exc, "message", str(exc)),
                   getattr(exc, "category", "usererror"))


def fresh_attempt_dir(node_root: Path, task_dir: Path) -> None:
    """Give an attempt an empty working dir, as a new attempt gets on Batch, and make sure nothing on the way
    is a symlink: a previous attempt, or a sibling container with the node root mounted, may have left `wd`,
    `wd/in` or `stdout.txt` pointing anywhere on the host, and the emulator (often root) would write there."""
    task_dir.mkdir(parents=True, exist_ok=True)
    root = Path(node_root).resolve()
    expected = root / Path(task_dir).relative_to(node_root)
    if task_dir.resolve() != expected:
        raise OSError(f"the task folder {task_dir} leads out of the node folder through a symbolic link")
    wd = task_dir / "wd"
    if wd.is_symlink() or (wd.exists() and not wd.is_dir()):
        wd.unlink()
    elif wd.exists():
        shutil.rmtree(wd)  # does not follow symlinks inside
    wd.mkdir()
    for name in _AGENT_FILES:
        path = task_dir / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for name in ("stdout.txt", "stderr.txt"):
        (task_dir / name).touch()
