"""s3turbo: boto3's S3 file transfers on a Rust engine.

``s3turbo.client("s3", ...)`` takes the same arguments as ``boto3.client`` and returns a client
whose ``upload_file``, ``download_file``, ``upload_fileobj``, ``download_fileobj`` and
``generate_presigned_url`` run on the engine; everything else is boto3's. ``s3turbo.patch()``
does the same for every S3 client and resource boto3 creates afterwards, and
``s3turbo.accelerate(client)`` for one existing client. ``upload_directory`` and
``download_directory`` move whole folders, many objects at once. ``s3turbo.aio`` has the
transfers as coroutines.
"""

from boto3.s3.transfer import TransferConfig

from . import aio
from ._client import Client, client
from ._core import __version__
from ._directory import DirectoryTransferError
from ._patch import accelerate, patch, unpatch

__all__ = [
    "Client",
    "DirectoryTransferError",
    "TransferConfig",
    "accelerate",
    "aio",
    "client",
    "patch",
    "unpatch",
    "__version__",
]
