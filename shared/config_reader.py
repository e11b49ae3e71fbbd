"""Typed, path-naming access to the mappings of pipelines.yaml, shared by the modules that parse its sections.

Every error is a ConfigError that names the path of the field (`pipelines[1].outputs.path`) and what is allowed.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from shared.durations import parse_duration
from shared.errors import ConfigError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RESERVED_ENV_PREFIXES = ("AZ_BATCH_", "INPUT_", "EVENTBATCH_")


class Reader:
    """Typed access to one mapping of the file, with errors that carry the path."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise ConfigError(f"pipelines.yaml {where}: expected a mapping, got {type(data).__name__}")
        self.data, self.where = data, where

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"pipelines.yaml {self.where}.{key}: {message}")

    def known(self, *keys: str) -> None:
        unknown = sorted(set(self.data) - set(keys))
        if unknown:
            raise ConfigError(f"pipelines.yaml {self.where}: unknown key(s) {', '.join(map(str, unknown))}; "
                              f"allowed: {', '.join(keys)}")

    def str(self, key: str, default: str | None = None, *, required: bool = False, pattern: re.Pattern | None = None
            ) -> str | None:
        value = self.data.get(key, default)
        if value is None or value == "":
            if required:
                raise self.fail(key, "is required")
            return default if value is None else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.fail(key, f"expected text, got {type(value).__name__}")
        if pattern and not pattern.match(value):
            raise self.fail(key, f"{value!r} does not match {pattern.pattern}")
        return value

    def int(self, key: str, default: int, low: int, high: int) -> int:
        value = self.data.get(key, default)
        try:
            if isinstance(value, bool):
                raise ValueError
            number = int(str(value).strip())
        except ValueError:
            raise self.fail(key, f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise self.fail(key, f"{number} is out of range {low}..{high}")
        return number

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.fail(key, f"{value!r} is not true or false")

    def duration(self, key: str, default: str) -> timedelta:
        try:
            return parse_duration(str(self.data.get(key, default)))
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(key, default)
        if value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def sub(self, key: str, required: bool = False) -> Reader | None:
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.fail(key, "is required")
            return None
        return Reader(self.data[key], f"{self.where}.{key}")

    def str_list(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "expected a list of non-empty strings")
        return tuple(value)

    def env(self, key: str) -> dict[str, str]:
        value = self.data.get(key) or {}
        if not isinstance(value, dict):
            raise self.fail(key, "expected a mapping of NAME: value")
        out = {}
        for name, val in value.items():
            check_env_name(str(name), f"{self.where}.{key}")
            out[str(name)] = "" if val is None else str(val)
        return out


def check_env_name(name: str, where: str) -> None:
    if not ENV_NAME.match(name):
        raise ConfigError(f"pipelines.yaml {where}: {name!r} is not a valid environment variable name")
    if name.upper().startswith(RESERVED_ENV_PREFIXES):
        raise ConfigError(f"pipelines.yaml {where}: {name!r} is reserved (names starting with "
                          f"{', '.join(RESERVED_ENV_PREFIXES)} are set by eventbatch or Batch)")
