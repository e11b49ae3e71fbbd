"""pipelines.yaml `preparation:` (a per-node step, the pipeline job's jobPreparationTask)."""

import pytest
import yaml

from shared.errors import ConfigError
from shared.pipeline_preparation import job_preparation_task
from shared.pipelines import parse_config
from tests.unit.shared.conftest import LOCAL, REPO


def _config(prep):
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"][0]["preparation"] = prep
    return parse_config(doc, LOCAL), doc["pipelines"][0]["name"]


def test_preparation_parses_and_becomes_the_jobs_preparation_task():
    cfg, name = _config({"commandLine": "/bin/sh -c 'cp model.bin $AZ_BATCH_NODE_SHARED_DIR/'",
                         "resourceFiles": [{"httpUrl": "https://example.com/m.bin", "filePath": "model.bin"}],
                         "waitForSuccess": False, "retries": 2, "environment": {"MODEL": "small"}})
    pipeline = cfg.pipeline(name)
    task = job_preparation_task(pipeline.preparation, pipeline)
    assert task == {
        "id": "jobpreparation", "commandLine": "/bin/sh -c 'cp model.bin $AZ_BATCH_NODE_SHARED_DIR/'",
        "containerSettings": {"imageName": pipeline.image, "workingDirectory": "taskWorkingDirectory",
                              **({"containerRunOptions": pipeline.container_run_options}
                                 if pipeline.container_run_options else {})},
        "waitForSuccess": False, "constraints": {"maxTaskRetryCount": 2},
        "resourceFiles": [{"httpUrl": "https://example.com/m.bin", "filePath": "model.bin"}],
        "environmentSettings": [{"name": "MODEL", "value": "small"}]}


def test_defaults_and_own_image():
    cfg, name = _config({"commandLine": "/prep.sh", "image": "localhost/prep:1"})
    prep = cfg.pipeline(name).preparation
    assert prep.wait_for_success is True and prep.retries == 0 and prep.resource_files == ()
    assert job_preparation_task(prep, cfg.pipeline(name))["containerSettings"]["imageName"] == "localhost/prep:1"


def test_no_preparation_is_none():
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    cfg = parse_config(doc, LOCAL)
    for pipeline in cfg.pipelines.values():
        assert pipeline.preparation is None and job_preparation_task(None, pipeline) is None


@pytest.mark.parametrize("prep,match", [
    ({}, r"pipelines\[0\]\.preparation\.commandLine"),
    ({"commandLine": "x", "colour": 1}, r"pipelines\[0\]\.preparation: unknown key\(s\) colour"),
    ({"commandLine": "x", "waitForSuccess": "yes"}, r"preparation\.waitForSuccess"),
    ({"commandLine": "x", "retries": 101}, r"preparation\.retries"),
    ({"commandLine": "x", "resourceFiles": "https://x"}, r"preparation\.resourceFiles"),
    ({"commandLine": "x", "resourceFiles": [{"httpUrl": "ftp://x", "filePath": "a"}]},
     r"preparation\.resourceFiles\[0\]\.httpUrl"),
    ({"commandLine": "x", "resourceFiles": [{"httpUrl": "https://x", "filePath": "../a"}]},
     r"preparation\.resourceFiles\[0\]\.filePath"),
    ({"commandLine": "x", "environment": {"bad name": "v"}}, r"preparation\.environment"),
    ("just a string", r"preparation"),
])
def test_bad_preparation_names_the_field(prep, match):
    with pytest.raises(ConfigError, match=match):
        _config(prep)


def test_submitter_sets_it_on_the_pipelines_job():
    from shared.submitter import Submitter

    cfg, name = _config({"commandLine": "/prep.sh"})

    class Recording:
        bodies = []

        def create_job(self, job):
            self.bodies.append(job.as_dict())

        def list_jobs(self, **_):
            return []

        def list_job_schedules(self, **_):
            return []

    client = Recording()
    submitter = Submitter(client, cfg, sleep=lambda s: None)
    submitter._pools.add(cfg.pipeline(name).pool)  # the pool exists: only the job is created here
    submitter.ensure_job("job-1", name)
    prep = client.bodies[0]["jobPreparationTask"]
    assert prep["commandLine"] == "/prep.sh" and prep["waitForSuccess"] is True
    assert prep["containerSettings"]["imageName"] == cfg.pipeline(name).image
