"""Peak memory of upload_fileobj on a generated 1 GiB stream of unknown length, s3turbo next to
boto3, each in a fresh process against a local s3s-fs.

    .venv/bin/python benchmarks/stream_memory.py [MiB]

Prints the growth of peak RSS over the process's size before the upload, and the bound the
engine aims for (about max_concurrency x part size).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import ACCESS_KEY, SECRET_KEY, start_s3s_fs, stop  # noqa: E402

MIB = 1024 * 1024


class GeneratedStream:
    """`size` bytes made on the fly (never held whole), readable only: like a pipe."""

    def __init__(self, size: int):
        self._remaining = size
        self._block = os.urandom(MIB)

    def read(self, size: int = -1) -> bytes:
        size = self._remaining if size < 0 else min(size, self._remaining)
        self._remaining -= size
        whole, tail = divmod(size, MIB)
        return self._block * whole + self._block[:tail]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(engine: str, endpoint: str, size: int) -> None:
    import boto3

    import s3turbo

    kwargs = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
    }
    client = s3turbo.client("s3", **kwargs) if engine == "s3turbo" else boto3.client("s3", **kwargs)
    client.put_object(Bucket="memory", Key="warm-up", Body=b"x")
    before = peak_rss_mib()
    start = time.perf_counter()
    client.upload_fileobj(GeneratedStream(size), "memory", engine)
    elapsed = time.perf_counter() - start
    growth = peak_rss_mib() - before
    print(f"{engine:8} peak RSS growth {growth:7.1f} MiB   {size / MIB / elapsed:7.1f} MiB/s")


def main() -> None:
    size = int(sys.argv[1] if len(sys.argv) > 1 else 1024) * MIB
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    workdir = Path(tempfile.mkdtemp(prefix="s3turbo-memory-", dir=base))
    process, endpoint = start_s3s_fs(workdir)
    try:
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        ).create_bucket(Bucket="memory")
        for engine in ("s3turbo", "boto3"):
            subprocess.run(
                [sys.executable, __file__, "--child", engine, endpoint, str(size)], check=True
            )
        print("bound: max_concurrency 10 x part size 8 MiB = 80 MiB, plus a block read ahead")
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
