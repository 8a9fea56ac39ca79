//! Many objects in one call (the directory API). Each object is an ordinary upload or
//! download; up to `objects_in_flight` of them run at once on the one client and its connection
//! pool, their bytes counted in one `Progress`. One object's failure does not stop the others:
//! each gets its own result, in the order the objects were given.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_s3::types::{EncodingType, RequestPayer};
use aws_sdk_s3::Client;
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::download::{self, DownloadArgs, DownloadRequest};
use crate::errors::{RequestTrace, TransferError};
use crate::plan;
use crate::progress::Progress;
use crate::redirect::{with_settings, BucketRegion};
use crate::upload::{self, UploadRequest};

/// What a directory transfer's objects may have in flight together beyond a request each: the
/// parts of its multipart uploads (each a connection), and the ranged GETs after the first of
/// its downloads (each a connection, and its bytes in memory). As much as one boto3 transfer of
/// the same TransferConfig has (`max_concurrency` parts). Without it, each object in flight ran
/// its own `max_concurrency` parts: 64 files of 96 MiB took 5 GiB of memory, and large objects
/// opened more connections than `ulimit -n 1024` allows.
#[derive(Debug)]
pub struct PartBudget {
    permits: Arc<Semaphore>,
    units: u32,
}

impl PartBudget {
    /// The budget's unit: 5 TiB, S3's largest object, is 2^26 of them, well within a u32.
    const UNIT: u64 = 64 * 1024;

    /// `max_concurrency` parts of `part_size` bytes.
    pub fn new(max_concurrency: usize, part_size: u64) -> Arc<Self> {
        let bytes = part_size.saturating_mul(max_concurrency.max(1) as u64);
        let units = bytes
            .div_ceil(Self::UNIT)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize) as u64)
            as u32;
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
        })
    }

    /// Waits for `bytes` of the budget (all of it, for more than all of it), held until the
    /// permit is dropped, which its holder does once its request has an answer, waiting for
    /// nothing else meanwhile: so all get their turn.
    pub async fn hold(&self, bytes: u64) -> OwnedSemaphorePermit {
        let units = bytes.div_ceil(Self::UNIT).clamp(1, self.units as u64) as u32;
        match self.permits.clone().acquire_many_owned(units).await {
            Ok(permit) => permit,
            Err(_) => unreachable!("the budget's semaphore is never closed"),
        }
    }
}

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

/// What to list: the keys under `prefix`, with the downloads' RequestPayer and
/// ExpectedBucketOwner (a requester-pays bucket refuses its listing to others without it).
pub struct Listing<'a> {
    bucket: &'a str,
    prefix: &'a str,
    request_payer: Option<RequestPayer>,
    expected_bucket_owner: Option<String>,
}

impl<'a> Listing<'a> {
    pub fn new(bucket: &'a str, prefix: &'a str, args: &DownloadArgs) -> Self {
        Self {
            bucket,
            prefix,
            request_payer: args.request_payer.as_deref().map(RequestPayer::from),
            expected_bucket_owner: args.expected_bucket_owner.clone(),
        }
    }
}

/// The keys and sizes of the objects `listing` names, in S3's order, a page of ListObjectsV2
/// after another. As botocore does, keys are asked for URL-encoded (XML cannot carry every
/// character a key may hold) and decoded here. A large bucket takes many pages: `cancel` stops
/// it.
pub async fn list_objects(
    client: &Client,
    endpoint: &str,
    listing: &Listing<'_>,
    cancel: &CancellationToken,
) -> Result<Vec<(String, u64)>, TransferError> {
    tokio::select! {
        objects = list_all_objects(client, endpoint, listing) => objects,
        _ = cancel.cancelled() => Err(TransferError::Cancelled),
    }
}

async fn list_all_objects(
    client: &Client,
    endpoint: &str,
    listing: &Listing<'_>,
) -> Result<Vec<(String, u64)>, TransferError> {
    let mut objects = Vec::new();
    let mut continuation: Option<String> = None;
    let region = BucketRegion::new(client, endpoint, listing.bucket);
    loop {
        let trace = &RequestTrace::new(client);
        let list = |settings| {
            let operation = client
                .list_objects_v2()
                .bucket(listing.bucket)
                .prefix(listing.prefix)
                .set_request_payer(listing.request_payer.clone())
                .set_expected_bucket_owner(listing.expected_bucket_owner.clone())
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
        objects.extend(page.contents().iter().filter_map(|object| {
            let key = object.key()?;
            let key = match encoded {
                true => form_decode(key),
                false => key.to_owned(),
            };
            let size = object.size().unwrap_or(0).max(0) as u64;
            Some((key, size))
        }));
        continuation = page
            .next_continuation_token
            .filter(|_| page.is_truncated == Some(true));
        if continuation.is_none() {
            return Ok(objects);
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
            Batch::Upload(mut shared, files) => {
                // Parts are never below S3's smallest (nor above its largest).
                let part_size = plan::upload_part_size(shared.options.multipart_chunksize, 0);
                let budget = PartBudget::new(shared.options.max_concurrency, part_size);
                shared.part_budget = Some(budget);
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
                run_all(uploads, objects_in_flight, &cancel).await
            }
            Batch::Download(mut shared, files) => {
                let options = &shared.options;
                let budget = PartBudget::new(options.max_concurrency, options.multipart_chunksize);
                shared.part_budget = Some(budget);
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
                run_all(downloads, objects_in_flight, &cancel).await
            }
        }
    }
}

/// Runs `jobs` with at most `in_flight` at once, whichever finish first making room, and
/// returns their results in the jobs' order. Once `cancel` is cancelled, the jobs not yet begun
/// end at once, Cancelled: a stopped transfer of 50,000 files used to open each of them first.
async fn run_all<F>(
    jobs: impl Iterator<Item = F>,
    in_flight: usize,
    cancel: &CancellationToken,
) -> Results
where
    F: Future<Output = Result<(), TransferError>>,
{
    let mut results: Vec<(usize, Result<(), TransferError>)> =
        futures_util::stream::iter(jobs.enumerate())
            .map(|(index, job)| async move {
                match cancel.is_cancelled() {
                    true => (index, Err(TransferError::Cancelled)),
                    false => (index, job.await),
                }
            })
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
        let results = run_all(jobs, 4, &CancellationToken::new()).await;
        let failed: Vec<usize> = (0..results.len())
            .filter(|&i| results[i].is_err())
            .collect();
        assert_eq!(failed, vec![0, 5, 10]);
        assert_eq!(most.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn once_cancelled_the_jobs_not_begun_are_not_run() {
        let cancel = CancellationToken::new();
        let begun = Arc::new(AtomicUsize::new(0));
        let jobs = (0..100).map(|_| {
            let (begun, cancel) = (begun.clone(), cancel.clone());
            async move {
                // The tenth to begin stops the transfer, as a Ctrl-C would.
                if begun.fetch_add(1, Ordering::SeqCst) + 1 == 10 {
                    cancel.cancel();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(())
            }
        });
        let results = run_all(jobs, 4, &cancel).await;
        assert_eq!(begun.load(Ordering::SeqCst), 10);
        let cancelled = results
            .iter()
            .filter(|r| matches!(r, Err(TransferError::Cancelled)))
            .count();
        assert_eq!((results.len(), cancelled), (100, 90));
    }
}
