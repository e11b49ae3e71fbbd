"""The local stack's ports (EVENTBATCH_*_PORT overrides each) and the Python that runs its Python services."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from devstack.stack.processes import StackError

PY = sys.executable


@dataclass(frozen=True)
class Ports:
    blob: int = 10000
    queue: int = 10001
    table: int = 10002
    registry: int = 5055
    batch: int = 8095

    @classmethod
    def from_env(cls) -> Ports:
        def port(name: str, default: int) -> int:
            raw = os.environ.get(name)
            if not raw:
                return default
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise StackError(f"{name}={raw!r} is not a port number (1-65535)")
            return int(raw)

        return cls(
            port("EVENTBATCH_AZURITE_BLOB_PORT", 10000),
            port("EVENTBATCH_AZURITE_QUEUE_PORT", 10001),
            port("EVENTBATCH_AZURITE_TABLE_PORT", 10002),
            port("EVENTBATCH_REGISTRY_PORT", 5055),
            port("EVENTBATCH_BATCH_PORT", 8095),
        )
