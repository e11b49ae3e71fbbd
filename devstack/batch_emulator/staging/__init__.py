"""Batch's resource files (in before a task) and output files (out after it); no HTTP here."""

from .credentials import CredentialResolver, IdentityUnavailable
from .errors import StagingError, failure_info
from .output_files import upload_output_files
from .resource_files import download_resource_files

__all__ = [
    "CredentialResolver",
    "IdentityUnavailable",
    "StagingError",
    "download_resource_files",
    "failure_info",
    "upload_output_files",
]
