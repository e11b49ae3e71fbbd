"""Randomized exponential polling back-off, as the queue listener uses between empty polls."""

import random

MIN_POLL = 0.1


class Backoff:
    """100 ms, then x2 with +-20 % jitter per empty poll, capped at ``maximum``; reset when work is found."""

    def __init__(self, maximum: float, minimum: float = MIN_POLL, rng: random.Random | None = None):
        self.minimum = minimum
        self.maximum = max(maximum, minimum)
        self._rng = rng or random.Random()
        self._current = minimum

    def reset(self) -> None:
        self._current = self.minimum

    def next_delay(self) -> float:
        """Delay to sleep after an empty poll (and grow the next one)."""
        delay = self._current
        grown = self._current * 2 * self._rng.uniform(0.8, 1.2)
        self._current = min(self.maximum, max(self.minimum, grown))
        return delay
