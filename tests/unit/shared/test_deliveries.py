"""shared.deliveries: the host's maxDequeueCount, read as the host reads it (host.json, then the app setting)."""

import json

import pytest

from shared.deliveries import OVERRIDE, is_last_delivery, max_dequeue_count
from shared.errors import ConfigError


def _host_json(tmp_path, queues: dict):
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    return path


def test_the_apps_host_json_says_five_deliveries():
    assert max_dequeue_count({}) == 5
    assert not is_last_delivery(4, {}) and is_last_delivery(5, {})


def test_the_app_setting_overrides_host_json_case_insensitively(tmp_path):
    path = _host_json(tmp_path, {"maxDequeueCount": 7})
    assert max_dequeue_count({}, path) == 7
    assert max_dequeue_count({OVERRIDE: "2"}, path) == 2
    assert max_dequeue_count({OVERRIDE.lower(): "3"}, path) == 3
    assert is_last_delivery(2, {OVERRIDE: "2"})


def test_a_host_json_without_the_setting_uses_the_hosts_default(tmp_path):
    assert max_dequeue_count({}, _host_json(tmp_path, {"batchSize": 4})) == 5
    assert max_dequeue_count({}, tmp_path / "missing.json") == 5


@pytest.mark.parametrize("value", ["zero", "0", "-1"])
def test_a_bad_override_names_the_setting(value):
    with pytest.raises(ConfigError, match=OVERRIDE):
        max_dequeue_count({OVERRIDE: value})
