"""The boto3-shaped client: boto3's own client for everything, with the file transfer methods
served by the Rust engine."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import boto3
import boto3.s3.inject
import botocore.client
import botocore.signers
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.compat import readable, seekable
from s3transfer.exceptions import RetriesExceededError as S3TransferRetriesExceededError
from s3transfer.exceptions import S3DownloadFailedError
from s3transfer.manager import TransferManager

from . import _boto3 as boto3_transfers
from . import _core, _directory, _settings
from ._presign import OPERATIONS as PRESIGNED_OPERATIONS
from ._presign import PRESIGN_EVENTS, BotocoreSigns, Presigner

logger = logging.getLogger("s3turbo")

# botocore's own, kept before s3turbo.patch() can put the engine's in its place.
botocore_generate_presigned_url = botocore.signers.generate_presigned_url


def client(*args: Any, **kwargs: Any) -> Client:
    """Same arguments as ``boto3.client("s3", ...)``."""
    return Client(boto3.client(*args, **kwargs))


def _filename(filename: str | os.PathLike) -> str:
    """boto3's check: a str or an os.PathLike; and the ValueError Python's file functions
    raise for a NUL in a path, which boto3's downloads reach first."""
    if isinstance(filename, os.PathLike):
        filename = os.fspath(filename)
    if not isinstance(filename, str):
        raise ValueError("Filename must be a string or a path-like object")
    if "\0" in filename:
        raise ValueError("embedded null byte")
    return filename


def _check_transfer_args(bucket: Any, extra_args: Any, config: Any) -> None:
    """Arguments boto3 crashes on with an unrelated error (a regex TypeError for a Bucket that is
    not a str, an AttributeError for ExtraArgs that is not a dict or a Config of another class),
    refused up front with a clear error, of the crash's type where that is a sensible one."""
    if not isinstance(bucket, str):
        raise TypeError(f"Bucket must be a str, not {type(bucket).__name__}")
    if extra_args and not isinstance(extra_args, Mapping):
        # s3transfer iterates ExtraArgs for its names: ValueError for an iterable, else TypeError.
        error = ValueError if isinstance(extra_args, Iterable) else TypeError
        raise error(f"ExtraArgs must be a dict, not {type(extra_args).__name__}")
    if config is not None and not isinstance(config, TransferConfig):
        raise TypeError(
            f"Config must be a boto3.s3.transfer.TransferConfig, not {type(config).__name__}"
        )
    # s3transfer's own refusal (of S3 Object Lambda access points), unless turned off.
    for resource, pattern in TransferManager._UNSUPPORTED_BUCKET_PATTERNS.items():
        if TransferManager.VALIDATE_SUPPORTED_BUCKET_VALUES and pattern.match(bucket):
            raise ValueError(
                f"TransferManager methods do not support {resource} resource. "
                "Use direct client calls instead."
            )


def _check_presign_args(client: Any, client_method: str, params: Any, http_method: Any) -> None:
    """Presign arguments boto3 crashes on with an AttributeError, refused with a TypeError. An
    unknown ClientMethod, or Metadata where the method has none, boto3 refuses first."""
    operation = client._PY_TO_OP_NAME.get(client_method)
    if operation is None:
        return
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"Params must be a dict, not {type(params).__name__}")
    metadata = (params or {}).get("Metadata")
    if (
        isinstance(metadata, Mapping)
        and not all(
            isinstance(name, str) and isinstance(value, str) for name, value in metadata.items()
        )
        and "Metadata" in client.meta.service_model.operation_model(operation).input_shape.members
    ):
        raise TypeError("Params['Metadata'] must map str to str")
    if http_method is not None and not isinstance(http_method, str):
        raise TypeError(f"HttpMethod must be a str, not {type(http_method).__name__}")


@contextlib.contextmanager
def upload_failed(filename: str, bucket: str, key: str) -> Iterator[None]:
    """boto3 wraps every ClientError of upload_file, keeping the message. It raises its error
    while handling the ClientError, not "from" it: the ClientError is its __context__ and
    __cause__ is None."""
    try:
        yield
    except ClientError as error:
        raise S3UploadFailedError(f"Failed to upload {filename} to {bucket}/{key}: {error}")  # noqa: B904


@contextlib.contextmanager
def fileobj_retries_exceeded() -> Iterator[None]:
    """boto3 converts s3transfer's RetriesExceededError to its own only in download_file."""
    try:
        yield
    except RetriesExceededError as error:
        raise S3TransferRetriesExceededError(error.last_exception) from None


def as_download_error(error: BaseException, bucket: str, key: str) -> BaseException:
    """s3transfer's error for a GET its If-Match refused (the object changed during the
    download): S3DownloadFailedError; any other error as it is."""
    if (
        isinstance(error, ClientError)
        and error.operation_name == "GetObject"
        and error.response.get("Error", {}).get("Code") == "PreconditionFailed"
    ):
        return S3DownloadFailedError(
            f'Contents of stored object "{key}" in bucket "{bucket}" did not match expected ETag.'
        )
    return error


@contextlib.contextmanager
def download_errors(bucket: str, key: str) -> Iterator[None]:
    """The errors of a download as s3transfer raises them (see `as_download_error`)."""
    try:
        yield
    except ClientError as error:
        raise as_download_error(error, bucket, key) from None


def is_special_file(filename: str) -> bool:
    """s3transfer's test for a destination it writes into as it is, where it would otherwise
    rename a temporary file over it: a character or block device (/dev/null), a FIFO or a
    socket."""
    try:
        mode = os.stat(filename).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def s3transfer_callback(callback: Callable[[int], Any] | None) -> Callable[[int], Any] | None:
    """The Callback of upload_file and download_file as boto3's S3Transfer takes it (`if
    callback:`): one that is false (0, False, a callable empty list subclass) is not called.
    (upload_fileobj and download_fileobj call any Callback that is not None.)"""
    return callback if callback else None


class SpecialFileSink:
    """A device or FIFO destination (/dev/null, a named pipe), written into in order, not
    replaced, as s3transfer does. It is opened at the first bytes, or at the end for an empty
    object: once the object is known to exist, as s3transfer opens it after its HeadObject. A
    missing object then neither waits in a FIFO's opening for a reader (for ever, if none
    comes) nor shows the reader an empty object."""

    def __init__(self, filename: str):
        self._filename = filename
        self._file: Any = None

    def write(self, data: bytes) -> int:
        return self.opened().write(data)

    def opened(self) -> Any:
        if self._file is None:
            self._file = open(self._filename, "wb")
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class SinkWriter:
    """`fileobj.write`, from offset 0 for a seekable `fileobj`: s3transfer writes each part at
    its offset from 0, wherever the file object was, and moves it only once it writes. The
    object is asked whether it seeks when this is made, before any request, as s3transfer
    asks before its HeadObject: a sink that cannot answer (a closed one) fails the call
    first."""

    def __init__(self, fileobj: Any):
        self._fileobj = fileobj
        self._seekable = seekable(fileobj)
        self.started = False

    def __call__(self, data: bytes) -> Any:
        if not self.started:
            self.started = True
            if self._seekable:
                self._fileobj.seek(0)
        return self._fileobj.write(data)

    def finish(self) -> None:
        """An empty object's download writes nothing, but s3transfer writes b"" at offset 0 all
        the same: that moves a seekable sink to 0, and fails on a sink that takes no bytes (a
        text, closed or read-only file), as boto3's download fails."""
        if not self.started:
            self(b"")


def read_result(data: Any) -> Any:
    """What a source's read() returned, refused if it is not bytes: text, or None (a
    non-blocking stream with nothing yet), which would otherwise end the object early."""
    if isinstance(data, str):
        raise TypeError("upload_fileobj needs a binary file object: read() returned str")
    if data is None:
        raise ValueError("upload_fileobj needs a blocking file object: read() returned None")
    return data


class UploadSize:
    """What is left to send of an upload_fileobj source. A seekable one sends the bytes it had
    when the upload began, as s3transfer sends them: bytes added since are left out, and an end
    that comes sooner (the file was cut short meanwhile) is an error, where boto3's upload
    fails too (S3 refuses its short parts, or waits for the bytes it was promised). A stream
    (`size` None) is read to its end."""

    def __init__(self, fileobj: Any, size: int | None):
        self._fileobj = fileobj
        self._size = size
        self._left = size

    def block(self, block_size: int) -> int:
        """How much of the next block to read: 0 once all was read."""
        return block_size if self._left is None else min(block_size, self._left)

    def read(self, wanted: int, data: bytes) -> bytes:
        """`data`, read for a block of `wanted` bytes."""
        if self._left is not None:
            self._left -= len(data)
            if len(data) < wanted:
                raise OSError(
                    f"{self._fileobj!r} ended {self._left} bytes short of the {self._size} it "
                    "had when the upload began: it changed during the upload"
                )
        return data


def _block_reader(fileobj: Any, size: int | None) -> Callable[[int], bytes]:
    """`read(n)` for the engine: the next `n` bytes of `fileobj` (fewer only at its end, which
    for a seekable object is where it ended when the upload began: see UploadSize), as bytes.
    Short reads (pipes, sockets) are read on until the block is full."""
    left = UploadSize(fileobj, size)

    def read(block_size: int) -> bytes:
        wanted = left.block(block_size)
        data = read_result(fileobj.read(wanted)) if wanted else b""
        if 0 < len(data) < wanted:
            pieces = [data]
            missing = wanted - len(data)
            while missing > 0:  # (a read may give more than asked)
                more = read_result(fileobj.read(missing))
                if not more:
                    break
                pieces.append(more)
                missing -= len(more)
            data = b"".join(pieces)
        return left.read(wanted, data if type(data) is bytes else bytes(data))

    return read


def _boto3_must_serve(
    method: str, client: Any, bucket: str, download_args: dict | None = None
) -> bool:
    """Whether a call goes to boto3's own implementation because the engine would not honour it
    faithfully (or acceleration is turned off); `download_args`: a download's ExtraArgs."""
    reason = (
        _unsupported_setting(client)
        or _settings.unsupported_bucket(client, bucket)
        or _settings.unsendable_download_args(client, download_args)
    )
    if reason is not None:
        _log_fallback(method, reason)
    return reason is not None


def _disabled() -> str | None:
    """Why the engine is off, if it is: read on every call, so it can be switched at run time."""
    if os.environ.get("S3TURBO_DISABLE", "") in ("", "0"):
        return None
    return "S3TURBO_DISABLE is set"


def _unsupported_setting(client: Any) -> str | None:
    return (
        _disabled()
        or _settings.unsupported_client_setting(client)
        or _settings.interception(client)
    )


# Distinct ExtraArgs whose UploadPlans a client keeps; the cache starts over beyond that.
_UPLOAD_PLANS_KEPT = 64


def _log_fallback(method: str, reason: str) -> None:
    logger.debug("%s falls back to boto3: %s", method, reason)


_WRAPPER_ATTRIBUTES = frozenset({"_client", "_kept"})


class Kept:
    """What a client's transfers and presigned URLs work out once and keep: UploadPlans by
    frozen ExtraArgs (see Client._upload_plan) and the presigner's endpoints. Nothing in it
    refers to the client, so a patched boto3 client can keep it (see _patch._engine)."""

    def __init__(self) -> None:
        self.presigner = Presigner()
        self.upload_plans: dict[tuple, _settings.UploadPlan] = {}


class Client:
    """A boto3 S3 client whose ``upload_file`` and ``download_file`` run on the Rust engine.
    Every other attribute is the wrapped boto3 client's."""

    def __init__(self, boto3_client: Any, kept: Kept | None = None):
        service = boto3_client.meta.service_model.service_name
        if service != "s3":
            # Its transfer methods would fail later with botocore's OperationNotFoundError.
            raise ValueError(f"s3turbo serves S3 clients, not {service!r}: use boto3's client")
        self._client = boto3_client
        self._kept = Kept() if kept is None else kept

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # What is not the wrapper's own is set on the client, so that a test's
        # `mock.patch.object(s3, "put_object")` (or "_make_api_call") mocks the client's calls.
        if name in _WRAPPER_ATTRIBUTES or hasattr(type(self), name):
            object.__setattr__(self, name, value)
        else:
            setattr(self._client, name, value)

    def __delattr__(self, name: str) -> None:
        if name in vars(self):
            object.__delattr__(self, name)
        else:
            delattr(self._client, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._client)) | set(super().__dir__()))

    def __repr__(self) -> str:
        return f"<s3turbo.Client wrapping {self._client!r}>"

    def close(self) -> None:
        """Closes the connections, the boto3 client's and the engine's, as boto3's close().
        (botocore's own method: after patch(), the client's is this one.)"""
        botocore.client.BaseClient.close(self._client)
        _settings.release(self._client)

    def upload_file(
        self,
        Filename: str | os.PathLike,
        Bucket: str,
        Key: str,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> None:
        planned = self._upload_file_plan(Filename, Bucket, Key, ExtraArgs, Config)
        if planned is None:
            return boto3_transfers.upload_file(
                self._client, Filename, Bucket, Key, ExtraArgs, Callback, Config
            )
        upload, filename = planned
        with upload_failed(filename, Bucket, Key):
            self._call_engine(
                _core.upload_file,
                upload,
                filename,
                Config=Config,
                Callback=s3transfer_callback(Callback),
            )

    def _upload_file_plan(self, Filename, Bucket, Key, ExtraArgs, Config):
        """boto3's checks of an upload_file call, then `(upload, filename)` for the engine, or
        None when boto3 must serve the call."""
        _check_transfer_args(Bucket, ExtraArgs, Config)
        if _boto3_must_serve("upload_file", self._client, Bucket):
            return None
        filename = _filename(Filename)
        # s3transfer checks the ExtraArgs' names as the call is made, then sizes the file
        # before it builds any request: a missing file is FileNotFoundError whatever else is
        # wrong with the request (a bucket name, a parameter's type).
        _settings.check_upload_args(dict(ExtraArgs or {}))
        os.stat(filename)
        upload = self._upload_plan("upload_file", Bucket, Key, ExtraArgs)
        if upload is None:
            return None
        return upload, filename

    def upload_fileobj(
        self,
        Fileobj: Any,
        Bucket: str,
        Key: str,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> None:
        upload, size = self._upload_fileobj_plan(Fileobj, Bucket, Key, ExtraArgs, Config)
        if upload is None:
            return boto3_transfers.upload_fileobj(
                self._client, Fileobj, Bucket, Key, ExtraArgs, Callback, Config
            )
        try:
            # Service errors are raised as they are: boto3 wraps them only in upload_file.
            self._call_engine(
                _core.upload_fileobj,
                upload,
                _block_reader(Fileobj, size),
                Config=_settings.sized_for(size, Config),
                Callback=Callback,
            )
        finally:
            if _settings.closed_after_upload(size, Config):
                Fileobj.close()

    def _upload_fileobj_plan(self, Fileobj, Bucket, Key, ExtraArgs, Config, *, awaitable=False):
        """boto3's checks of an upload_fileobj call, then the engine's upload (None when boto3
        must serve the call) and the bytes it sends (None: a stream). `awaitable`: Fileobj.read
        is a coroutine (s3turbo.aio), which makes it a stream."""
        if not hasattr(Fileobj, "read"):
            raise ValueError("Fileobj must implement read")
        _check_transfer_args(Bucket, ExtraArgs, Config)
        if not awaitable and not readable(Fileobj):
            # s3transfer's error for a file object it cannot read from (opened for writing).
            raise RuntimeError(f"Input {Fileobj} of type: {type(Fileobj)} is not supported.")
        if isinstance(Fileobj, io.TextIOBase):
            # boto3 would wait forever on a text stream; say what is wrong instead.
            raise TypeError("upload_fileobj needs a binary file object, not a text stream")
        if _boto3_must_serve("upload_fileobj", self._client, Bucket):
            return None, None
        size = None if awaitable else _settings.upload_size(Fileobj)
        try:
            return self._upload_plan("upload_fileobj", Bucket, Key, ExtraArgs), size
        except BotoCoreError:
            # Invalid ExtraArgs values: boto3's PutObject raises them, in the task that closes
            # the file object as it ends.
            if _settings.closed_after_upload(size, Config):
                Fileobj.close()
            raise

    def _upload_plan(self, method, bucket, key, extra_args) -> _core.Upload | None:
        """The engine's upload of `extra_args` to `bucket` and `key`, or None when boto3 must
        serve it. Plans are kept per ExtraArgs: most programs upload many files with the same."""
        cache_key = _settings.frozen(extra_args)
        plans = self._kept.upload_plans
        plan = plans.get(cache_key) if cache_key is not None else None
        if plan is None:
            plan = _settings.UploadPlan(self._client, bucket, key, extra_args)
            if cache_key is not None:
                if len(plans) >= _UPLOAD_PLANS_KEPT:
                    plans.clear()
                plans[cache_key] = plan
        else:
            plan.check_target(self._client, bucket, key)
        if plan.unsupported:
            _log_fallback(method, plan.unsupported)
            return None
        return plan.upload(bucket, key)

    def download_file(
        self,
        Bucket: str,
        Key: str,
        Filename: str | os.PathLike,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> None:
        extra_args = self._download_plan("download_file", Bucket, Key, ExtraArgs, Config)
        if extra_args is None:
            return boto3_transfers.download_file(
                self._client, Bucket, Key, Filename, ExtraArgs, Callback, Config
            )
        filename = _filename(Filename)
        Callback = s3transfer_callback(Callback)
        if is_special_file(filename):
            sink = SpecialFileSink(filename)
            try:
                with download_errors(Bucket, Key):
                    self._call_engine(
                        _core.download_fileobj,
                        Bucket,
                        Key,
                        sink.write,
                        extra_args=extra_args,
                        Config=Config,
                        Callback=Callback,
                    )
                sink.opened()  # an empty object's too
            finally:
                sink.close()
            return
        with download_errors(Bucket, Key):
            self._call_engine(
                _core.download_file,
                Bucket,
                Key,
                filename,
                extra_args=extra_args,
                Config=Config,
                Callback=Callback,
            )

    def download_fileobj(
        self,
        Bucket: str,
        Key: str,
        Fileobj: Any,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> None:
        if not hasattr(Fileobj, "write"):
            raise ValueError("Fileobj must implement write")
        extra_args = self._download_plan("download_fileobj", Bucket, Key, ExtraArgs, Config)
        if extra_args is None:
            return boto3_transfers.download_fileobj(
                self._client, Bucket, Key, Fileobj, ExtraArgs, Callback, Config
            )
        # The engine fetches parts in parallel; the sink gets them in order, on this thread.
        write = SinkWriter(Fileobj)
        with fileobj_retries_exceeded(), download_errors(Bucket, Key):
            self._call_engine(
                _core.download_fileobj,
                Bucket,
                Key,
                write,
                extra_args=extra_args,
                Config=Config,
                Callback=Callback,
            )
        write.finish()

    def _download_plan(self, method, Bucket, Key, ExtraArgs, Config) -> dict[str, str] | None:
        """boto3's checks of a download call, then its ExtraArgs encoded for the engine, or None
        when boto3 must serve the call."""
        _check_transfer_args(Bucket, ExtraArgs, Config)
        if _boto3_must_serve(method, self._client, Bucket, ExtraArgs):
            return None
        return _settings.download_args(self._client, Bucket, Key, ExtraArgs)

    def _call_engine(self, engine_call, *args, Config, Callback, **kwargs):
        """Runs `engine_call` with this client's connection settings and the TransferConfig's
        options; a service error comes out as the client's modeled exception class."""
        try:
            engine_call(
                _settings.connection(self._client),
                _settings.options(Config),
                *args,
                callback=Callback,
                **kwargs,
            )
        except ClientError as error:
            raise self._modeled(error) from None

    def generate_presigned_url(
        self,
        ClientMethod: str,
        Params: dict | None = None,
        ExpiresIn: int = 3600,
        HttpMethod: str | None = None,
    ) -> str:
        # The URL is computed by the engine; boto3 makes the ones it does not cover (see
        # _presign.py). The docstring is botocore's (below).
        _check_presign_args(self._client, ClientMethod, Params, HttpMethod)
        # As botocore: the method is signed upper-cased, and None means the default expiry.
        HttpMethod = HttpMethod.upper() if HttpMethod is not None else None
        ExpiresIn = 3600 if ExpiresIn is None else ExpiresIn
        disabled = _disabled()
        if disabled:
            _log_fallback("generate_presigned_url", disabled)
        elif not self._presign_handler(ClientMethod):
            try:
                return self._kept.presigner.url(
                    self._client, ClientMethod, Params, ExpiresIn, HttpMethod
                )
            except BotocoreSigns as reason:
                _log_fallback("generate_presigned_url", str(reason))
        return botocore_generate_presigned_url(
            self._client, ClientMethod, Params=Params, ExpiresIn=ExpiresIn, HttpMethod=HttpMethod
        )

    def _presign_handler(self, client_method: str) -> str | None:
        """An event handler on the events of presigning `client_method` (mlflow's moves a header
        into the query): it runs only in botocore's presigning."""
        operation = PRESIGNED_OPERATIONS.get(client_method)
        if operation is None:
            return None
        handler = _settings.foreign_handler(self._client, (operation,), PRESIGN_EVENTS)
        if handler is not None:
            _log_fallback("generate_presigned_url", handler)
        return handler

    def upload_directory(
        self,
        local_dir: str | os.PathLike,
        Bucket: str,
        Prefix: str = "",
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> dict[str, str]:
        """Uploads every file under `local_dir` to `Prefix` + its relative path ("/"-separated),
        many at once; ContentType is guessed from each name unless ExtraArgs gives one. Returns
        {key: path}; raises s3turbo.DirectoryTransferError, after the others are done, if any
        failed."""
        _check_transfer_args(Bucket, ExtraArgs, Config)
        boto3_serves = _boto3_must_serve("upload_directory", self._client, Bucket)
        return _directory.upload_directory(
            self, local_dir, Bucket, Prefix, ExtraArgs, Callback, Config, boto3_serves
        )

    def download_directory(
        self,
        Bucket: str,
        Prefix: str,
        local_dir: str | os.PathLike,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> dict[str, str]:
        """Downloads every object under `Prefix` to `local_dir` + the rest of its key, many at
        once; a key that would land outside `local_dir` is refused. Returns {key: path}; raises
        s3turbo.DirectoryTransferError, after the others are done, if any failed."""
        _check_transfer_args(Bucket, ExtraArgs, Config)
        boto3_serves = _boto3_must_serve("download_directory", self._client, Bucket, ExtraArgs)
        return _directory.download_directory(
            self, Bucket, Prefix, local_dir, ExtraArgs, Callback, Config, boto3_serves
        )

    def _modeled(self, error: ClientError) -> ClientError:
        """S3's error answer as the client's modeled class (e.g. ``NoSuchBucket``), as boto3
        raises it; a ClientError the user's own code raised (a Callback, a file object) as it
        is, as boto3 lets it through."""
        if not getattr(error, "_s3turbo_service_error", False):
            return error
        code = error.response.get("Error", {}).get("Code", "")
        error_class = self._client.exceptions.from_code(code)
        if type(error) is error_class:
            return error
        return error_class(error.response, error.operation_name)


# help() and IDEs show boto3's and botocore's documentation of the methods their users call.
for _name in ("upload_file", "download_file", "upload_fileobj", "download_fileobj"):
    getattr(Client, _name).__doc__ = getattr(boto3.s3.inject, _name).__doc__
Client.generate_presigned_url.__doc__ = botocore_generate_presigned_url.__doc__
