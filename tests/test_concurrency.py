"""One client shared by many threads, clients carried into forked or spawned processes, and
transfers stopped from the calling thread (a raising Callback, Ctrl-C) while parts are in
flight."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import threading
import time

import pytest
from boto3.s3.transfer import TransferConfig
from helpers import MIB, listing, run_script, sha256_object

import s3turbo
from servers import ACCESS_KEY, SECRET_KEY

# 5 MiB parts (S3's smallest): an object just above it is a two-part multipart upload.
MULTIPART = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)


def content(seed: str, size: int) -> bytes:
    """Random bytes that the parent and a child process can both derive from `seed`."""
    return random.Random(seed).randbytes(size)


def round_trip(client, bucket: str, key: str, size: int, via_fileobj: bool) -> None:
    """Uploads `size` bytes to `key` and downloads them again, checking every byte and the
    progress reported for each direction."""
    data = content(key, size)
    uploaded, downloaded = [], []
    if via_fileobj:
        client.upload_fileobj(
            io.BytesIO(data), bucket, key, Config=MULTIPART, Callback=uploaded.append
        )
        sink = io.BytesIO()
        client.download_fileobj(bucket, key, sink, Config=MULTIPART, Callback=downloaded.append)
        received = sink.getvalue()
    else:
        with tempfile.TemporaryDirectory() as directory:
            source, destination = f"{directory}/source", f"{directory}/destination"
            with open(source, "wb") as out:
                out.write(data)
            client.upload_file(source, bucket, key, Config=MULTIPART, Callback=uploaded.append)
            client.download_file(
                bucket, key, destination, Config=MULTIPART, Callback=downloaded.append
            )
            with open(destination, "rb") as received_file:
                received = received_file.read()
            # Nothing but the two files: no temporary download file left.
            assert sorted(os.listdir(directory)) == ["destination", "source"]
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest(), key
    # Progress of one transfer is never counted in another's callback.
    assert (sum(uploaded), sum(downloaded)) == (size, size), key


def test_threads_share_one_client(server, bucket):
    client = server.s3turbo_client()
    threads_count = 16
    # Every thread waits for the others, so that their transfers overlap.
    start = threading.Barrier(threads_count)
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            start.wait(timeout=30)
            # Odd threads go multipart, and half of each kind go through file objects.
            size = 5 * MIB + 1000 * index + 1 if index % 2 else 100_000 + index
            round_trip(client, bucket, f"thread-{index}", size, via_fileobj=index % 4 >= 2)
        except BaseException as error:  # noqa: B036 - reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    assert failures == []
    keys = server.boto3_client().list_objects_v2(Bucket=bucket)["KeyCount"]
    assert keys == threads_count


def _child_round_trips(client_or_kwargs, bucket: str, prefix: str) -> None:
    """A child process's work: a single-PUT object and a multipart one, both ways. A fork
    child gets the parent's client itself; a spawned child gets the arguments to make one."""
    if isinstance(client_or_kwargs, dict):
        client = s3turbo.client("s3", **client_or_kwargs)
    else:
        client = client_or_kwargs
    round_trip(client, bucket, f"{prefix}-small", 300_000, via_fileobj=False)
    round_trip(client, bucket, f"{prefix}-multipart", 5 * MIB + 77, via_fileobj=True)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_clients_in_child_processes(s3s_fs, start_method):
    bucket = s3s_fs.new_bucket()
    client = s3s_fs.s3turbo_client()
    # Used before the fork: the engine's runtime, worker threads and pooled connections exist
    # in the parent, and must not be what the child tries to use.
    round_trip(client, bucket, "parent-before", 5 * MIB + 3, via_fileobj=False)

    context = multiprocessing.get_context(start_method)
    if start_method == "fork":
        child_client = client
    else:
        child_client = {
            "endpoint_url": s3s_fs.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
        }
    children = [
        context.Process(target=_child_round_trips, args=(child_client, bucket, f"child-{i}"))
        for i in range(2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
    for child in children:
        if child.is_alive():
            child.kill()
            pytest.fail(f"a {start_method} child is stuck")
    # A failed assertion in a child prints its traceback and exits with 1.
    assert [child.exitcode for child in children] == [0, 0]

    # What the children stored is right, and the parent's client still works after the fork.
    boto = s3s_fs.boto3_client()
    for i in range(2):
        expected = hashlib.sha256(content(f"child-{i}-multipart", 5 * MIB + 77)).hexdigest()
        assert sha256_object(boto, bucket, f"child-{i}-multipart") == expected
    round_trip(client, bucket, "parent-after", 5 * MIB + 3, via_fileobj=True)


# Stopping a download from the calling thread. The upload side (a raising Callback, Ctrl-C)
# is covered in test_upload_file.py, test_fileobj.py and test_client.py; a raising Callback on
# download_file is checked there for the destination, here for promptness and identity.


class Stop(Exception):
    pass


@pytest.fixture
def slow_download(server, bucket, proxy, tmp_path):
    """A 15 MiB object (three parts) behind a proxy throttled so that downloading it would take
    about 7 s: any stop that is not prompt shows."""
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(15 * MIB))
    server.boto3_client().upload_file(str(source), bucket, "k", Config=MULTIPART)
    proxy.bytes_per_second = 2 * MIB
    out = tmp_path / "out"
    out.mkdir()
    destination = out / "precious.bin"
    destination.write_bytes(b"keep me")
    return server.s3turbo_client(endpoint_url=proxy.endpoint_url), destination


def assert_no_more_requests(proxy) -> None:
    """The engine sends nothing once the call has returned: the transfer was cancelled, not
    left running in the background."""
    seen = len(proxy.requests)
    time.sleep(0.3)
    assert len(proxy.requests) == seen


@pytest.mark.parametrize("method", ["download_file", "download_fileobj"])
def test_callback_error_stops_a_download_promptly(slow_download, proxy, bucket, method):
    client, destination = slow_download
    raised = {}

    def callback(increment):
        raised["error"] = Stop("enough")
        raised["at"] = time.monotonic()
        raise raised["error"]

    sink = str(destination) if method == "download_file" else io.BytesIO()
    with pytest.raises(Stop) as caught:
        getattr(client, method)(bucket, "k", sink, Config=MULTIPART, Callback=callback)
    assert time.monotonic() - raised["at"] < 1
    assert caught.value is raised["error"]  # the very exception, not a copy or a wrapper
    assert_no_more_requests(proxy)
    if method == "download_file":
        assert destination.read_bytes() == b"keep me"
        assert listing(destination.parent) == ["precious.bin"]
    else:
        # The Callback sees bytes before the sink does: it raised at the first, so the sink got
        # none.
        assert sink.getvalue() == b""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to oneself is POSIX")
def test_ctrl_c_stops_a_download_promptly(
    slow_download, proxy, bucket, sigint_raises_keyboard_interrupt
):
    client, destination = slow_download
    sent = {}

    def interrupt_once(increment):
        if not sent:
            sent["at"] = time.monotonic()
            threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT)).start()

    with pytest.raises(KeyboardInterrupt):
        client.download_file(
            bucket, "k", str(destination), Config=MULTIPART, Callback=interrupt_once
        )
    assert time.monotonic() - sent["at"] < 1
    assert_no_more_requests(proxy)
    assert destination.read_bytes() == b"keep me"
    assert listing(destination.parent) == ["precious.bin"]


GEVENT_WORKER = """
from gevent import monkey

monkey.patch_all()

import hashlib, io, json, os, sys, tempfile
import gevent
import s3turbo
from boto3.s3.transfer import TransferConfig

endpoint, access_key, secret_key, bucket = sys.argv[1:5]
s3 = s3turbo.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                    aws_access_key_id=access_key, aws_secret_access_key=secret_key)
MIB = 1024 * 1024
ticks, finished = [], []

def ticker():
    while not finished:
        ticks.append(1)
        gevent.sleep(0.01)

def slow_download():
    out = os.path.join(tempfile.mkdtemp(), "big")
    progress = []
    s3.download_file(bucket, "big", out, Callback=progress.append,
                     Config=TransferConfig(max_bandwidth=10 * MIB))
    return os.path.getsize(out), sum(progress)

def round_trip(i):
    data = os.urandom(100_000 + i)
    s3.upload_fileobj(io.BytesIO(data), bucket, f"small-{i}")
    sink = io.BytesIO()
    s3.download_fileobj(bucket, f"small-{i}", sink)
    return sink.getvalue() == data

ticking = gevent.spawn(ticker)
download = gevent.spawn(slow_download)
trips = [gevent.spawn(round_trip, i) for i in range(8)]
gevent.joinall([download, *trips], timeout=60, raise_error=True)
finished.append(True)
ticking.join()
print(json.dumps({"download": download.value, "round_trips": [t.value for t in trips],
                  "ticks": len(ticks)}))
"""


def test_gevent_workers_keep_running_during_transfers(s3s_fs, tmp_path):
    """Under gevent (gunicorn's and Celery's gevent workers), a transfer waits in the hub, as
    boto3's do on gevent's sockets: the other green threads run meanwhile (a ticker every
    10 ms ticks through a 2 s download; it ticked once), and transfers in several green
    threads at once all complete."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="big", Body=os.urandom(20 * MIB))
    outcome = json.loads(run_script(GEVENT_WORKER, tmp_path, s3s_fs, bucket, timeout=120))
    assert outcome["download"] == [20 * MIB, 20 * MIB]
    assert outcome["round_trips"] == [True] * 8
    assert outcome["ticks"] >= 50, outcome  # about 200 in 2 s; the shared machine may be slow


UPLOADS_IN_DAEMON_THREADS_AT_EXIT = """
import os, sys, threading, time
import s3turbo
from boto3.s3.transfer import TransferConfig

client = s3turbo.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                        aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
source = os.path.join(os.environ["TMPDIR"], "source.bin")
with open(source, "wb") as out:
    out.write(os.urandom(12 << 20))
# Three parts each, at 8 MiB/s: about 1.5 s per upload.
config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20,
                        max_bandwidth=8 << 20)
for i in range(4):
    threading.Thread(target=client.upload_file, args=(source, sys.argv[4], f"k{i}"),
                     kwargs={"Config": config}, daemon=True).start()
time.sleep(0.3)  # and the script ends, its uploads under way
"""


def test_uploads_in_daemon_threads_end_before_the_process_does(moto, tmp_path):
    """The exit waits for the transfers under way, as Python's waits for boto3's transfer
    threads: a script that ended while daemon threads uploaded left multipart uploads open
    (billed on S3) and objects missing."""
    bucket = moto.new_bucket()
    run_script(UPLOADS_IN_DAEMON_THREADS_AT_EXIT, tmp_path, moto, bucket, timeout=120)
    boto = moto.boto3_client()
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    stored = boto.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert sorted(item["Key"] for item in stored) == ["k0", "k1", "k2", "k3"]


GREEN_UPLOAD_AT_EXIT = """
from gevent import monkey

monkey.patch_all()
import io, sys, time
import gevent
import s3turbo

class SlowReader(io.RawIOBase):
    def readable(self):
        return True

    def readinto(self, buffer):
        time.sleep(0.2)
        buffer[:1024] = b"x" * 1024
        return 1024

client = s3turbo.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                        aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
gevent.spawn(client.upload_fileobj, SlowReader(), sys.argv[4], "k")
gevent.sleep(1)  # and the script ends, a green thread's upload under way
"""


def test_a_gevent_process_exits_with_a_green_transfer_under_way(s3s_fs, tmp_path):
    """The exit does not wait for transfers in gevent's main thread: waiting there would stop
    the hub, and with it the green threads whose transfers it waits for (it hung)."""
    bucket = s3s_fs.new_bucket()
    run_script(GREEN_UPLOAD_AT_EXIT, tmp_path, s3s_fs, bucket, timeout=30)
