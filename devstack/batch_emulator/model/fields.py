"""Field checkers for request bodies: required, object, list, int, bool, str, enum, duration, id, metadata, env.

Each raises BatchError naming the property (dotted path) and the reason, with Batch's error codes
(MissingRequiredProperty, InvalidPropertyValue, ...); validation.py composes them into the entity schemas.
"""

from __future__ import annotations

import posixpath
import re

from devstack.batch_emulator import errors, timeutil

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _lower_enum(value, allowed: set[str]) -> bool:
    return isinstance(value, str) and value.lower() in {a.lower() for a in allowed}


def require(body: dict, name: str, path: str = ""):
    full = f"{path}{name}"
    if not isinstance(body, dict) or body.get(name) is None:
        raise errors.missing_property(full)
    return body[name]


def check_object(value, path: str) -> dict:
    if not isinstance(value, dict):
        raise errors.invalid_property(path, value, "Expected a JSON object")
    return value


def check_list(value, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.invalid_property(path, value, "Expected a JSON array")
    return value


def check_int(body: dict, name: str, path: str = "", lo: int | None = None, hi: int | None = None):
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid_property(f"{path}{name}", value, "Expected an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise errors.invalid_property(f"{path}{name}", value, f"Must be between {lo} and {hi}")
    return value


def check_bool(body: dict, name: str, path: str = ""):
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise errors.invalid_property(f"{path}{name}", value, "Expected true or false")
    return value


def check_str(body: dict, name: str, path: str = "", max_len: int | None = None):
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.invalid_property(f"{path}{name}", value, "Expected a string")
    if max_len is not None and len(value) > max_len:
        raise errors.invalid_property(f"{path}{name}", value, f"Must be at most {max_len} characters")
    return value


def check_enum(body: dict, name: str, allowed: set[str], path: str = ""):
    value = body.get(name)
    if value is not None and not _lower_enum(value, allowed):
        raise errors.invalid_property(f"{path}{name}", value, f"Allowed values: {', '.join(sorted(allowed))}")
    return value


def check_duration(body: dict, name: str, path: str = "", minimum: float | None = None,
                   maximum: float | None = None):
    value = body.get(name)
    if value is None:
        return None
    seconds = timeutil.parse_duration(value)
    if seconds is None:
        raise errors.invalid_property(f"{path}{name}", value, "Expected an ISO 8601 duration such as PT1H")
    if (minimum is not None and seconds < minimum) or (maximum is not None and seconds > maximum):
        raise errors.invalid_property(f"{path}{name}", value, "The duration is out of the allowed range")
    return seconds


def check_id(body: dict, path: str = "") -> str:
    ident = require(body, "id", path)
    if not isinstance(ident, str) or not ID_RE.match(ident):
        raise errors.invalid_property(f"{path}id", ident, "The ID can contain letters, digits, hyphens and "
                                      "underscores only, and must be 1 to 64 characters long")
    return ident


def check_metadata(body: dict, path: str = "") -> None:
    for i, item in enumerate(check_list(body.get("metadata"), f"{path}metadata")):
        check_object(item, f"{path}metadata[{i}]")
        require(item, "name", f"{path}metadata[{i}].")
        check_str(item, "value", f"{path}metadata[{i}].")


def check_env(settings, path: str) -> None:
    for i, item in enumerate(check_list(settings, path)):
        check_object(item, f"{path}[{i}]")
        name = require(item, "name", f"{path}[{i}].")
        if not isinstance(name, str) or not name:
            raise errors.invalid_property(f"{path}[{i}].name", name, "Expected a non-empty string")
        check_str(item, "value", f"{path}[{i}].")


def check_relative_path(value: str, prop: str) -> None:
    if value.startswith("/") or value.startswith("\\"):
        raise errors.invalid_property(prop, value, "The path must be relative to the task working directory")
    norm = posixpath.normpath(value.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        raise errors.invalid_property(prop, value, "The path cannot break out of the task working directory")
