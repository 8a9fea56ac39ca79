"""generate_presigned_url: computed by the engine, identical to botocore's URL (SigV4, or the
SigV2 botocore presigns with by default in the regions that take it), and accepted (or refused)
by a server that checks signatures."""

from __future__ import annotations

import re
import time

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ParamValidationError, UnknownClientMethodError
from helpers import fallbacks, fetch, served_by_engine

import s3turbo
import s3turbo._presign as presign

CASES = [
    ("get_object", {"Bucket": "bkt", "Key": "k"}),
    ("get_object", {"Bucket": "bkt", "Key": "a b/ü+c~!*()'", "VersionId": "v1"}),
    (
        "get_object",
        {
            "Bucket": "bkt",
            "Key": "report.csv",
            "ResponseContentType": "text/csv",
            "ResponseContentDisposition": 'attachment; filename="r.csv"',
        },
    ),
    ("head_object", {"Bucket": "bkt", "Key": "/leading/slash"}),
    ("delete_object", {"Bucket": "bkt", "Key": "k"}),
    ("put_object", {"Bucket": "bkt", "Key": "k", "ContentType": "text/plain"}),
    ("put_object", {"Bucket": "bkt", "Key": "k", "Metadata": {"Owner": "x", "a": "b"}}),
    ("upload_part", {"Bucket": "bkt", "Key": "k", "UploadId": "u-1", "PartNumber": 3}),
]

CLIENTS = [
    {"endpoint_url": "http://127.0.0.1:9000", "region_name": "us-east-1"},
    {"region_name": "eu-west-1", "aws_session_token": "session/token+="},
    {"region_name": "us-east-1"},
    {"region_name": "us-west-2", "config": Config(s3={"addressing_style": "path"})},
    # A region that takes only SigV4: botocore's default presigning is SigV4 there.
    {"region_name": "eu-central-1", "aws_session_token": "t"},
]

# More cases for SigV2, which signs some headers and parameters and moves headers to the query.
SIGV2_CASES = [
    (
        "put_object",
        {
            "Bucket": "bkt",
            "Key": "k",
            "ContentType": " text/plain ",
            "ContentMD5": "1B2M2Y8AsgTpgAmY7PhCfg==",
            "ACL": "public-read",
            "CacheControl": "no-cache",
            "Metadata": {"Zeta": " z ", "alpha": ""},
            "StorageClass": "STANDARD_IA",
        },
    ),
    (
        "get_object",
        {
            "Bucket": "bkt",
            "Key": "k",
            "VersionId": "v+1",
            "PartNumber": 2,
            "ResponseCacheControl": "no-store",
            "RequestPayer": "requester",
            "IfMatch": '"etag"',
        },
    ),
]

SIGNATURE_VERSIONS = [None, "s3v4", "v4"]


@pytest.mark.parametrize("signature_version", SIGNATURE_VERSIONS)
@pytest.mark.parametrize("client_kwargs", CLIENTS)
@pytest.mark.parametrize("method, params", CASES + SIGV2_CASES)
def test_url_is_botocores_url(
    frozen_time, caplog, client_kwargs, method, params, signature_version
):
    kwargs = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret/key+1"}
    kwargs.update(client_kwargs)
    config = kwargs.pop("config", Config()).merge(Config(signature_version=signature_version))
    turbo = s3turbo.client("s3", config=config, **kwargs)
    boto = boto3.client("s3", config=config, **kwargs)
    # boto3 takes any ExpiresIn (S3 refuses more than 7 days when the URL is used): so do we.
    # An empty HttpMethod is signed as it is, as botocore signs it.
    for expires, http_method in ((3600, None), (60, "PUT"), (604_801, None), (0, None), (9, "")):
        with served_by_engine(caplog):
            ours = turbo.generate_presigned_url(
                method, Params=params, ExpiresIn=expires, HttpMethod=http_method
            )
        theirs = boto.generate_presigned_url(
            method, Params=params, ExpiresIn=expires, HttpMethod=http_method
        )
        assert ours == theirs


V4 = Config(signature_version="s3v4")

# Settings and parameters where botocore signs otherwise than the plain cases show: the same
# URL from both (the engine's, or boto3's where the engine leaves it to boto3).
ODD_CASES = {
    # botocore signs for its signer's region, us-east-1, where the client's names a global one.
    "aws-global": ({"region_name": "aws-global", "config": V4}, "get_object", {}),
    "s3-external-1": ({"region_name": "s3-external-1"}, "get_object", {}),
    # Endpoints whose signing name is not s3.
    "express-without-sessions": (
        {
            "region_name": "us-west-2",
            "config": Config(
                signature_version="s3v4", s3={"disable_s3_express_session_auth": True}
            ),
        },
        "get_object",
        {"Bucket": "mybkt--usw2-az1--x-s3"},
    ),
    "outposts-alias": (
        {"region_name": "us-west-2", "config": V4},
        "get_object",
        {"Bucket": "test-accessp-e0000075431d83bebde8xz5w8ijx1qzlbp3i3kuse10--op-s3"},
    ),
    # The host signed is lower case, without a default port or user info.
    "default-port": (
        {"endpoint_url": "https://minio.example.com:443", "config": V4},
        "get_object",
        {},
    ),
    "upper-case-host": ({"endpoint_url": "http://LocalHost:9000", "config": V4}, "get_object", {}),
    "user-info": ({"endpoint_url": "http://u:pw@example.com:9000", "config": V4}, "get_object", {}),
    # An endpoint path loses one trailing slash before the key.
    "endpoint-path-slashes": (
        {
            "endpoint_url": "https://s3.example.com/a/b//",
            "config": Config(s3={"addressing_style": "virtual"}),
        },
        "get_object",
        {},
    ),
    # SigV4 leaves out the content type every form has.
    "form-content-type": (
        {"config": V4},
        "put_object",
        {"ContentType": "application/x-www-form-urlencoded; charset=utf-8"},
    ),
    "form-content-type-sigv2": (
        {},
        "put_object",
        {"ContentType": "application/x-www-form-urlencoded; charset=utf-8"},
    ),
    # Metadata keys that differ only in case are one header.
    "metadata-case-sigv2": ({}, "put_object", {"Metadata": {"A": "1", "a": "2"}}),
    "metadata-case": ({"config": V4}, "put_object", {"Metadata": {"A": "1", "a": "2"}}),
    # An empty session token is no token.
    "empty-token-sigv2": ({"aws_session_token": ""}, "get_object", {}),
    "empty-token": ({"aws_session_token": "", "config": V4}, "get_object", {}),
}


@pytest.mark.parametrize("case", ODD_CASES)
def test_url_is_botocores_url_in_odd_settings(frozen_time, case):
    client_kwargs, method, params = ODD_CASES[case]
    kwargs = {
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
        **client_kwargs,
    }
    params = {"Bucket": "bkt", "Key": "k", **params}
    urls = [
        module.client("s3", **kwargs).generate_presigned_url(method, Params=dict(params))
        for module in (s3turbo, boto3)
    ]
    assert urls[0] == urls[1]


KEY = {"Bucket": "bkt", "Key": "k"}


class Version(str):
    """A str of another type, as an enum's value may be: botocore writes it as it chooses."""


# URLs boto3 makes, and the reason the s3turbo logger gives for each.
BOTO3_MAKES = {
    "another-method": ({}, "list_objects_v2", {"Bucket": "bkt"}, "does not sign list_objects_v2"),
    "sse-c": (
        {},
        "get_object",
        {**KEY, "SSECustomerKey": "k" * 32},
        "does not sign SSECustomerKey",
    ),
    "str-subclass": (
        {},
        "get_object",
        {**KEY, "VersionId": Version("v1")},
        "VersionId is a Version",
    ),
    "arn": (
        {},
        "get_object",
        {"Bucket": "arn:aws:s3:us-west-2:123456789012:accesspoint/ap", "Key": "k"},
        "the bucket is an ARN",
    ),
    "anonymous": ({"config": Config(signature_version=UNSIGNED)}, "get_object", KEY, "UNSIGNED"),
    "disabled": ({}, "get_object", KEY, "S3TURBO_DISABLE is set"),
}


@pytest.mark.parametrize("case", BOTO3_MAKES)
def test_urls_boto3_makes_are_logged_with_the_reason(frozen_time, caplog, monkeypatch, case):
    client_kwargs, method, params, reason = BOTO3_MAKES[case]
    if case == "disabled":
        monkeypatch.setenv("S3TURBO_DISABLE", "1")
    kwargs = {
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
        **client_kwargs,
    }
    with caplog.at_level("DEBUG", logger="s3turbo"):
        urls = [
            module.client("s3", **kwargs).generate_presigned_url(method, Params=dict(params))
            for module in (s3turbo, boto3)
        ]
    assert urls[0] == urls[1]
    [logged] = fallbacks(caplog)
    assert logged.startswith("generate_presigned_url falls back to boto3: ")
    assert reason in logged


@pytest.mark.parametrize("expires", [b"60", [60]])
def test_an_expiry_of_another_type_is_written_as_botocore_writes_it(frozen_time, expires):
    kwargs = {"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}
    params = {"Bucket": "bkt", "Key": "k"}
    urls = [
        module.client("s3", config=V4, **kwargs).generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires
        )
        for module in (s3turbo, boto3)
    ]
    assert urls[0] == urls[1]


@pytest.mark.parametrize(
    "signature_version, signer", [(None, "presign_url_v2"), ("s3v4", "presign_url")]
)
def test_the_engine_makes_the_url(frozen_time, monkeypatch, signature_version, signer):
    """The fast path really serves get_object (not a silent fallback to boto3), with SigV2
    where botocore would use it."""
    client = s3turbo.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=Config(signature_version=signature_version),
    )
    calls = []
    monkeypatch.setattr(presign._core, signer, lambda *a: calls.append(a) or "url")
    assert client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"}) == "url"
    assert len(calls) == 1


def test_handlers_presigning_never_runs_leave_the_url_to_the_engine(frozen_time, monkeypatch):
    """Handlers on events botocore's presigning does not emit (Sentry's on request-created and
    after-call), or on another operation, do not make get_object's URL botocore's; one on its
    before-sign does (see test_patch.py)."""
    client = s3turbo.client(
        "s3", region_name="eu-central-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    calls = []
    original = presign._core.presign_url
    monkeypatch.setattr(presign._core, "presign_url", lambda *a: calls.append(1) or original(*a))
    for event in ("request-created", "after-call.s3", "before-sign.s3.PutObject"):
        client.meta.events.register(event, lambda **_: None)
    params = {"Bucket": "b", "Key": "k"}
    client.generate_presigned_url("get_object", Params=params)
    assert calls == [1]
    client.meta.events.register("before-sign.s3.GetObject", lambda **_: None)
    client.generate_presigned_url("get_object", Params=params)
    assert calls == [1]


def test_unknown_method_and_bad_params_as_in_boto3():
    kwargs = {"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}
    for client in (s3turbo.client("s3", **kwargs), boto3.client("s3", **kwargs)):
        with pytest.raises(UnknownClientMethodError):
            client.generate_presigned_url("no_such_method", Params={})
        with pytest.raises(ParamValidationError):
            client.generate_presigned_url("get_object", Params={"Bucket": "bad/name", "Key": "k"})
        with pytest.raises(ParamValidationError):
            client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": ""})
        with pytest.raises(ParamValidationError):
            client.generate_presigned_url("get_object", Params={"Key": "k"})
        with pytest.raises(ParamValidationError):
            client.generate_presigned_url(
                "upload_part", Params={"Bucket": "b", "Key": "k", "PartNumber": "3"}
            )
        # Required parameters missing: without its UploadId, a part's URL would be a PutObject's.
        with pytest.raises(ParamValidationError):
            client.generate_presigned_url(
                "upload_part", Params={"Bucket": "b", "Key": "k", "PartNumber": 1}
            )
        with pytest.raises(ParamValidationError):
            client.generate_presigned_url(
                "upload_part", Params={"Bucket": "b", "Key": "k", "UploadId": "u"}
            )
        # Checked before s3turbo's own checks of Params: the method, then its parameters.
        with pytest.raises(UnknownClientMethodError):
            client.generate_presigned_url("no_such_method", Params=["not", "a", "dict"])
        with pytest.raises(ParamValidationError):
            client.generate_presigned_url(
                "get_object", Params={"Bucket": "b", "Key": "k", "Metadata": {"a": 1}}
            )


def test_parameters_are_checked_before_the_endpoint_as_in_boto3():
    """botocore checks a call's parameters before it resolves its endpoint: a call wrong both
    ways (non-ASCII metadata, and a dotted bucket that S3 Accelerate cannot serve) is refused
    for its parameters by both clients (the engine raised botocore's EndpointResolutionError)."""
    kwargs = {
        "region_name": "us-east-1",
        "aws_access_key_id": "a",
        "aws_secret_access_key": "b",
        "config": Config(s3={"use_accelerate_endpoint": True}),
    }
    params = {"Bucket": "a.dotted.bucket", "Key": "k", "Metadata": {"a": "ü"}}
    refusals = []
    for make in (boto3.client, s3turbo.client):
        with pytest.raises(ParamValidationError) as refused:
            make("s3", **kwargs).generate_presigned_url("put_object", Params=params)
        refusals.append(str(refused.value))
    assert refusals[0] == refusals[1]


# The signature versions botocore presigns with on a client set to us-east-1: SigV2 by default.
SIGNERS = {None: "Signature", "s3v4": "X-Amz-Signature"}


@pytest.mark.parametrize("signature_version", SIGNERS)
def test_presigned_get_put_and_refusals(s3s_fs, signature_version):
    bucket = s3s_fs.new_bucket()
    client = s3s_fs.s3turbo_client(config=Config(signature_version=signature_version))
    client.put_object(Bucket=bucket, Key="dir/file name.txt", Body=b"hello presigned")

    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "dir/file name.txt"}
    )
    assert fetch(url) == (200, b"hello presigned")

    # An altered key or signature is refused.
    assert fetch(url.replace("file%20name", "file%20namf"))[0] in (400, 403)
    name = SIGNERS[signature_version]
    signature = re.search(f"[?&]{name}=([^&]+)", url).group(1)
    altered = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert fetch(url.replace(f"{name}={signature}", f"{name}={altered}"))[0] in (400, 403)

    # A presigned PUT uploads, with the content type it was signed for.
    put_url = client.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "up.txt", "ContentType": "text/plain"}
    )
    assert fetch(put_url, "PUT", b"uploaded", {"Content-Type": "text/plain"})[0] == 200
    head = client.head_object(Bucket=bucket, Key="up.txt")
    assert head["ContentType"] == "text/plain"
    assert client.get_object(Bucket=bucket, Key="up.txt")["Body"].read() == b"uploaded"


@pytest.mark.parametrize("signature_version", SIGNERS)
def test_expired_url_is_refused(s3s_fs, signature_version):
    bucket = s3s_fs.new_bucket()
    client = s3s_fs.s3turbo_client(config=Config(signature_version=signature_version))
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1
    )
    time.sleep(2.1)
    assert fetch(url)[0] in (400, 403)


def post_form(url: str, fields: dict, file_content: bytes) -> int:
    """An HTML form POST (multipart/form-data), as a browser sends it."""
    boundary = "s3turbo-test-boundary"
    lines = []
    for name, value in fields.items():
        lines += [f"--{boundary}", f'Content-Disposition: form-data; name="{name}"', "", value]
    lines += [
        f"--{boundary}",
        'Content-Disposition: form-data; name="file"; filename="upload.txt"',
        "Content-Type: text/plain",
        "",
    ]
    body = "\r\n".join(lines).encode() + b"\r\n" + file_content + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return fetch(url, "POST", body, headers)[0]


def test_presigned_post_uploads_a_form(moto):
    bucket = moto.new_bucket()
    client = moto.s3turbo_client()
    post = client.generate_presigned_post(bucket, "form/upload.txt", ExpiresIn=600)
    assert set(post) == {"url", "fields"} and post["fields"]["key"] == "form/upload.txt"
    assert post_form(post["url"], post["fields"], b"posted by a form") in (200, 201, 204)
    assert client.get_object(Bucket=bucket, Key="form/upload.txt")["Body"].read() == (
        b"posted by a form"
    )
