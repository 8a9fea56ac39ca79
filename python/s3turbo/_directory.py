"""upload_directory and download_directory, which boto3 lacks: many objects in flight at once on
the engine, one Callback for the total, and a report of what failed that keeps what did not."""

from __future__ import annotations

import contextlib
import errno
import mimetypes
import os
import resource
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from . import _boto3 as boto3_transfers
from . import _core, _settings

if TYPE_CHECKING:
    from ._client import Client

# Objects in flight when no TransferConfig is given: small objects are bound by round trips,
# not bandwidth, so many more than boto3's 10 requests pay off.
DEFAULT_OBJECTS_IN_FLIGHT = 64

# Open files left to the rest of the process when the open-file limit bounds the objects in
# flight (each takes a file, a connection, and the connection pool keeps some).
FILES_KEPT_FREE = 32


class DirectoryTransferError(S3TransferFailedError):
    """Some objects of a directory transfer failed; the others were transferred all the same.
    `failed` maps each failed key to its exception, `transferred` each transferred key to its
    local path."""

    def __init__(self, action: str, failed: dict[str, BaseException], transferred: dict):
        key, error = next(iter(failed.items()))
        total = len(failed) + len(transferred)
        super().__init__(f"{len(failed)} of {total} objects failed to {action}; {key}: {error}")
        self.action = action
        self.failed = failed
        self.transferred = transferred

    def __reduce__(self):
        # Rebuilt from its parts, so that it crosses to another process (a process pool's).
        return DirectoryTransferError, (self.action, self.failed, self.transferred)


class TransferStopped(Exception):
    """Raised by the Callback s3turbo.aio gives a boto3 transfer whose task was cancelled. boto3
    cleans up as after any Callback that raises, and a directory transfer stops there."""


def key_prefix(prefix: str) -> str:
    """`Prefix` as the folder it names: "data" and "data/" both mean the keys "data/...", so that
    "database.csv" is not taken for part of "data"."""
    if not isinstance(prefix, str):
        raise ValueError("Prefix must be a string")
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


class UploadBatch:
    """The files of one upload_directory call, the keys they go to, and the report of their
    outcomes: shared by the sync and the asyncio API. Building one walks `local_dir`."""

    def __init__(
        self,
        client: Client,
        local_dir: str | os.PathLike,
        bucket: str,
        prefix: str,
        extra_args: dict | None,
    ):
        prefix = key_prefix(prefix)
        root = _local_dir(local_dir)
        if not root.is_dir():
            raise NotADirectoryError(f"not a directory: {str(root)!r}")
        os.listdir(root)  # an unreadable local_dir is an error of the call, before any upload
        # So is an ExtraArgs name s3transfer does not know, whether the engine or boto3 (file
        # by file) serves the call, as download_directory refuses one.
        _settings.check_upload_args(extra_args or {})
        self.client = client
        self.bucket = bucket
        self.files: dict[str, str] = {}
        # What cannot be uploaded, found while walking: reported with the failed uploads.
        self.refused: dict[str, BaseException] = {}
        for path, unreadable in _files_in(root):
            error: BaseException | None = unreadable
            key = prefix + path.relative_to(root).as_posix()
            if error is not None and os.path.isdir(path):
                key += "/"  # a folder that cannot be read, or a link back up the tree
            if error is None and not _is_utf8(key):
                error = ValueError(f"refused: {str(path)!r} is not a UTF-8 name, as S3 keys are")
            if error is None:
                self.files[key] = str(path)
            else:
                self.refused[key] = error
        self.args = dict(extra_args or {})

    def _content_type(self, path: str) -> str | None:
        """Guessed from the file name, unless ExtraArgs give one."""
        if "ContentType" in self.args:
            return None
        return mimetypes.guess_type(path)[0]

    def engine_upload(self) -> _core.Upload | None:
        """The engine's upload of these ExtraArgs, or None when boto3 must serve them."""
        return self.client._upload_plan("upload_directory", self.bucket, "-", self.args)

    def engine_files(self) -> list[tuple[str, str, str | None]]:
        return [(path, key, self._content_type(path)) for key, path in self.files.items()]

    def one_by_one(self, callback, config) -> dict[str, str]:
        """boto3 uploads the files, one after another."""

        def upload_with_boto3(key: str, path: str, callback) -> None:
            guessed = self._content_type(path)
            args = dict(self.args, ContentType=guessed) if guessed else self.args
            boto3_transfers.upload_file(
                self.client._client, path, self.bucket, key, args, callback, config
            )

        return _one_by_one("upload", self.files, upload_with_boto3, callback, self.refused)

    def report(self, outcomes: list[BaseException | None]) -> dict[str, str]:
        def as_boto3_raises(key: str, error: BaseException) -> BaseException:
            if isinstance(error, ClientError):
                return S3UploadFailedError(
                    f"Failed to upload {self.files[key]} to {self.bucket}/{key}: "
                    f"{self.client._modeled(error)}"
                )
            return error

        return _report("upload", self.files, outcomes, as_boto3_raises, self.refused)


class DownloadBatch:
    """The objects of one download_directory call and the local paths they go to (`place`
    them once listed, which makes their folders), and the report of their outcomes: shared by
    the sync and the asyncio API."""

    def __init__(self, client: Client, bucket: str, prefix: str, local_dir: str | os.PathLike):
        self.prefix = key_prefix(prefix)
        self.root = _local_dir(local_dir)
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"not a directory: {str(self.root)!r}")
        self.client = client
        self.bucket = bucket
        self.files: dict[str, str] = {}
        self.refused: dict[str, BaseException] = {}
        # Folders made for files, which failed downloads leave empty: taken away again after
        # the downloads.
        self._made_for_files: list[Path] = []

    def place(self, objects: Iterable[tuple[str, int]]) -> None:
        """Maps the listed objects (key and size) to local paths and makes their folders (and
        `local_dir`). A key that would land outside `local_dir`, where another key lands, or
        whose folder cannot be made, is refused, as is a folder marker with content (it has no
        file to go to)."""
        made: set[Path] = set()  # folders made or found: most objects share theirs
        kept: set[Path] = set()  # local_dir and the folders of folder markers

        def make_folder(path: Path) -> None:
            if path in made:
                return
            lineage = [path, *path.parents]
            missing = lineage[: next(i for i, p in enumerate(lineage) if p in made or p.is_dir())]
            # Noted first: a mkdir that fails half-way (a name too long) leaves the folders
            # above it.
            self._made_for_files.extend(missing)
            path.mkdir(parents=True, exist_ok=True)
            made.add(path)

        def keep_folder(path: Path) -> None:
            make_folder(path)
            kept.update((path, *path.parents))

        keep_folder(self.root)
        inside = os.path.realpath(self.root) + os.sep
        destinations: dict[str, str] = {}
        for key, size in objects:
            relative = key[len(self.prefix) :]
            try:
                if key.endswith("/"):  # a folder marker: the folder, no file
                    if size:
                        raise IsADirectoryError(
                            errno.EISDIR, f"refused: {key!r} ends with / and has content", key
                        )
                    if _segments(relative):  # (the prefix's own marker is local_dir)
                        keep_folder(local_path(self.root, relative, inside)[0])
                    continue
                # Through links, two paths may name one file: told by its real path.
                path, real_path = local_path(self.root, relative, inside)
                if real_path in destinations:
                    raise ValueError(
                        f"refused: {destinations[real_path]!r} goes to the same file, {str(path)!r}"
                    )
                make_folder(path.parent)
                destinations[real_path] = key
                self.files[key] = str(path)
            except (ValueError, OSError) as error:
                self.refused[key] = error
        self._made_for_files = [p for p in self._made_for_files if p not in kept]

    def one_by_one(self, extra_args, callback, config) -> dict[str, str]:
        """boto3 downloads the objects, one after another."""

        def download_with_boto3(key: str, path: str, callback) -> None:
            boto3_transfers.download_file(
                self.client._client, self.bucket, key, path, extra_args, callback, config
            )

        try:
            return _one_by_one("download", self.files, download_with_boto3, callback, self.refused)
        finally:
            self.remove_empty_folders()

    def report(self, outcomes: list[BaseException | None]) -> dict[str, str]:
        from ._client import as_download_error  # (_client imports this module)

        def as_boto3_raises(key: str, error: BaseException) -> BaseException:
            if isinstance(error, ClientError):
                error = self.client._modeled(error)
            return as_download_error(error, self.bucket, key)

        try:
            return _report("download", self.files, outcomes, as_boto3_raises, self.refused)
        finally:
            self.remove_empty_folders()

    def remove_empty_folders(self) -> None:
        """Takes away the folders made for files that none of the downloads filled."""
        for folder in sorted(self._made_for_files, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty, or gone
                folder.rmdir()


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
    batch = UploadBatch(client, local_dir, bucket, prefix, extra_args)
    upload = None if boto3_serves else batch.engine_upload()
    if upload is None:
        return batch.one_by_one(callback, config)
    outcomes = _core.upload_files(
        _settings.connection(client._client),
        _settings.options(config),
        upload,
        batch.engine_files(),
        objects_in_flight(config),
        callback=callback,
    )
    return batch.report(outcomes)


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
    encoded_args = _settings.download_args(client._client, bucket, "-", extra_args)
    batch = DownloadBatch(client, bucket, prefix, local_dir)
    objects = _objects(client, bucket, batch.prefix, extra_args, encoded_args, boto3_serves)
    try:
        batch.place(objects)
    except BaseException:  # Ctrl-C
        batch.remove_empty_folders()
        raise
    if boto3_serves:
        return batch.one_by_one(extra_args, callback, config)
    try:
        outcomes = _core.download_files(
            _settings.connection(client._client),
            _settings.options(config),
            bucket,
            list(batch.files.items()),
            objects_in_flight(config),
            extra_args=encoded_args,
            callback=callback,
        )
    except BaseException:  # Ctrl-C, a Callback that raised
        batch.remove_empty_folders()
        raise
    return batch.report(outcomes)


def _local_dir(local_dir: str | os.PathLike) -> Path:
    """`local_dir` as a Path. An empty name is none (`Path("")` is the working directory), as
    `os.listdir("")` and boto3's file transfers refuse it: an unset setting must not upload
    or overwrite whatever folder the process runs in."""
    name = os.fspath(local_dir)
    if not name:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return Path(name)


def local_path(root: Path, relative_key: str, inside: str) -> tuple[Path, str]:
    """Where the object named `relative_key` (its key less the prefix) goes under `root`, whose
    real path is `inside` (with a trailing separator), and the real path of that. A key that
    would land outside `root` ("..", or a link inside root that leads out) is refused."""
    parts = _segments(relative_key)
    if not parts or ".." in parts or any("\0" in part for part in parts):
        raise ValueError(f"refused: the key would be written outside {str(root)!r}")
    path = root.joinpath(*parts)
    real_path = os.path.realpath(path)
    if not real_path.startswith(inside):
        raise ValueError(f"refused: the key would be written outside {str(root)!r}")
    return path, real_path


def _segments(relative_key: str) -> list[str]:
    """The path segments a key (less the prefix) names: empty ones and "." name none."""
    return [part for part in relative_key.split("/") if part not in ("", ".")]


def _is_utf8(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # a file name of bytes that are not UTF-8
        return False
    return True


def _files_in(root: Path) -> Iterable[tuple[Path, OSError | None]]:
    """The files under `root`, in a stable order, with links to files and folders followed
    (as the AWS CLI follows them); and, with their error, what cannot be uploaded: a folder
    that cannot be read, a link that leads nowhere or back into the tree above it. Empty
    folders have no objects to become (S3 has no folders), as with the AWS CLI; devices, FIFOs
    and sockets are left out."""
    problems: list[tuple[Path, OSError]] = []

    def unreadable(error: OSError) -> None:
        problems.append((Path(error.filename), error))

    for directory, subdirectories, names in os.walk(root, onerror=unreadable, followlinks=True):
        yield from problems
        problems.clear()
        above = {os.path.realpath(p) for p in (Path(directory), *Path(directory).parents)}
        for name in list(subdirectories):
            path = Path(directory, name)
            if os.path.realpath(path) in above:
                subdirectories.remove(name)
                yield path, OSError(errno.ELOOP, "refused: a link back into the tree", str(path))
        subdirectories.sort()
        for name in sorted(names):
            path = Path(directory, name)
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                yield path, FileNotFoundError(errno.ENOENT, "a link that leads nowhere", str(path))
            except OSError as error:  # a folder listed but not searchable, a name too long
                yield path, error
            else:
                if stat.S_ISREG(mode):
                    yield path, None
    yield from problems


def _objects(
    client: Client,
    bucket: str,
    prefix: str,
    extra_args: dict | None,
    encoded_args: dict[str, str],
    boto3_serves: bool,
) -> Iterable[tuple[str, int]]:
    """The keys and sizes of the objects under `prefix`: listed by the engine, unless boto3
    must serve the call. The listing takes the downloads' RequestPayer and ExpectedBucketOwner
    (`extra_args`, and as the engine takes them, `encoded_args`)."""
    if not boto3_serves:
        connection = _settings.connection(client._client)
        try:
            return _core.list_objects(connection, bucket, prefix, encoded_args)
        except ClientError as error:
            raise client._modeled(error) from None
    paginator = client._client.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=bucket, Prefix=prefix, **_listing_args(extra_args))
    return [(item["Key"], item["Size"]) for page in pages for item in page.get("Contents", [])]


def _listing_args(extra_args: dict | None) -> dict[str, str]:
    """What of a download's ExtraArgs its listing also sends."""
    return {
        name: value
        for name, value in (extra_args or {}).items()
        if name in ("RequestPayer", "ExpectedBucketOwner")
    }


def objects_in_flight(config: TransferConfig | None) -> int:
    """`max_concurrency` (one with `use_threads=False`, as s3transfer), or the default; and
    within the process's open-file limit, as each object in flight takes a file and a
    connection."""
    if config is None:
        wanted = DEFAULT_OBJECTS_IN_FLIGHT
    else:
        wanted = max(1, _settings.concurrency(config))
    soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, (soft_limit - FILES_KEPT_FREE) // 3))


def _returned_or_raised(action, failed, transferred) -> dict[str, str]:
    """What a directory call returns, the objects transferred; or, if any failed, raises."""
    if failed:
        raise DirectoryTransferError(action, failed, transferred)
    return transferred


def _report(action, files, outcomes, as_boto3_raises, refused) -> dict[str, str]:
    failed = dict(refused)
    transferred = {}
    for (key, path), error in zip(files.items(), outcomes, strict=True):
        if error is None:
            transferred[key] = path
        else:
            failed[key] = as_boto3_raises(key, error)
    return _returned_or_raised(action, failed, transferred)


def _one_by_one(action, files, transfer, callback, refused) -> dict[str, str]:
    """boto3 serves the call (Stubber, mock_aws, ...): one object after another, each given
    `callback`. An exception the callback raises stops the call, as on the engine (aio's
    TransferStopped among them); other failures are the object's."""
    raised: list[BaseException] = []

    def observed(amount: int) -> None:
        try:
            callback(amount)
        except BaseException as error:
            raised.append(error)
            raise

    failed = dict(refused)
    transferred = {}
    for key, path in files.items():
        try:
            transfer(key, path, observed if callback is not None else None)
            transferred[key] = path
        except Exception as error:
            if not raised:
                failed[key] = error
            elif error is raised[0]:
                raise
            else:  # s3transfer raised another error after it (a KeyboardInterrupt's clean-up)
                raise raised[0]  # noqa: B904 (the Callback's error goes on as it was raised)
    return _returned_or_raised(action, failed, transferred)
