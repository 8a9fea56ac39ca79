"""Integrity: uploads carry the checksums boto3's settings ask for, a download is checked
against the object's checksum where boto3's is, and a parallel download never mixes two
versions of an object."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import MissingDependencyException
from helpers import MIB, listing, write_random
from s3transfer.exceptions import S3DownloadFailedError

import s3turbo.aio
from faultproxy import Fault, FaultProxy

# A failure must surface at once: one attempt, short timeouts.
FAIL_FAST = Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 0})
PARTS = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
CHECKSUM_FIELDS = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1")


def stored_checksums(client, bucket: str, key: str) -> dict:
    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    fields = {name: head[name] for name in (*CHECKSUM_FIELDS, "ChecksumSHA256") if name in head}
    return {**fields, "type": head.get("ChecksumType")}


@pytest.mark.parametrize("algorithm", [None, "CRC32", "SHA1", "SHA256"])
@pytest.mark.parametrize("size", [MIB, 11 * MIB], ids=["single", "multipart"])
def test_upload_checksums_as_boto3(moto, tmp_path, algorithm, size):
    """The same algorithm, value and type as boto3's upload of the same bytes (CRC32 when none
    is asked for, as boto3's default request_checksum_calculation)."""
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", size)
    extra = {"ChecksumAlgorithm": algorithm} if algorithm else None
    boto = moto.boto3_client()
    boto.upload_file(str(source), bucket, "boto3", ExtraArgs=extra, Config=PARTS)
    moto.s3turbo_client().upload_file(str(source), bucket, "ours", ExtraArgs=extra, Config=PARTS)
    expected = stored_checksums(boto, bucket, "boto3")
    assert f"Checksum{algorithm or 'CRC32'}" in expected
    assert stored_checksums(boto, bucket, "ours") == expected


@pytest.mark.parametrize("size", [MIB, 6 * MIB], ids=["PutObject", "multipart"])
@pytest.mark.parametrize("algorithm", ["CRC32C", "CRC64NVME"])
def test_upload_checksums_boto3_needs_awscrt_for_are_refused_as_boto3_refuses_them(
    moto, tmp_path, algorithm, size, caplog
):
    """boto3 without awscrt (as here) refuses these with MissingDependencyException, and so do
    the engine's clients (they leave the call to boto3): nothing stored, no multipart upload
    left. The engine could compute them, but a script would then work with s3turbo and fail on
    its fallbacks (S3TURBO_DISABLE, mock_aws)."""
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", size)
    refused = {}
    for name, client in (("boto3", moto.boto3_client()), ("s3turbo", moto.s3turbo_client())):
        with pytest.raises(MissingDependencyException) as raised:
            client.upload_file(
                str(source), bucket, name, ExtraArgs={"ChecksumAlgorithm": algorithm}, Config=PARTS
            )
        refused[name] = str(raised.value)
    assert refused["s3turbo"] == refused["boto3"]
    boto = moto.boto3_client()
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_object_replaced_during_a_parallel_download(moto, tmp_path):
    """The object changes after the first parts came: the later ranged GETs carry If-Match,
    so the download fails (412, s3transfer's S3DownloadFailedError) rather than mixing two
    versions; nothing is written. (On moto: s3s-fs ignores If-Match.)"""
    bucket = moto.new_bucket()
    first = write_random(tmp_path / "first.bin", 24 * MIB)
    second = write_random(tmp_path / "second.bin", 24 * MIB)
    boto = moto.boto3_client()
    boto.upload_file(str(first), bucket, "k")
    out = tmp_path / "out"
    out.mkdir()
    replaced = threading.Event()

    def replace_once(increment):
        if not replaced.is_set():
            boto.upload_file(str(second), bucket, "k")  # straight to the server
            replaced.set()

    with FaultProxy(moto.endpoint_url) as proxy:
        proxy.bytes_per_second = 16 * MIB
        client = moto.s3turbo_client(endpoint_url=proxy.endpoint_url)
        config = TransferConfig(
            multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2
        )
        # At 16 MiB/s the replacement comes long before the last of the five parts.
        with pytest.raises(S3DownloadFailedError) as raised:
            client.download_file(
                bucket, "k", str(out / "k.bin"), Callback=replace_once, Config=config
            )
    assert "did not match expected ETag" in str(raised.value)
    assert listing(out) == []
    assert replaced.is_set()


@pytest.mark.parametrize("call", ["download_file", "download_fileobj", "aio"])
def test_a_small_object_is_checked_against_its_checksum_as_boto3_checks_it(server, tmp_path, call):
    """S3 sends no checksum with a ranged GET (the proxy strips it, as S3 would) and one byte
    is flipped on the way. boto3 GETs an object below the threshold whole and checks it
    (FlexibleChecksumError); the engine's first GET is ranged, so it asks HeadObject for the
    checksum (it stored the flipped bytes as a success)."""
    bucket = server.new_bucket()
    data = write_random(tmp_path / "source.bin", 200_000).read_bytes()
    server.boto3_client().put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="CRC32")
    out = tmp_path / "out"
    out.mkdir()

    async def aio_download(**kwargs):
        async with s3turbo.aio.client("s3", **server.client_kwargs(**kwargs)) as s3:
            await s3.download_file(bucket, "k", str(out / "aio"))

    raised = {}
    with FaultProxy(server.endpoint_url) as proxy:
        stripped = proxy.inject(
            Fault(
                method="GET",
                header_contains=("range", "bytes="),
                response_header=("x-amz-checksum-crc32", None),
                flip_response_byte_at=1000,
                times=None,
            )
        )
        proxy.inject(Fault(method="GET", flip_response_byte_at=1000, times=None))
        for name, client in server.clients_through(proxy, FAIL_FAST).items():
            with pytest.raises(Exception) as caught:
                if call == "aio" and name == "s3turbo":
                    asyncio.run(aio_download(endpoint_url=proxy.endpoint_url, config=FAIL_FAST))
                elif call == "download_fileobj":
                    client.download_fileobj(bucket, "k", io.BytesIO())
                else:
                    client.download_file(bucket, "k", str(out / name))
            raised[name] = caught.value
    assert stripped.hits > 0  # the engine's ranged GET
    assert type(raised["s3turbo"]) is type(raised["boto3"])
    assert str(raised["s3turbo"]) == str(raised["boto3"])  # the checksums, in base64
    assert listing(out) == []
