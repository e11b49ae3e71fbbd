"""NCRONTAB parsing and next-occurrence rules the timer trigger relies on."""

from datetime import UTC, datetime

import pytest

from shared.errors import ConfigError
from shared.ncrontab import CronSchedule, IntervalSchedule, min_interval, parse_schedule


def at(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("expr, after, expected", [
    ("0 */5 * * * *", at(2024, 1, 1, 0, 3, 7), at(2024, 1, 1, 0, 5, 0)),
    ("0 */5 * * * *", at(2024, 1, 1, 0, 5, 0), at(2024, 1, 1, 0, 10, 0)),  # strictly after
    ("*/15 * * * * *", at(2024, 1, 1, 0, 0, 44), at(2024, 1, 1, 0, 0, 45)),
    ("0 30 9 * * Mon-Fri", at(2024, 6, 7, 10, 0, 0), at(2024, 6, 10, 9, 30, 0)),  # Fri after 9:30 -> Monday
    ("0 0 12 * * 0", at(2024, 6, 3), at(2024, 6, 9, 12)),  # Sunday is 0
    ("0 0 12 * * 7", at(2024, 6, 3), at(2024, 6, 9, 12)),  # and 7
    ("0 0 0 1 Jan,Jul *", at(2024, 2, 1), at(2024, 7, 1)),
    ("0 0 0 29 Feb *", at(2023, 3, 1), at(2024, 2, 29)),  # leap day
    ("0 0 8-10/2 * * *", at(2024, 1, 1, 8, 0, 1), at(2024, 1, 1, 10, 0, 0)),
    ("5,35 * * * * *", at(2024, 1, 1, 0, 0, 36), at(2024, 1, 1, 0, 1, 5)),
    ("10/20 * * * * *", at(2024, 1, 1, 0, 0, 31), at(2024, 1, 1, 0, 0, 50)),  # a/n: from a, every n
    ("0 0 0 13 * Fri", at(2024, 1, 1), at(2024, 9, 13)),  # day AND weekday, as NCrontab
    ("0 0 0 31 Dec *", at(2024, 12, 31, 0, 0, 0), at(2025, 12, 31)),
    ("0 0 0 * * sunday", at(2024, 6, 3), at(2024, 6, 9)),
])
def test_next_occurrence(expr, after, expected):
    assert parse_schedule(expr).next_after(after) == expected


def test_schedule_that_never_fires_returns_none():
    assert parse_schedule("0 0 0 31 Feb *").next_after(at(2024, 1, 1)) is None


def test_naive_times_are_not_accepted_silently_as_local_time():
    schedule = parse_schedule("0 0 * * * *")
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(datetime(2024, 1, 1, 10, 30, tzinfo=UTC)).hour == 11


@pytest.mark.parametrize("expr, fragment", [
    ("0 */5 * * *", "six fields"),
    ("0 0 0 0 0 0 0", "six fields"),
    ("60 * * * * *", "second value 60 is outside 0-59"),
    ("0 0 25 * * *", "hour value 25"),
    ("0 0 0 * Foo *", "'Foo' is not a valid month"),
    ("*/0 * * * * *", "step '0'"),
    ("0 10-5 * * * *", "runs backwards"),
    ("0 ,5 * * * *", "empty list item"),
])
def test_invalid_expressions_name_the_field(expr, fragment):
    with pytest.raises(ConfigError) as err:
        parse_schedule(expr)
    assert fragment in str(err.value) and expr in str(err.value)


def test_timespan_schedule_is_an_interval():
    schedule = parse_schedule("00:00:30")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(at(2024, 1, 1)) == at(2024, 1, 1, 0, 0, 30)


def test_min_interval_decides_use_monitor_default():
    assert min_interval(parse_schedule("*/2 * * * * *"), at(2024, 1, 1)) == 2
    assert min_interval(parse_schedule("0 0 * * * *"), at(2024, 1, 1)) == 3600
