//! The S3 server of the tests and benchmarks: s3s-fs's file system backend with SigV4 checks,
//! taking the same arguments as the `s3s-fs` binary of crates.io
//! (`--host H --port P --access-key A --secret-key S ROOT`).
//!
//! Why not that binary: it leaves Nagle's algorithm on. hyper writes a GET response's headers
//! and its body separately, so the body waits for the client's delayed ACK of the headers, and
//! every GET of a small object took 40 ms whatever the client. Real S3 shows no such stall;
//! with it, the server and not the client set every small-download figure.

use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;
use tokio::net::TcpListener;

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
    let mut service = S3ServiceBuilder::new(
        FileSystem::new(&options.root).map_err(|e| format!("{}: {e:?}", options.root.display()))?,
    );
    if let Some((access, secret)) = options.credentials {
        service.set_auth(SimpleAuth::from_single(access, secret));
    }
    let service = service.build();
    let listener = TcpListener::bind((options.host.as_str(), options.port)).await?;
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let connection = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(connection);
    }
}
