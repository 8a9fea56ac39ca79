//! The engine's HTTP(S) client, hyper's over rustls, which every request goes through. It makes
//! connections as urllib3 makes them for botocore, which the SDK's client does not:
//!
//! - the TCP connect within the connect timeout, then each step of a proxy's tunnel and the
//!   TLS handshake within it again, and the read timeout only from then on (see `Connect`,
//!   `OwnConnector`);
//! - botocore's `verify=False` (any server certificate is taken: a local S3 server with a
//!   self-signed one, say), `tcp_keepalive=True` (SO_KEEPALIVE on every connection) and
//!   `client_cert` (a certificate the client shows servers that ask for one: mutual TLS);
//! - a proxy's failures told apart as urllib3 tells them (see `proxy`).
//!
//! It has the SDK's error kinds. Which server certificates it takes is server_trust's to say.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use aws_sdk_s3::config::http::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::connect::{
    capture_connection, Connected, Connection as HyperConnection,
};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tower_service::Service;

use crate::errors::TransferError;
use crate::proxy::{self, Proxies, Proxy};
use crate::server_trust::AsBotocoreVerifies;

type Tcp = <TcpConnector as Service<Uri>>::Response;

/// Which server certificates are taken.
pub enum Trust {
    /// Those a CA bundle's certificates vouch for, as botocore takes them (see server_trust).
    Bundle(Vec<CertificateDer<'static>>),
    /// Any (`verify=False`).
    AnyCertificate,
}

/// How connections are made.
pub struct Settings {
    pub trust: Trust,
    pub connect_timeout: Duration,
    /// The idle connections kept for later requests (botocore's `max_pool_connections`).
    pub max_idle_connections: usize,
    /// SO_KEEPALIVE, with the system's idle time before the first probe (botocore sets only
    /// the flag).
    pub tcp_keepalive: bool,
    /// The certificate to show servers that ask for one, or why the one given cannot be used.
    pub client_certificate: Option<Result<ClientCertificate, String>>,
    pub proxies: Proxies,
}

/// The certificate chain this client shows, and its private key.
pub struct ClientCertificate {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// An HTTP(S) client with these settings. One connection pool for all its requests.
pub fn client(settings: Settings) -> Result<SharedHttpClient, TransferError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransferError::Internal(format!("TLS setup: {e}")))?;
    let verifier = AsBotocoreVerifies::new(settings.trust, provider)
        .map_err(|e| TransferError::Internal(format!("TLS setup: {e}")))?;
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let tls = match settings.client_certificate {
        None => builder.with_no_client_auth(),
        Some(certificate) => {
            let tls = certificate.and_then(|ClientCertificate { chain, key }| {
                (builder.with_client_auth_cert(chain, key)).map_err(|e| format!("client_cert: {e}"))
            });
            match tls {
                Ok(tls) => tls,
                Err(reason) => {
                    let connector = SharedHttpConnector::new(UnusableClientCertificate(reason));
                    return Ok(http_client_fn(move |_, _| connector.clone()));
                }
            }
        }
    };
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    if settings.tcp_keepalive {
        tcp.set_keepalive(Some(system_keepalive_time()));
    }
    let connect = Connect {
        tcp,
        tls: TlsConnector::from(Arc::new(tls)),
        limit: settings.connect_timeout,
        proxies: settings.proxies.clone(),
    };
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(settings.max_idle_connections)
        .build(connect);
    // One pool for every request, whatever its read timeout.
    let proxies = settings.proxies;
    Ok(http_client_fn(move |settings, _components| {
        SharedHttpConnector::new(OwnConnector {
            client: client.clone(),
            read_timeout: settings.read_timeout(),
            proxies: proxies.clone(),
        })
    }))
}

/// The idle time before the first keepalive probe that a socket with SO_KEEPALIVE alone gets:
/// Linux's `tcp_keepalive_time`, or the two hours of RFC 1122 and most systems. hyper sets the
/// flag only together with a time.
fn system_keepalive_time() -> Duration {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time")
        .ok()
        .and_then(|seconds| seconds.trim().parse().ok())
        .map_or(Duration::from_secs(7200), Duration::from_secs)
}

/// Connections made as urllib3 makes them for botocore: the TCP connection (to the proxy, if
/// there is one) within the connect timeout, then each write and read of the proxy's tunnel,
/// and the TLS handshake, within it again. botocore tells them apart: no TCP connection is its `ConnectTimeoutError`
/// (see `TcpConnectTimedOut`), which s3transfer does not try again, or its
/// `ProxyConnectionError` for a proxy; a server that takes the connection and never finishes the
/// handshake is its `ReadTimeoutError`. (The SDK's client bounds all with one timer, says
/// none, and counts them in the read timeout.)
#[derive(Clone)]
struct Connect {
    tcp: TcpConnector,
    tls: TlsConnector,
    limit: Duration,
    proxies: Proxies,
}

impl Service<Uri> for Connect {
    type Response = Connection;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Connection, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        let server_name = match destination.scheme_str() {
            Some("https") => match server_name(&destination) {
                Ok(name) => Some(name),
                Err(error) => return Box::pin(async move { Err(error) }),
            },
            Some("http") => None,
            _ => {
                let error = io::Error::other(format!("unsupported URL: {destination}"));
                return Box::pin(async move { Err(error.into()) });
            }
        };
        let proxy = self.proxies.for_destination(&destination).cloned();
        let connecting = match &proxy {
            Some(proxy) => self.tcp.call(proxy.uri.clone()),
            None => self.tcp.call(destination.clone()),
        };
        let (tls, limit) = (self.tls.clone(), self.limit);
        Box::pin(async move {
            let connected = match tokio::time::timeout(limit, connecting).await {
                Ok(connected) => connected.map_err(io::Error::other),
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, TcpConnectTimedOut)),
            };
            let mut tcp = match (connected, &proxy) {
                (Ok(tcp), _) => tcp,
                (Err(error), Some(proxy)) => return Err(proxy.unreachable(error).into()),
                (Err(error), None) => return Err(error.into()),
            };
            let Some(server_name) = server_name else {
                return Ok(match proxy {
                    Some(_) => Connection::Forwarded(tcp),
                    None => Connection::Http(tcp),
                });
            };
            if let Some(proxy) = &proxy {
                proxy::open_tunnel(tcp.inner_mut(), proxy, &destination, limit).await?;
            }
            let secured = async {
                tls.connect(server_name, TokioIo::new(tcp))
                    .await
                    .map_err(broken_off)
            };
            match tokio::time::timeout(limit, secured).await {
                Ok(secured) => Ok(Connection::Https(Box::new(TokioIo::new(TellsAlerts(
                    secured?,
                ))))),
                Err(_) => {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out").into())
                }
            }
        })
    }
}

/// A connection of this client: plain, plain to a proxy that forwards its requests, or TLS
/// (whose state takes a kilobyte), directly or through a proxy's tunnel.
enum Connection {
    Http(Tcp),
    Forwarded(Tcp),
    Https(Box<TokioIo<TellsAlerts>>),
}

impl HyperConnection for Connection {
    fn connected(&self) -> Connected {
        match self {
            Connection::Http(tcp) => tcp.connected(),
            // Its requests name their whole URL.
            Connection::Forwarded(tcp) => tcp.connected().proxy(true),
            Connection::Https(tls) => tls.inner().0.get_ref().0.inner().connected(),
        }
    }
}

impl Read for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Http(tcp) | Connection::Forwarded(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Connection::Https(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
        }
    }
}

impl Write for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Http(tcp) | Connection::Forwarded(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Connection::Https(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Http(tcp) | Connection::Forwarded(tcp) => {
                Pin::new(tcp).poll_write_vectored(cx, bufs)
            }
            Connection::Https(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Http(tcp) | Connection::Forwarded(tcp) => tcp.is_write_vectored(),
            Connection::Https(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Http(tcp) | Connection::Forwarded(tcp) => Pin::new(tcp).poll_flush(cx),
            Connection::Https(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Http(tcp) | Connection::Forwarded(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Connection::Https(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}

/// A TLS stream whose failed writes say why the server closed the connection, when it said
/// so in an alert it sent before: a server that refuses the client's certificate (TLS 1.3
/// checks it after the client's side of the handshake is done) sends its alert and closes,
/// and a request written in several pieces (an aws-chunked body) meets the closed connection
/// before it reads the alert. Python's ssl module reads the alert (botocore's SSLError); the
/// write alone is a ConnectionClosedError.
struct TellsAlerts(TlsStream<TokioIo<Tcp>>);

impl TellsAlerts {
    /// The alert the server sent, if it is among the bytes received, else `error`.
    fn alert_behind(&mut self, error: io::Error) -> io::Error {
        if !matches!(
            error.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            return error;
        }
        let (tcp, tls) = self.0.get_mut();
        let tcp: &TcpStream = tcp.inner().inner();
        let mut received = [0u8; 4096];
        loop {
            let read = received_now(tcp, &mut received);
            if read == 0 {
                break;
            }
            let mut bytes = &received[..read];
            while !bytes.is_empty() && tls.read_tls(&mut bytes).is_ok() {}
            if let Err(alert) = tls.process_new_packets() {
                return io::Error::new(io::ErrorKind::InvalidData, alert);
            }
        }
        error
    }
}

/// Bytes `tcp` has received, read without waiting: tokio's own reads wait until its reactor
/// has seen them come, and a connection the server closed is not polled again.
fn received_now(tcp: &TcpStream, buffer: &mut [u8]) -> usize {
    // SAFETY: a non-blocking recv into a buffer of that length, on a socket `tcp` keeps open.
    let read = unsafe {
        libc::recv(
            tcp.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(read).unwrap_or(0)
}

impl AsyncRead for TellsAlerts {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TellsAlerts {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.0).poll_write(cx, buf));
        Poll::Ready(written.map_err(|e| this.alert_behind(e)))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.0).poll_write_vectored(cx, bufs));
        Poll::Ready(written.map_err(|e| this.alert_behind(e)))
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = ready!(Pin::new(&mut this.0).poll_flush(cx));
        Poll::Ready(flushed.map_err(|e| this.alert_behind(e)))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The name the server's certificate must have: the URL's host (an IP address without its
/// brackets).
fn server_name(destination: &Uri) -> Result<ServerName<'static>, BoxError> {
    let host = destination.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(ServerName::try_from(host.to_owned())?)
}

/// A TLS handshake the server broke off, told apart as Python's ssl module tells it: a close
/// is a protocol violation (botocore's `SSLError`), a reset an OSError (which urllib3 makes
/// botocore's `ConnectionClosedError`). Any other failure of the handshake is rustls's.
#[derive(Debug)]
pub enum HandshakeBrokenOff {
    Closed,
    Reset,
}

impl std::fmt::Display for HandshakeBrokenOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            // Python's words for it.
            HandshakeBrokenOff::Closed => "EOF occurred in violation of protocol",
            HandshakeBrokenOff::Reset => "Connection reset by peer during the TLS handshake",
        })
    }
}

impl std::error::Error for HandshakeBrokenOff {}

/// The handshake's error, marked if the server broke it off.
fn broken_off(error: io::Error) -> io::Error {
    let cause = match error.kind() {
        io::ErrorKind::UnexpectedEof => HandshakeBrokenOff::Closed,
        io::ErrorKind::ConnectionReset => HandshakeBrokenOff::Reset,
        _ => return error,
    };
    io::Error::new(error.kind(), cause)
}

/// No TCP connection within the connect timeout (botocore's `ConnectTimeoutError`).
#[derive(Debug)]
pub struct TcpConnectTimedOut;

impl std::fmt::Display for TcpConnectTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TCP connect timed out")
    }
}

impl std::error::Error for TcpConnectTimedOut {}

/// hyper's client, answering as the SDK's does, with the read timeout of the requests it
/// sends (None for uploads, see `upload::upload_settings`).
#[derive(Debug)]
struct OwnConnector {
    client: Client<Connect, SdkBody>,
    read_timeout: Option<Duration>,
    proxies: Proxies,
}

impl HttpConnector for OwnConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let forwarded_by = match request.uri().scheme_str() {
            Some("http") => self.proxies.http.clone(),
            _ => None,
        };
        let mut connection = capture_connection(&mut request);
        let sent = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let answered = match read_timeout {
                None => sent.await,
                // As botocore's socket timeout, the read timeout runs once the connection is
                // made (or taken from the pool): connecting has the connect timeout.
                Some(limit) => {
                    tokio::pin!(sent);
                    let connected = async {
                        connection.wait_for_connection_metadata().await;
                    };
                    tokio::select! {
                        answered = &mut sent => answered,
                        () = connected => {
                            tokio::time::timeout(limit, sent)
                                .await
                                .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?
                        }
                    }
                }
            };
            let response = answered.map_err(|e| connector_error(e, forwarded_by.as_ref()))?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Fails every request with a TLS error that says why the client certificate cannot be
/// used: botocore fails each request then (an SSLError from urllib3's TLS setup), not the call
/// before it sends any.
#[derive(Debug)]
struct UnusableClientCertificate(String);

impl HttpConnector for UnusableClientCertificate {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let error = rustls::Error::General(self.0.clone());
        HttpConnectorFuture::ready(Err(ConnectorError::other(error.into(), None)))
    }
}

/// The SDK's kinds for hyper's errors: a timeout, or an I/O error (which it retries), as its
/// own client tells them. A connection to a proxy that `forwarded_by` closed before its answer
/// came is one urllib3 counts as not made to the proxy: its ProxyConnectionError.
fn connector_error(
    error: hyper_util::client::legacy::Error,
    forwarded_by: Option<&Proxy>,
) -> ConnectorError {
    let cause = std::error::Error::source(&error);
    let timed_out = cause
        .and_then(|cause| cause.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
    let unanswered = cause
        .and_then(|cause| cause.downcast_ref::<hyper::Error>())
        .is_some_and(|e| e.is_incomplete_message());
    match forwarded_by {
        _ if timed_out => ConnectorError::timeout(error.into()),
        Some(proxy) if unanswered => ConnectorError::io(proxy.unreachable(error).into()),
        _ => ConnectorError::io(error.into()),
    }
}
