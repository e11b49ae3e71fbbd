"""Where a resource file may land: inside the task working directory, never outside it.

Batch: "The specified relative path cannot break out of the Task's working directory (for example by using
'..')." We reject any '..' segment and absolute paths outright rather than normalising them, as Batch does,
so a spec that would escape on Azure also fails here.
"""

from __future__ import annotations

from pathlib import Path


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
