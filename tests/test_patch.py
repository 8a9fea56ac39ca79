"""s3turbo.patch(): plain boto3 code, unchanged, on the engine; and what must stay boto3's."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import urllib.request
from unittest import mock

import boto3
import boto3.s3.inject
import botocore.signers
import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import S3Transfer, TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber
from helpers import MIB, THRESHOLD, Callbacks, sha256_file, write_random
from s3transfer.utils import OSUtils

import s3turbo
import s3turbo._core
import s3turbo.aio


@pytest.fixture
def engine_calls(monkeypatch):
    """Counts the calls that reach the engine, by name."""
    calls: dict[str, int] = {}
    for name in ("upload_file", "download_file", "upload_fileobj", "download_fileobj"):
        original = getattr(s3turbo._core, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(s3turbo._core, name, counting)
    return calls


@pytest.fixture(params=["boto3", "patched"])
def mode(request):
    """Each compatibility test runs twice: on plain boto3, then after s3turbo.patch(). The same
    assertions hold for both, so each one states boto3's behaviour and checks ours."""
    if request.param == "patched":
        s3turbo.patch()
    yield request.param
    s3turbo.unpatch()


def test_compatibility_client_transfers(mode, server, tmp_path, engine_calls):
    boto = server.boto3_client()
    bucket = server.new_bucket()
    source = write_random(tmp_path / "source.bin", THRESHOLD + 12_345)
    callbacks = Callbacks()
    config = TransferConfig(multipart_chunksize=5 * MIB, max_concurrency=4)
    extra = {"ContentType": "text/csv", "Metadata": {"k": "v"}}
    boto.upload_file(
        str(source), bucket, "a/file.csv", ExtraArgs=extra, Callback=callbacks, Config=config
    )
    head = boto.head_object(Bucket=bucket, Key="a/file.csv")
    assert (head["ContentType"], head["Metadata"], head["ETag"][-3:]) == (
        "text/csv",
        {"k": "v"},
        '-2"',
    )
    assert callbacks.total == source.stat().st_size

    boto.upload_fileobj(io.BytesIO(b"small object"), bucket, "a/small.txt")
    sink = io.BytesIO()
    boto.download_fileobj(bucket, "a/small.txt", sink)
    assert sink.getvalue() == b"small object"

    # The loop boto3 tutorials teach: list, then download each object.
    downloaded = []
    for page in boto.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="a/"):
        for item in page["Contents"]:
            target = tmp_path / item["Key"].replace("/", "_")
            boto.download_file(bucket, item["Key"], str(target))
            downloaded.append((item["Key"], target.stat().st_size))
    assert downloaded == [("a/file.csv", source.stat().st_size), ("a/small.txt", 12)]
    assert sha256_file(tmp_path / "a_file.csv") == sha256_file(source)

    with pytest.raises(ClientError) as missing:
        boto.download_file(bucket, "missing", str(tmp_path / "x"))
    assert missing.value.response["Error"]["Code"] == "404"
    with pytest.raises(ValueError, match="Invalid extra_args key"):
        boto.upload_file(str(source), bucket, "k", ExtraArgs={"Nope": 1})
    expected_engine_calls = {
        "upload_file": 1,
        "upload_fileobj": 1,
        "download_fileobj": 1,
        "download_file": 3,
    }
    assert engine_calls == (expected_engine_calls if mode == "patched" else {})


def test_compatibility_resources(mode, server, tmp_path, engine_calls):
    s3 = boto3.resource("s3", **server.client_kwargs())
    bucket = s3.Bucket(server.new_bucket())
    source = write_random(tmp_path / "source.bin", 2 * MIB)
    bucket.upload_file(str(source), "via-bucket")
    s3.Object(bucket.name, "via-bucket").download_file(str(tmp_path / "out.bin"))
    assert sha256_file(tmp_path / "out.bin") == sha256_file(source)
    bucket.Object("via-object").upload_fileobj(io.BytesIO(b"object"))
    sink = io.BytesIO()
    bucket.download_fileobj("via-object", sink)
    assert sink.getvalue() == b"object"
    assert sorted(o.key for o in bucket.objects.all()) == ["via-bucket", "via-object"]
    assert sum(engine_calls.values()) == (4 if mode == "patched" else 0)


def test_compatibility_s3transfer(mode, server, tmp_path, engine_calls):
    """boto3's S3Transfer class, which older code uses directly: made from a client, it
    transfers as that client's upload_file and download_file (on the engine after patch());
    made with its own osutil, it stays boto3's."""
    boto = server.boto3_client()
    bucket = server.new_bucket()
    source = write_random(tmp_path / "source.bin", THRESHOLD + 12_345)
    callbacks = Callbacks()
    with S3Transfer(boto, TransferConfig(multipart_chunksize=5 * MIB)) as transfer:
        transfer.upload_file(
            str(source), bucket, "k", callback=callbacks, extra_args={"ContentType": "text/csv"}
        )
        transfer.download_file(bucket, "k", tmp_path / "out.bin")
        with pytest.raises(ClientError) as missing:
            transfer.download_file(bucket, "missing", str(tmp_path / "missing"))
        with pytest.raises(ValueError, match="Invalid extra_args key"):
            transfer.upload_file(str(source), bucket, "k", extra_args={"Nope": 1})
    head = boto.head_object(Bucket=bucket, Key="k")
    assert (head["ContentType"], head["ETag"][-3:]) == ("text/csv", '-2"')
    assert callbacks.total == source.stat().st_size
    assert sha256_file(tmp_path / "out.bin") == sha256_file(source)
    assert missing.value.response["Error"]["Code"] == "404"
    assert not (tmp_path / "missing").exists()
    S3Transfer(boto, osutil=OSUtils()).upload_file(str(source), bucket, "own-osutil")
    assert boto.head_object(Bucket=bucket, Key="own-osutil")["ETag"][-3:] == '-2"'
    assert engine_calls == ({"upload_file": 1, "download_file": 2} if mode == "patched" else {})


def test_compatibility_missing_bucket(mode, moto, tmp_path):
    source = write_random(tmp_path / "source.bin", 10)
    boto = moto.boto3_client()
    with pytest.raises(S3UploadFailedError, match="NoSuchBucket"):
        boto.upload_file(str(source), "no-such-bucket-here", "k")
    with pytest.raises(boto.exceptions.NoSuchBucket):
        boto.upload_fileobj(io.BytesIO(b"x"), "no-such-bucket-here", "k")
    with pytest.raises(S3UploadFailedError, match="NoSuchBucket"):
        S3Transfer(boto).upload_file(str(source), "no-such-bucket-here", "k")


def test_compatibility_no_credentials(mode, s3s_fs, tmp_path, without_credentials):
    source = write_random(tmp_path / "source.bin", 10)
    boto = boto3.client("s3", endpoint_url=s3s_fs.endpoint_url, region_name="us-east-1")
    with pytest.raises(NoCredentialsError):
        boto.upload_file(str(source), "bucket", "k")
    with pytest.raises(NoCredentialsError):
        boto.download_fileobj("bucket", "k", io.BytesIO())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin"]


def test_patch_is_idempotent_and_unpatch_restores_boto3(s3s_fs):
    try:
        s3turbo.patch()
        s3turbo.patch()
        patched = s3s_fs.boto3_client()
        assert type(patched).upload_file is not boto3.s3.inject.upload_file
        assert type(patched).upload_file.__name__ == "upload_file"
    finally:
        s3turbo.unpatch()
    restored = s3s_fs.boto3_client()
    for name in ("upload_file", "download_file", "upload_fileobj", "download_fileobj"):
        assert getattr(type(restored), name) is getattr(boto3.s3.inject, name)
    assert boto3.s3.inject.inject_s3_transfer_methods.__module__ == "boto3.s3.inject"


def test_mock_aws_suite_keeps_passing_after_patch(tmp_path, monkeypatch, engine_calls):
    """A test written the usual way with moto's mock_aws: no server, no network."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    source = write_random(tmp_path / "source.bin", THRESHOLD + 1)
    s3turbo.patch()
    try:
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket="mocked")
            client.upload_file(str(source), "mocked", "k")
            client.download_file("mocked", "k", str(tmp_path / "out.bin"))
            assert sha256_file(tmp_path / "out.bin") == sha256_file(source)
            assert client.generate_presigned_url(
                "get_object", Params={"Bucket": "mocked", "Key": "k"}
            )
    finally:
        s3turbo.unpatch()
    assert engine_calls == {}


def test_stubber_keeps_working_after_patch(tmp_path, engine_calls):
    s3turbo.patch()
    try:
        client = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
        )
        with Stubber(client) as stubber:
            # Through the client, and through an S3Transfer made from it (boto3's functions
            # serving the calls left to boto3 use one too).
            for download in (client.download_file, S3Transfer(client).download_file):
                stubber.add_response(
                    "head_object", {"ContentLength": 5, "ETag": '"e"'}, {"Bucket": "b", "Key": "k"}
                )
                stubber.add_response(
                    "get_object",
                    {"Body": io.BytesIO(b"hello"), "ContentLength": 5, "ETag": '"e"'},
                )
                (tmp_path / "out.txt").unlink(missing_ok=True)
                download("b", "k", str(tmp_path / "out.txt"))
                stubber.assert_no_pending_responses()
                assert (tmp_path / "out.txt").read_bytes() == b"hello"
    finally:
        s3turbo.unpatch()
    assert engine_calls == {}


def test_accelerate_keeps_the_clients_settings(s3s_fs, tmp_path, engine_calls):
    plain = s3s_fs.boto3_client()
    bucket = s3s_fs.new_bucket()
    fast = s3turbo.accelerate(plain)
    source = write_random(tmp_path / "source.bin", 1000)
    fast.upload_file(str(source), bucket, "k")
    assert fast.head_object(Bucket=bucket, Key="k")["ContentLength"] == 1000
    assert fast.meta is plain.meta
    assert engine_calls == {"upload_file": 1}


def test_user_event_handlers_keep_seeing_their_requests(s3s_fs, tmp_path, engine_calls, caplog):
    """A handler the user registered on an operation the engine sends (here: adding a header,
    as tracing libraries do) makes that client's transfers boto3's, so the handler still runs.
    A handler on another operation does not."""
    s3turbo.patch()
    try:
        client = s3s_fs.boto3_client()
        bucket = s3s_fs.new_bucket()
        source = write_random(tmp_path / "source.bin", 1000)
        client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: None)
        client.upload_file(str(source), bucket, "engine")
        assert engine_calls == {"upload_file": 1}

        sent = []

        def tag_request(request, **_):
            request.headers["x-amz-meta-traced"] = "yes"
            sent.append(request.method)

        client.meta.events.register("before-sign.s3", tag_request)
        with caplog.at_level("DEBUG", logger="s3turbo"):
            client.upload_file(str(source), bucket, "traced")
            client.download_file(bucket, "traced", str(tmp_path / "out.bin"))
        assert engine_calls == {"upload_file": 1}
        assert "PUT" in sent and "GET" in sent
        assert client.head_object(Bucket=bucket, Key="traced")["Metadata"] == {"traced": "yes"}
        assert any("an event handler is registered on" in r.getMessage() for r in caplog.records)

        client.meta.events.unregister("before-sign.s3", tag_request)
        client.download_file(bucket, "traced", str(tmp_path / "out.bin"))
        assert engine_calls == {"upload_file": 1, "download_file": 1}
    finally:
        s3turbo.unpatch()
    assert sha256_file(tmp_path / "out.bin") == sha256_file(source)


def test_mocks_of_make_api_call_keep_answering_after_patch(tmp_path, engine_calls):
    """A test suite's usual mock of botocore's request path, `_make_api_call` (on the class or
    on one client), answers the transfers as it does for boto3: the engine never sends them."""
    source = write_random(tmp_path / "source.bin", 1000)
    s3turbo.patch()
    try:
        client = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
        )
        seen = []

        def fake(self_or_operation, *args):
            operation, params = args if len(args) == 2 else (self_or_operation, *args)
            seen.append(operation)
            if operation == "HeadObject":
                return {"ContentLength": 5, "ETag": '"e"'}
            if operation == "GetObject":
                return {"Body": io.BytesIO(b"hello"), "ContentLength": 5, "ETag": '"e"'}
            return {"ETag": '"e"'}

        with mock.patch("botocore.client.BaseClient._make_api_call", autospec=True) as patched:
            patched.side_effect = fake
            client.upload_file(str(source), "b", "k")
            client.download_file("b", "k", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_bytes() == b"hello"
        with mock.patch.object(client, "_make_api_call", side_effect=fake):
            client.upload_fileobj(io.BytesIO(b"x"), "b", "k")
    finally:
        s3turbo.unpatch()
    assert seen == ["PutObject", "HeadObject", "GetObject", "PutObject"]
    assert engine_calls == {}


DEAD_ENDPOINT = {
    "region_name": "us-east-1",
    "endpoint_url": "http://127.0.0.1:9",
    "aws_access_key_id": "a",
    "aws_secret_access_key": "b",
}


def _dead_endpoint_client(kind):
    if kind == "s3turbo.client":
        return s3turbo.client("s3", **DEAD_ENDPOINT)
    s3turbo.patch()
    return boto3.client("s3", **DEAD_ENDPOINT)


@pytest.mark.parametrize(
    "kind, where",
    [("patched", "instance"), ("patched", "class"), ("s3turbo.client", "instance")],
)
def test_mocks_of_operation_methods_answer_the_transfers(kind, where, tmp_path, engine_calls):
    """s3transfer calls the client's put_object, head_object and get_object: a test's mock of
    them answers, as it does for boto3, and nothing reaches the network (here: no server)."""
    source = write_random(tmp_path / "source.bin", 1000)
    try:
        client = _dead_endpoint_client(kind)
        target = client if where == "instance" else type(client)
        head = {"ContentLength": 5, "ETag": '"e"'}
        with (
            mock.patch.object(target, "put_object", return_value={"ETag": '"e"'}) as put,
            mock.patch.object(target, "head_object", return_value=head) as head_object,
            mock.patch.object(target, "get_object") as get,
        ):
            get.side_effect = lambda **_: {**head, "Body": io.BytesIO(b"hello")}
            client.upload_file(str(source), "b", "k")
            client.upload_fileobj(io.BytesIO(b"x"), "b", "k")
            client.download_file("b", "k", str(tmp_path / "out.txt"))
            sink = io.BytesIO()
            client.download_fileobj("b", "k", sink)
        assert [put.call_count, head_object.call_count, get.call_count] == [2, 2, 2]
        assert (tmp_path / "out.txt").read_bytes() == sink.getvalue() == b"hello"
        assert engine_calls == {}
        # The mocks are gone with their context: the client is the engine's again.
        with pytest.raises(EndpointConnectionError):
            client.upload_file(str(source), "b", "k")
        assert engine_calls == {"upload_file": 1}
    finally:
        s3turbo.unpatch()


@pytest.mark.parametrize("set_on", ["the test's loop", "no loop"])
def test_mocks_of_an_async_clients_operations_answer_its_transfers(set_on, tmp_path):
    """A mock of an operation set on an s3turbo.aio client (an AsyncMock, as tests of aiobotocore
    code set them) answers its transfers too, which call it as aiobotocore's would, awaited on
    the loop it was set from: nothing reaches the network (here: no server). It sent real
    requests, and only `await s3.put_object(...)` was the mock."""
    source = write_random(tmp_path / "source.bin", 1000)
    client = s3turbo.aio.client("s3", **DEAD_ENDPOINT)
    head = {"ContentLength": 5, "ETag": '"e"'}
    loops = []

    async def get_object(**_):
        loops.append(asyncio.get_running_loop())
        return {**head, "Body": io.BytesIO(b"hello")}

    async def transfers():
        await client.upload_file(str(source), "b", "k")
        await client.upload_fileobj(io.BytesIO(b"x"), "b", "k")
        await client.download_file("b", "k", str(tmp_path / "out.txt"))
        sink = io.BytesIO()
        await client.download_fileobj("b", "k", sink)
        assert await client.put_object(Bucket="b", Key="k", Body=b"x") == {"ETag": '"e"'}
        return sink.getvalue()

    def mocked():
        return (
            mock.patch.object(client, "put_object", return_value={"ETag": '"e"'}),
            mock.patch.object(client, "head_object", return_value=head),
            mock.patch.object(client, "get_object", side_effect=get_object),
        )

    async def mocked_on_this_loop():
        with contextlib.ExitStack() as mocks:
            put, head_object, get = (mocks.enter_context(m) for m in mocked())
            got = await transfers()
            # The boto3 client called on the loop's own thread cannot wait for that loop.
            with pytest.raises(RuntimeError, match="called from an event loop"):
                client._client.put_object(Bucket="b", Key="k", Body=b"x")
        assert set(loops) == {asyncio.get_running_loop()}
        return got, put, head_object, get

    if set_on == "no loop":
        with contextlib.ExitStack() as mocks:
            put, head_object, get = (mocks.enter_context(m) for m in mocked())
            got = asyncio.run(transfers())
    else:
        got, put, head_object, get = asyncio.run(mocked_on_this_loop())
    assert [put.await_count, head_object.await_count, get.await_count] == [3, 2, 2]
    assert (tmp_path / "out.txt").read_bytes() == got == b"hello"
    # The mocks are gone with their context: the transfers are the engine's again.
    with pytest.raises(EndpointConnectionError):
        asyncio.run(client.upload_file(str(source), "b", "k"))
    assert "put_object" not in vars(client) and "put_object" not in vars(client._client)


def test_a_mock_set_on_an_s3turbo_client_reaches_its_boto3_client(tmp_path, engine_calls):
    """`mock.patch.object(s3, "_make_api_call")` on the client s3turbo.client() returns mocks
    the boto3 client's requests, the transfers' included, as on a boto3 client."""
    client = s3turbo.client("s3", **DEAD_ENDPOINT)
    seen = []

    def fake(operation, params):
        seen.append(operation)
        return {"ETag": '"e"'}

    with mock.patch.object(client, "_make_api_call", side_effect=fake):
        client.put_object(Bucket="b", Key="k", Body=b"x")
        client.upload_fileobj(io.BytesIO(b"x"), "b", "k")
    assert seen == ["PutObject", "PutObject"]
    assert engine_calls == {}
    assert "_make_api_call" not in vars(client._client)
    with pytest.raises(EndpointConnectionError):
        client.upload_fileobj(io.BytesIO(b"x"), "b", "k")
    assert engine_calls == {"upload_fileobj": 1}


def test_accelerating_an_accelerated_client_changes_nothing(s3s_fs, tmp_path, engine_calls):
    fast = s3turbo.accelerate(s3turbo.accelerate(s3s_fs.s3turbo_client()))
    bucket = s3s_fs.new_bucket()
    fast.upload_fileobj(io.BytesIO(b"x"), bucket, "k")
    assert fast.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    assert engine_calls == {"upload_fileobj": 1}


def test_patched_methods_are_documented_as_boto3s():
    s3turbo.patch()
    try:
        client = boto3.client("s3", region_name="us-east-1")
    finally:
        s3turbo.unpatch()
    for name in ("upload_file", "download_file", "upload_fileobj", "download_fileobj"):
        assert getattr(client, name).__doc__ == getattr(boto3.s3.inject, name).__doc__
        assert getattr(s3turbo.Client, name).__doc__ == getattr(boto3.s3.inject, name).__doc__
    presign_doc = botocore.signers.generate_presigned_url.__doc__
    assert client.generate_presigned_url.__doc__ == presign_doc


def test_tracing_and_http_recorders_see_every_transfer(s3s_fs, tmp_path, engine_calls):
    """Tracing wraps `_make_api_call` (OpenTelemetry's and X-Ray's instrumentation, with wrapt
    or functools.wraps) or `Endpoint.make_request` (New Relic's), an HTTP recorder swaps
    botocore's connection class (vcrpy): each makes the transfers boto3's, which they see;
    once they are gone, the engine's again."""
    from botocore import awsrequest
    from botocore.client import BaseClient
    from botocore.endpoint import Endpoint

    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    traced, recorded = [], []
    original = BaseClient._make_api_call

    @functools.wraps(original)
    def tracing(self, operation, params):
        traced.append(operation)
        return original(self, operation, params)

    class RecordingConnection(awsrequest.AWSHTTPConnection):
        def request(self, method, url, *args, **kwargs):
            recorded.append(method)
            return super().request(method, url, *args, **kwargs)

    made = []
    original_make_request = Endpoint.make_request

    @functools.wraps(original_make_request)
    def instrumented(self, operation_model, request_dict):  # as New Relic's agent does
        made.append(operation_model.name)
        return original_make_request(self, operation_model, request_dict)

    s3turbo.patch()
    try:
        client = s3s_fs.boto3_client()
        with mock.patch.object(BaseClient, "_make_api_call", tracing):
            client.upload_file(str(source), bucket, "k")
        with mock.patch.object(Endpoint, "make_request", instrumented):
            client.upload_file(str(source), bucket, "k")
        pool = awsrequest.AWSHTTPConnectionPool
        with mock.patch.object(pool, "ConnectionCls", RecordingConnection):
            # A client made with the recorder on (its connections are the recorder's).
            s3s_fs.boto3_client().download_file(bucket, "k", str(tmp_path / "out.bin"))
        assert engine_calls == {}
        client.download_file(bucket, "k", str(tmp_path / "out.bin"))
        assert engine_calls == {"download_file": 1}
    finally:
        s3turbo.unpatch()
    assert traced == made == ["PutObject"]
    assert recorded == ["HEAD", "GET"]
    assert sha256_file(tmp_path / "out.bin") == sha256_file(source)


def test_presign_handlers_shape_the_url_after_patch(s3s_fs):
    """Handlers on the presigned operation run as in boto3 (mlflow's moves the expected bucket
    owner from a header into the query, so that a plain GET of the URL works)."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"hello")

    def hoist_owner(request, **_):
        owner = request.headers.get("x-amz-expected-bucket-owner")
        if request.context.get("is_presign_request") and owner:
            del request.headers["x-amz-expected-bucket-owner"]
            request.params["x-amz-expected-bucket-owner"] = owner

    params = {"Bucket": bucket, "Key": "k", "ExpectedBucketOwner": "123456789012"}
    s3turbo.patch()
    try:
        client = s3s_fs.boto3_client(config=Config(signature_version="s3v4"))  # as mlflow's
        client.meta.events.register("before-sign.s3.GetObject", hoist_owner)
        url = client.generate_presigned_url("get_object", Params=params)
    finally:
        s3turbo.unpatch()
    assert "X-Amz-SignedHeaders=host&" in url and "x-amz-expected-bucket-owner=" in url
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"hello"


def test_patched_clients_presign_on_the_engine(monkeypatch):
    """After patch(), S3 clients presign on the engine (SigV4: the region takes nothing else);
    other services' clients keep botocore's; unpatch() restores botocore's for new clients."""
    signed = []
    original = s3turbo._core.presign_url
    monkeypatch.setattr(
        s3turbo._core, "presign_url", lambda *a, **k: signed.append(1) or original(*a, **k)
    )
    kwargs = {"region_name": "eu-central-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}
    params = {"Bucket": "bkt", "Key": "k"}
    s3turbo.patch()
    try:
        patched = boto3.client("s3", **kwargs)
        url = patched.generate_presigned_url("get_object", Params=params)
        sts = boto3.client("sts", **kwargs)
        sts_url = sts.generate_presigned_url("get_caller_identity")
    finally:
        s3turbo.unpatch()
    assert signed == [1]
    assert "X-Amz-Signature=" in url and "Action=GetCallerIdentity" in sts_url
    plain = boto3.client("s3", **kwargs)
    assert type(plain).generate_presigned_url is botocore.signers.generate_presigned_url
    plain.generate_presigned_url("get_object", Params=params)
    assert signed == [1]


def test_a_client_made_while_unpatch_runs_gets_boto3s_methods(s3s_fs):
    """boto3 looks its handler up by name when a client class is made: if unpatch() runs in
    another thread after that lookup, the patched handler still makes a working client (with
    boto3's methods, as after unpatch())."""
    s3turbo.patch()
    try:
        handler = boto3.s3.inject.inject_s3_transfer_methods
    finally:
        s3turbo.unpatch()
    class_attributes = {}
    handler(class_attributes=class_attributes)
    assert class_attributes["upload_file"] is boto3.s3.inject.upload_file
