"""`make demo`: a 1 GiB file up to and back from a local s3s-fs, through s3turbo and through
boto3, with a live progress bar, then MiB/s for each side by side.

Everything lives in a temporary folder (on tmpfs where there is one) that is removed at the end.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import s3turbo  # noqa: E402
from servers import ACCESS_KEY, SECRET_KEY, start_s3s_fs, stop  # noqa: E402

MIB = 1024 * 1024
SIZE = int(os.environ.get("DEMO_SIZE_MIB", "1024")) * MIB


class ProgressBar:
    """A boto3 Callback drawing one line on stderr, at most ten times a second."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0
        self.start = self.last_draw = time.perf_counter()

    def __call__(self, increment: int) -> None:
        self.done += increment
        now = time.perf_counter()
        if now - self.last_draw >= 0.1 or self.done == self.total:
            self.last_draw = now
            self.draw(now)

    def draw(self, now: float) -> None:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * 30)
        rate = self.done / MIB / max(now - self.start, 1e-9)
        sys.stderr.write(
            f"\r  {self.label:<22} [{'#' * filled}{'.' * (30 - filled)}] "
            f"{fraction:6.1%} {self.done // MIB:5d} MiB {rate:8.1f} MiB/s"
        )
        sys.stderr.flush()

    def finish(self) -> float:
        elapsed = time.perf_counter() - self.start
        self.draw(time.perf_counter())
        sys.stderr.write("\n")
        return elapsed


def cpu_seconds() -> float:
    """CPU time of this process (all its threads): the client's side of a transfer."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, transfer) -> tuple[float, float]:
    """Runs `transfer(callback)` with a progress bar; returns (MiB/s, client CPU s per GiB)."""
    bar = ProgressBar(label, SIZE)
    cpu = cpu_seconds()
    transfer(bar)
    cpu = cpu_seconds() - cpu
    elapsed = bar.finish()
    return SIZE / MIB / elapsed, cpu / (SIZE / (1024 * MIB))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    workdir = Path(tempfile.mkdtemp(prefix="s3turbo-demo-", dir=base))
    process = None
    try:
        print(f"Writing a {SIZE // MIB} MiB file of random bytes in {workdir} ...")
        source = workdir / "source.bin"
        with open(source, "wb") as out:
            for _ in range(SIZE // (16 * MIB)):
                out.write(os.urandom(16 * MIB))
            out.write(os.urandom(SIZE % (16 * MIB)))
        expected = sha256(source)
        (workdir / "server").mkdir()
        process, endpoint = start_s3s_fs(workdir / "server")
        print(f"s3s-fs listening on {endpoint}\n")
        kwargs = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
        }
        clients = {"s3turbo": s3turbo.client("s3", **kwargs), "boto3": boto3.client("s3", **kwargs)}
        clients["boto3"].create_bucket(Bucket="demo")
        # The first gigabytes written to a fresh tmpfs cost the writer extra kernel time (the
        # pages are touched for the first time): measured here, whichever client downloads
        # first pays about a second more CPU. Touch them once beforehand, so both pay alike.
        scratch = workdir / "scratch.bin"
        with open(scratch, "wb") as out:
            for _ in range(2 * SIZE // (16 * MIB)):
                out.write(bytes(16 * MIB))
        scratch.unlink()
        results = {}
        for name, client in clients.items():
            copy = workdir / f"{name}-copy.bin"
            upload = timed(
                f"{name} upload_file",
                lambda bar, c=client: c.upload_file(str(source), "demo", "k", Callback=bar),
            )
            download = timed(
                f"{name} download_file",
                lambda bar, c=client, d=copy: c.download_file("demo", "k", str(d), Callback=bar),
            )
            if sha256(copy) != expected:
                raise SystemExit(f"{name}: the downloaded copy differs from the source")
            copy.unlink()
            results[name] = (*upload, *download)

        header = ("upload MiB/s", "CPU s/GiB", "download MiB/s", "CPU s/GiB")
        print("\n" + " " * 10 + "".join(f"{h:>16}" for h in header))
        for name, figures in results.items():
            print(f"{name:10}" + "".join(f"{f:16.2f}" for f in figures))
        ours, theirs = results["s3turbo"], results["boto3"]
        ratios = [
            ours[0] / theirs[0],
            ours[1] / theirs[1],
            ours[2] / theirs[2],
            ours[3] / theirs[3],
        ]
        print(f"{'ratio':10}" + "".join(f"{r:15.2f}x" for r in ratios) + "   (s3turbo / boto3)")
        print("\nBoth copies matched the source (SHA-256). The server runs on this machine too,")
        print("so on 2 cores it takes much of the CPU: client CPU per GiB is the telling figure.")
    finally:
        if process is not None:
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
