from datetime import timedelta

import pytest
import yaml

from shared.errors import ConfigError
from shared.pipelines import load_config, parse_config, substitute
from tests.unit.shared.conftest import LOCAL, REPO


def _doc():
    return yaml.safe_load((REPO / "pipelines.yaml").read_text())


def test_repo_file_loads_with_local_settings(config):
    transform = config.pipeline("transform")
    assert transform.image == LOCAL["WORKER_IMAGE"] and transform.blob_input.prefix == "transform/"
    assert transform.max_wall_clock_time == timedelta(minutes=10) and transform.retries == 1
    assert config.pipeline("wordcount").merge.command_line == "/app/merge.sh"
    pool = config.pools["eventbatch-standard"]
    assert pool.images == (LOCAL["WORKER_IMAGE"],) and pool.registries[0].username == "eventbatch"
    assert pool.scale.mode == "autoscale" and pool.scale.dedicated_nodes == 2  # "${POOL_FIXED_NODES:-2}" -> int


def test_defaults_and_settings_substitute():
    cfg = load_config(REPO / "pipelines.yaml", {**LOCAL, "POOL_SCALE_MODE": "fixed", "POOL_FIXED_NODES": "3",
                                                  "INPUT_CONTAINER": "drop"})
    assert cfg.pools["eventbatch-standard"].scale.mode == "fixed"
    assert cfg.pools["eventbatch-standard"].scale.dedicated_nodes == 3
    assert cfg.pipeline("transform").blob_input.container == "drop"


def test_unset_setting_without_default_names_it():
    with pytest.raises(ConfigError, match=r"\$\{WORKER_IMAGE\} is not set.*app setting WORKER_IMAGE"):
        load_config(REPO / "pipelines.yaml", {k: v for k, v in LOCAL.items() if k != "WORKER_IMAGE"})


def test_substitution_cannot_inject_structure():
    out = substitute({"a": "${X}"}, {"X": "{b: 1}\nc: 2"})
    assert out == {"a": "{b: 1}\nc: 2"}


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d["pipelines"][0].update(pool="nope"), r"pipelines\[0\].pool: 'nope' is not a pool"),
    (lambda d: d["pipelines"][0].update(colour="red"), r"pipelines\[0\]: unknown key\(s\) colour"),
    (lambda d: d["pipelines"][0].update(overridable=["image"]), "image cannot be overridden"),
    (lambda d: d["pipelines"][0]["outputs"].update(path="{pipeline}/{who}"), r"unknown field \{who\}"),
    (lambda d: d["pipelines"][0]["outputs"].update(path="../{input}"), "without '..'"),
    (lambda d: d["pipelines"][0].update(maxWallClockTime="10m"), "maxWallClockTime.*ISO 8601"),
    (lambda d: d["pipelines"][0].update(environment={"INPUT_NAME": "x"}), "reserved"),
    (lambda d: d["pipelines"][0].update(name="Bad Name"), r"pipelines\[0\].name"),
    (lambda d: d["pipelines"][1].update(name="transform"), "duplicate pipeline name"),
    (lambda d: d["pipelines"][0].update(requiredSlots=9), "exceeds taskSlotsPerNode"),
    (lambda d: d["pools"][0]["scale"].update(mode="magic"), "scale.mode: 'magic' is not one of"),
    (lambda d: d["pipelines"][0].update(inputs={}), "needs inputs.blob"),
])
def test_schema_errors_name_the_path(mutate, match):
    doc = _doc()
    mutate(doc)
    with pytest.raises(ConfigError, match=match):
        parse_config(doc, LOCAL)


def test_invalid_yaml_is_a_config_error(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("pools: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p, {})


def test_enabled_must_be_true_or_false():
    doc = _doc()
    doc["pools"][0]["enabled"] = "maybe"
    with pytest.raises(ConfigError, match=r"pools\[0\]\.enabled.*'maybe' is not true or false"):
        parse_config(doc, LOCAL)
    doc = _doc()
    doc["pipelines"][0]["enabled"] = "no"
    with pytest.raises(ConfigError, match=r"pipelines\[0\]\.enabled.*'no' is not true or false"):
        parse_config(doc, LOCAL)
