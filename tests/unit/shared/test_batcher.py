"""When the Batcher adds: a lone event at once, a burst in full chunks (the clock is the fake here)."""

from __future__ import annotations

from shared.batcher import Batcher


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _arrive(b: Batcher, clock: Clock, n: int = 1, every: float = 0.0) -> None:
    for _ in range(n):
        b._items.append(("p", object(), clock.now, False, clock.now - b._last_arrival > b.lone_window))
        b._last_arrival = clock.now
        clock.now += every


def test_a_lone_event_is_added_at_once():
    clock = Clock()
    b = Batcher(None, clock=clock)
    _arrive(b, clock)
    assert b._wait_time(clock.now) == 0.0


def test_a_burst_waits_for_a_full_chunk_then_goes_at_once():
    clock = Clock()
    b = Batcher(None, hold=5.0, gap=0.5, clock=clock)
    _arrive(b, clock, 10, every=0.05)
    wait = b._wait_time(clock.now)
    assert 0 < wait <= 0.5  # until the stream pauses for the gap (or more arrive)
    _arrive(b, clock, 90, every=0.05)
    assert b._wait_time(clock.now) == 0.0  # 100 waiting: the service's limit per call


def test_a_steady_stream_is_held_at_most_the_hold():
    clock = Clock()
    b = Batcher(None, hold=5.0, gap=0.5, clock=clock)
    _arrive(b, clock, 40, every=0.1)  # 10 events a second: never a 0.5 s pause
    first = b._items[0][2]
    clock.now -= 0.1  # just after the last arrival
    assert 0 < b._wait_time(clock.now) <= first + 5.0 - clock.now + 1e-9
    clock.now = first + 5.0
    assert b._wait_time(clock.now) == 0.0


def test_after_the_burst_the_last_tasks_wait_only_for_the_gap():
    clock = Clock()
    b = Batcher(None, hold=5.0, gap=0.5, clock=clock)
    _arrive(b, clock, 30, every=0.02)
    clock.now += 0.6
    assert b._wait_time(clock.now) == 0.0


def test_a_burst_that_pauses_briefly_is_not_taken_for_a_lone_event():
    """The lone rule looks at how an item arrived, not at the moment of the check: a burst whose last item is
    0.6 s old still waits for the gap (1 s) before it is added."""
    clock = Clock()
    b = Batcher(None, hold=5.0, gap=1.0, clock=clock)
    _arrive(b, clock, 8, every=0.01)
    clock.now += 0.6
    assert b._wait_time(clock.now) > 0


def test_an_event_after_a_quiet_spell_goes_at_once_even_after_a_burst():
    clock = Clock()
    b = Batcher(None, clock=clock)
    _arrive(b, clock, 3, every=0.01)
    b._items.clear()  # the burst was added
    clock.now += 2.0
    _arrive(b, clock)
    assert b._wait_time(clock.now) == 0.0


def test_a_burst_goes_in_whole_chunks_and_the_rest_waits_for_company():
    clock = Clock()
    b = Batcher(None, hold=5.0, gap=1.0, max_batch=100, parallel=4, clock=clock)
    _arrive(b, clock, 130, every=0.01)  # 100 were due while a call was in flight; 30 more came meanwhile
    assert b._wait_time(clock.now) == 0.0
    assert b._take(clock.now) == 100  # not 100 and a call for 30
    del b._items[:100]
    assert b._wait_time(clock.now) > 0  # the 30 wait for the next ones (or their gap/hold)
    clock.now += 1.01  # the stream paused for the gap: the rest goes, whatever its number
    assert b._wait_time(clock.now) == 0.0 and b._take(clock.now) == 30


def test_a_long_backlog_goes_in_parallel_chunks_at_most():
    clock = Clock()
    b = Batcher(None, max_batch=100, parallel=4, clock=clock)
    _arrive(b, clock, 450, every=0.001)
    assert b._take(clock.now) == 400  # four calls at once; the 50 wait
    b._closed = True
    assert b._take(clock.now) == 400  # closing: everything goes, up to the parallel limit per round
