"""The naive submitter, the benchmarks' baseline: one create_task per blob, the pattern of Azure's batch-functions
tutorial (a blob-triggered function that adds one Batch task per uploaded file, the blob's SAS URL as its
resource file).

Run by the same local Functions host as the eventbatch app (`python -m devstack.func_host --app-dir <copy of this
folder>`, host.json identical to the repo's, settings written by bench/bench_submission.py) with the same trigger
(Event Grid source on %INPUT_CONTAINER%, SDK-type BlobClient binding: the host never downloads the blob) and the
same container image and pool as the eventbatch pipeline. It keeps no records and sends no messages; the job
(NAIVE_JOB_ID, on the pool) is created by the benchmark beforehand, as the tutorial creates it up front.

Settings: EVENTBATCH_STORAGE (connection string with an account key), BATCH_ACCOUNT_URL / _NAME / _KEY,
WORKER_IMAGE, OUTPUT_CONTAINER, NAIVE_JOB_ID, NAIVE_COMMAND_LINE (default /app/transform.sh).
"""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

app = func.FunctionApp()
_LOCK = threading.Lock()
_CLIENT = []


def _batch():
    with _LOCK:
        if not _CLIENT:
            from azure.batch import BatchClient
            from azure.core.credentials import AzureNamedKeyCredential

            _CLIENT.append(BatchClient(os.environ["BATCH_ACCOUNT_URL"], AzureNamedKeyCredential(
                os.environ["BATCH_ACCOUNT_NAME"], os.environ["BATCH_ACCOUNT_KEY"])))
        return _CLIENT[0]


def _account() -> tuple[str, str]:
    parts = dict(p.split("=", 1) for p in os.environ["EVENTBATCH_STORAGE"].split(";") if "=" in p)
    return parts["AccountName"], parts["AccountKey"]


def task_body(container: str, name: str, blob_url: str) -> dict:
    """The task: the blob's SAS URL as resource file, logs back to the output container, the worker image."""
    from azure.storage.blob import (
        BlobSasPermissions,
        ContainerSasPermissions,
        generate_blob_sas,
        generate_container_sas,
    )

    account, key = _account()
    expiry = datetime.now(UTC) + timedelta(hours=12)
    read = generate_blob_sas(account, container, name, account_key=key, permission=BlobSasPermissions(read=True),
                             expiry=expiry)
    output = os.environ["OUTPUT_CONTAINER"]
    write = generate_container_sas(account, output, account_key=key,
                                   permission=ContainerSasPermissions(write=True, create=True), expiry=expiry)
    out_url = f"{blob_url.split(f'/{container}/', 1)[0]}/{output}?{write}"
    digest = hashlib.sha256(f"{container}/{name}".encode()).hexdigest()[:40]
    prefix = f"naive/{name}"
    logs = [{"filePattern": f"../{log}", "destination": {"container": {"containerUrl": out_url,
                                                                       "path": f"{prefix}/logs/{log}"}},
             "uploadOptions": {"uploadCondition": "taskcompletion"}} for log in ("stdout.txt", "stderr.txt")]
    return {
        "id": f"naive-{digest}",
        "commandLine": os.environ.get("NAIVE_COMMAND_LINE") or "/app/transform.sh",
        "containerSettings": {"imageName": os.environ["WORKER_IMAGE"], "workingDirectory": "taskWorkingDirectory"},
        "resourceFiles": [{"httpUrl": f"{blob_url}?{read}", "filePath": "in/input"}],
        "outputFiles": [{"filePattern": "out/**", "destination": {"container": {"containerUrl": out_url,
                                                                                "path": prefix}},
                         "uploadOptions": {"uploadCondition": "tasksuccess"}}, *logs],
        "environmentSettings": [{"name": "INPUT_NAME", "value": name}, {"name": "INPUT_PATH", "value": "in/input"}],
    }


@app.blob_trigger(arg_name="client", path="%INPUT_CONTAINER%/{name}", connection="EVENTBATCH_STORAGE",
                  source=func.BlobSource.EVENT_GRID)
def naive_submit(client: blob.BlobClient) -> None:
    from azure.batch import models

    body = task_body(client.container_name, client.blob_name, client.url)
    _batch().create_task(os.environ["NAIVE_JOB_ID"], models.BatchTaskCreateOptions(body))
