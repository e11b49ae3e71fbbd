"""pipelines.yaml `schedule:` validation, occurrence and request-id derivation (shared.schedules)."""

from datetime import UTC, datetime

import pytest
import yaml

from functions.scheduled import scheduled_pipelines
from shared import ids
from shared.errors import ConfigError
from shared.pipelines import parse_config
from shared.schedules import function_name, latest_occurrence, occurrence_key
from shared.work_items import IDEMPOTENCY_KEY
from tests.unit.shared.conftest import LOCAL, REPO


def _with_schedule(schedule):
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    transform = next(p for p in doc["pipelines"] if p["name"] == "transform")
    transform["schedule"] = schedule
    return doc


def test_schedule_parses():
    cfg = parse_config(_with_schedule({"cron": "0 30 2 * * *", "prefix": "transform/nightly/", "glob": "*.csv"}),
                       LOCAL)
    s = cfg.pipeline("transform").schedule
    assert (s.cron, s.prefix, s.glob) == ("0 30 2 * * *", "transform/nightly/", "*.csv")
    assert cfg.pipeline("wordcount").schedule is None


@pytest.mark.parametrize("schedule, message", [
    ({"prefix": "transform/"}, r"schedule\.cron: is required"),
    ({"cron": "0 2 * * *", "prefix": "transform/"}, r"schedule\.cron: '0 2 \* \* \*' is not a six-field NCRONTAB"),
    ({"cron": "0 61 2 * * *", "prefix": "transform/"}, r"schedule\.cron: .*minute value 61 is outside 0-59"),
    ({"cron": "0 0 0 31 Feb *", "prefix": "transform/"}, r"schedule\.cron: .*never occurs"),
    ({"cron": "0 0 2 * * *", "prefix": "elsewhere/"}, r"schedule\.prefix: 'elsewhere/' is outside inputs\.blob"),
    ({"cron": "0 0 2 * * *", "prefix": "transform/", "glob": ""}, r"schedule\.glob: expected a non-empty glob"),
    ({"cron": "0 0 2 * * *", "prefix": "transform/", "every": 1}, r"schedule: unknown key\(s\) every"),
    ("0 0 2 * * *", r"schedule: expected a mapping"),
])
def test_bad_schedule_names_the_field(schedule, message):
    with pytest.raises(ConfigError, match=r"pipelines\[\d\]\." + message):
        parse_config(_with_schedule(schedule), LOCAL)


def test_occurrence_key_and_request_id_are_stable_per_occurrence():
    t = datetime(2026, 12, 4, 2, 0, 0, tzinfo=UTC)
    key = occurrence_key("transform", t)
    assert key == "schedule:transform:20261204T020000Z" and IDEMPOTENCY_KEY.match(key)
    assert occurrence_key("transform", t.replace(microsecond=250000)) == key
    assert ids.request_id(key, None, "") == ids.request_id(occurrence_key("transform", t), None, "")
    assert ids.request_id(occurrence_key("transform", t.replace(day=5)), None, "") != ids.request_id(key, None, "")
    assert ids.request_id(occurrence_key("wordcount", t), None, "") != ids.request_id(key, None, "")


def test_a_late_or_repeated_firing_maps_to_the_same_occurrence():
    cron = "0 0 2 * * *"
    due = datetime(2026, 12, 4, 2, 0, 0, tzinfo=UTC)
    assert latest_occurrence(cron, due) == due
    assert latest_occurrence(cron, due.replace(second=3, microsecond=5)) == due  # fired a little late
    assert latest_occurrence(cron, due.replace(hour=9)) == due  # past due / restarted host, same day
    assert latest_occurrence(cron, due.replace(day=5, hour=2)) == due.replace(day=5)
    assert latest_occurrence("0 0 0 1 1 *", datetime(2026, 12, 4, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)


def test_function_names_are_valid_for_functions(tmp_path):
    assert function_name("nightly-report") == "scheduled_nightly_report"
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(_with_schedule({"cron": "0 0 2 * * *", "prefix": "transform/"})))
    assert scheduled_pipelines({**LOCAL, "PIPELINES_FILE": str(path)}) == {"transform": "0 0 2 * * *"}
