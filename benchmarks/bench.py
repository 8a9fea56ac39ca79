"""`make bench`: boto3 and s3turbo on the same work, side by side, in one run (DESIGN.md
section 6).

A local s3s-fs (signature checking on) serves a tmpfs folder. Each measurement runs in a fresh
process, so that its peak RSS is its own; the engines alternate, round after round, so that
the machine's drift hits both alike. Printed per engine: the rate, client CPU seconds per GiB
(getrusage of the measuring process: the server's CPU is not in it), peak RSS, and the ratio to
boto3 (medians over the rounds). boto3's spread across its own rounds shows the noise.
The dir-* workloads are s3turbo's upload_directory / download_directory against the boto3 loop
of one call per file.

    .venv/bin/python benchmarks/bench.py [--rounds N] [--big-mib N] [--small-files N]
        [--workloads upload,download,...] [--latency-ms 20] [--boto3-twice]
        [--files-in DIR]

With --latency-ms, a proxy in the harness delays the first byte of every response, standing
for the first-byte latency of real S3: there the rate of small transfers depends on how many
run at once.

The clients' files (the sources of uploads, the destinations of downloads) are on tmpfs beside
the server's folder, unless --files-in names a folder elsewhere, such as a disk's: users' files
are on disk file systems, whose page cache copies cost less per byte than tmpfs's 4 KiB pages
(the kernel's copies are most of every engine's CPU here).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from faultproxy import FaultProxy  # noqa: E402
from servers import ACCESS_KEY, SECRET_KEY, start_s3s_fs, stop  # noqa: E402

MIB = 1024 * 1024
GIB = 1024 * MIB
BUCKET = "bench"


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# obstore (a Rust object store for Python, the closest peer) takes part when it is installed.
ENGINES = ("boto3", "s3turbo", *(("obstore",) if _installed("obstore") else ()))
# With --boto3-twice: boto3 once more, as if it were another engine. Its ratio to boto3 is what
# the machine's noise alone does to a ratio.
BOTO3_AGAIN = "boto3-again"
WORKLOADS = (
    "upload",
    "download",
    "small-upload",
    "small-download",
    "dir-upload",
    "dir-download",
    "presign",
)


def client_kwargs(endpoint: str) -> dict:
    return {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
    }


class Boto3Like:
    """boto3 and s3turbo: the same calls (s3turbo adds the directory methods)."""

    def __init__(self, engine: str, endpoint: str):
        import boto3

        import s3turbo

        make = s3turbo.client if engine == "s3turbo" else boto3.client
        self.client = make("s3", **client_kwargs(endpoint))
        self.has_directories = engine == "s3turbo"
        self.client.head_bucket(Bucket=BUCKET)  # connections and imports warm

    def upload(self, path: Path, key: str) -> None:
        self.client.upload_file(str(path), BUCKET, key)

    def download(self, key: str, path: Path) -> None:
        self.client.download_file(BUCKET, key, str(path))

    def upload_directory(self, directory: Path, prefix: str) -> None:
        self.client.upload_directory(directory, BUCKET, prefix)

    def download_directory(self, prefix: str, directory: Path) -> None:
        self.client.download_directory(BUCKET, prefix, directory)

    def presign(self, key: str) -> str:
        params = {"Bucket": BUCKET, "Key": key}
        return self.client.generate_presigned_url("get_object", Params=params)


class Obstore:
    """obstore's S3Store, used as its documentation shows: put a path, stream a get."""

    has_directories = False

    def __init__(self, endpoint: str):
        import obstore
        from obstore.store import S3Store

        self.obstore = obstore
        self.store = S3Store(
            BUCKET,
            endpoint=endpoint,
            region="us-east-1",
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )
        self.obstore.head(self.store, "big.bin")  # connections and imports warm

    def upload(self, path: Path, key: str) -> None:
        self.obstore.put(self.store, key, path)

    def download(self, key: str, path: Path) -> None:
        with open(path, "wb") as out:
            for chunk in self.obstore.get(self.store, key).stream(min_chunk_size=8 * MIB):
                out.write(chunk)

    def presign(self, key: str) -> str:
        return self.obstore.sign(self.store, "GET", key, datetime.timedelta(hours=1))


def measure(engine: str, workload: str, endpoint: str, workdir: Path, count: int) -> dict:
    """One measurement, in this (child) process. Returns what it moved and what it cost."""
    client = Obstore(endpoint) if engine == "obstore" else Boto3Like(engine, endpoint)
    small = sorted((workdir / "small").iterdir())
    out = workdir / f"out-{engine}"
    out.mkdir(exist_ok=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    if workload == "upload":
        client.upload(workdir / "big.bin", f"big-{engine}")
        units, volume = 1, (workdir / "big.bin").stat().st_size
    elif workload == "download":
        client.download("big.bin", out / "big.bin")
        units, volume = 1, (out / "big.bin").stat().st_size
    elif workload in ("small-upload", "dir-upload"):
        prefix = f"{workload}-{engine}"
        if workload == "dir-upload" and client.has_directories:
            client.upload_directory(workdir / "small", prefix)
        else:  # one call per file: the others have no directory API
            for path in small:
                client.upload(path, f"{prefix}/{path.name}")
        units, volume = len(small), sum(p.stat().st_size for p in small)
    elif workload in ("small-download", "dir-download"):
        if workload == "dir-download" and client.has_directories:
            client.download_directory("small", out)
        else:
            for path in small:
                client.download(f"small/{path.name}", out / path.name)
        units, volume = len(small), sum(p.stat().st_size for p in small)
    else:
        for i in range(count):
            client.presign(f"k/{i}")
        units, volume = count, 0
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "seconds": elapsed,
        "units": units,
        "bytes": volume,
        "cpu": usage.ru_utime + usage.ru_stime - cpu,
        "peak_rss_mib": peak_rss_mib(usage),
    }


def peak_rss_mib(usage: resource.struct_rusage) -> float:
    """This process's peak RSS: on Linux its VmHWM, as ru_maxrss starts from the high-water
    mark of the process that started this one (Linux keeps it across fork and exec): here the
    harness, near 100 MiB once it has written the files, which hid every smaller peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return usage.ru_maxrss / 1024


def prepare(workdir: Path, endpoint: str, big_mib: int, small_files: int) -> None:
    with open(workdir / "big.bin", "wb") as out:
        block = os.urandom(16 * MIB)
        for _ in range(big_mib // 16):
            out.write(block)
    (workdir / "small").mkdir()
    for i in range(small_files):
        (workdir / "small" / f"f{i:05d}.bin").write_bytes(os.urandom(16 * 1024))
    import boto3

    client = boto3.client("s3", **client_kwargs(endpoint))
    client.create_bucket(Bucket=BUCKET)
    client.upload_file(str(workdir / "big.bin"), BUCKET, "big.bin")
    for path in sorted((workdir / "small").iterdir()):
        client.upload_file(str(path), BUCKET, f"small/{path.name}")


def run_child(
    engine: str, workload: str, endpoint: str, workdir: Path, count: int, server_pid: int
) -> dict:
    command = [sys.executable, __file__, "--child", engine, workload, endpoint, str(workdir)]
    server_cpu = cpu_seconds_of(server_pid)
    child = subprocess.run([*command, str(count)], capture_output=True, text=True)
    if child.returncode != 0:
        sys.exit(f"{engine} {workload} failed (exit status {child.returncode}):\n{child.stderr}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    # The server's CPU over the whole child run (start-up included, so a little high): where it
    # nears the wall time on our 2 shared cores, the server bounds the rate, whatever the client.
    result["server_cpu"] = cpu_seconds_of(server_pid) - server_cpu
    return result


def cpu_seconds_of(pid: int) -> float:
    """User and system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_gib(run: dict) -> float:
    """What turns a run's CPU seconds into seconds per GiB (1 for presign, which moves none)."""
    return GIB / run["bytes"] if run["bytes"] else 1


def report(results: dict[tuple[str, str], list[dict]], engines: tuple[str, ...]) -> None:
    print(
        f"\n{'workload':16}{'engine':12}{'rate':>18}{'CPU s/GiB':>12}{'peak RSS':>11}"
        f"{'rate x':>9}{'CPU x':>8}{'noise':>8}{'server CPU':>12}"
    )
    for workload in WORKLOADS:
        rows = {}
        for engine in engines:
            runs = results.get((engine, workload), [])
            if not runs:
                continue
            rates = [r["units"] / r["seconds"] for r in runs]
            byte_rates = [r["bytes"] / MIB / r["seconds"] for r in runs]
            cpu = [r["cpu"] * per_gib(r) for r in runs]
            server_cpu = [r["server_cpu"] * per_gib(r) for r in runs]
            rows[engine] = {
                "rate": statistics.median(
                    byte_rates if workload in ("upload", "download") else rates
                ),
                "cpu": statistics.median(cpu),
                "server_cpu": statistics.median(server_cpu),
                "rss": max(r["peak_rss_mib"] for r in runs),
                "noise": (max(rates) / min(rates) - 1) if len(rates) > 1 else 0.0,
            }
        unit = {"upload": "MiB/s", "download": "MiB/s", "presign": "URLs/s"}.get(
            workload, "files/s"
        )
        base = rows.get("boto3")
        for engine, row in rows.items():
            ratio = f"{row['rate'] / base['rate']:8.2f}x" if base else ""
            cpu_ratio = f"{row['cpu'] / base['cpu']:7.2f}x" if base and base["cpu"] else ""
            print(
                f"{workload:16}{engine:12}{row['rate']:12.1f} {unit:6}{row['cpu']:11.2f}"
                f"{row['rss']:8.0f} MiB{ratio:>9}{cpu_ratio:>8}{row['noise']:7.0%}"
                f"{row['server_cpu']:12.2f}"
            )
    print(
        "\nrate x / CPU x: over boto3 (medians). CPU s/GiB is of the client process only"
        " (for presign: CPU s for the whole run). noise: spread of that engine's own rounds."
        "\nserver CPU: the S3 server's, in the same unit, while that engine ran."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--presign-count", type=int, default=10_000)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0,
        help="delay each response's first byte by this much, through a proxy in this process "
        "(20 stands for real S3's first-byte latency, where concurrency matters)",
    )
    parser.add_argument(
        "--boto3-twice",
        action="store_true",
        help=f"also run boto3 as a second engine ({BOTO3_AGAIN}): its ratio to boto3 shows "
        "what the machine's noise does to a ratio",
    )
    parser.add_argument(
        "--files-in",
        metavar="DIR",
        help="put the clients' files in a new folder in DIR (default: on tmpfs, beside the "
        "server's folder)",
    )
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    engines = (*ENGINES, BOTO3_AGAIN) if args.boto3_twice else ENGINES
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    workdir = Path(tempfile.mkdtemp(prefix="s3turbo-bench-", dir=base))
    (workdir / "server").mkdir()
    files = (
        Path(tempfile.mkdtemp(prefix="s3turbo-bench-", dir=args.files_in))
        if args.files_in
        else workdir
    )
    process, endpoint = start_s3s_fs(workdir / "server")
    latency = FaultProxy(endpoint) if args.latency_ms else None
    try:
        print(f"Preparing {args.big_mib} MiB and {args.small_files} x 16 KiB in {files} ...")
        prepare(files, endpoint, args.big_mib, args.small_files)
        if latency is not None:
            # The clients measured go through the proxy; its CPU is this process's, not theirs.
            latency.delay = args.latency_ms / 1000
            endpoint = latency.endpoint_url
            print(f"Every response delayed by {args.latency_ms:g} ms (proxy at {endpoint})")
        results: dict[tuple[str, str], list[dict]] = {}
        for round_number in range(args.rounds):
            for workload in workloads:
                order = engines if round_number % 2 == 0 else tuple(reversed(engines))
                for engine in order:
                    run = run_child(
                        engine, workload, endpoint, files, args.presign_count, process.pid
                    )
                    results.setdefault((engine, workload), []).append(run)
            print(f"  round {round_number + 1} of {args.rounds} done", flush=True)
        report(results, engines)
    finally:
        if latency is not None:
            latency.stop()
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(files, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        engine, workload, endpoint, workdir, count = sys.argv[2:7]
        print(json.dumps(measure(engine, workload, endpoint, Path(workdir), int(count))))
    else:
        main()
