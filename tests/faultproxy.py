"""A fault-injecting HTTP/1.1 proxy for tests and benchmarks.

It listens on 127.0.0.1 at a free port and relays each client connection to one upstream
server (s3s-fs, moto), parsing just enough HTTP to find where each request and response body
starts and ends. On the way it can:

- reset a connection after N bytes of a response or request body (`Fault`), for the first K
  matching exchanges or for all of them;
- flip one byte of a response body, or stall it or the whole response with the connection
  left open (`Fault`);
- answer with an S3 error (503 SlowDown, ...) in place of the server's response (`Fault`);
- add a fixed delay before each response's first byte (`delay`, in seconds);
- throttle the bytes going each way (`bytes_per_second`);
- die: close every connection and refuse new ones (`die()`).

Settings and faults may be changed while transfers run. Plain threads, no pytest, so that the
benchmark harness can import it too:

    with FaultProxy("http://127.0.0.1:9000") as proxy:
        proxy.delay = 0.020
        client = boto3.client("s3", endpoint_url=proxy.endpoint_url, ...)
"""

from __future__ import annotations

import collections
import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# How much is relayed at a time. Small enough that a fault lands close to its byte count and
# that throttling is smooth, large enough not to cost much.
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Request:
    """The head of one request, as the proxy saw it."""

    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]  # lower-case names


@dataclass
class Fault:
    """Something done to the exchanges (a request and its response) that match `method` and
    `target_contains`: the first `times` of them, or all with `times=None`. A reset closes
    both sides of the connection at once with a TCP RST, as a crashed peer would; since it
    ends the connection, "the first K exchanges" are also K connections."""

    method: str | None = None
    target_contains: str | None = None
    # (header name, text): only requests whose header holds the text (e.g. the region of a
    # signature: ("authorization", "/us-east-1/")).
    header_contains: tuple[str, str] | None = None
    times: int | None = 1
    # Bytes of the response body (of the answer, with answer_error) let through before a reset.
    reset_response_after: int | None = None
    reset_request_after: int | None = None  # bytes of the request body let through first
    # Bytes of the request body taken before the proxy stops reading it while keeping the
    # connection open (a server that hangs mid-upload): the client's send buffer fills.
    stall_request_after: int | None = None
    flip_response_byte_at: int | None = None  # offset in the response body (XOR 0x01)
    # Bytes of the response body (of the answer, with answer_error) let through before the
    # proxy stops relaying it while keeping the connection open (a server that hangs): only the
    # client's read timeout ends it.
    stall_response_after: int | None = None
    # Hold the response back entirely (the request is answered, the answer never relayed): a
    # server that hangs after taking a request's body.
    stall_response_head: bool = False
    # (status, code): the proxy answers with this S3 error instead of passing the request on,
    # as S3 answers when overloaded (503, "SlowDown").
    answer_error: tuple[int, str] | None = None
    # With answer_error: the bucket's region, as S3 names it when a request was signed for
    # another (the x-amz-bucket-region header, and <Region> in the body).
    answer_region: str | None = None
    # With answer_error: the body to answer with, in place of S3's usual error body.
    answer_body: str | None = None
    # With answer_error: the body goes in one chunk (Transfer-Encoding: chunked), not with a
    # Content-Length, as S3 sends CompleteMultipartUpload's.
    answer_chunked: bool = False
    # (name, value): the response's header set to the value, or removed with None (a proxy
    # that rewrites or strips headers).
    response_header: tuple[str, str | None] | None = None
    # How many exchanges were given this fault so far: a test checks that it was exercised.
    hits: int = field(default=0, init=False)

    def matches(self, request: Request) -> bool:
        header = self.header_contains
        return (
            (self.method is None or request.method == self.method)
            and (self.target_contains is None or self.target_contains in request.target)
            and (header is None or header[1] in request.headers.get(header[0], ""))
        )


class _Reset(Exception):
    """Raised inside a relay thread to reset its connection."""


class _Pacer:
    """Spaces out the bytes going one way so that they average `rate` bytes/s over all
    connections together, like a shared link."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free_at = 0.0

    def wait(self, size: int, rate: float | None) -> None:
        if not rate:
            return
        with self._lock:
            start = max(time.monotonic(), self._free_at)
            self._free_at = start + size / rate
            until = self._free_at
        time.sleep(max(0.0, until - time.monotonic()))


class FaultProxy:
    """The proxy, running from construction until `stop()` (or the end of a `with` block).
    Clients reach the upstream server through `endpoint_url`."""

    def __init__(self, upstream_url: str) -> None:
        upstream = urlsplit(upstream_url)
        self.upstream = (upstream.hostname or "127.0.0.1", upstream.port or 80)
        self.delay = 0.0  # seconds before the first byte of each final response
        self.bytes_per_second: float | None = None  # each way, all connections together
        self.connections = 0  # accepted so far
        self.bytes_from_clients = 0  # what clients sent, heads and bodies, all connections
        # Not relaying "100 Continue": an older server or proxy, which never answers it.
        self.hide_continue = False
        # The requests seen, in order (the latest ones, so that long benchmark runs stay small).
        self.requests: collections.deque[Request] = collections.deque(maxlen=100_000)
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._dead = False
        self._stopped = threading.Event()  # set by die(): ends stalled responses
        self._pacers = {"request": _Pacer(), "response": _Pacer()}
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._start(self._accept_loop, "faultproxy-accept")

    # Configuration, safe to call while transfers run.

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Removes every fault, the delay and the throttle."""
        with self._lock:
            self._faults.clear()
        self.delay = 0.0
        self.bytes_per_second = None

    def die(self) -> None:
        """Resets every open connection and refuses new ones (connect gets ECONNREFUSED)."""
        with self._lock:
            self._dead = True
            sockets = list(self._sockets)
        self._stopped.set()
        _reset(self._listener)  # shutdown also wakes the thread blocked in accept()
        for sock in sockets:
            _reset(sock)

    def stop(self) -> None:
        self.die()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # Relaying.

    def _start(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # the listener was closed: the proxy died or stopped
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            # The proxy forwards what it gets as it gets it: Nagle's algorithm would hold a
            # request's body behind its headers until the server's delayed ACK (40 ms).
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._dead:
                    _reset(client)
                    _reset(upstream)
                    return
                self.connections += 1
                self._sockets.update((client, upstream))
                self._threads = [t for t in self._threads if t.is_alive()]
            # Which exchange a response belongs to: requests are queued in the order they
            # were sent, with the fault (if any) chosen for them.
            exchanges: collections.deque = collections.deque()
            self._start(self._relay_requests, "faultproxy-requests", client, upstream, exchanges)
            self._start(self._relay_responses, "faultproxy-responses", upstream, client, exchanges)

    def _choose_fault(self, request: Request) -> Fault | None:
        with self._lock:
            self.requests.append(request)
            for fault in self._faults:
                if fault.matches(request) and (fault.times is None or fault.hits < fault.times):
                    fault.hits += 1
                    return fault
        return None

    def _count_from_client(self, size: int) -> None:
        with self._lock:
            self.bytes_from_clients += size

    def _relay_requests(self, client, upstream, exchanges) -> None:
        reader = _Reader(client, self._count_from_client)
        try:
            while True:
                head = reader.head()
                if head is None:
                    break
                method, target, headers = _parse_request_head(head)
                request = Request(method, target, headers)
                fault = self._choose_fault(request)
                framing = _body_framing(headers, default=("length", 0))
                if fault is not None and fault.answer_error is not None:
                    # Answered here; the server never sees it. A client that waits for
                    # "100 Continue" sends no body once it has this answer.
                    if headers.get("expect", "").lower() != "100-continue":
                        for _ in reader.body(framing):
                            pass
                    answer = _s3_error(
                        *fault.answer_error,
                        fault.answer_region,
                        body=fault.answer_body,
                        with_body=method != "HEAD",
                        chunked=fault.answer_chunked,
                    )
                    if fault.reset_response_after is not None:
                        # The answer breaks off that many bytes into its body.
                        body_starts = answer.index(b"\r\n\r\n") + 4
                        client.sendall(answer[: body_starts + fault.reset_response_after])
                        raise _Reset()
                    if fault.stall_response_after is not None:
                        # The answer stops that many bytes into its body.
                        body_starts = answer.index(b"\r\n\r\n") + 4
                        client.sendall(answer[: body_starts + fault.stall_response_after])
                        self._stopped.wait()  # until the proxy dies or stops
                        raise _Reset()
                    client.sendall(answer)
                    continue
                # Queued before the request leaves, so it is there when the response comes.
                exchanges.append((request, fault))
                upstream.sendall(head)
                limit = fault.reset_request_after if fault else None
                stall = fault.stall_request_after if fault else None
                self._relay_body(reader, upstream, framing, limit, None, "request", stall)
        except (_Reset, OSError, ValueError):  # a fault, a peer gone, or garbled HTTP
            pass
        self._close(client, upstream)

    def _relay_responses(self, upstream, client, exchanges) -> None:
        reader = _Reader(upstream)
        try:
            while True:
                head = reader.head()
                if head is None:
                    break
                status, headers = _parse_response_head(head)
                if 100 <= status < 200:  # 100 Continue: the final response follows
                    if not self.hide_continue:
                        client.sendall(head)
                    continue
                request, fault = exchanges.popleft() if exchanges else (None, None)
                if fault is not None and fault.stall_response_head:
                    self._stopped.wait()  # until the proxy dies or stops
                    raise _Reset()
                if self.delay:
                    time.sleep(self.delay)
                has_body = not (
                    (request is not None and request.method == "HEAD") or status in (204, 304)
                )
                # A response without length or chunking ends when the server closes.
                framing = _body_framing(headers, ("close", 0)) if has_body else ("length", 0)
                if fault is not None and fault.response_header is not None:
                    head = _with_header(head, *fault.response_header)
                client.sendall(head)
                limit = fault.reset_response_after if fault else None
                flip = fault.flip_response_byte_at if fault else None
                stall = fault.stall_response_after if fault else None
                self._relay_body(reader, client, framing, limit, flip, "response", stall)
                if framing[0] == "close":
                    break
        except (_Reset, OSError, ValueError):  # a fault, a peer gone, or garbled HTTP
            pass
        self._close(client, upstream)

    def _relay_body(
        self, reader, destination, framing, reset_after, flip_at, direction, stall_after
    ) -> None:
        """Relays one body, framed as `framing` says: resets the connection once `reset_after`
        bytes went through, stalls it once `stall_after` did, flips the byte at `flip_at`."""
        sent = 0
        for chunk in reader.body(framing):
            end = sent + len(chunk)
            # `sent` is below both limits here, or an earlier chunk would have stopped.
            if reset_after is not None and end >= reset_after:
                destination.sendall(chunk[: reset_after - sent])
                raise _Reset()
            if stall_after is not None and end >= stall_after:
                destination.sendall(chunk[: stall_after - sent])
                self._stopped.wait()  # until the proxy dies or stops
                raise _Reset()
            if flip_at is not None and sent <= flip_at < end:
                position = flip_at - sent
                chunk = chunk[:position] + bytes([chunk[position] ^ 0x01]) + chunk[position + 1 :]
            self._pacers[direction].wait(len(chunk), self.bytes_per_second)
            destination.sendall(chunk)
            sent = end

    def _close(self, *sockets: socket.socket) -> None:
        # A reset rather than a graceful close: whatever ended this exchange (a fault, the
        # proxy dying, a peer going away), the other side must not take a cut body for a
        # complete one.
        with self._lock:
            self._sockets.difference_update(sockets)
        for sock in sockets:
            _reset(sock)


def _s3_error(
    status: int, code: str, region: str | None, body: str | None, with_body: bool, chunked: bool
) -> bytes:
    """An S3 error response (its body left out when answering a HEAD), naming the bucket's
    `region` if given, with `body` if given, in one chunk if `chunked`."""
    region_element = f"<Region>{region}</Region>" if region else ""
    if body is None:
        body = (
            f"<Error><Code>{code}</Code><Message>Injected by the proxy</Message>"
            f"{region_element}</Error>"
        )
    body = body.encode()
    reason = http.client.responses.get(status, "Error")
    region_header = f"x-amz-bucket-region: {region}\r\n" if region else ""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    if chunked:
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"{framing}\r\nx-amz-request-id: FAULTPROXY\r\n"
        f"x-amz-id-2: faultproxy-host\r\n{region_header}\r\n"
    ).encode()
    return head + body if with_body else head


def _reset(sock: socket.socket) -> None:
    """Closes `sock` so that the peer gets a TCP RST (ECONNRESET), not an orderly end."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        # shutdown wakes up a relay thread blocked in recv on this socket; close alone
        # would not.
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class _Reader:
    """Buffered reads from a socket: heads up to the blank line, bodies by their framing."""

    def __init__(self, sock: socket.socket, count=None) -> None:
        self._sock = sock
        self._buffer = b""
        self._count = count  # called with the size of what each recv got

    def _fill(self) -> bool:
        data = self._sock.recv(CHUNK)
        if self._count is not None:
            self._count(len(data))
        self._buffer += data
        return bool(data)

    def head(self) -> bytes | None:
        """The next head, blank line included; None at a clean end of the stream."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                if self._buffer:
                    raise _Reset()  # ended in the middle of a head
                return None
        end = self._buffer.index(b"\r\n\r\n") + 4
        head, self._buffer = self._buffer[:end], self._buffer[end:]
        return head

    def _take(self, limit: int) -> bytes:
        if not self._buffer and not self._fill():
            raise _Reset()  # the peer went away mid-body
        chunk, self._buffer = self._buffer[:limit], self._buffer[limit:]
        return chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            if not self._fill():
                raise _Reset()
        end = self._buffer.index(b"\r\n") + 2
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        return line

    def body(self, framing: tuple[str, int]):
        """The body's bytes as they are on the wire (chunked framing included)."""
        kind, length = framing
        if kind == "length":
            while length > 0:
                chunk = self._take(min(length, CHUNK))
                length -= len(chunk)
                yield chunk
        elif kind == "chunked":
            while True:
                size_line = self._line()
                yield size_line
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:  # trailers, then a blank line
                    while (line := self._line()) != b"\r\n":
                        yield line
                    yield line
                    return
                remaining = size + 2  # the data and its CRLF
                while remaining > 0:
                    chunk = self._take(min(remaining, CHUNK))
                    remaining -= len(chunk)
                    yield chunk
        else:  # "close": everything until the server closes
            while self._buffer or self._fill():
                chunk, self._buffer = self._buffer, b""
                yield chunk


def _with_header(head: bytes, name: str, value: str | None) -> bytes:
    """`head` with the header `name` set to `value`, or without it for None."""
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line.split(b":", 1)[0].strip().lower() != name.lower().encode()
    ]
    if value is not None:
        kept.append(f"{name}: {value}".encode())
    return b"\r\n".join(kept) + b"\r\n\r\n"


def _parse_headers(lines: list[bytes]) -> dict[str, str]:
    headers = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def _parse_request_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.split(b"\r\n")
    method, target, _version = lines[0].decode("latin-1").split(" ", 2)
    return method, target, _parse_headers([line for line in lines[1:] if line])


def _parse_response_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    return status, _parse_headers([line for line in lines[1:] if line])


def _body_framing(headers: dict[str, str], default: tuple[str, int]) -> tuple[str, int]:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return ("chunked", 0)
    if "content-length" in headers:
        return ("length", int(headers["content-length"]))
    return default
