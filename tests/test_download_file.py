"""download_file on the engine, compared with boto3's on the same server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from helpers import MIB, SIZES, THRESHOLD, Callbacks, listing, run_script, sha256_file, write_random
from s3transfer.exceptions import S3DownloadFailedError, S3ValidationError

import s3turbo
import s3turbo.aio
from faultproxy import Fault, FaultProxy


@pytest.mark.parametrize("size", SIZES)
def test_download_matches_boto3(server, bucket, tmp_path, size):
    source = write_random(tmp_path / "source.bin", size)
    boto = server.boto3_client()
    boto.upload_file(str(source), bucket, "k")
    callbacks = Callbacks()

    server.s3turbo_client().download_file(
        bucket, "k", str(tmp_path / "turbo.bin"), Callback=callbacks
    )
    boto.download_file(bucket, "k", str(tmp_path / "boto3.bin"))

    assert sha256_file(tmp_path / "turbo.bin") == sha256_file(source)
    assert sha256_file(tmp_path / "boto3.bin") == sha256_file(source)
    assert callbacks.total == size
    assert 0 not in callbacks.increments
    assert callbacks.threads <= {threading.get_ident()}
    # Nothing but the three files: no temporary file left behind.
    assert listing(tmp_path) == ["boto3.bin", "source.bin", "turbo.bin"]


def test_download_overwrites_and_honours_config(server, bucket, tmp_path):
    source = write_random(tmp_path / "source.bin", 11 * MIB + 3)
    server.boto3_client().upload_file(str(source), bucket, "k")
    destination = tmp_path / "out.bin"
    destination.write_bytes(b"old content that is longer than nothing")
    config = TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=3
    )
    server.s3turbo_client().download_file(bucket, "k", destination, Config=config)
    assert sha256_file(destination) == sha256_file(source)


def test_missing_key_is_a_404_client_error_as_in_boto3(server, bucket, tmp_path):
    errors = []
    for client in (server.s3turbo_client(), server.boto3_client()):
        with pytest.raises(ClientError) as caught:
            client.download_file(bucket, "missing", str(tmp_path / "out.bin"))
        errors.append(caught.value)
    ours, theirs = errors
    assert type(ours) is type(theirs)
    assert ours.response["Error"]["Code"] == theirs.response["Error"]["Code"] == "404"
    assert ours.response["Error"]["Message"] == theirs.response["Error"]["Message"]
    assert ours.operation_name == theirs.operation_name == "HeadObject"
    assert str(ours) == str(theirs)
    assert listing(tmp_path) == []


def test_missing_bucket_as_in_boto3(moto, tmp_path):
    errors = []
    for client in (moto.s3turbo_client(), moto.boto3_client()):
        with pytest.raises(ClientError) as caught:
            client.download_file("no-such-bucket-here", "k", str(tmp_path / "out.bin"))
        errors.append(caught.value)
    assert type(errors[0]) is type(errors[1])
    assert errors[0].response["Error"]["Code"] == errors[1].response["Error"]["Code"]


def raised(call, *args) -> tuple:
    """What a boto3 caller sees of the ClientError `call(*args)` raises."""
    with pytest.raises(ClientError) as caught:
        call(*args)
    error = caught.value
    return type(error).__name__, str(error), error.operation_name, error.response["Error"]


@pytest.mark.parametrize("call", ["download_file", "download_fileobj"])
def test_archived_object_is_invalid_object_state_as_in_boto3(moto, tmp_path, call):
    """A GLACIER object's metadata can be read, its bytes cannot: boto3's HeadObject succeeds
    and its GetObject raises the modeled InvalidObjectState that code catches to start a
    restore (the engine's first GET was reported as a HeadObject's 403)."""
    bucket = moto.new_bucket()
    moto.boto3_client().put_object(Bucket=bucket, Key="cold", Body=b"x", StorageClass="GLACIER")
    seen = {}
    for name, client in (("s3turbo", moto.s3turbo_client()), ("boto3", moto.boto3_client())):
        sink = str(tmp_path / "o") if call == "download_file" else io.BytesIO()
        seen[name] = raised(getattr(client, call), bucket, "cold", sink)
    assert seen["s3turbo"] == seen["boto3"]
    assert seen["boto3"][0] == "InvalidObjectState"
    assert listing(tmp_path) == []


# S3's refusal of an SSE-KMS object's bytes to a caller who may read its metadata but not use
# its key: HeadObject answers, GetObject is denied.
KMS_DENIED = (
    "<Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/u is not "
    "authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:123456789012:key/k"
    "</Message></Error>"
)


@pytest.mark.parametrize("call", ["download_file", "download_fileobj"])
def test_a_get_denied_where_headobject_is_not_raises_the_gets_error_as_boto3(
    s3s_fs, tmp_path, call
):
    """boto3's HeadObject succeeds and its GetObject's AccessDenied is raised, with S3's
    message saying why. The engine's first GET stands for the HeadObject: a HeadObject tells
    whether it would have refused too (the GET's 403 was reported as a HeadObject's, with
    "Forbidden" for a message)."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"x" * 1000)
    seen = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        proxy.inject(
            Fault(
                method="GET", answer_error=(403, "AccessDenied"), answer_body=KMS_DENIED, times=None
            )
        )
        for name, client in s3s_fs.clients_through(proxy, Config()).items():
            sink = str(tmp_path / "o") if call == "download_file" else io.BytesIO()
            seen[name] = raised(getattr(client, call), bucket, "k", sink)
    assert seen["s3turbo"] == seen["boto3"]
    assert seen["boto3"][2] == "GetObject" and "kms:Decrypt" in seen["boto3"][1]
    assert listing(tmp_path) == []


@pytest.mark.parametrize("call", ["download_file", "download_fileobj"])
def test_a_get_denied_as_headobject_is_raises_headobjects_error_as_boto3(s3s_fs, tmp_path, call):
    """Wrong credentials: boto3's HeadObject is refused, and that error (a bare 403) is raised;
    so is the engine's, whose first GET is refused alike."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"x")
    seen = {}
    for name, make in (("s3turbo", s3s_fs.s3turbo_client), ("boto3", s3s_fs.boto3_client)):
        client = make(aws_secret_access_key="wrong")
        sink = str(tmp_path / "o") if call == "download_file" else io.BytesIO()
        seen[name] = raised(getattr(client, call), bucket, "k", sink)
    assert seen["s3turbo"] == seen["boto3"]
    assert seen["boto3"][2] == "HeadObject" and seen["boto3"][3]["Code"] == "403"
    assert listing(tmp_path) == []


def test_missing_object_without_checksum_validation_is_getobjects_error(server, tmp_path):
    """With response checksums validated only when required, s3transfer sends no HeadObject:
    its first GET's error is the one raised (NoSuchKey, NoSuchBucket), not a HEAD's 404."""
    config = Config(response_checksum_validation="when_required")
    bucket = server.new_bucket()
    seen = {}
    for name, make in (("s3turbo", server.s3turbo_client), ("boto3", server.boto3_client)):
        client = make(config=config)
        seen[name] = (
            raised(client.download_file, bucket, "missing", str(tmp_path / "o")),
            raised(client.download_fileobj, "no-such-bucket-here", "k", io.BytesIO()),
        )
    assert seen["s3turbo"] == seen["boto3"]
    missing_key, missing_bucket = seen["boto3"]
    assert missing_key[0] == "NoSuchKey"  # (s3s-fs says NoSuchKey of a missing bucket too)
    assert missing_key[2] == missing_bucket[2] == "GetObject"
    assert listing(tmp_path) == []


# Three ranges of a 12 MiB object, the first of which stands for boto3's HeadObject.
FIVE_MIB_PARTS = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)


def three_part_object(server, tmp_path) -> tuple[str, Path]:
    """A new bucket with a 12 MiB object "k", and its local source."""
    bucket = server.new_bucket()
    source = write_random(tmp_path / "source.bin", 12 * MIB)
    server.boto3_client().upload_file(str(source), bucket, "k")
    return bucket, source


@pytest.mark.parametrize("call", ["download_file", "download_fileobj", "aio download_file"])
def test_object_changed_during_the_download_as_in_boto3(s3s_fs, tmp_path, call):
    """A range refused by its If-Match (the object was replaced between ranges) is
    s3transfer's S3DownloadFailedError, with nothing left on disk."""
    bucket, source = three_part_object(s3s_fs, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    raised = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        changed = proxy.inject(
            Fault(
                header_contains=("range", f"bytes={5 * MIB}-"),
                answer_error=(412, "PreconditionFailed"),
                times=None,
            )
        )
        for name, client in s3s_fs.clients_through(proxy, Config()).items():
            with pytest.raises(S3DownloadFailedError) as caught:
                if call == "download_file":
                    client.download_file(bucket, "k", str(out / name), Config=FIVE_MIB_PARTS)
                elif call == "download_fileobj":
                    client.download_fileobj(bucket, "k", io.BytesIO(), Config=FIVE_MIB_PARTS)
                elif name == "s3turbo":
                    kwargs = s3s_fs.client_kwargs(endpoint_url=proxy.endpoint_url)
                    asyncio.run(aio_download(kwargs, bucket, str(out / name)))
                else:
                    client.download_file(bucket, "k", str(out / name), Config=FIVE_MIB_PARTS)
            raised[name] = str(caught.value)
    assert changed.hits == 2
    assert raised["s3turbo"] == raised["boto3"]
    assert listing(out) == []


async def aio_download(client_kwargs: dict, bucket: str, filename: str) -> None:
    async with s3turbo.aio.client("s3", **client_kwargs) as s3:
        await s3.download_file(bucket, "k", filename, Config=FIVE_MIB_PARTS)


def test_a_range_answered_with_another_is_refused_as_in_boto3(s3s_fs, tmp_path):
    """A server or proxy that answers a ranged GET with another range than the one asked for:
    s3transfer's S3ValidationError, not those bytes in the wrong place."""
    bucket, source = three_part_object(s3s_fs, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    raised = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        proxy.inject(
            Fault(
                header_contains=("range", f"bytes={5 * MIB}-"),
                response_header=("Content-Range", f"bytes 0-{5 * MIB - 1}/{12 * MIB}"),
                times=None,
            )
        )
        for name, client in s3s_fs.clients_through(proxy, Config()).items():
            with pytest.raises(S3ValidationError) as caught:
                client.download_file(bucket, "k", str(out / name), Config=FIVE_MIB_PARTS)
            raised[name] = str(caught.value)
    assert raised["s3turbo"] == raised["boto3"]
    assert listing(out) == []


def test_a_first_range_without_content_range_is_sized_by_a_head(s3s_fs, tmp_path):
    """A proxy that strips Content-Range from the first range's 206 leaves its length, which is
    not the object's: a HeadObject tells the size, and the whole object comes down (the engine
    wrote the first range alone)."""
    bucket, source = three_part_object(s3s_fs, tmp_path)
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        stripped = proxy.inject(
            Fault(
                header_contains=("range", "bytes=0-"),
                response_header=("Content-Range", None),
                times=None,
            )
        )
        for name, client in s3s_fs.clients_through(proxy, Config()).items():
            client.download_file(bucket, "k", str(tmp_path / name), Config=FIVE_MIB_PARTS)
            assert sha256_file(tmp_path / name) == sha256_file(source), name
    assert stripped.hits == 2


def test_a_nul_in_the_destination_is_a_value_error_as_in_boto3(s3s_fs, tmp_path):
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"data")
    messages = []
    for client in (s3s_fs.s3turbo_client(), s3s_fs.boto3_client()):
        with pytest.raises(ValueError) as caught:
            client.download_file(bucket, "k", str(tmp_path / "bad\0name"))
        messages.append(str(caught.value))
    assert messages[0] == messages[1] == "embedded null byte"
    assert listing(tmp_path) == []


def test_wrong_secret_is_a_403_as_in_boto3(s3s_fs, tmp_path):
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"data")
    codes = []
    for client in (
        s3s_fs.s3turbo_client(aws_secret_access_key="wrong"),
        s3s_fs.boto3_client(aws_secret_access_key="wrong"),
    ):
        with pytest.raises(ClientError) as caught:
            client.download_file(bucket, "k", str(tmp_path / "out.bin"))
        codes.append(caught.value.response["Error"]["Code"])
    assert codes == ["403", "403"]


@pytest.mark.parametrize("destination", ["no/such/dir/out.bin", "missing/"])
def test_missing_destination_directory_is_an_os_error(server, bucket, tmp_path, destination):
    server.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"data")
    for client in (server.s3turbo_client(), server.boto3_client()):
        with pytest.raises(FileNotFoundError):
            client.download_file(bucket, "k", f"{tmp_path}/{destination}")
    assert listing(tmp_path) == []


def test_failed_download_leaves_the_destination_untouched(server, bucket, tmp_path):
    destination = tmp_path / "precious.bin"
    destination.write_bytes(b"keep me")
    with pytest.raises(ClientError):
        server.s3turbo_client().download_file(bucket, "missing", str(destination))
    assert destination.read_bytes() == b"keep me"
    assert listing(tmp_path) == ["precious.bin"]


def test_interrupted_download_leaves_the_destination_untouched(server, bucket, tmp_path):
    source = write_random(tmp_path / "source.bin", 4 * THRESHOLD)
    server.boto3_client().upload_file(str(source), bucket, "k")
    destination = tmp_path / "precious.bin"
    destination.write_bytes(b"keep me")

    class Stop(Exception):
        pass

    def callback(increment):
        raise Stop()

    with pytest.raises(Stop):
        server.s3turbo_client().download_file(bucket, "k", str(destination), Callback=callback)
    assert destination.read_bytes() == b"keep me"
    assert listing(tmp_path) == ["precious.bin", "source.bin"]


def test_unknown_download_arg_is_a_value_error(server, bucket, tmp_path):
    for client in (server.s3turbo_client(), server.boto3_client()):
        with pytest.raises(ValueError, match="Invalid extra_args key 'Range'"):
            client.download_file(bucket, "k", str(tmp_path / "o"), ExtraArgs={"Range": "bytes=0-1"})


def test_requests_a_download_makes(server, bucket, proxy, tmp_path):
    """A GET of the first range tells the object's size and ETag: an object below the
    threshold is one request (boto3 makes two: HeadObject, GetObject); an empty one, which has
    no range, is looked up with HeadObject; a larger one is its ranges."""
    boto = server.boto3_client()
    for key, size in (("small", 1000), ("empty", 0), ("large", THRESHOLD + 1)):
        boto.upload_file(str(write_random(tmp_path / key, size)), bucket, key)
    client = server.s3turbo_client(endpoint_url=proxy.endpoint_url)
    sent = {}
    for key in ("small", "empty", "large"):
        proxy.requests.clear()
        client.download_file(bucket, key, str(tmp_path / f"{key}.out"))
        # Distinct requests: the SDK may resend an idempotent GET whose pooled connection the
        # server closed under it, which is not a request the download meant to make.
        distinct = {(r.method, r.headers.get("range")) for r in proxy.requests}
        sent[key] = sorted(method for method, _ in distinct)
        assert sha256_file(tmp_path / f"{key}.out") == sha256_file(tmp_path / key)
    assert sent == {"small": ["GET"], "empty": ["GET", "HEAD"], "large": ["GET", "GET"]}


def read_fifo(path, into: list) -> threading.Thread:
    """A reader of the FIFO at `path`, on a thread, appending what it reads to `into`."""

    def read() -> None:
        with open(path, "rb") as fifo:
            into.append(fifo.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


@pytest.mark.parametrize("size", [0, 1000, 11 * MIB + 3])
def test_a_fifo_destination_is_written_into_as_boto3_writes_it(server, bucket, tmp_path, size):
    """s3transfer writes into a device or FIFO destination (/dev/null, a named pipe) as it is,
    in order. The engine used to rename a temporary file over it: the FIFO became a regular
    file and its reader got nothing (and /dev/null would have been replaced)."""
    source = write_random(tmp_path / "source.bin", size)
    server.boto3_client().upload_file(str(source), bucket, "k")
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    async def aio_download(filename, **kwargs):
        async with s3turbo.aio.client("s3", **server.client_kwargs()) as s3:
            await s3.download_file(bucket, "k", filename, **kwargs)

    calls = {
        "boto3": server.boto3_client().download_file,
        "s3turbo": server.s3turbo_client().download_file,
        "s3turbo.aio": lambda *args, **kwargs: asyncio.run(aio_download(*args[2:], **kwargs)),
    }
    for name, download in calls.items():
        received, callbacks = [], Callbacks()
        reader = read_fifo(fifo, received)
        download(bucket, "k", str(fifo), Config=config, Callback=callbacks)
        reader.join(timeout=30)
        assert received == [source.read_bytes()], name
        assert callbacks.total == size, name
        assert stat.S_ISFIFO(os.stat(fifo).st_mode), name
    assert listing(tmp_path) == ["pipe", "source.bin"]


def test_a_missing_object_is_refused_before_a_fifo_destination_is_opened(s3s_fs, tmp_path):
    """boto3 asks HeadObject first: a missing object's 404 comes before it opens the FIFO,
    whose opening would wait for a reader (for ever, if none comes). The engine opens a FIFO
    at the first bytes: it waited in that opening before it sent a request."""
    bucket = s3s_fs.new_bucket()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    async def aio_download():
        async with s3turbo.aio.client("s3", **s3s_fs.client_kwargs()) as s3:
            await s3.download_file(bucket, "missing", str(fifo))

    calls = {
        "boto3": lambda: s3s_fs.boto3_client().download_file(bucket, "missing", str(fifo)),
        "s3turbo": lambda: s3s_fs.s3turbo_client().download_file(bucket, "missing", str(fifo)),
        "s3turbo.aio": lambda: asyncio.run(aio_download()),
    }
    outcomes = {}
    for name, download in calls.items():
        outcome = []

        def run(download=download, outcome=outcome):
            try:
                download()
            except ClientError as error:
                outcome.append(error.response["Error"]["Code"])

        caller = threading.Thread(target=run, daemon=True)
        caller.start()
        caller.join(timeout=15)
        if caller.is_alive():
            outcome.append("waited for a reader")
            # A reader that comes and goes lets the opening, and the call, end.
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
            caller.join(timeout=15)
        outcomes[name] = outcome
    assert outcomes == {"boto3": ["404"], "s3turbo": ["404"], "s3turbo.aio": ["404"]}


@pytest.mark.parametrize("length", [238, 246, 255])
def test_a_destination_name_of_any_length_works_as_in_boto3(server, bucket, tmp_path, length):
    """The temporary file's name is the destination's with a suffix: it is cut to fit, as
    s3transfer cuts it, so a destination name up to the file system's 255 bytes works."""
    source = write_random(tmp_path / "source.bin", 1000)
    server.boto3_client().upload_file(str(source), bucket, "k")
    out = tmp_path / "out"
    out.mkdir()
    for name, client in (("b", server.boto3_client()), ("t", server.s3turbo_client())):
        destination = out / (name * length)
        client.download_file(bucket, "k", str(destination))
        assert destination.read_bytes() == source.read_bytes()
    assert listing(out) == ["b" * length, "t" * length]


LOCAL_FAILURES = """
import json, os, resource, signal, sys, tempfile
import boto3, s3turbo

endpoint, access_key, secret_key, bucket = sys.argv[1:5]
kwargs = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id=access_key, aws_secret_access_key=secret_key)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond the limit fails with EFBIG
seen = {}
for name, client in (("boto3", boto3.client("s3", **kwargs)),
                     ("s3turbo", s3turbo.client("s3", **kwargs))):
    folder = tempfile.mkdtemp()
    busy = os.path.join(folder, "busy")
    os.mkdir(busy)
    open(os.path.join(busy, "inside"), "w").close()
    big = os.path.join(folder, "big")
    for case, destination in (("rename", busy), ("write", big)):
        limit = 1024 * 1024 if case == "write" else resource.RLIM_INFINITY
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        try:
            client.download_file(bucket, "k", destination)
        except OSError as error:
            names = [error.filename, error.filename2]
            seen[f"{name} {case}"] = [type(error).__name__, error.errno, names, destination]
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    seen[f"{name} left"] = sorted(os.listdir(folder))
print(json.dumps(seen))
"""


def test_local_write_and_rename_errors_name_the_files_boto3s_do(s3s_fs, tmp_path):
    """An OSError of the download's own file: a write that fails (the file size limit) names
    no file, as Python's write raises it; a rename into place that fails (the destination is
    a folder) names the temporary file and the destination, as os.rename does. Each client's
    temporary file has a name of its own; nothing is left of it."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=os.urandom(3 * MIB))
    seen = json.loads(run_script(LOCAL_FAILURES, tmp_path, s3s_fs, bucket))
    for name in ("boto3", "s3turbo"):
        kind, errno, (temporary, destination), busy = seen[f"{name} rename"]
        assert (kind, errno, destination) == ("IsADirectoryError", 21, busy)
        assert temporary.startswith(busy + "."), temporary
        kind, errno, names, _ = seen[f"{name} write"]
        assert (kind, errno, names) == ("OSError", 27, [None, None])
        assert seen[f"{name} left"] == ["busy"]
