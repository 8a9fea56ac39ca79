"""The boto3-shaped client: boto3's own client for everything, with the file transfer methods
served by the Rust engine."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from . import _core, _settings

logger = logging.getLogger("s3turbo")


def client(*args: Any, **kwargs: Any) -> Client:
    """Same arguments as ``boto3.client("s3", ...)``."""
    return Client(boto3.client(*args, **kwargs))


def _filename(filename: str | os.PathLike) -> str:
    """boto3's check: a str or an os.PathLike."""
    if isinstance(filename, os.PathLike):
        filename = os.fspath(filename)
    if not isinstance(filename, str):
        raise ValueError("Filename must be a string or a path-like object")
    return filename


def _boto3_must_serve(method: str, config: TransferConfig | None) -> bool:
    """Whether a call goes to boto3's own implementation because the engine would not honour it
    faithfully (or acceleration is turned off). Says why in a debug log line."""
    if os.environ.get("S3TURBO_DISABLE", "") not in ("", "0"):
        reason = "S3TURBO_DISABLE is set"
    elif config is not None and getattr(config, "max_bandwidth", None) is not None:
        reason = "TransferConfig.max_bandwidth is not yet honoured by the engine"
    else:
        return False
    logger.debug("s3turbo: %s falls back to boto3: %s", method, reason)
    return True


class Client:
    """A boto3 S3 client whose ``upload_file`` and ``download_file`` run on the Rust engine.
    Every other attribute is the wrapped boto3 client's."""

    def __init__(self, boto3_client: Any):
        self._client = boto3_client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._client)) | set(super().__dir__()))

    def __repr__(self) -> str:
        return f"<s3turbo.Client wrapping {self._client!r}>"

    def upload_file(
        self,
        Filename: str | os.PathLike,
        Bucket: str,
        Key: str,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> None:
        if _boto3_must_serve("upload_file", Config):
            return self._client.upload_file(Filename, Bucket, Key, ExtraArgs, Callback, Config)
        filename = _filename(Filename)
        plan = _settings.UploadPlan(self._client, Bucket, Key, ExtraArgs)
        try:
            _core.upload_file(
                _settings.connection(self._client),
                _settings.options(Config),
                filename,
                Bucket,
                Key,
                headers=plan.headers,
                put_object_checksum=plan.put_object_checksum,
                upload_part_checksum=plan.upload_part_checksum,
                callback=Callback,
            )
        except ClientError as error:
            # boto3 wraps every ClientError of upload_file, keeping the message.
            raise S3UploadFailedError(
                f"Failed to upload {filename} to {Bucket}/{Key}: {self._modeled(error)}"
            ) from None

    def download_file(
        self,
        Bucket: str,
        Key: str,
        Filename: str | os.PathLike,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> None:
        if _boto3_must_serve("download_file", Config):
            return self._client.download_file(Bucket, Key, Filename, ExtraArgs, Callback, Config)
        filename = _filename(Filename)
        extra_args = _settings.download_args(self._client, Bucket, Key, ExtraArgs)
        try:
            _core.download_file(
                _settings.connection(self._client),
                _settings.options(Config),
                Bucket,
                Key,
                filename,
                extra_args=extra_args,
                callback=Callback,
            )
        except ClientError as error:
            raise self._modeled(error) from None

    def _modeled(self, error: ClientError) -> ClientError:
        """The same error as the client's modeled class (e.g. ``NoSuchBucket``), as boto3
        raises it."""
        code = error.response.get("Error", {}).get("Code", "")
        error_class = self._client.exceptions.from_code(code)
        if type(error) is error_class:
            return error
        return error_class(error.response, error.operation_name)
