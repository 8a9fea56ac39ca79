"""upload_directory and download_directory, which boto3 lacks: many objects in flight at once on
the engine, one Callback for the total, and a report of what failed that keeps what did not."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3.s3.inject as boto3_transfers
from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from . import _core, _settings

if TYPE_CHECKING:
    from ._client import Client

# Objects in flight when no TransferConfig is given: small objects are bound by round trips,
# not bandwidth, so many more than boto3's 10 requests pay off.
DEFAULT_OBJECTS_IN_FLIGHT = 64


class DirectoryTransferError(S3TransferFailedError):
    """Some objects of a directory transfer failed; the others were transferred all the same.
    `failed` maps each failed key to its exception, `transferred` each transferred key to its
    local path."""

    def __init__(self, action: str, failed: dict[str, BaseException], transferred: dict):
        key, error = next(iter(failed.items()))
        total = len(failed) + len(transferred)
        super().__init__(f"{len(failed)} of {total} objects failed to {action}; {key}: {error}")
        self.failed = failed
        self.transferred = transferred


def key_prefix(prefix: str) -> str:
    """`Prefix` as the folder it names: "data" and "data/" both mean the keys "data/...", so that
    "database.csv" is not taken for part of "data"."""
    if not isinstance(prefix, str):
        raise ValueError("Prefix must be a string")
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


def upload_directory(
    client: Client,
    local_dir: str | os.PathLike,
    bucket: str,
    prefix: str,
    extra_args: dict | None,
    callback: Callable[[int], Any] | None,
    config: TransferConfig | None,
    boto3_serves: bool,
) -> dict[str, str]:
    root = Path(os.fspath(local_dir))
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {str(root)!r}")
    prefix = key_prefix(prefix)
    files = {prefix + path.relative_to(root).as_posix(): str(path) for path in _files_in(root)}
    args = dict(extra_args or {})
    guess = "ContentType" not in args

    def content_type(path: str) -> str | None:
        return mimetypes.guess_type(path)[0] if guess else None

    upload = None if boto3_serves else client._upload_plan("upload_directory", bucket, "-", args)
    if upload is None:

        def upload_with_boto3(key: str, path: str) -> None:
            guessed = content_type(path)
            typed = dict(args, ContentType=guessed) if guessed else args
            boto3_transfers.upload_file(client._client, path, bucket, key, typed, callback, config)

        return _one_by_one("upload", files, upload_with_boto3)
    errors = _core.upload_files(
        _settings.connection(client._client),
        _settings.options(config),
        upload,
        [(path, key, content_type(path)) for key, path in files.items()],
        _objects_in_flight(config),
        callback=callback,
    )

    def as_boto3_raises(key: str, error: BaseException) -> BaseException:
        if isinstance(error, ClientError):
            return S3UploadFailedError(
                f"Failed to upload {files[key]} to {bucket}/{key}: {client._modeled(error)}"
            )
        return error

    return _report("upload", files, errors, as_boto3_raises)


def download_directory(
    client: Client,
    bucket: str,
    prefix: str,
    local_dir: str | os.PathLike,
    extra_args: dict | None,
    callback: Callable[[int], Any] | None,
    config: TransferConfig | None,
    boto3_serves: bool,
) -> dict[str, str]:
    root = Path(os.fspath(local_dir))
    root.mkdir(parents=True, exist_ok=True)
    prefix = key_prefix(prefix)
    files: dict[str, str] = {}
    refused: dict[str, BaseException] = {}
    inside = os.path.realpath(root) + os.sep
    made: set[Path] = set()  # folders made already: most objects share theirs

    def make_folder(path: Path) -> None:
        if path not in made:
            path.mkdir(parents=True, exist_ok=True)
            made.add(path)

    for key in _keys(client, bucket, prefix, boto3_serves):
        try:
            path = local_path(root, key[len(prefix) :], inside)
            if key.endswith("/"):  # a folder marker: the folder, no file
                make_folder(path)
            else:
                make_folder(path.parent)
                files[key] = str(path)
        except (ValueError, OSError) as error:
            refused[key] = error
    if boto3_serves:

        def download_with_boto3(key: str, path: str) -> None:
            boto3_transfers.download_file(
                client._client, bucket, key, path, extra_args, callback, config
            )

        return _one_by_one("download", files, download_with_boto3, refused)
    errors = _core.download_files(
        _settings.connection(client._client),
        _settings.options(config),
        bucket,
        list(files.items()),
        _objects_in_flight(config),
        extra_args=_settings.download_args(client._client, bucket, "-", extra_args),
        callback=callback,
    )

    def as_boto3_raises(key: str, error: BaseException) -> BaseException:
        return client._modeled(error) if isinstance(error, ClientError) else error

    return _report("download", files, errors, as_boto3_raises, refused)


def local_path(root: Path, relative_key: str, inside: str) -> Path:
    """Where the object named `relative_key` (its key less the prefix) goes under `root`, whose
    real path is `inside` (with a trailing separator). A key that would land outside `root`
    ("..", or a link inside root that leads out) is refused."""
    parts = [part for part in relative_key.split("/") if part not in ("", ".")]
    if not parts or ".." in parts or any("\0" in part for part in parts):
        raise ValueError(f"refused: the key would be written outside {str(root)!r}")
    path = root.joinpath(*parts)
    if not os.path.realpath(path).startswith(inside):
        raise ValueError(f"refused: the key would be written outside {str(root)!r}")
    return path


def _files_in(root: Path) -> Iterable[Path]:
    """The files under `root`, in a stable order. Empty folders have no objects to become (S3
    has no folders), as with the AWS CLI."""
    for directory, subdirectories, names in os.walk(root):
        subdirectories.sort()
        for name in sorted(names):
            path = Path(directory, name)
            if path.is_file():
                yield path


def _keys(client: Client, bucket: str, prefix: str, boto3_serves: bool) -> Iterable[str]:
    """The keys under `prefix`: listed by the engine, unless boto3 must serve the call."""
    if not boto3_serves:
        try:
            return _core.list_keys(_settings.connection(client._client), bucket, prefix)
        except ClientError as error:
            raise client._modeled(error) from None
    paginator = client._client.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _objects_in_flight(config: TransferConfig | None) -> int:
    return DEFAULT_OBJECTS_IN_FLIGHT if config is None else max(1, config.max_concurrency)


def _report(action, files, errors, as_boto3_raises, refused=None) -> dict[str, str]:
    failed = dict(refused or {})
    transferred = {}
    for (key, path), error in zip(files.items(), errors, strict=True):
        if error is None:
            transferred[key] = path
        else:
            failed[key] = as_boto3_raises(key, error)
    if failed:
        raise DirectoryTransferError(action, failed, transferred)
    return transferred


def _one_by_one(action, files, transfer, refused=None) -> dict[str, str]:
    """boto3 serves the call (Stubber, mock_aws, ...): one object after another."""
    failed = dict(refused or {})
    transferred = {}
    for key, path in files.items():
        try:
            transfer(key, path)
            transferred[key] = path
        except Exception as error:
            failed[key] = error
    if failed:
        raise DirectoryTransferError(action, failed, transferred)
    return transferred
