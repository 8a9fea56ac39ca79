"""Network settings of the botocore client that the engine honours itself: a custom CA bundle
(verify=<path>, AWS_CA_BUNDLE), explicit proxies, AWS's endpoint variants and the region
redirect, through real relays in front of s3s-fs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import io
import socket
import struct
import threading
import time

import boto3
import botocore.httpsession
import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from helpers import (
    MIB,
    connections_left,
    fallbacks,
    keepalive_flags,
    served_by_engine,
    sha256_file,
    write_random,
)
from urllib3.exceptions import InsecureRequestWarning

import s3turbo
import s3turbo.aio
from faultproxy import Fault, FaultProxy
from relays import Certificates, ForwardProxy, TlsFront
from servers import ACCESS_KEY, SECRET_KEY, free_port

ONE_ATTEMPT = {"total_max_attempts": 1}


def s3s_fs_port(server) -> int:
    return int(server.endpoint_url.rsplit(":", 1)[1])


def through(proxy: ForwardProxy | None, config: Config) -> Config:
    """`config`, sending https requests through `proxy` if there is one."""
    if proxy is None:
        return config
    return config.merge(Config(proxies={"https": f"http://127.0.0.1:{proxy.port}"}))


@pytest.fixture
def certificates(tmp_path_factory):
    return Certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def https_front(s3s_fs, certificates):
    front = TlsFront(s3s_fs_port(s3s_fs), certificates)
    yield front
    front.close()


def round_trip(client, bucket, tmp_path, size=MIB + 17):
    source = write_random(tmp_path / "source.bin", size)
    client.upload_file(str(source), bucket, "k")
    client.download_file(bucket, "k", str(tmp_path / "out.bin"))
    assert sha256_file(tmp_path / "out.bin") == sha256_file(source)


def test_custom_ca_bundle(s3s_fs, https_front, certificates, tmp_path, monkeypatch, caplog):
    bucket = s3s_fs.new_bucket()
    endpoint = f"https://localhost:{https_front.port}"
    with served_by_engine(caplog):
        client = s3s_fs.s3turbo_client(endpoint_url=endpoint, verify=str(certificates.ca_bundle))
        round_trip(client, bucket, tmp_path)
        monkeypatch.setenv("AWS_CA_BUNDLE", str(certificates.ca_bundle))
        round_trip(s3s_fs.s3turbo_client(endpoint_url=endpoint), bucket, tmp_path)
        # `~` for the home directory, as urllib3 takes it.
        monkeypatch.setenv("HOME", str(certificates.ca_bundle.parent))
        monkeypatch.setenv("AWS_CA_BUNDLE", f"~/{certificates.ca_bundle.name}")
        round_trip(s3s_fs.s3turbo_client(endpoint_url=endpoint), bucket, tmp_path)
    assert https_front.connections >= 1


@pytest.mark.parametrize(
    ("server_certificate", "host", "taken"),
    [
        ("self-signed", "localhost", True),
        ("self-signed", "127.0.0.1", False),  # not its name
        ("self-signed, expired", "localhost", False),
        ("common name only", "localhost", True),
        ("common name only", "127.0.0.1", False),  # an address is never a common name
    ],
)
@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxied"])
def test_certificates_openssl_takes_beyond_webpki_are_taken_as_in_boto3(
    s3s_fs, tmp_path_factory, tmp_path, caplog, server_certificate, host, taken, proxied
):
    """Server certificates boto3's TLS (OpenSSL) takes and webpki, as rustls has it, refuses:
    a self-signed one given as the CA bundle (a CA's, as `openssl req -x509` makes them), and
    one with its host name only in the subject's common name. Both clients take them for their
    names, and refuse them, with an SSLError, for other names or past their dates, directly
    and through a proxy's tunnel. The engine refused both kinds (CaUsedAsEndEntity,
    NotValidForName), through a proxy until its own client served proxies too."""
    certificates = Certificates(
        tmp_path_factory.mktemp("certificates"),
        expired=server_certificate.endswith("expired"),
        server=server_certificate.removesuffix(", expired"),
    )
    front = TlsFront(s3s_fs_port(s3s_fs), certificates)
    bucket = s3s_fs.new_bucket()
    proxy = ForwardProxy({host: front.port}) if proxied else None
    config = through(proxy, Config(retries=ONE_ATTEMPT))
    kwargs = {
        "endpoint_url": f"https://{host}:{front.port}",
        "verify": str(certificates.ca_bundle),
        "config": config,
    }
    try:
        with served_by_engine(caplog):
            for client in (s3s_fs.boto3_client(**kwargs), s3s_fs.s3turbo_client(**kwargs)):
                if taken:
                    round_trip(client, bucket, tmp_path)
                else:
                    with pytest.raises(SSLError, match="SSL validation failed"):
                        client.download_file(bucket, "k", str(tmp_path / "out.bin"))
    finally:
        front.close()
        if proxy:
            proxy.close()
    assert front.connections >= 2
    if proxy:
        assert len(proxy.asked) == front.connections


@pytest.mark.parametrize("bundle", ["another CA's", "no certificate in it"])
@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxied"])
def test_untrusted_certificate_is_an_ssl_error_as_in_boto3(
    s3s_fs, https_front, tmp_path_factory, tmp_path, caplog, proxied, bundle
):
    """Verified against another CA's bundle, or one with no certificate in it, the server's
    certificate is refused: botocore's SSLError from both, saying why (the engine's said
    what connectors it went through), with no file left behind, directly and through a proxy's
    tunnel."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    ca_bundle = Certificates(tmp_path_factory.mktemp("other-ca")).ca_bundle
    if bundle == "no certificate in it":
        ca_bundle.write_text("not a certificate\n")
    proxy = ForwardProxy({"localhost": https_front.port}) if proxied else None
    config = through(proxy, Config(retries=ONE_ATTEMPT))
    kwargs = {
        "endpoint_url": f"https://localhost:{https_front.port}",
        "verify": str(ca_bundle),
        "config": config,
    }
    # A refused certificate in OpenSSL's words, which scripts look for.
    why = {
        "another CA's": r"\[SSL: CERTIFICATE_VERIFY_FAILED\] certificate verify failed: "
        "certificate signature failure",
        "no certificate in it": ".*certificate",
    }[bundle]
    why = r"SSL validation failed for https://localhost:\d+\S* " + why
    try:
        with served_by_engine(caplog):
            for client in (s3s_fs.boto3_client(**kwargs), s3s_fs.s3turbo_client(**kwargs)):
                with pytest.raises(SSLError, match=why):
                    client.upload_file(str(source), bucket, "k")
                with pytest.raises(SSLError, match=why):
                    client.download_file(bucket, "k", str(tmp_path / "out.bin"))
    finally:
        if proxy:
            proxy.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin"]
    if proxy:
        # The engine refuses a bundle with no certificate before it connects; boto3 refuses it
        # in the handshake.
        tunnels = 4 if bundle == "another CA's" else 2
        assert proxy.asked == [f"localhost:{https_front.port}"] * tunnels


@pytest.mark.parametrize("form", ["certificate and key", "one file"])
def test_client_certificate_as_in_boto3(s3s_fs, certificates, tmp_path, caplog, form):
    """client_cert (mutual TLS): a server that asks for a client certificate takes the one
    both clients show, given as two files or one; without one, or with a certificate file
    that holds no key, both raise an SSLError. (A file that is not there is an SSLError too,
    where boto3 retries a ConnectionClosedError.)"""
    bucket = s3s_fs.new_bucket()
    front = TlsFront(s3s_fs_port(s3s_fs), certificates, client_certificates=True)
    client_cert = {
        "certificate and key": (str(certificates.client_cert), str(certificates.client_key)),
        "one file": str(certificates.client_cert_and_key),
    }[form]
    kwargs = {
        "endpoint_url": f"https://localhost:{front.port}",
        "verify": str(certificates.ca_bundle),
    }
    try:
        with served_by_engine(caplog):
            client = s3s_fs.s3turbo_client(config=Config(client_cert=client_cert), **kwargs)
            round_trip(client, bucket, tmp_path)
        boto = s3s_fs.boto3_client(config=Config(client_cert=client_cert), **kwargs)
        boto.download_file(bucket, "k", str(tmp_path / "boto3.bin"))
        assert sha256_file(tmp_path / "boto3.bin") == sha256_file(tmp_path / "source.bin")
        for make in (s3s_fs.boto3_client, s3s_fs.s3turbo_client):
            for unusable in (None, str(certificates.client_cert)):
                client = make(config=Config(retries=ONE_ATTEMPT, client_cert=unusable), **kwargs)
                with pytest.raises(SSLError):
                    client.upload_fileobj(io.BytesIO(b"data"), bucket, "refused")
                with pytest.raises(SSLError):
                    client.download_file(bucket, "k", str(tmp_path / "refused"))
        assert not (tmp_path / "refused").exists()
    finally:
        front.close()


@pytest.fixture
def unverified_front(s3s_fs, tmp_path_factory, request):
    """https://localhost:<port> in front of s3s-fs, with a certificate from an unknown CA, or
    an expired one (`indirect` parameter "expired")."""
    expired = getattr(request, "param", "") == "expired"
    certificates = Certificates(tmp_path_factory.mktemp("unverified"), expired=expired)
    front = TlsFront(s3s_fs_port(s3s_fs), certificates)
    yield front
    front.close()


UNVERIFIED_WARNING = "Unverified HTTPS request is being made to host 'localhost'"


@pytest.mark.parametrize("unverified_front", ["unknown CA", "expired"], indirect=True)
def test_verify_false_takes_any_certificate(s3s_fs, unverified_front, tmp_path, caplog):
    """verify=False: the engine serves the calls over HTTPS to a server whose certificate
    nothing vouches for, and warns as boto3 (urllib3) does; boto3 reads what it wrote."""
    bucket = s3s_fs.new_bucket()
    kwargs = {"endpoint_url": f"https://localhost:{unverified_front.port}", "verify": False}
    with served_by_engine(caplog):
        with pytest.warns(InsecureRequestWarning, match=UNVERIFIED_WARNING):
            round_trip(s3s_fs.s3turbo_client(**kwargs), bucket, tmp_path, size=9 * MIB)
    with pytest.warns(InsecureRequestWarning, match=UNVERIFIED_WARNING):
        s3s_fs.boto3_client(**kwargs).download_file(bucket, "k", str(tmp_path / "boto3.bin"))
    assert sha256_file(tmp_path / "boto3.bin") == sha256_file(tmp_path / "source.bin")
    assert unverified_front.connections >= 1


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("call", ["upload_fileobj", "download_fileobj"])
def test_verify_false_errors_are_boto3s(s3s_fs, tmp_path, call):
    """Through the engine's client for verify=False, a closed port, and a server that takes a
    PUT and never answers, are the errors boto3 raises. (A silent GET is not compared: boto3's
    download has had its HEAD answered by then, and s3transfer retries the GET on its own.)"""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"data")
    config = Config(read_timeout=1, retries=ONE_ATTEMPT)
    (tmp_path / "certificates").mkdir()
    certificates = Certificates(tmp_path / "certificates")
    seen = {}
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        method = "PUT" if call == "upload_fileobj" else "GET"
        proxy.inject(Fault(method=method, stall_response_head=True, times=None))
        front = TlsFront(int(proxy.endpoint_url.rsplit(":", 1)[1]), certificates)
        endpoints = {"closed": f"https://localhost:{free_port()}"}
        if call == "upload_fileobj":
            endpoints["silent"] = f"https://localhost:{front.port}"
        try:
            for name, make in (("boto3", s3s_fs.boto3_client), ("s3turbo", s3s_fs.s3turbo_client)):
                for case, endpoint in endpoints.items():
                    client = make(endpoint_url=endpoint, verify=False, config=config)
                    with pytest.raises(Exception) as caught:
                        if call == "upload_fileobj":
                            client.upload_fileobj(io.BytesIO(b"data"), bucket, "k")
                        else:
                            client.download_fileobj(bucket, "k", io.BytesIO())
                    seen[name, case] = (type(caught.value), str(caught.value))
        finally:
            front.close()
    for case in endpoints:
        assert seen["s3turbo", case] == seen["boto3", case]
    assert seen["boto3", "closed"][0] is EndpointConnectionError
    if call == "upload_fileobj":
        assert seen["boto3", "silent"][0] is ReadTimeoutError


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("tls", ["http", "CA bundle", "verify=False"])
def test_tcp_keepalive_is_set_on_the_connections_as_in_boto3(
    s3s_fs, certificates, tmp_path, caplog, tls
):
    """tcp_keepalive=True: every connection has SO_KEEPALIVE, as boto3's have; without it,
    none. Each client reaches the server through a relay of its own, so that its connections
    can be told apart."""
    bucket = s3s_fs.new_bucket()
    clients = {
        "s3turbo": (s3s_fs.s3turbo_client, Config(tcp_keepalive=True)),
        "s3turbo without": (s3s_fs.s3turbo_client, Config()),
        "boto3": (s3s_fs.boto3_client, Config(tcp_keepalive=True)),
    }
    flags = {}
    for name, (make, config) in clients.items():
        if tls == "http":
            relay = FaultProxy(s3s_fs.endpoint_url)
            endpoint, close = relay.endpoint_url, relay.stop
        else:
            relay = TlsFront(s3s_fs_port(s3s_fs), certificates)
            endpoint, close = f"https://localhost:{relay.port}", relay.close
        try:
            verify = {"CA bundle": str(certificates.ca_bundle), "verify=False": False}.get(tls)
            # Kept until its connections are seen: a boto3 client closes them when freed.
            client = make(endpoint_url=endpoint, verify=verify, config=config)
            with served_by_engine(caplog):
                round_trip(client, bucket, tmp_path)
            flags[name] = set(keepalive_flags(relay.port))
        finally:
            close()
    assert flags == {"s3turbo": {1}, "s3turbo without": {0}, "boto3": {1}}


@pytest.mark.parametrize("tcp_keepalive", [False, True], ids=["default", "tcp_keepalive"])
@pytest.mark.parametrize("max_pool_connections", [None, 4])
def test_idle_connections_kept_are_max_pool_connections(
    s3s_fs, tmp_path, tcp_keepalive, max_pool_connections
):
    """botocore keeps at most max_pool_connections connections for later requests (urllib3's
    pool size, 10 by default); more are opened when more requests are in flight, and closed
    once done. The engine kept every connection it had opened: hundreds after a burst of
    threads, each an open file."""
    bucket = s3s_fs.new_bucket()
    boto = s3s_fs.boto3_client()
    for i in range(32):
        boto.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x" * 1000)
    config = Config(tcp_keepalive=tcp_keepalive)
    if max_pool_connections is not None:
        config = config.merge(Config(max_pool_connections=max_pool_connections))
    kept = max_pool_connections or 10
    with FaultProxy(s3s_fs.endpoint_url) as relay:
        client = s3s_fs.s3turbo_client(endpoint_url=relay.endpoint_url, config=config)
        barrier = threading.Barrier(32)

        def download(i):
            barrier.wait()  # all at once: more requests in flight than connections kept
            client.download_file(bucket, f"k{i}", str(tmp_path / f"f{i}"))

        threads = [threading.Thread(target=download, args=(i,)) for i in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert relay.connections > kept
        assert connections_left(relay.port, at_most=kept) <= kept


@pytest.mark.parametrize("max_pool_connections", [0, -1])
def test_a_pool_size_of_none_keeps_any_number(s3s_fs, tmp_path, caplog, max_pool_connections):
    """urllib3 keeps any number of connections for a pool size of 0 or less, and boto3 works
    with it (the engine raised OverflowError for -1)."""
    bucket = s3s_fs.new_bucket()
    config = Config(max_pool_connections=max_pool_connections)
    with served_by_engine(caplog):
        round_trip(s3s_fs.s3turbo_client(config=config), bucket, tmp_path)


def test_tcp_keepalive_from_the_config_file(s3s_fs, tmp_path, monkeypatch, caplog):
    """`tcp_keepalive = true` in the config file turns it on as the Config does."""
    (tmp_path / "config").write_text("[default]\ntcp_keepalive = true\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # one that reads that file
    bucket = s3s_fs.new_bucket()
    flags = {}
    for name, make in (("s3turbo", s3s_fs.s3turbo_client), ("boto3", s3s_fs.boto3_client)):
        with FaultProxy(s3s_fs.endpoint_url) as relay:
            client = make(endpoint_url=relay.endpoint_url)
            with served_by_engine(caplog):
                round_trip(client, bucket, tmp_path)
            flags[name] = set(keepalive_flags(relay.port))
    assert flags == {"s3turbo": {1}, "boto3": {1}}


@pytest.mark.parametrize("tcp_keepalive", [False, True], ids=["default", "tcp_keepalive"])
def test_uploads_and_downloads_share_one_connection_as_in_boto3(s3s_fs, tmp_path, tcp_keepalive):
    """One after another, uploads (which have no read timeout) and downloads go over the same
    kept-alive connection, as boto3's do: one connection to the server, not one per kind."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    connections = {}
    for name, make in (("s3turbo", s3s_fs.s3turbo_client), ("boto3", s3s_fs.boto3_client)):
        with FaultProxy(s3s_fs.endpoint_url) as relay:
            client = make(
                endpoint_url=relay.endpoint_url, config=Config(tcp_keepalive=tcp_keepalive)
            )
            for _ in range(3):
                client.upload_file(str(source), bucket, "k")
                client.download_file(bucket, "k", str(tmp_path / "out.bin"))
            connections[name] = len(keepalive_flags(relay.port))
    assert connections == {"s3turbo": 1, "boto3": 1}


def test_a_dropped_clients_connections_close_as_boto3s(s3s_fs, tmp_path):
    """The engine's pooled connections live as long as the client they are for, as boto3's:
    of five clients with settings of their own, used and dropped one after another, only the
    last one's connection is left. A client is freed when its last reference goes, as boto3's
    is, without the cyclic garbage collector (which some servers turn off or freeze): a
    patched client held its engine in a reference cycle."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    left = {}
    makers = {
        "s3turbo": s3s_fs.s3turbo_client,
        "patched": functools.partial(patched_client, s3s_fs),
        "boto3": s3s_fs.boto3_client,
    }
    gc.collect()
    gc.disable()
    try:
        for name, make in makers.items():
            with FaultProxy(s3s_fs.endpoint_url) as relay:
                for number in range(5):
                    config = Config(user_agent_extra=f"client-{number}")
                    client = make(endpoint_url=relay.endpoint_url, config=config)
                    client.upload_file(str(source), bucket, "k")
                    client.download_file(bucket, "k", str(tmp_path / "out.bin"))
                    client.generate_presigned_url(
                        "get_object", Params={"Bucket": bucket, "Key": "k"}
                    )
                left[name] = connections_left(relay.port, at_most=1)
                del client
    finally:
        gc.enable()
    assert left == {"s3turbo": 1, "patched": 1, "boto3": 1}


def patched_client(server, **kwargs):
    """A boto3 client made while patched."""
    s3turbo.patch()
    try:
        return server.boto3_client(**kwargs)
    finally:
        s3turbo.unpatch()


def test_close_closes_the_engines_connections_as_boto3s(s3s_fs, tmp_path):
    """client.close() closes boto3's pool, and the engine's with it: through s3turbo.client,
    a patched boto3 client, and an s3turbo.aio client (its close(), awaited or not, and the end
    of its `async with` block)."""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)

    async def aio_round_trip(endpoint_url, name):
        s3 = s3turbo.aio.client("s3", **s3s_fs.client_kwargs(endpoint_url=endpoint_url))
        async with contextlib.AsyncExitStack() as stack:
            if name == "aio":
                await stack.enter_async_context(s3)
            await s3.upload_file(str(source), bucket, "k")
            await s3.download_file(bucket, "k", str(tmp_path / "out.bin"))
        if name == "aio close()":
            s3.close()  # as boto3's, at once; awaited as aiobotocore's, it works too
        elif name == "aio await close()":
            await s3.close()
        return s3

    left = {}
    makers = {
        "boto3": s3s_fs.boto3_client,
        "s3turbo": s3s_fs.s3turbo_client,
        "patched": functools.partial(patched_client, s3s_fs),
    }
    for name in (*makers, "aio", "aio close()", "aio await close()"):
        with FaultProxy(s3s_fs.endpoint_url) as relay:
            if name.startswith("aio"):
                client = asyncio.run(aio_round_trip(relay.endpoint_url, name))  # kept: not freed
            else:
                client = makers[name](endpoint_url=relay.endpoint_url)
                round_trip(client, bucket, tmp_path)
                assert len(keepalive_flags(relay.port)) == 1, name
                client.close()
            deadline = time.monotonic() + 5  # the engine closes them on its own threads
            while keepalive_flags(relay.port) and time.monotonic() < deadline:
                time.sleep(0.05)
            left[name] = len(keepalive_flags(relay.port))
    assert set(left.values()) == {0}, left


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxied"])
def test_servers_are_trusted_by_botocores_bundle_not_the_systems_roots(
    s3s_fs, https_front, certificates, tmp_path, monkeypatch, caplog, proxied
):
    """Without a CA bundle named (verify=<path>, AWS_CA_BUNDLE), botocore trusts its default
    bundle, certifi's, and not the system's roots: a server only the system trusts (here
    SSL_CERT_FILE names its CA) is refused by both clients with an SSLError, and a server whose
    CA is in botocore's default bundle is taken by both."""
    for name in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca_bundle))
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    proxy = ForwardProxy({"localhost": https_front.port}) if proxied else None
    config = through(proxy, Config(retries=ONE_ATTEMPT))
    kwargs = {"endpoint_url": f"https://localhost:{https_front.port}", "config": config}
    try:
        with served_by_engine(caplog):
            for make in (s3s_fs.boto3_client, s3s_fs.s3turbo_client):
                client = make(**kwargs)
                with pytest.raises(SSLError, match="certificate"):
                    client.upload_file(str(source), bucket, "k")
                with pytest.raises(SSLError, match="certificate"):
                    client.download_file(bucket, "k", str(tmp_path / "out.bin"))
            assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin"]
            monkeypatch.setattr(botocore.httpsession, "where", lambda: str(certificates.ca_bundle))
            for make in (s3s_fs.boto3_client, s3s_fs.s3turbo_client):
                round_trip(make(**kwargs), bucket, tmp_path)
    finally:
        if proxy:
            proxy.close()


@pytest.fixture
def unconnectable_port():
    """A port whose connections never complete: its listener takes none, and its backlog is
    full, so the kernel drops the SYNs of any more."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    yield port
    for sock in (*fillers, listener):
        sock.close()


@pytest.mark.parametrize(
    "scheme, tcp_keepalive",
    [("http", False), ("http", True), ("https", False)],
    ids=["http", "http, tcp_keepalive", "https"],
)
def test_a_connect_timeout_is_botocores_connect_timeout_error(
    tmp_path, unconnectable_port, scheme, tcp_keepalive
):
    """No TCP connection within connect_timeout: botocore's ConnectTimeoutError (a
    ConnectionError), which s3transfer does not try again; the engine raised ReadTimeoutError
    (over https until the TLS handshake was timed apart), and a download waited twice as long
    (a HeadObject after the GET)."""
    source = write_random(tmp_path / "source.bin", 1000)
    kwargs = {
        "endpoint_url": f"{scheme}://127.0.0.1:{unconnectable_port}",
        "region_name": "us-east-1",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "config": Config(connect_timeout=2, retries=ONE_ATTEMPT, tcp_keepalive=tcp_keepalive),
    }
    for make in (boto3.client, s3turbo.client):
        client = make("s3", **kwargs)
        for call, args in (
            (client.upload_file, (str(source), "bucket", "k")),
            (client.download_file, ("bucket", "k", str(tmp_path / "out.bin"))),
        ):
            started = time.monotonic()
            with pytest.raises(ConnectTimeoutError, match="Connect timeout on endpoint URL"):
                call(*args)
            assert time.monotonic() - started < 3.5, make.__module__
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin"]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize(
    "setting",
    [{}, {"verify": False}, {"proxy": True}],
    ids=["direct", "verify=False", "through a proxy"],
)
def test_a_tls_handshake_that_never_ends_takes_the_connect_timeout_as_in_boto3(
    tmp_path, caplog, setting
):
    """A server that takes the TCP connection and never answers the TLS handshake: the
    handshake is part of connecting, bounded by connect_timeout (1 s here, against a read
    timeout of 6 s), and the error is botocore's ReadTimeoutError, as boto3's is. A download
    makes as many handshakes as boto3's (its HeadObject's): the engine sent a HeadObject after
    its first GET's, and waited twice as long. Through a proxy, its tunnel and the handshake
    are bounded as one, as urllib3 bounds them."""
    source = write_random(tmp_path / "source.bin", 1000)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    proxy = ForwardProxy({"silent.test": port}) if setting.get("proxy") else None
    accepted = []

    def accept_and_say_nothing():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return  # closed

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    config = Config(connect_timeout=1, read_timeout=6, retries=ONE_ATTEMPT)
    host = "127.0.0.1"
    if proxy:
        host = "silent.test"  # a name only the proxy knows
        proxies = {"https": f"http://127.0.0.1:{proxy.port}"}
        config = config.merge(Config(proxies=proxies, s3={"addressing_style": "path"}))
    kwargs = {
        "endpoint_url": f"https://{host}:{port}",
        "region_name": "us-east-1",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "verify": setting.get("verify"),
        "config": config,
    }
    took, handshakes = {}, {}
    try:
        with served_by_engine(caplog):
            for name, make in (("boto3", boto3.client), ("s3turbo", s3turbo.client)):
                client = make("s3", **kwargs)
                for call, args in (
                    (client.upload_file, (str(source), "bucket", "k")),
                    (client.download_file, ("bucket", "k", str(tmp_path / "out.bin"))),
                ):
                    started, before = time.monotonic(), len(accepted)
                    with pytest.raises(ReadTimeoutError):
                        call(*args)
                    took[name, call.__name__] = time.monotonic() - started
                    handshakes[name, call.__name__] = len(accepted) - before
    finally:
        listener.close()
        if proxy:
            proxy.close()
    assert max(took.values()) < 3, took
    assert handshakes == {
        (name, call): 1
        for name in ("boto3", "s3turbo")
        for call in ("upload_file", "download_file")
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin"]
    if proxy:
        assert proxy.asked == [f"silent.test:{port}"] * 4


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("ending, error", [("close", SSLError), ("reset", ConnectionClosedError)])
@pytest.mark.parametrize("verify", [None, False], ids=["verified", "verify=False"])
def test_a_tls_handshake_the_server_breaks_off_fails_as_in_boto3(tmp_path, ending, error, verify):
    """A server that takes the TCP connection and the client's hello, then closes it: Python's
    ssl module calls that a protocol violation, botocore's SSLError; or resets it: an OSError,
    botocore's ConnectionClosedError. The engine raised EndpointConnectionError for both, as if
    it had not connected."""
    source = write_random(tmp_path / "source.bin", 1000)
    listener = socket.create_server(("127.0.0.1", 0))

    def take_the_hello_and_end():
        while True:
            try:
                connection = listener.accept()[0]
            except OSError:
                return  # closed
            connection.recv(65536)
            if ending == "reset":
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()

    threading.Thread(target=take_the_hello_and_end, daemon=True).start()
    kwargs = {
        "endpoint_url": f"https://127.0.0.1:{listener.getsockname()[1]}",
        "region_name": "us-east-1",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "verify": verify,
        "config": Config(retries=ONE_ATTEMPT),
    }
    raised = {}
    try:
        for make in (boto3.client, s3turbo.client):
            client = make("s3", **kwargs)
            with pytest.raises(error) as refused_upload:
                client.upload_file(str(source), "bucket", "k")
            with pytest.raises(error) as refused_download:
                client.download_file("bucket", "k", str(tmp_path / "out.bin"))
            raised[make] = [type(refused_upload.value), type(refused_download.value)]
    finally:
        listener.close()
    assert raised[boto3.client] == raised[s3turbo.client] == [error, error]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin"]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("setting", ["verify=False", "tcp_keepalive", "client_cert"])
def test_own_client_settings_go_through_a_proxy(s3s_fs, certificates, tmp_path, caplog, setting):
    """verify=False, tcp_keepalive and client_cert through a proxy's tunnel, as boto3 sends
    them: the engine serves them (boto3 did, when the engine's client for them went direct).
    A proxy for the other scheme alone is not used."""
    front = TlsFront(
        s3s_fs_port(s3s_fs), certificates, client_certificates=setting == "client_cert"
    )
    proxy = ForwardProxy({"localhost": front.port})
    proxies = {"https": f"http://127.0.0.1:{proxy.port}", "http": DEAD_PROXY}
    config = {
        "verify=False": Config(),
        "tcp_keepalive": Config(tcp_keepalive=True),
        "client_cert": Config(client_cert=str(certificates.client_cert_and_key)),
    }[setting].merge(Config(proxies=proxies))
    verify = False if setting == "verify=False" else str(certificates.ca_bundle)
    endpoint = f"https://localhost:{front.port}"
    try:
        with served_by_engine(caplog):
            client = s3s_fs.s3turbo_client(endpoint_url=endpoint, verify=verify, config=config)
            round_trip(client, s3s_fs.new_bucket(), tmp_path)
    finally:
        proxy.close()
        front.close()
    assert proxy.asked and set(proxy.asked) == {f"localhost:{front.port}"}


def _answering_proxy(answer: bytes) -> socket.socket:
    """A proxy that reads each request's head, answers `answer` (nothing: it just closes) and
    closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed
            head = b""
            while b"\r\n\r\n" not in head and (chunk := connection.recv(4096)):
                head += chunk
            connection.sendall(answer)
            if not answer.endswith(b"<html><body>"):  # a page's end never comes
                connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener


ANSWERS = {
    "refuses the tunnel (407)": b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b"Content-Length: 0\r\n\r\n",
    # As Squid refuses one: a page, its connection left open.
    "refuses the tunnel with a page (403)": b"HTTP/1.1 403 Forbidden\r\n"
    b"Content-Type: text/html\r\nContent-Length: 10000\r\n\r\n<html><body>",
    "answers CONNECT with no HTTP": b"FOO BAR\r\n\r\n",
    "closes without answering CONNECT": b"",
    "closes without answering the request": b"",
}


@pytest.mark.parametrize(
    "scheme, proxy, raised",
    [
        ("http", "nothing listens", ProxyConnectionError),
        ("https", "nothing listens", ProxyConnectionError),
        ("https", "refuses the tunnel (407)", ProxyConnectionError),
        ("https", "refuses the tunnel with a page (403)", ProxyConnectionError),
        ("https", "answers CONNECT with no HTTP", ConnectionClosedError),
        ("https", "closes without answering CONNECT", ConnectionClosedError),
        ("http", "closes without answering the request", ProxyConnectionError),
    ],
)
def test_proxy_failures_raise_as_in_boto3(
    s3s_fs, https_front, certificates, tmp_path, scheme, proxy, raised
):
    """A proxy that cannot be reached or refuses the tunnel is botocore's ProxyConnectionError,
    naming the proxy, at once (the engine waited for a refusal's page to end); so is a plain
    request's proxy that closes without answering (urllib3 counts its connection as not made
    then). One that closes before answering CONNECT, or answers it with no HTTP, is a
    ConnectionClosedError. The engine raised EndpointConnectionError or ConnectionClosedError
    for all of them."""
    listener = None
    if proxy == "nothing listens":
        proxy_url = f"http://127.0.0.1:{free_port()}"
    else:
        listener = _answering_proxy(ANSWERS[proxy])
        proxy_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    endpoint = {"http": s3s_fs.endpoint_url, "https": f"https://localhost:{https_front.port}"}
    config = Config(proxies={scheme: proxy_url}, retries=ONE_ATTEMPT, connect_timeout=20)
    kwargs = {
        "endpoint_url": endpoint[scheme],
        "verify": str(certificates.ca_bundle),
        "config": config,
    }
    failures = {}
    try:
        for make in (s3s_fs.boto3_client, s3s_fs.s3turbo_client):
            started = time.monotonic()
            with pytest.raises(BotoCoreError) as failed:
                make(**kwargs).download_file("bucket", "k", str(tmp_path / "out.bin"))
            failures[make] = (type(failed.value), str(failed.value))
            assert time.monotonic() - started < 10
    finally:
        if listener is not None:
            listener.close()
    assert failures[s3s_fs.s3turbo_client] == failures[s3s_fs.boto3_client]
    assert failures[s3s_fs.boto3_client][0] is raised
    assert list(tmp_path.iterdir()) == []


class SlowTlsFront(TlsFront):
    """A TLS front that lets each handshake wait 1.2 s (a far or busy server)."""

    def upstream(self, client):
        time.sleep(1.2)
        return super().upstream(client)


class SlowForwardProxy(ForwardProxy):
    """A proxy that answers each CONNECT after 1.2 s."""

    def upstream(self, client):
        time.sleep(1.2)
        return super().upstream(client)


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxied"])
def test_a_slow_tls_handshake_has_the_connect_timeout_not_the_read_timeout(
    s3s_fs, certificates, tmp_path, caplog, proxied
):
    """urllib3 bounds each step of connecting (the TCP connect, each read of a proxy's answer
    to CONNECT, the TLS handshake) by the connect timeout, and the wait for an answer by the
    read timeout from then on: a handshake and a tunnel each longer than the read timeout, and
    together longer than the connect timeout, take their time, for both clients. The engine
    counted them in the read timeout, and failed with ReadTimeoutError after every attempt;
    then the tunnel and the handshake shared one connect timeout."""
    front = SlowTlsFront(s3s_fs_port(s3s_fs), certificates)
    proxy = SlowForwardProxy({"localhost": front.port}) if proxied else None
    config = through(proxy, Config(connect_timeout=2, read_timeout=1, retries=ONE_ATTEMPT))
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 100_000)
    s3s_fs.boto3_client().upload_file(str(source), bucket, "k")
    kwargs = {
        "endpoint_url": f"https://localhost:{front.port}",
        "verify": str(certificates.ca_bundle),
        "config": config,
    }
    try:
        with served_by_engine(caplog):
            for make in (s3s_fs.boto3_client, s3s_fs.s3turbo_client):
                out = tmp_path / f"{make.__name__}.bin"
                make(**kwargs).download_file(bucket, "k", str(out))
                assert sha256_file(out) == sha256_file(source)
    finally:
        front.close()
        if proxy:
            proxy.close()
    assert front.connections == 2


@pytest.mark.parametrize("path", ["", "/a path"])
def test_explicit_proxy(s3s_fs, tmp_path, caplog, path):
    """The endpoint's host name resolves only inside the proxy: the transfer works only if the
    engine sends its requests through it. A path in the proxy's URL is no part of the proxy,
    to urllib3 (the engine refused one with a space)."""
    proxy = ForwardProxy({"s3.via-proxy.test": s3s_fs_port(s3s_fs)})
    bucket = s3s_fs.new_bucket()
    config = Config(
        proxies={"http": f"http://127.0.0.1:{proxy.port}{path}"},
        s3={"addressing_style": "path"},
        retries=ONE_ATTEMPT,
    )
    endpoint = f"http://s3.via-proxy.test:{s3s_fs_port(s3s_fs)}"
    try:
        with served_by_engine(caplog):
            client = s3s_fs.s3turbo_client(endpoint_url=endpoint, config=config)
            round_trip(client, bucket, tmp_path, size=9 * MIB)
        assert proxy.connections >= 1
    finally:
        proxy.close()


@pytest.mark.parametrize(
    "proxy_url",
    ["http://127.0.0.1:3128 ", "http://127.0.0.1:3128\n", "http://127.0.0.1:99999", "http://:3128"],
)
def test_a_proxy_url_urllib3_cannot_use_fails_as_in_boto3(s3s_fs, tmp_path, proxy_url):
    """A space or line break left after it (as a .env file may leave one in HTTPS_PROXY), a
    port out of range, no host: boto3 raises its HTTPClientError, and so does the call, which
    boto3 serves. The engine raised ValueError, or a ProxyConnectionError it retried."""
    config = Config(proxies={"http": proxy_url}, retries=ONE_ATTEMPT, connect_timeout=2)
    failures = {}
    for make in (s3s_fs.boto3_client, s3s_fs.s3turbo_client):
        with pytest.raises(BotoCoreError) as failed:
            make(config=config).download_file("bucket", "k", str(tmp_path / "out.bin"))
        failures[make] = type(failed.value)
    assert failures[s3s_fs.s3turbo_client] is failures[s3s_fs.boto3_client] is HTTPClientError
    assert list(tmp_path.iterdir()) == []


# A proxy nothing listens on: a request sent through it fails.
DEAD_PROXY = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "case",
    [
        "lower case first",
        "Config(proxies={})",
        "NO_PROXY host:port",
        "set after the client",
        "REQUEST_METHOD",
    ],
)
def test_proxies_from_the_environment_as_botocore_takes_them(s3s_fs, monkeypatch, caplog, case):
    """botocore takes proxies from the environment by urllib's rules, when it makes the client
    and unless Config gives its own: lower-case names first, NO_PROXY for the endpoint (with
    its port), none under CGI (REQUEST_METHOD set). The engine read the environment by other
    rules, when its first transfer began. Here the proxy botocore takes, if any, works, and
    any other does not: both clients must succeed, on the engine."""
    bucket = s3s_fs.new_bucket()  # before the environment names proxies
    good = ForwardProxy({"s3.via-proxy.test": s3s_fs_port(s3s_fs)})
    endpoint, config = s3s_fs.endpoint_url, Config(retries=ONE_ATTEMPT)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    if case == "lower case first":
        monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{good.port}")
        endpoint = f"http://s3.via-proxy.test:{s3s_fs_port(s3s_fs)}"
    elif case == "Config(proxies={})":
        monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
        config = config.merge(Config(proxies={}))
    elif case == "NO_PROXY host:port":
        monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
        monkeypatch.setenv("NO_PROXY", endpoint.removeprefix("http://"))
    elif case == "REQUEST_METHOD":
        monkeypatch.setenv("REQUEST_METHOD", "GET")
        monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
    config = config.merge(Config(s3={"addressing_style": "path"}))
    try:
        clients = {
            "s3turbo": s3s_fs.s3turbo_client(endpoint_url=endpoint, config=config),
            "boto3": s3s_fs.boto3_client(endpoint_url=endpoint, config=config),
        }
        if case == "set after the client":
            monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
        with served_by_engine(caplog):
            for name, client in clients.items():
                client.upload_fileobj(io.BytesIO(b"data"), bucket, name)
        assert good.connections == (2 if case == "lower case first" else 0)
    finally:
        good.close()


def test_use_ssl_false_reaches_aws_over_http_as_in_boto3(s3s_fs, caplog):
    """use_ssl=False without an endpoint_url: botocore sends to AWS's endpoint over plain
    http (here through an http proxy, in which the name leads to s3s-fs); the engine sent
    https, which that proxy does not carry. boto3 serves such clients."""
    bucket = s3s_fs.new_bucket()
    host = "s3.us-west-2.amazonaws.com"
    proxy = ForwardProxy({host: s3s_fs_port(s3s_fs)})
    config = Config(
        proxies={"http": f"http://127.0.0.1:{proxy.port}"},
        s3={"addressing_style": "path"},
        retries=ONE_ATTEMPT,
    )
    kwargs = {"region_name": "us-west-2", "use_ssl": False, "config": config}
    try:
        with caplog.at_level("DEBUG", logger="s3turbo"):
            for name, make in (("s3turbo", s3s_fs.s3turbo_client), ("boto3", s3s_fs.boto3_client)):
                client = make(endpoint_url=None, **kwargs)
                client.upload_fileobj(io.BytesIO(b"data"), bucket, name)
        assert proxy.asked == [host, host]
        assert any("use_ssl=False" in r.getMessage() for r in caplog.records)
    finally:
        proxy.close()


ACCESS_POINT = "arn:aws:s3:{region}:123456789012:accesspoint/my-ap"
OUTPOST_ACCESS_POINT = (
    "arn:aws:s3-outposts:{region}:123456789012:outpost/op-01234567890123456/accesspoint/my-ap"
)


@pytest.mark.parametrize(
    "variant, bucket, host",
    [
        (
            Config(s3={"use_accelerate_endpoint": True}),
            "variant-bucket",
            "variant-bucket.s3-accelerate.amazonaws.com",
        ),
        (
            Config(s3={"use_dualstack_endpoint": True}),
            "variant-bucket",
            "variant-bucket.s3.dualstack.eu-west-1.amazonaws.com",
        ),
        (
            Config(use_fips_endpoint=True),
            "variant-bucket",
            "variant-bucket.s3-fips.eu-west-1.amazonaws.com",
        ),
        (Config(region_name="us-east-1"), "variant-bucket", "variant-bucket.s3.amazonaws.com"),
        (
            Config(region_name="us-east-1", s3={"us_east_1_regional_endpoint": "regional"}),
            "variant-bucket",
            "variant-bucket.s3.us-east-1.amazonaws.com",
        ),
        (
            Config(client_context_params={"force_path_style": True}),
            "variant-bucket",
            "s3.eu-west-1.amazonaws.com",
        ),
        (
            Config(),
            ACCESS_POINT.format(region="eu-west-1"),
            "my-ap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com",
        ),
        (
            Config(),
            ACCESS_POINT.format(region="us-west-2"),
            "my-ap-123456789012.s3-accesspoint.us-west-2.amazonaws.com",
        ),
        (
            Config(),
            OUTPOST_ACCESS_POINT.format(region="us-west-2"),
            "my-ap-123456789012.op-01234567890123456.s3-outposts.us-west-2.amazonaws.com",
        ),
    ],
    ids=[
        "accelerate",
        "dual-stack",
        "FIPS",
        "us-east-1 (the global endpoint)",
        "us-east-1 regional endpoint",
        "path style by client_context_params",
        "access point",
        "access point of another region",
        "Outposts access point",
    ],
)
def test_endpoint_variants_reach_the_host_boto3_reaches(tmp_path, caplog, variant, bucket, host):
    """Endpoints of AWS itself (in eu-west-1 unless the variant says another region): through a
    proxy that knows no host, each client asks it for a tunnel to the host its endpoint rules
    chose, and then fails (boto3 with ConnectionClosedError, the engine with
    EndpointConnectionError: the SDK's tunnel error does not tell a closed tunnel from a
    refused one). The engine asks for boto3's host."""
    source = write_random(tmp_path / "source.bin", 1000)
    proxy = ForwardProxy({})
    config = variant.merge(
        Config(proxies={"https": f"http://127.0.0.1:{proxy.port}"}, retries=ONE_ATTEMPT)
    )
    kwargs = {
        "region_name": variant.region_name or "eu-west-1",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
        "config": config,
    }
    try:
        with served_by_engine(caplog):
            for make in (boto3.client, s3turbo.client):
                client = make("s3", **kwargs)
                with pytest.raises(BotoCoreError):
                    client.upload_file(str(source), bucket, "k")
                with pytest.raises(BotoCoreError):
                    client.download_file(bucket, "k", str(tmp_path / "out.bin"))
    finally:
        proxy.close()
    assert proxy.asked == [f"{host}:443"] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin"]


@pytest.mark.parametrize(
    "bucket, s3_config, served",
    [
        ("arn:aws:s3-object-lambda:eu-west-1:123456789012:accesspoint/my-olap", {}, "refused"),
        ("arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap", {}, "by boto3"),
        (ACCESS_POINT.format(region="us-west-2"), {"use_arn_region": False}, "by boto3"),
        (ACCESS_POINT.format(region="eu-west-1"), {"addressing_style": "path"}, "by boto3"),
        (ACCESS_POINT.format(region="eu-west-1"), {"use_accelerate_endpoint": True}, "by boto3"),
        ("arn:aws-cn:s3:cn-north-1:123456789012:accesspoint/my-ap", {}, "by boto3"),
        (ACCESS_POINT.format(region="eu-west-1"), {"use_arn_region": False}, "by the engine"),
    ],
    ids=[
        "Object Lambda",
        "multi-region",
        "another region, use_arn_region off",
        "path style",
        "accelerate",
        "another partition",
        "same region",
    ],
)
def test_access_points_the_engine_leaves_to_boto3(tmp_path, caplog, bucket, s3_config, served):
    """s3transfer refuses Object Lambda access points itself. Multi-region access points are
    signed with SigV4a (by botocore with awscrt); botocore turns path style off for an access
    point's call (and a custom endpoint turns it on), and refuses one with accelerate, of
    another partition, or of another region with use_arn_region off, in words of its own: boto3
    serves those, and the same exception comes out."""
    proxy = ForwardProxy({})
    kwargs = {
        "region_name": "eu-west-1",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
        "config": Config(
            proxies={"https": f"http://127.0.0.1:{proxy.port}"},
            retries=ONE_ATTEMPT,
            s3=s3_config,
        ),
    }
    raised = {}
    try:
        with caplog.at_level("DEBUG", logger="s3turbo"):
            for make in (boto3.client, s3turbo.client):
                with pytest.raises(Exception) as caught:
                    make("s3", **kwargs).upload_fileobj(io.BytesIO(b"data"), bucket, "k")
                raised[make.__module__] = caught.value
    finally:
        proxy.close()
    assert bool(fallbacks(caplog)) is (served == "by boto3")
    ours, boto3s = raised["s3turbo._client"], raised["boto3"]
    if served == "by the engine":  # both failed to reach AWS through the proxy
        assert isinstance(ours, BotoCoreError) and isinstance(boto3s, BotoCoreError)
    else:
        assert (type(ours), str(ours)) == (type(boto3s), str(boto3s))
        assert isinstance(ours, ValueError if served == "refused" else BotoCoreError)


ACCELERATE = {"use_accelerate_endpoint": True}


@pytest.mark.parametrize(
    "config, bucket, custom_endpoint",
    [
        (Config(s3=ACCELERATE), "bucket", True),
        (Config(s3={"use_arn_region": "false"}), "bucket", True),
        (Config(client_context_params={"force_path_style": 1}), "bucket", True),
        (Config(s3=ACCELERATE, use_fips_endpoint=True), "bucket", False),
        (Config(s3=ACCELERATE), "a.b.c", False),
        (Config(region_name="cn-north-1", use_fips_endpoint=True), "bucket", False),
        (Config(s3=ACCELERATE), ACCESS_POINT.format(region="eu-west-1"), False),
        (Config(s3={"use_arn_region": False}), ACCESS_POINT.format(region="us-west-2"), False),
    ],
    ids=[
        "accelerate with a custom endpoint",
        "a string for a flag",
        "a number for a flag",
        "accelerate with FIPS",
        "accelerate with a bucket that needs path style",
        "FIPS in a partition without it",
        "accelerate with an access point",
        "an access point of another region with use_arn_region off",
    ],
)
def test_settings_the_endpoint_rules_refuse_fail_as_in_boto3(
    s3s_fs, tmp_path, config, bucket, custom_endpoint
):
    """botocore's endpoint rules refuse some settings, alone or with the bucket: S3 Accelerate
    with a custom endpoint_url, with FIPS or with a bucket name that needs path style; FIPS
    where the partition has none; a flag that is not a bool (botocore checks the types of what
    its rules take, the client context's as its builtins'); ... s3turbo raises botocore's own
    error as boto3 does (EndpointResolutionError, UnsupportedS3ConfigurationError, ...),
    before any request."""
    source = write_random(tmp_path / "source.bin", 1000)
    config = config.merge(Config(retries=ONE_ATTEMPT, connect_timeout=1))
    kwargs = s3s_fs.client_kwargs(config=config)
    if not custom_endpoint:  # AWS itself, which the test cannot reach: nothing may be sent
        del kwargs["endpoint_url"]
        kwargs["region_name"] = config.region_name or "eu-west-1"
    raised = []
    for make in (boto3.client, s3turbo.client):
        client = make("s3", **kwargs)
        with pytest.raises(BotoCoreError) as refused_upload:
            client.upload_file(str(source), bucket, "k")
        with pytest.raises(BotoCoreError) as refused_download:
            client.download_file(bucket, "k", str(tmp_path / "out.bin"))
        raised.append([(type(e.value), str(e.value)) for e in (refused_upload, refused_download)])
    assert raised[0] == raised[1]
    assert not issubclass(raised[0][0][0], EndpointConnectionError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin"]


@pytest.mark.parametrize(
    "in_config, in_environment, session_auth",
    [(None, None, True), (True, None, False), (None, "true", False), (False, "true", True)],
    ids=[
        "session auth",
        "disabled in Config",
        "disabled by the environment",
        "Config over the environment",
    ],
)
def test_directory_buckets_are_signed_as_boto3_signs_them(
    s3s_fs, tmp_path, monkeypatch, in_config, in_environment, session_auth
):
    """S3 Express directory buckets (`name--zone--x-s3`): both clients ask CreateSession for
    session credentials first, unless `disable_s3_express_session_auth` (in Config, else
    AWS_S3_DISABLE_EXPRESS_SESSION_AUTH) says to sign with the client's own. s3s-fs knows
    neither CreateSession nor the `s3express` signing scope, so each call fails: with the same
    error, after the same requests."""
    bucket = "directory--usw2-az1--x-s3"
    s3_config = {} if in_config is None else {"disable_s3_express_session_auth": in_config}
    if in_environment is not None:
        monkeypatch.setenv("AWS_S3_DISABLE_EXPRESS_SESSION_AUTH", in_environment)
    source = write_random(tmp_path / "source.bin", 1000)
    seen = {}
    config = Config(retries=ONE_ATTEMPT, s3=s3_config)
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        for name in ("s3turbo", "boto3"):
            # A new client for each call, so that each has a connection of its own: s3s-fs
            # closes the connection of a PUT it refused before taking its body, and the proxy
            # (a Python thread) passes that close on a little later, while a request sent on
            # the same connection in the meantime fails as the connection closes under it.
            proxy.requests.clear()
            with pytest.raises(S3UploadFailedError) as refused_upload:
                s3s_fs.clients_through(proxy, config)[name].upload_file(str(source), bucket, "k")
            with pytest.raises(ClientError) as refused_download:
                s3s_fs.clients_through(proxy, config)[name].download_file(
                    bucket, "k", str(tmp_path / "out.bin")
                )
            raised = [str(refused_upload.value), str(refused_download.value)]
            requests = [(r.method, "session" in r.target.partition("?")[2]) for r in proxy.requests]
            seen[name] = raised, requests
    assert seen["s3turbo"][0] == seen["boto3"][0]
    if session_auth:
        assert seen["s3turbo"][1] == [("GET", True)] * 2 == seen["boto3"][1]
        assert "calling the CreateSession operation" in seen["boto3"][0][1]
    else:
        # The engine's first request of a download is a GET, where boto3 sends HeadObject.
        assert seen["s3turbo"][1] == [("PUT", False), ("GET", False)]
        assert seen["boto3"][1] == [("PUT", False), ("HEAD", False)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin"]


def transfer(call, client, boto, bucket, tmp_path, name) -> bytes:
    """Runs `call` through `client`; returns what it transferred (read back through `boto`)."""
    source = tmp_path / "source.bin"
    key = f"{name}/k"
    if call == "upload_file":
        client.upload_file(str(source), bucket, key)
    elif call == "upload_file multipart":
        client.upload_file(str(source), bucket, key, Config=MULTIPART)
    elif call == "upload_fileobj":
        client.upload_fileobj(io.BytesIO(source.read_bytes()), bucket, key)
    elif call == "download_file":
        client.download_file(bucket, "existing", str(tmp_path / f"{name}.bin"))
        return (tmp_path / f"{name}.bin").read_bytes()
    elif call == "download_fileobj":
        sink = io.BytesIO()
        client.download_fileobj(bucket, "existing", sink)
        return sink.getvalue()
    elif call == "upload_directory":
        client.upload_directory(tmp_path / "folder", bucket, name)
        key = f"{name}/a.bin"
    elif call == "download_directory":
        client.download_directory(bucket, "folder", tmp_path / f"{name}-copy")
        return (tmp_path / f"{name}-copy" / "a.bin").read_bytes()
    return boto.get_object(Bucket=bucket, Key=key)["Body"].read()


MULTIPART = s3turbo.TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
CALLS = [
    "upload_file",
    "upload_file multipart",
    "upload_fileobj",
    "download_file",
    "download_fileobj",
    "upload_directory",
    "download_directory",
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    "status, code", [(301, "PermanentRedirect"), (400, "AuthorizationHeaderMalformed")]
)
def test_bucket_in_another_region_is_redirected_as_in_boto3(
    s3s_fs, tmp_path, caplog, status, code, call
):
    """A client set to us-east-1 for a bucket in eu-west-2: S3 refuses what is signed for
    us-east-1 and names the bucket's region. botocore sends again in eu-west-2 and remembers
    the region; so does the engine, whichever call comes first. (The proxy plays S3's region
    check in front of s3s-fs, which takes a signature for any region.)"""
    bucket = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 6 * MIB + 5)
    (tmp_path / "folder").mkdir()
    write_random(tmp_path / "folder" / "a.bin", 10)
    boto = s3s_fs.boto3_client()
    boto.upload_file(str(source), bucket, "existing")
    boto.upload_file(str(tmp_path / "folder" / "a.bin"), bucket, "folder/a.bin")
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1}, s3={"addressing_style": "path"}
    )
    results = {}
    with served_by_engine(caplog):
        for name in ("boto3", "s3turbo"):
            if call.endswith("directory") and name == "boto3":
                continue  # boto3 has none
            with FaultProxy(s3s_fs.endpoint_url) as proxy:
                wrong_region = proxy.inject(
                    Fault(
                        header_contains=("authorization", "/us-east-1/s3/"),
                        answer_error=(status, code),
                        answer_region="eu-west-2",
                        times=None,
                    )
                )
                make = boto3.client if name == "boto3" else s3turbo.client
                client = make(
                    "s3", **s3s_fs.client_kwargs(endpoint_url=proxy.endpoint_url, config=config)
                )
                transferred = transfer(call, client, boto, bucket, tmp_path, name)
                # The bucket's later requests go to its region at once.
                second = transfer(call, client, boto, bucket, tmp_path, name)
                results[name] = (wrong_region.hits, transferred == second)
            expected = (tmp_path / "folder" / "a.bin") if "directory" in call else source
            assert transferred == expected.read_bytes(), name
    assert results["s3turbo"] == (1, True)
    assert results.get("boto3", (1, True)) == (1, True)


@pytest.mark.parametrize("path", ["/{outer}", "/{outer}/", "//{outer}//"])
def test_endpoint_url_path_comes_before_the_bucket_as_in_botocore(s3s_fs, tmp_path, caplog, path):
    """A custom endpoint with a path (a gateway mounting S3 under a prefix) gets the bucket
    after one slash, as botocore sends it (the engine joined "/prefix" and the bucket into one
    name). s3s-fs knows no prefix: it takes the path's first segment for the bucket, so both
    clients store the object under that bucket, with a key that starts with theirs."""
    outer = s3s_fs.new_bucket()
    source = write_random(tmp_path / "source.bin", 1000)
    endpoint = s3s_fs.endpoint_url + path.format(outer=outer)
    with served_by_engine(caplog):
        for name, make in (("s3turbo", s3s_fs.s3turbo_client), ("boto3", s3s_fs.boto3_client)):
            client = make(endpoint_url=endpoint)
            client.upload_file(str(source), "inner", name)
            client.download_file("inner", name, str(tmp_path / name))
            assert sha256_file(tmp_path / name) == sha256_file(source)
    listed = s3s_fs.boto3_client().list_objects_v2(Bucket=outer)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["inner/boto3", "inner/s3turbo"]


def test_no_timeouts_as_botocore_takes_none(s3s_fs, tmp_path, caplog):
    """connect_timeout=None and read_timeout=None are botocore's "wait for ever"."""
    bucket = s3s_fs.new_bucket()
    config = Config(connect_timeout=None, read_timeout=None)
    with served_by_engine(caplog):
        round_trip(s3s_fs.s3turbo_client(config=config), bucket, tmp_path)
