"""Transfers through a proxy that breaks things (tests/faultproxy.py): connections reset
mid-body, a server that dies or stalls, a flipped byte. The engine must recover where boto3
recovers, fail where boto3 fails (with boto3's exceptions, within the configured timeouts and
retries), and leave no debris: no temporary file, no changed destination, no multipart upload.
"""

from __future__ import annotations

import dataclasses
import io
import re
import threading
import time

import pytest
import s3transfer.exceptions
from boto3.exceptions import Boto3Error, RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ReadTimeoutError,
)
from helpers import (
    MIB,
    Callbacks,
    listing,
    run_on_thread,
    sha256_file,
    sha256_object,
    write_random,
)

from faultproxy import Fault, FaultProxy

# Three parts of 5 MiB (S3's smallest) and a tail: small, yet every path is multipart.
MULTIPART = TransferConfig(
    multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=3
)
MULTIPART_SIZE = 12 * MIB + 7

# Enough SDK-level attempts that three resets landing on the same request still leave one.
RESILIENT = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 4})
# Short timeouts and one retry: a failure must surface in seconds.
FAIL_FAST = Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1})
# Generous against FAIL_FAST's worst case (backoff included), far below a hang.
FAIL_FAST_BOUND = 15

# Exceptions a boto3 caller can expect from a transfer whose connections break.
BOTO3_KINDS = (BotoCoreError, Boto3Error)


def outcome_within(seconds: float, call, *args, **kwargs) -> tuple[BaseException | None, float]:
    """Runs `call(*args, **kwargs)` on a thread; returns what it raised (or None) and how long
    it took. Fails the test if it still runs after `seconds`: a hang must not hang the suite."""
    ran = run_on_thread(lambda: call(*args, **kwargs), seconds)
    if ran is None:
        pytest.fail(f"the transfer was still running after {seconds} s")
    return ran


def die_on_first_progress(proxy: FaultProxy):
    """A Callback that kills the proxy once bytes are moving: the server is gone mid-transfer."""

    def callback(increment):
        proxy.die()

    return callback


def stored_object(server, bucket: str, tmp_path, size: int = MULTIPART_SIZE):
    source = write_random(tmp_path / "source.bin", size)
    server.boto3_client().upload_file(str(source), bucket, "k", Config=MULTIPART)
    return source


def test_the_proxy_delays_and_throttles(s3s_fs):
    """The proxy itself: the benchmark harness relies on `delay` and `bytes_per_second`."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"x" * MIB)
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        client = s3s_fs.boto3_client(endpoint_url=proxy.endpoint_url)
        client.head_object(Bucket=bucket, Key="k")  # connected: no connection set-up below
        proxy.delay = 0.05
        started = time.monotonic()
        for _ in range(4):
            client.head_object(Bucket=bucket, Key="k")
        assert time.monotonic() - started >= 4 * 0.05
        proxy.clear()
        proxy.bytes_per_second = 4 * MIB
        started = time.monotonic()
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * MIB
        assert time.monotonic() - started >= 0.2  # 1 MiB at 4 MiB/s, less the first chunk
        assert proxy.connections == 1
        assert [r.method for r in proxy.requests] == ["HEAD"] * 5 + ["GET"]


# Resets mid-body: retried, the content intact.


def test_upload_survives_connections_reset_mid_body(server, bucket, proxy, tmp_path):
    source = write_random(tmp_path / "source.bin", MULTIPART_SIZE)
    for name, client in server.clients_through(proxy, RESILIENT).items():
        resets = proxy.inject(
            Fault(method="PUT", target_contains="partNumber=", reset_request_after=300_000, times=3)
        )
        callbacks = Callbacks()
        client.upload_file(str(source), bucket, name, Config=MULTIPART, Callback=callbacks)
        assert resets.hits == 3, name
        assert sha256_object(server.boto3_client(), bucket, name) == sha256_file(source), name
        # Bytes of a broken attempt are taken back: the increments still add up to the size.
        assert callbacks.total == MULTIPART_SIZE, name
    etags = [
        server.boto3_client().head_object(Bucket=bucket, Key=k)["ETag"]
        for k in ("s3turbo", "boto3")
    ]
    assert etags[0] == etags[1]


@pytest.mark.parametrize("method", ["download_file", "download_fileobj"])
def test_download_survives_connections_reset_mid_body(server, bucket, proxy, tmp_path, method):
    source = stored_object(server, bucket, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for name, client in server.clients_through(proxy, RESILIENT).items():
        resets = proxy.inject(Fault(method="GET", reset_response_after=200_000, times=3))
        callbacks = Callbacks()
        destination = out / f"{name}.bin"
        if method == "download_file":
            client.download_file(
                bucket, "k", str(destination), Config=MULTIPART, Callback=callbacks
            )
        else:
            buffer = io.BytesIO()
            client.download_fileobj(bucket, "k", buffer, Config=MULTIPART, Callback=callbacks)
            destination.write_bytes(buffer.getvalue())
        assert resets.hits == 3, name
        assert sha256_file(destination) == sha256_file(source), name
        assert callbacks.total == MULTIPART_SIZE, name
    # No temporary file left beside the destinations.
    assert listing(out) == ["boto3.bin", "s3turbo.bin"]


# The server dies mid-transfer: a boto3 exception, in bounded time, no debris.


def test_server_dying_mid_download_fails_cleanly(server, bucket, proxy, tmp_path):
    stored_object(server, bucket, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    destination = out / "precious.bin"
    destination.write_bytes(b"keep me")
    proxy.bytes_per_second = 8 * MIB  # about 1.5 s in all: it dies well before the end
    client = server.s3turbo_client(endpoint_url=proxy.endpoint_url, config=FAIL_FAST)

    error, elapsed = outcome_within(
        FAIL_FAST_BOUND * 2,
        client.download_file,
        bucket,
        "k",
        str(destination),
        Config=MULTIPART,
        Callback=die_on_first_progress(proxy),
    )
    assert isinstance(error, BOTO3_KINDS), repr(error)
    assert elapsed < FAIL_FAST_BOUND
    assert destination.read_bytes() == b"keep me"
    assert listing(out) == ["precious.bin"]


def test_server_dying_mid_upload_fails_cleanly(server, bucket, tmp_path):
    source = write_random(tmp_path / "source.bin", MULTIPART_SIZE)
    errors = {}
    for name in ("s3turbo", "boto3"):
        with FaultProxy(server.endpoint_url) as proxy:
            proxy.bytes_per_second = 8 * MIB
            client = server.clients_through(proxy, FAIL_FAST)[name]
            errors[name], elapsed = outcome_within(
                FAIL_FAST_BOUND * 2,
                client.upload_file,
                str(source),
                bucket,
                name,
                Config=MULTIPART,
                Callback=die_on_first_progress(proxy),
            )
            assert elapsed < FAIL_FAST_BOUND, name
    # Not a ClientError (the server never answered), so upload_file does not wrap it in
    # S3UploadFailedError; boto3 raises it as it is too.
    assert isinstance(errors["s3turbo"], BotoCoreError), repr(errors["s3turbo"])
    assert isinstance(errors["boto3"], BotoCoreError), repr(errors["boto3"])
    boto = server.boto3_client()
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    if server.name == "moto":  # s3s-fs has no ListMultipartUploads
        # The AbortMultipartUpload could not reach a dead server, for boto3 as for us: one
        # upload each is left, and no more (a retried CreateMultipartUpload would leave two).
        uploads = boto.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert sorted(u["Key"] for u in uploads) == ["boto3", "s3turbo"]


def test_failing_part_upload_is_aborted(moto, tmp_path):
    """One UploadPart keeps breaking while the server stays up: the upload fails and is
    aborted, as boto3's is, so ListMultipartUploads shows nothing left."""
    bucket = moto.new_bucket()
    source = write_random(tmp_path / "source.bin", MULTIPART_SIZE)
    with FaultProxy(moto.endpoint_url) as proxy:
        broken = proxy.inject(
            Fault(
                method="PUT",
                target_contains="partNumber=2",
                reset_request_after=100_000,
                times=None,
            )
        )
        for name, client in moto.clients_through(proxy, FAIL_FAST).items():
            error, elapsed = outcome_within(
                FAIL_FAST_BOUND * 2, client.upload_file, str(source), bucket, name, Config=MULTIPART
            )
            assert isinstance(error, BotoCoreError), (name, repr(error))
            assert elapsed < FAIL_FAST_BOUND, name
        assert broken.hits >= 4  # both clients tried part 2 more than once
    boto = moto.boto3_client()
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def _die_mid_download(server, bucket, client, proxy, tmp_path):
    proxy.bytes_per_second = 8 * MIB
    client.download_file(
        bucket,
        "k",
        str(tmp_path / "out.bin"),
        Config=MULTIPART,
        Callback=die_on_first_progress(proxy),
    )


def _die_mid_upload(server, bucket, client, proxy, tmp_path):
    proxy.bytes_per_second = 8 * MIB
    client.upload_file(
        str(tmp_path / "source.bin"),
        bucket,
        "up",
        Config=MULTIPART,
        Callback=die_on_first_progress(proxy),
    )


def _part_upload_keeps_breaking(server, bucket, client, proxy, tmp_path):
    proxy.inject(
        Fault(method="PUT", target_contains="partNumber=2", reset_request_after=100_000, times=None)
    )
    client.upload_file(str(tmp_path / "source.bin"), bucket, "up", Config=MULTIPART)


@pytest.mark.parametrize(
    "scenario",
    [
        _die_mid_download,
        _die_mid_upload,
        _part_upload_keeps_breaking,
    ],
    ids=lambda scenario: scenario.__name__.strip("_"),
)
def test_connection_failure_raises_boto3s_exception_class(s3s_fs, tmp_path, scenario):
    bucket = s3s_fs.new_bucket()
    stored_object(s3s_fs, bucket, tmp_path)
    errors = {}
    for name in ("s3turbo", "boto3"):
        with FaultProxy(s3s_fs.endpoint_url) as proxy:
            client = s3s_fs.clients_through(proxy, FAIL_FAST)[name]
            errors[name], _ = outcome_within(
                FAIL_FAST_BOUND * 2, scenario, s3s_fs, bucket, client, proxy, tmp_path
            )
    assert type(errors["s3turbo"]) is type(errors["boto3"]), errors


# A flipped byte in a GET body.

FLIP_SETTINGS = {
    # An explicit ChecksumMode validates even when validation is otherwise only when required.
    "sha256-checksum-mode": (
        {"ChecksumAlgorithm": "SHA256"},
        {"ChecksumMode": "ENABLED"},
        "when_required",
    ),
    # boto3's defaults: CRC32 on upload, responses validated when the server sends a checksum.
    "defaults": ({}, {}, "when_supported"),
    # The control: no validation asked for, so nothing can notice the flipped byte.
    "no-validation": ({}, {}, "when_required"),
}


@pytest.mark.parametrize("setting", FLIP_SETTINGS)
def test_flipped_byte_in_get_body(server, bucket, proxy, tmp_path, setting):
    upload_args, download_args, validation = FLIP_SETTINGS[setting]
    # Below the threshold: one GET whose range is the whole object, which S3 answers with the
    # object's checksum (the ranges of a multipart download carry none, for boto3 as for us).
    source = write_random(tmp_path / "source.bin", MIB)
    config = Config(
        read_timeout=5, retries={"max_attempts": 1}, response_checksum_validation=validation
    )
    clients = server.clients_through(proxy, config)
    clients["s3turbo"].upload_file(str(source), bucket, "k", ExtraArgs=upload_args or None)
    out = tmp_path / "out"
    out.mkdir()
    flips = proxy.inject(Fault(method="GET", flip_response_byte_at=1000, times=None))
    errors = {}
    for name, client in clients.items():
        errors[name], _ = outcome_within(
            FAIL_FAST_BOUND, client.download_file, bucket, "k", str(out / name), download_args
        )
    assert flips.hits >= 2
    if setting == "no-validation":
        assert errors == {"s3turbo": None, "boto3": None}
        assert (out / "s3turbo").read_bytes() == (out / "boto3").read_bytes() != source.read_bytes()
        return
    assert isinstance(errors["boto3"], BotoCoreError), repr(errors["boto3"])
    assert isinstance(errors["s3turbo"], BOTO3_KINDS), repr(errors["s3turbo"])
    assert listing(out) == []  # no file written, no temporary file left


def test_flipped_byte_raises_the_same_exception_as_boto3(s3s_fs, tmp_path):
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", MIB)
    s3s_fs.boto3_client().upload_file(str(source), bucket, "k")
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        proxy.inject(Fault(method="GET", flip_response_byte_at=1000, times=None))
        errors = {}
        for name, client in s3s_fs.clients_through(proxy, FAIL_FAST).items():
            errors[name], _ = outcome_within(
                FAIL_FAST_BOUND, client.download_file, bucket, "k", str(tmp_path / name)
            )
    assert type(errors["s3turbo"]) is type(errors["boto3"]), errors
    assert str(errors["s3turbo"]) == str(errors["boto3"])  # the checksums, in base64


# A GET body that keeps breaking: RetriesExceededError after num_download_attempts tries.


RETRIES_EXCEEDED = {
    "download_file": RetriesExceededError,
    "download_fileobj": s3transfer.exceptions.RetriesExceededError,
}


@pytest.mark.parametrize(
    "method",
    [
        "download_file",
        "download_fileobj",
    ],
)
def test_get_body_that_keeps_breaking_raises_retries_exceeded(
    server, bucket, proxy, tmp_path, method
):
    source = write_random(tmp_path / "source.bin", MIB)
    server.boto3_client().upload_file(str(source), bucket, "k")
    out = tmp_path / "out"
    out.mkdir()
    destination = out / "precious.bin"
    destination.write_bytes(b"keep me")
    config = TransferConfig(num_download_attempts=3)
    errors, reported = {}, {}
    for name, client in server.clients_through(proxy, FAIL_FAST).items():
        breaks = proxy.inject(Fault(method="GET", reset_response_after=10_000, times=None))
        sink = str(destination) if method == "download_file" else io.BytesIO()
        reported[name] = []
        errors[name], elapsed = outcome_within(
            FAIL_FAST_BOUND * 2,
            getattr(client, method),
            bucket,
            "k",
            sink,
            Config=config,
            Callback=reported[name].append,
        )
        proxy.clear()
        assert breaks.hits == 3, name  # one GET per attempt, no more, no fewer
        assert elapsed < FAIL_FAST_BOUND, name
    # Each failed attempt's bytes are taken back, the last one's too, as s3transfer does.
    assert sum(reported["s3turbo"]) == sum(reported["boto3"]) == 0
    # The last error is kept, as boto3 keeps it (its class differs: botocore's
    # IncompleteReadError there, ResponseStreamingError here; both BotoCoreError).
    assert isinstance(errors["s3turbo"].last_exception, BotoCoreError)
    assert destination.read_bytes() == b"keep me"
    assert listing(out) == ["precious.bin"]
    # boto3's download_file raises boto3.exceptions.RetriesExceededError; its download_fileobj
    # raises s3transfer's class of the same name (not a subclass): callers catch one or the other.
    assert isinstance(errors["boto3"], RETRIES_EXCEEDED[method])
    assert type(errors["s3turbo"]) is type(errors["boto3"]), errors


# A server that stops sending mid-body: the read timeout ends it.


def test_stalled_get_body_ends_after_the_read_timeout_as_in_boto3(s3s_fs, tmp_path):
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", MIB)
    s3s_fs.boto3_client().upload_file(str(source), bucket, "k")
    config = TransferConfig(num_download_attempts=1)
    errors, elapsed = {}, {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        proxy.inject(Fault(method="GET", stall_response_after=10_000, times=None))
        for name, client in s3s_fs.clients_through(proxy, FAIL_FAST).items():
            errors[name], elapsed[name] = outcome_within(
                FAIL_FAST_BOUND,
                client.download_file,
                bucket,
                "k",
                str(tmp_path / name),
                Config=config,
            )
    # boto3 first, so that a failure here is plainly not the bug this test is marked for.
    assert isinstance(errors["boto3"], RetriesExceededError)
    assert isinstance(errors["boto3"].last_exception, ReadTimeoutError)
    assert elapsed["boto3"] < 3  # one attempt of one second, and some slack
    assert elapsed["s3turbo"] < 3
    assert isinstance(errors["s3turbo"], RetriesExceededError)
    assert isinstance(errors["s3turbo"].last_exception, ReadTimeoutError)


@pytest.mark.parametrize("method", ["download_file", "download_fileobj"])
def test_get_whose_answer_never_comes_is_tried_again_as_in_boto3(s3s_fs, tmp_path, method):
    """No GET is answered. boto3 has the size from its HeadObject, and s3transfer sends the GET
    again up to num_download_attempts times. The engine's first GET stands for that HeadObject:
    when it times out, a HeadObject tells the size and the GET is tried for the attempts left.
    The same GETs, the same error, nothing left behind."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"data")
    one_try = Config(connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 1})
    out = tmp_path / "out"
    out.mkdir()
    errors, gets = {}, {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        for name, client in s3s_fs.clients_through(proxy, one_try).items():
            silent = proxy.inject(Fault(method="GET", stall_response_head=True, times=None))
            sink = str(out / name) if method == "download_file" else io.BytesIO()
            errors[name], _ = outcome_within(
                FAIL_FAST_BOUND,
                getattr(client, method),
                bucket,
                "k",
                sink,
                Config=TransferConfig(num_download_attempts=3),
            )
            proxy.clear()
            gets[name] = silent.hits
    assert gets == {"boto3": 3, "s3turbo": 3}
    assert isinstance(errors["boto3"], RETRIES_EXCEEDED[method])
    assert type(errors["s3turbo"]) is type(errors["boto3"])
    assert isinstance(errors["boto3"].last_exception, ReadTimeoutError)
    assert isinstance(errors["s3turbo"].last_exception, ReadTimeoutError)
    assert listing(out) == []


def test_a_request_failing_in_two_ways_gets_the_attempts_boto3_gives_it(s3s_fs, tmp_path):
    """A PutObject whose connection is reset once and whose response then never comes:
    botocore spends one budget of attempts (3 here) on both kinds of failure, and so does the
    engine, whose own retries of a stalled upload share the SDK's count of attempts."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 100_000)
    config = Config(
        connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 3}
    )
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        for name, client in s3s_fs.clients_through(proxy, config).items():
            proxy.inject(Fault(method="PUT", target_contains=name, reset_request_after=0))
            proxy.inject(
                Fault(method="PUT", target_contains=name, stall_response_head=True, times=None)
            )
            error, _ = outcome_within(
                FAIL_FAST_BOUND, client.upload_file, str(source), bucket, name
            )
            puts = [r for r in proxy.requests if r.method == "PUT" and name in r.target]
            assert isinstance(error, BOTO3_KINDS) and len(puts) == 3, (name, error, len(puts))


@pytest.mark.parametrize(
    "target, size",
    [("partNumber=2", MULTIPART_SIZE), (None, 1000)],
    ids=["a part", "a PutObject"],
)
def test_upload_whose_response_hangs_is_retried_as_in_boto3(s3s_fs, tmp_path, target, size):
    """The server takes the body and never answers, once: after the read timeout botocore
    retries the request, and so does the engine; a server that never answers fails both."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", size)
    retried = Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 2})
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        for name, client in s3s_fs.clients_through(proxy, retried).items():
            hang = proxy.inject(
                Fault(method="PUT", target_contains=target, stall_response_head=True)
            )
            error, _ = outcome_within(
                FAIL_FAST_BOUND, client.upload_file, str(source), bucket, name, Config=MULTIPART
            )
            assert error is None and hang.hits == 1, (name, error)
            assert sha256_object(s3s_fs.boto3_client(), bucket, name) == sha256_file(source)
        proxy.inject(
            Fault(method="PUT", target_contains=target, stall_response_head=True, times=None)
        )
        messages = {}
        for name, client in s3s_fs.clients_through(proxy, FAIL_FAST).items():
            error, elapsed = outcome_within(
                FAIL_FAST_BOUND, client.upload_file, str(source), bucket, "never", Config=MULTIPART
            )
            assert isinstance(error, BOTO3_KINDS) and elapsed < 4, (name, error, elapsed)
            # The URL named, query in botocore's order (an UploadPart's uploadId first).
            messages[name] = re.sub(r"uploadId=[^&\"]+", "uploadId=<id>", str(error))
    assert messages["s3turbo"] == messages["boto3"]


def error_as_boto3_reads_it(error: ClientError) -> tuple:
    """What of a ClientError must be boto3's: its text, its Error, which metadata it has (the
    header values and ids differ from one response to the next) and the attempts."""
    metadata = error.response["ResponseMetadata"]
    return (
        str(error),
        error.response["Error"],
        sorted(metadata),
        sorted(metadata["HTTPHeaders"]),
        metadata["RetryAttempts"],
        metadata.get("MaxAttemptsReached"),
        metadata.get("RequestId"),
        metadata.get("HostId"),
    )


SLOW_DOWN_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 2})


@pytest.mark.parametrize("answer", [(503, "SlowDown"), (429, "TooManyRequests")])
@pytest.mark.parametrize("call", ["upload_fileobj", "download_fileobj"])
def test_overloaded_server_error_reads_as_boto3s(server, bucket, call, answer):
    """S3 answers 503 SlowDown (or, as some S3 services do, 429 with a code of its own) to
    every try: both clients retry until the attempts run out and raise a ClientError with the
    same text ("reached max retries") and response metadata."""
    server.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"data")
    seen = {}
    with FaultProxy(server.endpoint_url) as proxy:
        overloaded = proxy.inject(Fault(answer_error=answer, times=None))
        for name, client in server.clients_through(proxy, SLOW_DOWN_RETRIES).items():
            overloaded.hits = 0
            with pytest.raises(ClientError) as caught:
                if call == "upload_fileobj":
                    client.upload_fileobj(io.BytesIO(b"data"), bucket, "k")
                else:
                    client.download_fileobj(bucket, "k", io.BytesIO())
            seen[name] = (error_as_boto3_reads_it(caught.value), overloaded.hits)
    assert seen["s3turbo"] == seen["boto3"]
    assert "reached max retries" in seen["boto3"][0][0]
    assert seen["boto3"][1] == 2  # every attempt


def test_transient_errors_are_retried_as_soon_as_boto3_retries_them(s3s_fs, tmp_path):
    """botocore's standard mode (AWS's Retry Behavior 2.1) retries a transient error after up
    to 50 ms × 2^i, where its legacy mode, and its standard mode for throttling, wait up to
    1 s × 2^i. Four 500s in a row: at most 0.75 s of waiting (under 2 s would be the odds of
    about 1 in 100 with the 1 s schedule), and the same requests and outcome for both."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    config = Config(retries={"total_max_attempts": 5, "mode": "standard"})
    took = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        for name, client in s3s_fs.clients_through(proxy, config).items():
            failing = proxy.inject(
                Fault(method="PUT", answer_error=(500, "InternalError"), times=4)
            )
            started = time.monotonic()
            client.upload_file(str(source), bucket, name)
            took[name] = time.monotonic() - started
            assert failing.hits == 4, name
            assert sha256_object(client, bucket, name) == sha256_file(source)
    assert took["boto3"] < 2 and took["s3turbo"] < 2, took


@pytest.mark.parametrize("call", ["upload_fileobj", "download_fileobj"])
def test_missing_bucket_error_reads_as_boto3s(moto, call):
    """An error that is not retried: RetryAttempts 0, the same metadata keys and headers."""
    seen = {}
    for name, client in (("boto3", moto.boto3_client()), ("s3turbo", moto.s3turbo_client())):
        with pytest.raises(ClientError) as caught:
            if call == "upload_fileobj":
                client.upload_fileobj(io.BytesIO(b"data"), "no-such-bucket-here", "k")
            else:
                client.download_fileobj("no-such-bucket-here", "k", io.BytesIO())
        seen[name] = error_as_boto3_reads_it(caught.value)[:-2]
    assert seen["s3turbo"] == seen["boto3"]
    if call == "upload_fileobj":  # (boto3's download starts with a HEAD, which has no body)
        # moto names the bucket in a field of its own, which botocore keeps.
        assert seen["boto3"][1]["BucketName"] == "no-such-bucket-here"


ERROR_BODIES = {
    "extra fields": "<Error><Code>PreconditionFailed</Code><Message>At least one of the "
    "pre-conditions you specified did not hold</Message><Condition>If-Match</Condition>"
    "<RequestId>R1</RequestId><HostId>H1</HostId></Error>",
    "escapes and empty": '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied'
    "</Code><Message>a &amp; b &lt;c&gt; \u00e9</Message><Key></Key><Endpoint/></Error>",
    "namespaced root": '<Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Code>'
    "AccessDenied</Code><Message>m</Message></Error>",
    "no message": "<Error><Code>InvalidRequest</Code><ArgumentName>x</ArgumentName></Error>",
    "nested and repeated": "<Error><Code>Odd</Code><Message>m</Message><Detail><A>1</A>"
    "<B><C>2</C></B></Detail><Item>x</Item><Item>y</Item></Error>",
    "no code": "<Error><Message>only a message</Message></Error>",
    "another service's error": "<ErrorResponse><Error><Code>X</Code><Message>m</Message>"
    "</Error><RequestId>R2</RequestId></ErrorResponse>",
    "HTML page": "<html><body>Forbidden</body></html>",
    "not XML": "Forbidden by policy",
}


@pytest.mark.parametrize("body", ERROR_BODIES)
@pytest.mark.parametrize("call", ["upload_fileobj", "download_fileobj"])
def test_error_body_is_read_as_boto3_reads_it(s3s_fs, call, body):
    """Every field of S3's error body is in the Error dict as botocore puts it (S3 adds
    BucketName, Key, Condition, ...): both clients get the same answer and report the same.
    (A download is told by its status: boto3's starts with a HEAD, which has no body; the
    engine's refused GET takes a HEAD to tell whether boto3's would have been refused.)"""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"data")
    seen, hits = {}, {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        refused = proxy.inject(
            Fault(answer_error=(403, "unused"), answer_body=ERROR_BODIES[body], times=None)
        )
        for name, client in s3s_fs.clients_through(proxy, Config()).items():
            refused.hits = 0
            with pytest.raises(ClientError) as caught:
                if call == "upload_fileobj":
                    client.upload_fileobj(io.BytesIO(b"data"), bucket, "k")
                else:
                    client.download_fileobj(bucket, "k", io.BytesIO())
            response = caught.value.response
            besides_metadata = {k: v for k, v in response.items() if k != "ResponseMetadata"}
            seen[name] = (error_as_boto3_reads_it(caught.value), besides_metadata)
            hits[name] = refused.hits
    assert hits == {"s3turbo": 1 if call == "upload_fileobj" else 2, "boto3": 1}
    assert seen["s3turbo"] == seen["boto3"]


@pytest.mark.parametrize(
    ("size", "transfer_config"),
    [(300_000, TransferConfig()), (2 * MIB, TransferConfig()), (MULTIPART_SIZE, MULTIPART)],
    ids=["PutObject of 300 KB", "PutObject", "UploadPart"],
)
def test_a_refused_large_upload_sends_no_body(s3s_fs, tmp_path, size, transfer_config):
    """Upload bodies of 64 KiB or more go with `Expect: 100-continue`, as boto3's go, and wait
    for the server's "100 Continue": a server that refuses the upload answers first, and gets
    no body (nor, if it closes then, body bytes it never read, which would reset the
    connection under its answer). Both clients raise the same error."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", size)
    seen = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        refused = proxy.inject(Fault(method="PUT", answer_error=(403, "AccessDenied"), times=None))
        for name, client in s3s_fs.clients_through(proxy, Config()).items():
            sent_before = proxy.bytes_from_clients
            with pytest.raises(S3UploadFailedError) as caught:
                client.upload_file(str(source), bucket, "k", Config=transfer_config)
            puts = [r for r in proxy.requests if r.method == "PUT"]
            seen[name] = (
                str(caught.value),
                proxy.bytes_from_clients - sent_before < 64 * 1024,  # the heads alone
                {r.headers.get("expect") for r in puts},
            )
            proxy.requests.clear()
    assert refused.hits >= 2
    assert seen["s3turbo"] == seen["boto3"]
    assert seen["boto3"][1:] == (True, {"100-continue"})


@pytest.mark.parametrize("read_timeout", [60, 0.4])
def test_a_large_upload_goes_after_a_second_without_100_continue(s3s_fs, tmp_path, read_timeout):
    """A server (or proxy) that never answers "100 Continue" gets the body after a second, as
    botocore sends it, and the upload succeeds; with a read timeout below that, before the
    upload would count as stalled (botocore's wait is outside its socket timeouts)."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 2 * MIB)
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        proxy.hide_continue = True
        config = Config(read_timeout=read_timeout)
        for name, client in s3s_fs.clients_through(proxy, config).items():
            started = time.monotonic()
            client.upload_file(str(source), bucket, name)
            elapsed = time.monotonic() - started
            assert elapsed >= min(1, read_timeout / 2), name
            assert sha256_object(s3s_fs.boto3_client(), bucket, name) == sha256_file(source)


@pytest.mark.parametrize("mode", ["standard", "legacy"])
def test_last_attempt_is_reported_as_boto3_reports_it(s3s_fs, mode):
    """botocore's standard mode says "reached max retries" of any error on the last attempt,
    one it would not retry too (a wrong secret, with one attempt in all); its legacy mode
    says so only of an error it would have retried."""
    bucket = s3s_fs.new_bucket()
    config = Config(retries={"mode": mode, "total_max_attempts": 1})
    seen = {}
    for name in ("s3turbo", "boto3"):
        make = s3s_fs.s3turbo_client if name == "s3turbo" else s3s_fs.boto3_client
        client = make(aws_secret_access_key="wrong", config=config)
        with pytest.raises(ClientError) as caught:
            client.upload_fileobj(io.BytesIO(b"data"), bucket, "k")
        seen[name] = error_as_boto3_reads_it(caught.value)
    assert seen["s3turbo"] == seen["boto3"]
    assert ("(reached max retries: 0)" in seen["boto3"][0]) == (mode == "standard")


@pytest.mark.parametrize(
    ("mode", "answer", "retried"),
    [
        ("legacy", (400, "BadDigest"), True),
        ("legacy", (509, "BandwidthLimitExceeded"), True),
        ("legacy", (400, "ThrottlingException"), True),
        ("legacy", (400, "SlowDown"), False),
        ("legacy", (403, "AccessDenied"), False),
        ("standard", (400, "SlowDown"), True),
        ("standard", (400, "RequestTimeout"), True),
        ("standard", (429, "SomethingElse"), True),
        ("standard", (400, "InternalError"), False),
        ("standard", (400, "BadDigest"), False),
        ("standard", (509, "BandwidthLimitExceeded"), True),
    ],
    ids=lambda value: "-".join(map(str, value)) if isinstance(value, tuple) else str(value),
)
def test_retry_modes_retry_and_report_as_boto3s(s3s_fs, mode, answer, retried):
    """botocore's retry modes have rules of their own, which the SDK's differ from: legacy
    (`_retry.json`) retries S3's 400 BadDigest and any 509, not a 400 SlowDown, and says
    "reached max retries" only of an error it would have retried; standard retries the
    throttling codes at any status and a 429 whatever its code, not a 400 InternalError. Both
    clients send the same requests and raise the same error. (Uploads: boto3's download starts
    with a HEAD, whose error has no code.)"""
    bucket = s3s_fs.new_bucket()
    config = Config(retries={"mode": mode, "total_max_attempts": 2})
    seen = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        refused = proxy.inject(Fault(method="PUT", answer_error=answer, times=None))
        for name, client in s3s_fs.clients_through(proxy, config).items():
            refused.hits = 0
            with pytest.raises(ClientError) as caught:
                client.upload_fileobj(io.BytesIO(b"data"), bucket, "k")
            seen[name] = (error_as_boto3_reads_it(caught.value), refused.hits)
    assert seen["s3turbo"] == seen["boto3"]
    assert seen["boto3"][1] == (2 if retried else 1)
    assert ("reached max retries" in seen["boto3"][0][0]) == retried


def test_each_client_has_a_retry_quota_of_its_own_as_in_boto3(s3s_fs):
    """botocore gives each client a retry quota (500; a retry of a 500 answer takes 14). A
    client whose quota errors have spent retries no more, and says RetryQuotaReached; another
    client, even one with the same settings (the engine shares one SDK client and connection
    pool between such clients), still has the whole of its own."""
    bucket = s3s_fs.new_bucket()
    config = Config(retries={"mode": "standard", "total_max_attempts": 3})
    seen = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        failing = proxy.inject(Fault(method="PUT", answer_error=(500, "InternalError"), times=None))
        for name in ("s3turbo", "boto3"):
            make = s3s_fs.s3turbo_client if name == "s3turbo" else s3s_fs.boto3_client
            spent, fresh = (make(endpoint_url=proxy.endpoint_url, config=config) for _ in "ab")
            outcomes = []
            # 17 calls of 2 retries leave 24 of 500; the 18th gets 1 retry, the 19th none.
            for client in [spent] * 19 + [fresh]:
                failing.hits = 0
                with pytest.raises(ClientError) as caught:
                    client.upload_fileobj(io.BytesIO(b"data"), bucket, "k")
                metadata = caught.value.response["ResponseMetadata"]
                outcomes.append(
                    (
                        failing.hits,
                        metadata.get("RetryQuotaReached"),
                        error_as_boto3_reads_it(caught.value),
                    )
                )
            seen[name] = outcomes
    assert seen["s3turbo"] == seen["boto3"]
    assert [(hits, reached) for hits, reached, _ in seen["boto3"][16:]] == [
        (3, None),
        (2, True),
        (1, True),
        (3, None),
    ]


@pytest.mark.parametrize("mode", ["standard", "legacy"])
@pytest.mark.parametrize("code", ["InternalError", "AccessDenied"])
def test_an_error_in_a_200_answer_is_a_500_as_in_boto3(s3s_fs, mode, code):
    """S3 can answer 200 with an error in the body: botocore makes it a 500, and retries it
    in every mode, whatever its code (the SDK retries only codes it knows). Both clients send
    the same requests and report the same error, status 500 included."""
    bucket = s3s_fs.new_bucket()
    config = Config(retries={"mode": mode, "total_max_attempts": 2})
    seen = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        erring = proxy.inject(Fault(method="PUT", answer_error=(200, code), times=None))
        for name, client in s3s_fs.clients_through(proxy, config).items():
            erring.hits = 0
            with pytest.raises(ClientError) as caught:
                client.upload_fileobj(io.BytesIO(b"data"), bucket, "k")
            status = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
            seen[name] = (error_as_boto3_reads_it(caught.value), status, erring.hits)
    assert seen["s3turbo"] == seen["boto3"]
    assert seen["boto3"][1:] == (500, 2)
    assert "(reached max retries: 1)" in seen["boto3"][0][0]


CUT_SHORT = {
    "CreateMultipartUpload 200": dict(method="POST", target_contains="uploads"),
    "PutObject 403": dict(method="PUT", answer_error=(403, "AccessDenied")),
    "PutObject 503": dict(method="PUT", answer_error=(503, "SlowDown")),
    "PutObject 200 with an error": dict(method="PUT", answer_error=(200, "InternalError")),
}


@pytest.mark.parametrize("mode", ["standard", "legacy"])
@pytest.mark.parametrize("answer", CUT_SHORT)
def test_an_answer_cut_short_reads_as_boto3_reads_it(s3s_fs, tmp_path, mode, answer):
    """An answer whose body breaks off is, to botocore, S3's answer with what came as its body
    (urllib3 does not hold a body to its Content-Length): an unreadable 200 is a 500, retried;
    other errors are retried by their status alone (a 403 is not). The SDK had retried them all
    and raised EndpointConnectionError."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 6 * MIB)
    config = Config(retries={"mode": mode, "total_max_attempts": 2})
    seen = {}
    multipart = answer.startswith("CreateMultipartUpload")
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        cut = proxy.inject(Fault(reset_response_after=20, times=None, **CUT_SHORT[answer]))
        for name, client in s3s_fs.clients_through(proxy, config).items():
            cut.hits = 0
            with pytest.raises(ClientError) as caught:
                with open(source, "rb") as body:
                    client.upload_fileobj(
                        body if multipart else io.BytesIO(b"data"), bucket, "k", Config=MULTIPART
                    )
            seen[name] = (error_as_boto3_reads_it(caught.value), cut.hits)
    assert seen["s3turbo"] == seen["boto3"]
    assert seen["boto3"][1] == (1 if answer == "PutObject 403" else 2)


BROKEN_ERROR_ANSWERS = {
    "chunked, cut short": (
        dict(answer_chunked=True, reset_response_after=20),
        ConnectionClosedError,
    ),
    "stalled": (dict(stall_response_after=20), ReadTimeoutError),
}


@pytest.mark.parametrize("mode", ["standard", "legacy"])
@pytest.mark.parametrize("broken", BROKEN_ERROR_ANSWERS)
def test_an_error_answer_that_breaks_is_retried_as_in_boto3(s3s_fs, mode, broken):
    """An error answer whose chunked body breaks off (a closed connection to urllib3) or whose
    body stops coming (a read timeout) is not S3's error but a broken exchange, retried in every
    mode (the legacy mode's rules must not forbid it): both clients try twice and raise
    botocore's error for it."""
    bucket = s3s_fs.new_bucket()
    config = Config(retries={"mode": mode, "total_max_attempts": 2}, read_timeout=0.3)
    fault, raised = BROKEN_ERROR_ANSWERS[broken]
    seen = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        broken_answer = proxy.inject(
            Fault(method="PUT", answer_error=(403, "AccessDenied"), times=None, **fault)
        )
        for name, client in s3s_fs.clients_through(proxy, config).items():
            broken_answer.hits = 0
            with pytest.raises(raised):
                client.upload_fileobj(io.BytesIO(b"data"), bucket, "k")
            seen[name] = broken_answer.hits
    assert seen == {"boto3": 2, "s3turbo": 2}


@pytest.mark.parametrize("call", ["upload_fileobj", "download_fileobj"])
def test_redirect_is_one_of_the_attempts_as_in_boto3(s3s_fs, call):
    """A request redirected to its bucket's region that then meets 503 SlowDown: botocore
    counts the redirect among the attempts (3 requests in all here), and so does the engine."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"data")
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 3}, s3={"addressing_style": "path"}
    )
    seen = {}
    for name in ("s3turbo", "boto3"):
        with FaultProxy(s3s_fs.endpoint_url) as proxy:
            wrong_region = Fault(
                header_contains=("authorization", "/us-east-1/s3/"),
                answer_error=(301, "PermanentRedirect"),
                answer_region="eu-west-2",
                times=None,
            )
            overloaded = Fault(
                header_contains=("authorization", "/eu-west-2/s3/"),
                answer_error=(503, "SlowDown"),
                times=None,
            )
            proxy.inject(wrong_region)
            proxy.inject(overloaded)
            client = s3s_fs.clients_through(proxy, config)[name]
            with pytest.raises(ClientError) as caught:
                if call == "upload_fileobj":
                    client.upload_fileobj(io.BytesIO(b"data"), bucket, "k")
                else:
                    client.download_fileobj(bucket, "k", io.BytesIO())
            seen[name] = (error_as_boto3_reads_it(caught.value), wrong_region.hits, overloaded.hits)
    assert seen["s3turbo"] == seen["boto3"]
    assert seen["boto3"][1:] == (1, 2)


STALLED_ANSWERS = {
    # (the fault, what both clients do then)
    "CreateMultipartUpload's": (
        Fault(method="POST", target_contains="uploads", stall_response_after=20),
        "stored",
    ),
    "CompleteMultipartUpload's": (
        Fault(method="POST", target_contains="uploadId", stall_response_after=20),
        "AccessDenied",  # s3s-fs refuses the second Complete of a completed upload
    ),
    "AbortMultipartUpload's error": (
        Fault(method="DELETE", answer_error=(503, "SlowDown"), stall_response_after=20, times=None),
        "AccessDenied",  # the refused part's error, after the abort gave up
    ),
}


@pytest.mark.parametrize("stalled", STALLED_ANSWERS)
def test_an_answer_whose_body_stops_after_its_head_is_a_read_timeout_as_in_boto3(
    s3s_fs, tmp_path, stalled
):
    """An answer whose head came and whose body then stops coming, with the connection left
    open, ends after the read timeout as botocore's socket timeout ends it, and is tried again:
    the SDK's client bounds no wait for a body's bytes, so the engine waited for ever (for
    CreateMultipartUpload's and CompleteMultipartUpload's answers, and any error answer)."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", MULTIPART_SIZE)
    config = Config(read_timeout=0.5, retries={"mode": "standard", "total_max_attempts": 2})
    fault, outcome = STALLED_ANSWERS[stalled]
    seen = {}
    for name in ("boto3", "s3turbo"):
        with FaultProxy(s3s_fs.endpoint_url) as proxy:
            proxy.inject(dataclasses.replace(fault))
            if stalled == "AbortMultipartUpload's error":
                refused = Fault(
                    method="PUT", target_contains="partNumber=2", answer_error=(403, "AccessDenied")
                )
                proxy.inject(dataclasses.replace(refused, times=None))
            client = s3s_fs.clients_through(proxy, config)[name]
            ended = threading.Event()
            result: list[str] = []

            def upload(client=client, key=name, result=result, ended=ended):
                try:
                    client.upload_file(str(source), bucket, key, Config=MULTIPART)
                    result.append("stored")
                except S3UploadFailedError as error:
                    result.append(error.__context__.response["Error"]["Code"])
                finally:
                    ended.set()

            started = time.monotonic()
            threading.Thread(target=upload, daemon=True).start()
            assert ended.wait(30), f"{name} still waits"
            # (How many parts went out before a refusal depends on timing.)
            methods = [request.method for request in proxy.requests]
            seen[name] = (result, methods.count("POST"), methods.count("DELETE"))
            assert time.monotonic() - started < 10
    assert seen["s3turbo"] == seen["boto3"]
    assert seen["boto3"][0] == [outcome]
