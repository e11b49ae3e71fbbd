"""Spot (low-priority) node preemption, as Azure Batch does it, on demand or at a rate.

On Batch a preempted Spot node stays in the pool in state ``preempted`` (it still counts in
``currentLowPriorityNodes`` and in ``$PreemptedNodeCount``); the tasks that were running on it go back to
``active`` with ``requeueCount`` + 1, which does not count against ``maxTaskRetryCount``; later the service gets
the capacity back and the node starts again. Dedicated nodes are never preempted.

The emulator does the same, driven by either:

- ``--preempt-rate FRACTION_PER_MINUTE`` (with ``--preempt-seed N`` for a repeatable sequence): every Spot node
  that is not already preempted is preempted with a chance that adds up to that fraction per minute;
- ``POST /_emulator/pools/{pool}/nodes/{node}/preempt`` (SharedKey, see handlers/admin.py): this node, now.

A preempted node comes back (``starting``, then ``idle`` after its start task) ``--preempt-duration`` seconds
later, or after the ``recoverAfterSeconds`` the endpoint was given.

The model half (``model/preemption.py``) owns the transitions; the
:class:`Preempter` thread only decides *when*, from a seeded random generator and a clock that tests can drive.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from devstack.batch_emulator.periodic import PeriodicThread

log = logging.getLogger("batch_emulator.preemption")

DEFAULT_DURATION = 60.0
TICK = 0.25


@dataclass(frozen=True)
class PreemptionSettings:
    rate: float = 0.0                  # expected fraction of Spot nodes preempted per minute (0-1)
    seed: int | None = None
    duration: float = DEFAULT_DURATION  # seconds a preempted node stays preempted before it comes back

    def check(self) -> None:
        """Raise ValueError naming the option when a setting is out of range."""
        if not 0 <= self.rate <= 1:
            raise ValueError(f"--preempt-rate {self.rate:g}: must be a fraction per minute from 0 to 1, e.g. 0.1 "
                             "to preempt a tenth of the Spot nodes each minute")
        if not (self.duration >= 0 and math.isfinite(self.duration)):
            raise ValueError(f"--preempt-duration {self.duration:g}: must be 0 or more seconds")


def chance_per_step(rate: float, seconds: float) -> float:
    """The chance for one node to be preempted in ``seconds`` so that ``rate`` of the nodes go per minute."""
    if rate <= 0 or seconds <= 0:
        return 0.0
    if rate >= 1:
        return 1.0
    return 1.0 - (1.0 - rate) ** (seconds / 60.0)


class Preempter:
    """A daemon thread: preempts Spot nodes at the configured rate and brings preempted nodes back.

    ``step()`` does one round and can be called directly with a fake ``clock`` (seconds, monotonic).
    """

    def __init__(self, model, settings: PreemptionSettings, clock: Callable[[], float] = time.monotonic,
                 tick: float = TICK):
        self.model = model
        self.settings = settings
        self.clock = clock
        self.random = random.Random(settings.seed)
        self.preempted = 0
        self._last: float | None = None
        self._thread = PeriodicThread("batch-emulator-preempter", self.step, tick, log, "preemption")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def step(self) -> int:
        """Preempt by chance (rate knob), then recover nodes whose time is up; returns how many were preempted."""
        now = self.clock()
        elapsed = 0.0 if self._last is None else now - self._last
        self._last = now
        done = 0
        chance = chance_per_step(self.settings.rate, elapsed)
        if chance > 0:
            for pool_key, node_id in self.model.preemptible_nodes():
                if self.random.random() < chance and self.model.preempt_if_possible(pool_key, node_id,
                                                                                      self.settings.duration):
                    done += 1
            if done:
                self.model.store.flush()
        self.preempted += done
        self.model.recover_preempted()
        return done
