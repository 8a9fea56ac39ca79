"""Presigned URLs per second: s3turbo next to boto3 (its default signer and SigV4), in one run.

    .venv/bin/python benchmarks/presign.py [count]

No server is needed: presigning makes no request.
"""

from __future__ import annotations

import sys
import time

import boto3
from botocore.config import Config

import s3turbo

KWARGS = {
    "region_name": "us-east-1",
    "endpoint_url": "http://127.0.0.1:9000",
    "aws_access_key_id": "AKIDEXAMPLE",
    "aws_secret_access_key": "secret",
}


def rate(client, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        client.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": f"k/{i}"})
    return count / (time.perf_counter() - start)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    clients = {
        "s3turbo": s3turbo.client("s3", **KWARGS),
        "boto3 (default signer)": boto3.client("s3", **KWARGS),
        "boto3 (s3v4)": boto3.client("s3", config=Config(signature_version="s3v4"), **KWARGS),
    }
    for client in clients.values():  # warm up: endpoint caches, imports
        rate(client, 100)
    results = {name: rate(client, count) for name, client in clients.items()}
    for name, per_second in results.items():
        ratio = results["s3turbo"] / per_second
        print(f"{name:24} {per_second:10.0f} URLs/s   s3turbo is {ratio:5.1f}x")


if __name__ == "__main__":
    main()
