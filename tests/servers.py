"""Starting the local S3 servers, shared by the test fixtures and the benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

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


def start_s3s_fs(root: Path) -> tuple[subprocess.Popen, str]:
    """Starts s3s-fs over `root` with the test credentials; returns it and its endpoint URL."""
    if not S3S_FS.exists():
        raise FileNotFoundError(f"s3s-fs is not installed at {S3S_FS}: `make test` installs it")
    port = free_port()
    process = subprocess.Popen(
        [
            str(S3S_FS),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY),
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
    except BaseException:
        process.kill()
        raise
    return process, f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
