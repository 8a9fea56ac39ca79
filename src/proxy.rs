//! HTTP proxies, as urllib3 speaks to them for botocore: plain http requests go to the proxy
//! whole (their request line in absolute form), https ones through a tunnel the proxy opens
//! with CONNECT. Only `http://` proxies without credentials reach the engine (the Python layer
//! leaves others to boto3).

use std::future::Future;
use std::io;
use std::time::Duration;

use http::Uri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The proxies for http:// and https:// URLs, each as the user gave it (what botocore's
/// `ProxyConnectionError` names) and parsed.
#[derive(Clone, Debug, Default)]
pub struct Proxies {
    pub http: Option<Proxy>,
    pub https: Option<Proxy>,
}

#[derive(Clone, Debug)]
pub struct Proxy {
    pub url: String,
    pub uri: Uri,
}

impl Proxy {
    /// The proxy `url` names: its scheme, host and port, all that urllib3 uses of it (the
    /// Python layer leaves URLs urllib3 cannot parse to boto3).
    pub fn new(url: &str) -> Result<Self, String> {
        let authority_end = url
            .find("://")
            .map(|scheme_end| scheme_end + 3)
            .and_then(|start| url[start..].find(['/', '?', '#']).map(|end| start + end))
            .unwrap_or(url.len());
        let uri: Uri = url[..authority_end]
            .parse()
            .map_err(|e| format!("proxy {url:?}: {e}"))?;
        match (uri.scheme_str(), uri.host()) {
            (Some("http"), Some(_)) => Ok(Self {
                url: url.to_owned(),
                uri,
            }),
            _ => Err(format!("proxy {url:?}: not an http:// URL")),
        }
    }

    /// That the proxy could not be reached or would not open a tunnel.
    pub fn unreachable(&self, cause: impl std::fmt::Display) -> io::Error {
        io::Error::other(ProxyUnreachable {
            url: self.url.clone(),
            cause: cause.to_string(),
        })
    }
}

impl Proxies {
    /// The proxy for requests to `destination`.
    pub fn for_destination(&self, destination: &Uri) -> Option<&Proxy> {
        match destination.scheme_str() {
            Some("https") => self.https.as_ref(),
            _ => self.http.as_ref(),
        }
    }
}

/// A proxy that could not be reached, that refused to open a tunnel, or that closed a plain
/// request's connection without answering (urllib3 counts the connection as not made to the
/// proxy then): botocore's `ProxyConnectionError`.
#[derive(Debug)]
pub struct ProxyUnreachable {
    pub url: String,
    pub cause: String,
}

impl std::fmt::Display for ProxyUnreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proxy {}: {}", self.url, self.cause)
    }
}

impl std::error::Error for ProxyUnreachable {}

/// A proxy that closed the connection before it answered CONNECT, or answered with no HTTP
/// status line: urllib3 counts the connection as made to the proxy then, and reports it as
/// closed (botocore's `ConnectionClosedError`).
#[derive(Debug)]
pub struct TunnelUnanswered;

impl std::fmt::Display for TunnelUnanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the proxy did not answer CONNECT")
    }
}

impl std::error::Error for TunnelUnanswered {}

/// The longest answer to a CONNECT taken: http.client's, 100 header lines of 64 KiB at most.
const MAX_ANSWER: usize = 101 * 64 * 1024;

/// Asks `proxy`, connected as `tcp`, for a tunnel to `destination`'s host and port, each write
/// and read within `limit` (urllib3's socket timeout while connecting). A refusal (any status
/// but 200, as urllib3 takes only that) is `ProxyUnreachable`, told as soon as its status line
/// has come (a refusal's body is not waited for); a proxy that closes before it answers, or
/// answers with no HTTP status line, `TunnelUnanswered`.
pub async fn open_tunnel(
    tcp: &mut TcpStream,
    proxy: &Proxy,
    destination: &Uri,
    limit: Duration,
) -> Result<(), io::Error> {
    let host = destination.host().unwrap_or_default();
    let port = destination.port_u16().unwrap_or(443);
    let request = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
    within(limit, tcp.write_all(request.as_bytes())).await?;
    let mut answer = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    let mut status_checked = false;
    // Lines may end with a bare LF, as http.client takes them. The server behind the tunnel
    // does not speak before the client's TLS hello: nothing comes after the answer's head.
    while !has_blank_line(&answer) {
        if answer.len() > MAX_ANSWER {
            return Err(proxy.unreachable("its answer to CONNECT is too long"));
        }
        let read = within(limit, tcp.read(&mut chunk)).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                TunnelUnanswered,
            ));
        }
        answer.extend_from_slice(&chunk[..read]);
        if let (false, Some(line_end)) = (status_checked, answer.iter().position(|&b| b == b'\n')) {
            tunnel_granted(&answer[..line_end], proxy)?;
            status_checked = true;
        }
    }
    Ok(())
}

/// Whether a CONNECT answer's status line grants the tunnel: 200 does; another status is a
/// refusal (`ProxyUnreachable`); a line that is no HTTP status, `TunnelUnanswered`.
fn tunnel_granted(status_line: &[u8], proxy: &Proxy) -> Result<(), io::Error> {
    let status_line = String::from_utf8_lossy(status_line);
    let status_line = status_line.trim_end();
    let mut words = status_line.split_whitespace();
    let (version, code) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let is_status = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
    match (version.starts_with("HTTP/") && is_status, code) {
        (true, "200") => Ok(()),
        (true, _) => Err(proxy.unreachable(format!("Tunnel connection failed: {status_line}"))),
        (false, _) => Err(io::Error::new(io::ErrorKind::InvalidData, TunnelUnanswered)),
    }
}

/// Whether a head's lines so far include the blank one that ends it.
fn has_blank_line(head: &[u8]) -> bool {
    head.windows(2).any(|pair| pair == b"\n\n") || head.windows(3).any(|w| w == b"\n\r\n")
}

/// `io` within `limit`, or a TimedOut error.
async fn within<T>(
    limit: Duration,
    io: impl Future<Output = Result<T, io::Error>>,
) -> Result<T, io::Error> {
    match tokio::time::timeout(limit, io).await {
        Ok(done) => done,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the proxy's tunnel timed out",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A proxy that reads a request head and answers `answer`, then keeps the connection open
    /// until the client closes it.
    async fn answering(answer: &'static [u8]) -> (Proxy, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let served = tokio::spawn(async move {
            let (mut connection, _) = listener.accept().await.expect("accepted");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                connection.read_exact(&mut byte).await.expect("read");
                head.push(byte[0]);
            }
            connection.write_all(answer).await.expect("answered");
            head
        });
        (Proxy::new(&url).expect("a proxy URL"), served)
    }

    async fn tunnel_through(proxy: &Proxy) -> Result<(), io::Error> {
        let address = proxy.uri.authority().expect("an address").as_str();
        let mut tcp = TcpStream::connect(address).await.expect("connected");
        let destination: Uri = "https://bucket.example.com:8443/key"
            .parse()
            .expect("a URL");
        open_tunnel(&mut tcp, proxy, &destination, Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn a_tunnel_is_asked_for_the_destinations_host_and_port() {
        let (proxy, served) = answering(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
        tunnel_through(&proxy).await.expect("opened");
        let head = String::from_utf8(served.await.expect("served")).expect("text");
        assert_eq!(
            head,
            "CONNECT bucket.example.com:8443 HTTP/1.1\r\nHost: bucket.example.com:8443\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn a_refused_tunnel_names_the_proxy() {
        let answer = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n";
        let (proxy, _served) = answering(answer).await;
        let error = tunnel_through(&proxy).await.expect_err("refused");
        let refused = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<ProxyUnreachable>());
        assert_eq!(refused.map(|r| r.url.as_str()), Some(proxy.url.as_str()));
        assert!(error
            .to_string()
            .contains("407 Proxy Authentication Required"));
    }

    #[tokio::test]
    async fn a_refusal_is_told_by_its_status_without_waiting_for_its_body() {
        // The proxy keeps the connection open after the start of its page.
        let answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 999\r\n\r\n<html>";
        let (proxy, _served) = answering(answer).await;
        let error = tunnel_through(&proxy).await.expect_err("refused");
        assert!(error.to_string().contains("403 Forbidden"), "{error}");
    }

    #[tokio::test]
    async fn lines_may_end_with_a_bare_line_feed() {
        let (proxy, _served) = answering(b"HTTP/1.0 200 Connection established\n\n").await;
        tunnel_through(&proxy).await.expect("opened");
    }

    #[tokio::test]
    async fn a_proxy_that_closes_or_answers_no_http_did_not_answer() {
        for answer in [&b""[..], b"FOO BAR\r\n\r\n", b"\r\n"] {
            let (proxy, _served) = answering(answer).await;
            let error = tunnel_through(&proxy).await.expect_err("unanswered");
            assert!(
                error.get_ref().is_some_and(|e| e.is::<TunnelUnanswered>()),
                "{answer:?}: {error}"
            );
        }
    }
}
