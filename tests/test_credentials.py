"""Credentials that botocore refreshes (assume-role, SSO, IMDS) are refreshed during a transfer
that outlives them, through botocore, and the engine signs with the refreshed ones; requests
are signed, or not, as botocore signs them."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from datetime import datetime, timedelta, timezone

import boto3
import botocore.handlers
import botocore.session
import pytest
from botocore.config import Config
from botocore.credentials import CredentialProvider, RefreshableCredentials
from botocore.exceptions import ClientError
from helpers import MIB, fallbacks

import s3turbo
import s3turbo.aio
from faultproxy import FaultProxy
from servers import ACCESS_KEY, SECRET_KEY

PART = 5 * MIB


class ShortLivedCredentials(CredentialProvider):
    """A credential provider, as assume-role's, whose credentials last `lifetime` seconds and
    are due for refresh `advisory` seconds before that. `secrets` gives the secret key of each
    refresh in turn (the last one repeats)."""

    METHOD = "s3turbo-test"

    def __init__(self, secrets: list[str], lifetime: float = 3.0, advisory: float = 2.0):
        super().__init__()
        self.secrets = secrets
        self.lifetime = lifetime
        self.advisory = advisory
        self.fetches = 0

    def _metadata(self) -> dict:
        secret = self.secrets[min(self.fetches, len(self.secrets) - 1)]
        self.fetches += 1
        expiry = datetime.now(timezone.utc) + timedelta(seconds=self.lifetime)
        return {
            "access_key": ACCESS_KEY,
            "secret_key": secret,
            "token": None,
            "expiry_time": expiry.isoformat(),
        }

    def load(self) -> RefreshableCredentials:
        return RefreshableCredentials.create_from_metadata(
            self._metadata(),
            refresh_using=self._metadata,
            method=self.METHOD,
            advisory_timeout=self.advisory,
            mandatory_timeout=self.advisory / 2,
        )


def boto3_client_with(provider: CredentialProvider, server):
    session = botocore.session.Session()
    session.get_component("credential_provider").insert_before("env", provider)
    kwargs = server.client_kwargs()
    for name in ("aws_access_key_id", "aws_secret_access_key"):
        kwargs.pop(name)
    return boto3.Session(botocore_session=session).client("s3", **kwargs)


def client_with(provider: CredentialProvider, server) -> s3turbo.Client:
    return s3turbo.Client(boto3_client_with(provider, server))


class SlowStream(io.RawIOBase):
    """`parts` blocks of PART bytes, each after `delay` seconds: a transfer that takes as long
    as the test needs without moving much data."""

    def __init__(self, parts: int, delay: float):
        self.remaining = parts
        self.delay = delay

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self.remaining:
            return b""
        self.remaining -= 1
        time.sleep(self.delay)
        return bytes([self.remaining % 256]) * PART


CONFIG = s3turbo.TransferConfig(multipart_threshold=PART, multipart_chunksize=PART)


def test_refreshable_credentials_are_refreshed_during_a_long_upload(s3s_fs):
    bucket = s3s_fs.new_bucket()
    provider = ShortLivedCredentials([SECRET_KEY])
    client = client_with(provider, s3s_fs)
    started = time.monotonic()
    client.upload_fileobj(SlowStream(parts=8, delay=0.5), bucket, "k", Config=CONFIG)
    assert time.monotonic() - started > 3.5
    # One fetch when the client was made; then one about every second of the transfer, each
    # signed with what botocore handed out (s3s-fs checks every signature).
    assert provider.fetches >= 3
    head = s3s_fs.boto3_client().head_object(Bucket=bucket, Key="k")
    assert head["ContentLength"] == 8 * PART


def test_the_engine_signs_with_the_refreshed_credentials(s3s_fs):
    """The first refresh hands out a secret the server does not know: the parts signed after it
    are refused, so the upload fails (and is aborted), as it would with boto3."""
    bucket = s3s_fs.new_bucket()
    provider = ShortLivedCredentials([SECRET_KEY, SECRET_KEY, "not-the-secret"])
    client = client_with(provider, s3s_fs)
    with pytest.raises(ClientError) as raised:
        client.upload_fileobj(SlowStream(parts=8, delay=0.5), bucket, "k", Config=CONFIG)
    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert provider.fetches >= 3
    listing = s3s_fs.boto3_client().list_objects_v2(Bucket=bucket)
    assert listing.get("KeyCount") == 0


def test_aio_fetches_due_credentials_off_the_event_loop(s3s_fs):
    """Credentials botocore fetches before it signs (due for refresh here; SSO's and
    assume-role's, loaded at first use) take a request of their own, to STS or IMDS: s3turbo.aio
    has botocore fetch them in a worker thread, not on the event loop."""
    bucket = s3s_fs.new_bucket()
    provider = ShortLivedCredentials([SECRET_KEY], lifetime=600, advisory=900)  # always due
    fetched_on = []
    fetch = provider._metadata

    def noting_the_thread() -> dict:
        fetched_on.append(threading.get_ident())
        return fetch()

    provider._metadata = noting_the_thread
    s3 = s3turbo.aio.AsyncClient(boto3_client_with(provider, s3s_fs))
    fetched_on.clear()  # the client's first fetch, where it was made

    async def main():
        await s3.upload_fileobj(io.BytesIO(b"data"), bucket, "k")
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert fetched_on and loop_thread not in fetched_on
    assert s3s_fs.boto3_client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"


# How the clients are told to sign, and whether the engine serves them.
SIGNING_CASES = {
    "empty session token": True,
    "disable_signing on every operation": True,
    "disable_signing on PutObject": False,
}


@pytest.mark.parametrize("case", SIGNING_CASES)
def test_requests_are_signed_as_botocore_signs_them(s3s_fs, caplog, case):
    """An empty session token is no token to botocore: it sends no X-Amz-Security-Token (the
    engine sent an empty one). botocore's disable_signing on S3's choose-signer event (the old
    recipe for anonymous requests) makes requests unsigned: the engine sends them unsigned,
    as an anonymous client's, where it is on every operation it sends, and leaves the others
    to boto3 (it signed them all). Both clients send the same requests."""
    bucket = s3s_fs.new_bucket()
    seen = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        kwargs = {"endpoint_url": proxy.endpoint_url, "config": Config(retries={"max_attempts": 0})}
        if case == "empty session token":
            kwargs["aws_session_token"] = ""
        for name in ("s3turbo", "boto3"):
            make = s3s_fs.s3turbo_client if name == "s3turbo" else s3s_fs.boto3_client
            client = make(**kwargs)
            if case != "empty session token":
                event = "choose-signer.s3." + ("*" if "every" in case else "PutObject")
                client.meta.events.register(event, botocore.handlers.disable_signing)
            proxy.requests.clear()
            with caplog.at_level("DEBUG", logger="s3turbo"):
                try:
                    client.upload_fileobj(io.BytesIO(b"data"), bucket, name)
                    outcome = "stored"
                except ClientError as error:
                    outcome = error.response["Error"]["Code"]
            signing = [
                (r.method, "authorization" in r.headers, r.headers.get("x-amz-security-token"))
                for r in proxy.requests
            ]
            seen[name] = (outcome, signing)
    assert seen["s3turbo"] == seen["boto3"]
    if case == "empty session token":
        assert seen["boto3"] == ("stored", [("PUT", True, None)])
    else:
        assert seen["boto3"][1] == [("PUT", False, None)]
    assert (fallbacks(caplog) == []) == SIGNING_CASES[case]
