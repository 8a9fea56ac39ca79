//! Uploads. From a local file: one PutObject below the multipart threshold, otherwise a
//! multipart upload with parts read by positional reads (no shared cursor) and up to
//! `max_concurrency` parts in flight. From a stream (`upload_stream`): blocks read by the
//! caller, uploaded the same way. A multipart upload that fails or is cancelled is aborted, so
//! no parts are left behind in the bucket.

use std::fs::File;
use std::future::Future;
use std::io::Seek;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_runtime::auth::PayloadSigningOverride;
use aws_sdk_s3::config::interceptors::{
    BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{ConfigBag, Intercept, RequestChecksumCalculation, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use aws_smithy_checksums::http::HttpChecksum;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::bandwidth::BandwidthLimit;
use crate::batch::PartBudget;
use crate::body::{self, read_exact_at, BodyFile, FileRange, UploadBody};
use crate::buffers::BufferPool;
use crate::errors::{RequestTrace, TransferError};
use crate::plan;
use crate::presign::hex;
use crate::progress::{AttemptCounter, BodyActivity, CommitPoint, CountingBody, Progress};
use crate::redirect::{with_settings, BucketRegion};
use crate::request::{with_headers, Headers, TransferOptions};
use crate::retries;
use crate::runtime::off_workers;

/// Extra request headers for each operation of an upload, already encoded the way botocore
/// encodes the user's ExtraArgs.
#[derive(Debug, Clone, Default)]
pub struct UploadHeaders {
    pub put_object: Headers,
    pub create_multipart_upload: Headers,
    pub upload_part: Headers,
    pub complete_multipart_upload: Headers,
}

#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub bucket: String,
    pub key: String,
    pub headers: UploadHeaders,
    /// The checksum the engine computes (`Digesting`) and sends for a PutObject body and for
    /// each part body, as boto3's settings and ExtraArgs choose them (they differ when a
    /// full-object checksum is given).
    pub put_object_checksum: Option<ChecksumAlgorithm>,
    /// A full-object checksum the user gave (ExtraArgs ChecksumCRC32, ...) for a PutObject:
    /// its algorithm and value, sent as they are instead of computed. `put_object_checksum` is
    /// then only the algorithm the user named, which botocore sends beside it whatever it is.
    pub put_object_checksum_value: Option<(ChecksumAlgorithm, String)>,
    pub upload_part_checksum: Option<ChecksumAlgorithm>,
    /// Whether a PutObject's and each part's body have their SHA-256 signed
    /// (`x-amz-content-sha256`), as botocore signs a body no checksum protects, or one with
    /// `payload_signing_enabled`; otherwise they go as UNSIGNED-PAYLOAD.
    pub sign_put_object_payload: bool,
    pub sign_upload_part_payload: bool,
    pub options: TransferOptions,
    /// `max_bandwidth`, shared by every body of the call.
    pub bandwidth: Option<Arc<BandwidthLimit>>,
    /// A directory transfer's budget, which the parts of its multipart uploads share.
    pub part_budget: Option<Arc<PartBudget>>,
}

impl UploadRequest {
    /// The same upload arguments for another object (the directory API), with a content type
    /// for it unless the arguments already name one.
    pub fn for_object(
        &self,
        key: String,
        content_type: Option<&str>,
    ) -> Result<UploadRequest, TransferError> {
        let mut headers = self.headers.clone();
        if let Some(content_type) = content_type {
            headers.put_object = headers
                .put_object
                .with_default("Content-Type", content_type)?;
            headers.create_multipart_upload = headers
                .create_multipart_upload
                .with_default("Content-Type", content_type)?;
        }
        Ok(UploadRequest {
            key,
            headers,
            ..self.clone()
        })
    }
}

/// Sets a precomputed body checksum on a PutObject or UploadPart builder (their setters share
/// names). The SDK then sends it as a header instead of computing it into an aws-chunked
/// trailer, which over plain HTTP also signs every chunk with SHA-256; S3 verifies the body by
/// the checksum (and by its signed SHA-256 too, if the request asks for that).
macro_rules! with_body_checksum {
    ($builder:expr, $algorithm:expr, $value:expr) => {{
        let builder = $builder;
        match ($algorithm, $value) {
            (Some(ChecksumAlgorithm::Crc32), Some(value)) => builder.checksum_crc32(value),
            (Some(ChecksumAlgorithm::Crc32C), Some(value)) => builder.checksum_crc32_c(value),
            (Some(ChecksumAlgorithm::Crc64Nvme), Some(value)) => builder.checksum_crc64_nvme(value),
            (Some(ChecksumAlgorithm::Sha1), Some(value)) => builder.checksum_sha1(value),
            (Some(ChecksumAlgorithm::Sha256), Some(value)) => builder.checksum_sha256(value),
            _ => builder,
        }
    }};
}

struct Target<'a> {
    client: &'a Client,
    endpoint: &'a str,
    request: &'a UploadRequest,
}

pub async fn upload_file(
    client: &Client,
    endpoint: &str,
    request: UploadRequest,
    path: PathBuf,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<(), TransferError> {
    let target = Target {
        client,
        endpoint,
        request: &request,
    };
    let threshold = request.options.multipart_threshold;
    let digesting = target.put_object_digests().start()?;
    let opened = path.clone();
    // One trip to the blocking pool opens the file and, when it is small, reads it too: for a
    // small file the trips cost more than the reading.
    let source = off_workers(move || open_source(&opened, threshold, digesting)).await?;
    let path = Arc::new(path);
    let buffers = BufferPool::new(body::CHUNK);
    // The file, held until the PutObject has an answer (its body holds it weakly).
    let (body, digests, _file) = match source {
        Source::Whole(data, digests) => (UploadBody::Memory(data), digests, None),
        Source::Sent(file, size) => {
            let range = FileRange::new(&file, path, 0, size, &buffers);
            let (body, digests) = file_body(range, target.put_object_digests()).await?;
            (body, digests, Some(file))
        }
        Source::Parts(file, size) => {
            let part_size = plan::upload_part_size(request.options.multipart_chunksize, size);
            let digests = target.upload_part_digests();
            let budget = request.part_budget.clone();
            // The stream of jobs holds the file and the buffers until the last part has an
            // answer (the bodies hold them weakly).
            let jobs = futures_util::stream::iter(plan::split(size, part_size)).map(move |part| {
                let range = FileRange::new(&file, path.clone(), part.offset, part.len, &buffers);
                let (digests, budget) = (digests.clone(), budget.clone());
                async move {
                    // In a directory transfer, a part first waits for its share of the budget,
                    // held until its UploadPart has an answer.
                    let held = match budget {
                        Some(budget) => Some(budget.hold(part.len).await),
                        None => None,
                    };
                    let (body, digests) = file_body(range, digests).await?;
                    Ok(PartData {
                        number: part.number,
                        body,
                        digests,
                        held,
                    })
                }
            });
            return target.multipart(jobs, &progress, &cancel).await;
        }
    };
    // It stops at a cancel, unless its last bytes have gone (see `CommitPoint`).
    target.put_object(body, digests, &progress, &cancel).await
}

/// Files below this are read whole, with their digests, as soon as they are opened; larger ones
/// are read as they are sent (see `body`).
const READ_WHOLE_BELOW: u64 = 1 << 20;

/// A file to upload: read whole (with its digests) when small, else open for its body, or its
/// parts, to be read as they are sent.
enum Source {
    Whole(Bytes, Digests),
    Sent(Arc<BodyFile>, u64),
    Parts(Arc<BodyFile>, u64),
}

fn open_source(path: &Path, threshold: u64, digesting: Digesting) -> Result<Source, TransferError> {
    let io_error = |e| TransferError::io(path, e);
    let file = File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    if metadata.is_dir() {
        // EISDIR, as Python's open() reports it.
        return Err(io_error(std::io::Error::from_raw_os_error(21)));
    }
    // A pipe (a FIFO) has no size and no positions: its bytes would be lost as an empty
    // object. boto3 refuses it when it seeks, so do we (ESPIPE).
    (&file).stream_position().map_err(io_error)?;
    let size = metadata.len();
    if size > plan::MAX_OBJECT_SIZE {
        return Err(TransferError::InvalidInput(format!(
            "{} is {size} bytes; S3 objects are at most 5 TiB",
            path.display()
        )));
    }
    if size >= threshold {
        return Ok(Source::Parts(Arc::new(BodyFile::new(file)), size));
    }
    if size >= READ_WHOLE_BELOW {
        return Ok(Source::Sent(Arc::new(BodyFile::new(file)), size));
    }
    // Below READ_WHOLE_BELOW: the size fits.
    let mut data = vec![0; size as usize];
    read_exact_at(&file, &mut data, 0).map_err(io_error)?;
    let mut digesting = digesting;
    digesting.update(&data);
    Ok(Source::Whole(data.into(), digesting.finish()))
}

/// What a stream's reader hands `upload_stream`. The end is said, not told by the channel's
/// closing: a reader that fails drops its sender, and the stream's blocks so far must not be
/// stored as the whole object.
#[derive(Debug)]
pub enum StreamBlock {
    Data(Bytes),
    End,
}

/// Upload from a stream of unknown length (`upload_fileobj`): `blocks` brings the stream in
/// blocks of `stream_part_size`, read on the caller's thread; `on_taken` tells the reader there
/// is room for another. As s3transfer does, a stream that ends before the multipart threshold
/// is one PutObject; a longer one is a multipart upload, one part per block, up to
/// `max_concurrency` in flight.
pub async fn upload_stream(
    client: &Client,
    endpoint: &str,
    request: UploadRequest,
    mut blocks: mpsc::Receiver<StreamBlock>,
    on_taken: impl Fn() + Send + Sync,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<(), TransferError> {
    let target = Target {
        client,
        endpoint,
        request: &request,
    };
    let mut initial = Vec::new();
    let mut initial_len = 0u64;
    let mut ended = false;
    while initial_len < request.options.multipart_threshold || initial.is_empty() {
        let block = tokio::select! {
            block = blocks.recv() => block,
            _ = cancel.cancelled() => return Err(TransferError::Cancelled),
        };
        on_taken();
        match block {
            Some(StreamBlock::Data(block)) => {
                initial_len += block.len() as u64;
                initial.push(block);
            }
            Some(StreamBlock::End) => {
                ended = true;
                break;
            }
            None => return Err(TransferError::Cancelled),
        }
    }
    if ended && initial_len < request.options.multipart_threshold {
        let data = concat(initial);
        let wanted = target.put_object_digests();
        let digests = tokio::select! {
            digests = digests_of(&data, &wanted) => digests?,
            _ = cancel.cancelled() => return Err(TransferError::Cancelled),
        };
        // It stops at a cancel, unless its last bytes have gone (see `CommitPoint`).
        return target
            .put_object(UploadBody::Memory(data), digests, &progress, &cancel)
            .await;
    }
    // A stream given up fails its next part, so the upload is aborted, not completed. One that
    // ended already (at a threshold of 0, an empty one) has no more: a multipart upload of no
    // parts, which S3 refuses as it refuses boto3's.
    let rest = futures_util::stream::unfold((!ended).then_some(blocks), |blocks| async {
        let mut blocks = blocks?;
        match blocks.recv().await {
            Some(StreamBlock::Data(block)) => Some((Ok(block), Some(blocks))),
            Some(StreamBlock::End) => None,
            None => Some((Err(TransferError::Cancelled), None)),
        }
    })
    .inspect(|_| on_taken());
    let digests = target.upload_part_digests();
    let jobs = futures_util::stream::iter(initial.into_iter().map(Ok))
        .chain(rest)
        .enumerate()
        .map(move |(index, data)| stream_part(index, data, digests.clone()));
    target.multipart(jobs, &progress, &cancel).await
}

async fn stream_part(
    index: usize,
    data: Result<Bytes, TransferError>,
    digests: WantedDigests,
) -> Result<PartData, TransferError> {
    let data = data?;
    let number = u32::try_from(index + 1)
        .ok()
        .filter(|n| u64::from(*n) <= plan::MAX_PARTS)
        .ok_or_else(|| {
            TransferError::InvalidInput(format!(
                "the stream needs more than S3's {} parts: a larger multipart_chunksize fits it",
                plan::MAX_PARTS
            ))
        })?;
    let digests = digests_of(&data, &digests).await?;
    Ok(PartData {
        number,
        body: UploadBody::Memory(data),
        digests,
        held: None,
    })
}

/// The body and digests of one part, ready to send.
struct PartData {
    number: u32,
    body: UploadBody,
    digests: Digests,
    /// Its share of a directory transfer's budget, given back when its UploadPart has an
    /// answer (not when its bytes are dropped: a connection given up on may keep them).
    held: Option<OwnedSemaphorePermit>,
}

/// What the engine computes over each body of an upload as it reads it: the checksum S3
/// verifies, and the SHA-256 that SigV4 signs when the payload is signed.
#[derive(Debug, Clone)]
struct WantedDigests {
    checksum: Option<ChecksumAlgorithm>,
    payload_sha256: bool,
}

impl WantedDigests {
    fn start(&self) -> Result<Digesting, TransferError> {
        // A SHA-256 checksum of a body whose SHA-256 is signed is the same digest: computed
        // once, told both ways.
        let checksum_is_payload_sha256 =
            self.payload_sha256 && self.checksum == Some(ChecksumAlgorithm::Sha256);
        let checksum = match &self.checksum {
            Some(_) if checksum_is_payload_sha256 => None,
            checksum => checksum.as_ref().map(checksum_impl).transpose()?,
        };
        Ok(Digesting {
            checksum,
            payload_sha256: self.payload_sha256.then(Sha256::new),
            checksum_is_payload_sha256,
        })
    }
}

/// `WantedDigests` being computed, slice by slice.
struct Digesting {
    checksum: Option<Box<dyn HttpChecksum>>,
    payload_sha256: Option<Sha256>,
    checksum_is_payload_sha256: bool,
}

impl Digesting {
    /// Nothing to digest: no checksum and no signed payload.
    fn is_empty(&self) -> bool {
        self.checksum.is_none() && self.payload_sha256.is_none()
    }

    fn update(&mut self, slice: &[u8]) {
        if let Some(checksum) = self.checksum.as_mut() {
            checksum.update(slice);
        }
        if let Some(sha256) = self.payload_sha256.as_mut() {
            sha256.update(slice);
        }
    }

    fn finish(self) -> Digests {
        let payload_sha256 = self.payload_sha256.map(|sha256| sha256.finalize());
        let checksum = match (self.checksum, &payload_sha256) {
            (Some(checksum), _) => {
                Some(String::from_utf8_lossy(checksum.header_value().as_bytes()).into_owned())
            }
            (None, Some(sha256)) if self.checksum_is_payload_sha256 => {
                Some(aws_smithy_types::base64::encode(sha256))
            }
            (None, _) => None,
        };
        Digests {
            checksum,
            payload_sha256: payload_sha256.map(|sha256| hex(&sha256)),
        }
    }
}

/// A body's digests: its checksum (base64, as S3 takes it) and payload SHA-256 (hex, as SigV4
/// signs it), each if asked for.
#[derive(Debug, Clone, Default)]
struct Digests {
    checksum: Option<String>,
    payload_sha256: Option<String>,
}

/// Has the SDK sign a body's SHA-256, computed as the body was read, where it would sign a
/// streamed body as UNSIGNED-PAYLOAD.
#[derive(Debug)]
struct SignedPayload(String);

impl Intercept for SignedPayload {
    fn name(&self) -> &'static str {
        "s3turbo::SignedPayload"
    }

    fn modify_before_signing(
        &self,
        _context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        config
            .interceptor_state()
            .store_put(PayloadSigningOverride::Precomputed(self.0.clone()));
        Ok(())
    }
}

/// The per-request settings `settings`, signing the payload's SHA-256 if it was computed.
fn with_signed_payload(
    settings: aws_sdk_s3::config::Builder,
    digests: &Digests,
) -> aws_sdk_s3::config::Builder {
    match &digests.payload_sha256 {
        Some(sha256) => settings.interceptor(SignedPayload(sha256.clone())),
        None => settings,
    }
}

/// The per-request settings `settings`, with the SDK computing the checksum `algorithm` names
/// (into a trailer: see `Target::checksum_in_trailer`; one computed here already is a header,
/// which the SDK leaves as it is). botocore computes a named algorithm's checksum whatever
/// `request_checksum_calculation` says; the SDK's `WhenRequired` only those an operation
/// requires.
fn computing_named_checksum(
    settings: aws_sdk_s3::config::Builder,
    algorithm: Option<&ChecksumAlgorithm>,
) -> aws_sdk_s3::config::Builder {
    match algorithm {
        Some(_) => settings.request_checksum_calculation(RequestChecksumCalculation::WhenSupported),
        None => settings,
    }
}

impl<'a> Target<'a> {
    fn bucket_region(&self) -> BucketRegion<'a> {
        BucketRegion::new(self.client, self.endpoint, &self.request.bucket)
    }

    /// Sends an upload request of `body`, made by `send` with the per-request settings it
    /// is given (`upload_settings`): an attempt whose body has not moved, nor its response come,
    /// for the client's read timeout is given up (see `unless_stalled`) and made again, as
    /// botocore retries a read timeout. Those attempts and the SDK's own retries of every other
    /// failure share the client's max attempts, as in botocore. `commits`, for a request whose
    /// last byte commits the object (a PutObject): its commit point (see `CommitPoint`).
    async fn send_upload<T, Fut>(
        &self,
        body: &UploadBody,
        progress: &Arc<Progress>,
        commits: Option<&Arc<CommitPoint>>,
        send: impl Fn(ByteStream, aws_sdk_s3::config::Builder, RequestTrace) -> Fut,
    ) -> Result<T, TransferError>
    where
        Fut: Future<Output = Result<T, TransferError>>,
    {
        let config = self.client.config();
        let read_timeout = config.timeout_config().and_then(|t| t.read_timeout());
        let connect_timeout = config.timeout_config().and_then(|t| t.connect_timeout());
        let max_attempts = retries::max_attempts(config);
        let counter = AttemptCounter::new(progress.clone());
        let attempts = Arc::new(AtomicU32::new(0));
        let trace = RequestTrace::new(self.client);
        let region = self.bucket_region();
        // As in botocore, a redirect to the bucket's region is one of the attempts, and always
        // goes out: after one at attempt n, the attempts are max(max_attempts, n + 1).
        let mut redirected_at: Option<u32> = None;
        loop {
            let budget = redirected_at.map_or(max_attempts, |n| max_attempts.max(n + 1));
            let left = budget.saturating_sub(attempts.load(Ordering::Relaxed));
            if left == 0 {
                return Err(TransferError::read_timeout(&trace.url_or(self.endpoint)));
            }
            let (stream, activity) = counting_stream(
                body,
                &counter,
                &self.request.bandwidth,
                connect_timeout.unwrap_or_default(),
                commits.cloned(),
            );
            let watch = WatchAttempts {
                attempts: attempts.clone(),
                activity: activity.clone(),
            };
            let signed_for = region.known();
            let mut settings = upload_settings(self.client, left, watch);
            if let (Some(point), 0) = (commits, body.len()) {
                settings = settings.interceptor(CommitsWithItsHead(point.clone()));
            }
            if let Some(region) = &signed_for {
                settings = settings.region(region.clone());
            }
            let send = send(stream, settings, trace.clone());
            let sent = async {
                match read_timeout {
                    None => Some(send.await),
                    Some(read_timeout) => unless_stalled(send, &activity, read_timeout).await,
                }
            };
            // A body whose file could not be read fails its request at once, with the file's
            // error rather than the request's.
            let sent = tokio::select! {
                biased;
                error = body.failed() => return Err(error),
                sent = sent => sent,
            };
            if let (Some(Err(_)) | None, Some(error)) = (&sent, body.read_failure()) {
                return Err(error);
            }
            match sent {
                Some(Err(error)) if redirected_at.is_none() => {
                    match region.redirect(&error, signed_for).await {
                        Some(_) => redirected_at = Some(attempts.load(Ordering::Relaxed)),
                        None => return Err(error),
                    }
                }
                Some(result) => return result,
                // The stalled attempt counts even if it stalled before the SDK began it.
                None => {
                    attempts.fetch_max(budget - left + 1, Ordering::Relaxed);
                }
            };
        }
    }

    /// Whether a body's checksum goes in an aws-chunked trailer, computed by the SDK as the
    /// body goes out, rather than in a header computed before (`Digesting`): over https, as
    /// botocore sends it there (STREAMING-UNSIGNED-PAYLOAD-TRAILER). A file's body is then read
    /// once instead of twice. Over plain http botocore sends it in a header, and the SDK would
    /// sign every chunk of a trailer's body with SHA-256.
    fn checksum_in_trailer(&self) -> bool {
        self.endpoint.starts_with("https:")
    }

    /// What to compute over a PutObject body: no checksum when the user gave its value, or when
    /// it goes in a trailer.
    fn put_object_digests(&self) -> WantedDigests {
        let request = self.request;
        let computed_here =
            request.put_object_checksum_value.is_none() && !self.checksum_in_trailer();
        WantedDigests {
            checksum: request
                .put_object_checksum
                .clone()
                .filter(|_| computed_here),
            payload_sha256: request.sign_put_object_payload,
        }
    }

    fn upload_part_digests(&self) -> WantedDigests {
        WantedDigests {
            checksum: (self.request.upload_part_checksum.clone())
                .filter(|_| !self.checksum_in_trailer()),
            payload_sha256: self.request.sign_upload_part_payload,
        }
    }

    /// A PutObject of `data`. Its last bytes go once the Callback has seen them all (see
    /// `CountingBody`): if it raises, or the transfer is cancelled, the object is not written.
    async fn put_object(
        &self,
        body: UploadBody,
        digests: Digests,
        progress: &Arc<Progress>,
        cancel: &CancellationToken,
    ) -> Result<(), TransferError> {
        let request = self.request;
        let checksum = request.put_object_checksum.as_ref();
        let (value_checksum, value) = match &request.put_object_checksum_value {
            Some((algorithm, value)) => (Some(algorithm), Some(value.clone())),
            None => (checksum, digests.checksum.clone()),
        };
        let headers = &request.headers.put_object;
        let send = |stream, settings: aws_sdk_s3::config::Builder, trace: RequestTrace| {
            let builder = self
                .client
                .put_object()
                .bucket(&request.bucket)
                .key(&request.key)
                .set_checksum_algorithm(checksum.cloned())
                .content_length(body.len() as i64)
                .body(stream);
            let builder = with_body_checksum!(builder, value_checksum, value.clone());
            let operation = with_headers(builder.customize(), headers);
            // aws-sdk-s3 labels every PutObject body application/octet-stream; boto3 sends no
            // Content-Type unless asked, and S3 then stores binary/octet-stream. Match boto3.
            let operation = if headers.contains("content-type") {
                operation
            } else {
                operation.mutate_request(|request| {
                    request.headers_mut().remove("content-type");
                })
            };
            let settings = with_signed_payload(settings, &digests).interceptor(trace.clone());
            let settings = computing_named_checksum(settings, checksum);
            async move {
                operation
                    .config_override(settings)
                    .send()
                    .await
                    .map_err(|e| trace.error("PutObject", self.endpoint, e))
            }
        };
        let commit = CommitPoint::new(progress.clone(), cancel.clone());
        let put = self.send_upload(&body, progress, Some(&commit), send);
        tokio::pin!(put);
        tokio::select! {
            put = &mut put => put.map(drop),
            _ = cancel.cancelled() => {
                if commit.passed() {
                    // Past the commit point the request stands, and its answer says whether
                    // the object is stored (a body stopped at the point fails it at once).
                    put.await.map(drop).map_err(|_| TransferError::Cancelled)
                } else {
                    Err(TransferError::Cancelled)
                }
            }
        }
    }

    /// Creates the multipart upload, uploads the parts `jobs` produce with up to
    /// `max_concurrency` in flight, and completes it; aborts it on any failure or cancellation.
    async fn multipart<S, F>(
        &self,
        jobs: S,
        progress: &Arc<Progress>,
        cancel: &CancellationToken,
    ) -> Result<(), TransferError>
    where
        S: futures_util::Stream<Item = F>,
        F: Future<Output = Result<PartData, TransferError>>,
    {
        let request = self.request;
        let trace = &RequestTrace::new(self.client);
        let create = |settings| {
            let operation = with_headers(
                self.client
                    .create_multipart_upload()
                    .bucket(&request.bucket)
                    .key(&request.key)
                    .customize(),
                &request.headers.create_multipart_upload,
            )
            .interceptor(trace.clone());
            async move {
                with_settings(operation, settings)
                    .send()
                    .await
                    .map_err(|e| trace.error("CreateMultipartUpload", self.endpoint, e))
            }
        };
        let created = self.bucket_region().send(trace, create).await?;
        let upload_id = created.upload_id.ok_or_else(|| {
            TransferError::Internal("CreateMultipartUpload answered without an UploadId".to_owned())
        })?;

        let upload_id = upload_id.as_str();
        let upload_all = jobs
            .map(|job| self.upload_job(upload_id, job, progress))
            .buffer_unordered(request.options.max_concurrency.max(1))
            .try_collect::<Vec<CompletedPart>>();
        let uploaded = tokio::select! {
            result = upload_all => result,
            _ = cancel.cancelled() => Err(TransferError::Cancelled),
        };
        let completed = match uploaded {
            Ok(mut parts) => {
                parts.sort_by_key(|part| part.part_number);
                match progress.until_reported(cancel).await {
                    Ok(()) => self.complete(upload_id, parts).await,
                    Err(cancelled) => Err(cancelled),
                }
            }
            Err(e) => Err(e),
        };
        if completed.is_err() {
            // Best effort: the original error is what the caller needs to see.
            let abort = self
                .client
                .abort_multipart_upload()
                .bucket(&request.bucket)
                .key(&request.key)
                .upload_id(upload_id)
                .customize();
            let _ = with_settings(abort, self.bucket_region().settings())
                .send()
                .await;
        }
        completed
    }

    async fn upload_job(
        &self,
        upload_id: &str,
        job: impl Future<Output = Result<PartData, TransferError>>,
        progress: &Arc<Progress>,
    ) -> Result<CompletedPart, TransferError> {
        let mut part = job.await?;
        let _held = part.held.take();
        self.upload_part(upload_id, part, progress).await
    }

    async fn upload_part(
        &self,
        upload_id: &str,
        part: PartData,
        progress: &Arc<Progress>,
    ) -> Result<CompletedPart, TransferError> {
        let request = self.request;
        let checksum = request.upload_part_checksum.as_ref();
        let number = i32::try_from(part.number).unwrap_or(i32::MAX);
        let send = |stream, settings: aws_sdk_s3::config::Builder, trace: RequestTrace| {
            let builder = self
                .client
                .upload_part()
                .bucket(&request.bucket)
                .key(&request.key)
                .upload_id(upload_id)
                .part_number(number)
                .set_checksum_algorithm(checksum.cloned())
                .content_length(part.body.len() as i64)
                .body(stream);
            let builder = with_body_checksum!(builder, checksum, part.digests.checksum.clone());
            let operation = with_headers(builder.customize(), &request.headers.upload_part);
            let settings = with_signed_payload(settings, &part.digests).interceptor(trace.clone());
            let settings = computing_named_checksum(settings, checksum);
            async move {
                operation
                    .config_override(settings)
                    .send()
                    .await
                    .map_err(|e| trace.error("UploadPart", self.endpoint, e))
            }
        };
        let output = self.send_upload(&part.body, progress, None, send).await?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(output.e_tag)
            .set_checksum_crc32(output.checksum_crc32)
            .set_checksum_crc32_c(output.checksum_crc32_c)
            .set_checksum_crc64_nvme(output.checksum_crc64_nvme)
            .set_checksum_sha1(output.checksum_sha1)
            .set_checksum_sha256(output.checksum_sha256)
            .build())
    }

    async fn complete(
        &self,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), TransferError> {
        let request = self.request;
        let trace = RequestTrace::new(self.client);
        let operation = with_headers(
            self.client
                .complete_multipart_upload()
                .bucket(&request.bucket)
                .key(&request.key)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .customize(),
            &request.headers.complete_multipart_upload,
        )
        .interceptor(trace.clone());
        // CreateMultipartUpload found the bucket's region, if it had to.
        with_settings(operation, self.bucket_region().settings())
            .send()
            .await
            .map_err(|e| trace.error("CompleteMultipartUpload", self.endpoint, e))?;
        Ok(())
    }
}

/// One `Bytes` of the blocks, copying only when there are several.
fn concat(blocks: Vec<Bytes>) -> Bytes {
    match <[Bytes; 1]>::try_from(blocks) {
        Ok([single]) => single,
        Err(blocks) => blocks.concat().into(),
    }
}

/// The digests of a body, computed on the blocking pool: a SHA-256 of a large part would hold
/// a tokio worker for milliseconds.
async fn digests_of(data: &Bytes, digests: &WantedDigests) -> Result<Digests, TransferError> {
    let mut digesting = digests.start()?;
    if digesting.is_empty() {
        return Ok(Digests::default());
    }
    let data = data.clone();
    off_workers(move || {
        digesting.update(&data);
        Ok(digesting.finish())
    })
    .await
}

/// A file's range as an upload body, and its digests, read on the blocking pool (the first of
/// its two reads: see `body`).
async fn file_body(
    range: FileRange,
    digests: WantedDigests,
) -> Result<(UploadBody, Digests), TransferError> {
    let mut digesting = digests.start()?;
    let digests = match digesting.is_empty() {
        true => Digests::default(),
        false => {
            let reading = range.clone();
            off_workers(move || {
                reading
                    .read_through(|slice| digesting.update(slice))
                    .map_err(|e| TransferError::io(reading.path(), e))?;
                Ok(digesting.finish())
            })
            .await?
        }
    };
    Ok((UploadBody::File(range), digests))
}

fn checksum_impl(algorithm: &ChecksumAlgorithm) -> Result<Box<dyn HttpChecksum>, TransferError> {
    aws_smithy_checksums::ChecksumAlgorithm::from_str(algorithm.as_str())
        .map(|algorithm| algorithm.into_impl())
        .map_err(|_| {
            TransferError::InvalidInput(format!(
                "unsupported ChecksumAlgorithm {:?}",
                algorithm.as_str()
            ))
        })
}

/// A request body that the SDK can replay on retry; each replay first takes back the progress
/// the previous attempt reported to `attempt`. It comes with the activity `unless_stalled`
/// watches.
fn counting_stream(
    body: &UploadBody,
    attempt: &Arc<AttemptCounter>,
    bandwidth: &Option<Arc<BandwidthLimit>>,
    connect_timeout: Duration,
    commit: Option<Arc<CommitPoint>>,
) -> (ByteStream, Arc<BodyActivity>) {
    let activity = BodyActivity::new(connect_timeout);
    let (body, attempt, bandwidth, body_activity) = (
        body.clone(),
        attempt.clone(),
        bandwidth.clone(),
        activity.clone(),
    );
    let stream = ByteStream::new(SdkBody::retryable(move || {
        let body = CountingBody::new(
            body.reader(),
            attempt.clone(),
            body_activity.clone(),
            bandwidth.clone(),
            commit.clone(),
        );
        SdkBody::from_body_1_x(body)
    }));
    (stream, activity)
}

/// `send`'s output, or None once `activity` is `read_timeout` in the past (outside the SDK's
/// backoff between attempts).
async fn unless_stalled<T>(
    send: impl Future<Output = T>,
    activity: &BodyActivity,
    read_timeout: Duration,
) -> Option<T> {
    tokio::pin!(send);
    loop {
        tokio::select! {
            output = &mut send => return Some(output),
            _ = tokio::time::sleep_until(activity.next_check(read_timeout)) => {
                let stalled = activity.stalled_at(read_timeout);
                if stalled.is_some_and(|at| at <= tokio::time::Instant::now()) {
                    return None;
                }
            }
        }
    }
}

/// Counts the SDK's attempts of an upload request, which the engine's retries of stalled ones
/// share, and tells the body's activity when each starts and ends.
#[derive(Debug)]
struct WatchAttempts {
    attempts: Arc<AtomicU32>,
    activity: Arc<BodyActivity>,
}

impl Intercept for WatchAttempts {
    fn name(&self) -> &'static str {
        "s3turbo::WatchAttempts"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.activity.attempt_started();
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.activity.attempt_ended();
        Ok(())
    }
}

/// The commit point of an empty PutObject body, which has no last bytes to pass it: its
/// request's head commits the object, so the point is passed as each attempt goes to the HTTP
/// client, unless the transfer was cancelled first (see `CommitPoint`).
#[derive(Debug)]
struct CommitsWithItsHead(Arc<CommitPoint>);

impl Intercept for CommitsWithItsHead {
    fn name(&self) -> &'static str {
        "s3turbo::CommitsWithItsHead"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match self.0.pass() {
            true => Ok(()),
            false => Err("the transfer was stopped".into()),
        }
    }
}

/// The per-request settings of an upload: at most `attempts` attempts, each reported to `watch`,
/// and no read timeout. The client's runs from the connection to the response's head (see
/// own_http), so it would cut short a body that takes longer than that to send (a slow uplink,
/// a bandwidth limit), which boto3 sends: botocore's bounds each socket read and write instead. `unless_stalled` bounds upload
/// stalls as botocore's does.
fn upload_settings(
    client: &Client,
    attempts: u32,
    watch: WatchAttempts,
) -> aws_sdk_s3::config::Builder {
    let config = client.config();
    let mut timeouts = TimeoutConfig::builder().disable_read_timeout();
    // Set again, so that the override's merge with the client's keeps it.
    if let Some(connect) = config.timeout_config().and_then(|t| t.connect_timeout()) {
        timeouts = timeouts.connect_timeout(connect);
    }
    let retries = retries::with_attempts(config, attempts);
    aws_sdk_s3::config::Builder::default()
        .timeout_config(timeouts.build())
        .retry_config(retries)
        .interceptor(watch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_paced_request_is_given_up_only_when_its_body_stalls() {
        let activity = BodyActivity::new(Duration::ZERO);
        let timeout = Duration::from_secs(5);
        let start = tokio::time::Instant::now();
        // The body keeps moving for 12 s (longer than the timeout), then the response comes.
        let moving = async {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                activity.touch(tokio::time::Instant::now());
            }
            "response"
        };
        assert_eq!(
            unless_stalled(moving, &activity, timeout).await,
            Some("response")
        );
        assert_eq!(start.elapsed(), Duration::from_secs(12));
        // Nothing moves and no response comes: given up `timeout` after the last activity.
        let stalled = std::future::pending::<()>();
        assert_eq!(unless_stalled(stalled, &activity, timeout).await, None);
        assert_eq!(start.elapsed(), Duration::from_secs(17));
    }

    #[tokio::test(start_paused = true)]
    async fn the_sdk_backoff_between_attempts_is_not_a_stall() {
        let activity = BodyActivity::new(Duration::ZERO);
        let timeout = Duration::from_secs(5);
        let start = tokio::time::Instant::now();
        // An attempt fails at once; the SDK waits 12 s (longer than the timeout) before the
        // next, which then stalls: given up `timeout` after that attempt began.
        let retried = async {
            activity.attempt_started();
            activity.attempt_ended();
            tokio::time::sleep(Duration::from_secs(12)).await;
            activity.attempt_started();
            std::future::pending::<()>().await
        };
        assert_eq!(unless_stalled(retried, &activity, timeout).await, None);
        assert_eq!(start.elapsed(), Duration::from_secs(17));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_for_the_callback_is_not_a_stall() {
        let activity = BodyActivity::new(Duration::from_secs(10));
        let timeout = Duration::from_secs(5);
        let start = tokio::time::Instant::now();
        // The body moves, then holds its last bytes for 12 s while a slow Callback reports,
        // then sends them and stalls: given up `timeout` after they went.
        let slow_callback = async {
            activity.attempt_started();
            activity.touch(tokio::time::Instant::now());
            activity.awaiting_callback();
            tokio::time::sleep(Duration::from_secs(12)).await;
            activity.touch(tokio::time::Instant::now());
            std::future::pending::<()>().await
        };
        assert_eq!(
            unless_stalled(slow_callback, &activity, timeout).await,
            None
        );
        assert_eq!(start.elapsed(), Duration::from_secs(17));
    }

    #[tokio::test(start_paused = true)]
    async fn connecting_has_the_connect_timeout_on_top_of_the_read_timeout() {
        let activity = BodyActivity::new(Duration::from_secs(10));
        let timeout = Duration::from_secs(5);
        let start = tokio::time::Instant::now();
        // A connection that takes 12 s (within a 10 s connect and 5 s read timeout), then a
        // body that moves once and stalls: given up `timeout` after it moved.
        let slow_connect = async {
            activity.attempt_started();
            tokio::time::sleep(Duration::from_secs(12)).await;
            activity.touch(tokio::time::Instant::now());
            std::future::pending::<()>().await
        };
        assert_eq!(unless_stalled(slow_connect, &activity, timeout).await, None);
        assert_eq!(start.elapsed(), Duration::from_secs(17));
        // A connection made at once, a body that moves and then stalls: given up `timeout`
        // after it moved, not `timeout` after the connect timeout.
        activity.attempt_started();
        let started = tokio::time::Instant::now();
        let fast_connect = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            activity.touch(tokio::time::Instant::now());
            std::future::pending::<()>().await
        };
        assert_eq!(unless_stalled(fast_connect, &activity, timeout).await, None);
        assert_eq!(started.elapsed(), Duration::from_millis(5100));
        // A connection that never completes: given up after both timeouts.
        activity.attempt_started();
        let started = tokio::time::Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(unless_stalled(never, &activity, timeout).await, None);
        assert_eq!(started.elapsed(), Duration::from_secs(15));
    }
}
