//! Downloads. To a local path: a GET of the first range gives size and ETag, then ranged GETs
//! of the rest with `If-Match: <ETag>` in parallel (so parts of two versions of an object are
//! never mixed), written with positional writes into a temporary file beside the destination.
//! The temporary file is renamed over the destination only on success, and removed on failure.
//! A HeadObject goes out only where the first GET cannot tell (see `Fetcher::open`): for an
//! empty object, after a GET that timed out or had no Content-Range, to tell which error a
//! refused GET is, and for the checksum of a small object whose GET brought none.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::client::customize::CustomizableOperation;
use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{ChecksumMode, RequestPayer};
use aws_sdk_s3::Client;
use aws_smithy_checksums::http::HttpChecksum;
use aws_smithy_checksums::ChecksumAlgorithm;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

use crate::bandwidth::BandwidthLimit;
use crate::batch::PartBudget;
use crate::errors::{body_cut_short, body_error, RequestTrace, ServiceError, TransferError};
use crate::handoff::ChunkQueue;
use crate::plan::{self, Part};
use crate::progress::{AttemptCounter, Progress};
use crate::redirect::{with_settings, BucketRegion};
use crate::request::TransferOptions;
use crate::runtime::off_workers;

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
    /// The destination of `download_file`; unused by `download_to_queue`.
    pub path: PathBuf,
    pub args: DownloadArgs,
    pub options: TransferOptions,
    /// `max_bandwidth`, shared by every part of the call.
    pub bandwidth: Option<Arc<BandwidthLimit>>,
    /// A directory transfer's budget, which its ranged GETs after the first share.
    pub part_budget: Option<Arc<PartBudget>>,
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
    let fetcher = Fetcher::new(client, endpoint, &request);
    let mut opening = fetcher.open(&cancel).await?;
    let (path, size) = (request.path.clone(), opening.head.size);
    let temp = off_workers(move || {
        let temp = TempFile::create(&path)?;
        // Fails as s3transfer's first write would (EFBIG, ENOSPC on some file systems).
        temp.file.set_len(size).map_err(TransferError::io_write)?;
        Ok(temp)
    })
    .await?;
    let etag = opening.head.etag.clone();
    let concurrency = request.options.max_concurrency.max(1);
    let stored = opening.stored.take();
    let (fetcher, temp_ref, progress, etag) = (&fetcher, &temp, &progress, etag.as_deref());
    let (budget, stored) = (&request.part_budget, stored.as_ref());
    let fetch_all = futures_util::stream::iter(fetcher.jobs(opening))
        .map(|(part, start)| {
            let mut writer = Checked::new(FileRange::new(temp_ref, part), stored);
            async move {
                // The first range's GET went out before the budget was asked (and goes on
                // outside it if it timed out): the objects in flight bound those.
                let _held = match (budget, &start) {
                    (Some(budget), Start::Fresh) => Some(budget.hold(part.len).await),
                    _ => None,
                };
                fetcher
                    .fetch_part(part, etag, start, progress, &mut writer)
                    .await
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>();
    tokio::select! {
        result = fetch_all => result?,
        _ = cancel.cancelled() => return Err(TransferError::Cancelled),
    };
    progress.until_reported(&cancel).await?;
    let path = request.path.clone();
    off_workers(move || temp.persist(&path)).await
}

/// Download into a sink that takes the object in order (`download_fileobj`): parts are fetched
/// in parallel, and handed to `queue` in order as each one and those before it are complete;
/// the first part, which nothing comes before, as its bytes come (as boto3 streams it).
/// `on_chunk` tells the consumer there is something to take. Memory stays bounded by about
/// `max_concurrency` parts in flight plus those waiting in the queue.
pub async fn download_to_queue(
    client: &Client,
    endpoint: &str,
    request: DownloadRequest,
    queue: Arc<ChunkQueue>,
    on_chunk: impl Fn() + Send + Sync,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<(), TransferError> {
    let fetcher = Fetcher::new(client, endpoint, &request);
    let mut opening = fetcher.open(&cancel).await?;
    let etag = opening.head.etag.clone();
    let stored = opening.stored.take();
    let concurrency = request.options.max_concurrency.max(1);
    let (fetcher_ref, progress, etag) = (&fetcher, &progress, etag.as_deref());
    let (stored, queue_ref, on_chunk) = (stored.as_ref(), &queue, &on_chunk);
    let mut in_order = futures_util::stream::iter(fetcher.jobs(opening))
        .map(|(part, start)| {
            let fetcher = fetcher_ref;
            async move {
                let writer = match part.number {
                    1 => InOrder::Streamed(Streamed::new(queue_ref, on_chunk)),
                    _ => InOrder::Held(MemoryRange::default()),
                };
                let mut writer = Checked::new(writer, stored);
                fetcher
                    .fetch_part(part, etag, start, progress, &mut writer)
                    .await?;
                Ok::<_, TransferError>(match writer.writer {
                    InOrder::Held(held) => held.0.freeze(),
                    InOrder::Streamed(_) => Bytes::new(),
                })
            }
        })
        .buffered(concurrency);
    let deliver_all = async {
        while let Some(chunk) = in_order.try_next().await? {
            if !chunk.is_empty() {
                queue.push(chunk).await;
                on_chunk();
            }
        }
        Ok(())
    };
    tokio::select! {
        result = deliver_all => result,
        _ = cancel.cancelled() => Err(TransferError::Cancelled),
    }
}

struct Head {
    size: u64,
    etag: Option<String>,
}

impl Opening {
    /// The object's first part: its first `first_len` bytes (or all of a smaller one).
    fn first_part(head: Head, first_len: u64, start: Start) -> Self {
        let len = head.size.min(first_len);
        Opening {
            head,
            first: Part {
                number: 1,
                offset: 0,
                len,
            },
            start,
            stored: None,
        }
    }
}

/// What the first ranged GET (or a HeadObject) told of the object, and how its first part's
/// fetch starts.
struct Opening {
    head: Head,
    first: Part,
    start: Start,
    /// The checksum to check an object wholly in its first part against, where the GET had
    /// none (see `Fetcher::stored_checksum`).
    stored: Option<StoredChecksum>,
}

/// How a part's fetch starts.
enum Start {
    /// With a GET to send.
    Fresh,
    /// With the response of the first range's GET, already sent.
    Opened(Box<GetObjectOutput>),
    /// The first range's GET timed out: that was one of the part's attempts.
    OpeningTimedOut,
}

struct Fetcher<'a> {
    client: &'a Client,
    endpoint: &'a str,
    request: &'a DownloadRequest,
}

impl<'a> Fetcher<'a> {
    fn bucket_region(&self) -> BucketRegion<'a> {
        BucketRegion::new(self.client, self.endpoint, &self.request.bucket)
    }

    fn new(client: &'a Client, endpoint: &'a str, request: &'a DownloadRequest) -> Self {
        Self {
            client,
            endpoint,
            request,
        }
    }

    /// A GetObject of `range` with the download's ExtraArgs, its attempts followed by `trace`.
    fn get_object(
        &self,
        range: String,
        if_match: Option<&str>,
        trace: &RequestTrace,
    ) -> CustomizableOperation<GetObjectOutput, GetObjectError, GetObjectFluentBuilder> {
        with_download_args!(self.client.get_object(), &self.request.args)
            .bucket(&self.request.bucket)
            .key(&self.request.key)
            .range(range)
            .set_if_match(if_match.map(str::to_owned))
            .customize()
            .interceptor(trace.clone())
    }

    /// Learns the object's size and ETag from a GET of its first range rather than from the
    /// HeadObject s3transfer sends first: one round trip fewer, and all of an object below the
    /// multipart threshold in it. Its errors are reported as boto3 would report them (see
    /// `refusal`). An empty object has no first range (416): HeadObject.
    /// A GET that times out is where s3transfer's GET would have (its HeadObject answered
    /// first), and s3transfer tries that GET again: so a HeadObject tells the size, and the
    /// first part's fetch goes on with the attempts left.
    async fn open(&self, cancel: &CancellationToken) -> Result<Opening, TransferError> {
        let options = &self.request.options;
        // No object is larger than S3's largest: a threshold beyond it ("never multipart")
        // asks for no range end that a server might not parse.
        let first_len = options
            .multipart_threshold
            .max(options.multipart_chunksize)
            .clamp(1, plan::MAX_OBJECT_SIZE);
        let trace = &RequestTrace::new(self.client);
        let first_range = format!("bytes=0-{}", first_len - 1);
        let send = |settings| {
            let operation = self.get_object(first_range.clone(), None, trace);
            async move {
                with_settings(operation, settings)
                    .send()
                    .await
                    .map_err(|e| trace.error("GetObject", self.endpoint, e))
            }
        };
        let region = self.bucket_region();
        let sent = tokio::select! {
            sent = region.send(trace, send) => sent,
            _ = cancel.cancelled() => return Err(TransferError::Cancelled),
        };
        let response = match sent {
            Ok(response) => response,
            Err(TransferError::Service(error)) if error.status == 416 => {
                return Ok(Opening::first_part(
                    self.head(cancel).await?,
                    0,
                    Start::Fresh,
                ));
            }
            // Its connection was never made: boto3's HeadObject would have met the same stalled
            // handshake and failed with it (one more HeadObject would double the wait).
            Err(error @ TransferError::HandshakeTimeout { .. }) => return Err(error),
            Err(error) if error.is_retried_download_error() => {
                if options.num_download_attempts <= 1 {
                    return Err(TransferError::RetriesExceeded(Box::new(error)));
                }
                let head = self.head(cancel).await?;
                return Ok(Opening::first_part(head, first_len, Start::OpeningTimedOut));
            }
            Err(TransferError::Service(error)) => return Err(self.refusal(*error, cancel).await),
            Err(error) => return Err(error),
        };
        let head = match object_size(&response, first_len)? {
            Some(size) => Head {
                size,
                etag: response.e_tag.clone(),
            },
            // A range's worth without a Content-Range: the object may be larger.
            None => self.head(cancel).await?,
        };
        let whole = head.size <= first_len;
        let stored = match whole && self.validates_checksums() && !has_checksum(&response) {
            true => self.stored_checksum(head.etag.as_deref(), cancel).await,
            false => None,
        };
        Ok(Opening {
            stored,
            ..Opening::first_part(head, first_len, Start::Opened(Box::new(response)))
        })
    }

    /// Whether boto3 checks the bytes it gets against the object's checksum: unless response
    /// checksums are validated only when required (and then it sends no HeadObject first).
    fn validates_checksums(&self) -> bool {
        !matches!(
            self.client.config().response_checksum_validation(),
            Some(ResponseChecksumValidation::WhenRequired)
        )
    }

    /// The checksum S3 keeps of the whole object `etag` names, from a HeadObject: S3 sends
    /// none with a ranged GET, where boto3 GETs an object below the threshold whole and checks
    /// it. None if it keeps none, or only one of parts (`...-N`, which boto3 does not check
    /// either), or if the HeadObject fails (the object changed since: its If-Match).
    async fn stored_checksum(
        &self,
        etag: Option<&str>,
        cancel: &CancellationToken,
    ) -> Option<StoredChecksum> {
        let head = self.head_object(Some(etag?), cancel).await.ok()?;
        let present = [
            (ChecksumAlgorithm::Crc64Nvme, head.checksum_crc64_nvme),
            (ChecksumAlgorithm::Crc32c, head.checksum_crc32_c),
            (ChecksumAlgorithm::Crc32, head.checksum_crc32),
            (ChecksumAlgorithm::Sha1, head.checksum_sha1),
            (ChecksumAlgorithm::Sha256, head.checksum_sha256),
        ];
        // botocore's order of preference.
        let (algorithm, value) = present
            .into_iter()
            .find_map(|(algorithm, value)| Some((algorithm, value?)))?;
        (!value.contains('-')).then_some(StoredChecksum { algorithm, value })
    }

    /// The error boto3 reports where the first GET was refused. s3transfer sends HeadObject
    /// first (unless response checksums are validated only when required, when its first
    /// request is a GET too): a missing object or a failing server is HeadObject's error, told
    /// by its status. A denial HeadObject may not share (it reads an archived object's metadata,
    /// which GET refuses with InvalidObjectState; an SSE-KMS object's, whose key GET needs), so
    /// a HeadObject tells: its error if it has one, else the GET's. (A refused CreateSession,
    /// S3 Express's, would have refused HeadObject alike.)
    async fn refusal(&self, error: ServiceError, cancel: &CancellationToken) -> TransferError {
        let heads_first = self.validates_checksums();
        if !heads_first || error.operation == "CreateSession" {
            return TransferError::Service(Box::new(error));
        }
        let status = error.status;
        let shared_by_head = status == 404 || status == 429 || status >= 500;
        if shared_by_head {
            return TransferError::Service(Box::new(error.into_head_object()));
        }
        match self.head(cancel).await {
            Ok(_) => TransferError::Service(Box::new(error)),
            Err(head_error) => head_error,
        }
    }

    async fn head(&self, cancel: &CancellationToken) -> Result<Head, TransferError> {
        let head = self.head_object(None, cancel).await?;
        let size = head
            .content_length
            .and_then(|length| u64::try_from(length).ok())
            .ok_or_else(|| {
                TransferError::Internal("HeadObject answered without a size".to_owned())
            })?;
        Ok(Head {
            size,
            etag: head.e_tag,
        })
    }

    /// HeadObject; of the object `checksum_of` names by its ETag, with its checksum, if given.
    async fn head_object(
        &self,
        checksum_of: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<HeadObjectOutput, TransferError> {
        let request = self.request;
        let trace = &RequestTrace::new(self.client);
        let send = |settings| {
            let mut operation = with_download_args!(self.client.head_object(), &request.args)
                .bucket(&request.bucket)
                .key(&request.key);
            if let Some(etag) = checksum_of {
                operation = operation
                    .if_match(etag)
                    .checksum_mode(ChecksumMode::Enabled);
            }
            let operation = operation.customize().interceptor(trace.clone());
            async move {
                with_settings(operation, settings)
                    .send()
                    .await
                    .map_err(|e| trace.error("HeadObject", self.endpoint, e))
            }
        };
        let region = self.bucket_region();
        tokio::select! {
            head = region.send(trace, send) => head,
            _ = cancel.cancelled() => Err(TransferError::Cancelled),
        }
    }

    /// The ranges to fetch, the first with the response that has its bytes: after the first
    /// range, the rest of an object below the multipart threshold as one range, of a larger
    /// one in ranges of `multipart_chunksize`.
    fn jobs(&self, opening: Opening) -> impl Iterator<Item = (Part, Start)> + Send + 'static {
        let options = &self.request.options;
        let (size, start) = (opening.head.size, opening.first.len);
        let rest = size.saturating_sub(start);
        let part_size = if size < options.multipart_threshold {
            rest
        } else {
            options.multipart_chunksize
        };
        let first = (opening.first.len > 0).then_some((opening.first, opening.start));
        let others = plan::split(rest, part_size).map(move |part| {
            let part = Part {
                number: part.number.saturating_add(1),
                offset: part.offset + start,
                len: part.len,
            };
            (part, Start::Fresh)
        });
        first.into_iter().chain(others)
    }

    /// Fetches one range into `writer`, retrying a broken or timed-out response up to
    /// `num_download_attempts` times in all, as s3transfer does for errors the SDK's own
    /// retries do not cover (those in the middle of a body).
    async fn fetch_part(
        &self,
        part: Part,
        etag: Option<&str>,
        start: Start,
        progress: &Arc<Progress>,
        writer: &mut impl PartWriter,
    ) -> Result<(), TransferError> {
        let attempt = AttemptCounter::new(progress.clone());
        let attempts = self.request.options.num_download_attempts.max(1);
        let (mut tries, mut response) = match start {
            Start::Fresh => (0, None),
            Start::Opened(response) => (0, Some(*response)),
            Start::OpeningTimedOut => (1, None),
        };
        loop {
            tries += 1;
            let generation = attempt.restart();
            writer.restart();
            match self
                .fetch_part_once(part, etag, response.take(), &attempt, generation, writer)
                .await
            {
                Err(e) if e.is_retried_download_error() && tries < attempts => continue,
                Err(e) if e.is_retried_download_error() => {
                    // s3transfer takes back each failed attempt's bytes, the last one's too.
                    attempt.restart();
                    return Err(TransferError::RetriesExceeded(Box::new(e)));
                }
                result => return result,
            }
        }
    }

    async fn fetch_part_once(
        &self,
        part: Part,
        etag: Option<&str>,
        response: Option<GetObjectOutput>,
        attempt: &AttemptCounter,
        generation: u64,
        writer: &mut impl PartWriter,
    ) -> Result<(), TransferError> {
        let request = self.request;
        let trace = RequestTrace::new(self.client);
        let response = match response {
            Some(response) => response,
            // The first range found the bucket's region, if it had to.
            None => with_settings(
                self.get_object(part.range_header(), etag, &trace),
                self.bucket_region().settings(),
            )
            .send()
            .await
            .map_err(|e| trace.error("GetObject", self.endpoint, e))?,
        };
        check_range(response.content_range.as_deref(), part)?;
        let mut body = response.body;
        let mut received = 0u64;
        loop {
            // A body that stops coming fails after the read timeout (http_client::PacedBody).
            let chunk = match body.try_next().await {
                Err(e) => return Err(body_error(self.endpoint, &e)),
                Ok(None) => break,
                Ok(Some(chunk)) => chunk,
            };
            received += chunk.len() as u64;
            if received > part.len {
                return Err(body_cut_short(
                    self.endpoint,
                    "more bytes than the requested range",
                ));
            }
            let len = chunk.len() as u64;
            writer.write(chunk)?;
            // Counted before it is handed on: the Callback sees bytes before the sink.
            attempt.add(generation, len);
            writer.hand_on().await;
            if let Some(limit) = &request.bandwidth {
                // Not reading on holds the server back: TCP's flow control paces the sender.
                limit.pace(len).await;
            }
        }
        if received != part.len {
            return Err(body_cut_short(self.endpoint, "the response ended early"));
        }
        writer.finish()?;
        writer.hand_on().await;
        Ok(())
    }
}

/// The whole object's size from the GET of its first `first_len` bytes: the total of
/// `Content-Range: bytes a-b/total`; without one, the length of an answer shorter than the
/// range (the whole object), or None when the answer is as long as the range (a 206 that a
/// proxy stripped of its Content-Range, or an object of that very size: a HeadObject tells).
fn object_size(response: &GetObjectOutput, first_len: u64) -> Result<Option<u64>, TransferError> {
    let size = match &response.content_range {
        Some(range) => range
            .rsplit('/')
            .next()
            .and_then(|total| total.parse().ok()),
        None => match response
            .content_length
            .and_then(|length| u64::try_from(length).ok())
        {
            Some(length) if length >= first_len => return Ok(None),
            length => length,
        },
    };
    size.map(Some).ok_or_else(|| {
        TransferError::Internal(format!(
            "GetObject answered without a usable size (Content-Range {:?})",
            response.content_range
        ))
    })
}

/// s3transfer's check of a ranged GET's answer: the range it holds (`bytes a-b/total`) starts
/// where the part does and ends within it, or its bytes would land in the wrong place. An
/// answer without a Content-Range is checked by its length alone.
fn check_range(content_range: Option<&str>, part: Part) -> Result<(), TransferError> {
    let Some(content_range) = content_range else {
        return Ok(());
    };
    let (start, end) = content_range
        .strip_prefix("bytes ")
        .and_then(|range| range.split_once('/'))
        .and_then(|(range, _total)| range.split_once('-'))
        .and_then(|(start, end)| Some((start.parse::<u64>().ok()?, end.parse::<u64>().ok()?)))
        .ok_or_else(|| {
            TransferError::WrongRange(format!("Response range `{content_range}` is not a range"))
        })?;
    let (requested_start, requested_end) = (part.offset, part.offset + part.len.saturating_sub(1));
    if start != requested_start {
        return Err(TransferError::WrongRange(format!(
            "Response range start `{start}` does not match requested start `{requested_start}`"
        )));
    }
    if end > requested_end {
        return Err(TransferError::WrongRange(format!(
            "Response range end `{end}` exceeds requested end `{requested_end}`"
        )));
    }
    Ok(())
}

/// Where the bytes of one part go, in order; `restart` forgets a failed attempt's bytes.
trait PartWriter {
    fn restart(&mut self);
    fn write(&mut self, data: Bytes) -> Result<(), TransferError>;
    fn finish(&mut self) -> Result<(), TransferError>;
    /// Hands on what was written, if this writer hands bytes on as they come: waits for room.
    async fn hand_on(&mut self) {}
}

/// One part's range of the temporary file. Received chunks are small (tens of KiB); they are
/// kept (not copied) until there are enough for one vectored positional write, which saves
/// system calls and contention on the file between concurrent parts.
struct FileRange<'a> {
    temp: &'a TempFile,
    part: Part,
    pending: Vec<Bytes>,
    pending_len: usize,
    offset: u64,
}

/// How much of a part is gathered before one write.
const WRITE_SIZE: usize = 1024 * 1024;
/// At most this many chunks per write (Linux's IOV_MAX is 1024).
const WRITE_CHUNKS: usize = 256;

impl<'a> FileRange<'a> {
    fn new(temp: &'a TempFile, part: Part) -> Self {
        Self {
            temp,
            part,
            pending: Vec::new(),
            pending_len: 0,
            offset: part.offset,
        }
    }
}

impl PartWriter for FileRange<'_> {
    fn restart(&mut self) {
        self.pending.clear();
        self.pending_len = 0;
        self.offset = self.part.offset;
    }

    fn write(&mut self, data: Bytes) -> Result<(), TransferError> {
        self.pending_len += data.len();
        self.pending.push(data);
        if self.pending_len >= WRITE_SIZE || self.pending.len() >= WRITE_CHUNKS {
            self.finish()?;
        }
        Ok(())
    }

    /// A positional write into the page cache: short enough to do on the worker.
    fn finish(&mut self) -> Result<(), TransferError> {
        let mut slices: Vec<IoSlice<'_>> = self.pending.iter().map(|c| IoSlice::new(c)).collect();
        write_all_vectored_at(&self.temp.file, &mut slices, self.offset)
            .map_err(TransferError::io_write)?;
        self.offset += self.pending_len as u64;
        self.pending.clear();
        self.pending_len = 0;
        Ok(())
    }
}

/// `pwritev` until all of `slices` is written at `offset` (the standard library has no
/// positional vectored write).
fn write_all_vectored_at(
    file: &File,
    mut slices: &mut [IoSlice<'_>],
    mut offset: u64,
) -> std::io::Result<()> {
    loop {
        // Empty buffers (an HTTP/2 DATA frame may be empty) are dropped first: pwritev of only
        // those returns 0, which would read as a failed write.
        IoSlice::advance_slices(&mut slices, 0);
        if slices.is_empty() {
            return Ok(());
        }
        let position = libc::off_t::try_from(offset)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let count = libc::c_int::try_from(slices.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: IoSlice is ABI-compatible with the system's iovec on Unix (as the standard
        // library documents), and `slices` and the buffers they borrow outlive the call.
        let written =
            unsafe { libc::pwritev(file.as_raw_fd(), slices.as_ptr().cast(), count, position) };
        let written = match usize::try_from(written) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => written,
            Err(_) => {
                let error = std::io::Error::last_os_error();
                if error.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
        };
        offset += written as u64;
        IoSlice::advance_slices(&mut slices, written);
    }
}

/// A part of a download into a sink: the first goes on as it comes, the others are held until
/// those before them have gone.
enum InOrder<'q, F> {
    Streamed(Streamed<'q, F>),
    Held(MemoryRange),
}

impl<F: Fn()> PartWriter for InOrder<'_, F> {
    fn restart(&mut self) {
        match self {
            InOrder::Streamed(streamed) => streamed.restart(),
            InOrder::Held(held) => held.restart(),
        }
    }

    fn write(&mut self, data: Bytes) -> Result<(), TransferError> {
        match self {
            InOrder::Streamed(streamed) => streamed.write(data),
            InOrder::Held(held) => held.write(data),
        }
    }

    fn finish(&mut self) -> Result<(), TransferError> {
        match self {
            InOrder::Streamed(streamed) => streamed.finish(),
            InOrder::Held(held) => held.finish(),
        }
    }

    async fn hand_on(&mut self) {
        if let InOrder::Streamed(streamed) = self {
            streamed.hand_on().await;
        }
    }
}

/// The first part of a download into a sink, handed to the queue as it comes, in blocks of
/// `STREAMED_BLOCK` (the last may be shorter). A new attempt, after a body broke off, skips
/// what earlier ones handed on, as s3transfer skips offsets it has written.
struct Streamed<'q, F> {
    queue: &'q ChunkQueue,
    on_chunk: &'q F,
    block: BytesMut,
    /// Bytes of this part handed on, by all attempts.
    handed_on: u64,
    /// Bytes of this part the current attempt has received.
    received: u64,
    /// The last bytes are in: hand on a short block too.
    finished: bool,
}

/// How much of the first part goes to the sink in one write (s3transfer's io_chunksize).
const STREAMED_BLOCK: usize = 256 * 1024;

impl<'q, F: Fn()> Streamed<'q, F> {
    fn new(queue: &'q ChunkQueue, on_chunk: &'q F) -> Self {
        Self {
            queue,
            on_chunk,
            block: BytesMut::new(),
            handed_on: 0,
            received: 0,
            finished: false,
        }
    }

    fn restart(&mut self) {
        self.block.clear();
        self.received = 0;
        self.finished = false;
    }

    fn write(&mut self, data: Bytes) -> Result<(), TransferError> {
        let start = self.received;
        self.received += data.len() as u64;
        // Of these bytes, those after what was handed on and is held now.
        let known = self.handed_on + self.block.len() as u64;
        if self.received > known {
            let skip = known.saturating_sub(start) as usize;
            self.block.extend_from_slice(&data[skip..]);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TransferError> {
        self.finished = true;
        Ok(())
    }

    async fn hand_on(&mut self) {
        while self.block.len() >= STREAMED_BLOCK || (self.finished && !self.block.is_empty()) {
            let len = self.block.len().min(STREAMED_BLOCK);
            let block = self.block.split_to(len).freeze();
            self.handed_on += len as u64;
            self.queue.push(block).await;
            (self.on_chunk)();
        }
    }
}

/// One part held in memory until it can be handed over in order.
#[derive(Default)]
struct MemoryRange(BytesMut);

impl PartWriter for MemoryRange {
    fn restart(&mut self) {
        self.0.clear();
    }

    fn write(&mut self, data: Bytes) -> Result<(), TransferError> {
        self.0.extend_from_slice(&data);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TransferError> {
        Ok(())
    }
}

/// A checksum S3 keeps of a whole object (base64), to check its bytes against.
struct StoredChecksum {
    algorithm: ChecksumAlgorithm,
    value: String,
}

/// Whether a GET's answer has a checksum (which the SDK checks, unless it is of parts).
fn has_checksum(response: &GetObjectOutput) -> bool {
    [
        &response.checksum_crc64_nvme,
        &response.checksum_crc32_c,
        &response.checksum_crc32,
        &response.checksum_sha1,
        &response.checksum_sha256,
    ]
    .iter()
    .any(|value| value.is_some())
}

/// A part's writer that checks the part against `stored`, if given, once it has all of it:
/// only an object wholly in its first part has one (see `Fetcher::stored_checksum`).
struct Checked<'s, W> {
    writer: W,
    stored: Option<&'s StoredChecksum>,
    checksum: Option<Box<dyn HttpChecksum>>,
}

impl<'s, W> Checked<'s, W> {
    fn new(writer: W, stored: Option<&'s StoredChecksum>) -> Self {
        Self {
            writer,
            stored,
            checksum: None,
        }
    }
}

impl<W: PartWriter> PartWriter for Checked<'_, W> {
    fn restart(&mut self) {
        self.writer.restart();
        self.checksum = self.stored.map(|stored| stored.algorithm.into_impl());
    }

    fn write(&mut self, data: Bytes) -> Result<(), TransferError> {
        if let Some(checksum) = &mut self.checksum {
            checksum.update(&data);
        }
        self.writer.write(data)
    }

    fn finish(&mut self) -> Result<(), TransferError> {
        self.writer.finish()?;
        match (self.stored, self.checksum.take()) {
            (Some(stored), Some(checksum)) => {
                let calculated = aws_smithy_types::base64::encode(checksum.finalize());
                match calculated == stored.value {
                    true => Ok(()),
                    false => Err(TransferError::checksum_mismatch(&stored.value, &calculated)),
                }
            }
            _ => Ok(()),
        }
    }

    async fn hand_on(&mut self) {
        self.writer.hand_on().await;
    }
}

/// A temporary file beside the destination, removed unless `persist` renamed it into place.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

/// The longest file name Linux file systems take, in bytes (NAME_MAX).
const MAX_FILE_NAME: usize = 255;

impl TempFile {
    /// The destination's path with a suffix, as s3transfer names its temporary file: so a
    /// destination ending in '/' puts it inside that folder, and fails as boto3 fails if the
    /// folder is missing. Its file name is cut to leave room for the suffix, as s3transfer
    /// cuts it, so that a destination named up to the longest name a file can have works.
    fn create(destination: &Path) -> Result<Self, TransferError> {
        let suffix = format!(".s3turbo-{:08x}", random_u32());
        let destination = destination.as_os_str().as_bytes();
        let name_start = destination
            .iter()
            .rposition(|&byte| byte == b'/')
            .map_or(0, |slash| slash + 1);
        let kept = (name_start + MAX_FILE_NAME - suffix.len()).min(destination.len());
        let mut path = destination[..kept].to_vec();
        path.extend_from_slice(suffix.as_bytes());
        let path = PathBuf::from(OsString::from_vec(path));
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
        std::fs::rename(&self.path, destination)
            .map_err(|e| TransferError::io_rename(&self.path, destination, e))?;
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
    use std::os::unix::fs::FileExt;

    use super::*;

    #[test]
    fn empty_buffers_are_written_as_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = File::create(dir.path().join("out.bin")).expect("create");
        write_all_vectored_at(&file, &mut [IoSlice::new(b""), IoSlice::new(b"")], 0)
            .expect("only empty buffers");
        let mut slices = [IoSlice::new(b""), IoSlice::new(b"ab"), IoSlice::new(b"")];
        write_all_vectored_at(&file, &mut slices, 0).expect("empty buffers around data");
        write_all_vectored_at(&file, &mut [IoSlice::new(b"c"), IoSlice::new(b"")], 2)
            .expect("an empty buffer last");
        assert_eq!(
            std::fs::read(dir.path().join("out.bin")).expect("read"),
            b"abc"
        );
    }

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
    fn chunks_land_at_their_offsets_in_one_vectored_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let temp = TempFile::create(&dir.path().join("out.bin")).expect("create");
        temp.file.set_len(16).expect("size");
        let part = Part {
            number: 2,
            offset: 4,
            len: 9,
        };
        let mut range = FileRange::new(&temp, part);
        for chunk in ["abc", "", "defg", "hi"] {
            range.write(Bytes::from(chunk)).expect("write");
        }
        range.finish().expect("finish");
        let written = std::fs::read(&temp.path).expect("read");
        assert_eq!(&written[..], b"\0\0\0\0abcdefghi\0\0\0");
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
