"""Where the local stack keeps its state: one project-local folder, so nothing outside the repo is written."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """The stack's state folder (`.devstack/` in the repo; EVENTBATCH_STATE_DIR overrides it)."""
    return Path(os.environ.get("EVENTBATCH_STATE_DIR") or REPO_ROOT / ".devstack").resolve()


def env_file() -> Path:
    return state_dir() / "env"


def logs_dir() -> Path:
    return state_dir() / "logs"


def pids_dir() -> Path:
    return state_dir() / "pids"


def image_facts_file() -> Path:
    """The image facts `up` reads from the registry, which the local host's IMAGE_CHECK_FILE names."""
    return state_dir() / "image-check.json"
