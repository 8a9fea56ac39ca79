//! Download to a local path: HeadObject for size and ETag, then ranged GETs with
//! `If-Match: <ETag>` in parallel (so parts of two versions of an object are never mixed),
//! written with positional writes into a temporary file beside the destination. The temporary
//! file is renamed over the destination only on success, and removed on failure.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::types::{ChecksumMode, RequestPayer};
use aws_sdk_s3::Client;
use futures_util::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

use crate::errors::{body_error, TransferError};
use crate::plan::{self, Part};
use crate::progress::{AttemptCounter, Progress};
use crate::request::TransferOptions;

/// How much of a part is gathered before one positional write.
const WRITE_SIZE: usize = 1024 * 1024;

/// boto3's ALLOWED_DOWNLOAD_ARGS, already encoded as S3 expects them (the SSE-C key in base64
/// with its MD5).
#[derive(Debug, Clone, Default)]
pub struct DownloadArgs {
    pub version_id: Option<String>,
    pub sse_customer_algorithm: Option<String>,
    pub sse_customer_key: Option<String>,
    pub sse_customer_key_md5: Option<String>,
    pub request_payer: Option<String>,
    pub expected_bucket_owner: Option<String>,
    pub checksum_mode: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DownloadRequest {
    pub bucket: String,
    pub key: String,
    pub path: PathBuf,
    pub args: DownloadArgs,
    pub options: TransferOptions,
}

/// HeadObject and GetObject take the same download arguments through setters of the same names.
macro_rules! with_download_args {
    ($builder:expr, $args:expr) => {{
        let args: &DownloadArgs = $args;
        $builder
            .set_version_id(args.version_id.clone())
            .set_sse_customer_algorithm(args.sse_customer_algorithm.clone())
            .set_sse_customer_key(args.sse_customer_key.clone())
            .set_sse_customer_key_md5(args.sse_customer_key_md5.clone())
            .set_request_payer(args.request_payer.as_deref().map(RequestPayer::from))
            .set_expected_bucket_owner(args.expected_bucket_owner.clone())
            .set_checksum_mode(args.checksum_mode.as_deref().map(ChecksumMode::from))
    }};
}

pub async fn download_file(
    client: &Client,
    endpoint: &str,
    request: DownloadRequest,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<(), TransferError> {
    let head = tokio::select! {
        head = with_download_args!(client.head_object(), &request.args)
            .bucket(&request.bucket)
            .key(&request.key)
            .send() => head.map_err(|e| TransferError::from_sdk("HeadObject", endpoint, e))?,
        _ = cancel.cancelled() => return Err(TransferError::Cancelled),
    };
    let size = head
        .content_length
        .and_then(|length| u64::try_from(length).ok())
        .ok_or_else(|| TransferError::Internal("HeadObject answered without a size".to_owned()))?;
    let temp = TempFile::create(&request.path)?;
    temp.file
        .set_len(size)
        .map_err(|e| TransferError::io(&temp.path, e))?;

    let part_size = if size < request.options.multipart_threshold {
        size
    } else {
        request.options.multipart_chunksize
    };
    let fetcher = Fetcher {
        client,
        endpoint,
        request: &request,
        etag: head.e_tag,
        file: &temp.file,
        temp_path: &temp.path,
    };
    let fetched = tokio::select! {
        result = fetcher.fetch_all(plan::split(size, part_size), &progress) => result,
        _ = cancel.cancelled() => Err(TransferError::Cancelled),
    };
    fetched?;
    temp.persist(&request.path)
}

struct Fetcher<'a> {
    client: &'a Client,
    endpoint: &'a str,
    request: &'a DownloadRequest,
    etag: Option<String>,
    file: &'a File,
    temp_path: &'a Path,
}

impl Fetcher<'_> {
    async fn fetch_all(
        &self,
        parts: Vec<Part>,
        progress: &Arc<Progress>,
    ) -> Result<(), TransferError> {
        futures_util::stream::iter(parts)
            .map(|part| self.fetch_part(part, progress))
            .buffer_unordered(self.request.options.max_concurrency.max(1))
            .try_collect::<()>()
            .await
    }

    /// Fetches one range, retrying a broken or timed-out response up to `num_download_attempts`
    /// times in all, as s3transfer does for errors the SDK's own retries do not cover (those in
    /// the middle of a body).
    async fn fetch_part(&self, part: Part, progress: &Arc<Progress>) -> Result<(), TransferError> {
        let attempt = AttemptCounter::new(progress.clone());
        let attempts = self.request.options.num_download_attempts.max(1);
        let mut tries = 0;
        loop {
            tries += 1;
            let generation = attempt.restart();
            match self.fetch_part_once(part, &attempt, generation).await {
                Err(e) if e.is_transient() && tries < attempts => continue,
                Err(e) if e.is_transient() => {
                    return Err(TransferError::RetriesExceeded(Box::new(e)))
                }
                result => return result,
            }
        }
    }

    async fn fetch_part_once(
        &self,
        part: Part,
        attempt: &AttemptCounter,
        generation: u64,
    ) -> Result<(), TransferError> {
        let request = self.request;
        let response = with_download_args!(self.client.get_object(), &request.args)
            .bucket(&request.bucket)
            .key(&request.key)
            .range(part.range_header())
            .set_if_match(self.etag.clone())
            .send()
            .await
            .map_err(|e| TransferError::from_sdk("GetObject", self.endpoint, e))?;
        let mut body = response.body;
        let end = part.offset + part.len;
        // Received chunks are small (tens of KiB); gathering them into larger positional writes
        // saves system calls and contention on the file between concurrent parts.
        let mut pending = Vec::with_capacity(WRITE_SIZE.min(part.len as usize));
        let mut offset = part.offset;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| body_error(self.endpoint, e))?
        {
            if offset + (pending.len() + chunk.len()) as u64 > end {
                return Err(body_error(
                    self.endpoint,
                    "more bytes than the requested range",
                ));
            }
            pending.extend_from_slice(&chunk);
            if pending.len() >= WRITE_SIZE {
                offset = self.write(&mut pending, offset, attempt, generation)?;
            }
        }
        let offset = self.write(&mut pending, offset, attempt, generation)?;
        if offset != end {
            return Err(body_error(self.endpoint, "the response ended early"));
        }
        Ok(())
    }
}

impl Fetcher<'_> {
    /// Writes `pending` at `offset` and empties it; returns the offset after it. A positional
    /// write into the page cache: short enough to do on the worker.
    fn write(
        &self,
        pending: &mut Vec<u8>,
        offset: u64,
        attempt: &AttemptCounter,
        generation: u64,
    ) -> Result<u64, TransferError> {
        self.file
            .write_all_at(pending, offset)
            .map_err(|e| TransferError::io(self.temp_path, e))?;
        let written = pending.len() as u64;
        pending.clear();
        attempt.add(generation, written);
        Ok(offset + written)
    }
}

/// A temporary file beside the destination, removed unless `persist` renamed it into place.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create(destination: &Path) -> Result<Self, TransferError> {
        let mut name = destination.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".s3turbo-{:08x}", random_u32()));
        let path = destination.with_file_name(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| TransferError::io(&path, e))?;
        Ok(Self {
            path,
            file,
            persisted: false,
        })
    }

    fn persist(mut self, destination: &Path) -> Result<(), TransferError> {
        std::fs::rename(&self.path, destination).map_err(|e| TransferError::io(destination, e))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Enough randomness for a temporary file name, from the standard library's seeded hasher.
fn random_u32() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_file_is_removed_unless_persisted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let destination = dir.path().join("out.bin");
        let temp = TempFile::create(&destination).expect("create");
        let temp_path = temp.path.clone();
        assert!(temp_path.exists());
        assert!(temp_path.to_string_lossy().contains("out.bin.s3turbo-"));
        drop(temp);
        assert!(!temp_path.exists());

        let temp = TempFile::create(&destination).expect("create");
        temp.file.write_all_at(b"done", 0).expect("write");
        temp.persist(&destination).expect("persist");
        assert_eq!(std::fs::read(&destination).expect("read"), b"done");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn temp_file_in_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let destination = dir.path().join("missing").join("out.bin");
        match TempFile::create(&destination).err() {
            Some(TransferError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }
}
