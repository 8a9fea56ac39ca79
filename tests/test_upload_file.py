"""upload_file on the engine, compared with boto3's on the same server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import os
import threading
import time
import zlib

import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from helpers import (
    MIB,
    SIZES,
    THRESHOLD,
    Callbacks,
    fallbacks,
    listing,
    run_script,
    sha256_file,
    sha256_object,
    write_random,
)

import s3turbo.aio
from faultproxy import Fault, FaultProxy
from relays import Certificates, TlsFront
from s3turbo._settings import frozen


@pytest.mark.parametrize("size", SIZES)
def test_upload_matches_boto3(server, bucket, tmp_path, size):
    source = write_random(tmp_path / "source.bin", size)
    turbo, boto = server.s3turbo_client(), server.boto3_client()
    callbacks = Callbacks()

    turbo.upload_file(str(source), bucket, "turbo", Callback=callbacks)
    boto.upload_file(str(source), bucket, "boto3")

    assert sha256_object(boto, bucket, "turbo") == sha256_file(source)
    ours, theirs = (boto.head_object(Bucket=bucket, Key=k) for k in ("turbo", "boto3"))
    assert ours["ContentLength"] == theirs["ContentLength"] == size
    assert ours.get("ContentType") == theirs.get("ContentType")
    # Same part sizes give the same ETag, "-N" suffix for multipart included.
    assert ours["ETag"] == theirs["ETag"]
    assert ("-" in ours["ETag"]) == (size >= THRESHOLD)
    assert callbacks.total == size
    assert 0 not in callbacks.increments
    # Callbacks come from the calling thread, never from the engine's workers.
    assert callbacks.threads <= {threading.get_ident()}


def test_extra_args_reach_the_object_as_with_boto3(server, bucket, tmp_path):
    source = write_random(tmp_path / "source.bin", 3 * MIB)
    extra = {
        "ContentType": "application/x-parquet",
        "Metadata": {"origin": "pipeline-7", "owner": "data"},
        "CacheControl": "max-age=60",
        "ContentDisposition": 'attachment; filename="a.parquet"',
    }
    server.s3turbo_client().upload_file(str(source), bucket, "turbo", ExtraArgs=extra)
    boto = server.boto3_client()
    boto.upload_file(str(source), bucket, "boto3", ExtraArgs=extra)
    ours, theirs = (boto.head_object(Bucket=bucket, Key=k) for k in ("turbo", "boto3"))
    for field in ("ContentType", "Metadata", "CacheControl", "ContentDisposition"):
        assert ours.get(field) == theirs.get(field), field
    assert ours["ContentType"] == "application/x-parquet"
    assert ours["Metadata"] == {"origin": "pipeline-7", "owner": "data"}


def test_one_client_reuses_extra_args_as_boto3_would(server, bucket, tmp_path):
    """The engine keeps one upload plan per ExtraArgs: each call must still get its own bucket
    and key checked, and ExtraArgs changed in place must not be served by an earlier plan."""
    source = write_random(tmp_path / "source.bin", 1024)
    turbo, boto = server.s3turbo_client(), server.boto3_client()
    extra = {"ContentType": "text/csv", "Metadata": {"run": "1"}}
    for key in ("first", "second"):
        turbo.upload_file(str(source), bucket, key, ExtraArgs=extra)
    extra["Metadata"]["run"] = "2"
    turbo.upload_file(str(source), bucket, "changed", ExtraArgs=extra)
    metadata = {
        k: boto.head_object(Bucket=bucket, Key=k)["Metadata"]
        for k in ("first", "second", "changed")
    }
    assert metadata == {"first": {"run": "1"}, "second": {"run": "1"}, "changed": {"run": "2"}}

    # Errors boto3 raises for the same calls, after the plan for `extra` exists.
    for bad in ({"Bucket": bucket, "Key": ""}, {"Bucket": "not/a/bucket", "Key": "k"}):
        args = {"ExtraArgs": extra, **bad}
        with pytest.raises(Exception) as ours:
            turbo.upload_file(str(source), **args)
        with pytest.raises(Exception) as theirs:
            boto.upload_file(str(source), **args)
        assert type(ours.value) is type(theirs.value), bad
        assert str(ours.value) == str(theirs.value), bad


def test_extra_args_on_a_multipart_upload(server, bucket, tmp_path):
    source = write_random(tmp_path / "source.bin", THRESHOLD + 5)
    extra = {"ContentType": "text/csv", "Metadata": {"k": "v"}}
    server.s3turbo_client().upload_file(str(source), bucket, "turbo", ExtraArgs=extra)
    head = server.boto3_client().head_object(Bucket=bucket, Key="turbo")
    assert head["ContentType"] == "text/csv"
    assert head["Metadata"] == {"k": "v"}
    assert head["ETag"].endswith('-2"')


@pytest.mark.parametrize("size", [1000, 6 * MIB])
def test_sse_c_key_as_bytes_is_sent_as_boto3_sends_it(server, bucket, proxy, tmp_path, size):
    """An SSE-C key as bytes (os.urandom(32), the usual form) works in all four transfers:
    botocore encodes it (base64, with its MD5) before it checks types, and every request
    carries the SSE-C headers boto3's carry."""
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": os.urandom(32)}
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    source = write_random(tmp_path / "source.bin", size)
    sent = {}
    for name, client in server.clients_through(proxy, Config()).items():
        proxy.requests.clear()
        client.upload_file(str(source), bucket, name, ExtraArgs=sse_c, Config=config)
        with open(source, "rb") as stream:
            client.upload_fileobj(stream, bucket, f"{name}-fileobj", ExtraArgs=sse_c, Config=config)
        out = tmp_path / f"{name}.out"
        client.download_file(bucket, name, str(out), ExtraArgs=sse_c, Config=config)
        sink = io.BytesIO()
        client.download_fileobj(bucket, f"{name}-fileobj", sink, ExtraArgs=sse_c, Config=config)
        assert sha256_file(out) == sha256_file(source)
        assert sink.getvalue() == source.read_bytes()
        sent[name] = {
            tuple(sorted((k, v) for k, v in r.headers.items() if "-customer-" in k))
            for r in proxy.requests
        }
    assert sent["s3turbo"] == sent["boto3"]
    assert len(next(iter(sent["boto3"]))) == 3  # algorithm, key and its MD5 on every request


def test_transfer_config_is_honoured(server, bucket, tmp_path):
    source = write_random(tmp_path / "source.bin", 12 * MIB + 1)
    config = TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2
    )
    server.s3turbo_client().upload_file(str(source), bucket, "k", Config=config)
    boto = server.boto3_client()
    boto.upload_file(str(source), bucket, "b", Config=config)
    ours, theirs = (boto.head_object(Bucket=bucket, Key=k)["ETag"] for k in ("k", "b"))
    assert ours == theirs
    assert ours.endswith('-3"')


def test_no_threads_and_path_like_filename(server, bucket, tmp_path):
    source = write_random(tmp_path / "source.bin", THRESHOLD + 1)
    config = TransferConfig(use_threads=False)
    server.s3turbo_client().upload_file(source, bucket, "k", Config=config)
    assert sha256_object(server.boto3_client(), bucket, "k") == sha256_file(source)


def test_unknown_extra_arg_is_a_value_error_as_in_boto3(server, bucket, tmp_path):
    source = write_random(tmp_path / "source.bin", 10)
    errors = []
    for client in (server.s3turbo_client(), server.boto3_client()):
        with pytest.raises(ValueError) as caught:
            client.upload_file(str(source), bucket, "k", ExtraArgs={"Colour": "blue"})
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "Invalid extra_args key 'Colour'" in errors[0]


def test_filename_of_wrong_type_is_a_value_error(server, bucket):
    for client in (server.s3turbo_client(), server.boto3_client()):
        with pytest.raises(ValueError, match="Filename must be a string"):
            client.upload_file(42, bucket, "k")


ALSO_WRONG = {
    "nothing else": ({}, FileNotFoundError),
    "a parameter's type": ({"ExtraArgs": {"ContentType": 5}}, FileNotFoundError),
    "the bucket name": ({"Bucket": "Bad_Name!"}, FileNotFoundError),
    "the key's type": ({"Key": 7}, FileNotFoundError),
    "non-ASCII metadata": ({"ExtraArgs": {"Metadata": {"a": "\u00e9"}}}, FileNotFoundError),
    # s3transfer checks the names of ExtraArgs as the call is made, before the file.
    "an ExtraArgs name": ({"ExtraArgs": {"Bogus": 1}}, ValueError),
}


@pytest.mark.parametrize("also_wrong", ALSO_WRONG)
def test_missing_local_file(server, bucket, tmp_path, also_wrong):
    """A missing file is FileNotFoundError whatever is wrong with the request besides, as
    s3transfer sizes the file before it builds any request (the engine checked the request's
    parameters first, and raised ParamValidationError); sync and aio."""
    overrides, raised = ALSO_WRONG[also_wrong]
    call = {"Filename": str(tmp_path / "nope.bin"), "Bucket": bucket, "Key": "k", **overrides}

    async def aio_upload():
        async with s3turbo.aio.client("s3", **server.client_kwargs()) as s3:
            await s3.upload_file(**call)

    for client in (server.s3turbo_client(), server.boto3_client()):
        with pytest.raises(raised):
            client.upload_file(**call)
    with pytest.raises(raised):
        asyncio.run(aio_upload())


def feed_once(fifo, data: bytes) -> threading.Thread:
    """A thread that writes `data` into the FIFO as soon as a reader opens it (for 5 s)."""

    def write() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader yet
                time.sleep(0.01)
                continue
            try:
                os.write(fd, data)
            except (BlockingIOError, BrokenPipeError):  # the reader refused it and closed
                pass
            finally:
                os.close(fd)
            return

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


def test_pipe_is_refused_as_boto3_refuses_it(server, bucket, tmp_path):
    """A FIFO has no size: uploading it as an empty object would lose what is piped into it."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for client in (server.s3turbo_client(), server.boto3_client()):
        writer = feed_once(fifo, b"piped bytes")
        with pytest.raises(io.UnsupportedOperation, match="not seekable"):
            client.upload_file(str(fifo), bucket, "k")
        writer.join()
    assert server.boto3_client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_missing_bucket_is_wrapped_as_boto3_wraps_it(moto, tmp_path):
    source = write_random(tmp_path / "source.bin", 10)
    messages = []
    for client in (moto.s3turbo_client(), moto.boto3_client()):
        with pytest.raises(S3UploadFailedError) as caught:
            client.upload_file(str(source), "no-such-bucket-here", "k")
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "NoSuchBucket" in messages[0]


@pytest.mark.parametrize(
    "settings",
    [
        {"multipart_threshold": float("inf")},  # "never multipart"
        {"multipart_threshold": 5.5 * MIB},
        {"multipart_threshold": 1e9},
        {"multipart_threshold": 2**64},
        {"multipart_threshold": 5 * MIB, "multipart_chunksize": 2**64},
        {"multipart_chunksize": 5.5 * MIB},  # used by multipart transfers only
        {"multipart_threshold": 5 * MIB, "max_concurrency": 2.0},
    ],
)
def test_transfer_config_numbers_are_taken_as_boto3_takes_them(s3s_fs, tmp_path, settings):
    """s3transfer compares sizes with any number (a float, infinity, beyond 2**64) and clamps
    the part size: the same parts (so the same ETag) and the same bytes back."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 6 * MIB)
    config = TransferConfig(**settings)
    etags = {}
    for name, client in (("s3turbo", s3s_fs.s3turbo_client()), ("boto3", s3s_fs.boto3_client())):
        client.upload_file(str(source), bucket, name, Config=config)
        client.download_file(bucket, name, str(tmp_path / name), Config=config)
        assert sha256_file(tmp_path / name) == sha256_file(source)
        etags[name] = s3s_fs.boto3_client().head_object(Bucket=bucket, Key=name)["ETag"]
    assert etags["s3turbo"] == etags["boto3"]


@pytest.mark.parametrize("size", [10, 2 * MIB, THRESHOLD + 1])
def test_wrong_secret_is_refused(s3s_fs, tmp_path, size):
    """The same error. The Callback has seen the bytes of a PutObject sent before the refusal,
    and none for a multipart upload refused at its creation. A body of 1 MiB or more waits for
    "100 Continue" and is not sent: boto3's waits too, but its connection still reads the body
    it drops, and its Callback counts that."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", size)
    seen = {}
    for name, client in (
        ("s3turbo", s3s_fs.s3turbo_client(aws_secret_access_key="wrong")),
        ("boto3", s3s_fs.boto3_client(aws_secret_access_key="wrong")),
    ):
        reported = []
        with pytest.raises(S3UploadFailedError) as caught:
            client.upload_file(str(source), bucket, "k", Callback=reported.append)
        seen[name] = (str(caught.value), sum(reported))
    assert "SignatureDoesNotMatch" in seen["boto3"][0]
    # s3s-fs sends no Message: botocore's text then ends in "Unknown".
    assert seen["s3turbo"][0] == seen["boto3"][0]
    assert seen["boto3"][1] == (size if size < THRESHOLD else 0)
    assert seen["s3turbo"][1] == (size if size < MIB else 0)


def test_callback_exception_aborts_the_multipart_upload(moto, tmp_path):
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", 48 * MIB)

    class Stop(Exception):
        pass

    def callback(increment):
        raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        moto.s3turbo_client().upload_file(str(source), bucket, "k", Callback=callback)
    boto = moto.boto3_client()
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
def test_callback_raising_on_the_last_bytes_still_aborts(server, bucket, slow, tmp_path):
    """The engine waits for the callback to see every byte before it completes the multipart
    upload or renames a download into place: raising on the last increment leaves nothing, as
    with boto3, however fast the transfer, and however slow the Callback (a call that began
    before the last bytes and ends after the engine asked is not taken for their report)."""
    boto = server.boto3_client()
    source = write_random(tmp_path / "source.bin", 10 * MIB)
    boto.upload_file(str(source), bucket, "existing")
    # Slow: the transfer ends (in 1.25 s) during the Callback's first call (2 s).
    bandwidth = 8 * MIB if slow else None
    config = TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_bandwidth=bandwidth
    )

    class Stop(Exception):
        pass

    def raise_at_the_end():
        seen = []

        def callback(increment):
            if slow and not seen:
                time.sleep(2)
            seen.append(increment)
            if sum(seen) == 10 * MIB:
                raise Stop("the last bytes")

        return callback

    client = server.s3turbo_client()
    with pytest.raises(Stop):
        client.upload_file(str(source), bucket, "k", Callback=raise_at_the_end(), Config=config)
    with pytest.raises(Stop):
        client.download_file(
            bucket,
            "existing",
            str(tmp_path / "out.bin"),
            Callback=raise_at_the_end(),
            Config=config,
        )
    assert [o["Key"] for o in boto.list_objects_v2(Bucket=bucket)["Contents"]] == ["existing"]
    if server.name == "moto":  # s3s-fs has no ListMultipartUploads
        assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert listing(tmp_path) == ["source.bin"]


@pytest.mark.parametrize("size", [1000, 3 * MIB])
@pytest.mark.parametrize("call", ["upload_file", "upload_fileobj"])
def test_callback_raising_on_the_last_bytes_leaves_the_old_object(
    server, bucket, tmp_path, size, call
):
    """A single PutObject whose Callback raises at its last bytes: the exception comes out and
    the object already under the key stays as it was, as with boto3 (whose Callback sees the
    bytes as they are read for sending). The engine holds the last bytes back until the
    Callback has seen them. (For a body boto3 reads at once, 1000 bytes here, it writes the
    object although its Callback raised: the engine keeps the old object there too.)"""
    source = write_random(tmp_path / "source.bin", size)

    class Stop(Exception):
        pass

    def callback(seen=[]):  # noqa: B006 - one call's running total
        def report(increment):
            seen.append(increment)
            if sum(seen) >= size:
                raise Stop("the last bytes")

        return report

    boto = server.boto3_client()
    for name, client in (("boto3", boto), ("s3turbo", server.s3turbo_client())):
        boto.put_object(Bucket=bucket, Key="k", Body=b"OLD VERSION")
        with pytest.raises(Stop):
            if call == "upload_file":
                client.upload_file(str(source), bucket, "k", Callback=callback([]))
            else:
                with open(source, "rb") as stream:
                    client.upload_fileobj(stream, bucket, "k", Callback=callback([]))
        if name == "s3turbo" or size > 1000:
            assert boto.get_object(Bucket=bucket, Key="k")["Body"].read() == b"OLD VERSION", name


@pytest.mark.parametrize("size", [1000, THRESHOLD + 1])
def test_full_object_checksum_given_by_the_user(server, bucket, tmp_path, size):
    """ExtraArgs ChecksumCRC32 (a full-object checksum) is sent once, as boto3 sends it: the
    server accepts the right value and refuses a wrong one alike for both, and the refusal is
    an S3UploadFailedError raised as boto3 raises it."""
    source = write_random(tmp_path / "source.bin", size)
    right = base64.b64encode(zlib.crc32(source.read_bytes()).to_bytes(4, "big")).decode()
    wrong = base64.b64encode((zlib.crc32(b"other") or 1).to_bytes(4, "big")).decode()
    outcomes = []
    for name, client in (("turbo", server.s3turbo_client()), ("boto3", server.boto3_client())):
        for label, value in (("right", right), ("wrong", wrong)):
            try:
                client.upload_file(
                    str(source), bucket, f"{name}-{label}", ExtraArgs={"ChecksumCRC32": value}
                )
                outcomes.append((label, "stored"))
            except S3UploadFailedError as error:
                # Raised while the ClientError is handled, as boto3 raises it (not "from" it).
                cause = error.__context__
                code = cause.response["Error"]["Code"]
                outcomes.append((label, type(cause).__name__, error.__cause__, code))
    assert outcomes[:2] == outcomes[2:]
    assert outcomes[0] == ("right", "stored")


def test_several_full_object_checksum_values_are_all_sent_as_boto3_sends_them(
    server, bucket, tmp_path, caplog
):
    """ExtraArgs with two full-object checksum values: boto3 sends both, and the server checks
    each (a wrong CRC32 beside a right SHA-256 is refused). The engine sends one, so it leaves
    such a call to boto3."""
    source = write_random(tmp_path / "source.bin", 1000)
    data = source.read_bytes()
    right_sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    wrong_crc32 = base64.b64encode((zlib.crc32(data) ^ 1).to_bytes(4, "big")).decode()
    extra_args = {"ChecksumCRC32": wrong_crc32, "ChecksumSHA256": right_sha256}
    outcomes = {}
    with caplog.at_level("DEBUG", logger="s3turbo"):
        for name, client in (
            ("boto3", server.boto3_client()),
            ("s3turbo", server.s3turbo_client()),
        ):
            try:
                client.upload_file(str(source), bucket, name, ExtraArgs=extra_args)
                outcomes[name] = "stored"
            except S3UploadFailedError as error:
                outcomes[name] = error.__context__.response["Error"]["Code"]
    assert outcomes["s3turbo"] == outcomes["boto3"]
    assert fallbacks(caplog) == [
        "upload_file falls back to boto3: several full-object checksum values "
        "(ChecksumCRC32, ChecksumSHA256)"
    ]


@pytest.mark.parametrize(
    "algorithm", [None, "SHA256"], ids=["value alone", "value and another algorithm"]
)
def test_full_object_checksum_goes_with_the_headers_boto3_sends(
    server, bucket, proxy, tmp_path, algorithm
):
    """A full-object checksum in ExtraArgs is sent as it is, and the algorithm header only if
    the user named one, whatever it is: botocore computes nothing then. Servers read the pair
    differently (moto stores nothing for the value alone, and the named algorithm's checksum
    for both), so the objects come out alike only if the headers are alike."""
    source = write_random(tmp_path / "source.bin", 1000)
    value = base64.b64encode(zlib.crc32(source.read_bytes()).to_bytes(4, "big")).decode()
    extra_args = {"ChecksumCRC32": value}
    if algorithm:
        extra_args["ChecksumAlgorithm"] = algorithm
    checksums = {}
    for name, client in server.clients_through(proxy, Config()).items():
        proxy.requests.clear()
        client.upload_file(str(source), bucket, name, ExtraArgs=extra_args)
        [put] = [r for r in proxy.requests if r.method == "PUT"]
        head = server.boto3_client().head_object(Bucket=bucket, Key=name, ChecksumMode="ENABLED")
        checksums[name] = (
            sorted((n, v) for n, v in put.headers.items() if "checksum" in n),
            {field: value for field, value in head.items() if field.startswith("Checksum")},
        )
    assert checksums["s3turbo"] == checksums["boto3"]
    expected_headers = [("x-amz-checksum-crc32", value)]
    if algorithm:
        expected_headers.append(("x-amz-sdk-checksum-algorithm", algorithm))
    assert checksums["boto3"][0] == expected_headers


@pytest.mark.parametrize("size", [1000, THRESHOLD + 1])
def test_checksum_algorithm_in_lower_case(server, bucket, tmp_path, size):
    """botocore takes "crc32" as "CRC32": the object is stored as boto3 stores it (s3s-fs
    would keep an aws-chunked encoding of a body sent otherwise)."""
    source = write_random(tmp_path / "source.bin", size)
    heads = []
    for name, client in (("turbo", server.s3turbo_client()), ("boto3", server.boto3_client())):
        client.upload_file(str(source), bucket, name, ExtraArgs={"ChecksumAlgorithm": "crc32"})
        head = server.boto3_client().head_object(Bucket=bucket, Key=name, ChecksumMode="ENABLED")
        heads.append({field: head.get(field) for field in ("ContentEncoding", "ChecksumCRC32")})
    assert heads[0] == heads[1]


def test_metadata_key_http_does_not_allow_goes_as_boto3_sends_it(server, bucket):
    """A Metadata key with a space makes a header name HTTP does not allow: boto3 sends it
    anyway and the server decides (moto drops it, s3s-fs refuses it). So does s3turbo."""
    extra = {"Metadata": {"a b": "v", "ok": "1"}}
    outcomes = []
    for name, client in (("turbo", server.s3turbo_client()), ("boto3", server.boto3_client())):
        try:
            client.upload_fileobj(io.BytesIO(b"x"), bucket, name, ExtraArgs=extra)
            head = server.boto3_client().head_object(Bucket=bucket, Key=name)
            outcomes.append(("stored", head["Metadata"]))
        except ClientError as error:
            outcomes.append(("refused", error.response["Error"]["Code"]))
    assert outcomes[0] == outcomes[1]


def test_upload_plans_are_kept_only_for_identical_extra_args():
    # Equal in Python, but botocore validates types: 1 and True are different arguments.
    variants = [{"MpuObjectSize": v} for v in (1, 1.0, True)] + [{"Metadata": {"a": "1"}}]
    assert len({frozen(v) for v in variants}) == len(variants)
    assert frozen({"Metadata": {"a": "1"}}) == frozen({"Metadata": {"a": "1"}})
    assert frozen(None) == frozen({})
    assert frozen({"Metadata": {"a": ["list"]}}) is None


@contextlib.contextmanager
def endpoint_over(scheme: str, proxy: FaultProxy, tmp_path):
    """The endpoint URL and `verify` of `proxy` over `scheme`: itself, or a TLS front before it
    (so that the proxy still sees the requests in plain text)."""
    if scheme == "http":
        yield proxy.endpoint_url, None
        return
    (tmp_path / "certificates").mkdir()
    certificates = Certificates(tmp_path / "certificates")
    front = TlsFront(int(proxy.endpoint_url.rsplit(":", 1)[1]), certificates)
    try:
        yield f"https://localhost:{front.port}", str(certificates.ca_bundle)
    finally:
        front.close()


def upload_three_ways(client, bucket, name, small, large, parts, extra_args=None):
    """A PutObject of `small` at `name`/small, and multipart uploads of `large` in `parts` from
    its file (`name`/large) and from a file object (`name`/stream)."""
    client.upload_file(str(small), bucket, f"{name}/small", ExtraArgs=extra_args)
    client.upload_file(str(large), bucket, f"{name}/large", ExtraArgs=extra_args, Config=parts)
    with large.open("rb") as stream:
        client.upload_fileobj(stream, bucket, f"{name}/stream", ExtraArgs=extra_args, Config=parts)


# Client settings, and whether botocore signs each upload body's SHA-256 with them, over http
# and over https.
PAYLOAD_SIGNING = {
    # No checksum protects the body: signed.
    "no-checksum": (Config(request_checksum_calculation="when_required"), True, True),
    # Asked for: signed, beside the checksum; but over https botocore sends the checksum it
    # computes in a trailer, and the body as STREAMING-UNSIGNED-PAYLOAD-TRAILER.
    "payload-signing-enabled": (Config(s3={"payload_signing_enabled": True}), True, False),
    # Refused: not signed, even with no checksum.
    "payload-signing-disabled": (
        Config(request_checksum_calculation="when_required", s3={"payload_signing_enabled": False}),
        False,
        False,
    ),
}


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("setting", PAYLOAD_SIGNING)
def test_upload_bodies_are_signed_as_botocore_signs_them(
    server, bucket, proxy, setting, scheme, tmp_path, caplog
):
    """A PutObject's body and each part's, from a file and from a file object, are signed by
    both clients or by neither: x-amz-content-sha256 is the body's SHA-256 where botocore signs
    it (the engine computes it as it reads the body), else an UNSIGNED marker. The engine serves
    every one of these uploads; s3s-fs checks the signatures."""
    config, signed_over_http, signed_over_https = PAYLOAD_SIGNING[setting]
    signed = signed_over_http if scheme == "http" else signed_over_https
    small = write_random(tmp_path / "small.bin", 1000)
    large = write_random(tmp_path / "large.bin", 12 * MIB + 7)
    parts = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    large_bytes = large.read_bytes()
    part_bodies = [large_bytes[i : i + 5 * MIB] for i in range(0, len(large_bytes), 5 * MIB)]
    sha256s = {hashlib.sha256(body).hexdigest() for body in [small.read_bytes(), *part_bodies]}

    def signature_of(headers: dict) -> str:
        payload = headers["x-amz-content-sha256"]
        return "SHA-256" if payload in sha256s else "unsigned" if "UNSIGNED" in payload else payload

    expected = {"small": 1, "large": len(part_bodies), "stream": len(part_bodies)}
    expected = {key: ["SHA-256" if signed else "unsigned"] * n for key, n in expected.items()}
    sent = {}
    with endpoint_over(scheme, proxy, tmp_path) as (endpoint, verify):
        with caplog.at_level("DEBUG", logger="s3turbo"):
            for name, make in (("boto3", server.boto3_client), ("s3turbo", server.s3turbo_client)):
                client = make(endpoint_url=endpoint, verify=verify, config=config)
                proxy.requests.clear()
                upload_three_ways(client, bucket, name, small, large, parts)
                puts = [
                    (r.target.split("?")[0].rsplit("/", 1)[1], signature_of(r.headers))
                    for r in proxy.requests
                    if r.method == "PUT"
                ]
                sent[name] = {key: [sig for k, sig in puts if k == key] for key in expected}
    assert sent == {"boto3": expected, "s3turbo": expected}
    assert fallbacks(caplog) == []
    boto = server.boto3_client()
    for key in ("small", "large", "stream"):
        source = small if key == "small" else large
        assert sha256_object(boto, bucket, f"s3turbo/{key}") == sha256_file(source)


# ExtraArgs and client settings of an upload, and the checksum algorithm botocore computes.
BODY_CHECKSUMS = {
    "default": ({}, Config(), "CRC32"),
    "SHA1": ({"ChecksumAlgorithm": "SHA1"}, Config(), "SHA1"),
    # A named algorithm is computed whatever request_checksum_calculation says.
    "SHA256 when required": (
        {"ChecksumAlgorithm": "SHA256"},
        Config(request_checksum_calculation="when_required"),
        "SHA256",
    ),
    # The body's aws-chunked encoding follows the user's: "gzip,aws-chunked".
    "ContentEncoding": ({"ContentEncoding": "gzip"}, Config(), "CRC32"),
}


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("case", BODY_CHECKSUMS)
def test_body_checksums_go_where_botocore_puts_them(
    server, bucket, proxy, scheme, case, tmp_path, caplog
):
    """A checksum computed for the body goes in a header over plain http, and over https in an
    aws-chunked trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER), as botocore sends it: for a
    PutObject, for each part from a file, and for each part from a stream. The objects stored
    carry the same checksums (moto keeps them all, s3s-fs those of PutObjects) and the same
    ContentEncoding."""
    extra_args, config, algorithm = BODY_CHECKSUMS[case]
    small = write_random(tmp_path / "small.bin", 1000)
    large = write_random(tmp_path / "large.bin", 12 * MIB + 7)
    parts = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    header = f"x-amz-checksum-{algorithm.lower()}"

    def placement(headers: dict) -> tuple:
        payload = headers["x-amz-content-sha256"]
        return (
            payload if "UNSIGNED" in payload or "STREAMING" in payload else "signed",
            headers.get("x-amz-trailer"),
            header in headers,
            headers.get("content-encoding"),
        )

    sent, stored = {}, {}
    with endpoint_over(scheme, proxy, tmp_path) as (endpoint, verify):
        with caplog.at_level("DEBUG", logger="s3turbo"):
            for name, make in (("boto3", server.boto3_client), ("s3turbo", server.s3turbo_client)):
                client = make(endpoint_url=endpoint, verify=verify, config=config)
                proxy.requests.clear()
                upload_three_ways(client, bucket, name, small, large, parts, extra_args)
                sent[name] = sorted(
                    (r.target.split("?")[0].rsplit("/", 1)[1], placement(r.headers))
                    for r in proxy.requests
                    if r.method == "PUT"
                )
                for key in ("small", "large", "stream"):
                    head = server.boto3_client().head_object(
                        Bucket=bucket, Key=f"{name}/{key}", ChecksumMode="ENABLED"
                    )
                    stored[(name, key)] = {
                        field: value
                        for field, value in head.items()
                        if field.startswith("Checksum") or field == "ContentEncoding"
                    }
    in_trailer = scheme == "https"
    chunked = "aws-chunked" if in_trailer else None
    # The user's encoding goes with a PutObject; a multipart upload's CreateMultipartUpload
    # has it, its parts not.
    expected_encodings = {
        "small": ",".join(filter(None, [extra_args.get("ContentEncoding"), chunked])) or None,
        "part": chunked,
    }
    for name in ("boto3", "s3turbo"):
        assert len(sent[name]) == 1 + 3 + 3
        for key, (payload, trailer, in_header, encoding) in sent[name]:
            assert (trailer, in_header) == ((header, False) if in_trailer else (None, True))
            assert encoding == expected_encodings["small" if key == "small" else "part"]
            if in_trailer:
                assert payload == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    # Over plain http botocore signs the body's SHA-256 beside the checksum; the engine sends
    # it unsigned (README: Configuration).
    assert [(key, rest) for key, (_, *rest) in sent["s3turbo"]] == [
        (key, rest) for key, (_, *rest) in sent["boto3"]
    ]
    for key in ("small", "large", "stream"):
        assert stored[("s3turbo", key)] == stored[("boto3", key)]
    assert fallbacks(caplog) == []


def test_a_file_cut_short_during_its_upload_fails_with_nothing_stored(moto, tmp_path):
    """Another process cuts the file short while its parts go up: both clients fail (boto3 once
    the server has waited for the bytes it was promised, s3turbo at once, saying why), with no
    object stored and no multipart upload left."""
    bucket = moto.new_bucket()
    config = TransferConfig(
        multipart_threshold=5 * MIB,
        multipart_chunksize=5 * MIB,
        max_concurrency=1,
        max_bandwidth=20 * MIB,
    )
    quick_failure = Config(read_timeout=2, retries={"max_attempts": 0})
    raised = {}
    for name, client in (
        ("boto3", moto.boto3_client(config=quick_failure)),
        ("s3turbo", moto.s3turbo_client(config=quick_failure)),
    ):
        source = write_random(tmp_path / f"{name}.bin", 20 * MIB)

        def cut_short(_amount, source=source):
            if source.stat().st_size > 1:
                os.truncate(source, 1)

        with pytest.raises(Exception) as caught:
            client.upload_file(str(source), bucket, name, Config=config, Callback=cut_short)
        raised[name] = caught.value
    assert isinstance(raised["s3turbo"], OSError)
    assert "changed during the upload" in str(raised["s3turbo"])
    boto = moto.boto3_client()
    assert boto.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_file_changed_in_place_during_its_upload_is_refused_as_boto3s_is(s3s_fs, tmp_path):
    """A body is read twice, as boto3 reads it: for its checksum, then as it is sent. Bytes
    changed in place between the two no longer match the checksum, and S3 refuses them (boto3's
    too: their signed SHA-256 no longer matches). s3s-fs keeps such a PutObject's body all the
    same (it checks once it has stored it), so what it keeps is not looked at here."""
    bucket = s3s_fs.new_bucket()
    # Slow enough that the Callback comes before the last MiB is read for sending.
    config = TransferConfig(max_bandwidth=4 * MIB)
    once = Config(retries={"max_attempts": 0})
    raised = {}
    for name, client in (
        ("boto3", s3s_fs.boto3_client(config=once)),
        ("s3turbo", s3s_fs.s3turbo_client(config=once)),
    ):
        source = write_random(tmp_path / f"{name}.bin", 4 * MIB)
        changed = []

        def change_once(_amount, source=source, changed=changed):
            if not changed:
                changed.append(True)
                with open(source, "r+b") as out:
                    out.seek(3 * MIB)
                    out.write(os.urandom(MIB))

        with pytest.raises(S3UploadFailedError) as caught:
            client.upload_file(str(source), bucket, name, Config=config, Callback=change_once)
        raised[name] = str(caught.value)
    assert "BadDigest" in raised["s3turbo"], raised


def test_an_attempt_given_up_on_keeps_no_file_open(s3s_fs, tmp_path):
    """A part whose server stops reading its body is given up after the read timeout and sent
    again. The connection given up on stays open until the server closes it, and the body it
    was sending with it: that body must not keep the source file open once upload_file has
    returned (the space of a file deleted then would not come back)."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 20 * MIB)

    def descriptors_of_source():
        folder = "/proc/self/fd"
        return [
            fd for fd in os.listdir(folder) if os.path.realpath(f"{folder}/{fd}") == str(source)
        ]

    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        proxy.inject(Fault(method="PUT", target_contains="partNumber=", stall_request_after=1000))
        client = s3s_fs.s3turbo_client(
            endpoint_url=proxy.endpoint_url, config=Config(read_timeout=1)
        )
        client.upload_file(str(source), bucket, "k")
        assert descriptors_of_source() == []
    assert sha256_object(s3s_fs.boto3_client(), bucket, "k") == sha256_file(source)


def test_a_sha256_checksum_of_a_signed_body_is_its_signed_sha256(
    server, bucket, proxy, tmp_path, caplog
):
    """With payload signing asked for and ChecksumAlgorithm SHA256, a body's checksum and the
    digest its signature covers are one SHA-256 (which the engine computes once): each PUT has
    the same two headers as boto3's."""
    config = Config(s3={"payload_signing_enabled": True})
    extra_args = {"ChecksumAlgorithm": "SHA256"}
    small = write_random(tmp_path / "small.bin", 1000)
    large = write_random(tmp_path / "large.bin", 12 * MIB + 7)
    parts = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    large_bytes = large.read_bytes()
    bodies = [small.read_bytes()] + [
        large_bytes[i : i + 5 * MIB] for i in range(0, len(large_bytes), 5 * MIB)
    ]
    sent = {}
    for name, make in (("boto3", server.boto3_client), ("s3turbo", server.s3turbo_client)):
        client = make(endpoint_url=proxy.endpoint_url, config=config)
        proxy.requests.clear()
        with caplog.at_level("DEBUG", logger="s3turbo"):
            client.upload_file(str(small), bucket, f"{name}/small", ExtraArgs=extra_args)
            client.upload_file(
                str(large), bucket, f"{name}/large", ExtraArgs=extra_args, Config=parts
            )
        sent[name] = sorted(
            (r.headers["x-amz-content-sha256"], r.headers.get("x-amz-checksum-sha256"))
            for r in proxy.requests
            if r.method == "PUT"
        )
    digests = [hashlib.sha256(body).digest() for body in bodies]
    expected = sorted((digest.hex(), base64.b64encode(digest).decode()) for digest in digests)
    assert sent == {"boto3": expected, "s3turbo": expected}
    assert fallbacks(caplog) == []


UPLOAD_MEMORY = """
import os, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
import s3turbo
from boto3.s3.transfer import TransferConfig

def status_mib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024

endpoint, access_key, secret_key, bucket = sys.argv[1:5]
client = s3turbo.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name="us-east-1")
folder = tempfile.mkdtemp()
if os.environ["UPLOADS"] == "parts":
    # Eight at once, each 3 parts of 8 MiB, all in flight: 192 MiB of parts.
    with open(os.path.join(folder, "source.bin"), "wb") as out:
        out.write(os.urandom(24 << 20))
    config = TransferConfig(multipart_chunksize=8 << 20, max_concurrency=4)

    def upload(i):
        client.upload_file(os.path.join(folder, "source.bin"), bucket, f"k{i}", Config=config)

    def upload_all():
        with ThreadPoolExecutor(8) as threads:
            list(threads.map(upload, range(8)))
else:
    # A directory of 40 files of 6 MiB, each one PutObject, 64 in flight.
    for i in range(40):
        with open(os.path.join(folder, f"f{i}"), "wb") as out:
            out.write(os.urandom(6 << 20))

    def upload_all():
        assert len(client.upload_directory(folder, bucket, "d/")) == 40

before = status_mib("VmRSS")
for _ in range(3):
    upload_all()
print(status_mib("VmHWM") - before, status_mib("VmRSS") - before)
"""


@pytest.mark.parametrize("uploads", ["parts", "whole files"])
def test_concurrent_uploads_hold_little_memory_and_give_it_back(s3s_fs, tmp_path, uploads):
    """Uploads read their bodies as they send them, a few chunks at a time, rather than hold
    their parts (192 MiB here) or files (240 MiB) in memory; and what they held goes back to
    the system when they end, so a long-lived process is not left with its peak. (Parts read
    whole peaked at 220 MiB more here; in malloc'd buffers, glibc then kept 300 MiB of them.)"""
    bucket = s3s_fs.new_bucket()
    env = {"UPLOADS": uploads.split()[0]}
    output = run_script(UPLOAD_MEMORY, tmp_path, s3s_fs, bucket, 120, env)
    peak_mib, kept_mib = (float(figure) for figure in output.split())
    assert peak_mib < 64
    assert kept_mib < 32
