"""Batch's OutputFile.filePattern, matched against the node's files.

The rules, from the OutputFile.filePattern reference (azure-batch 15.1 models / Batch REST):
- relative patterns are relative to the task working directory (so `../stdout.txt` is in the task dir);
  absolute paths are allowed;
- `*` matches 0 or more characters within a name, `**` matches any directory (zero or more levels),
  `?` one character, `[abc]`, `[a-c]` and `[!abc]` one character of / not of a set;
- a name starting with "." is ignored unless the pattern spells the dot explicitly (`*.gif` does not match
  `.a.gif`, `.*.gif` does); `**` does not descend into dot-directories;
- a wildcard character is escaped with brackets (`abc[*]` matches the file `abc*`);
- only `/` separates directories on Linux;
- $var and ${var} are expanded from the task environment before matching.
A pattern "refers to a specific file" when it contains none of `*`, `?`, `[`; then the destination path is the
blob name. Otherwise the destination path is a virtual directory and each file keeps its path relative to the
pattern's fixed leading directories (Batch's own example: `..\\std*.txt` with path `mytask` gives
`mytask/stderr.txt`, `mytask/stdout.txt`).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

_WILDCARD = re.compile(r"[*?\[]")
_VAR = re.compile(r"\$(\w+)|\$\{([^}]*)\}")


@dataclass(frozen=True)
class Match:
    path: Path  # the file on the host
    relative: str  # '/'-separated, relative to the pattern's fixed leading directories


def has_wildcard(pattern: str) -> bool:
    return bool(_WILDCARD.search(pattern))


def expand_vars(pattern: str, env: dict[str, str]) -> str:
    """$var / ${var} from the task environment; unknown variables stay as written (like a shell's
    `expandvars`)."""

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return env.get(name, m.group(0))

    return _VAR.sub(repl, pattern)


def _segment_regex(segment: str) -> re.Pattern:
    return re.compile(fnmatch.translate(segment))


def _name_matches(segment: str, name: str) -> bool:
    if name.startswith(".") and not segment.startswith("."):
        return False
    return _segment_regex(segment).match(name) is not None


def split_pattern(pattern: str, working_dir: Path) -> tuple[Path, list[str]]:
    """(fixed base directory, remaining wildcard segments). `..` is resolved lexically in the fixed part."""
    root = Path("/") if pattern.startswith("/") else working_dir
    segments = [s for s in pattern.split("/") if s not in ("", ".")]
    fixed: list[str] = []
    while segments and not has_wildcard(segments[0]):
        fixed.append(segments.pop(0))
    base = Path(os.path.normpath(root.joinpath(*fixed))) if fixed else Path(os.path.normpath(root))
    return base, segments


def match_files(pattern: str, working_dir: Path) -> list[Match]:
    """All regular files the pattern selects (symlinks to files included, never followed into directories).

    For a pattern without wildcards the single Match has `relative` = the file's name."""
    base, rest = split_pattern(pattern, working_dir)
    if not rest:
        return [Match(base, base.name)] if base.is_file() else []
    found: dict[Path, Match] = {}
    _walk(base, rest, "", found)
    return sorted(found.values(), key=lambda m: m.relative)


def _walk(directory: Path, segments: list[str], prefix: str, found: dict[Path, Match]) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    head, tail = segments[0], segments[1:]
    if head == "**":
        if tail:
            _walk(directory, tail, prefix, found)  # zero directories
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                _walk(Path(entry.path), segments, f"{prefix}{entry.name}/", found)
            elif not tail and entry.is_file():
                found.setdefault(Path(entry.path), Match(Path(entry.path), prefix + entry.name))
        return
    for entry in entries:
        if not _name_matches(head, entry.name):
            continue
        if tail:
            if entry.is_dir(follow_symlinks=False):
                _walk(Path(entry.path), tail, f"{prefix}{entry.name}/", found)
        elif entry.is_file():
            found.setdefault(Path(entry.path), Match(Path(entry.path), prefix + entry.name))


def destination_blob_name(path: str | None, match: Match, pattern_has_wildcard: bool) -> str:
    """Blob name for one matched file: `path` itself for a specific file, `path/relative` for a pattern;
    without `path`, the file's name (specific file) or its relative path (pattern)."""
    prefix = (path or "").strip("/")
    if not pattern_has_wildcard:
        return prefix or match.path.name
    return f"{prefix}/{match.relative}" if prefix else match.relative
