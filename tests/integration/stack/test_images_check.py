"""`eventbatch images check` against the stack's real registry (htpasswd auth, OCI manifests pushed by podman):
the sample pipelines pass; a pipeline in ENTRYPOINT mode on an image without ENTRYPOINT fails, naming the rule;
an image without /bin/sh fails shell-missing, decided from its layers."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml

from devstack.common.registry_client import RegistryAuth, RegistryClient, RegistryError, read_facts
from shared.image_rules import parse_reference

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def cli(stack, *args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it, with the stack's settings in the environment (--env)."""
    import os

    env = {**os.environ, **stack.env}
    return subprocess.run([sys.executable, "-m", "devstack.cli", "images", "check", "--env", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def test_sample_pipelines_pass(stack):
    result = cli(stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "images check passed" in result.stdout
    assert "pipeline transform  ok" in result.stdout and "WORKDIR     /" in result.stdout
    report = json.loads(cli(stack, "--json").stdout)
    assert report["ok"] and {s["pipeline"] for s in report["steps"]} >= {"transform", "wordcount", "noop"}
    entry = [s for s in report["steps"] if s["entrypoint"]]
    assert entry and all(v["status"] != "FAIL" for s in entry for v in s["verdicts"])  # the ENTRYPOINT sample


def test_empty_command_line_on_an_image_without_entrypoint_fails_naming_the_rule(stack, tmp_path):
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    broken = {**doc["pipelines"][0], "name": "broken", "commandLine": "", "image": "${WORKER_IMAGE}"}
    broken["inputs"] = {"queue": True}
    doc["pipelines"] = [broken]
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc))
    facts_file = tmp_path / "image-check.json"
    result = cli(stack, "--pipelines", str(path), "--write", str(facts_file))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL     entrypoint-missing" in result.stdout
    assert "pipeline broken: entrypoint-missing:" in result.stdout and "images check FAILED" in result.stdout
    # the facts it wrote make the app refuse the pipeline at start-up
    from shared.errors import ConfigError
    from shared.image_rules import check_startup
    from shared.pipelines import load_config

    with pytest.raises(ConfigError, match="pipeline broken: rule entrypoint-missing"):
        check_startup(load_config(path, stack.env), {"IMAGE_CHECK_FILE": str(facts_file)}, path)


def _push_rootfs(stack, ref: str, files: dict[str, bytes], entrypoint: str | None = None) -> None:
    from devstack.stack.engine import Engine

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    engine = Engine(stack.runtime, stack.container_env())
    changes = ["--change", "WORKDIR /srv"] + (["--change", f'ENTRYPOINT ["{entrypoint}"]'] if entrypoint else [])
    engine.run("import", *changes, "-", ref, input_=buf.getvalue())
    tls = ["--tls-verify=false"] if stack.runtime == "podman" else []
    engine.run("push", *tls, "--creds", f"{stack.registry_username}:{stack.registry_password}", ref)
    engine.run("rmi", "-f", ref, check=False)


def test_image_without_a_shell_fails_shell_missing_from_its_layers(stack, tmp_path):
    ref = f"{stack.registry_server}/eventbatch/noshell:{uuid.uuid4().hex[:8]}"
    _push_rootfs(stack, ref, {"app/run": b"\x7fELF not really\n"})
    client = RegistryClient(stack.registry_server, RegistryAuth(stack.registry_username, stack.registry_password))
    facts = read_facts(client, parse_reference(ref), ref)
    assert facts.has_shell is False and facts.workdir == "/srv" and facts.entrypoint == ()
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"] = [{**doc["pipelines"][0], "image": ref, "commandLine": "/app/run"}]
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = cli(stack, "--pipelines", str(path))
    assert result.returncode == 1 and "FAIL     shell-missing" in result.stdout, result.stdout


def test_wrong_credentials_and_missing_images_say_what_to_do(stack):
    ref = parse_reference(stack.worker_image)
    with pytest.raises(RegistryError, match="refused the credentials"):
        RegistryClient(stack.registry_server, RegistryAuth(stack.registry_username, "wrong")).manifest(
            ref.repository, ref.tag)
    with pytest.raises(RegistryError, match="wants a username and password"):
        RegistryClient(stack.registry_server).manifest(ref.repository, ref.tag)
    good = RegistryClient(stack.registry_server, RegistryAuth(stack.registry_username, stack.registry_password))
    with pytest.raises(RegistryError, match="not found"):
        good.manifest(ref.repository, "no-such-tag")


def test_unreachable_registry_is_skippable(stack, tmp_path):
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"] = [{**doc["pipelines"][0], "image": "127.0.0.1:9/eventbatch/worker:1"}]
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert cli(stack, "--pipelines", str(path)).returncode == 1
    skipped = cli(stack, "--pipelines", str(path), "--skip-unreachable")
    assert skipped.returncode == 3 and "not reachable" in skipped.stdout, skipped.stdout


def test_predeploy_hook_stops_a_deployment_whose_image_fails_a_rule(stack, tmp_path):
    """infra/hooks/predeploy.sh runs the same check (settings from the environment, as azd passes them)."""
    import os

    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"] = [{**doc["pipelines"][0], "commandLine": ""}]  # the worker image has no ENTRYPOINT
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc))
    env = {**os.environ, **stack.env, "PIPELINES_FILE": str(path),
           "EVENTBATCH_IMAGE_CHECK_OUT": str(tmp_path / "image-check.json")}
    hook = [str(REPO / "infra" / "hooks" / "predeploy.sh")]
    failed = subprocess.run(["sh", *hook], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "entrypoint-missing" in failed.stdout, failed.stdout + failed.stderr
    env["PIPELINES_FILE"] = str(REPO / "pipelines.yaml")
    passed = subprocess.run(["sh", *hook], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert passed.returncode == 0 and "images check passed" in passed.stdout, passed.stdout + passed.stderr
    assert set(json.loads((tmp_path / "image-check.json").read_text())["images"]) >= {stack.worker_image}
