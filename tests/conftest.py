"""Real S3 servers for the tests (DESIGN.md section 5), started on 127.0.0.1 at free ports.

- s3s-fs: a Rust S3 server over a directory that checks SigV4 signatures. `make test`
  installs it into .tools/; S3S_FS overrides the path.
- moto's ThreadedMotoServer: rich S3 semantics and error codes, no signature checks.

Tests take `server` (parametrized over both) or one of them by name; each test gets its own
bucket.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

import s3turbo

ROOT = Path(__file__).resolve().parent.parent
S3S_FS = Path(os.environ.get("S3S_FS", ROOT / ".tools" / "s3s-fs" / "bin" / "s3s-fs"))
ACCESS_KEY = "s3turbo-test-access"
SECRET_KEY = "s3turbo-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


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

    def new_bucket(self) -> str:
        bucket = f"t-{uuid.uuid4().hex[:20]}"
        self.boto3_client().create_bucket(Bucket=bucket)
        return bucket


@pytest.fixture(scope="session")
def s3s_fs(tmp_path_factory):
    if not S3S_FS.exists():
        pytest.fail(f"s3s-fs is not installed at {S3S_FS}: run `make test`, which installs it")
    root = tmp_path_factory.mktemp("s3s-fs-root")
    port = free_port()
    process = subprocess.Popen(
        [
            str(S3S_FS),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield Server("s3s-fs", f"http://127.0.0.1:{port}", checks_signatures=True)
    finally:
        process.terminate()
        process.wait(timeout=10)
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
