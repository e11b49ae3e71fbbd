"""Staging failures in the shape Batch reports them: a task's executionInfo.failureInfo.

Codes are Batch's TaskFailureInformationCodes (source: learn.microsoft.com, Microsoft.Azure.Batch.Common.
TaskFailureInformationCodes and com.microsoft.azure.batch.TaskFailureInformationCodes):
  resource files: BlobNotFound, BlobAccessDenied, BlobDownloadTimedOut, BlobDownloadMiscError,
    ResourceContainerAccessDenied, ResourceContainerListMiscError (messages as in the Batch managed-identity
    troubleshooting article), ResourceDirectoryCreateFailed (message as reported in
    Azure-Samples/batch-dotnet-quickstart#9), ResourceFileCreateFailed,
    ResourceFileWriteFailed, DiskFull;
  output files: FileUploadContainerNotFound (message quoted in batch-task-output-files.md),
    FileUploadAccessDenied, FileUploadTimedOut, FileUploadMiscError.
The wire shape is BatchTaskFailureInfo: {category: "usererror"|"servererror", code, message,
details: [{name, value}]}. Details never carry a SAS query or a key.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

USER = "usererror"
SERVER = "servererror"

MESSAGES = {
    "BlobNotFound": "The specified blob does not exist.",
    "BlobAccessDenied": "Access for one of the specified Azure Blob(s) is denied",
    "BlobDownloadTimedOut": "The download of one of the specified Azure Blob(s) timed out",
    "BlobDownloadMiscError": "Miscellaneous error encountered while downloading one of the specified Azure Blob(s)",
    "ResourceContainerAccessDenied": "Access for one of the specified Azure Blob container(s) is denied",
    "ResourceContainerListMiscError": (
        "Miscellaneous error encountered while listing one of the specified Azure Blob container(s)"
    ),
    "ResourceDirectoryCreateFailed": "The resource directory path could not be created",
    "ResourceFileCreateFailed": "The compute node could not create a local file for a resource file",
    "ResourceFileWriteFailed": "The compute node could not write to a local file for a resource file",
    "DiskFull": "The compute node disk ran out of space when downloading the resource files",
    "FileUploadContainerNotFound": (
        "One of the specified Azure container(s) was not found while attempting to upload an output file"
    ),
    "FileUploadAccessDenied": "Access for one of the specified Azure container(s) was denied while uploading an output file",
    "FileUploadTimedOut": "The upload of an output file timed out",
    "FileUploadMiscError": "Miscellaneous error encountered while uploading an output file",
    # Not staging, but the same failureInfo: codes the runtimes raise (PullError / StartError .code).
    "ContainerInvalidImage": "The container image was invalid",
    "ContainerInvalidRegistry": "The specified container registry was invalid",
    "ContainerInvalidSettings": "At least one value of the specified Task container settings is invalid",
    "ContainerMiscError": "There was an unknown error encountered while attempting to run a Task in a container",
    "CommandProgramNotFound": "The program specified in the task's command line was not found",
    "CommandLaunchFailed": "An error occurred when launching the task's command line",
}

_SERVER_CODES = {"ResourceDirectoryCreateFailed", "ResourceFileCreateFailed", "ResourceFileWriteFailed", "DiskFull"}


def failure_info(code: str, detail: str | None = None, *, category: str | None = None, **details: str | None) -> dict:
    """Build Batch's failureInfo. `detail` adds the specific cause to the standard message; `category`
    overrides the code's usual one (a local-disk code caused by the user's own spec is a usererror)."""
    message = MESSAGES.get(code, code)
    if detail:
        message = f"{message.rstrip('.')}: {detail}"
    return {
        "category": category or (SERVER if code in _SERVER_CODES else USER),
        "code": code,
        "message": message,
        "details": [{"name": name, "value": value} for name, value in details.items() if value is not None],
    }


class StagingError(Exception):
    """Staging failed; `failure_info` is ready to store as the task's executionInfo.failureInfo."""

    def __init__(self, failure: dict):
        super().__init__(failure["message"])
        self.failure_info = failure


def redact_url(url: str) -> str:
    """The URL without its query (a SAS is a secret)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
