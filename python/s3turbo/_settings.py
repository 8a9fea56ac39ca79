"""Reads what a transfer needs off a botocore client and a TransferConfig, exactly as boto3
would resolve it, and turns it into the plain values the Rust engine takes."""

from __future__ import annotations

import copy
import datetime
import functools
import math
import operator
import os
import re
import socket
import sys
import types
import urllib.parse
import urllib.request
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import botocore.configprovider
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED, awsrequest, handlers, httpchecksum, xform_name
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, NoCredentialsError
from botocore.httpsession import get_cert_path
from botocore.serialize import create_serializer
from botocore.stub import Stubber
from botocore.useragent import sanitize_user_agent_string_component
from botocore.utils import ArnParser, InvalidArnException
from botocore.validate import ParamValidationDecorator, validate_parameters
from s3transfer.compat import seekable
from s3transfer.constants import FULL_OBJECT_CHECKSUM_ARGS
from s3transfer.manager import TransferManager
from s3transfer.upload import UploadSubmissionTask
from s3transfer.utils import ChunksizeAdjuster, set_default_checksum_algorithm
from urllib3.exceptions import InsecureRequestWarning, LocationParseError
from urllib3.util import parse_url

from . import _core

# Body checksums the engine computes; a call asking for another goes to boto3.
ENGINE_CHECKSUMS = {"CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"}

# Header values the engine leaves to boto3: controls and DEL, which HTTP forbids (boto3 sends
# them and lets the server decide, the engine's HTTP client refuses to), and tabs, which HTTP
# allows but the engine's SigV4 signer would keep where botocore and S3 make them spaces.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f]")

# What an HTTP header name may be (RFC 9110's token).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# Total attempts per request when the client's retry config names only a mode, as botocore.
_DEFAULT_ATTEMPTS = {"legacy": 5, "standard": 3, "adaptive": 3}

# Whether botocore's standard and adaptive retry modes follow AWS's Retry Behavior 2.1 (50 ms
# backoff for transient errors): opt-in in some botocore versions, always on in later ones,
# unknown to earlier ones.
_RETRY_BEHAVIOR_2_1 = bool(getattr(botocore.configprovider, "NEW_RETRIES_ENABLED", False))

# botocore's timeout None (wait for ever), as the engine takes it: it adds timeouts to instants.
_NO_TIMEOUT = 365 * 24 * 3600.0

# The largest size or count the engine takes (an unsigned 64-bit integer).
_U64_MAX = 2**64 - 1

# A path segment of a custom endpoint that botocore sends as it is: unreserved characters,
# and not a dot segment (which botocore resolves, as it escapes others).
_PLAIN_PATH_SEGMENT = re.compile(r"(?!\.\.?$)[A-Za-z0-9._~-]+")


def connection(client: Any) -> _core.Connection:
    """The endpoint, region, credentials and HTTP settings the botocore client would use, with
    the engine's client for them. The engine keeps that client, and so its pooled connections,
    only while a Connection holds it: the botocore client keeps its latest one, so that the
    pool lives as long as the botocore client, as botocore's own does."""
    endpoint = endpoint_parameters(client)
    config = client.meta.config
    # botocore writes every retry setting as a mode and, if one was set, total_max_attempts.
    retry_mode = config.retries["mode"]
    verify = _verifies_certificates(client)
    if not verify:
        _warn_unverified(client.meta.endpoint_url)
    proxies = _proxies(client)
    held = client.__dict__["_s3turbo_connection"] = _core.Connection(
        # botocore's retry quota is the client's own, whatever other clients share its settings.
        retry_quota=client.__dict__.setdefault("_s3turbo_retry_quota", _core.RetryQuota()),
        endpoint_url=_endpoint_url(endpoint.get("Endpoint")),
        region=client.meta.region_name or "us-east-1",
        **_credentials(client),
        force_path_style=bool(endpoint.get("ForcePathStyle")),
        accelerate=bool(endpoint.get("Accelerate")),
        dual_stack=bool(endpoint.get("UseDualStack")),
        fips=bool(endpoint.get("UseFIPS")),
        global_endpoint=bool(endpoint.get("UseGlobalEndpoint")),
        use_arn_region=bool(endpoint.get("UseArnRegion", True)),
        disable_s3_express_session_auth=bool(endpoint.get("DisableS3ExpressSessionAuth")),
        ca_bundle=_ca_bundle(client),
        verify_certificates=verify,
        tcp_keepalive=_keeps_alive(client),
        **_client_certificate(client),
        http_proxy=proxies.get("http"),
        https_proxy=proxies.get("https"),
        connect_timeout=_NO_TIMEOUT if config.connect_timeout is None else config.connect_timeout,
        read_timeout=_NO_TIMEOUT if config.read_timeout is None else config.read_timeout,
        # urllib3 keeps any number of connections for a pool size of 0 or less.
        max_pool_connections=max_pool
        if (max_pool := config.max_pool_connections) > 0
        else _U64_MAX,
        max_attempts=config.retries.get("total_max_attempts", _DEFAULT_ATTEMPTS[retry_mode]),
        retry_mode=retry_mode,
        retry_behavior_2_1=_RETRY_BEHAVIOR_2_1,
        request_checksum_calculation=config.request_checksum_calculation or "when_supported",
        response_checksum_validation=config.response_checksum_validation or "when_supported",
        user_agent=_supplied_user_agent(config),
        user_agent_suffix=_user_agent_suffix(client),
    )
    return held


def release(client: Any) -> None:
    """Lets go of the engine's client for this botocore client: its pooled connections close,
    unless another botocore client with the same settings holds them (botocore's close()
    closes its own pool)."""
    client.__dict__.pop("_s3turbo_connection", None)


def _supplied_user_agent(config: Any) -> str | None:
    """The user's `user_agent`, which replaces the header's start (botocore fills
    `config.user_agent` in itself: the user's value is kept apart)."""
    return getattr(config, "_supplied_user_agent", None)


def _user_agent_suffix(client: Any) -> str | None:
    """What botocore puts at the end of its User-Agent header: `app/<user_agent_appid>`
    (unless `user_agent` replaces the header), then the session's `user_agent_extra` (boto3's
    `Botocore/<version>`, and what frameworks add), then the client's."""
    config = client.meta.config
    parts = []
    if config.user_agent_appid and not _supplied_user_agent(config):
        appid = sanitize_user_agent_string_component(config.user_agent_appid, allow_hash=True)
        parts.append(f"app/{appid}")
    creator = getattr(client, "_user_agent_creator", None)
    session_extra = getattr(creator, "_session_user_agent_extra", None)
    if session_extra:
        parts.append(session_extra)
    if config.user_agent_extra:
        parts.append(config.user_agent_extra)
    return " ".join(parts) or None


def _endpoint_url(url: str | None) -> str | None:
    """A custom endpoint as botocore sends requests to it: its path (a gateway's prefix) with
    empty segments left out and a slash at the end, before the bucket's name. (The SDK would
    join "/prefix" and the bucket without a slash: another bucket.)"""
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    segments = [segment for segment in parts.path.split("/") if segment]
    path = "/" + "".join(f"{segment}/" for segment in segments) if segments else ""
    return urllib.parse.urlunsplit(parts._replace(path=path))


def _endpoint_path_is_plain(url: str | None) -> bool:
    path = urllib.parse.urlsplit(url).path if url else ""
    return all(_PLAIN_PATH_SEGMENT.fullmatch(s) for s in path.split("/") if s)


def _credentials(client: Any) -> dict[str, Any]:
    """The credentials botocore would sign with, as `_core.Connection` takes them: none for an
    anonymous (UNSIGNED) client, which botocore sends unsigned whatever credentials it has."""
    if client.meta.config.signature_version == UNSIGNED or signing_disabled(client):
        return {
            "access_key": None,
            "secret_key": None,
            "session_token": None,
            "refresh": None,
            "credentials_id": 0,
        }
    credentials = client._request_signer._credentials
    if credentials is None:
        raise NoCredentialsError()
    frozen = credentials.get_frozen_credentials()
    refreshable = isinstance(credentials, RefreshableCredentials)
    return {
        "access_key": frozen.access_key,
        "secret_key": frozen.secret_key,
        # botocore sends no token when it is empty.
        "session_token": frozen.token or None,
        "refresh": _refresher(credentials) if refreshable else None,
        "credentials_id": id(credentials),
    }


def credentials_due(client: Any) -> bool:
    """Whether botocore fetches the client's credentials before it signs: refreshable ones that
    are due, or deferred ones not loaded yet (SSO, assume-role), each a request of its own."""
    credentials = client._request_signer._credentials
    return isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed()


def _refresher(credentials: RefreshableCredentials) -> Callable[[], tuple]:
    """What the engine calls (from its own threads) for credentials during a transfer:
    botocore's current ones, refreshed by botocore if due, and the seconds until botocore would
    refresh them next (its advisory refresh time)."""

    def refresh() -> tuple:
        frozen = credentials.get_frozen_credentials()
        token = frozen.token or None  # none when empty, as botocore sends it
        if credentials._expiry_time is None:
            return frozen.access_key, frozen.secret_key, token, None
        refresh_in = credentials._seconds_remaining() - credentials._advisory_refresh_timeout
        return frozen.access_key, frozen.secret_key, token, refresh_in

    return refresh


def _keeps_alive(client: Any) -> bool:
    """botocore's `tcp_keepalive`, from the client's Config or the config file: SO_KEEPALIVE
    among its connections' socket options."""
    options = getattr(client._endpoint.http_session, "_socket_options", ())
    return (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1) in options


def _client_certificate(client: Any) -> dict[str, Any]:
    """botocore's `client_cert`: a certificate file, and its key's file if not that one."""
    session = client._endpoint.http_session
    return {
        "client_cert": getattr(session, "_cert_file", None),
        "client_key": getattr(session, "_key_file", None),
    }


def _verifies_certificates(client: Any) -> bool:
    """False for a client made with verify=False."""
    return getattr(client._endpoint.http_session, "_verify", True) is not False


def _warn_unverified(endpoint_url: str) -> None:
    """urllib3's warning for an HTTPS request with verify=False, which boto3 users see."""
    parts = urllib.parse.urlsplit(endpoint_url)
    if parts.scheme == "https":
        warnings.warn(
            f"Unverified HTTPS request is being made to host '{parts.hostname}'. "
            "Adding certificate verification is strongly advised. See: "
            "https://urllib3.readthedocs.io/en/latest/advanced-usage.html#tls-warnings",
            InsecureRequestWarning,
            stacklevel=2,
        )


def _ca_bundle(client: Any) -> str | None:
    """The CA bundle botocore verifies https servers with: the one named (verify=<path>,
    AWS_CA_BUNDLE, ca_bundle in the config file; `~` stands for the home directory, as urllib3
    takes it), else its default one (certifi's, or botocore's own), never the system's roots.
    None over plain http, and with verify=False."""
    verify = getattr(client._endpoint.http_session, "_verify", True)
    if not client.meta.endpoint_url.startswith("https:") or verify is False:
        return None
    return os.path.expanduser(verify) if isinstance(verify, str) else get_cert_path(True)


def _proxies(client: Any) -> dict[str, str]:
    """The proxies botocore's connections use for http:// and https:// URLs: `Config.proxies`,
    else those it read from the environment when it made the client, by urllib's rules
    (lower case first, NO_PROXY for the endpoint, none under CGI's REQUEST_METHOD, no
    ALL_PROXY); `Config(proxies={})` takes none. Kept with the client, as botocore keeps them."""
    try:
        return client.__dict__["_s3turbo_proxies"]
    except KeyError:
        pass
    proxy_config = getattr(client._endpoint.http_session, "_proxy_config", None)
    if proxy_config is None:  # another HTTP session (boto3 serves such clients)
        proxies = {k: v for k, v in (client.meta.config.proxies or {}).items() if v}
    else:
        proxies = {
            scheme: proxy
            for scheme in ("http", "https")
            if (proxy := proxy_config.proxy_url_for(f"{scheme}://host"))
        }
    client.__dict__["_s3turbo_proxies"] = proxies
    return proxies


def unsupported_client_setting(client: Any) -> str | None:
    """A client setting the engine does not honour, so that boto3 serves the call."""
    config = client.meta.config
    # botocore leaves Config(parameter_validation=False) out of client.meta.config: its
    # serializer is the setting.
    if not isinstance(client._serializer, ParamValidationDecorator):
        return "parameter_validation is off"
    if config.signature_version not in (None, UNSIGNED, "s3v4", "v4"):
        return f"signature_version {config.signature_version!r}"
    if not _is_integer(config.max_pool_connections):
        # botocore cannot size its connection pool: boto3 raises its HTTPClientError.
        return f"max_pool_connections {config.max_pool_connections!r}"
    if config.proxies_config:
        return "proxies_config"
    if set(config.proxies or {}) - {"http", "https"}:
        return "proxies for other schemes than http and https"
    proxies = _proxies(client)
    if any(not url.startswith("http://") or "@" in url for url in proxies.values()):
        return "https or authenticated proxies"
    if any(_urllib3_cannot_use(url) for url in proxies.values()):
        # A space or line break left after it, a port out of range: boto3 raises its
        # HTTPClientError as it sends the call.
        return "a proxy URL urllib3 cannot use"
    ca_bundle = _ca_bundle(client)
    if ca_bundle is not None and not os.path.isfile(ca_bundle):
        return f"the CA bundle {ca_bundle!r} is not a file"
    endpoint_url = endpoint_parameters(client).get("Endpoint")
    if endpoint_url is None and client.meta.endpoint_url.startswith("http:"):
        # The SDK's rules give AWS's endpoints https only.
        return "use_ssl=False with AWS's own endpoints"
    if not _endpoint_path_is_plain(endpoint_url):
        return "an endpoint_url path that botocore escapes or resolves (beyond A-Z a-z 0-9 -._~)"
    return None


def _urllib3_cannot_use(proxy_url: str) -> bool:
    """Whether urllib3 cannot parse a proxy URL, or finds no host in it."""
    try:
        return not parse_url(proxy_url).host
    except LocationParseError:
        return True


def _is_integer(value: Any) -> bool:
    """Whether `value` is an integer to Python (an int, or a type that says it is one)."""
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def endpoint_parameters(client: Any) -> dict[str, Any]:
    """The endpoint rules' parameters that the client's settings give, as botocore resolves
    them for every call: its client context (`Config(client_context_params=...)`, which the
    `s3` dict and AWS_S3_DISABLE_EXPRESS_SESSION_AUTH extend) before its builtins. (Values the
    rules refuse never reach the engine: see `_endpoint_refusal`.) Kept with the client, whose
    settings do not change."""
    try:
        return client.__dict__["_s3turbo_endpoint_parameters"]
    except KeyError:
        pass
    resolver = client._ruleset_resolver
    parameters = {}
    for name, definition in resolver._param_definitions.items():
        value = resolver._resolve_param_as_client_context_param(name)
        if value is None and definition.builtin is not None:
            value = resolver._resolve_param_as_builtin(definition.builtin, resolver._builtins)
        if value is not None:
            parameters[name] = value
    client.__dict__["_s3turbo_endpoint_parameters"] = parameters
    return parameters


# Buckets whose endpoint botocore's rules were asked about, per client; the cache starts over
# beyond that.
_REFUSALS_KEPT = 4096


def _endpoint_refusal(client: Any, bucket: str) -> str | None:
    """botocore's endpoint rules' refusal of the client's settings with `bucket`: accelerate
    with a custom endpoint, with FIPS or with a bucket name that needs path style, FIPS where
    the partition has none, a flag that is not a bool, ... boto3 then serves the call and
    raises botocore's own error (EndpointResolutionError, UnsupportedS3ConfigurationError,
    ...) before any request; the SDK's rules would refuse it in other words, after the
    client's credentials were looked up. Kept per client and bucket."""
    refusals = client.__dict__.setdefault("_s3turbo_endpoint_refusals", {})
    try:
        return refusals[bucket]
    except KeyError:
        pass
    try:
        client._ruleset_resolver.construct_endpoint(
            client.meta.service_model.operation_model("PutObject"),
            {"Bucket": bucket, "Key": "k"},
            {},
        )
        refusal = None
    except BotoCoreError as error:
        refusal = f"botocore's endpoint rules refuse it ({type(error).__name__}: {error})"
    if len(refusals) >= _REFUSALS_KEPT:
        refusals.clear()
    refusals[bucket] = refusal
    return refusal


def unsupported_bucket(client: Any, bucket: str) -> str | None:
    """A bucket the engine would not send to as botocore does: one botocore's endpoint rules
    refuse with the client's settings (see `_endpoint_refusal`: accelerate with an access
    point, an access point of another partition, or of another region with `use_arn_region`
    off, ...); a multi-region access point (signed with SigV4a, which botocore does with
    awscrt); an access point with path-style addressing (botocore turns it off for such a call,
    and custom endpoints turn it on)."""
    if bucket.startswith("arn:"):
        try:
            arn = ArnParser().parse_arn(bucket)
        except InvalidArnException:
            return None  # refused as an invalid bucket name
        if not arn["region"]:
            return "a multi-region access point"
        if endpoint_parameters(client).get("ForcePathStyle"):
            return "an access point with path-style addressing"
    return _endpoint_refusal(client, bucket)


def interception(client: Any) -> str | None:
    """Whether something watches or changes this client's requests that the engine would
    bypass: moto's mock_aws, a botocore Stubber, a replaced request path (tracing, a mock of
    `_make_api_call`, an HTTP recorder), or event handlers the user registered on the
    operations the engine sends. Their calls must stay boto3's."""
    moto = sys.modules.get("moto.core.models")
    if moto is not None and getattr(getattr(moto, "botocore_stubber", None), "enabled", False):
        return "moto's mock_aws is active"
    return (
        _replaced_request_path(client)
        or _replaced_operation_method(client)
        or foreign_handler(client, ENGINE_OPERATIONS, OPERATION_EVENTS)
        or _handler_check(client, _unregistered_validator)
    )


def _replaced_request_path(client: Any) -> str | None:
    """What replaced botocore's path from a call to the wire, if anything did: tracing
    (OpenTelemetry's, X-Ray's and Datadog's instrumentation wrap `_make_api_call`, New
    Relic's `Endpoint.make_request`), a test's `mock.patch` of one of those steps, or an HTTP
    recorder (vcrpy swaps botocore's connection classes; httpretty, the socket module's).
    They must see, or answer, every call."""
    endpoint = client._endpoint
    steps = {
        "_make_api_call": vars(client).get("_make_api_call") or type(client)._make_api_call,
        "_make_request": vars(client).get("_make_request") or type(client)._make_request,
        "make_request": type(endpoint).make_request,
        "_send": type(endpoint)._send,
        "send": type(endpoint.http_session).send,
    }
    for name, step in steps.items():
        if not _is_botocores(step):
            return f"botocore's {name} is replaced: {step!r}"
    if (
        awsrequest.AWSHTTPConnectionPool.ConnectionCls is not awsrequest.AWSHTTPConnection
        or awsrequest.AWSHTTPSConnectionPool.ConnectionCls is not awsrequest.AWSHTTPSConnection
    ):
        return "botocore's HTTP connections are replaced (an HTTP recorder?)"
    httpretty = sys.modules.get("httpretty")
    if httpretty is not None and httpretty.is_enabled():
        return "httpretty is enabled"
    return None


def _replaced_operation_method(client: Any) -> str | None:
    """An operation method s3transfer calls (`client.put_object`, `head_object`, ...) that a
    test mocked or a library wrapped, on the client or its class: it must answer the calls."""
    for name in _ENGINE_OPERATION_METHODS:
        method = vars(client).get(name) or getattr(type(client), name)
        if not _is_botocores(method):
            return f"the client's {name} is replaced: {method!r}"
    return None


def _is_botocores(function: Any) -> bool:
    """Whether `function` is botocore's own, as botocore made it (a decorator's wrapper
    included): a plain function of a botocore module. A wrapt proxy, a mock, or a function of
    another package that copies botocore's names is not. (The module, not the file: frozen
    applications such as PyInstaller's rename the files; Nuitka compiles the functions.)"""
    plain = type(function) is types.FunctionType or type(function).__name__ == "compiled_function"
    module = getattr(function, "__globals__", {}).get("__name__", "") if plain else ""
    return module.partition(".")[0] == "botocore"


def foreign_handler(
    client: Any, operations: tuple[str, ...], events: tuple[str, ...]
) -> str | None:
    """An event handler the user registered on one of `events` of `operations` of this
    client, or a botocore Stubber's, if there is one: it must see their calls (or presigned
    URLs)."""
    return _handler_check(client, _foreign_handler, operations, events)


def signing_disabled(client: Any) -> bool:
    """Whether botocore's `disable_signing` is registered on the choose-signer event of every
    operation the engine sends (`choose-signer.s3.*`, the old recipe for anonymous requests):
    botocore sends them unsigned, as an anonymous client's."""
    return _handler_check(client, _signing_disabled)


def _handler_check(client: Any, check: Callable[..., Any], *args: Any) -> Any:
    """`check(emitter, *args)` of the client's event emitter, kept until a handler is
    registered or unregistered."""
    emitter = getattr(client.meta.events, "_emitter", client.meta.events)
    cached = _handler_checks.get(emitter)
    # botocore replaces the emitter's lookup cache whenever a handler is (un)registered.
    if cached is None or cached[0] is not emitter._lookup_cache:
        cached = (emitter._lookup_cache, {})
        _handler_checks[emitter] = cached
    found = cached[1]
    key = (check, args)
    if key not in found:
        found[key] = check(emitter, *args)
    return found[key]


def _unregistered_validator(emitter: Any) -> str | None:
    """A parameter check of botocore's that the engine makes too (see _validate) and the user
    unregistered (Ceph's multi-tenant `tenant:bucket` names, non-ASCII metadata)."""
    for event, validator in _VALIDATORS:
        if validator not in emitter._handlers.prefix_search(event):
            return f"botocore's {validator.__name__} is unregistered from {event}"
    return None


def _signing_disabled(emitter: Any) -> bool:
    return all(
        handlers.disable_signing in emitter._handlers.prefix_search(f"choose-signer.s3.{op}")
        for op in ENGINE_OPERATIONS
    )


# The S3 operations the engine sends, and the events botocore emits around each one.
ENGINE_OPERATIONS = (
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "HeadObject",
    "GetObject",
)
_ENGINE_OPERATION_METHODS = tuple(xform_name(operation) for operation in ENGINE_OPERATIONS)
# The checks of botocore's that _validate makes, on each operation of the engine's botocore makes
# them on ("before-parameter-build.s3" is every operation's).
_VALIDATORS = tuple(
    (f"before-parameter-build.s3.{operation}", validator)
    for event, validator, *_ in handlers.BUILTIN_HANDLERS
    if validator
    in (handlers.validate_bucket_name, handlers.sse_md5, handlers.validate_ascii_metadata)
    for operation in ENGINE_OPERATIONS
    if f"before-parameter-build.s3.{operation}".startswith(event)
)
OPERATION_EVENTS = (
    "provide-client-params",
    "before-parameter-build",
    "before-endpoint-resolution",
    "before-call",
    "request-created",
    "choose-signer",
    "before-sign",
    "before-send",
    "response-received",
    "needs-retry",
    "after-call",
    "after-call-error",
)
# Handlers from these packages are botocore's and boto3's own (the engine does what they do),
# ours, or moto's inactive stubber (mock_aws is checked above).
_LIBRARY_PACKAGES = {"botocore", "boto3", "s3transfer", "s3turbo", "moto"}

_handler_checks: weakref.WeakKeyDictionary[Any, tuple[Any, dict[tuple, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _foreign_handler(
    emitter: Any, operations: tuple[str, ...], events: tuple[str, ...]
) -> str | None:
    # The engine sends a client's requests unsigned where botocore's disable_signing is on
    # all of them (see signing_disabled); presigned URLs stay boto3's.
    unsigned = operations == ENGINE_OPERATIONS and _signing_disabled(emitter)
    for operation in operations:
        for event in events:
            event_name = f"{event}.s3.{operation}"
            for handler in emitter._handlers.prefix_search(event_name):
                if isinstance(getattr(handler, "__self__", None), Stubber):
                    return "a botocore Stubber is active on the client"
                # botocore's own, but only a user puts it on S3's operations (anonymous
                # requests, the old way).
                if handler is handlers.disable_signing:
                    if unsigned:
                        continue
                    return f"botocore's disable_signing is registered on {event_name}"
                if _package_of(handler) not in _LIBRARY_PACKAGES:
                    return f"an event handler is registered on {event_name}: {handler!r}"
    return None


def _package_of(handler: Any) -> str:
    """The top-level package that defined `handler` (a function, method, partial or callable
    object)."""
    target = getattr(handler, "func", handler)
    module = getattr(target, "__module__", None) or type(target).__module__ or ""
    return module.partition(".")[0]


def options(config: TransferConfig | None) -> _core.Options:
    """The TransferConfig values the engine acts on; boto3's defaults when `config` is None."""
    return _default_options() if config is None else _options(config)


@functools.cache
def _default_options() -> _core.Options:
    # A TransferConfig takes longer to build than a small file to upload.
    return _options(TransferConfig())


def _options(config: TransferConfig) -> _core.Options:
    return _core.Options(
        multipart_threshold=_size_bound(config.multipart_threshold),
        multipart_chunksize=_part_size(config.multipart_chunksize),
        max_concurrency=concurrency(config),
        num_download_attempts=config.num_download_attempts,
        max_bandwidth=_bytes_per_second(config.max_bandwidth),
    )


def concurrency(config: TransferConfig) -> int:
    """The requests s3transfer has in flight at once: `max_concurrency`, taken as
    `_size_bound` takes it (2.5 as 3, infinity as no limit); one with use_threads=False."""
    return _size_bound(config.max_concurrency) if config.use_threads else 1


def upload_size(fileobj: Any) -> int | None:
    """The bytes s3transfer uploads from `fileobj`: from its position to its end for a seekable
    object; None for a stream, whose size is known only once it has been read."""
    if not seekable(fileobj):
        return None
    # The positions from tell(), as s3transfer reads them: many file objects' seek() returns
    # None (mmap's, wrappers'), not the new position.
    start = fileobj.tell()
    fileobj.seek(0, os.SEEK_END)
    size = fileobj.tell() - start
    fileobj.seek(start)
    if size < 0:
        # Positioned past its end: s3transfer's body then has a negative length, which
        # Python's len() refuses before any request is sent.
        raise ValueError("__len__() should return >= 0")
    return size


def sized_for(size: int | None, config: TransferConfig | None) -> TransferConfig | None:
    """`config` for an upload of `size` bytes (None: a stream). s3transfer sizes the parts of a
    seekable object as for a file, bigger if need be to fit in S3's 10,000; the engine, which
    reads any object as a stream, takes that part size."""
    if size is None:
        return config
    chunksize = (config or TransferConfig()).multipart_chunksize
    part_size = ChunksizeAdjuster().adjust_chunksize(chunksize, size)
    if part_size <= chunksize:
        return config
    sized = copy.copy(config or TransferConfig())
    sized.multipart_chunksize = part_size
    return sized


def closed_after_upload(size: int | None, config: TransferConfig | None) -> bool:
    """Whether boto3 closes the file object of an upload of `size` bytes (None: a stream) when
    the upload has ended, well or not: s3transfer sends a seekable object below the threshold
    in one PutObject, whose task reads it in a `with` block."""
    return size is not None and size < (config or TransferConfig()).multipart_threshold


def _size_bound(value: float) -> int:
    """A threshold or count s3transfer compares whole numbers with, as the engine takes it: a
    float (5.5 MiB, 1e9, infinity) as its ceiling, which the same numbers reach, and anything
    beyond 2**64 as 2**64 - 1, which no size reaches."""
    if not value < _U64_MAX:  # infinity too
        return _U64_MAX
    return max(0, math.ceil(value))


def _part_size(chunksize: Any) -> Any:
    """s3transfer uses the chunksize only for multipart transfers, so a float one (5.5 * MiB)
    serves all others in boto3; the engine takes it as its ceiling (where boto3's multipart
    transfers break: a TypeError for uploads, a Range header S3 refuses for downloads). Other
    values go as they are, clamped to 0..2**64 (the engine clamps to S3's part sizes, as
    s3transfer clamps a negative one)."""
    if isinstance(chunksize, float) and chunksize > 0:
        return _size_bound(chunksize)
    return min(max(chunksize, 0), _U64_MAX) if isinstance(chunksize, int) else chunksize


def _bytes_per_second(max_bandwidth: float | None) -> int | None:
    """s3transfer takes any positive number of bytes per second, the engine whole ones below
    2**64; more (or infinity) is no limit."""
    if max_bandwidth is None or not max_bandwidth < 2**64:
        return None
    return max(1, int(max_bandwidth))


def check_upload_args(extra_args: dict) -> None:
    """The ValueError s3transfer raises for an upload's ExtraArgs key it does not know."""
    _check_known_args(extra_args, TransferManager.ALLOWED_UPLOAD_ARGS)


def _check_known_args(extra_args: dict, allowed: list[str]) -> None:
    """The ValueError s3transfer raises for an ExtraArgs key it does not know."""
    for name in extra_args:
        if name not in allowed:
            raise ValueError(
                "Invalid extra_args key '{}', must be one of: {}".format(name, ", ".join(allowed))
            )


def _botocore_computes(algorithm: str) -> bool:
    """Whether botocore computes this body checksum here: CRC32C and CRC64NVME only with
    awscrt installed. Without it botocore raises MissingDependencyException, and so does a call
    that boto3 serves for that reason; the engine could compute them, but a script would then
    work with s3turbo and fail on its fallbacks (S3TURBO_DISABLE, mock_aws)."""
    return algorithm.lower() in httpchecksum._SUPPORTED_CHECKSUM_ALGORITHMS


def _signs_payload(client: Any, computes_checksum: bool, checksum_value: Any) -> bool:
    """Whether the engine signs an upload body's SHA-256 (else it sends UNSIGNED-PAYLOAD).
    botocore signs it unless payload_signing_enabled is False, or over https with a checksum it
    computes (sent in a trailer, STREAMING-UNSIGNED-PAYLOAD-TRAILER). Where a checksum protects
    the body (over plain http, or a value the user gave) the engine leaves it unsigned, unless
    payload_signing_enabled=True asks for it: S3 verifies the checksum, and hashing every byte
    once more would double the client's work."""
    config = client.meta.config
    if config.signature_version == UNSIGNED:
        return False  # not signed at all
    if client.meta.endpoint_url.startswith("https:") and computes_checksum:
        return False
    asked = (config.s3 or {}).get("payload_signing_enabled")
    if asked is not None:
        return bool(asked)
    return not (computes_checksum or checksum_value)


class UploadPlan:
    """ExtraArgs of an upload, split per S3 operation as s3transfer splits them, and encoded into
    request headers by botocore's own serializer (so Metadata, Expires, SSE-C keys and the rest
    are sent byte for byte as boto3 sends them). `upload(bucket, key)` is the engine's form of
    it; `unsupported` says why boto3 must serve the call instead, if it must.

    Nothing in it depends on the bucket and key but their validation, so one plan serves every
    upload with the same ExtraArgs (see `frozen`): building one costs botocore's validation and
    serializer for four operations, several times the engine's own work for a small file. It
    keeps no reference to the client (a patched client keeps it: see _patch._engine)."""

    def __init__(self, client: Any, bucket: str, key: str, extra_args: dict | None):
        args = dict(extra_args or {})
        check_upload_args(args)
        if client.meta.config.request_checksum_calculation != "when_required":
            set_default_checksum_algorithm(args)
        put_args = _without(args, UploadSubmissionTask.PUT_OBJECT_BLOCKLIST)
        multipart_args = dict(args)
        # A full-object checksum given by the user makes s3transfer ask for that algorithm and
        # the FULL_OBJECT type on the multipart upload.
        for name in FULL_OBJECT_CHECKSUM_ARGS:
            if name in multipart_args:
                multipart_args["ChecksumType"] = "FULL_OBJECT"
                multipart_args["ChecksumAlgorithm"] = name.replace("Checksum", "")
        create_args = _without(multipart_args, UploadSubmissionTask.CREATE_MULTIPART_BLOCKLIST)
        part_args = _only(multipart_args, UploadSubmissionTask.UPLOAD_PART_ARGS)
        complete_args = _only(multipart_args, UploadSubmissionTask.COMPLETE_MULTIPART_ARGS)
        # Checked as botocore checks each request boto3 may send ("-" stands for the UploadId
        # the engine fills in).
        target = {"Bucket": bucket, "Key": key}
        _validate(client, "PutObject", {**target, **put_args})
        _validate(client, "CreateMultipartUpload", {**target, **create_args})
        _validate(client, "CompleteMultipartUpload", {**target, "UploadId": "-", **complete_args})

        # Body checksums are the engine's: it takes the algorithm, not a header. A full-object
        # value the user gave goes as it is, beside the algorithm only if the user named one
        # (botocore sends both as given, and computes nothing).
        put_checksum = put_args.pop("ChecksumAlgorithm", None)
        put_checksum_value = None
        values_given = [name for name in FULL_OBJECT_CHECKSUM_ARGS if name in put_args]
        for name in values_given:
            put_checksum_value = (name.removeprefix("Checksum"), put_args.pop(name))
        part_checksum = part_args.pop("ChecksumAlgorithm", None)
        # botocore takes the algorithm's name in any case.
        put_checksum, part_checksum = (a.upper() if a else a for a in (put_checksum, part_checksum))
        unsupported = {
            a
            for a in (put_checksum, part_checksum)
            if a and (a not in ENGINE_CHECKSUMS or not _botocore_computes(a))
        }
        self.unsupported = f"ChecksumAlgorithm {sorted(unsupported)}" if unsupported else None
        if len(values_given) > 1:
            # botocore sends them all, and the server checks each; the engine sends one.
            self.unsupported = f"several full-object checksum values ({', '.join(values_given)})"
        sign_put_object_payload = _signs_payload(
            client, bool(put_checksum) and put_checksum_value is None, put_checksum_value
        )
        sign_upload_part_payload = _signs_payload(client, bool(part_checksum), None)
        headers = {
            operation: _headers(client, operation, {**target, **operation_args})
            for operation, operation_args in (
                ("PutObject", put_args),
                ("CreateMultipartUpload", create_args),
                ("UploadPart", part_args),
                ("CompleteMultipartUpload", complete_args),
            )
        }
        values = [value for pairs in headers.values() for _, value in pairs]
        # A line break is among them: boto3 raises HTTPClientError for it, after its own
        # checks of the file and the call.
        if any(_CONTROL_CHARACTERS.search(value) for value in values):
            self.unsupported = "control characters in a header value"
        names = [name for pairs in headers.values() for name, _ in pairs]
        if not all(_HEADER_NAME.fullmatch(name) for name in names):
            # boto3 sends them and lets the server decide; the engine's HTTP client refuses to.
            self.unsupported = "a header name HTTP does not allow (a Metadata key with a space?)"
        self._engine_args = {
            "headers": headers,
            "put_object_checksum": put_checksum,
            "put_object_checksum_value": put_checksum_value,
            "upload_part_checksum": part_checksum,
            "sign_put_object_payload": sign_put_object_payload,
            "sign_upload_part_payload": sign_upload_part_payload,
        }

    def upload(self, bucket: str, key: str) -> _core.Upload:
        """The engine's upload of this plan to `bucket` and `key`, which must have been checked
        (by building the plan with them, or by `check_target`)."""
        return _core.Upload(bucket=bucket, key=key, **self._engine_args)

    @staticmethod
    def check_target(client: Any, bucket: str, key: str) -> None:
        """botocore's checks of another bucket and key for a plan's (valid) ExtraArgs: the
        same error the plan would have raised if built with them."""
        _validate(client, "PutObject", {"Bucket": bucket, "Key": key})


def _headers(client: Any, operation: str, params: dict) -> list[tuple[str, str]]:
    """The headers botocore's serializer makes of `params` for `operation`."""
    params = dict(params)
    handlers.sse_md5(params)
    model = client.meta.service_model.operation_model(operation)
    # Without validation: the arguments were validated once, and UploadPart's own required
    # members (UploadId, PartNumber) do not make headers.
    serializer = create_serializer(model.metadata["protocol"], include_validation=False)
    request = serializer.serialize_to_request(params, model)
    return [(name, str(value)) for name, value in request["headers"].items()]


def download_args(client: Any, bucket: str, key: str, extra_args: dict | None) -> dict[str, str]:
    """Download ExtraArgs checked as s3transfer and botocore check them, the SSE-C key encoded
    as botocore encodes it."""
    args = dict(extra_args or {})
    _check_known_args(args, TransferManager.ALLOWED_DOWNLOAD_ARGS)
    handlers.sse_md5(args)
    _validate(client, "GetObject", {"Bucket": bucket, "Key": key, **args})
    return {name: str(value) for name, value in args.items()}


def unsendable_download_args(client: Any, extra_args: Any) -> str | None:
    """Why the engine cannot send a download's ExtraArgs as boto3 does, if it cannot: a header
    value with a control character (a line break, a tab), which boto3 sends or refuses (a line
    break: HTTPClientError) as it is, and the engine's HTTP client or signer would not."""
    if not isinstance(extra_args, dict):
        return None
    members = client.meta.service_model.operation_model("GetObject").input_shape.members
    for name, value in extra_args.items():
        member = members.get(name) if isinstance(name, str) else None
        in_header = member is not None and member.serialization.get("location") == "header"
        if in_header and isinstance(value, str) and _CONTROL_CHARACTERS.search(value):
            return "control characters in a header value"
    return None


def _validate(client: Any, operation: str, params: dict) -> None:
    """The error botocore raises before sending `operation`, in its order: its handlers of
    `before-parameter-build` (ASCII-only metadata, the SSE-C key's encoding, the bucket name),
    then types and lengths from the service model. Metadata with a key or value that is not a
    str, which botocore's ASCII check crashes on (AttributeError: 'int' object has no attribute
    'encode'), is left to the type check, which says what is wrong. An SSE-C key is checked as
    botocore checks it, once encoded (a bytes key becomes base64 text first)."""
    params = dict(params)
    metadata = params.get("Metadata")
    if not isinstance(metadata, dict) or all(
        isinstance(name, str) and isinstance(value, str) for name, value in metadata.items()
    ):
        handlers.validate_ascii_metadata(params)
    handlers.sse_md5(params)
    handlers.validate_bucket_name(params)
    validate_parameters(params, client.meta.service_model.operation_model(operation).input_shape)


def frozen(extra_args: dict | None) -> tuple | None:
    """A hashable form of ExtraArgs for looking up their UploadPlan: equal only for arguments
    boto3 would send identically (types included, since botocore validates types), or None
    when they hold something else (a file object, a custom class)."""
    try:
        return tuple((name, _frozen_value(value)) for name, value in (extra_args or {}).items())
    except TypeError:
        return None


def _frozen_value(value: Any) -> Any:
    if isinstance(value, dict):
        return (dict, tuple((name, _frozen_value(item)) for name, item in value.items()))
    if value is None or type(value) in _IMMUTABLE_ARG_TYPES:
        return (type(value), value)
    raise TypeError(type(value))


_IMMUTABLE_ARG_TYPES = (str, bytes, int, float, bool, datetime.datetime)


def _without(args: dict, names: list[str]) -> dict:
    return {name: value for name, value in args.items() if name not in names}


def _only(args: dict, names: list[str]) -> dict:
    return {name: value for name, value in args.items() if name in names}
