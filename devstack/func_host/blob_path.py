"""Blob trigger path patterns: ``container/prefix/{name}.ext``.

Each ``{x}`` is a greedy match that may span slashes (``input/{name}`` on ``input/a/b.txt`` gives
``name="a/b.txt"``), ``{{`` and ``}}`` are literal braces, and ``%Setting%`` is resolved from app settings
before the pattern is parsed. The container part must be a literal name, as the host requires.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from devstack.func_host.app_settings import resolve_percent_settings
from devstack.func_host.errors import ConfigError

_CONTAINER = re.compile(r"^(\$root|\$logs|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$")


@dataclass(frozen=True)
class BlobPath:
    pattern: str
    container: str
    prefix: str  # literal text before the first parameter; used to narrow container listings
    regex: re.Pattern

    def match(self, blob_name: str) -> dict[str, str] | None:
        """Parameters bound from ``blob_name`` or None if the blob is not one this trigger watches."""
        found = self.regex.fullmatch(blob_name)
        return None if found is None else found.groupdict()


def parse_blob_path(path: str, where: str, environ: Mapping[str, str] | None = None) -> BlobPath:
    resolved = resolve_percent_settings(path or "", environ, where=f"{where} path")
    container, sep, blob_pattern = resolved.strip().partition("/")
    if "{" in container or not _CONTAINER.match(container):
        raise ConfigError(f"{where}: blob path {path!r} must start with a literal, valid container name "
                          "(3-63 lowercase letters, digits, dashes), e.g. 'input/{name}'")
    regex, prefix = _compile(blob_pattern if sep else "{name}", path, where)
    return BlobPath(resolved, container, prefix, regex)


def _compile(pattern: str, original: str, where: str) -> tuple[re.Pattern, str]:
    parts: list[str] = []
    prefix: list[str] = []
    seen_param = False
    names: set[str] = set()
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("{{", i) or pattern.startswith("}}", i):
            parts.append(re.escape(ch))
            if not seen_param:
                prefix.append(ch)
            i += 2
        elif ch == "{":
            end = pattern.find("}", i)
            name = pattern[i + 1:end] if end > 0 else ""
            if end < 0 or not name.isidentifier():
                raise ConfigError(f"{where}: blob path {original!r} has a malformed parameter near {pattern[i:]!r}; "
                                  "use {name} with a valid identifier, or {{ }} for literal braces")
            group = name if name not in names else None
            names.add(name)
            parts.append(f"(?P<{group}>.+)" if group else ".+")
            seen_param = True
            i = end + 1
        elif ch == "}":
            raise ConfigError(f"{where}: blob path {original!r} has an unmatched '}}'; use '}}}}' for a literal brace")
        else:
            parts.append(re.escape(ch))
            if not seen_param:
                prefix.append(ch)
            i += 1
    return re.compile("".join(parts), re.DOTALL), "".join(prefix)
