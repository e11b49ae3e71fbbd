"""Which blob names eventbatch accepts, and the safe local file name an input gets on the node.

Blob names are untrusted: anyone who can write to the input container chooses them. A name is accepted when it can
travel as data without being reinterpreted anywhere on its way: in an environment variable (INPUT_NAME), as part of
an output blob path, in a Table entity and in a JSON manifest. Spaces, quotes, `$(...)`, `;`, backticks and any
printable Unicode are data and are kept exactly. Rejected, with a reason: control characters (a newline would split
log lines and `read`-style loops), path segments `.`/`..`/empty and backslashes (they change meaning when a path is
normalised, so the output would land somewhere else), and names too long for the output path.
The file the task reads is never named after the blob unless the blob's last segment is plainly safe.
"""

from __future__ import annotations

import re
import unicodedata

from shared.errors import Rejection

MAX_BLOB_NAME = 1024
# A blob container name (Azure Storage and Azurite): 3-63 lower-case letters, digits and single hyphens.
CONTAINER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_SAFE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SAFE_EXT = re.compile(r"\.[A-Za-z0-9]{1,10}$")


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "") or {"\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\t": "TAB"}.get(ch, "control")
    return f"U+{ord(ch):04X} {name.lower()}"


def check_blob_name(name: str, what: str = "blob name") -> None:
    """Rejection('unsafe-name', ...) when `name` cannot be carried safely; otherwise it is kept byte for byte."""
    if not isinstance(name, str) or not name:
        raise Rejection("unsafe-name", f"the {what} is empty")
    if len(name) > MAX_BLOB_NAME:
        raise Rejection("unsafe-name", f"the {what} is {len(name)} characters long; at most {MAX_BLOB_NAME} are "
                                       "allowed")
    for pos, ch in enumerate(name):
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs") or (cat == "Cf" and ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"):
            raise Rejection("unsafe-name", f"the {what} contains a control character ({_describe(ch)}) at "
                                           f"position {pos}; rename the blob without control characters")
    if "\\" in name:
        raise Rejection("unsafe-name", f"the {what} contains a backslash, which some tools read as a path "
                                       "separator; rename the blob using '/' only")
    segments = name.split("/")
    if name.startswith("/") or any(seg in ("", ".", "..") for seg in segments):
        raise Rejection("unsafe-name", f"the {what} has an empty, '.' or '..' path segment, which would be "
                                       "normalised away and could escape its folder; rename the blob")


def local_file_name(name: str) -> str:
    """The file name the input gets in the task's `in/` folder: the blob's last segment when it is plainly safe,
    otherwise `input` plus a plain extension. The exact blob name still reaches the task in INPUT_NAME."""
    last = name.rsplit("/", 1)[-1]
    if _SAFE_FILE.match(last):
        return last
    m = _SAFE_EXT.search(last)
    return "input" + (m.group(0) if m else "")
