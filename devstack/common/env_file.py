"""`.devstack/env`: the stack's endpoints and well-known local credentials as shell exports (`source` it)."""

from __future__ import annotations

import shlex
from pathlib import Path

from devstack.common import paths


def write_env_file(env: dict[str, str]) -> Path:
    path = paths.env_file()
    lines = ["# eventbatch local stack: `source .devstack/env`. Well-known local credentials only."]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_env_file() -> dict[str, str] | None:
    path = paths.env_file()
    if not path.exists():
        return None
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            parts = shlex.split(value)
            env[key] = parts[0] if parts else ""
    return env
