"""s3turbo.client: boto3's client for everything but the transfers, settings taken from it."""

from __future__ import annotations

import os
import signal
import threading
import time

import boto3
import botocore
import botocore.handlers
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError, NoCredentialsError, ParamValidationError
from helpers import MIB, fallbacks, sha256_file, sha256_object, write_random

import s3turbo
from faultproxy import FaultProxy
from servers import ACCESS_KEY, SECRET_KEY, free_port


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


def test_no_credentials_as_in_boto3(server, tmp_path, without_credentials):
    source = write_random(tmp_path / "source.bin", 10)
    kwargs = {"endpoint_url": server.endpoint_url, "region_name": "us-east-1"}
    for client in (s3turbo.client("s3", **kwargs), boto3.client("s3", **kwargs)):
        with pytest.raises(NoCredentialsError):
            client.upload_file(str(source), "bucket", "k")
        # The local file is looked at before any request.
        with pytest.raises(FileNotFoundError):
            client.upload_file(str(tmp_path / "missing"), "bucket", "k")
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


def test_ctrl_c_stops_a_multipart_upload_and_aborts_it(
    moto, tmp_path, sigint_raises_keyboard_interrupt
):
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


@pytest.mark.parametrize(
    "bucket_name, key",
    [("", "k"), ("bad/bucket", "k"), ("ok-bucket", ""), (None, "k"), ("ok-bucket", 7)],
)
def test_invalid_bucket_or_key_is_refused_as_in_boto3(server, tmp_path, bucket_name, key):
    source = write_random(tmp_path / "source.bin", 10)
    for client in (server.s3turbo_client(), server.boto3_client()):
        with pytest.raises((ParamValidationError, TypeError)) as upload_error:
            client.upload_file(str(source), bucket_name, key)
        with pytest.raises((ParamValidationError, TypeError)) as download_error:
            client.download_file(bucket_name, key, str(tmp_path / "out"))
        if bucket_name is not None:  # boto3 itself crashes with a TypeError on None
            assert upload_error.type is ParamValidationError
            assert download_error.type is ParamValidationError
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "settings",
    [
        {"user_agent_extra": "MYAPP/1.0"},
        {"user_agent_appid": "my app#1", "user_agent_extra": "x/y"},
        {"user_agent": "Custom/2.0", "user_agent_appid": "a", "user_agent_extra": "x/y"},
    ],
)
def test_user_agent_settings_reach_the_header(s3s_fs, tmp_path, monkeypatch, settings):
    """user_agent_appid (as botocore cleans it), the session's user_agent_extra (boto3's
    Botocore/<version>, and what frameworks add) and the client's end the engine's User-Agent
    header as botocore's, for access logs and policies; user_agent replaces its start, as in
    botocore's header (the engine's header is then botocore's)."""
    session = boto3.session.Session()
    session._session.user_agent_extra += " myframework/2.0"
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    headers = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        for name, client in s3s_fs.clients_through(proxy, Config(**settings)).items():
            client.upload_file(str(source), bucket, name)
            [put] = [r for r in proxy.requests if r.method == "PUT" and name in r.target]
            headers[name] = put.headers["user-agent"]
    ours, theirs = headers["s3turbo"], headers["boto3"]
    tail = f" myframework/2.0 {settings['user_agent_extra']}"
    if "user_agent" in settings:
        assert ours == theirs
        assert ours.startswith("Custom/2.0 ") and ours.endswith(tail)
    else:
        app = theirs.index(" app/") if "user_agent_appid" in settings else None
        start = app if app is not None else theirs.index(f" Botocore/{botocore.__version__}")
        assert theirs.endswith(tail)
        assert ours.endswith(theirs[start:])


def test_calls_the_engine_cannot_honour_go_to_boto3(s3s_fs, tmp_path, monkeypatch, caplog):
    """S3TURBO_DISABLE=1 and SigV2 clients are served by boto3 itself (the debug log says so),
    with the same result."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 300_000)
    client = s3s_fs.s3turbo_client()
    with caplog.at_level("DEBUG", logger="s3turbo"):
        client.upload_file(str(source), bucket, "engine")
        assert caplog.records == []  # the engine served it
        client.upload_file(str(source), bucket, "k")
        monkeypatch.setenv("S3TURBO_DISABLE", "1")
        client.download_file(bucket, "k", str(tmp_path / "out.bin"))
        monkeypatch.delenv("S3TURBO_DISABLE")
        sigv2 = s3s_fs.s3turbo_client(config=Config(signature_version="s3"))
        sigv2.upload_file(str(source), bucket, "sigv2")
    assert sha256_file(tmp_path / "out.bin") == sha256_file(source)
    assert sha256_object(s3s_fs.boto3_client(), bucket, "sigv2") == sha256_file(source)
    reasons = [r.getMessage() for r in caplog.records if r.name == "s3turbo"]
    assert any("download_file falls back to boto3: S3TURBO_DISABLE" in m for m in reasons)
    assert any("upload_file falls back to boto3: signature_version 's3'" in m for m in reasons)


def _without_validator(client, event, validator):
    client.meta.events.unregister(event, validator)
    return client


@pytest.mark.parametrize(
    "bucket_suffix, extra_args, unregistered",
    [
        # Ceph RGW's multi-tenant bucket names: botocore's name check taken out.
        (":tenant", None, ("before-parameter-build.s3", botocore.handlers.validate_bucket_name)),
        (
            "",
            {"Metadata": {"city": "Zürich"}},
            ("before-parameter-build.s3.PutObject", botocore.handlers.validate_ascii_metadata),
        ),
    ],
)
def test_a_check_the_user_unregistered_is_not_made(
    moto, tmp_path, caplog, bucket_suffix, extra_args, unregistered
):
    """botocore's parameter checks the user took off the client are not made by the engine
    either: boto3 serves those calls, as they are sent without them."""
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    results = {}
    for name, client in {
        "s3turbo": _without_validator(moto.s3turbo_client(), *unregistered),
        "boto3": _without_validator(moto.boto3_client(), *unregistered),
    }.items():
        try:
            with caplog.at_level("DEBUG", logger="s3turbo"):
                client.upload_file(str(source), bucket + bucket_suffix, name, ExtraArgs=extra_args)
            results[name] = "stored"
        except Exception as error:  # compared with boto3's below
            results[name] = (type(error), str(error).replace(name, "KEY"))
    assert results["s3turbo"] == results["boto3"]
    assert unregistered[1].__name__ in " ".join(fallbacks(caplog))


def test_parameter_validation_off_is_honoured(moto, tmp_path, caplog):
    """Config(parameter_validation=False): botocore sends what it is given, unchecked."""
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    unchecked = Config(parameter_validation=False)
    for module, client in {
        "s3turbo": moto.s3turbo_client(config=unchecked),
        "boto3": moto.boto3_client(config=unchecked),
    }.items():
        with caplog.at_level("DEBUG", logger="s3turbo"):
            client.upload_file(str(source), bucket, module, ExtraArgs={"ContentType": 7})
        assert client.head_object(Bucket=bucket, Key=module)["ContentType"] == "7"
    assert fallbacks(caplog) == ["upload_file falls back to boto3: parameter_validation is off"]


def test_a_client_of_another_service_is_refused():
    """Its transfers would fail with botocore's OperationNotFoundError: boto3's is the client
    to use."""
    kwargs = {"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}
    for make in (
        lambda: s3turbo.client("sqs", **kwargs),
        lambda: s3turbo.aio.client("sqs", **kwargs),
        lambda: s3turbo.accelerate(boto3.client("dynamodb", **kwargs)),
    ):
        with pytest.raises(ValueError, match="s3turbo serves S3 clients, not '(sqs|dynamodb)'"):
            make()


def test_anonymous_clients_are_served_by_the_engine_unsigned_as_by_boto3(
    server, bucket, tmp_path, caplog
):
    """signature_version=UNSIGNED: the engine sends the requests unsigned, as botocore does,
    whatever credentials the client could find. moto takes them (the object read is
    public-read); s3s-fs refuses them, and then s3turbo fails as boto3 does. Multipart both
    ways."""
    source = write_random(tmp_path / "source.bin", 6 * MIB + 5)
    server.boto3_client().upload_file(
        str(source), bucket, "public", ExtraArgs={"ACL": "public-read"}
    )
    unsigned = Config(signature_version=UNSIGNED, retries={"max_attempts": 2})
    parts = s3turbo.TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)

    def outcome(call, *args) -> str | None:
        try:
            call(*args, Config=parts)
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None

    outcomes = {}
    with caplog.at_level("DEBUG", logger="s3turbo"):
        for engine, client in (
            ("boto3", server.boto3_client(config=unsigned)),
            ("s3turbo", server.s3turbo_client(config=unsigned)),
        ):
            outcomes[engine] = (
                outcome(client.upload_file, str(source), bucket, "anonymous"),
                outcome(client.download_file, bucket, "public", str(tmp_path / engine)),
            )
    assert [r.getMessage() for r in caplog.records if r.name == "s3turbo"] == []
    assert outcomes["s3turbo"] == outcomes["boto3"]
    if server.checks_signatures:
        upload_error, download_error = outcomes["s3turbo"]
        assert "AccessDenied" in upload_error and "403" in download_error, outcomes
        assert not (tmp_path / "s3turbo").exists()
    else:
        assert outcomes["s3turbo"] == (None, None)
        assert sha256_file(tmp_path / "s3turbo") == sha256_file(source)
        assert sha256_object(server.boto3_client(), bucket, "anonymous") == sha256_file(source)


def test_max_bandwidth_is_one_limit_for_all_the_parts(server, bucket, tmp_path, caplog):
    """TransferConfig.max_bandwidth, as s3transfer honours it: 12 MiB in three parts in flight
    at once, at 4 MiB/s in all, take about 3 s each way (at least 2.5 s: the first bytes go at
    once), not 1 s. Served by the engine, with the same bytes."""
    source = write_random(tmp_path / "source.bin", 12 * MIB)
    limited = s3turbo.TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_bandwidth=4 * MIB
    )
    client = server.s3turbo_client()
    with caplog.at_level("DEBUG", logger="s3turbo"):
        started = time.monotonic()
        client.upload_file(str(source), bucket, "k", Config=limited)
        upload_took = time.monotonic() - started
        started = time.monotonic()
        client.download_file(bucket, "k", str(tmp_path / "out.bin"), Config=limited)
        download_took = time.monotonic() - started
        # s3transfer takes any positive rate: infinity is no limit.
        unlimited = s3turbo.TransferConfig(max_bandwidth=float("inf"))
        client.upload_file(str(source), bucket, "unlimited", Config=unlimited)
    assert [r.getMessage() for r in caplog.records if r.name == "s3turbo"] == []
    assert upload_took >= 2.5 and download_took >= 2.5, (upload_took, download_took)
    assert sha256_file(tmp_path / "out.bin") == sha256_file(source)


@pytest.mark.parametrize("tcp_keepalive", [False, True], ids=["default", "tcp_keepalive"])
def test_an_upload_may_take_longer_than_the_read_timeout_to_send_as_in_boto3(
    s3s_fs, tmp_path, tcp_keepalive
):
    """Three 5 MiB parts sharing max_bandwidth=3 MiB/s take about 5 s each to send, longer than
    a 2 s read timeout. botocore's timeout bounds each socket read and write, not a whole
    request, so boto3 completes such an upload, and so must the engine, through either HTTP
    client. (A slow link would do the same, but on loopback the socket buffers take in most of
    a part at once.)"""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 15 * MIB)
    limited = s3turbo.TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_bandwidth=3 * MIB
    )
    short_read_timeout = Config(
        read_timeout=2, retries={"max_attempts": 1}, tcp_keepalive=tcp_keepalive
    )
    for name, client in [
        ("s3turbo", s3s_fs.s3turbo_client(config=short_read_timeout)),
        ("boto3", s3s_fs.boto3_client(config=short_read_timeout)),
    ]:
        client.upload_file(str(source), bucket, name, Config=limited)
    boto = s3s_fs.boto3_client()
    for name in ("s3turbo", "boto3"):
        assert sha256_object(boto, bucket, name) == sha256_file(source)


def test_connection_errors_name_the_url_botocore_names(tmp_path):
    """Nothing listens at the endpoint: the error names the URL of the request that failed,
    as botocore's does (the engine's first request of a download is a GET where boto3's is a
    HEAD, of the same URL)."""
    small = write_random(tmp_path / "small.bin", 1000)
    large = write_random(tmp_path / "large.bin", 9 * MIB)
    kwargs = {
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "region_name": "us-east-1",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "config": Config(retries={"total_max_attempts": 1}),
    }
    messages = {}
    for name, make in (("boto3", boto3.client), ("s3turbo", s3turbo.client)):
        client = make("s3", **kwargs)
        calls = (
            (client.upload_file, str(small), "bucket", "a key"),
            (client.upload_file, str(large), "bucket", "k"),
            (client.download_file, "bucket", "dir/x y", str(tmp_path / "out")),
        )
        messages[name] = []
        for call, *args in calls:
            with pytest.raises(EndpointConnectionError) as error:
                call(*args)
            messages[name].append(str(error.value))
    assert messages["s3turbo"] == messages["boto3"]
    assert messages["boto3"][1].endswith('/bucket/k?uploads"')
