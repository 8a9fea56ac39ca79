"""Small helpers shared by the test modules."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

KIB = 1024
MIB = 1024 * KIB
THRESHOLD = 8 * MIB  # boto3's default multipart_threshold and multipart_chunksize

# The sizes the foundation issue asks for: empty, one byte, either side of the threshold, and
# a multipart object with an odd tail.
SIZES = [0, 1, THRESHOLD - 1, THRESHOLD + 1, 48 * MIB + 12_345]


def fallbacks(caplog) -> list[str]:
    """The calls s3turbo left to boto3, as it logs them (at DEBUG: capture them with
    `caplog.at_level("DEBUG", logger="s3turbo")`, or with `served_by_engine`)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "s3turbo" and "falls back" in r.getMessage()
    ]


@contextlib.contextmanager
def served_by_engine(caplog):
    """Asserts that every call inside is the engine's: none was left to boto3."""
    with caplog.at_level("DEBUG", logger="s3turbo"):
        yield
    assert fallbacks(caplog) == []


def write_random(path: Path, size: int) -> Path:
    """A file of `size` random bytes (random, so a misplaced part cannot go unnoticed)."""
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 4 * MIB))
            out.write(chunk)
            remaining -= len(chunk)
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_object(client, bucket: str, key: str) -> str:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    while chunk := body.read(MIB):
        digest.update(chunk)
    return digest.hexdigest()


class Callbacks:
    """A Callback that records each increment and the thread it came on."""

    def __init__(self):
        self.increments: list[int] = []
        self.threads: set[int] = set()

    def __call__(self, increment: int) -> None:
        self.increments.append(increment)
        self.threads.add(threading.get_ident())

    @property
    def total(self) -> int:
        return sum(self.increments)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


class NonBlockingSource:
    """A non-blocking stream whose data comes in two bursts: read() returns None between them
    (nothing yet), as a non-blocking socket's or pipe's does."""

    def __init__(self, data: bytes, first_burst: int):
        self.data, self.first_burst, self.position, self.waited = data, first_burst, 0, False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes | None:
        if self.position == self.first_burst and not self.waited:
            self.waited = True
            return None
        end = len(self.data) if self.position >= self.first_burst else self.first_burst
        chunk = self.data[self.position : min(end, self.position + size)]
        self.position += len(chunk)
        return chunk


def keepalive_flags(port: int) -> list[int]:
    """SO_KEEPALIVE of each of this process's TCP connections to `port` (the pools keep them
    open after a transfer)."""
    flags = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            copy = os.dup(int(fd))
        except OSError:
            continue  # closed since the listing
        try:
            connection = socket.socket(fileno=copy)
        except OSError:
            os.close(copy)  # not a socket
            continue
        with connection:
            try:
                if connection.type == socket.SOCK_STREAM and connection.getpeername()[1] == port:
                    flags.append(connection.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
            except (OSError, IndexError):
                pass  # not connected, or a Unix socket
    return flags


def connections_left(port: int, at_most: int, within: float = 5.0) -> int:
    """How many connections this process has open to `port`, once they are down to `at_most`
    or `within` seconds have passed (the engine closes connections on its own threads)."""
    deadline = time.monotonic() + within
    while len(keepalive_flags(port)) > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(keepalive_flags(port))


def run_script(
    source: str, tmp_path: Path, server, bucket: str, timeout: float = 60, env: dict | None = None
) -> str:
    """Runs `source` in a Python process of its own, for what must not happen in the test's
    (monkey patching, resource limits, an exit), with the server's endpoint, credentials and
    `bucket` as its arguments; returns what it printed. A failure, or a Rust panic's message
    (an engine thread's, which does not fail the process), shows its stderr. Its
    temporary files are made in `tmp_path` (TMPDIR), which pytest clears, not in /tmp, where
    they were left behind."""
    from servers import ACCESS_KEY, SECRET_KEY

    script = tmp_path / "script.py"
    script.write_text(source)
    finished = subprocess.run(
        [sys.executable, str(script), server.endpoint_url, ACCESS_KEY, SECRET_KEY, bucket],
        env={**os.environ, "TMPDIR": str(tmp_path), **(env or {})},
        capture_output=True,
        timeout=timeout,
    )
    assert finished.returncode == 0, finished.stderr.decode()
    assert b"panicked" not in finished.stderr, finished.stderr.decode()
    return finished.stdout.decode()


def fetch(
    url: str, method: str = "GET", data: bytes | None = None, headers=None
) -> tuple[int, bytes]:
    """A plain HTTP request (a presigned URL's): the status and the body, of errors too."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run_on_thread(
    call: Callable[[], Any], within: float
) -> tuple[BaseException | None, float] | None:
    """Runs `call()` on a thread: what it raised (or None) and how long it took; None if it
    still runs after `within` seconds (the thread is a daemon: a hung call does not keep the
    tests from ending)."""
    outcome: dict[str, Any] = {}

    def run():
        started = time.monotonic()
        try:
            call()
        except BaseException as error:  # noqa: B036 - handed to the test as it is (a panic too)
            outcome["error"] = error
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    if thread.is_alive():
        return None
    return outcome.get("error"), outcome["elapsed"]
