"""s3turbo.client: boto3's client for everything but the transfers, settings taken from it."""

from __future__ import annotations

import os
import signal
import threading
import time

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from helpers import MIB, sha256_file, write_random

import s3turbo
from servers import ACCESS_KEY, SECRET_KEY


def test_other_methods_are_boto3s(server, bucket):
    client = server.s3turbo_client()
    client.put_object(Bucket=bucket, Key="a/1", Body=b"one")
    client.put_object(Bucket=bucket, Key="a/2", Body=b"two")
    assert client.get_object(Bucket=bucket, Key="a/1")["Body"].read() == b"one"
    assert client.head_object(Bucket=bucket, Key="a/2")["ContentLength"] == 3
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["a/1", "a/2"]
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 1}
    )
    assert [o["Key"] for page in pages for o in page["Contents"]] == ["a/1", "a/2"]
    assert client.meta.endpoint_url == server.endpoint_url
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket=bucket, Key="missing")
    assert "upload_file" in dir(client) and "list_buckets" in dir(client)


def test_no_credentials_as_in_boto3(server, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    source = write_random(tmp_path / "source.bin", 10)
    kwargs = {"endpoint_url": server.endpoint_url, "region_name": "us-east-1"}
    for client in (s3turbo.client("s3", **kwargs), boto3.client("s3", **kwargs)):
        with pytest.raises(NoCredentialsError):
            client.upload_file(str(source), "bucket", "k")
        with pytest.raises(NoCredentialsError):
            client.download_file("bucket", "k", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_endpoint_from_environment(s3s_fs, tmp_path, monkeypatch):
    bucket = s3s_fs.new_bucket()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3s_fs.endpoint_url)
    client = s3turbo.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    source = write_random(tmp_path / "source.bin", 1000)
    client.upload_file(str(source), bucket, "k")
    client.download_file(bucket, "k", str(tmp_path / "out.bin"))
    assert sha256_file(tmp_path / "out.bin") == sha256_file(source)


def test_session_token_is_sent(moto, tmp_path):
    bucket = moto.new_bucket()
    client = moto.s3turbo_client(aws_session_token="token-from-sts")
    source = write_random(tmp_path / "source.bin", 100)
    client.upload_file(str(source), bucket, "k")
    client.download_file(bucket, "k", str(tmp_path / "out.bin"))
    assert sha256_file(tmp_path / "out.bin") == sha256_file(source)


def test_ctrl_c_stops_a_multipart_upload_and_aborts_it(moto, tmp_path):
    """SIGINT arriving while the engine works raises KeyboardInterrupt within about a second,
    after the multipart upload was aborted."""
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", 96 * MIB)
    sent = {}

    def interrupt_once(increment):
        if not sent:
            sent["at"] = time.monotonic()
            threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT)).start()

    config = s3turbo.TransferConfig(max_concurrency=2)
    with pytest.raises(KeyboardInterrupt):
        moto.s3turbo_client().upload_file(
            str(source), bucket, "k", Callback=interrupt_once, Config=config
        )
    assert time.monotonic() - sent["at"] < 2
    boto = moto.boto3_client()
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
