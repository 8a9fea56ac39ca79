"""s3turbo.aio: the file transfers as coroutines, on the same engine as the sync API.

    async with s3turbo.aio.client("s3") as s3:
        await s3.upload_file("big.bin", "bucket", "k", Callback=progress)

The event loop is never blocked by a transfer: the engine moves the bytes on its own threads,
a sync file object's methods run in a worker thread, async ones (whose read/write are
coroutines, e.g. aiofiles) are awaited. Callbacks run on the event loop thread, batched about
every 50 ms; an `async def` Callback is awaited. Cancelling the task stops the transfer and
waits for its clean-up: a multipart upload is aborted, a download leaves no temporary file and
an existing destination untouched, and a sync file object's read or write in flight has
returned; an upload whose last request is under way (a CompleteMultipartUpload, or a PutObject
whose body has all gone) ends when S3 has answered it.
Exceptions are the sync API's (boto3's). What the engine does not serve, boto3 does, in a worker
thread; cancelling the task stops that transfer too, at its next bytes, with boto3's clean-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import io
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from . import _boto3 as boto3_transfers
from . import _core, _directory, _settings
from ._client import (
    Client,
    SinkWriter,
    SpecialFileSink,
    UploadSize,
    _boto3_must_serve,
    _check_transfer_args,
    _filename,
    download_errors,
    fileobj_retries_exceeded,
    is_special_file,
    read_result,
    s3transfer_callback,
    upload_failed,
)
from ._directory import TransferStopped

# How often progress reaches the Callback, as in the sync API.
_PROGRESS_INTERVAL = 0.05


def client(*args: Any, **kwargs: Any) -> AsyncClient:
    """Same arguments as ``boto3.client("s3", ...)``."""
    return AsyncClient(boto3.client(*args, **kwargs))


# The wrapper's own attributes; others set on it are (also) set on its boto3 client.
_WRAPPER_ATTRIBUTES = frozenset({"_sync", "_client"})


class AsyncClient:
    """The transfer methods of ``s3turbo.Client`` as coroutines. The boto3 client's API
    operations (``list_objects_v2`` and the rest) are coroutines too, run in a worker thread;
    its other attributes (``meta``, ``exceptions``, ...) are its own."""

    def __init__(self, boto3_client: Any):
        self._sync = Client(boto3_client)
        self._client = boto3_client

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def close(self) -> Awaitable[None]:
        """Closes the client's connections, the engine's and botocore's, at once, as boto3's
        ``close()`` does; the result may be awaited, as aiobotocore's ``close()`` is."""
        self._sync.close()
        return _Done()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WRAPPER_ATTRIBUTES or hasattr(type(self), name):
            object.__setattr__(self, name, value)
        elif name in self._client.meta.method_to_api_mapping:
            # A test's mock of an operation (`mock.patch.object(s3, "put_object")`, an
            # AsyncMock) is what `await s3.put_object(...)` calls, and what the transfers call,
            # as aiobotocore's transfers would: the boto3 client gets a plain function that
            # calls it, and the transfers fall back to boto3, which calls that.
            object.__setattr__(self, name, value)
            setattr(self._client, name, _AwaitedOnLoop(value))
        else:
            # As on an s3turbo.Client (a mock of `_make_api_call`, say).
            setattr(self._client, name, value)

    def __delattr__(self, name: str) -> None:
        if name in vars(self):
            object.__delattr__(self, name)
            if name not in self._client.meta.method_to_api_mapping:
                return
        delattr(self._client, name)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self._client.meta.method_to_api_mapping:
            return attribute

        async def operation(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(attribute, *args, **kwargs)

        operation.__name__ = name
        operation.__doc__ = attribute.__doc__
        return operation

    def __repr__(self) -> str:
        return f"<s3turbo.aio.AsyncClient wrapping {self._client!r}>"

    def generate_presigned_url(
        self,
        ClientMethod: str,
        Params: dict | None = None,
        ExpiresIn: int = 3600,
        HttpMethod: str | None = None,
    ) -> str:
        """A plain call: presigning makes no request."""
        return self._sync.generate_presigned_url(ClientMethod, Params, ExpiresIn, HttpMethod)

    async def upload_file(
        self,
        Filename: str | os.PathLike,
        Bucket: str,
        Key: str,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> None:
        planned = self._sync._upload_file_plan(Filename, Bucket, Key, ExtraArgs, Config)
        Callback = s3transfer_callback(Callback)  # also for boto3's, called through ours
        if planned is None:
            return await _boto3_in_thread(
                lambda callback: boto3_transfers.upload_file(
                    self._client, Filename, Bucket, Key, ExtraArgs, callback, Config
                ),
                Callback,
            )
        upload, filename = planned
        with upload_failed(filename, Bucket, Key):
            transfer, asked = _transfer()
            await self._run(
                transfer,
                asked,
                _core.upload_file_async(
                    *await self._engine_args(Config), upload, filename, transfer
                ),
                Callback,
            )

    async def download_file(
        self,
        Bucket: str,
        Key: str,
        Filename: str | os.PathLike,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> None:
        extra_args = self._sync._download_plan("download_file", Bucket, Key, ExtraArgs, Config)
        Callback = s3transfer_callback(Callback)  # also for boto3's, called through ours
        if extra_args is None:
            return await _boto3_in_thread(
                lambda callback: boto3_transfers.download_file(
                    self._client, Bucket, Key, Filename, ExtraArgs, callback, Config
                ),
                Callback,
            )
        filename = _filename(Filename)
        if is_special_file(filename):
            # Opened in a worker thread, as a FIFO's opening waits for its reader.
            sink = SpecialFileSink(filename)
            try:
                write = functools.partial(_in_thread, sink.write)
                await self._download_to(write, Bucket, Key, extra_args, Callback, Config)
                await _in_thread(sink.opened)  # an empty object's too
            finally:
                sink.close()
            return
        transfer, asked = _transfer()
        with download_errors(Bucket, Key):
            await self._run(
                transfer,
                asked,
                _core.download_file_async(
                    *await self._engine_args(Config), Bucket, Key, filename, extra_args, transfer
                ),
                Callback,
            )

    async def upload_fileobj(
        self,
        Fileobj: Any,
        Bucket: str,
        Key: str,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> None:
        """Fileobj: a binary file object, sync or async (its read a coroutine)."""
        read = _reader(Fileobj)
        plan = (Fileobj, Bucket, Key, ExtraArgs, Config)
        if _is_async(Fileobj.read):
            upload, size = self._sync._upload_fileobj_plan(*plan, awaitable=True)
        elif _may_block(Fileobj):
            # Its readable(), seek() and tell() may block as its read() may.
            upload, size = await _in_thread(self._sync._upload_fileobj_plan, *plan)
        else:
            upload, size = self._sync._upload_fileobj_plan(*plan)
        if upload is None:
            # boto3 reads only sync file objects: an async one is read into memory first.
            if _is_async(Fileobj.read):
                Fileobj = io.BytesIO(await Fileobj.read())
            return await _boto3_in_thread(
                lambda callback: boto3_transfers.upload_fileobj(
                    self._client, Fileobj, Bucket, Key, ExtraArgs, callback, Config
                ),
                Callback,
            )
        transfer, asked = _transfer()
        try:
            engine_args = await self._engine_args(_settings.sized_for(size, Config))
            done, sender = _core.upload_stream_async(*engine_args, upload, transfer)

            async def send_blocks(_report: Callable[[], Awaitable[None]]) -> None:
                try:
                    left = UploadSize(Fileobj, size)
                    while wanted := left.block(sender.block_size):
                        block = left.read(wanted, await _full_block(read, wanted))
                        if not block:
                            break
                        if not await sender.send(block):
                            return  # the engine stopped: `done` says why
                    await sender.end()
                finally:
                    sender.close()  # without end(), after a failed read: nothing is stored

            await self._run(transfer, asked, done, Callback, send_blocks)
        finally:
            if _settings.closed_after_upload(size, Config):  # as boto3, and this API's fallback
                await _in_thread(Fileobj.close) if _may_block(Fileobj) else Fileobj.close()

    async def download_fileobj(
        self,
        Bucket: str,
        Key: str,
        Fileobj: Any,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> None:
        """Fileobj: a binary file object, sync or async (its write a coroutine); it gets the
        object's bytes in order."""
        if not hasattr(Fileobj, "write"):
            raise ValueError("Fileobj must implement write")
        extra_args = self._sync._download_plan("download_fileobj", Bucket, Key, ExtraArgs, Config)
        if extra_args is None:
            # boto3 writes a sync file object from its threads, an async one through this loop.
            sink = Fileobj
            if _is_async(Fileobj.write):
                sink = _LoopWriter(Fileobj.write, asyncio.get_running_loop())
            return await _boto3_in_thread(
                lambda callback: boto3_transfers.download_fileobj(
                    self._client, Bucket, Key, sink, ExtraArgs, callback, Config
                ),
                Callback,
            )
        with fileobj_retries_exceeded():
            write = await _writer(Fileobj)
            await self._download_to(write, Bucket, Key, extra_args, Callback, Config)

    async def _download_to(self, write, Bucket, Key, extra_args, Callback, Config) -> None:
        """The engine's download of the object into `write`, in order (a coroutine function)."""
        transfer, asked = _transfer()
        done, chunks = _core.download_stream_async(
            *await self._engine_args(Config), Bucket, Key, extra_args, transfer
        )

        wrote = False

        async def write_chunks(report: Callable[[], Awaitable[None]]) -> None:
            nonlocal wrote
            while (chunk := await chunks.next()) is not None:
                # The callback sees bytes before the sink gets them, as s3transfer's sees them
                # as they are read: a callback that raises stops what it has not seen.
                await report()
                await write(chunk)
                wrote = True

        with download_errors(Bucket, Key):
            await self._run(transfer, asked, done, Callback, write_chunks)
        if not wrote:  # an empty object: see SinkWriter.finish
            await write(b"")

    async def upload_directory(
        self,
        local_dir: str | os.PathLike,
        Bucket: str,
        Prefix: str = "",
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> dict[str, str]:
        """``s3turbo.Client.upload_directory`` as a coroutine: the folder is walked in a worker
        thread, the files are uploaded by the engine."""
        _check_transfer_args(Bucket, ExtraArgs, Config)
        boto3_serves = _boto3_must_serve("upload_directory", self._client, Bucket)
        batch = await asyncio.to_thread(
            _directory.UploadBatch, self._sync, local_dir, Bucket, Prefix, ExtraArgs
        )
        upload = None if boto3_serves else batch.engine_upload()
        if upload is None:
            return await _boto3_in_thread(
                lambda callback: batch.one_by_one(callback, Config), Callback
            )
        transfer, asked = _transfer()
        outcomes = await self._run(
            transfer,
            asked,
            _core.upload_files_async(
                *await self._engine_args(Config),
                upload,
                batch.engine_files(),
                _directory.objects_in_flight(Config),
                transfer,
            ),
            Callback,
        )
        return batch.report(outcomes)

    async def download_directory(
        self,
        Bucket: str,
        Prefix: str,
        local_dir: str | os.PathLike,
        ExtraArgs: dict | None = None,
        Callback: Callable[[int], Any] | None = None,
        Config: TransferConfig | None = None,
    ) -> dict[str, str]:
        """``s3turbo.Client.download_directory`` as a coroutine: the engine lists and downloads
        the objects, their folders are made in a worker thread."""
        _check_transfer_args(Bucket, ExtraArgs, Config)
        if _boto3_must_serve("download_directory", self._client, Bucket, ExtraArgs):
            return await _boto3_in_thread(
                lambda callback: _directory.download_directory(
                    self._sync, Bucket, Prefix, local_dir, ExtraArgs, callback, Config, True
                ),
                Callback,
            )
        encoded_args = _settings.download_args(self._client, Bucket, "-", ExtraArgs)
        batch = await asyncio.to_thread(
            _directory.DownloadBatch, self._sync, Bucket, Prefix, local_dir
        )
        try:
            connection = await self._connection()
            objects = await _core.list_objects_async(connection, Bucket, batch.prefix, encoded_args)
        except ClientError as error:
            raise self._sync._modeled(error) from None
        transfer, asked = _transfer()
        try:
            # Waited for even if cancelled, so that no folder is made after the clean-up.
            await _in_thread(batch.place, objects)
            outcomes = await self._run(
                transfer,
                asked,
                _core.download_files_async(
                    *await self._engine_args(Config),
                    Bucket,
                    list(batch.files.items()),
                    _directory.objects_in_flight(Config),
                    encoded_args,
                    transfer,
                ),
                Callback,
            )
        except BaseException:  # cancelled, a Callback that raised
            batch.remove_empty_folders()
            raise
        return batch.report(outcomes)

    async def _engine_args(
        self, config: TransferConfig | None
    ) -> tuple[_core.Connection, _core.Options]:
        return await self._connection(), _settings.options(config)

    async def _connection(self) -> _core.Connection:
        """The engine's connection for this client. Credentials botocore must fetch first
        (refreshable ones that are due, SSO's and assume-role's not yet loaded) take a request
        of their own, which blocks: then in a worker thread."""
        if _settings.credentials_due(self._client):
            return await asyncio.to_thread(_settings.connection, self._client)
        return _settings.connection(self._client)

    async def _run(
        self,
        transfer: _core.Transfer,
        asked: asyncio.Event,
        done: Awaitable[Any],
        callback: Callable[[int], Any] | None,
        pump: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]] | None = None,
    ) -> Any:
        """Waits for the engine (`done`) and returns its result, handing progress to
        `callback` on this loop every 50 ms, and at once when the engine asks before it commits,
        while `pump(report)` (the file object's reads or writes) runs beside it; `report` hands
        the progress so far to `callback` at once. Without a callback the task sleeps until
        the engine asks or it or the pump is done (a server's thousands of idle transfers cost
        nothing).
        If this task is cancelled, or the callback or the pump raises, the engine is cancelled
        and its clean-up awaited before the exception goes on."""
        reported = 0
        # One report at a time (the pump's and this loop's): an `async def` Callback's increments
        # arrive in order, and a report that says it is done is (see `Transfer.reported`).
        one_at_a_time = asyncio.Lock()

        async def report() -> None:
            nonlocal reported
            async with one_at_a_time:
                transferred = transfer.transferred()
                if callback is not None and transferred != reported:
                    increment, reported = transferred - reported, transferred
                    await _awaited(callback(increment))
                transfer.reported(transferred)

        engine = asyncio.ensure_future(done)
        pumping = asyncio.ensure_future(pump(report)) if pump is not None else None

        try:
            waiting: set[asyncio.Future[Any]] = {engine} if pumping is None else {engine, pumping}
            while not engine.done():
                ask = asyncio.ensure_future(asked.wait())
                try:
                    finished, _ = await asyncio.wait(
                        waiting | {ask},
                        timeout=_PROGRESS_INTERVAL if callback is not None else None,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    # Also when this task is cancelled: a pending task left to the garbage
                    # collector is logged as an error ("Task was destroyed but it is pending!").
                    # Not when the coroutine is closed with its loop (GeneratorExit): a closed
                    # loop runs nothing, and raises on a cancel.
                    if not ask.get_loop().is_closed():
                        ask.cancel()
                asked.clear()
                if pumping is not None and pumping in finished:
                    waiting.discard(pumping)
                    pumping.result()  # raises what the file object raised
                await report()
            if pumping is not None:
                await pumping
            result = engine.result()
            await report()
            return result
        except ClientError as error:
            raise self._sync._modeled(error) from None
        except GeneratorExit:
            # The coroutine is being closed without its loop (the loop was closed with this
            # task pending): nothing can be awaited any more. The engine cleans up on its own.
            transfer.cancel()
            raise
        except BaseException:
            transfer.cancel()
            if pumping is not None:
                pumping.cancel()
            # The clean-up (abort the multipart upload, remove the temporary file) is the
            # engine's; it ends `engine` with an error that the exception in flight replaces.
            # The pump ends once the file object's read or write in flight has returned.
            await _until_done(engine, pumping)
            raise


async def _boto3_in_thread(
    transfer: Callable[[Callable[[int], Any]], Any], callback: Callable[[int], Any] | None
) -> Any:
    """Runs a boto3 transfer in a worker thread: `transfer` is called with the Callback to give
    boto3, which calls `callback` (from boto3's threads, as boto3 does; an `async def` one is
    awaited on this loop, that thread waiting for it). A thread cannot be
    stopped from outside, so once this task is cancelled that Callback raises at the transfer's
    next bytes: boto3 stops as for any raising Callback, aborting the multipart upload or
    removing the temporary file, and the task ends after that clean-up."""
    cancelled = threading.Event()
    loop = asyncio.get_running_loop()

    def stop_when_cancelled(increment: int) -> None:
        if cancelled.is_set():
            raise TransferStopped("the asyncio task was cancelled")
        if callback is not None:
            progress = callback(increment)
            if inspect.isawaitable(progress):
                _wait_on(loop, progress)

    return await _in_thread(transfer, stop_when_cancelled, cancelled=cancelled)


async def _in_thread(
    function: Callable[..., Any], *args: Any, cancelled: threading.Event | None = None
) -> Any:
    """`function(*args)` in a worker thread. A thread cannot be stopped: if this task is
    cancelled, `cancelled` is set (for `function` to stop early) and the task still waits for
    the call to return before it ends, so that whatever the call uses (a file object the caller
    may close once the task has ended) is no longer in use. It waits through further cancels
    (asyncio.run's end cancels every task, and the transfer cancels its pump as well), and the
    call is a future, not a task, which such cancels do not reach."""
    call = functools.partial(contextvars.copy_context().run, function, *args)
    running = asyncio.get_running_loop().run_in_executor(None, call)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        if cancelled is not None:
            cancelled.set()
        await _until_done(running)
        raise


async def _until_done(*futures: asyncio.Future | None) -> None:
    """Waits until `futures` (None: none) have ended, through any further cancels of this
    task (asyncio.run's end cancels every task, and TaskGroup and wait_for cancel again):
    asyncio.wait, unlike gather, does not cancel what it waits for. Their outcomes are
    taken, not lost; the exception in flight goes on instead."""
    pending = {future for future in futures if future is not None}
    while pending:
        with contextlib.suppress(asyncio.CancelledError):
            _, pending = await asyncio.wait(pending)
    for future in futures:
        if future is not None and not future.cancelled():
            future.exception()


def _transfer() -> tuple[_core.Transfer, asyncio.Event]:
    """The engine's handle of one transfer, and the event the engine sets (from its thread) when
    it asks for a report before it commits: the Callback, if there is one, sees every byte and
    can still stop the transfer before the object or file is complete; and a cancel of this
    task that came meanwhile reaches the engine before it commits, not after (the engine hears
    of a cancel only once the task has resumed: a download put into place in between was
    reported as cancelled)."""
    loop = asyncio.get_running_loop()
    asked = asyncio.Event()

    def ask() -> bool:
        """Whether the loop could be asked: one closed with the transfer pending cannot, and the
        transfer stops (see `Transfer`)."""
        try:
            loop.call_soon_threadsafe(asked.set)
        except RuntimeError:  # the loop is closed
            return False
        return True

    return _core.Transfer(ask), asked


def _is_async(method: Any) -> bool:
    return inspect.iscoroutinefunction(method)


def _may_block(fileobj: Any) -> bool:
    """Whether a sync file object's methods may block (on a disk, a pipe, a network): any but
    an in-memory io.BytesIO (not a subclass, whose methods may do anything), whose own calls
    cost less than a trip to a worker thread."""
    return type(fileobj) is not io.BytesIO


def _reader(fileobj: Any) -> Callable[[int], Awaitable[bytes]]:
    """An awaitable read(n): the object's own if it is a coroutine, else its read in a worker
    thread (a file read may take milliseconds the loop should not wait)."""
    if not hasattr(fileobj, "read"):
        raise ValueError("Fileobj must implement read")
    if _is_async(fileobj.read):
        return fileobj.read
    return lambda size: _in_thread(fileobj.read, size)


async def _writer(fileobj: Any) -> Callable[[bytes], Awaitable[Any]]:
    """An awaitable write: the object's own if it is a coroutine, else the sync API's (from
    offset 0 for a seekable object, as s3transfer writes) in a worker thread."""
    if _is_async(fileobj.write):
        return fileobj.write
    write = await _in_thread(SinkWriter, fileobj)
    return lambda data: _in_thread(write, data)


async def _full_block(read: Callable[[int], Awaitable[bytes]], size: int) -> bytes:
    """The next `size` bytes (fewer only at the end of the stream): short reads (pipes,
    sockets) are read on until the block is full."""
    pieces = []
    missing = size
    while missing > 0:  # (a read may give more than asked)
        data = read_result(await read(missing))
        if not data:
            break
        pieces.append(bytes(data))
        missing -= len(data)
    return b"".join(pieces)


async def _awaited(result: Any) -> Any:
    """`result`, awaited if it is an awaitable: what an `async def` Callback returns."""
    return await result if inspect.isawaitable(result) else result


# Set when the interpreter begins to exit, before it waits for the worker threads (threading's
# own hook for that, which concurrent.futures uses too; absent, a stopped loop is waited for).
_EXITING = threading.Event()
if hasattr(threading, "_register_atexit"):
    threading._register_atexit(_EXITING.set)


def _wait_on(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[Any]) -> Any:
    """Awaits `awaitable` on `loop` from a worker thread (boto3's) and returns its result."""
    running = asyncio.run_coroutine_threadsafe(_awaited(awaitable), loop)
    while True:
        try:
            return running.result(timeout=0.1)
        except concurrent.futures.TimeoutError:
            # A loop that is only paused (between two run_until_complete) runs it later. One
            # that is closed never will, nor one stopped when the interpreter exits: boto3's
            # transfer fails, and its thread ends (the process could not exit while it waited).
            if loop.is_closed() or (_EXITING.is_set() and not loop.is_running()):
                running.cancel()
                raise RuntimeError("the event loop stopped during the transfer") from None


class _AwaitedOnLoop:
    """`operation` (a mock of an operation set on an AsyncClient) as boto3's threads call a
    client's operations: a coroutine it returns is awaited on the event loop that was running
    when it was set (a test's), or in a loop of its own if none was, and its result returned."""

    def __init__(self, operation: Callable[..., Any]):
        self._operation = operation
        self._loop = _running_loop()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self._operation(*args, **kwargs)
        if not inspect.isawaitable(result):
            return result
        if _running_loop() is not None:
            # Only a call on the boto3 client itself, not the transfers', comes from a loop's
            # thread; waiting there for that loop would hang.
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise RuntimeError("a coroutine mock of an operation called from an event loop")
        if self._loop is not None and self._loop.is_running():
            return _wait_on(self._loop, result)
        return asyncio.run(_awaited(result))

    def __repr__(self) -> str:
        return repr(self._operation)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Done:
    """An awaitable with nothing left to do."""

    def __await__(self):
        return iter(())


class _LoopWriter:
    """A sync file object, for boto3's threads, whose writes go to an async file object's
    `write` on `loop`, in order (boto3 writes an object that does not seek in order)."""

    def __init__(self, write: Callable[[bytes], Awaitable[Any]], loop: asyncio.AbstractEventLoop):
        self._write = write
        self._loop = loop

    def write(self, data: bytes) -> Any:
        return _wait_on(self._loop, self._write(data))

    def seekable(self) -> bool:
        return False
