"""Presigned URLs per second: s3turbo next to boto3, with the default signer (SigV2 in
us-east-1, as botocore presigns by default there) and with SigV4, in one run.

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
    sigv4 = Config(signature_version="s3v4")
    pairs = {
        "default signer (SigV2)": (s3turbo.client("s3", **KWARGS), boto3.client("s3", **KWARGS)),
        "s3v4": (
            s3turbo.client("s3", config=sigv4, **KWARGS),
            boto3.client("s3", config=sigv4, **KWARGS),
        ),
    }
    for ours, theirs in pairs.values():
        for client in (ours, theirs):  # warm up: endpoint caches, imports
            rate(client, 100)
    for name, (ours, theirs) in pairs.items():
        ours_rate, theirs_rate = rate(ours, count), rate(theirs, count)
        print(
            f"{name:24} s3turbo {ours_rate:9.0f} URLs/s   boto3 {theirs_rate:8.0f} URLs/s"
            f"   s3turbo is {ours_rate / theirs_rate:5.1f}x"
        )


if __name__ == "__main__":
    main()
