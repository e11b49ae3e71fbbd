"""Where a run's results can be opened: blob URLs of its outputs, logs and manifest, and the Azure portal.

Blob URLs are the storage account's own (locally Azurite's `http://127.0.0.1:<port>/devstoreaccount1/...`), built
by the storage SDK so names are percent-encoded; no SAS is added (opening one needs access to the account: the
portal's storage browser, `az storage blob download --auth-mode login`, or Azure Storage Explorer).
The portal link needs BATCH_ACCOUNT_RESOURCE_ID (`/subscriptions/<id>/resourceGroups/<rg>/providers/
Microsoft.Batch/batchAccounts/<name>`; infra/ sets it, azd environments carry it as
AZURE_BATCH_ACCOUNT_RESOURCE_ID): it opens the Batch account's Jobs blade, where the run's job and task are listed
under the ids given next to the link.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from azure.core.exceptions import ResourceNotFoundError

from devstack.tools.access import AppAccess

PORTAL = "https://portal.azure.com/#resource"


def portal_link(resource_id: str | None, job_id: str | None, task_id: str | None) -> dict | None:
    """{"url", "jobId", "taskId"} for a task on Azure, or None (no resource id configured, or no job yet)."""
    if not resource_id or not job_id:
        return None
    rid = "/" + resource_id.strip().strip("/")
    return {"url": f"{PORTAL}{quote(rid, safe='/')}/jobs", "jobId": job_id, "taskId": task_id}


def read_manifest(access: AppAccess, record: dict) -> dict | None:
    container, name = record.get("outputContainer"), record.get("manifestBlob")
    if not container or not name:
        return None
    try:
        data = json.loads(access.storage.blob.get_blob_client(container, name).download_blob().readall())
    except (ResourceNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def log_locations(record: dict, manifest: dict | None = None) -> dict[str, tuple[str, str]]:
    """Where the task uploads stdout/stderr: the manifest's `logs` when given, else the app's layout
    (`<output prefix>/logs/std{out,err}.txt`)."""
    container = record.get("outputContainer")
    prefix = record.get("outputPrefix")
    locations = {s: (container, f"{prefix}/logs/{s}.txt") for s in ("stdout", "stderr")}
    for stream, entry in ((manifest or {}).get("logs") or {}).items():
        if stream in locations and isinstance(entry, dict) and entry.get("name"):
            locations[stream] = (entry.get("container") or container, entry["name"])
    return locations


def run_links(access: AppAccess, record: dict, manifest: dict | None = None) -> dict:
    """Every link of one run: {"outputs": [url...], "outputsFolder", "manifest", "logs": {stream: url}, "portal"}.
    Without `manifest` (the list view: no extra reads per row) the outputs are the folder only."""
    def url(container: str, name: str) -> str:
        return access.storage.blob.get_blob_client(container, name).url

    container, prefix = record.get("outputContainer"), record.get("outputPrefix")
    links: dict = {"outputsFolder": None, "outputs": [], "manifest": None, "logs": {}, "portal": None}
    if container and prefix:
        links["outputsFolder"] = url(container, prefix.rstrip("/") + "/")
        links["logs"] = {s: url(c, n) for s, (c, n) in log_locations(record, manifest).items()}
    if container and record.get("manifestBlob"):
        links["manifest"] = url(container, record["manifestBlob"])
    for out in (manifest or {}).get("outputs") or []:
        if isinstance(out, dict) and out.get("name"):
            links["outputs"].append(url(out.get("container") or container, out["name"]))
    links["portal"] = portal_link(access.settings.batch_account_resource_id, record.get("jobId"),
                                  record.get("taskId") or record.get("RowKey"))
    return links
