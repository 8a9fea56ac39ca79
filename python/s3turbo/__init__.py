"""s3turbo: boto3's S3 file transfers on a Rust engine.

``s3turbo.client("s3", ...)`` takes the same arguments as ``boto3.client`` and returns a client
whose ``upload_file``, ``download_file``, ``upload_fileobj``, ``download_fileobj`` and
``generate_presigned_url`` run on the engine; everything else is boto3's.
"""

from boto3.s3.transfer import TransferConfig

from ._client import Client, client
from ._core import __version__

__all__ = ["Client", "TransferConfig", "client", "__version__"]
