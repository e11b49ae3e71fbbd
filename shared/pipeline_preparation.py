"""A pipeline's per-node preparation step (pipelines.yaml `preparation:`), set as its Batch job's
jobPreparationTask: it runs once on each node before the pipeline's first task there (e.g. fetch a model into
the node's shared folder), in the pipeline's image unless `image` names another.

    preparation:
      commandLine: /bin/sh -c 'cp model.bin $AZ_BATCH_NODE_SHARED_DIR/'   # required, run without a shell
      image: <image>            # default: the pipeline's image
      resourceFiles: [{httpUrl: https://..., filePath: model.bin}]        # downloaded into its working dir
      waitForSuccess: true      # false: tasks start without waiting; true: a failed step keeps tasks off the node
      retries: 0                # -1..100
      environment: {NAME: value}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preparation:
    command_line: str
    image: str | None = None
    resource_files: tuple[tuple[str, str], ...] = ()  # (httpUrl, filePath)
    wait_for_success: bool = True
    retries: int = 0
    environment: Mapping[str, str] = field(default_factory=dict)


def parse_preparation(r) -> Preparation | None:
    """From the pipeline's `preparation` reader (shared.config_reader.Reader) or None; ConfigError names the field."""
    if r is None:
        return None
    r.known("commandLine", "image", "resourceFiles", "waitForSuccess", "retries", "environment")
    files = r.data.get("resourceFiles") or []
    if not isinstance(files, list):
        raise r.fail("resourceFiles", "expected a list of {httpUrl, filePath}")
    parsed = []
    for i, item in enumerate(files):
        if not isinstance(item, dict) or set(item) - {"httpUrl", "filePath"}:
            raise r.fail(f"resourceFiles[{i}]", "expected a mapping with httpUrl and filePath only")
        url, path = item.get("httpUrl"), item.get("filePath")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise r.fail(f"resourceFiles[{i}].httpUrl", "expected an http(s) URL")
        if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
            raise r.fail(f"resourceFiles[{i}].filePath", "expected a relative path without '..'")
        parsed.append((url, path))
    return Preparation(command_line=r.str("commandLine", required=True), image=r.str("image"),
                       resource_files=tuple(parsed), wait_for_success=r.bool("waitForSuccess", True),
                       retries=r.int("retries", 0, -1, 100), environment=r.env("environment"))


def job_preparation_task(prep: Preparation | None, pipeline: Any) -> dict | None:
    """The Batch jobPreparationTask for a pipeline's preparation (REST field names), or None."""
    if prep is None:
        return None
    settings = {"imageName": prep.image or pipeline.image, "workingDirectory": "taskWorkingDirectory"}
    if pipeline.container_run_options:
        settings["containerRunOptions"] = pipeline.container_run_options
    task = {"id": "jobpreparation", "commandLine": prep.command_line, "containerSettings": settings,
            "waitForSuccess": prep.wait_for_success, "constraints": {"maxTaskRetryCount": prep.retries}}
    if prep.resource_files:
        task["resourceFiles"] = [{"httpUrl": u, "filePath": p} for u, p in prep.resource_files]
    if prep.environment:
        task["environmentSettings"] = [{"name": k, "value": v} for k, v in prep.environment.items()]
    return task
