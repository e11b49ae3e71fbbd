"""Reaching the app from the CLI: --env azure, azd environments, only the settings a command uses, portal links,
--version and shell completion."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devstack import cli
from devstack.tools import access as acc
from devstack.tools.links import portal_link

# pipelines.yaml names its images by these (an azd environment carries them: WORKER_IMAGE and the registry endpoint)
IMAGES = {"WORKER_IMAGE": "ebacr.azurecr.io/eventbatch/worker:1", "REGISTRY_SERVER": "ebacr.azurecr.io"}
STORAGE_ONLY = {"EVENTBATCH_STORAGE__accountName": "mystore", **IMAGES}
RID = "/subscriptions/0000/resourceGroups/rg-eb/providers/Microsoft.Batch/batchAccounts/ebbatch"


def test_env_azure_is_a_spelling_of_env():
    assert acc.normalize_argv(["status", "--env", "azure", "--json"]) == ["status", "--env", "--json"]
    assert acc.normalize_argv(["--env=azure", "RUN"]) == ["--env", "RUN"]
    assert acc.normalize_argv(["logs", "--env", "RUN"]) == ["logs", "--env", "RUN"]  # RUN is not eaten
    assert acc.normalize_argv(["submit", "--", "--env", "azure"]) == ["submit", "--", "--env", "azure"]


def test_a_storage_reading_command_needs_no_batch_settings():
    a = acc.AppAccess.open(use_env=True, environ=STORAGE_ONLY, needs_batch=False)
    assert a.settings.batch is None
    assert not a.local_stack  # uploads to this account are never announced to a local host
    assert a.storage.blob_endpoint.startswith("https://mystore.blob.core.windows.net")
    with pytest.raises(acc.AccessError, match="without the Batch settings"):
        acc.batch_client(a)


def test_a_command_that_uses_batch_names_the_missing_setting():
    with pytest.raises(acc.AccessError, match="BATCH_ACCOUNT_URL is missing"):
        acc.AppAccess.open(use_env=True, environ=STORAGE_ONLY, needs_batch=True)
    with pytest.raises(acc.AccessError, match="EVENTBATCH_STORAGE is missing"):
        acc.AppAccess.open(use_env=True, environ={"BATCH_ACCOUNT_URL": "https://b.westeurope.batch.azure.com",
                                                  **IMAGES}, needs_batch=False)


def test_dotenv_as_azd_writes_it():
    text = '# comment\nAZURE_LOCATION="westeurope"\nQUOTED="a \\"b\\" c"\nexport PLAIN=x=y\nSINGLE=\'s\'\n\nnoequals\n'
    assert acc.parse_dotenv(text) == {"AZURE_LOCATION": "westeurope", "QUOTED": 'a "b" c', "PLAIN": "x=y",
                                      "SINGLE": "s"}


def test_azd_environment_maps_bicep_outputs_onto_app_settings(tmp_path):
    env_dir = tmp_path / ".azure" / "dev"
    env_dir.mkdir(parents=True)
    (env_dir / ".env").write_text('AZURE_STORAGE_ACCOUNT_NAME="ebstore"\nAZURE_BATCH_ACCOUNT_URL="ebbatch.westeurope.'
                                  f'batch.azure.com"\nAZURE_BATCH_ACCOUNT_RESOURCE_ID="{RID}"\nRUNS_TABLE="runs"\n'
                                  'AZURE_CONTAINER_REGISTRY_ENDPOINT="ebacr.azurecr.io"\n'
                                  'WORKER_IMAGE="ebacr.azurecr.io/eventbatch/worker:1"\n')
    settings = acc.azd_settings(acc.azd_values("dev", root=tmp_path))
    assert settings["EVENTBATCH_STORAGE__accountName"] == "ebstore"
    assert settings["BATCH_ACCOUNT_URL"] == "ebbatch.westeurope.batch.azure.com"
    assert settings["RUNS_TABLE"] == "runs"
    assert settings["REGISTRY_SERVER"] == "ebacr.azurecr.io"
    loaded = acc.load_settings(settings)
    assert loaded.batch.url == "https://ebbatch.westeurope.batch.azure.com" and loaded.batch.uses_identity
    assert loaded.batch_account_resource_id == RID


def test_azd_environment_missing_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(acc.shutil, "which", lambda name: None)
    with pytest.raises(acc.AccessError, match="azd is not installed"):
        acc.azd_values("nope", root=tmp_path)
    with pytest.raises(acc.AccessError, match="not an azd environment name"):
        acc.azd_values("../etc", root=tmp_path)


def test_azd_get_values_is_asked_when_there_is_no_env_file(tmp_path, monkeypatch):
    monkeypatch.setattr(acc.shutil, "which", lambda name: "/usr/bin/azd")
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, 'AZURE_STORAGE_ACCOUNT_NAME="fromazd"\n', "")

    assert acc.azd_values("prod", root=tmp_path, run=run) == {"AZURE_STORAGE_ACCOUNT_NAME": "fromazd"}
    assert calls == [["/usr/bin/azd", "env", "get-values", "-e", "prod"]]  # an argument list, no shell


def test_portal_link_opens_the_batch_accounts_jobs_blade():
    link = portal_link(RID, "eb-transform-20261204", "transform-abc")
    assert link == {"url": f"https://portal.azure.com/#resource{RID}/jobs", "jobId": "eb-transform-20261204",
                    "taskId": "transform-abc"}
    assert portal_link(None, "job", "task") is None and portal_link(RID, None, None) is None


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"eventbatch {cli.version()}"


def test_completion_script_for_bash_and_zsh(capsys):
    assert cli.main(["completion", "bash"]) == 0
    assert "complete " in capsys.readouterr().out
    assert cli.main(["completion", "zsh"]) == 0
    assert "#compdef eventbatch" in capsys.readouterr().out


def test_completion_knows_the_delegated_commands_options():
    """What the shell gets for `eventbatch wait --ti<TAB>` and `eventbatch status --state f<TAB>`."""
    def complete(line: str) -> list[str]:
        env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
               "_ARGCOMPLETE_IFS": " "}
        proc = subprocess.run(["bash", "-c", f"'{sys.executable}' -m devstack.cli 8>&1 9>/dev/null"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert complete("eventbatch wait --ti") == ["--timeout"]
    assert complete("eventbatch status --state f") == ["failed"]
    assert complete("eventbatch metrics --si") == ["--since"]
    assert "wait" in complete("eventbatch w")
