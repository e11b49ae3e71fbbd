"""`eventbatch up` restarts the host exactly when what the host read at start (code, pipelines, settings) changed."""

from __future__ import annotations

from devstack.common import paths
from devstack.stack import host


def make_app(root):
    (root / "functions").mkdir()
    (root / "shared").mkdir()
    (root / "function_app.py").write_text("app = 1\n")
    (root / "pipelines.yaml").write_text("version: 1\n")
    (root / "functions" / "a.py").write_text("x = 1\n")
    (root / "shared" / "b.py").write_text("y = 1\n")
    settings = root / "local.settings.json"
    settings.write_text('{"Values": {"RECONCILE_SCHEDULE": "*/1 * * * * *"}}')
    return settings


def test_fingerprint_follows_code_pipelines_and_settings_only(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    settings = make_app(tmp_path)
    first = host.app_fingerprint(settings)
    assert host.app_fingerprint(settings) == first
    (tmp_path / "README.md").write_text("docs do not matter\n")
    (tmp_path / "shared" / "notes.txt").write_text("neither do non-Python files\n")
    assert host.app_fingerprint(settings) == first
    changes = [
        lambda: (tmp_path / "pipelines.yaml").write_text("version: 1\npipelines: []\n"),
        lambda: (tmp_path / "shared" / "b.py").write_text("y = 2\n"),
        lambda: (tmp_path / "functions" / "new.py").write_text(""),
        lambda: settings.write_text('{"Values": {"RECONCILE_SCHEDULE": "*/5 * * * * *"}}'),
    ]
    seen = {first}
    for change in changes:
        change()
        now = host.app_fingerprint(settings)
        assert now not in seen
        seen.add(now)


def test_local_defaults_fill_gaps_but_never_override_the_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("EVENTBATCH_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    (tmp_path / "local.settings.sample.json").write_text(
        '{"Values": {"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true", "POOL_SCALE_MODE": "autoscale"}}')
    import json

    out = json.loads(host.write_local_settings({"AZURE_STORAGE_CONNECTION_STRING": "AccountName=x;"}).read_text())
    values = out["Values"]
    assert values["POOL_SCALE_MODE"] == "autoscale"  # the sample wins
    assert values["RECONCILE_SCHEDULE"] == "*/10 * * * * *"
    assert values["AzureFunctionsJobHost__extensions__queues__maxPollingInterval"] == "00:00:02"
    assert values["EVENTBATCH_STORAGE"] == "AccountName=x;"
