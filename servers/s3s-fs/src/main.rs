//! The S3 server of the tests and benchmarks: s3s-fs's file system backend with SigV4 checks,
//! taking the same arguments as the `s3s-fs` binary of crates.io
//! (`--host H --port P --access-key A --secret-key S ROOT`).
//!
//! Why not that binary: it leaves Nagle's algorithm on. hyper writes a GET response's headers
//! and its body separately, so the body waits for the client's delayed ACK of the headers, and
//! every GET of a small object took 40 ms whatever the client. Real S3 shows no such stall;
//! with it, the server and not the client set every small-download figure.
//!
//! With Nagle off, the body would go out as s3s-fs reads the file, one 4 KiB segment at a
//! time: large downloads took 40% more CPU on both ends, whatever the client. So response
//! bodies are also handed to hyper in pieces of at least `BODY_PIECE` bytes, as a server that
//! fills full-size segments (S3 does) sends them.
//!
//! And s3s-fs reads a GET's body from its file 4 KiB at a time, each read a hop to tokio's
//! blocking pool: `object_reads` reads those bytes in larger pieces (it says why).
//!
//! Connections close as careful servers close them (`LingeringClose`), so that an upload
//! refused before its body was read gets its error response, not a reset connection.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

mod object_reads;

use object_reads::LargeReads;

struct Options {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    root: PathBuf,
}

fn parse_options() -> Result<Options, String> {
    let mut host = "localhost".to_owned();
    let mut port = 8014;
    let (mut access_key, mut secret_key) = (None, None);
    let mut root = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--host" => host = value()?,
            "--port" => port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--access-key" => access_key = Some(value()?),
            "--secret-key" => secret_key = Some(value()?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => root = Some(PathBuf::from(arg)),
        }
    }
    let credentials = match (access_key, secret_key) {
        (Some(access), Some(secret)) => Some((access, secret)),
        (None, None) => None,
        _ => return Err("--access-key and --secret-key go together".to_owned()),
    };
    let root = root.ok_or("the root directory is missing")?;
    Ok(Options {
        host,
        port,
        credentials,
        root,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_options()?;
    let mut service = S3ServiceBuilder::new(LargeReads::new(&options.root)?);
    if let Some((access, secret)) = options.credentials {
        service.set_auth(SimpleAuth::from_single(access, secret));
    }
    let service = service.build();
    let listener = TcpListener::bind((options.host.as_str(), options.port)).await?;
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let service = InPieces(service.clone());
        let connection = http
            .serve_connection(TokioIo::new(LingeringClose(Some(socket))), service)
            .into_owned();
        tokio::spawn(connection);
    }
}

/// How long a closed connection still takes in what its client sends.
const LINGER: Duration = Duration::from_secs(2);

/// A connection that closes as careful servers close it ("lingering close"): once hyper is done
/// with it, what the client still sends (the rest of an upload refused before its body was
/// read, say for a bad signature) is read and dropped for up to `LINGER` before the socket
/// closes. Closed with that body unread, the kernel resets the connection, and the client can
/// lose the error response it was already sent: the refusal then looks like a dropped
/// connection, to s3turbo and boto3 alike (boto3 mostly avoids it with Expect: 100-continue).
struct LingeringClose(Option<TcpStream>);

impl LingeringClose {
    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.0.as_mut().expect("the socket is there until drop"))
    }
}

impl Drop for LingeringClose {
    fn drop(&mut self) {
        let Some(mut stream) = self.0.take() else {
            return;
        };
        tokio::spawn(async move {
            let _ = stream.shutdown().await;
            let mut unread = vec![0u8; 64 * 1024];
            let drain = async { while let Ok(1..) = stream.read(&mut unread).await {} };
            let _ = tokio::time::timeout(LINGER, drain).await;
        });
    }
}

impl AsyncRead for LingeringClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringClose {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

/// The smallest piece of a response body handed to hyper, but for the last.
const BODY_PIECE: usize = 256 * 1024;

/// s3s's service with its response bodies handed over in `BODY_PIECE`s.
#[derive(Clone)]
struct InPieces(S3Service);

impl Service<http::Request<Incoming>> for InPieces {
    type Response = http::Response<Pieces<s3s::Body>>;
    type Error = <S3Service as Service<http::Request<Incoming>>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let response = Service::call(&self.0, request);
        Box::pin(async move { Ok(response.await?.map(Pieces::new)) })
    }
}

/// A body whose data frames are gathered into pieces of at least `BODY_PIECE` bytes.
struct Pieces<B> {
    inner: B,
    gathered: BytesMut,
    /// The inner body's trailers, sent once the data before them is.
    trailers: Option<Frame<Bytes>>,
    inner_done: bool,
}

impl<B> Pieces<B> {
    fn new(inner: B) -> Self {
        Self {
            inner,
            gathered: BytesMut::new(),
            trailers: None,
            inner_done: false,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Pieces<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        while !this.inner_done && this.gathered.len() < BODY_PIECE {
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    // A piece already large enough goes as it is, uncopied.
                    Ok(data) if this.gathered.is_empty() && data.len() >= BODY_PIECE => {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) => this.gathered.extend_from_slice(&data),
                    Err(trailers) => {
                        this.trailers = Some(trailers);
                        this.inner_done = true;
                    }
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => this.inner_done = true,
            }
        }
        if !this.gathered.is_empty() {
            let piece = this.gathered.split().freeze();
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        Poll::Ready(this.trailers.take().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.gathered.is_empty()
            && self.trailers.is_none()
            && (self.inner_done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let gathered = self.gathered.len() as u64;
        hint.set_lower(hint.lower() + gathered);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + gathered);
        }
        hint
    }
}
