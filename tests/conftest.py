"""Real S3 servers for the tests (DESIGN.md section 5), started on 127.0.0.1 at free ports.

- s3s-fs: a Rust S3 server over a directory that checks SigV4 signatures.
- moto's ThreadedMotoServer: rich S3 semantics and error codes, no signature checks.

Tests take `server` (parametrized over both) or one of them by name; `bucket` is a fresh
bucket on `server`; `proxy` is a fault-injecting proxy in front of `server`.
"""

from __future__ import annotations

import datetime
import shutil
import signal
import uuid
from dataclasses import dataclass
from unittest import mock

import boto3
import pytest
from botocore.config import Config

import s3turbo
import s3turbo._presign
from faultproxy import FaultProxy
from servers import ACCESS_KEY, SECRET_KEY, free_port, start_s3s_fs, stop, wait_for_port


@dataclass
class Server:
    name: str
    endpoint_url: str
    checks_signatures: bool

    def client_kwargs(self, **overrides) -> dict:
        kwargs = {
            "endpoint_url": self.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "config": Config(retries={"max_attempts": 2, "mode": "standard"}),
        }
        kwargs.update(overrides)
        return kwargs

    def boto3_client(self, **overrides):
        return boto3.client("s3", **self.client_kwargs(**overrides))

    def s3turbo_client(self, **overrides):
        return s3turbo.client("s3", **self.client_kwargs(**overrides))

    def clients_through(self, proxy: FaultProxy, config: Config) -> dict:
        """An s3turbo client and a boto3 client that reach this server through `proxy`."""
        kwargs = {"endpoint_url": proxy.endpoint_url, "config": config}
        return {"s3turbo": self.s3turbo_client(**kwargs), "boto3": self.boto3_client(**kwargs)}

    def new_bucket(self) -> str:
        bucket = f"t-{uuid.uuid4().hex[:20]}"
        self.boto3_client().create_bucket(Bucket=bucket)
        return bucket


@pytest.fixture(scope="session")
def s3s_fs(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3s-fs-root")
    process, endpoint = start_s3s_fs(root)
    try:
        yield Server("s3s-fs", endpoint, checks_signatures=True)
    finally:
        stop(process)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def moto():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_for_port(port)
        yield Server("moto", f"http://127.0.0.1:{port}", checks_signatures=False)
    finally:
        server.stop()


@pytest.fixture(params=["s3s-fs", "moto"])
def server(request) -> Server:
    return request.getfixturevalue("s3s_fs" if request.param == "s3s-fs" else "moto")


@pytest.fixture
def bucket(server) -> str:
    return server.new_bucket()


@pytest.fixture
def proxy(server):
    """A fault-injecting proxy in front of `server` (tests/faultproxy.py)."""
    with FaultProxy(server.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def without_credentials(monkeypatch, tmp_path):
    """No credentials anywhere botocore looks (environment, files, instance metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@pytest.fixture
def sigint_raises_keyboard_interrupt():
    """Python's own SIGINT handler, even where the test run was started with SIGINT ignored (a
    background job of a shell without job control), for the tests that send themselves one."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def frozen_time():
    """One clock for botocore's signers and s3turbo's, so that presigned URLs can be compared."""
    fixed = datetime.datetime(2026, 11, 26, 13, 0, 7, tzinfo=datetime.timezone.utc)
    # SigV2's expiry is time.time() + ExpiresIn: a fraction of a second to truncate.
    now = fixed.timestamp() + 0.75
    with (
        mock.patch("botocore.auth.get_current_datetime", return_value=fixed),
        mock.patch("botocore.auth.time.time", return_value=now),
        mock.patch.object(s3turbo._presign, "_now", return_value=now),
    ):
        yield
