"""Bad input (issue #6, parts 5 and 6).

Every argument of the transfer methods and of generate_presigned_url is given None, the wrong
type or an invalid value, and the same call goes through boto3 and through s3turbo (its client,
and a boto3 client made after s3turbo.patch()) against the same real server. s3turbo must raise
what boto3 raises (the same type; the same code for a ClientError), or, where boto3 crashes with
an unrelated error, a clear TypeError or ValueError (or botocore's ParamValidationError, the
error botocore itself gives for a parameter of the wrong type). Each call finishes well within a
second, never panics, and leaves behind what boto3 leaves: no temporary file, no partial
destination, no multipart upload.

Then property-based checks (hypothesis) over object keys and ExtraArgs, and S3's part limits.
"""

from __future__ import annotations

import datetime
import io
import os
import string
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
    ParamValidationError,
    UnknownClientMethodError,
)
from helpers import MIB, fetch, run_on_thread
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import s3turbo
import s3turbo._patch
import s3turbo._presign

# Every call here takes milliseconds; a second means a hang, a retry storm or a large read.
CALL_LIMIT = 1.0
# How long a call may run before it counts as hung (boto3 waits forever on some input).
HANG_AFTER = 5.0
# What s3turbo raises where boto3 crashes with an unrelated error.
CLEAR = (TypeError, ValueError, ParamValidationError)

MULTIPART = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
EXISTING_BODY = b"an object to download"


# --- running a call ---------------------------------------------------------------------------


@dataclass
class Outcome:
    error: BaseException | None
    seconds: float

    @property
    def kind(self) -> str:
        if self.error is None:
            return "ok"
        return f"{type(self.error).__module__}.{type(self.error).__qualname__}"

    @property
    def code(self) -> str | None:
        """The S3 error code of a ClientError, or of the one an S3UploadFailedError wraps."""
        error = self.error
        if isinstance(error, S3UploadFailedError):
            error = error.__cause__ or error.__context__
        if isinstance(error, ClientError):
            return error.response.get("Error", {}).get("Code")
        return None


def run_call(fn: Callable[[], Any]) -> Outcome | None:
    """Runs `fn` on a thread; its outcome, or None if it is still running after HANG_AFTER."""
    ran = run_on_thread(fn, HANG_AFTER)
    return None if ran is None else Outcome(*ran)


def assert_no_panic(outcome: Outcome) -> None:
    error = outcome.error
    assert type(error).__name__ != "PanicException", repr(error)
    assert "panicked" not in str(error), repr(error)


def assert_agrees(ours: Outcome | None, theirs: Outcome | None, crash: tuple = ()) -> None:
    """s3turbo's outcome against boto3's: the same, or a clear error where boto3 crashes with
    one of `crash` (or hangs)."""
    assert ours is not None, "s3turbo hung"
    assert_no_panic(ours)
    assert ours.seconds < CALL_LIMIT, f"s3turbo took {ours.seconds:.2f} s"
    if theirs is None or (crash and isinstance(theirs.error, crash)):
        assert isinstance(ours.error, CLEAR), f"{ours.kind}: {ours.error}"
        return
    assert ours.kind == theirs.kind, f"s3turbo: {ours.error!r}; boto3: {theirs.error!r}"
    assert ours.code == theirs.code


# --- the servers, clients and local files the matrix works on --------------------------------


@dataclass
class Env:
    name: str
    boto3: Any
    clients: dict[str, Any]  # s3turbo's client, and a boto3 client made while patched
    bucket: str
    other_bucket: str
    root: Path


@pytest.fixture(scope="module", params=["s3s-fs", "moto"])
def env(request, tmp_path_factory) -> Env:
    server = request.getfixturevalue("s3s_fs" if request.param == "s3s-fs" else "moto")
    s3turbo.patch()
    try:
        patched = server.boto3_client()
    finally:
        s3turbo.unpatch()
    # It keeps the engine's methods after unpatch(): its class was made while patched.
    assert type(patched).upload_file is s3turbo._patch.upload_file
    boto = server.boto3_client()
    bucket, other_bucket = server.new_bucket(), server.new_bucket()
    boto.put_object(Bucket=bucket, Key="existing", Body=EXISTING_BODY)
    return Env(
        name=server.name,
        boto3=boto,
        clients={"s3turbo": server.s3turbo_client(), "patched": patched},
        bucket=bucket,
        other_bucket=other_bucket,
        root=tmp_path_factory.mktemp(f"bad-input-{server.name}"),
    )


class Run:
    """What one call works on: a fresh directory (a small file, a text file, an empty
    subdirectory) and fresh keys under their own prefix, so that what the call left behind can
    be seen and compared with what boto3's call left behind."""

    def __init__(self, env: Env, label: str):
        # The same length for every client: keys of a given size have the same name after it.
        token = f"{label[:2]}-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.bucket = env.bucket
        self.existing = "existing"
        self.prefix = f"{token}/"
        self.dir = env.root / token
        self.subdir.mkdir(parents=True)
        self.source.write_bytes(b"x" * 100)
        self.text.write_text("some text\n")
        self.initial = self.local_files()

    source = property(lambda self: self.dir / "source.bin")
    text = property(lambda self: self.dir / "text.txt")
    subdir = property(lambda self: self.dir / "subdir")
    dest = property(lambda self: self.dir / "out.bin")
    key = property(lambda self: self.prefix + "k")

    def long_key(self, size: int, char: str = "k") -> str:
        """A key of exactly `size` bytes of UTF-8 under this run's prefix."""
        room = size - len(self.prefix.encode())
        width = len(char.encode())
        return self.prefix + char * (room // width) + "k" * (room % width)

    def local_files(self) -> set[str]:
        return {str(p.relative_to(self.dir)) for p in self.dir.rglob("*")}

    def left_behind(self) -> dict[str, list[str]]:
        boto = self.env.boto3
        listed = boto.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)
        found = {
            "files": sorted(self.local_files() - self.initial),
            "objects": [o["Key"][len(self.prefix) :] for o in listed.get("Contents", [])],
        }
        if self.env.name == "moto":  # s3s-fs has no ListMultipartUploads
            uploads = boto.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
            found["uploads"] = [u["Key"] for u in uploads.get("Uploads", [])]
        return found


# --- file objects that misbehave --------------------------------------------------------------


class TextAfterBytes:
    """A whole part of bytes, then str: a text stream discovered only after a part was read."""

    def __init__(self):
        self.reads = 0

    def read(self, size=-1):
        self.reads += 1
        return b"x" * (size if size > 0 else MIB) if self.reads == 1 else "text"


class FailsAfterOnePart:
    def __init__(self):
        self.reads = 0

    def read(self, size=-1):
        self.reads += 1
        if self.reads > 1:
            raise OSError("the disk went away")
        return b"x" * (size if size > 0 else MIB)


class NonBlocking:
    """A non-blocking stream with nothing to read yet: read() returns None."""

    def read(self, size=-1):
        return None


def closed_bytesio() -> io.BytesIO:
    stream = io.BytesIO(b"data")
    stream.close()
    return stream


def with_open(path: Path, mode: str, call: Callable[[Any], Any]) -> None:
    with open(path, mode) as file:
        call(file)


# --- the matrix -------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    call: Callable[[Any, Run], Any]
    # What both raise (None: both succeed); per server where the servers differ.
    raises: type | None | dict = None
    # boto3 fails with one of these unrelated errors instead; s3turbo must raise `raises`.
    crash: tuple = ()

    def expected(self, server: str) -> type | None:
        return self.raises[server] if isinstance(self.raises, dict) else self.raises


def bytes_reader():
    return io.BytesIO(b"some bytes")


def threshold_zero() -> TransferConfig:
    """A multipart_threshold of 0, which TransferConfig refuses but not once made: everything,
    an empty stream too, is a multipart upload."""
    config = TransferConfig()
    config.multipart_threshold = 0
    return config


def upload(client, r: Run, **kwargs):
    return client.upload_file(str(r.source), r.bucket, r.key, **kwargs)


def download(client, r: Run, **kwargs):
    return client.download_file(r.bucket, r.existing, str(r.dest), **kwargs)


def upload_obj(client, r: Run, **kwargs):
    return client.upload_fileobj(bytes_reader(), r.bucket, r.key, **kwargs)


def download_obj(client, r: Run, **kwargs):
    return client.download_fileobj(r.bucket, r.existing, io.BytesIO(), **kwargs)


NO_BUCKET = "no-such-bucket-s3turbo"
PAIRS = [("ContentType", "text/plain")]
# An ExtraArgs Metadata value that is not a str: botocore's ASCII check runs before its type
# check and crashes on it (AttributeError: 'int' object has no attribute 'encode').
METADATA_CRASH = (AttributeError,)
# A Config of another class: boto3 crashes with AttributeError ('str' object has no attribute
# 'preferred_transfer_client'); s3turbo says TypeError "Config must be a ... TransferConfig".
CONFIG_CRASH = (AttributeError,)
# Upload ExtraArgs that are not a dict: boto3 crashes with AttributeError ('str' object has no
# attribute 'copy'); s3turbo says "ExtraArgs must be a dict" (ValueError for an iterable, as
# s3transfer's key check gives for downloads, TypeError otherwise).
EXTRA_ARGS_CRASH = (AttributeError,)
CASES = [
    # upload_file: Filename
    Case(
        "upload_file-Filename-None", lambda c, r: c.upload_file(None, r.bucket, r.key), ValueError
    ),
    Case("upload_file-Filename-int", lambda c, r: c.upload_file(42, r.bucket, r.key), ValueError),
    Case(
        "upload_file-Filename-bytes",
        lambda c, r: c.upload_file(str(r.source).encode(), r.bucket, r.key),
        ValueError,
    ),
    Case(
        "upload_file-Filename-empty",
        lambda c, r: c.upload_file("", r.bucket, r.key),
        FileNotFoundError,
    ),
    Case(
        "upload_file-Filename-directory",
        lambda c, r: c.upload_file(str(r.subdir), r.bucket, r.key),
        IsADirectoryError,
    ),
    Case(
        "upload_file-Filename-missing",
        lambda c, r: c.upload_file(str(r.dir / "missing.bin"), r.bucket, r.key),
        FileNotFoundError,
    ),
    # upload_file: Bucket. boto3's TypeError for a non-str Bucket comes from a regex
    # ("expected string or bytes-like object"); s3turbo's says "Bucket must be a str".
    Case(
        "upload_file-Bucket-None", lambda c, r: c.upload_file(str(r.source), None, r.key), TypeError
    ),
    Case("upload_file-Bucket-int", lambda c, r: c.upload_file(str(r.source), 42, r.key), TypeError),
    Case(
        "upload_file-Bucket-empty",
        lambda c, r: c.upload_file(str(r.source), "", r.key),
        ParamValidationError,
    ),
    Case(
        "upload_file-Bucket-invalid",
        lambda c, r: c.upload_file(str(r.source), "bad/bucket name", r.key),
        ParamValidationError,
    ),
    # s3s-fs creates a missing bucket on PutObject; moto refuses with NoSuchBucket.
    Case(
        "upload_file-Bucket-missing",
        lambda c, r: c.upload_file(str(r.source), NO_BUCKET, r.key),
        {"s3s-fs": None, "moto": S3UploadFailedError},
    ),
    # upload_file: Key. Over 1,024 bytes: s3s-fs says KeyTooLongError; moto takes any length.
    Case(
        "upload_file-Key-None",
        lambda c, r: c.upload_file(str(r.source), r.bucket, None),
        ParamValidationError,
    ),
    Case(
        "upload_file-Key-int",
        lambda c, r: c.upload_file(str(r.source), r.bucket, 42),
        ParamValidationError,
    ),
    Case(
        "upload_file-Key-empty",
        lambda c, r: c.upload_file(str(r.source), r.bucket, ""),
        ParamValidationError,
    ),
    Case(
        "upload_file-Key-1025-bytes",
        lambda c, r: c.upload_file(str(r.source), r.bucket, r.long_key(1025)),
        {"s3s-fs": S3UploadFailedError, "moto": None},
    ),
    Case(
        "upload_file-Key-1026-bytes-of-two-byte-chars",
        lambda c, r: c.upload_file(str(r.source), r.bucket, r.long_key(1026, "é")),
        {"s3s-fs": S3UploadFailedError, "moto": None},
    ),
    # upload_file: ExtraArgs
    Case(
        "upload_file-ExtraArgs-str",
        lambda c, r: upload(c, r, ExtraArgs="x"),
        ValueError,
        EXTRA_ARGS_CRASH,
    ),
    Case(
        "upload_file-ExtraArgs-int",
        lambda c, r: upload(c, r, ExtraArgs=42),
        TypeError,
        EXTRA_ARGS_CRASH,
    ),
    # A list of pairs: s3transfer refuses "Invalid extra_args key '('ContentType', ...)'".
    Case("upload_file-ExtraArgs-pairs", lambda c, r: upload(c, r, ExtraArgs=PAIRS), ValueError),
    Case(
        "upload_file-ExtraArgs-unknown-key",
        lambda c, r: upload(c, r, ExtraArgs={"Colour": "blue"}),
        ValueError,
    ),
    Case(
        "upload_file-Metadata-str",
        lambda c, r: upload(c, r, ExtraArgs={"Metadata": "x"}),
        ParamValidationError,
    ),
    Case(
        "upload_file-Metadata-int-value",
        lambda c, r: upload(c, r, ExtraArgs={"Metadata": {"a": 1}}),
        ParamValidationError,
        METADATA_CRASH,
    ),
    Case(
        "upload_file-Metadata-int-key",
        lambda c, r: upload(c, r, ExtraArgs={"Metadata": {1: "a"}}),
        ParamValidationError,
        METADATA_CRASH,
    ),
    Case(
        "upload_file-Metadata-non-ascii",
        lambda c, r: upload(c, r, ExtraArgs={"Metadata": {"a": "é"}}),
        ParamValidationError,
    ),
    Case(
        "upload_file-ContentType-int",
        lambda c, r: upload(c, r, ExtraArgs={"ContentType": 5}),
        ParamValidationError,
    ),
    Case(
        "upload_file-ContentType-None",
        lambda c, r: upload(c, r, ExtraArgs={"ContentType": None}),
        ParamValidationError,
    ),
    # A line break in a header: http.client refuses to send it ("Invalid header value").
    Case(
        "upload_file-ContentType-newline",
        lambda c, r: upload(c, r, ExtraArgs={"ContentType": "text/plain\nX-Evil: 1"}),
        HTTPClientError,
    ),
    Case(
        "upload_fileobj-Metadata-newline",
        lambda c, r: upload_obj(c, r, ExtraArgs={"Metadata": {"a": "1\r\nX-Evil: 1"}}),
        HTTPClientError,
    ),
    Case(
        "download_file-ExpectedBucketOwner-newline",
        lambda c, r: download(c, r, ExtraArgs={"ExpectedBucketOwner": "1\r\nX-Evil: 1"}),
        HTTPClientError,
    ),
    # Other control characters boto3 sends, and the server judges (s3s-fs refuses \x01).
    Case(
        "download_file-ExpectedBucketOwner-control",
        lambda c, r: download(c, r, ExtraArgs={"ExpectedBucketOwner": "1\x012"}),
        {"s3s-fs": ClientError, "moto": None},
    ),
    Case(
        "download_fileobj-ExpectedBucketOwner-tab",
        lambda c, r: download_obj(c, r, ExtraArgs={"ExpectedBucketOwner": "1\t2"}),
        None,
    ),
    # The file is checked first.
    Case(
        "upload_file-missing-file-ContentType-newline",
        lambda c, r: c.upload_file(
            str(r.dir / "missing"), r.bucket, r.key, ExtraArgs={"ContentType": "a\nb"}
        ),
        FileNotFoundError,
    ),
    Case(
        "upload_file-Expires-str",
        lambda c, r: upload(c, r, ExtraArgs={"Expires": "soon"}),
        ParamValidationError,
    ),
    Case(
        "upload_file-Tagging-int",
        lambda c, r: upload(c, r, ExtraArgs={"Tagging": 3}),
        ParamValidationError,
    ),
    Case(
        "upload_file-ChecksumAlgorithm-unknown",
        lambda c, r: upload(c, r, ExtraArgs={"ChecksumAlgorithm": "MD7"}),
        FlexibleChecksumError,
    ),
    # upload_file: Callback. The one-PUT upload is stored by both before Callback is called.
    Case("upload_file-Callback-str", lambda c, r: upload(c, r, Callback="x"), TypeError),
    Case("upload_file-Config-str", lambda c, r: upload(c, r, Config="x"), TypeError, CONFIG_CRASH),
    Case(
        "upload_file-Config-botocore-Config",
        lambda c, r: upload(c, r, Config=Config()),
        TypeError,
        CONFIG_CRASH,
    ),
    # download_file
    Case(
        "download_file-Bucket-None",
        lambda c, r: c.download_file(None, r.existing, str(r.dest)),
        TypeError,
    ),
    Case(
        "download_file-Bucket-empty",
        lambda c, r: c.download_file("", r.existing, str(r.dest)),
        ParamValidationError,
    ),
    Case(
        "download_file-Bucket-invalid",
        lambda c, r: c.download_file("bad/bucket name", r.existing, str(r.dest)),
        ParamValidationError,
    ),
    Case(
        "download_file-Key-None",
        lambda c, r: c.download_file(r.bucket, None, str(r.dest)),
        ParamValidationError,
    ),
    Case(
        "download_file-Key-empty",
        lambda c, r: c.download_file(r.bucket, "", str(r.dest)),
        ParamValidationError,
    ),
    # A HEAD for a key over 1,024 bytes: 400 from s3s-fs, 404 from moto.
    Case(
        "download_file-Key-1025-bytes",
        lambda c, r: c.download_file(r.bucket, r.long_key(1025), str(r.dest)),
        ClientError,
    ),
    Case(
        "download_file-Filename-None",
        lambda c, r: c.download_file(r.bucket, r.existing, None),
        ValueError,
    ),
    Case(
        "download_file-Filename-int",
        lambda c, r: c.download_file(r.bucket, r.existing, 42),
        ValueError,
    ),
    Case(
        "download_file-Filename-directory",
        lambda c, r: c.download_file(r.bucket, r.existing, str(r.subdir)),
        IsADirectoryError,
    ),
    Case(
        "download_file-Filename-missing-directory",
        lambda c, r: c.download_file(r.bucket, r.existing, str(r.dir / "nowhere" / "out.bin")),
        FileNotFoundError,
    ),
    Case(
        "download_file-Filename-under-a-file",
        lambda c, r: c.download_file(r.bucket, r.existing, str(r.source / "out.bin")),
        NotADirectoryError,
    ),
    # boto3 iterates a str ExtraArgs for names: "Invalid extra_args key 'x'".
    Case("download_file-ExtraArgs-str", lambda c, r: download(c, r, ExtraArgs="x"), ValueError),
    Case("download_file-ExtraArgs-int", lambda c, r: download(c, r, ExtraArgs=42), TypeError),
    Case(
        "download_file-ExtraArgs-pairs",
        lambda c, r: download(c, r, ExtraArgs=[("VersionId", "v")]),
        ValueError,
    ),
    Case(
        "download_file-ExtraArgs-unknown-key",
        lambda c, r: download(c, r, ExtraArgs={"Range": "bytes=0-1"}),
        ValueError,
    ),
    Case(
        "download_file-VersionId-int",
        lambda c, r: download(c, r, ExtraArgs={"VersionId": 3}),
        ParamValidationError,
    ),
    Case(
        "download_file-Callback-str",
        lambda c, r: download(c, r, Callback="x"),
        TypeError,
    ),
    Case(
        "download_file-Config-str", lambda c, r: download(c, r, Config="x"), TypeError, CONFIG_CRASH
    ),
    # upload_fileobj
    Case(
        "upload_fileobj-Fileobj-None",
        lambda c, r: c.upload_fileobj(None, r.bucket, r.key),
        ValueError,
    ),
    Case(
        "upload_fileobj-Fileobj-bytes",
        lambda c, r: c.upload_fileobj(b"data", r.bucket, r.key),
        ValueError,
    ),
    # A text stream: boto3 fails in its reader ("a bytes-like object is required"), or waits
    # forever in older versions; s3turbo refuses it before any request.
    Case(
        "upload_fileobj-Fileobj-StringIO",
        lambda c, r: c.upload_fileobj(io.StringIO("text"), r.bucket, r.key),
        TypeError,
    ),
    Case(
        "upload_fileobj-Fileobj-text-file",
        lambda c, r: with_open(r.text, "r", lambda f: c.upload_fileobj(f, r.bucket, r.key)),
        TypeError,
    ),
    # Opened for writing: s3transfer's RuntimeError "Input ... is not supported."
    Case(
        "upload_fileobj-Fileobj-write-only",
        lambda c, r: with_open(
            r.dir / "w.bin", "wb", lambda f: c.upload_fileobj(f, r.bucket, r.key)
        ),
        RuntimeError,
    ),
    Case(
        "upload_fileobj-Fileobj-closed",
        lambda c, r: c.upload_fileobj(closed_bytesio(), r.bucket, r.key),
        ValueError,
    ),
    # read() returning None: boto3 crashes with TypeError ("object of type 'NoneType' has no
    # len()"); s3turbo says ValueError "needs a blocking file object".
    Case(
        "upload_fileobj-Fileobj-non-blocking",
        lambda c, r: c.upload_fileobj(NonBlocking(), r.bucket, r.key),
        ValueError,
        (TypeError,),
    ),
    # Multipart: the failure comes after a part was read; the upload must be aborted.
    Case(
        "upload_fileobj-Fileobj-str-after-a-part",
        lambda c, r: c.upload_fileobj(TextAfterBytes(), r.bucket, r.key, Config=MULTIPART),
        TypeError,
    ),
    Case(
        "upload_fileobj-Fileobj-read-fails-after-a-part",
        lambda c, r: c.upload_fileobj(FailsAfterOnePart(), r.bucket, r.key, Config=MULTIPART),
        OSError,
    ),
    Case(
        "upload_fileobj-Bucket-None",
        lambda c, r: c.upload_fileobj(bytes_reader(), None, r.key),
        TypeError,
    ),
    Case(
        "upload_fileobj-Key-empty",
        lambda c, r: c.upload_fileobj(bytes_reader(), r.bucket, ""),
        ParamValidationError,
    ),
    Case(
        "upload_fileobj-Key-1025-bytes",
        lambda c, r: c.upload_fileobj(bytes_reader(), r.bucket, r.long_key(1025)),
        {"s3s-fs": ClientError, "moto": None},
    ),
    Case(
        "upload_fileobj-ExtraArgs-str",
        lambda c, r: upload_obj(c, r, ExtraArgs="x"),
        ValueError,
        EXTRA_ARGS_CRASH,
    ),
    Case(
        "upload_fileobj-Metadata-int-value",
        lambda c, r: upload_obj(c, r, ExtraArgs={"Metadata": {"a": 1}}),
        ParamValidationError,
        METADATA_CRASH,
    ),
    Case("upload_fileobj-Callback-int", lambda c, r: upload_obj(c, r, Callback=42), TypeError),
    # A multipart upload of no parts, which S3 refuses (the engine said it was cancelled).
    Case(
        "upload_fileobj-empty-at-threshold-0",
        lambda c, r: c.upload_fileobj(io.BytesIO(), r.bucket, r.key, Config=threshold_zero()),
        ClientError,
    ),
    Case(
        "upload_fileobj-Config-str",
        lambda c, r: upload_obj(c, r, Config="x"),
        TypeError,
        CONFIG_CRASH,
    ),
    # download_fileobj
    Case(
        "download_fileobj-Fileobj-None",
        lambda c, r: c.download_fileobj(r.bucket, r.existing, None),
        ValueError,
    ),
    Case(
        "download_fileobj-Fileobj-StringIO",
        lambda c, r: c.download_fileobj(r.bucket, r.existing, io.StringIO()),
        TypeError,
    ),
    Case(
        "download_fileobj-Fileobj-text-file",
        lambda c, r: with_open(
            r.dir / "t.txt", "w", lambda f: c.download_fileobj(r.bucket, r.existing, f)
        ),
        TypeError,
    ),
    Case(
        "download_fileobj-Fileobj-read-only",
        lambda c, r: with_open(
            r.source, "rb", lambda f: c.download_fileobj(r.bucket, r.existing, f)
        ),
        io.UnsupportedOperation,
    ),
    Case(
        "download_fileobj-Fileobj-closed",
        lambda c, r: c.download_fileobj(r.bucket, r.existing, closed_bytesio()),
        ValueError,
    ),
    Case(
        "download_fileobj-Bucket-None",
        lambda c, r: c.download_fileobj(None, r.existing, io.BytesIO()),
        TypeError,
    ),
    Case(
        "download_fileobj-Key-empty",
        lambda c, r: c.download_fileobj(r.bucket, "", io.BytesIO()),
        ParamValidationError,
    ),
    Case(
        "download_fileobj-Key-1025-bytes",
        lambda c, r: c.download_fileobj(r.bucket, r.long_key(1025), io.BytesIO()),
        ClientError,
    ),
    Case(
        "download_fileobj-ExtraArgs-str", lambda c, r: download_obj(c, r, ExtraArgs="x"), ValueError
    ),
    Case("download_fileobj-Callback-str", lambda c, r: download_obj(c, r, Callback="x"), TypeError),
    Case(
        "download_fileobj-Config-str",
        lambda c, r: download_obj(c, r, Config="x"),
        TypeError,
        CONFIG_CRASH,
    ),
]


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_bad_input_as_boto3(env, case):
    boto_run = Run(env, "boto3")
    theirs = run_call(lambda: case.call(env.boto3, boto_run))
    boto_left = boto_run.left_behind() if theirs is not None else None
    expected = case.expected(env.name)
    if theirs is not None and not isinstance(theirs.error, case.crash or ()):
        # The matrix states boto3's behaviour: a check on the test itself.
        assert (theirs.error is None) == (expected is None), repr(theirs.error)
        if expected is not None:
            assert isinstance(theirs.error, expected), repr(theirs.error)
    for label, client in env.clients.items():
        run = Run(env, label)
        ours = run_call(lambda client=client, run=run: case.call(client, run))
        assert_agrees(ours, theirs, case.crash)
        if expected is None:
            assert ours.error is None
        else:
            assert isinstance(ours.error, expected), f"{label}: {ours.error!r}"
        left = run.left_behind()
        assert not [name for name in left["files"] if ".s3turbo-" in name], left
        assert left.get("uploads", []) == [], left
        # A call that succeeded leaves what boto3's leaves; one that failed, nothing more than
        # boto3's failed call (less is fine: boto3 may have stored a one-PUT upload before its
        # Callback raised, where the engine cancelled it).
        reference = boto_left if boto_left is not None else {name: [] for name in left}
        if ours.error is None:
            assert left == reference, label
        for name, found in left.items():
            assert set(found) <= set(reference[name]), f"{label} left {name}: {found}"


TWO_THINGS_WRONG = {
    "bucket name and ContentType's type": {"Bucket": "Bad_Name!", "ExtraArgs": {"ContentType": 5}},
    "bucket name and Key's type": {"Bucket": "Bad_Name!", "Key": 7},
    "non-ASCII metadata and ContentType's type": {
        "ExtraArgs": {"ContentType": 5, "Metadata": {"a": "\u00e9"}}
    },
    "non-ASCII metadata and the bucket name": {
        "Bucket": "Bad_Name!",
        "ExtraArgs": {"Metadata": {"a": "\u00e9"}},
    },
}


@pytest.mark.parametrize("method", ["upload_file", "upload_fileobj"])
@pytest.mark.parametrize("wrong", TWO_THINGS_WRONG)
def test_of_two_things_wrong_the_one_boto3_names_is_named(moto, tmp_path, method, wrong):
    """botocore's handlers of before-parameter-build (ASCII-only metadata, then the bucket
    name) speak before the model's type check: the engine checked types first and named
    another of the two problems."""
    source = tmp_path / "source.bin"
    source.write_bytes(b"data")
    call = {"Bucket": "b", "Key": "k", **TWO_THINGS_WRONG[wrong]}
    messages = {}
    for name, client in (("boto3", moto.boto3_client()), ("s3turbo", moto.s3turbo_client())):
        with pytest.raises(ParamValidationError) as raised:
            if method == "upload_file":
                client.upload_file(str(source), **call)
            else:
                client.upload_fileobj(io.BytesIO(b"data"), **call)
        messages[name] = str(raised.value)
    assert messages["s3turbo"] == messages["boto3"]


# --- generate_presigned_url -------------------------------------------------------------------


@pytest.fixture(scope="module", params=[None, "s3v4"], ids=["SigV2", "SigV4"])
def presigners(s3s_fs, request) -> dict[str, Any]:
    """boto3 and s3turbo, both with botocore's default presigning (SigV2 on this client, set to
    us-east-1) or with SigV4. Not a patched client: see the next test."""
    config = Config(signature_version=request.param)
    return {
        "boto3": s3s_fs.boto3_client(config=config),
        "s3turbo": s3s_fs.s3turbo_client(config=config),
    }


def test_patched_client_presigns_with_the_engine(s3s_fs):
    s3turbo.patch()
    try:
        patched = s3s_fs.boto3_client()
    finally:
        s3turbo.unpatch()
    assert type(patched).upload_file is s3turbo._patch.upload_file
    assert type(patched).generate_presigned_url is s3turbo._patch.generate_presigned_url


GET = {"Bucket": "bkt", "Key": "k"}
PRESIGN_CASES = [
    ("ClientMethod-None", dict(ClientMethod=None, Params=GET), UnknownClientMethodError, ()),
    ("ClientMethod-int", dict(ClientMethod=42, Params=GET), UnknownClientMethodError, ()),
    (
        "ClientMethod-unknown",
        dict(ClientMethod="no_such_method", Params={}),
        UnknownClientMethodError,
        (),
    ),
    (
        "ClientMethod-operation-name",
        dict(ClientMethod="GetObject", Params=GET),
        UnknownClientMethodError,
        (),
    ),
    (
        "ClientMethod-transfer-method",
        dict(ClientMethod="upload_file", Params={}),
        UnknownClientMethodError,
        (),
    ),
    # boto3: AttributeError ('str' object has no attribute 'get'); s3turbo: TypeError.
    ("Params-str", dict(ClientMethod="get_object", Params="x"), TypeError, (AttributeError,)),
    ("Params-None", dict(ClientMethod="get_object", Params=None), ParamValidationError, ()),
    (
        "Params-unknown",
        dict(ClientMethod="get_object", Params={**GET, "Colour": "blue"}),
        ParamValidationError,
        (),
    ),
    # boto3's regex TypeError, passed on (the engine leaves such calls to boto3).
    (
        "Bucket-None",
        dict(ClientMethod="get_object", Params={"Bucket": None, "Key": "k"}),
        TypeError,
        (),
    ),
    (
        "Bucket-empty",
        dict(ClientMethod="get_object", Params={"Bucket": "", "Key": "k"}),
        ParamValidationError,
        (),
    ),
    (
        "Bucket-invalid",
        dict(ClientMethod="get_object", Params={"Bucket": "a/b", "Key": "k"}),
        ParamValidationError,
        (),
    ),
    (
        "Key-None",
        dict(ClientMethod="get_object", Params={"Bucket": "bkt", "Key": None}),
        ParamValidationError,
        (),
    ),
    (
        "Key-int",
        dict(ClientMethod="get_object", Params={"Bucket": "bkt", "Key": 42}),
        ParamValidationError,
        (),
    ),
    (
        "Key-empty",
        dict(ClientMethod="get_object", Params={"Bucket": "bkt", "Key": ""}),
        ParamValidationError,
        (),
    ),
    # Signed as any key is; S3 refuses it when the URL is used.
    (
        "Key-1025-bytes",
        dict(ClientMethod="get_object", Params={"Bucket": "bkt", "Key": "k" * 1025}),
        None,
        (),
    ),
    # boto3: AttributeError ('int' object has no attribute 'encode'); s3turbo: TypeError.
    (
        "Metadata-int-value",
        dict(ClientMethod="put_object", Params={**GET, "Metadata": {"a": 1}}),
        TypeError,
        (AttributeError,),
    ),
    (
        "Metadata-str",
        dict(ClientMethod="put_object", Params={**GET, "Metadata": "x"}),
        ParamValidationError,
        (),
    ),
    (
        "PartNumber-str",
        dict(ClientMethod="upload_part", Params={**GET, "UploadId": "u", "PartNumber": "1"}),
        ParamValidationError,
        (),
    ),
    # None means botocore's default expiry (3600 s), not "X-Amz-Expires=None".
    ("ExpiresIn-None", dict(ClientMethod="get_object", Params=GET, ExpiresIn=None), None, ()),
    # boto3: AttributeError ('int' object has no attribute 'upper'); s3turbo: TypeError.
    (
        "HttpMethod-int",
        dict(ClientMethod="get_object", Params=GET, HttpMethod=42),
        TypeError,
        (AttributeError,),
    ),
    # botocore signs the method upper-cased: the same URL as for "PUT".
    (
        "HttpMethod-lower-case",
        dict(ClientMethod="put_object", Params=GET, HttpMethod="put"),
        None,
        (),
    ),
]


@pytest.mark.parametrize(
    "kwargs, raises, crash",
    [pytest.param(*case[1:], id=case[0]) for case in PRESIGN_CASES],
)
def test_presign_bad_input_as_boto3(frozen_time, presigners, kwargs, raises, crash):
    urls = {}
    outcomes = {}
    for label, client in presigners.items():
        outcomes[label] = run_call(
            lambda client=client, label=label: urls.__setitem__(
                label, client.generate_presigned_url(**kwargs)
            )
        )
    theirs = outcomes.pop("boto3")
    if not isinstance(theirs.error, crash):
        assert (theirs.error is None) == (raises is None), repr(theirs.error)
    for label, ours in outcomes.items():
        assert_agrees(ours, theirs, crash)
        if raises is None:
            assert urls[label] == urls["boto3"], label
        else:
            assert isinstance(ours.error, raises), f"{label}: {ours.error!r}"


def test_presigned_header_with_a_run_of_spaces(s3s_fs, presigners):
    bucket = s3s_fs.new_bucket()
    content_type = "text/plain;  charset=utf-8"
    statuses = {}
    for label in ("boto3", "s3turbo"):
        url = presigners[label].generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": label, "ContentType": content_type}
        )
        statuses[label] = fetch(url, "PUT", b"body", {"Content-Type": content_type})[0]
    if statuses["boto3"] != 200:  # not the bug: the server or the test is wrong
        pytest.fail(f"boto3's presigned PUT was refused: {statuses}")
    assert statuses["s3turbo"] == 200


@pytest.mark.parametrize("content_type", ["a\tb", "a\x1fb", "\x1ca \x1d", "a\u00a0b", "a\u2003 b"])
def test_presigned_header_with_other_whitespace(frozen_time, presigners, content_type):
    """botocore makes a header's whitespace (what Python's str.split() splits on, the
    separators \\x1c-\\x1f included) one space in the signature: so does the engine."""
    params = {"Bucket": "bucket", "Key": "k", "ContentType": content_type}
    urls = [
        presigners[label].generate_presigned_url("put_object", Params=params)
        for label in ("boto3", "s3turbo")
    ]
    assert urls[0] == urls[1]


def test_tab_in_a_header_value_is_sent_as_boto3_sends_it(s3s_fs):
    """HTTP allows a tab in a header value; botocore (and S3) sign it as a space. s3s-fs
    checks signatures, so a request signed otherwise is refused."""
    bucket = s3s_fs.new_bucket()
    extra = {"CacheControl": "a\tb", "Metadata": {"m": "x\ty"}}
    s3s_fs.boto3_client().upload_fileobj(io.BytesIO(b"x"), bucket, "boto3", ExtraArgs=extra)
    s3s_fs.s3turbo_client().upload_fileobj(io.BytesIO(b"x"), bucket, "k", ExtraArgs=extra)
    heads = [s3s_fs.boto3_client().head_object(Bucket=bucket, Key=k) for k in ("boto3", "k")]
    assert heads[1]["CacheControl"] == heads[0]["CacheControl"]
    assert heads[1]["Metadata"] == heads[0]["Metadata"]


# --- property-based: keys and ExtraArgs -------------------------------------------------------

# Characters that need care in a URL, a signature or a header.
AWKWARD = list(" %+?#&=;:@$,!*'()[]{}<>\"\\^`|~") + ["😀", "🚀", "é", "中", "\u00a0", "\u2028"]
KEY_CHARS = st.one_of(
    st.sampled_from(AWKWARD), st.characters(codec="utf-8", exclude_categories=("Cc",))
)
# Printable ASCII: what botocore and HTTP take in a header value.
HEADER_TEXT = st.text(alphabet=[chr(c) for c in range(0x20, 0x7F)], max_size=40)
TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=12)
TAG_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " +-=._:/@", max_size=12)


def keys(server: str) -> st.SearchStrategy[str]:
    """Keys of '/'-separated segments. s3s-fs stores a key as a path with a metadata file named
    after it: it needs short, non-empty segments other than '.' and '..', and keys of at most
    about 150 bytes (longer ones fail with InternalError, which is retried)."""
    if server == "s3s-fs":
        chars = KEY_CHARS.filter(lambda c: c != "/")
        segment = st.text(chars, min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
        return (
            st.lists(segment, min_size=1, max_size=4)
            .map("/".join)
            .filter(lambda key: len(key.encode()) <= 120)
        )
    segment = st.text(KEY_CHARS, max_size=40)
    return st.lists(segment, min_size=1, max_size=8).map("/".join).filter(bool)


EXTRA_ARGS = st.fixed_dictionaries(
    {},
    optional={
        "Metadata": st.dictionaries(TOKEN, HEADER_TEXT, max_size=4),
        "ContentType": HEADER_TEXT,
        "CacheControl": HEADER_TEXT,
        "ContentDisposition": HEADER_TEXT,
        "ContentLanguage": TOKEN,
        "ContentEncoding": st.sampled_from(["gzip", "identity", "x-custom"]),
        "Tagging": st.dictionaries(TOKEN, TAG_TEXT, max_size=3).map(urllib.parse.urlencode),
    },
)
HEAD_FIELDS = (
    "ContentLength",
    "ETag",
    "Metadata",
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentLanguage",
    "ContentEncoding",
)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_any_key_and_extra_args_round_trip(env, data):
    """Upload through s3turbo and through boto3 (same key, two buckets): both accept or both
    refuse; what s3turbo stored reads back through boto3 with the body and headers of boto3's
    object, and downloads back through s3turbo."""
    # Its own prefix: on s3s-fs, "a" and "a/b" cannot both exist (a file is not a directory).
    key = f"{uuid.uuid4().hex[:8]}/" + data.draw(keys(env.name), label="key")
    extra = data.draw(EXTRA_ARGS, label="ExtraArgs")
    body = data.draw(st.binary(max_size=64), label="body")
    turbo = env.clients["s3turbo"]
    ours = run_call(
        lambda: turbo.upload_fileobj(io.BytesIO(body), env.bucket, key, ExtraArgs=extra)
    )
    theirs = run_call(
        lambda: env.boto3.upload_fileobj(io.BytesIO(body), env.other_bucket, key, ExtraArgs=extra)
    )
    assert_agrees(ours, theirs)
    if ours.error is not None:
        return
    stored = env.boto3.get_object(Bucket=env.bucket, Key=key)
    assert stored["Body"].read() == body
    reference = env.boto3.head_object(Bucket=env.other_bucket, Key=key)
    for field in HEAD_FIELDS:
        assert stored.get(field) == reference.get(field), field
    if "Tagging" in extra and env.name == "moto":  # s3s-fs does not implement tagging
        tags = [
            env.boto3.get_object_tagging(Bucket=b, Key=key)["TagSet"]
            for b in (env.bucket, env.other_bucket)
        ]
        assert tags[0] == tags[1]
    back = io.BytesIO()
    turbo.download_fileobj(env.other_bucket, key, back)
    assert back.getvalue() == body
    if env.name == "s3s-fs":  # it checks signatures: the engine's presigned GET must pass
        url = turbo.generate_presigned_url("get_object", Params={"Bucket": env.bucket, "Key": key})
        assert fetch(url)[0] == 200


def test_control_character_in_a_header_value(moto):
    bucket = moto.new_bucket()
    extra = {"ContentType": "text/plain\x1f", "Metadata": {"a": "b\x7f"}}
    # boto3 stores it (an exception here is not the bug: it fails the test for real).
    moto.boto3_client().upload_fileobj(io.BytesIO(b"x"), bucket, "boto3", ExtraArgs=extra)
    turbo = moto.s3turbo_client()
    ours = run_call(lambda: turbo.upload_fileobj(io.BytesIO(b"x"), bucket, "k", ExtraArgs=extra))
    assert ours is not None and ours.error is None, repr(ours and ours.error)


def key_of_bytes(size: int) -> str:
    """A key of exactly `size` bytes: segments of 4-byte emoji, then ASCII."""
    segment = "😀" * 10 + "/"
    key = ""
    while len((key + segment).encode()) < size:
        key += segment
    return key + "a" * (size - len(key.encode()))


@pytest.mark.parametrize("size", [1024, 1025])
def test_key_at_the_1024_byte_limit(moto, size):
    """moto takes keys of any length (s3s-fs's refusal of 1,025 bytes is in the matrix): a
    1,024-byte key round-trips through s3turbo exactly as through boto3."""
    key = key_of_bytes(size)
    assert len(key.encode()) == size
    bucket = moto.new_bucket()
    boto, turbo = moto.boto3_client(), moto.s3turbo_client()
    turbo.upload_fileobj(io.BytesIO(b"turbo"), bucket, key, ExtraArgs={"Metadata": {"a": "b"}})
    assert [o["Key"] for o in boto.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    assert boto.get_object(Bucket=bucket, Key=key)["Body"].read() == b"turbo"
    back = io.BytesIO()
    turbo.download_fileobj(bucket, key, back)
    assert back.getvalue() == b"turbo"


# Values of every kind for ExtraArgs names, valid or not.
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    HEADER_TEXT,
    # Control characters aside: see test_control_character_in_a_header_value.
    st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=6),
    st.binary(max_size=4),
    st.datetimes(min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1)),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(
        st.text(max_size=4), st.one_of(HEADER_TEXT, st.integers(), st.none()), max_size=2
    ),
)
NAMES = st.sampled_from(
    [
        "ContentType",
        "CacheControl",
        "ContentDisposition",
        "ContentLanguage",
        "Metadata",
        "Tagging",
        "Expires",
        "WebsiteRedirectLocation",
        "Colour",  # not an upload argument
    ]
)
# What boto3 crashes on for such values: AttributeError and TypeError in botocore's metadata
# check, UnicodeEncodeError in http.client (a header that is not latin-1), HTTPClientError from
# urllib3 (a header with a line break).
BOTO3_CRASHES = (AttributeError, TypeError, UnicodeEncodeError, HTTPClientError)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(extra=st.dictionaries(NAMES, ANY_VALUE, max_size=2))
def test_extra_args_accepted_or_refused_as_boto3(s3s_fs_env, extra):
    """Any ExtraArgs: s3turbo accepts what boto3 accepts, refuses what boto3 refuses (same
    exception type and code), and gives a clear error where boto3 crashes."""
    key = f"any-{uuid.uuid4().hex[:8]}"
    turbo = s3s_fs_env.clients["s3turbo"]
    ours = run_call(
        lambda: turbo.upload_fileobj(io.BytesIO(b"x"), s3s_fs_env.bucket, key, ExtraArgs=extra)
    )
    theirs = run_call(
        lambda: s3s_fs_env.boto3.upload_fileobj(
            io.BytesIO(b"x"), s3s_fs_env.other_bucket, key, ExtraArgs=extra
        )
    )
    assert_agrees(ours, theirs, BOTO3_CRASHES)


@pytest.fixture(scope="module")
def s3s_fs_env(s3s_fs, tmp_path_factory) -> Env:
    return Env(
        name="s3s-fs",
        boto3=s3s_fs.boto3_client(),
        clients={"s3turbo": s3s_fs.s3turbo_client()},
        bucket=s3s_fs.new_bucket(),
        other_bucket=s3s_fs.new_bucket(),
        root=tmp_path_factory.mktemp("any-extra-args"),
    )


# --- limits (part 6) --------------------------------------------------------------------------


class Stream:
    """A non-seekable stream of unknown length."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def read(self, size=-1):
        return self._data.read(size)


@pytest.mark.parametrize(
    "chunksize, parts",
    [
        pytest.param(1 * MIB, 3, id="1MiB-raised-to-S3s-5MiB-minimum"),
        pytest.param(6 * 1024 * MIB, 1, id="6GiB-lowered-to-S3s-5GiB-maximum"),
        # TransferConfig refuses it, but not once made (the engine raised OverflowError).
        pytest.param(-5, 3, id="negative-set-on-a-config-raised-to-5MiB"),
    ],
)
def test_part_size_kept_within_s3_limits_as_boto3(server, bucket, tmp_path, chunksize, parts):
    """s3transfer's ChunksizeAdjuster clamps multipart_chunksize to S3's 5 MiB..5 GiB; the engine
    must cut the same parts (same ETag, "-N" part count included), from a file and a stream."""
    data = os.urandom(12 * MIB + 1)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=MIB)
    config.multipart_chunksize = chunksize
    turbo, boto = server.s3turbo_client(), server.boto3_client()
    turbo.upload_file(str(source), bucket, "turbo-file", Config=config)
    boto.upload_file(str(source), bucket, "boto3-file", Config=config)
    turbo.upload_fileobj(Stream(data), bucket, "turbo-stream", Config=config)
    etags = {
        key: boto.head_object(Bucket=bucket, Key=key)["ETag"]
        for key in ("turbo-file", "boto3-file", "turbo-stream")
    }
    assert etags["turbo-file"] == etags["boto3-file"] == etags["turbo-stream"], etags
    assert etags["turbo-file"].endswith(f'-{parts}"')
    assert boto.get_object(Bucket=bucket, Key="turbo-stream")["Body"].read() == data


def test_file_over_5_tib_is_refused_before_any_request(moto, tmp_path):
    """A sparse file of 5 TiB + 1 byte: the engine refuses it (ValueError) at once, with no
    request sent. boto3 is not run: it does not check the size and would start a multipart
    upload of 5 TiB (S3 refuses the object only when it is completed)."""
    bucket = moto.new_bucket()
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as file:
        file.truncate(5 * 1024**4 + 1)

    def stop_if_uploading(increment):
        raise AssertionError("the engine started uploading a file over 5 TiB")

    ours = run_call(
        lambda: moto.s3turbo_client().upload_file(
            str(huge), bucket, "huge", Callback=stop_if_uploading
        )
    )
    assert ours is not None and ours.seconds < CALL_LIMIT
    assert isinstance(ours.error, ValueError), repr(ours.error)
    assert "5 TiB" in str(ours.error)
    boto = moto.boto3_client()
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("value", [None, 1.5, "5"], ids=["None", "float", "str"])
@pytest.mark.parametrize("call", ["upload_fileobj", "download_file"])
def test_a_max_pool_connections_that_is_not_an_integer_fails_as_in_boto3(
    s3s_fs, tmp_path, call, value
):
    """botocore cannot size its connection pool, and its first request raises
    HTTPClientError; the engine, which has pools of its own, would have sent the request. Both
    raise boto3's error, and store or write nothing."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="existing", Body=b"data")
    config = Config(max_pool_connections=value)
    seen = {}
    for name in ("boto3", "s3turbo"):
        make = s3s_fs.s3turbo_client if name == "s3turbo" else s3s_fs.boto3_client
        client = make(config=config)
        with pytest.raises(HTTPClientError) as caught:
            if call == "upload_fileobj":
                client.upload_fileobj(io.BytesIO(b"data"), bucket, name)
            else:
                client.download_file(bucket, "existing", str(tmp_path / name))
        seen[name] = str(caught.value)
        assert not (tmp_path / name).exists()
    assert seen["s3turbo"] == seen["boto3"]
    keys = [
        item["Key"] for item in s3s_fs.boto3_client().list_objects_v2(Bucket=bucket)["Contents"]
    ]
    assert keys == ["existing"]
