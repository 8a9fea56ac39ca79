"""upload_fileobj and download_fileobj on the engine, compared with boto3's."""

from __future__ import annotations

import asyncio
import hashlib
import io
import mmap
import os
import threading
import time

import boto3
import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, ParamValidationError
from helpers import MIB, THRESHOLD, Callbacks, NonBlockingSource, sha256_file, write_random

import s3turbo
import s3turbo.aio
from faultproxy import Fault, FaultProxy

MULTIPART_5 = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)


class WriteOnlySink:
    """A sink with only `write` (no seek, no tell), recording the calls."""

    def __init__(self):
        self.digest = hashlib.sha256()
        self.sizes: list[int] = []
        self.threads: set[int] = set()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.sizes.append(len(data))
        self.threads.add(threading.get_ident())
        return len(data)


@pytest.mark.parametrize("size", [0, 1, THRESHOLD - 1, 48 * MIB + 12_345])
def test_download_fileobj_into_bytesio(server, bucket, tmp_path, size):
    source = write_random(tmp_path / "source.bin", size)
    server.boto3_client().upload_file(str(source), bucket, "k")
    ours, theirs = io.BytesIO(), io.BytesIO()
    callbacks = Callbacks()
    server.s3turbo_client().download_fileobj(bucket, "k", ours, Callback=callbacks)
    server.boto3_client().download_fileobj(bucket, "k", theirs)
    assert ours.getvalue() == theirs.getvalue() == source.read_bytes()
    assert callbacks.total == size
    assert 0 not in callbacks.increments


@pytest.mark.parametrize("size", [5, THRESHOLD + 5])
def test_download_fileobj_writes_from_the_start_as_boto3(server, bucket, tmp_path, size):
    """s3transfer writes each part of a seekable sink at its offset from 0, wherever the sink
    was: over what was there. (Where it leaves the position after parts written in parallel
    depends on which came last.)"""
    source = write_random(tmp_path / "source.bin", size)
    server.boto3_client().upload_file(str(source), bucket, "k")
    contents, positions = [], []
    for client in (server.s3turbo_client(), server.boto3_client()):
        sink = io.BytesIO(b"HEADER-" * 3)
        sink.seek(0, io.SEEK_END)
        client.download_fileobj(bucket, "k", sink)
        contents.append(sink.getvalue())
        positions.append(sink.tell())
    assert contents[0] == contents[1]
    assert contents[0].startswith(source.read_bytes())
    if size < THRESHOLD:
        assert positions[0] == positions[1] == size


def test_failed_download_fileobj_leaves_the_sink_where_it_was(server, bucket):
    """s3transfer seeks a sink only to write into it."""
    positions = []
    for client in (server.s3turbo_client(), server.boto3_client()):
        sink = io.BytesIO(b"HEADER-")
        sink.seek(0, io.SEEK_END)
        with pytest.raises(ClientError):
            client.download_fileobj(bucket, "missing", sink)
        positions.append(sink.tell())
    assert positions == [7, 7]


def test_download_fileobj_into_a_write_only_sink_in_order(server, bucket, tmp_path):
    source = write_random(tmp_path / "source.bin", 5 * THRESHOLD + 77)
    server.boto3_client().upload_file(str(source), bucket, "k")
    sink = WriteOnlySink()
    server.s3turbo_client().download_fileobj(bucket, "k", sink)
    # Parts were fetched in parallel but written in order, from the calling thread.
    assert sink.digest.hexdigest() == sha256_file(source)
    assert sum(sink.sizes) == source.stat().st_size
    assert sink.threads == {threading.get_ident()}


def test_download_fileobj_errors_as_in_boto3(server, bucket):
    errors = []
    for client in (server.s3turbo_client(), server.boto3_client()):
        with pytest.raises(ValueError, match="Fileobj must implement write"):
            client.download_fileobj(bucket, "k", object())
        with pytest.raises(ClientError) as caught:
            client.download_fileobj(bucket, "missing", io.BytesIO())
        errors.append(caught.value)
    assert type(errors[0]) is type(errors[1])
    assert errors[0].response["Error"]["Code"] == errors[1].response["Error"]["Code"] == "404"


def test_download_fileobj_sink_error_reaches_the_caller(server, bucket):
    server.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"x" * 100)
    with pytest.raises(TypeError):
        server.s3turbo_client().download_fileobj(bucket, "k", io.StringIO())


class ReadOnlyStream:
    """A non-seekable stream of unknown length with only `read`; with `max_read`, reads return
    at most that much, as a pipe's do."""

    def __init__(self, data: bytes, max_read: int | None = None):
        self._data = memoryview(data)
        self._position = 0
        self._max_read = max_read

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = len(self._data)
        size = min(size, self._max_read or size)
        chunk = bytes(self._data[self._position : self._position + size])
        self._position += len(chunk)
        return chunk


@pytest.mark.parametrize("size", [0, 1, THRESHOLD - 1, THRESHOLD, 20 * MIB + 5])
def test_upload_fileobj_from_bytesio_matches_boto3(server, bucket, tmp_path, size):
    data = write_random(tmp_path / "source.bin", size).read_bytes()
    callbacks = Callbacks()
    server.s3turbo_client().upload_fileobj(io.BytesIO(data), bucket, "turbo", Callback=callbacks)
    boto = server.boto3_client()
    boto.upload_fileobj(io.BytesIO(data), bucket, "boto3")
    assert boto.get_object(Bucket=bucket, Key="turbo")["Body"].read() == data
    ours, theirs = (boto.head_object(Bucket=bucket, Key=k) for k in ("turbo", "boto3"))
    assert ours["ETag"] == theirs["ETag"]
    assert ours.get("ContentType") == theirs.get("ContentType")
    assert callbacks.total == size
    assert 0 not in callbacks.increments


class SeekReturnsNone:
    """A hand-written file wrapper, as many are: its seek() returns None."""

    def __init__(self, data: bytes):
        self._file = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> None:
        self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


@pytest.mark.parametrize("api", ["sync", "aio"])
@pytest.mark.parametrize("source", ["mmap", "seek() returns None"])
def test_upload_fileobj_from_objects_whose_seek_returns_none(s3s_fs, tmp_path, source, api):
    """s3transfer reads a seekable source's positions with tell(): an mmap, or a wrapper whose
    seek() returns None, uploads as with boto3 (the engine subtracted seek()'s None)."""
    bucket = s3s_fs.new_bucket()
    data = write_random(tmp_path / "source.bin", 6 * MIB + 3).read_bytes()
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    for name in ("boto3", "s3turbo"):
        with open(tmp_path / "source.bin", "r+b") as file:
            fileobj = mmap.mmap(file.fileno(), 0) if source == "mmap" else SeekReturnsNone(data)
            fileobj.seek(3)  # from the position, as boto3 uploads
            if name == "boto3":
                s3s_fs.boto3_client().upload_fileobj(fileobj, bucket, name, Config=config)
            elif api == "sync":
                s3s_fs.s3turbo_client().upload_fileobj(fileobj, bucket, name, Config=config)
            else:

                async def upload(fileobj=fileobj):
                    async with s3turbo.aio.client("s3", **s3s_fs.client_kwargs()) as client:
                        await client.upload_fileobj(fileobj, bucket, "s3turbo", Config=config)

                asyncio.run(upload())
    boto = s3s_fs.boto3_client()
    for name in ("boto3", "s3turbo"):
        assert boto.get_object(Bucket=bucket, Key=name)["Body"].read() == data[3:], name


def test_upload_fileobj_from_a_real_file_with_extra_args(server, bucket, tmp_path):
    source = write_random(tmp_path / "source.bin", THRESHOLD + 1)
    extra = {"ContentType": "text/csv", "Metadata": {"k": "v"}}
    with open(source, "rb") as file:
        server.s3turbo_client().upload_fileobj(file, bucket, "k", ExtraArgs=extra)
    boto = server.boto3_client()
    head = boto.head_object(Bucket=bucket, Key="k")
    assert (head["ContentType"], head["Metadata"]) == ("text/csv", {"k": "v"})
    assert boto.get_object(Bucket=bucket, Key="k")["Body"].read() == source.read_bytes()


def test_upload_fileobj_from_a_non_seekable_stream(s3s_fs, tmp_path):
    bucket = s3s_fs.new_bucket()
    data = write_random(tmp_path / "source.bin", 40 * MIB + 12_345).read_bytes()
    turbo, boto = s3s_fs.s3turbo_client(), s3s_fs.boto3_client()
    callbacks = Callbacks()
    turbo.upload_fileobj(ReadOnlyStream(data), bucket, "turbo", Callback=callbacks)
    boto.upload_fileobj(ReadOnlyStream(data), bucket, "boto3")
    ours, theirs = (boto.head_object(Bucket=bucket, Key=k)["ETag"] for k in ("turbo", "boto3"))
    assert ours == theirs and ours.endswith('-6"')
    assert callbacks.total == len(data)
    # A stream that returns short reads, as a pipe does, still makes whole parts.
    turbo.upload_fileobj(ReadOnlyStream(data, max_read=MIB + 3), bucket, "short-reads")
    for key in ("turbo", "short-reads"):
        body = boto.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert boto.head_object(Bucket=bucket, Key="short-reads")["ETag"] == ours


def test_upload_fileobj_bad_objects(server, bucket, tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text("hello")
    client = server.s3turbo_client()
    with pytest.raises(ValueError, match="Fileobj must implement read"):
        client.upload_fileobj(object(), bucket, "k")
    with pytest.raises(TypeError, match="binary"):
        client.upload_fileobj(io.StringIO("text"), bucket, "k")
    with open(text_file) as opened_as_text, pytest.raises(TypeError, match="binary"):
        client.upload_fileobj(opened_as_text, bucket, "k")

    class ReturnsStr:
        def read(self, size=-1):
            return "not bytes"

    with pytest.raises(TypeError, match="binary"):
        client.upload_fileobj(ReturnsStr(), bucket, "k")
    boto = server.boto3_client()
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("size", [MIB, 11 * MIB])
def test_upload_fileobj_from_a_non_blocking_stream_is_refused(server, bucket, size):
    """read() returning None mid-stream is an error, not the end of the stream: nothing is
    stored (boto3 crashes with a TypeError and stores nothing either)."""
    data = bytes(range(256)) * (size // 256)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    with pytest.raises(ValueError, match="blocking file object"):
        server.s3turbo_client().upload_fileobj(
            NonBlockingSource(data, 100_000), bucket, "k", Config=config
        )
    assert server.boto3_client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


class UnseekableBytesIO(io.BytesIO):
    def seekable(self) -> bool:
        return False


def _upload_fileobj_with(api: str, server, *args, **kwargs) -> None:
    """`upload_fileobj(*args, **kwargs)` on `server` by the API named: boto3, s3turbo, aio."""
    if api == "boto3":
        return server.boto3_client().upload_fileobj(*args, **kwargs)
    if api == "s3turbo":
        return server.s3turbo_client().upload_fileobj(*args, **kwargs)

    async def upload():
        async with s3turbo.aio.client("s3", **server.client_kwargs()) as s3:
            await s3.upload_fileobj(*args, **kwargs)

    asyncio.run(upload())


@pytest.mark.parametrize("api", ["s3turbo", "aio"])
def test_upload_fileobj_closes_the_file_object_when_boto3_does(moto, api):
    """s3transfer closes a seekable object it sends in one PutObject (from its position to its
    end below the threshold), whether the upload succeeded or not, and no other."""
    bucket = moto.new_bucket()
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    cases = {
        "small": (lambda: io.BytesIO(b"x" * 100), True),
        "empty": (lambda: io.BytesIO(), True),
        "small from its position": (lambda: _positioned(io.BytesIO(b"x" * 6 * MIB), 2 * MIB), True),
        "multipart": (lambda: io.BytesIO(b"x" * 6 * MIB), False),
        "not seekable": (lambda: UnseekableBytesIO(b"x" * 100), False),
    }
    for name, (make, closes) in cases.items():
        for who in ("boto3", api):
            fileobj = make()
            _upload_fileobj_with(who, moto, fileobj, bucket, name, Config=config)
            assert fileobj.closed is closes, (who, name)
    for who in ("boto3", api):
        fileobj = io.BytesIO(b"x" * 100)
        with pytest.raises(ClientError, match="NoSuchBucket"):
            _upload_fileobj_with(who, moto, fileobj, "no-such-bucket-here", "k")
        assert fileobj.closed, (who, "failed")
        # A value botocore refuses: raised by boto3's PutObject, in the task that closes.
        fileobj = io.BytesIO(b"x" * 100)
        with pytest.raises(ParamValidationError):
            _upload_fileobj_with(who, moto, fileobj, bucket, "k", ExtraArgs={"ContentType": 5})
        assert fileobj.closed, (who, "refused")
        # A header value http.client refuses to send: raised by boto3's PutObject too.
        fileobj = io.BytesIO(b"x" * 100)
        with pytest.raises(HTTPClientError):
            _upload_fileobj_with(who, moto, fileobj, bucket, "k", ExtraArgs={"ContentType": "a\nb"})
        assert fileobj.closed, (who, "unsendable")


def _positioned(fileobj: io.BytesIO, position: int) -> io.BytesIO:
    fileobj.seek(position)
    return fileobj


def test_upload_fileobj_raises_the_client_error_itself(moto):
    errors = []
    for client in (moto.s3turbo_client(), moto.boto3_client()):
        with pytest.raises(ClientError) as caught:
            client.upload_fileobj(io.BytesIO(b"data"), "no-such-bucket-here", "k")
        errors.append(caught.value)
    assert type(errors[0]) is type(errors[1])
    assert errors[0].response["Error"]["Code"] == errors[1].response["Error"]["Code"]


def test_upload_fileobj_callback_error_aborts_the_multipart_upload(moto, tmp_path):
    bucket = moto.new_bucket()
    data = write_random(tmp_path / "source.bin", 3 * THRESHOLD).read_bytes()

    class Stop(Exception):
        pass

    def callback(increment):
        raise Stop()

    with pytest.raises(Stop):
        moto.s3turbo_client().upload_fileobj(ReadOnlyStream(data), bucket, "k", Callback=callback)
    boto = moto.boto3_client()
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("method", ["upload_fileobj", "upload_file"])
@pytest.mark.parametrize("chunksize, part_size", [(5, 10), (3, 6), (1, 8)])
def test_parts_fit_in_10000_as_in_boto3(s3s_fs, tmp_path, method, chunksize, part_size):
    """s3transfer doubles the part size asked for until the parts fit in S3's 10,000, then
    raises it to S3's 5 MiB if below (for a seekable file object, the engine kept the asked
    5 MiB, sent 10,000 parts, then failed; for a file, it raised 1 or 3 MiB to 5 MiB first and
    then doubled, to 10). A sparse file too large for 5 MiB parts, and a server that refuses
    every part: the first parts of both clients are of the same size."""
    bucket = s3s_fs.new_bucket()
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as out:
        out.truncate(10_000 * 5 * MIB + 1)
    config = TransferConfig(multipart_chunksize=chunksize * MIB)
    part_sizes = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        proxy.inject(Fault(method="PUT", answer_error=(400, "InvalidRequest"), times=None))
        for name, client in s3s_fs.clients_through(proxy, Config()).items():
            proxy.requests.clear()
            with pytest.raises((ClientError, S3UploadFailedError)):
                if method == "upload_file":
                    client.upload_file(str(sparse), bucket, "k", Config=config)
                else:
                    with open(sparse, "rb") as source:
                        client.upload_fileobj(source, bucket, "k", Config=config)
            parts = [r for r in proxy.requests if r.method == "PUT"]
            part_sizes[name] = {r.headers["content-length"] for r in parts}
    assert part_sizes["s3turbo"] == part_sizes["boto3"] == {str(part_size * MIB)}


@pytest.mark.parametrize("api", ["sync", "aio"])
def test_a_callback_that_raises_stops_what_it_has_not_seen(s3s_fs, tmp_path, api):
    """The Callback sees the bytes before the sink gets them, as s3transfer's sees them as they
    are read: one that raises at its first call (a size limit, a cancel button) leaves the sink
    empty, as boto3's (the engine's sink held the whole object)."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=os.urandom(20 * MIB))
    config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=4 * MIB)

    class TooBig(Exception):
        pass

    def limit(increment):
        raise TooBig("over the limit")

    async def aio_download(sink):
        async with s3turbo.aio.client("s3", **s3s_fs.client_kwargs()) as s3:
            await s3.download_fileobj(bucket, "k", sink, Config=config, Callback=limit)

    held = {}
    for name, client in (("s3turbo", s3s_fs.s3turbo_client()), ("boto3", s3s_fs.boto3_client())):
        sink = io.BytesIO()
        with pytest.raises(TooBig):
            if api == "aio" and name == "s3turbo":
                asyncio.run(aio_download(sink))
            else:
                client.download_fileobj(bucket, "k", sink, Config=config, Callback=limit)
        held[name] = len(sink.getvalue())
    assert held == {"s3turbo": 0, "boto3": 0}


@pytest.mark.parametrize("api", ["sync", "aio"])
def test_the_sink_never_gets_bytes_the_callback_has_not_seen(s3s_fs, api):
    """Every write brings the sink no further than the Callback has been told, as in boto3;
    a slow Callback (here 2 ms a call) gives parts time to arrive between the Callback's
    count and the writes (the engine wrote them, untold)."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=os.urandom(3 * MIB))
    config = TransferConfig(
        multipart_threshold=256 * 1024, multipart_chunksize=256 * 1024, max_concurrency=4
    )

    class Sink(io.RawIOBase):
        def __init__(self):
            self.seen = self.written = 0
            self.ahead = []

        def writable(self):
            return True

        def write(self, data):
            self.written += len(data)
            if self.written > self.seen:
                self.ahead.append(self.written - self.seen)
            return len(data)

        def told(self, increment):
            time.sleep(0.002)
            self.seen += increment

    async def aio_download(sink):
        async with s3turbo.aio.client("s3", **s3s_fs.client_kwargs()) as s3:
            await s3.download_fileobj(bucket, "k", sink, Config=config, Callback=sink.told)

    ahead = {}
    for name, client in (("s3turbo", s3s_fs.s3turbo_client()), ("boto3", s3s_fs.boto3_client())):
        sink = Sink()
        if api == "aio" and name == "s3turbo":
            asyncio.run(aio_download(sink))
        else:
            client.download_fileobj(bucket, "k", sink, Config=config, Callback=sink.told)
        assert sink.written == sink.seen == 3 * MIB, name
        ahead[name] = sink.ahead
    assert ahead == {"s3turbo": [], "boto3": []}


@pytest.mark.parametrize("api", ["sync", "aio"])
def test_download_fileobj_streams_the_first_part_as_boto3(s3s_fs, api):
    """The first part goes into the sink as it comes, as boto3 streams it: the first write
    comes early, and an object below a large threshold is not held whole in memory (the engine
    held every part whole, the first too). Its GET breaks once, after some of it went on: the
    retry hands on only the rest."""
    bucket = s3s_fs.new_bucket()
    data = os.urandom(12 * MIB)
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=data)
    config = TransferConfig(multipart_threshold=64 * MIB)

    class Sink(io.BytesIO):
        seen = 0
        seen_at_first_write = None

        def write(self, data):
            if self.seen_at_first_write is None:
                self.seen_at_first_write = self.seen
            return super().write(data)

        def told(self, increment):
            self.seen += increment

    async def aio_download(sink, endpoint_url):
        kwargs = s3s_fs.client_kwargs(endpoint_url=endpoint_url, config=Config(read_timeout=5))
        async with s3turbo.aio.client("s3", **kwargs) as s3:
            await s3.download_fileobj(bucket, "k", sink, Config=config, Callback=sink.told)

    first_writes = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        proxy.bytes_per_second = 8 * MIB
        for name, client in s3s_fs.clients_through(proxy, Config(read_timeout=5)).items():
            broken = proxy.inject(Fault(method="GET", reset_response_after=600_000))
            sink = Sink()
            if api == "aio" and name == "s3turbo":
                asyncio.run(aio_download(sink, proxy.endpoint_url))
            else:
                client.download_fileobj(bucket, "k", sink, Config=config, Callback=sink.told)
            assert broken.hits == 1, name
            assert sink.getvalue() == data, name
            first_writes[name] = sink.seen_at_first_write
    assert all(seen < 4 * MIB for seen in first_writes.values()), first_writes


# What boto3's download_fileobj of an empty object does with each sink.
EMPTY_OBJECT_INTO = {
    "text file": ("raised", "TypeError"),
    "closed": ("raised", "ValueError"),
    "read-only file": ("raised", "UnsupportedOperation"),
    "StringIO": ("raised", "TypeError"),
    "at 5": ("done", 0),
}


@pytest.mark.parametrize("api", ["sync", "aio"])
@pytest.mark.parametrize("sink", EMPTY_OBJECT_INTO)
def test_an_empty_object_goes_into_the_sink_as_in_boto3(s3s_fs, tmp_path, api, sink):
    """s3transfer writes b"" at offset 0 of the sink for an empty object: a sink that takes no
    bytes fails as it would with bytes (the engine wrote nothing, and reported success), and a
    seekable one ends at 0."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="empty", Body=b"")
    (tmp_path / "file").write_bytes(b"")

    def make_sink():
        if sink == "text file":
            return open(tmp_path / "file", "w")
        if sink == "read-only file":
            return open(tmp_path / "file", "rb")
        if sink == "StringIO":
            return io.StringIO()
        made = io.BytesIO(b"12345")
        if sink == "closed":
            made.close()
        else:
            made.seek(5)
        return made

    async def aio_download(fileobj):
        async with s3turbo.aio.client("s3", **s3s_fs.client_kwargs()) as s3:
            await s3.download_fileobj(bucket, "empty", fileobj)

    outcomes = {}
    for name, client in (("s3turbo", s3s_fs.s3turbo_client()), ("boto3", s3s_fs.boto3_client())):
        fileobj = make_sink()
        try:
            if api == "aio" and name == "s3turbo":
                asyncio.run(aio_download(fileobj))
            else:
                client.download_fileobj(bucket, "empty", fileobj)
            outcomes[name] = ("done", fileobj.tell())
        except Exception as error:
            outcomes[name] = ("raised", type(error).__name__)
        finally:
            fileobj.close()
    assert outcomes["s3turbo"] == outcomes["boto3"] == EMPTY_OBJECT_INTO[sink]


class OverlongReads:
    """A source whose read(n) gives n + 100 bytes (against the file-object contract, as some
    wrappers do), except its second, which is short, so that a block is read on from it."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)
        self.asked: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        if size < 0:
            return self._data.read()
        return self._data.read(size // 2 if len(self.asked) == 2 else size + 100)


@pytest.mark.parametrize("api", ["sync", "aio"])
def test_a_source_that_reads_more_than_asked_is_still_sent_in_parts(moto, api):
    """A read(n) giving more than n bytes made the block being read on from a short read
    overshoot: the engine then asked for a negative size, which reads to the end of the
    stream, and sent all the rest as one part, held in memory at once. It now stops there, as
    s3transfer reads no more than it asked for, and the parts stay about the chunk size."""
    bucket = moto.new_bucket()
    data = os.urandom(17 * MIB + 3)
    source = OverlongReads(data)

    async def aio_upload():
        async with s3turbo.aio.client("s3", **moto.client_kwargs()) as s3:
            await s3.upload_fileobj(source, bucket, "k", Config=MULTIPART_5)

    if api == "aio":
        asyncio.run(aio_upload())
    else:
        moto.s3turbo_client().upload_fileobj(source, bucket, "k", Config=MULTIPART_5)
    stored = moto.boto3_client().get_object(Bucket=bucket, Key="k")
    assert stored["Body"].read() == data
    assert stored["ETag"].endswith('-4"')
    assert min(source.asked) >= 0


@pytest.mark.parametrize("api", ["sync", "aio"])
@pytest.mark.parametrize("source", ["BytesIO", "file"])
def test_a_source_positioned_past_its_end_is_refused_as_in_boto3(moto, tmp_path, api, source):
    """A seekable source positioned past its end has a negative size to send from there:
    boto3's body refuses it (ValueError from len()) before any request; the engine stored an
    empty object from a BytesIO, and failed on a file's read(-70)."""
    bucket = moto.new_bucket()
    (tmp_path / "data").write_bytes(b"abc" * 10)

    def positioned():
        made = io.BytesIO(b"abc" * 10) if source == "BytesIO" else open(tmp_path / "data", "rb")
        made.seek(100)
        return made

    async def aio_upload(fileobj):
        async with s3turbo.aio.client("s3", **moto.client_kwargs()) as s3:
            await s3.upload_fileobj(fileobj, bucket, "s3turbo")

    messages = {}
    for name, client in (("boto3", moto.boto3_client()), ("s3turbo", moto.s3turbo_client())):
        with positioned() as fileobj, pytest.raises(ValueError) as raised:
            if api == "aio" and name == "s3turbo":
                asyncio.run(aio_upload(fileobj))
            else:
                client.upload_fileobj(fileobj, bucket, name)
        messages[name] = str(raised.value)
    assert messages["s3turbo"] == messages["boto3"]
    assert "Contents" not in moto.boto3_client().list_objects_v2(Bucket=bucket)


class UnaskableSink(io.BytesIO):
    """A sink whose seekable() fails, as a broken wrapper's or a dropped socket's may."""

    def seekable(self) -> bool:
        raise OSError("seekable() failed")


@pytest.mark.parametrize("api", ["sync", "aio"])
@pytest.mark.parametrize("sink", ["closed", "seekable() raises"])
@pytest.mark.parametrize("key", ["small", "missing"])
def test_a_sink_that_cannot_say_if_it_seeks_fails_before_any_request_as_in_boto3(
    s3s_fs, api, sink, key
):
    """s3transfer asks the sink whether it seeks before its HeadObject: a closed sink, or one
    whose seekable() raises, fails the call with that error before any request, whether the
    object exists or not. The engine asked at the first write: it raised a missing object's
    404, or the sink's error after GETs the Callback had counted."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="small", Body=b"12345")

    def make_sink() -> io.BytesIO:
        if sink == "closed":
            closed = io.BytesIO()
            closed.close()
            return closed
        return UnaskableSink()

    outcomes = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        kwargs = s3s_fs.client_kwargs(endpoint_url=proxy.endpoint_url)

        async def aio_download(fileobj, callback):
            async with s3turbo.aio.client("s3", **kwargs) as s3:
                await s3.download_fileobj(bucket, key, fileobj, Callback=callback)

        clients = {"s3turbo": s3turbo.client("s3", **kwargs), "boto3": boto3.client("s3", **kwargs)}
        for name, client in clients.items():
            counted: list[int] = []
            proxy.requests.clear()
            with pytest.raises((ValueError, OSError)) as raised:
                if api == "aio" and name == "s3turbo":
                    asyncio.run(aio_download(make_sink(), counted.append))
                else:
                    client.download_fileobj(bucket, key, make_sink(), Callback=counted.append)
            outcomes[name] = (type(raised.value), str(raised.value), sum(counted))
            assert list(proxy.requests) == [], name
    assert outcomes["s3turbo"] == outcomes["boto3"]
    assert outcomes["boto3"][2] == 0


class ProgressStoreDown(ClientError):
    """An error of the user's own that a Callback raises (say, from the store it records
    progress in): a ClientError subclass, as other clients' modeled errors are."""


def raising_callback(error: BaseException):
    def callback(_amount: int) -> None:
        raise error

    return callback


@pytest.mark.parametrize(
    "method", ["upload_fileobj", "download_fileobj", "download_file", "upload_file"]
)
def test_a_clienterror_of_the_users_own_goes_on_as_it_is(s3s_fs, tmp_path, method):
    """A ClientError (or subclass) raised by the user's Callback reaches the caller as boto3
    lets it through: the same object (upload_file wraps it in S3UploadFailedError, in both);
    only S3's own errors become the client's modeled classes. A missing key's code is used, so
    that rewriting it would show."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    s3s_fs.boto3_client().upload_file(str(source), bucket, "k")
    response = {"Error": {"Code": "NoSuchKey", "Message": "not S3's"}}
    for name, client in (("boto3", s3s_fs.boto3_client()), ("s3turbo", s3s_fs.s3turbo_client())):
        for raised in (ProgressStoreDown(response, "Record"), ClientError(response, "Record")):
            callback = raising_callback(raised)
            with pytest.raises(Exception) as caught:
                if method == "upload_fileobj":
                    client.upload_fileobj(io.BytesIO(b"data"), bucket, "k", Callback=callback)
                elif method == "download_fileobj":
                    client.download_fileobj(bucket, "k", io.BytesIO(), Callback=callback)
                elif method == "download_file":
                    client.download_file(bucket, "k", str(tmp_path / "out"), Callback=callback)
                else:
                    client.upload_file(str(source), bucket, "k", Callback=callback)
            if method == "upload_file":
                assert type(caught.value) is S3UploadFailedError, name
                assert caught.value.__context__ is raised, name
            else:
                assert caught.value is raised, name


class FalsyProgress(list):
    """A callable that is false (an empty list): S3Transfer's `if callback:` skips it."""

    def __call__(self, amount: int) -> None:
        self.append(amount)


def test_falsy_callbacks_are_taken_as_boto3_takes_them(s3s_fs, tmp_path):
    """upload_file and download_file ignore a Callback that is false (boto3's S3Transfer tests
    `if callback:`); upload_fileobj and download_fileobj call any that is not None."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    seen = {}
    for name, client in (("boto3", s3s_fs.boto3_client()), ("s3turbo", s3s_fs.s3turbo_client())):
        calls = {}
        client.upload_file(str(source), bucket, "k", Callback=False)
        client.download_file(bucket, "k", str(tmp_path / "out"), Callback=0)
        for method in ("upload_file", "download_file", "upload_fileobj", "download_fileobj"):
            progress = FalsyProgress()
            if method == "upload_file":
                client.upload_file(str(source), bucket, "k", Callback=progress)
            elif method == "download_file":
                client.download_file(bucket, "k", str(tmp_path / "out"), Callback=progress)
            elif method == "upload_fileobj":
                client.upload_fileobj(io.BytesIO(b"x" * 1000), bucket, "k", Callback=progress)
            else:
                client.download_fileobj(bucket, "k", io.BytesIO(), Callback=progress)
            calls[method] = sum(progress)
        seen[name] = calls
    assert seen["s3turbo"] == seen["boto3"]
    assert seen["boto3"] == {
        "upload_file": 0,
        "download_file": 0,
        "upload_fileobj": 1000,
        "download_fileobj": 1000,
    }


def test_aio_takes_falsy_callbacks_as_the_sync_api(s3s_fs, tmp_path):
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)

    async def main():
        async with s3turbo.aio.client("s3", **s3s_fs.client_kwargs()) as s3:
            progress = FalsyProgress()
            await s3.upload_file(str(source), bucket, "k", Callback=False)
            await s3.upload_file(str(source), bucket, "k", Callback=progress)
            await s3.download_file(bucket, "k", str(tmp_path / "out"), Callback=progress)
            await s3.upload_fileobj(io.BytesIO(b"x" * 10), bucket, "k", Callback=progress)
            return list(progress)

    assert asyncio.run(main()) == [10]


class ChangingFile(io.FileIO):
    """A file that another process cuts short or extends once the upload has measured it, as
    its first read begins."""

    def __init__(self, path, change):
        super().__init__(path, "rb")
        self.change = change

    def read(self, size=-1):
        if self.change is not None:
            self.change(), setattr(self, "change", None)
        return super().read(size)


@pytest.mark.parametrize("size", [1000, 12 * MIB], ids=["one request", "multipart"])
@pytest.mark.parametrize("change", ["cut short", "extended"])
def test_a_seekable_source_that_changes_sends_what_it_had(moto, tmp_path, change, size):
    """A seekable file object sends the bytes it had when the upload began, as s3transfer does
    (its last part of a multipart upload reads on to a full part, so boto3 also sends what was
    appended up to there); a file cut short meanwhile fails the upload (boto3's fails too: S3
    refuses the short parts, or waits for the bytes it was promised), with nothing stored and
    no multipart upload left. s3turbo says so at once."""
    bucket = moto.new_bucket()
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    stored = {}
    for name, client in (
        ("boto3", moto.boto3_client(config=Config(read_timeout=2, retries={"max_attempts": 0}))),
        ("s3turbo", moto.s3turbo_client()),
    ):
        path = write_random(tmp_path / f"{name}.bin", size)
        original = path.read_bytes()
        if change == "cut short":
            cut = size // 2 + 1
            changing = ChangingFile(path, lambda p=path, cut=cut: os.truncate(p, cut))
        else:
            changing = ChangingFile(path, lambda p=path: p.open("ab").write(b"more" * 1000))
        try:
            client.upload_fileobj(changing, bucket, name, Config=config)
            outcome = "stored"
        except Exception as error:  # boto3's differs by size and server; s3turbo's is below
            outcome = error
        if change == "extended":
            assert outcome == "stored", name
            body = client.get_object(Bucket=bucket, Key=name)["Body"].read()
            stored[name] = body.startswith(original) and (name == "boto3" or body == original)
        else:
            assert outcome != "stored", name
            if name == "s3turbo":
                assert isinstance(outcome, OSError) and "changed during the upload" in str(outcome)
            keys = client.list_objects_v2(Bucket=bucket).get("Contents", [])
            assert name not in [k["Key"] for k in keys]
    assert moto.boto3_client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    if change == "extended":
        assert stored == {"boto3": True, "s3turbo": True}


def test_aio_sends_what_a_seekable_source_had(moto, tmp_path):
    """s3turbo.aio as the sync API: an extended file sends what it had, one cut short fails."""
    bucket = moto.new_bucket()
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    extended = write_random(tmp_path / "extended.bin", 12 * MIB)
    original = extended.read_bytes()
    cut = write_random(tmp_path / "cut.bin", 12 * MIB)

    async def main():
        async with s3turbo.aio.client("s3", **moto.client_kwargs()) as s3:
            grow = ChangingFile(extended, lambda: extended.open("ab").write(b"more"))
            await s3.upload_fileobj(grow, bucket, "extended", Config=config)
            with pytest.raises(OSError, match="changed during the upload"):
                shrink = ChangingFile(cut, lambda: os.truncate(cut, 6 * MIB))
                await s3.upload_fileobj(shrink, bucket, "cut", Config=config)

    asyncio.run(main())
    boto = moto.boto3_client()
    assert boto.get_object(Bucket=bucket, Key="extended")["Body"].read() == original
    assert [k["Key"] for k in boto.list_objects_v2(Bucket=bucket)["Contents"]] == ["extended"]
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
