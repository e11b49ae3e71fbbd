"""Batch's resource files (download before the task) and output files (upload after it); no HTTP here.

    from devstack.batch_emulator.staging import (CredentialResolver, StagingError, download_resource_files,
                                                 upload_output_files)
    resolver = CredentialResolver.from_env(os.environ)           # identityReference stand-ins (errors.ConfigError)
    download_resource_files(task["resourceFiles"], wd, resolver)  # raises StagingError(.failure_info)
    failure = upload_output_files(task["outputFiles"], task_dir, wd, exit_code == 0, resolver)
"""

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
