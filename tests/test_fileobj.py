"""upload_fileobj and download_fileobj on the engine, compared with boto3's."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest
from botocore.exceptions import ClientError
from helpers import MIB, THRESHOLD, Callbacks, sha256_file, write_random


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
