"""The image sanity rules (shared/image_rules.py): each rule on its own, pure, plus the app's start-up check."""

from __future__ import annotations

import json

import pytest
import yaml

from shared.errors import ConfigError
from shared.image_rules import (
    FAIL,
    NA,
    PASS,
    UNKNOWN,
    ImageFacts,
    Step,
    check_config,
    check_startup,
    dump_facts,
    load_facts,
    parse_reference,
    rule_entrypoint_missing,
    rule_entrypoint_with_command,
    rule_relative_command,
    rule_relative_input,
    rule_shell_missing,
    rule_untagged,
    rule_workdir_mismatch,
    run_option_workdir,
)
from shared.pipelines import parse_config
from tests.unit.shared.conftest import LOCAL, REPO

IMG = "127.0.0.1:5055/eventbatch/worker:1"


def step(command="/app/run.sh", *, kind="task", image=IMG, wd="taskWorkingDirectory", options=""):
    return Step("p", kind, image, command, wd, options)


def facts(entrypoint=(), cmd=("/bin/sh",), workdir="", has_shell=True, image=IMG):
    return ImageFacts(reference=image, digest="sha256:" + "0" * 64, workdir=workdir, entrypoint=tuple(entrypoint),
                      cmd=tuple(cmd), has_shell=has_shell)


# ---- untagged-image ----
@pytest.mark.parametrize("image,registry,repo,tag,digest", [
    ("127.0.0.1:5055/eventbatch/worker:1", "127.0.0.1:5055", "eventbatch/worker", "1", ""),
    ("127.0.0.1:5055/eventbatch/worker", "127.0.0.1:5055", "eventbatch/worker", "", ""),
    ("myacr.azurecr.io/a/b@sha256:" + "a" * 64, "myacr.azurecr.io", "a/b", "", "sha256:" + "a" * 64),
    ("ubuntu", "docker.io", "library/ubuntu", "", ""),
    ("ubuntu:24.04", "docker.io", "library/ubuntu", "24.04", ""),
    ("localhost/x:2", "localhost", "x", "2", ""),
])
def test_parse_reference(image, registry, repo, tag, digest):
    ref = parse_reference(image)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)


def test_untagged_image_fails_and_registry_port_is_not_a_tag():
    assert rule_untagged(step(image="127.0.0.1:5055/eventbatch/worker"), None).status == FAIL
    assert rule_untagged(step(image="ubuntu"), None).status == FAIL
    assert rule_untagged(step(image=IMG), None).status == PASS
    assert rule_untagged(step(image="r.io/a@sha256:" + "b" * 64), None).status == PASS
    assert rule_untagged(step(image="r.io/a@md5:zz"), None).status == FAIL


# ---- entrypoint-missing ----
def test_entrypoint_mode_needs_an_entrypoint():
    v = rule_entrypoint_missing(step(""), facts(entrypoint=()))
    assert v.status == FAIL and "no ENTRYPOINT" in v.message and "pipeline p" in v.message
    assert rule_entrypoint_missing(step(""), facts(entrypoint=("/app/hello.sh",))).status == PASS
    assert rule_entrypoint_missing(step("/app/x"), facts()).status == NA
    assert rule_entrypoint_missing(step(""), None).status == UNKNOWN


def test_commandline_on_an_entrypoint_image_becomes_its_arguments():
    assert rule_entrypoint_with_command(step("/app/x"), facts(entrypoint=("/app/e",))).status == FAIL
    assert rule_entrypoint_with_command(step("/app/x", options="--entrypoint /bin/sh"),
                                        facts(entrypoint=("/app/e",))).status == PASS
    assert rule_entrypoint_with_command(step("/app/x"), facts()).status == PASS
    assert rule_entrypoint_with_command(step(""), facts(entrypoint=("/app/e",))).status == NA


# ---- relative-command ----
@pytest.mark.parametrize("command,status", [
    ("/app/transform.sh", PASS), ("transform.sh", FAIL), ("./transform.sh", FAIL), ("python run.py", FAIL),
    ("/bin/sh -c 'python run.py'", PASS), ("/bin/sh -c 'unclosed", FAIL),
])
def test_command_program_must_be_absolute(command, status):
    assert rule_relative_command(step(command), None).status == status


def test_entrypoint_program_must_be_absolute_too():
    assert rule_relative_command(step(""), facts(entrypoint=("hello.sh",))).status == FAIL
    assert rule_relative_command(step(""), facts(entrypoint=("/app/hello.sh",))).status == PASS
    assert rule_relative_command(step(""), None).status == UNKNOWN


# ---- relative-input ----
def test_image_default_workdir_with_relative_input_path():
    v = rule_relative_input(step("", wd="containerImageDefault"), None)
    assert v.status == FAIL and "INPUT_PATH" in v.message
    assert rule_relative_input(step("/app/x", wd="containerImageDefault"), None).status == PASS  # wrapper
    assert rule_relative_input(step("", wd="taskWorkingDirectory"), None).status == NA
    assert rule_relative_input(step("", kind="merge", wd="containerImageDefault"), None).status == PASS


# ---- shell-missing ----
def test_wrapper_needs_bin_sh():
    assert rule_shell_missing(step("/app/x"), facts(has_shell=False)).status == FAIL
    assert rule_shell_missing(step("/app/x"), facts(has_shell=True)).status == PASS
    assert rule_shell_missing(step("/app/x"), facts(has_shell=None)).status == UNKNOWN
    assert rule_shell_missing(step(""), facts(has_shell=False)).status == NA  # ENTRYPOINT mode: no wrapper
    assert rule_shell_missing(step("/app/x", kind="merge"), facts(has_shell=False)).status == NA


# ---- workdir-mismatch ----
@pytest.mark.parametrize("options,expected", [
    ("--rm --workdir /app", "/app"), ("-w /data", "/data"), ("--workdir=/x --workdir /y", "/y"), ("--rm", None),
])
def test_run_option_workdir(options, expected):
    assert run_option_workdir(options) == expected


def test_workdir_option_must_match_the_image_workdir():
    image_default = dict(wd="containerImageDefault")
    assert rule_workdir_mismatch(step(options="--workdir /app", **image_default), facts(workdir="/srv")).status == FAIL
    assert rule_workdir_mismatch(step(options="--workdir /app/", **image_default),
                                 facts(workdir="/app")).status == PASS
    assert rule_workdir_mismatch(step(options="--workdir /", **image_default), facts(workdir="")).status == PASS
    assert rule_workdir_mismatch(step(options="--workdir /app"), facts(workdir="/srv")).status == NA
    assert rule_workdir_mismatch(step(options="--workdir /app", **image_default), None).status == UNKNOWN


# ---- the whole config, and the app at start-up ----
def _config(**changes):
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"][0].update(changes)
    return parse_config(doc, LOCAL)


def test_sample_pipelines_pass_with_the_sample_image_facts():
    config = _config()
    image_facts = {p.image: facts(image=p.image) for p in config.pipelines.values()}
    for p in config.pipelines.values():
        if not p.command_line:
            image_facts[p.image] = facts(entrypoint=("/app/hello.sh",), cmd=(), image=p.image)
    reports = check_config(config, image_facts)
    assert reports and not [v for r in reports for v in r.failed]


def test_startup_refuses_a_config_only_failure_naming_rule_and_pipeline(tmp_path):
    config = _config(commandLine="transform.sh")
    with pytest.raises(ConfigError, match=r"pipeline transform: rule relative-command"):
        check_startup(config, {}, tmp_path / "pipelines.yaml")


def test_startup_uses_the_facts_file_for_image_rules(tmp_path):
    config = _config(commandLine="")
    check_startup(config, {}, tmp_path / "pipelines.yaml")  # no facts: the image rules cannot be decided
    (tmp_path / "image-check.json").write_text(dump_facts([facts(image=IMG)]))
    with pytest.raises(ConfigError, match=r"pipeline transform: rule entrypoint-missing"):
        check_startup(config, {}, tmp_path / "pipelines.yaml")


def test_facts_file_setting_must_exist_and_be_readable(tmp_path):
    with pytest.raises(ConfigError, match="setting IMAGE_CHECK_FILE.*does not exist"):
        check_startup(_config(), {"IMAGE_CHECK_FILE": str(tmp_path / "nope.json")}, None)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 99, "images": {}}))
    with pytest.raises(ConfigError, match="not an image check file"):
        load_facts(bad)
    good = tmp_path / "good.json"
    good.write_text(dump_facts([facts(entrypoint=("/e",))]))
    assert load_facts(good)[IMG].entrypoint == ("/e",)


def test_the_app_refuses_to_start_a_pipeline_that_failed_the_image_check(tmp_path):
    """create_context (what every function's get_context() runs first) stops before any client is made."""
    from shared.context import create_context
    from shared.settings import load_settings
    from tests.unit.shared.test_settings import BATCH

    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"][0]["commandLine"] = ""
    (tmp_path / "pipelines.yaml").write_text(yaml.safe_dump(doc))
    facts_file = tmp_path / "facts.json"
    facts_file.write_text(dump_facts([facts(image=IMG)]))  # the worker image: no ENTRYPOINT
    env = {"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true", **BATCH, **LOCAL,
           "PIPELINES_FILE": str(tmp_path / "pipelines.yaml"), "IMAGE_CHECK_FILE": str(facts_file)}
    with pytest.raises(ConfigError, match=r"pipeline transform: rule entrypoint-missing: .*no ENTRYPOINT"):
        create_context(load_settings(env), batch_client=object(), ensure_resources=False)


def test_disabled_pipelines_are_not_checked():
    """The GPU pipeline is off by default: its steps are not checked (its image need not exist yet), the rest are."""
    from shared.image_rules import all_steps, disabled

    config = _config()
    assert disabled(config) == ["gpuinfo"]
    assert "gpuinfo" not in {s.pipeline for s in all_steps(config)}
    assert {"transform", "greet"} <= {s.pipeline for s in all_steps(config)}
