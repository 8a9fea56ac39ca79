# The engine's Python surface (src/python.rs and src/python_async.rs), for type checkers and
# editors. `make lint` checks it against the built module with mypy's stubtest.
#
# Awaitables are asyncio futures of the running loop (pyo3-async-runtimes). Errors are raised
# as the exceptions boto3 raises (ClientError, S3UploadFailedError's cause, OSError, ...).

from collections.abc import Awaitable, Callable, Mapping, Sequence
from os import PathLike
from typing import final

__all__ = [
    "__version__",
    "Connection",
    "RetryQuota",
    "Options",
    "Upload",
    "upload_file",
    "upload_fileobj",
    "download_file",
    "download_fileobj",
    "upload_files",
    "download_files",
    "list_objects",
    "presign_url",
    "presign_url_v2",
    "Transfer",
    "BlockSender",
    "ChunkReceiver",
    "upload_file_async",
    "download_file_async",
    "upload_stream_async",
    "download_stream_async",
    "upload_files_async",
    "list_objects_async",
    "download_files_async",
]

__version__: str

_Path = str | PathLike[str]
# The Callback of a transfer: called with byte increments (negative after a retried part).
_Callback = Callable[[int], object]
# For each file of a directory transfer, in order: None, or the exception boto3 would raise.
_Outcomes = list[BaseException | None]

@final
class RetryQuota:
    """A botocore client's retry quota, shared by that client's connections."""

    def __new__(cls) -> RetryQuota: ...

@final
class Connection:
    """A botocore client's settings as the engine uses them, and its connection pool."""

    def __new__(
        cls,
        *,
        retry_quota: RetryQuota,
        endpoint_url: str | None,
        region: str,
        access_key: str | None,
        secret_key: str | None,
        session_token: str | None,
        refresh: Callable[[], tuple[str, str, str | None, float | None]] | None,
        credentials_id: int,
        force_path_style: bool,
        accelerate: bool,
        dual_stack: bool,
        fips: bool,
        global_endpoint: bool,
        use_arn_region: bool,
        disable_s3_express_session_auth: bool,
        ca_bundle: _Path | None,
        verify_certificates: bool,
        tcp_keepalive: bool,
        client_cert: _Path | None,
        client_key: _Path | None,
        http_proxy: str | None,
        https_proxy: str | None,
        connect_timeout: float,
        read_timeout: float,
        max_pool_connections: int,
        max_attempts: int,
        retry_mode: str,
        retry_behavior_2_1: bool,
        request_checksum_calculation: str,
        response_checksum_validation: str,
        user_agent: str | None,
        user_agent_suffix: str | None,
    ) -> Connection: ...

@final
class Options:
    """The TransferConfig values the engine uses."""

    def __new__(
        cls,
        *,
        multipart_threshold: int,
        multipart_chunksize: int,
        max_concurrency: int,
        num_download_attempts: int,
        max_bandwidth: int | None = None,
    ) -> Options: ...

@final
class Upload:
    """What an upload sends besides its bytes: bucket, key, headers and checksum choices."""

    def __new__(
        cls,
        *,
        bucket: str,
        key: str,
        headers: Mapping[str, Sequence[tuple[str, str]]],
        put_object_checksum: str | None,
        put_object_checksum_value: tuple[str, str] | None,
        upload_part_checksum: str | None,
        sign_put_object_payload: bool,
        sign_upload_part_payload: bool,
    ) -> Upload: ...

def upload_file(
    connection: Connection,
    options: Options,
    upload: Upload,
    filename: _Path,
    *,
    callback: _Callback | None,
) -> None: ...
def upload_fileobj(
    connection: Connection,
    options: Options,
    upload: Upload,
    read: Callable[[int], bytes],
    *,
    callback: _Callback | None,
) -> None: ...
def download_file(
    connection: Connection,
    options: Options,
    bucket: str,
    key: str,
    filename: _Path,
    *,
    extra_args: Mapping[str, str],
    callback: _Callback | None,
) -> None: ...
def download_fileobj(
    connection: Connection,
    options: Options,
    bucket: str,
    key: str,
    write: Callable[[bytes], object],
    *,
    extra_args: Mapping[str, str],
    callback: _Callback | None,
) -> None: ...
def upload_files(
    connection: Connection,
    options: Options,
    upload: Upload,
    files: Sequence[tuple[_Path, str, str | None]],
    objects_in_flight: int,
    *,
    callback: _Callback | None,
) -> _Outcomes: ...
def download_files(
    connection: Connection,
    options: Options,
    bucket: str,
    files: Sequence[tuple[str, _Path]],
    objects_in_flight: int,
    *,
    extra_args: Mapping[str, str],
    callback: _Callback | None,
) -> _Outcomes: ...
def list_objects(
    connection: Connection, bucket: str, prefix: str, extra_args: Mapping[str, str]
) -> list[tuple[str, int]]: ...
def presign_url(
    method: str,
    endpoint: str,
    host: str,
    path_prefix: str,
    key: str,
    query: Sequence[tuple[str, str]],
    headers: Sequence[tuple[str, str]],
    region: str,
    access_key: str,
    secret_key: str,
    session_token: str | None,
    expires_in: str,
    now: float,
) -> str: ...
def presign_url_v2(
    method: str,
    endpoint: str,
    path_prefix: str,
    bucket: str,
    key: str,
    query: Sequence[tuple[str, str]],
    headers: Sequence[tuple[str, str]],
    access_key: str,
    secret_key: str,
    session_token: str | None,
    expires: str,
) -> str: ...

@final
class Transfer:
    """One asyncio transfer's progress and cancellation."""

    def __new__(cls, ask_for_report: Callable[[], bool]) -> Transfer: ...
    def transferred(self) -> int: ...
    def reported(self, transferred: int) -> None: ...
    def cancel(self) -> None: ...

@final
class BlockSender:
    """The blocks of a stream on their way to `upload_stream_async`'s engine."""

    @property
    def block_size(self) -> int: ...
    def send(self, block: bytes) -> Awaitable[bool]: ...
    def end(self) -> Awaitable[bool]: ...
    def close(self) -> None: ...

@final
class ChunkReceiver:
    """The object's bytes, in order, from `download_stream_async`'s engine."""

    def next(self) -> Awaitable[bytes | None]: ...

def upload_file_async(
    connection: Connection, options: Options, upload: Upload, filename: _Path, transfer: Transfer
) -> Awaitable[None]: ...
def download_file_async(
    connection: Connection,
    options: Options,
    bucket: str,
    key: str,
    filename: _Path,
    extra_args: Mapping[str, str],
    transfer: Transfer,
) -> Awaitable[None]: ...
def upload_stream_async(
    connection: Connection, options: Options, upload: Upload, transfer: Transfer
) -> tuple[Awaitable[None], BlockSender]: ...
def download_stream_async(
    connection: Connection,
    options: Options,
    bucket: str,
    key: str,
    extra_args: Mapping[str, str],
    transfer: Transfer,
) -> tuple[Awaitable[None], ChunkReceiver]: ...
def upload_files_async(
    connection: Connection,
    options: Options,
    upload: Upload,
    files: Sequence[tuple[_Path, str, str | None]],
    objects_in_flight: int,
    transfer: Transfer,
) -> Awaitable[_Outcomes]: ...
def download_files_async(
    connection: Connection,
    options: Options,
    bucket: str,
    files: Sequence[tuple[str, _Path]],
    objects_in_flight: int,
    extra_args: Mapping[str, str],
    transfer: Transfer,
) -> Awaitable[_Outcomes]: ...
def list_objects_async(
    connection: Connection, bucket: str, prefix: str, extra_args: Mapping[str, str]
) -> Awaitable[list[tuple[str, int]]]: ...
