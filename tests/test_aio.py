"""s3turbo.aio: the transfers as coroutines on the same engine; callbacks on the loop, a loop
that never stalls, clean cancellation, async file objects, the sync API's exceptions."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError
from helpers import (
    MIB,
    THRESHOLD,
    Callbacks,
    NonBlockingSource,
    listing,
    run_script,
    sha256_file,
    sha256_object,
    write_random,
)

import s3turbo
from faultproxy import FaultProxy

MULTIPART = s3turbo.TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
TWO_AT_A_TIME = s3turbo.TransferConfig(max_concurrency=2)


def aio_client(server, **overrides) -> s3turbo.aio.AsyncClient:
    return s3turbo.aio.client("s3", **server.client_kwargs(**overrides))


class AsyncBytes:
    """A file object whose read and write are coroutines, as aiofiles' are."""

    def __init__(self, data: bytes = b""):
        self.buffer = io.BytesIO(data)

    async def read(self, size: int = -1) -> bytes:
        await asyncio.sleep(0)
        return self.buffer.read(size)

    async def write(self, data: bytes) -> int:
        await asyncio.sleep(0)
        return self.buffer.write(data)


async def longest_gap_during(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """Runs `work()` beside a ticker that sleeps 5 ms at a time; returns the longest gap
    between the ticker's wake-ups (how long the loop was held), and what `work` returned."""
    gaps = []
    stop = asyncio.Event()

    async def ticker():
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)  # ticking before the work begins
    try:
        result = await work()
    finally:
        stop.set()
        await ticking
    return max(gaps), result


def test_gather_twenty_uploads_and_twenty_downloads(server, bucket, tmp_path):
    sources = [
        write_random(tmp_path / f"source-{i}.bin", (THRESHOLD + 1) if i % 5 == 0 else 1000 * i)
        for i in range(20)
    ]

    async def main():
        async with aio_client(server) as s3:
            await asyncio.gather(
                *(s3.upload_file(str(path), bucket, f"k/{path.name}") for path in sources)
            )
            await asyncio.gather(
                *(
                    s3.download_file(bucket, f"k/{path.name}", str(tmp_path / f"out-{path.name}"))
                    for path in sources
                )
            )
            listed = await s3.list_objects_v2(Bucket=bucket)
        return listed["KeyCount"]

    assert asyncio.run(main()) == 20
    for path in sources:
        assert sha256_file(tmp_path / f"out-{path.name}") == sha256_file(path)


def test_the_loop_never_stalls_and_callbacks_run_on_it(s3s_fs, tmp_path):
    """A ticker measures the longest gap between its wake-ups while 48 MiB go up and down."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 48 * MIB)
    callbacks = Callbacks()

    async def round_trip():
        async with aio_client(s3s_fs) as s3:
            await s3.upload_file(str(source), bucket, "k", Callback=callbacks, Config=MULTIPART)
            sink = io.BytesIO()
            await s3.download_fileobj(bucket, "k", sink, Config=MULTIPART)
        return sink.getvalue()

    longest_gap, downloaded = asyncio.run(longest_gap_during(round_trip))
    assert longest_gap < 0.2, longest_gap  # generous: the machine is shared
    assert downloaded == source.read_bytes()
    assert callbacks.total == 48 * MIB
    assert callbacks.threads == {threading.get_ident()}


def test_async_and_sync_file_objects(server, bucket):
    data = bytes(range(256)) * (40 * 1024)  # 10 MiB: a multipart upload
    aiofile = AsyncBytes(data)

    async def main():
        async with aio_client(server) as s3:
            await s3.upload_fileobj(aiofile, bucket, "async", Config=MULTIPART)
            await s3.upload_fileobj(io.BytesIO(b"small and sync"), bucket, "sync")
            sink = AsyncBytes()
            await s3.download_fileobj(bucket, "async", sink, Config=MULTIPART)
            plain = io.BytesIO()
            await s3.download_fileobj(bucket, "sync", plain)
            return sink.buffer.getvalue(), plain.getvalue()

    downloaded, small = asyncio.run(main())
    assert downloaded == data and small == b"small and sync"
    head = server.boto3_client().head_object(Bucket=bucket, Key="async")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-2"')


def test_errors_are_the_sync_apis(moto, tmp_path):
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", 100)

    async def main():
        async with aio_client(moto) as s3:
            with pytest.raises(ClientError) as missing:
                await s3.download_file(bucket, "missing", str(tmp_path / "out"))
            assert missing.value.response["Error"]["Code"] == "404"
            with pytest.raises(S3UploadFailedError, match="NoSuchBucket"):
                await s3.upload_file(str(source), "no-such-bucket-here", "k")
            with pytest.raises(s3.exceptions.NoSuchBucket):
                await s3.upload_fileobj(io.BytesIO(b"x"), "no-such-bucket-here", "k")
            with pytest.raises(FileNotFoundError):
                await s3.upload_file(str(tmp_path / "missing"), bucket, "k")
            with pytest.raises(ValueError, match="Fileobj must implement read"):
                await s3.upload_fileobj(object(), bucket, "k")
            with pytest.raises(ValueError, match="Invalid extra_args key"):
                await s3.upload_file(str(source), bucket, "k", ExtraArgs={"Nope": 1})

    asyncio.run(main())
    assert listing(tmp_path) == ["source.bin"]


@pytest.mark.parametrize("size", [MIB, 11 * MIB])
def test_non_blocking_stream_is_refused_as_in_the_sync_api(s3s_fs, size):
    """read() returning None mid-stream is an error, not the end of the stream (the object was
    stored cut short)."""
    bucket = s3s_fs.new_bucket()
    data = bytes(range(256)) * (size // 256)

    async def main():
        async with aio_client(s3s_fs) as s3:
            with pytest.raises(ValueError, match="blocking file object"):
                await s3.upload_fileobj(
                    NonBlockingSource(data, 100_000), bucket, "k", Config=MULTIPART
                )

    asyncio.run(main())
    assert s3s_fs.boto3_client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("good_bytes", [0, 10 * MIB], ids=["PutObject", "multipart"])
def test_a_failed_read_stores_nothing_however_late_the_cancel(moto, good_bytes):
    """A stream whose read fails is given up, never taken for one that ended: the blocks read
    before (none, or two parts) are not stored, even when the loop is slow to cancel the
    transfer after the failure (it used to be a race with an object stored cut short)."""
    bucket = moto.new_bucket()

    class FailingSource:
        left = good_bytes

        async def read(self, size: int = -1) -> bytes:
            if not self.left:
                # Holds the loop once the failure is out and before the transfer is cancelled.
                asyncio.get_running_loop().call_soon(time.sleep, 0.5)
                raise OSError("the disk went away")
            chunk = b"x" * min(size, self.left)
            self.left -= len(chunk)
            return chunk

    async def main():
        async with aio_client(moto) as s3:
            with pytest.raises(OSError, match="went away"):
                await s3.upload_fileobj(FailingSource(), bucket, "k", Config=MULTIPART)

    asyncio.run(main())
    client = moto.boto3_client()
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


class Stop(Exception):
    pass


def test_callback_exception_aborts_the_multipart_upload(moto, tmp_path):
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", 24 * MIB)
    raised = Stop("enough")

    def callback(increment):
        raise raised

    async def main():
        async with aio_client(moto) as s3:
            with pytest.raises(Stop) as caught:
                await s3.upload_file(str(source), bucket, "k", Callback=callback, Config=MULTIPART)
            return caught.value

    assert asyncio.run(main()) is raised
    boto = moto.boto3_client()
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def slowed(server) -> FaultProxy:
    """The server behind a proxy that moves 4 MiB/s: transfers of a few MiB take seconds."""
    proxy = FaultProxy(server.endpoint_url)
    proxy.bytes_per_second = 4 * MIB
    return proxy


class TimerCountingLoop(asyncio.SelectorEventLoop):
    """An event loop that counts the timers set on it (each wakes it up once)."""

    def __init__(self):
        super().__init__()
        self.timers = 0

    def call_at(self, when, callback, *args, context=None):
        self.timers += 1
        return super().call_at(when, callback, *args, context=context)


def test_transfers_without_a_callback_do_not_wake_the_loop(s3s_fs):
    """A transfer with a Callback wakes the loop every 50 ms to hand it the progress; one
    without has nothing to hand, and sleeps until it is about to commit (a web server's
    thousands of idle transfers took a quarter of a core)."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=os.urandom(2 * MIB))

    def timers_during_downloads(proxy, callback) -> int:
        async def main():
            async with aio_client(s3s_fs, endpoint_url=proxy.endpoint_url) as s3:
                sinks = [io.BytesIO() for _ in range(4)]
                await asyncio.gather(
                    *(s3.download_fileobj(bucket, "k", sink, Callback=callback) for sink in sinks)
                )
            assert all(len(sink.getvalue()) == 2 * MIB for sink in sinks)

        loop = TimerCountingLoop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
        return loop.timers

    with slowed(s3s_fs) as proxy:
        without_callback = timers_during_downloads(proxy, None)
        with_callback = timers_during_downloads(proxy, lambda increment: None)
    assert without_callback <= 2 and with_callback >= 20, (without_callback, with_callback)


@pytest.fixture(params=["engine", "boto3"])
def served_by(request, monkeypatch) -> str:
    """Who moves the bytes of the coroutines: the engine, or boto3 in a worker thread (as for
    the settings the engine does not serve)."""
    if request.param == "boto3":
        monkeypatch.setenv("S3TURBO_DISABLE", "1")
    return request.param


def cancel_after_first_progress(coroutine_factory, cancels=1, when_ended=lambda: None):
    """Runs the transfer as a task, cancels it at its first progress (`cancels` times, as
    asyncio.run's end, TaskGroup or a second Ctrl-C cancel again); returns how long the
    cancelled task took to end, and what `when_ended` found as soon as it had. (boto3 calls the
    Callback from its own threads.) The loop reports no error: no task of the transfer's is
    left pending ("Task was destroyed but it is pending!")."""
    loop_errors = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: loop_errors.append(context["message"]))
        started = asyncio.Event()
        task = asyncio.create_task(
            coroutine_factory(lambda increment: loop.call_soon_threadsafe(started.set))
        )
        await asyncio.wait_for(started.wait(), timeout=30)
        cancelled_at = time.monotonic()
        for _ in range(cancels):
            task.cancel()
            await asyncio.sleep(0)
        with pytest.raises(asyncio.CancelledError):
            await task
        elapsed, found = time.monotonic() - cancelled_at, when_ended()
        await asyncio.sleep(0.2)  # the engine's threads let go of the transfer's Callback
        gc.collect()
        return elapsed, found

    result = asyncio.run(main())
    assert loop_errors == []
    return result


@pytest.mark.parametrize("cancels", [1, 2])
def test_cancelled_download_leaves_nothing(server, bucket, served_by, tmp_path, cancels):
    """The task ends once the download has cleaned up, however often it is cancelled (a second
    cancel ended it before the engine removed its temporary file)."""
    source = write_random(tmp_path / "source.bin", 16 * MIB)
    server.boto3_client().upload_file(str(source), bucket, "k")
    out = tmp_path / "out"
    out.mkdir()
    destination = out / "precious.bin"
    destination.write_bytes(b"keep me")

    with slowed(server) as proxy:
        s3 = aio_client(server, endpoint_url=proxy.endpoint_url)
        elapsed, when_ended = cancel_after_first_progress(
            lambda callback: s3.download_file(
                bucket, "k", str(destination), Callback=callback, Config=MULTIPART
            ),
            cancels,
            lambda: listing(out),
        )
    assert elapsed < 2
    assert destination.read_bytes() == b"keep me"
    assert when_ended == listing(out) == ["precious.bin"]


@pytest.mark.parametrize("callback", [None, lambda n: None], ids=["no Callback", "Callback"])
def test_a_cancel_the_engine_has_not_heard_of_yet_stops_the_commit(s3s_fs, tmp_path, callback):
    """The engine hears of a cancel when the cancelled task resumes, and asks the loop before
    it commits: so a cancel that came first (here while the loop was busy, the download ending
    meanwhile) stops the download before its file is put into place. Without a Callback, the
    file used to be put into place, and the task to end cancelled all the same."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=os.urandom(2 * MIB))
    out = tmp_path / "out"
    out.mkdir()
    destination = out / "precious.bin"
    destination.write_bytes(b"keep me")

    async def main():
        with slowed(s3s_fs) as proxy:
            async with aio_client(s3s_fs, endpoint_url=proxy.endpoint_url) as s3:
                task = asyncio.create_task(
                    s3.download_file(bucket, "k", str(destination), Callback=callback)
                )
                while listing(out) == ["precious.bin"]:  # until the temporary file is there
                    await asyncio.sleep(0.005)
                time.sleep(2)  # the loop is busy; the 2 MiB come in half a second meanwhile
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

    asyncio.run(main())
    assert destination.read_bytes() == b"keep me"
    assert listing(out) == ["precious.bin"]


def test_cancelled_multipart_upload_is_aborted(moto, served_by, tmp_path):
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", 16 * MIB)

    with slowed(moto) as proxy:
        s3 = aio_client(moto, endpoint_url=proxy.endpoint_url)
        elapsed, _ = cancel_after_first_progress(
            lambda callback: s3.upload_file(
                str(source), bucket, "k", Callback=callback, Config=MULTIPART
            )
        )
    assert elapsed < 2
    boto = moto.boto3_client()
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize(
    "size", [0, 10_000, 200_000], ids=["empty", "with its head", "after 100 Continue"]
)
def test_a_put_object_cancelled_once_its_body_has_gone_ends_with_its_answer(moto, tmp_path, size):
    """A cancel that comes once a PutObject's body has gone (its answer held back for 1.5 s;
    an empty one's with its head) cannot take it back: the server has the whole body. The task
    ends when the answer has come, with the object stored, as after a CompleteMultipartUpload;
    it ended at once, and the object was stored all the same."""
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", size)
    with FaultProxy(moto.endpoint_url) as proxy:
        proxy.delay = 1.5
        s3 = aio_client(moto, endpoint_url=proxy.endpoint_url)

        async def cancelled_upload() -> float:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(s3.upload_file(str(source), bucket, "k"), 0.5)
            return time.monotonic() - started

        elapsed = asyncio.run(cancelled_upload())
    assert elapsed >= 1.4
    assert sha256_object(moto.boto3_client(), bucket, "k") == sha256_file(source)


# The engine's request for a report meets the closed loop: Python reports that error too.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def stop_after_a_busy_while(loop: asyncio.AbstractEventLoop) -> None:
    """Stops `loop` once this callback has kept it busy for 2 s: its transfers send their
    bytes meanwhile, and ask it to let them commit."""
    loop.stop()
    time.sleep(2)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("stopped", ["mid-transfer", "once they asked to commit"])
@pytest.mark.parametrize("callback", [lambda n: None, None], ids=["Callback", "no Callback"])
def test_transfers_of_a_loop_closed_under_them_clean_up(moto, tmp_path, callback, stopped):
    """A loop stopped and closed with transfers pending (a loop thread shut down with work in
    flight): the engine's request for a report before it commits cannot reach the loop, so the
    transfers stop and clean up, quietly (with a Callback it waited for ever: the multipart
    upload stayed open and the download's temporary file on disk; without one the download
    was put into place after its task was gone). A loop that took the request and stopped
    before it answered is asked again, and found closed."""
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", 12 * MIB)
    moto.boto3_client().upload_file(str(source), bucket, "existing")
    out = tmp_path / "out"
    out.mkdir()
    boto = moto.boto3_client()
    with slowed(moto) as proxy:
        endpoint = proxy.endpoint_url if stopped == "mid-transfer" else moto.endpoint_url
        s3 = aio_client(moto, endpoint_url=endpoint)
        loop = asyncio.new_event_loop()

        pending = [
            loop.create_task(
                s3.upload_file(str(source), bucket, "k", Callback=callback, Config=MULTIPART)
            ),
            loop.create_task(
                s3.download_file(
                    bucket, "existing", str(out / "k"), Callback=callback, Config=MULTIPART
                )
            ),
        ]
        if stopped == "mid-transfer":
            loop.call_later(0.5, loop.stop)
        else:
            loop.call_later(0.05, stop_after_a_busy_while, loop)
        loop.run_forever()
        loop.close()
        del pending, loop
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
            listing(out) or boto.list_multipart_uploads(Bucket=bucket).get("Uploads")
        ):
            time.sleep(0.2)
    assert listing(out) == []
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert [o["Key"] for o in boto.list_objects_v2(Bucket=bucket)["Contents"]] == ["existing"]


def test_cancelled_directory_upload_stops_at_once(moto, served_by, tmp_path):
    """No upload begins after the task has ended, whoever was uploading the files. (A file
    whose bytes had all left before the end may still be stored: they are on their way.)"""
    bucket = moto.new_bucket()
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(12):
        write_random(folder / f"f{i:02d}.bin", MIB)
    boto = moto.boto3_client()

    def uploaded() -> int:
        return boto.list_objects_v2(Bucket=bucket).get("KeyCount", 0)

    with slowed(moto) as proxy:
        s3 = aio_client(moto, endpoint_url=proxy.endpoint_url)
        elapsed, _ = cancel_after_first_progress(
            # Two at a time: files wait for their turn when the task ends.
            lambda callback: s3.upload_directory(
                folder, bucket, "p", Callback=callback, Config=TWO_AT_A_TIME
            )
        )
        at_the_end = uploaded()
        time.sleep(0.3)  # the proxy, a thread of this process, takes in what was sent
        begun = len(proxy.requests)
        time.sleep(1.5)
        assert len(proxy.requests) == begun
    assert at_the_end < 12
    assert elapsed < 2
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


class WriteSizes(io.BytesIO):
    """A sync sink noting the size of each write."""

    def __init__(self):
        super().__init__()
        self.sizes: list[int] = []

    def write(self, data) -> int:
        self.sizes.append(len(data))
        return super().write(data)


class AsyncWriteSizes(AsyncBytes):
    def __init__(self):
        super().__init__()
        self.sizes: list[int] = []

    async def write(self, data: bytes) -> int:
        self.sizes.append(len(data))
        return await super().write(data)


def test_boto3_serves_what_the_engine_cannot(s3s_fs, tmp_path, monkeypatch):
    """With S3TURBO_DISABLE the coroutines run boto3's transfers in a worker thread: the same
    results, async file objects included, and a download reaches a file object of either kind
    as boto3 writes it (in 256 KiB pieces, not held whole in memory first)."""
    bucket = s3s_fs.new_bucket()
    data = os.urandom(3 * MIB)
    monkeypatch.setenv("S3TURBO_DISABLE", "1")

    async def main():
        async with aio_client(s3s_fs) as s3:
            await s3.upload_fileobj(AsyncBytes(data), bucket, "k")
            sinks = WriteSizes(), AsyncWriteSizes()
            for sink in sinks:
                await s3.download_fileobj(bucket, "k", sink)
            return sinks

    sync_sink, async_sink = asyncio.run(main())
    assert sync_sink.getvalue() == data == async_sink.buffer.getvalue()
    for sink in (sync_sink, async_sink):
        assert len(sink.sizes) >= 12 and max(sink.sizes) <= 256 * 1024, sink.sizes


@pytest.mark.parametrize("kind", ["def", "async-def", "slow-async-def"])
def test_callback_raising_on_the_last_bytes_leaves_nothing(server, bucket, kind, tmp_path):
    """The engine asks the loop for a report before it commits (completes a multipart upload,
    sends a PutObject's last bytes, renames a download): a Callback raising on the last
    increment still stops a fast transfer before the object or the file is complete, also an
    `async def` one, which raises once awaited, and a slow one: a report that began before
    the last bytes and ends after the engine asked is not taken for theirs."""
    source = write_random(tmp_path / "source.bin", 10 * MIB)
    boto = server.boto3_client()
    boto.upload_file(str(source), bucket, "existing")
    multipart, single = MULTIPART, s3turbo.TransferConfig(multipart_threshold=16 * MIB)
    if kind == "slow-async-def":
        # The transfer ends (in 1.25 s) while the Callback's first call (2 s) is awaited.
        multipart, single = (
            s3turbo.TransferConfig(
                multipart_threshold=c.multipart_threshold,
                multipart_chunksize=c.multipart_chunksize,
                max_bandwidth=8 * MIB,
            )
            for c in (multipart, single)
        )

    def raise_at_the_end():
        seen = []

        def callback(increment):
            seen.append(increment)
            if sum(seen) == 10 * MIB:
                raise Stop("the last bytes")

        async def async_callback(increment):
            await asyncio.sleep(2 if kind == "slow-async-def" and not seen else 0.01)
            callback(increment)

        return callback if kind == "def" else async_callback

    async def main():
        async with aio_client(server) as s3:
            with pytest.raises(Stop):
                await s3.upload_file(
                    str(source), bucket, "k", Callback=raise_at_the_end(), Config=multipart
                )
            # One PutObject: its last bytes wait for the loop's report too.
            with pytest.raises(Stop):
                await s3.upload_file(
                    str(source), bucket, "k", Callback=raise_at_the_end(), Config=single
                )
            with pytest.raises(Stop):
                await s3.download_file(
                    bucket,
                    "existing",
                    str(tmp_path / "out.bin"),
                    Callback=raise_at_the_end(),
                    Config=single,
                )

    asyncio.run(main())
    assert [o["Key"] for o in boto.list_objects_v2(Bucket=bucket)["Contents"]] == ["existing"]
    if server.name == "moto":  # s3s-fs has no ListMultipartUploads
        assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert listing(tmp_path) == ["source.bin"]


class AsyncCallbacks(Callbacks):
    """An `async def` Callback, as an asyncio program writes one: it awaits before it records
    the increment, so an increment counts only if the coroutine was awaited."""

    async def __call__(self, increment: int) -> None:
        await asyncio.sleep(0)
        super().__call__(increment)


def test_async_callbacks_are_awaited_on_the_loop(server, bucket, served_by, tmp_path):
    """Each transfer's `async def` Callback is awaited, on the loop's thread, and sees every
    byte, whoever moves the bytes (boto3 calls it from its threads: it is awaited on the
    loop meanwhile)."""
    source = write_random(tmp_path / "source.bin", 12 * MIB)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(3):
        write_random(folder / f"f{i}.bin", 1000 * (i + 1))
    data = os.urandom(3 * MIB)

    async def main():
        progress = {
            name: AsyncCallbacks()
            for name in ("upload_file", "download_file", "upload_fileobj", "download_fileobj")
        }
        progress["upload_directory"] = AsyncCallbacks()
        async with aio_client(server) as s3:
            await s3.upload_file(
                str(source), bucket, "k", Callback=progress["upload_file"], Config=MULTIPART
            )
            await s3.download_file(
                bucket, "k", str(tmp_path / "out.bin"), Callback=progress["download_file"]
            )
            await s3.upload_fileobj(
                AsyncBytes(data), bucket, "small", Callback=progress["upload_fileobj"]
            )
            sink = AsyncBytes()
            await s3.download_fileobj(bucket, "small", sink, Callback=progress["download_fileobj"])
            await s3.upload_directory(
                str(folder), bucket, "dir", Callback=progress["upload_directory"]
            )
        return progress, sink.buffer.getvalue(), threading.get_ident()

    progress, downloaded, loop_thread = asyncio.run(main())
    assert downloaded == data
    assert sha256_file(tmp_path / "out.bin") == sha256_file(source)
    assert {name: callbacks.total for name, callbacks in progress.items()} == {
        "upload_file": 12 * MIB,
        "download_file": 12 * MIB,
        "upload_fileobj": 3 * MIB,
        "download_fileobj": 3 * MIB,
        "upload_directory": 6000,
    }
    assert {thread for callbacks in progress.values() for thread in callbacks.threads} == {
        loop_thread
    }


class ThreadRecordingBytes(io.BytesIO):
    """A sync file object that notes which thread calls each of its methods: any of them may
    block (a network-backed file object), so none may run on the event loop."""

    def __init__(self, data: bytes = b""):
        super().__init__(data)
        self.calls: list[tuple[str, int]] = []

    def _note(self, name: str) -> None:
        self.calls.append((name, threading.get_ident()))


for _name in ("readable", "seekable", "tell", "seek", "read", "write", "close"):

    def _recorded(self, *args, _name=_name, **kwargs):
        self._note(_name)
        return getattr(io.BytesIO, _name)(self, *args, **kwargs)

    setattr(ThreadRecordingBytes, _name, _recorded)


def test_sync_file_objects_are_used_off_the_loop(s3s_fs):
    bucket = s3s_fs.new_bucket()
    source = ThreadRecordingBytes(b"x" * 1000)  # below the threshold: closed after, as boto3
    sink = ThreadRecordingBytes()

    async def main():
        async with aio_client(s3s_fs) as s3:
            await s3.upload_fileobj(source, bucket, "k")
            await s3.download_fileobj(bucket, "k", sink)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert sink.getvalue() == b"x" * 1000
    called = {name for name, _ in source.calls + sink.calls}
    assert {"seekable", "tell", "seek", "read", "write", "close"} <= called
    assert [name for name, thread in source.calls + sink.calls if thread == loop_thread] == []


def test_a_fifo_destination_waits_for_its_reader_off_the_loop(s3s_fs, tmp_path):
    """Opening a FIFO for writing waits until a reader opens it: the loop goes on meanwhile."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"through the pipe")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []

    def late_reader():
        time.sleep(1.0)
        with open(fifo, "rb") as pipe:
            received.append(pipe.read())

    async def download():
        async with aio_client(s3s_fs) as s3:
            await s3.download_file(bucket, "k", str(fifo))

    reader = threading.Thread(target=late_reader)
    reader.start()
    longest_gap, _ = asyncio.run(longest_gap_during(download))
    reader.join()
    assert received == [b"through the pipe"]
    assert longest_gap < 0.5, longest_gap  # the reader came after 1 s


class SlowIo(io.BytesIO):
    """A sync file object whose reads and writes take a while, noting when each ends."""

    def __init__(self, events: list[str], started: threading.Event, data: bytes = b""):
        super().__init__(data)
        self.events = events
        self.started = started

    def read(self, size=-1):
        self.started.set()
        time.sleep(0.3)
        data = super().read(size)
        self.events.append("read ended")
        return data

    def write(self, data):
        self.started.set()
        time.sleep(0.3)
        self.events.append("write ended")
        return super().write(data)

    def close(self):
        self.events.append("closed")
        super().close()


@pytest.mark.parametrize("cancel", ["task.cancel()", "asyncio.run ending"])
@pytest.mark.parametrize("method", ["upload_fileobj", "download_fileobj"])
def test_a_cancelled_task_ends_after_the_file_objects_call_in_flight(s3s_fs, method, cancel):
    """A worker thread cannot be stopped: the cancelled task ends once the read or write in
    flight has returned (and, for a small upload, after boto3's closing of the object), so that
    the caller may close or reuse the object then. Also when every task is cancelled at once,
    as asyncio.run does with those still pending when its coroutine returns."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"x" * 1000)
    events: list[str] = []
    started = threading.Event()
    fileobj = SlowIo(events, started, b"y" * 1000 if method == "upload_fileobj" else b"")

    async def transfer(s3):
        args = (fileobj, bucket, "k") if method == "upload_fileobj" else (bucket, "k", fileobj)
        try:
            await getattr(s3, method)(*args)
        finally:
            events.append("task ended")

    async def main():
        s3 = aio_client(s3s_fs)
        task = asyncio.create_task(transfer(s3))
        while not started.is_set():
            await asyncio.sleep(0.005)
        if cancel == "task.cancel()":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    if method == "upload_fileobj":
        assert events == ["read ended", "closed", "task ended"]
    else:
        assert events == ["write ended", "task ended"]


# An event loop closed while a download that boto3 serves writes into an async file object:
# boto3's thread waits for a write the loop will never run.
def test_a_paused_loop_runs_a_fallback_transfers_async_callback_later(moto, served_by, tmp_path):
    """A loop paused between two run_until_complete calls (the program does something else)
    awaits an `async def` Callback once it runs again: the transfer goes on, each part sent
    once and the Callback seeing every byte once, whoever moves the bytes (boto3's thread
    waits for the loop meanwhile)."""
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", 20 * MIB)
    seen = []

    async def callback(increment):
        seen.append(increment)

    with FaultProxy(moto.endpoint_url) as proxy:
        proxy.bytes_per_second = 20 * MIB
        loop = asyncio.new_event_loop()
        try:
            s3 = aio_client(moto, endpoint_url=proxy.endpoint_url)
            task = loop.create_task(
                s3.upload_file(str(source), bucket, "k", Callback=callback, Config=MULTIPART)
            )
            loop.run_until_complete(asyncio.sleep(0.3))
            time.sleep(0.5)
            loop.run_until_complete(task)
        finally:
            loop.close()
        part_puts = [r for r in proxy.requests if r.method == "PUT" and "partNumber" in r.target]
    assert sum(seen) == 20 * MIB
    assert len(part_puts) == 4
    assert sha256_object(moto.boto3_client(), bucket, "k") == sha256_file(source)


LOOP_CLOSED_DURING_A_DOWNLOAD = """
import asyncio, sys
import s3turbo.aio

class SlowAsyncSink:
    async def write(self, data):
        await asyncio.sleep(5)
        return len(data)

s3 = s3turbo.aio.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                        aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
loop = asyncio.new_event_loop()
loop.create_task(s3.download_fileobj(sys.argv[4], "k", SlowAsyncSink()))
loop.run_until_complete(asyncio.sleep(0.5))
loop.close()
"""


@pytest.mark.parametrize("served_by", ["engine", "boto3"])
def test_a_process_whose_loop_closed_during_a_download_exits(s3s_fs, tmp_path, served_by):
    """boto3's worker thread gives up on writes to an async file object once its loop has
    stopped: the process exits (it waited for ever on that thread); and the exit does not wait
    for the engine's download, whose writes wait for that loop."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"x" * (3 * MIB))
    run_script(
        LOOP_CLOSED_DURING_A_DOWNLOAD,
        tmp_path,
        s3s_fs,
        bucket,
        timeout=30,
        env={"S3TURBO_DISABLE": "1"} if served_by == "boto3" else {},
    )


EXIT_AFTER_MANY_DOWNLOADS = """
import asyncio, os, sys
import s3turbo.aio

async def main():
    s3 = s3turbo.aio.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                            aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
    folder = os.environ["TMPDIR"]
    await asyncio.gather(
        *(s3.download_file(sys.argv[4], "k", os.path.join(folder, f"f{i}")) for i in range(200))
    )
    print("downloaded")

asyncio.run(main())  # the script's last statement: the interpreter exits next
"""


def test_a_script_ends_cleanly_right_after_its_transfers(s3s_fs, tmp_path):
    """Engine threads settle the asyncio futures, taking the GIL; one that took it back after
    the interpreter had begun to exit was ended by CPython, and the process aborted (SIGABRT,
    about one run in five here, every transfer done) or printed pyo3's panic. Several runs."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"x" * 10_000)
    for run in range(6):
        run_dir = tmp_path / f"run{run}"
        run_dir.mkdir()
        assert run_script(EXIT_AFTER_MANY_DOWNLOADS, run_dir, s3s_fs, bucket) == "downloaded\n"


ASYNC_UPLOAD_IN_A_LATER_EXIT_HANDLER = """
import asyncio, atexit, io, sys

def flush():
    import s3turbo.aio

    async def upload():
        s3 = s3turbo.aio.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                                aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
        try:
            await s3.upload_fileobj(io.BytesIO(b"log"), sys.argv[4], "k")
            print("uploaded")
        except RuntimeError as error:
            print("refused:", error)

    asyncio.run(upload())

atexit.register(flush)  # before s3turbo is imported: runs after s3turbo's exit handler
import s3turbo
"""


def test_an_asyncio_transfer_begun_after_the_exit_handler_is_refused(s3s_fs, tmp_path):
    """Once s3turbo's exit handler has run, engine threads no longer settle asyncio futures: a
    transfer begun then (an exit handler registered earlier) is refused with a RuntimeError,
    as boto3's transfer managers refuse to start then; it waited for ever."""
    bucket = s3s_fs.new_bucket()
    printed = run_script(ASYNC_UPLOAD_IN_A_LATER_EXIT_HANDLER, tmp_path, s3s_fs, bucket, 30)
    assert printed.startswith("refused: s3turbo: the interpreter is exiting"), printed
