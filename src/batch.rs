//! Many objects in one call (the directory API). Each object is an ordinary upload or
//! download; up to `objects_in_flight` of them run at once on the one client and its connection
//! pool, their bytes counted in one `Progress`. One object's failure does not stop the others:
//! each gets its own result, in the order the objects were given.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_s3::types::EncodingType;
use aws_sdk_s3::Client;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::download::{self, DownloadRequest};
use crate::errors::{RequestTrace, TransferError};
use crate::progress::Progress;
use crate::redirect::{with_settings, BucketRegion};
use crate::upload::{self, UploadRequest};

pub struct FileUpload {
    pub path: PathBuf,
    pub key: String,
    /// Sent unless the shared arguments already name a content type.
    pub content_type: Option<String>,
}

pub struct FileDownload {
    pub key: String,
    pub path: PathBuf,
}

pub type Results = Vec<Result<(), TransferError>>;

/// The keys of the objects under `prefix`, in S3's order, a page of ListObjectsV2 after
/// another. As botocore does, keys are asked for URL-encoded (XML cannot carry every character
/// a key may hold) and decoded here. A large bucket takes many pages: `cancel` stops it.
pub async fn list_keys(
    client: &Client,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    cancel: &CancellationToken,
) -> Result<Vec<String>, TransferError> {
    tokio::select! {
        keys = list_all_keys(client, endpoint, bucket, prefix) => keys,
        _ = cancel.cancelled() => Err(TransferError::Cancelled),
    }
}

async fn list_all_keys(
    client: &Client,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, TransferError> {
    let mut keys = Vec::new();
    let mut continuation: Option<String> = None;
    let region = BucketRegion::new(client, endpoint, bucket);
    loop {
        let trace = &RequestTrace::new(client);
        let list = |settings| {
            let operation = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .encoding_type(EncodingType::Url)
                .set_continuation_token(continuation.clone())
                .customize()
                .interceptor(trace.clone());
            async move {
                with_settings(operation, settings)
                    .send()
                    .await
                    .map_err(|e| trace.error("ListObjectsV2", endpoint, e))
            }
        };
        let page = region.send(trace, list).await?;
        let encoded = page.encoding_type == Some(EncodingType::Url);
        keys.extend(page.contents().iter().filter_map(|object| {
            let key = object.key()?;
            Some(if encoded {
                form_decode(key)
            } else {
                key.to_owned()
            })
        }));
        continuation = page
            .next_continuation_token
            .filter(|_| page.is_truncated == Some(true));
        if continuation.is_none() {
            return Ok(keys);
        }
    }
}

/// Decodes an `application/x-www-form-urlencoded` value as Python's `unquote_plus` (which
/// botocore uses on listed keys) does: `+` is a space, `%XX` a byte, the bytes UTF-8 with
/// invalid sequences replaced.
fn form_decode(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|pair| {
            let pair = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(pair, 16).ok()
        });
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
                continue;
            }
            (b'+', _) => decoded.push(b' '),
            (byte, _) => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// One directory transfer: its objects and the arguments they share.
pub enum Batch {
    /// Files to upload, each with the arguments of the request (whose key is ignored).
    Upload(UploadRequest, Vec<FileUpload>),
    /// Objects to download, each with the arguments of the request (whose key and path are
    /// ignored).
    Download(DownloadRequest, Vec<FileDownload>),
}

impl Batch {
    /// Transfers the objects, up to `objects_in_flight` at once; their bytes are counted in
    /// `progress`. Returns each object's result, in order.
    pub async fn run(
        self,
        client: &Client,
        endpoint: &str,
        objects_in_flight: usize,
        progress: Arc<Progress>,
        cancel: CancellationToken,
    ) -> Results {
        // Each job owns what it uses: futures borrowing from the caller across a stream are not
        // `Send` to the compiler's satisfaction.
        match self {
            Batch::Upload(shared, files) => {
                let uploads = files.into_iter().map(|file| {
                    let request = shared.for_object(file.key, file.content_type.as_deref());
                    let (client, endpoint) = (client.clone(), endpoint.to_owned());
                    let (progress, cancel) = (progress.clone(), cancel.clone());
                    async move {
                        let request = request?;
                        upload::upload_file(
                            &client, &endpoint, request, file.path, progress, cancel,
                        )
                        .await
                    }
                });
                run_all(uploads, objects_in_flight).await
            }
            Batch::Download(shared, files) => {
                let downloads = files.into_iter().map(|file| {
                    let request = DownloadRequest {
                        key: file.key,
                        path: file.path,
                        ..shared.clone()
                    };
                    let (client, endpoint) = (client.clone(), endpoint.to_owned());
                    let (progress, cancel) = (progress.clone(), cancel.clone());
                    async move {
                        download::download_file(&client, &endpoint, request, progress, cancel).await
                    }
                });
                run_all(downloads, objects_in_flight).await
            }
        }
    }
}

/// Runs `jobs` with at most `in_flight` at once, whichever finish first making room, and
/// returns their results in the jobs' order.
async fn run_all<F>(jobs: impl Iterator<Item = F>, in_flight: usize) -> Results
where
    F: Future<Output = Result<(), TransferError>>,
{
    let mut results: Vec<(usize, Result<(), TransferError>)> =
        futures_util::stream::iter(jobs.enumerate())
            .map(|(index, job)| async move { (index, job.await) })
            .buffer_unordered(in_flight.max(1))
            .collect()
            .await;
    results.sort_unstable_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn results_keep_the_jobs_order_and_in_flight_is_bounded() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..12u64).map(|n| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Later jobs finish first.
                tokio::time::sleep(Duration::from_millis(30 - 2 * n)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                if n % 5 == 0 {
                    Err(TransferError::InvalidInput(format!("job {n}")))
                } else {
                    Ok(())
                }
            }
        });
        let results = run_all(jobs, 4).await;
        let failed: Vec<usize> = (0..results.len())
            .filter(|&i| results[i].is_err())
            .collect();
        assert_eq!(failed, vec![0, 5, 10]);
        assert_eq!(most.load(Ordering::SeqCst), 4);
    }
}
