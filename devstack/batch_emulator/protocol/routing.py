"""Matching a request path against a URL table of ``(method, pattern, handler)`` rows (handlers/routes.py).

Patterns are lists of literal segments (matched case-insensitively, as Batch does) and ``{name}`` captures;
``{path*}`` captures the rest (task file paths).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class Router:
    def __init__(self, table: Iterable[tuple[str, str, Callable]]):
        self._compiled = [(m, p.split("/"), fn) for m, p, fn in table]

    def match(self, method: str, segments: list[str]):
        """(handler, params) for a request, (None, None) for an unknown path, (False, None) for a wrong method."""
        path_known = False
        for m, pattern, fn in self._compiled:
            params = _match(pattern, segments)
            if params is None:
                continue
            path_known = True
            if m == method:
                return fn, params
        return (False, None) if path_known else (None, None)


def _match(pattern: list[str], segments: list[str]) -> dict | None:
    params = {}
    for i, part in enumerate(pattern):
        if part.endswith("*}"):
            if i >= len(segments):
                return None
            params[part[1:-2]] = "/".join(segments[i:])
            return params
        if i >= len(segments):
            return None
        if part.startswith("{"):
            params[part[1:-1]] = segments[i]
        elif part != segments[i].lower():
            return None
    return params if len(pattern) == len(segments) else None
