//! Upload of a local file: one PutObject below the multipart threshold, otherwise a multipart
//! upload with parts read by positional reads (no shared cursor) and up to `max_concurrency`
//! parts in flight. A multipart upload that fails or is cancelled is aborted, so no parts are
//! left behind in the bucket.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

use crate::errors::TransferError;
use crate::plan::{self, Part};
use crate::progress::{AttemptCounter, CountingBody, Progress};
use crate::request::{with_headers, Headers, TransferOptions};

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
    pub path: PathBuf,
    pub headers: UploadHeaders,
    /// The checksum the SDK computes for a PutObject body and for each part body, as boto3's
    /// settings and ExtraArgs choose them (they differ when a full-object checksum is given).
    pub put_object_checksum: Option<ChecksumAlgorithm>,
    /// A full-object checksum the user gave (ExtraArgs ChecksumCRC32, ...) for a PutObject;
    /// sent as it is instead of computed.
    pub put_object_checksum_value: Option<String>,
    pub upload_part_checksum: Option<ChecksumAlgorithm>,
    pub options: TransferOptions,
}

/// Sets a precomputed body checksum on a PutObject or UploadPart builder (their setters share
/// names). The SDK then sends it as a header instead of computing it into an aws-chunked
/// trailer, which over plain HTTP also signs every chunk with SHA-256; the body goes out as
/// UNSIGNED-PAYLOAD and S3 verifies it by the checksum.
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
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<(), TransferError> {
    let path = request.path.clone();
    let file = tokio::task::spawn_blocking(move || {
        let file = File::open(&path).map_err(|e| TransferError::io(&path, e))?;
        let metadata = file.metadata().map_err(|e| TransferError::io(&path, e))?;
        if metadata.is_dir() {
            return Err(TransferError::io(
                &path,
                std::io::Error::from_raw_os_error(21), // EISDIR, as Python's open() reports it
            ));
        }
        Ok((Arc::new(file), metadata.len()))
    })
    .await
    .map_err(|e| TransferError::Internal(format!("file reader failed: {e}")))?;
    let (file, size) = file?;
    if size > plan::MAX_OBJECT_SIZE {
        return Err(TransferError::InvalidInput(format!(
            "{} is {size} bytes; S3 objects are at most 5 TiB",
            request.path.display()
        )));
    }
    let target = Target {
        client,
        endpoint,
        request: &request,
    };
    if size < request.options.multipart_threshold {
        let whole = Part {
            number: 1,
            offset: 0,
            len: size,
        };
        tokio::select! {
            result = target.put_object(&file, whole, &progress) => result,
            _ = cancel.cancelled() => Err(TransferError::Cancelled),
        }
    } else {
        target.multipart(&file, size, &progress, &cancel).await
    }
}

impl Target<'_> {
    async fn put_object(
        &self,
        file: &Arc<File>,
        whole: Part,
        progress: &Arc<Progress>,
    ) -> Result<(), TransferError> {
        let request = self.request;
        let checksum = request.put_object_checksum.as_ref();
        let given = request.put_object_checksum_value.clone();
        let to_compute = if given.is_some() { None } else { checksum };
        let (data, computed) = read_part(file, &request.path, whole, to_compute).await?;
        let builder = self
            .client
            .put_object()
            .bucket(&request.bucket)
            .key(&request.key)
            .set_checksum_algorithm(checksum.cloned())
            .content_length(data.len() as i64)
            .body(counting_stream(data, progress));
        let builder = with_body_checksum!(builder, checksum, given.or(computed));
        let headers = &request.headers.put_object;
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
        operation
            .send()
            .await
            .map_err(|e| TransferError::from_sdk("PutObject", self.endpoint, e))?;
        Ok(())
    }

    async fn multipart(
        &self,
        file: &Arc<File>,
        size: u64,
        progress: &Arc<Progress>,
        cancel: &CancellationToken,
    ) -> Result<(), TransferError> {
        let request = self.request;
        let created = with_headers(
            self.client
                .create_multipart_upload()
                .bucket(&request.bucket)
                .key(&request.key)
                .customize(),
            &request.headers.create_multipart_upload,
        )
        .send()
        .await
        .map_err(|e| TransferError::from_sdk("CreateMultipartUpload", self.endpoint, e))?;
        let upload_id = created.upload_id.ok_or_else(|| {
            TransferError::Internal("CreateMultipartUpload answered without an UploadId".to_owned())
        })?;

        let parts = plan::split(
            size,
            plan::upload_part_size(request.options.multipart_chunksize, size),
        );
        let uploaded = tokio::select! {
            result = self.upload_parts(file, &upload_id, parts, progress) => result,
            _ = cancel.cancelled() => Err(TransferError::Cancelled),
        };
        let completed = match uploaded {
            Ok(parts) => self.complete(&upload_id, parts).await,
            Err(e) => Err(e),
        };
        if completed.is_err() {
            // Best effort: the original error is what the caller needs to see.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&request.bucket)
                .key(&request.key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        completed
    }

    async fn upload_parts(
        &self,
        file: &Arc<File>,
        upload_id: &str,
        parts: Vec<Part>,
        progress: &Arc<Progress>,
    ) -> Result<Vec<CompletedPart>, TransferError> {
        let mut completed: Vec<CompletedPart> = futures_util::stream::iter(parts)
            .map(|part| self.upload_part(file, upload_id, part, progress))
            .buffer_unordered(self.request.options.max_concurrency.max(1))
            .try_collect()
            .await?;
        completed.sort_by_key(|part| part.part_number);
        Ok(completed)
    }

    async fn upload_part(
        &self,
        file: &Arc<File>,
        upload_id: &str,
        part: Part,
        progress: &Arc<Progress>,
    ) -> Result<CompletedPart, TransferError> {
        let request = self.request;
        let checksum = request.upload_part_checksum.as_ref();
        let (data, checksum_value) = read_part(file, &request.path, part, checksum).await?;
        let number = i32::try_from(part.number).unwrap_or(i32::MAX);
        let builder = self
            .client
            .upload_part()
            .bucket(&request.bucket)
            .key(&request.key)
            .upload_id(upload_id)
            .part_number(number)
            .set_checksum_algorithm(checksum.cloned())
            .content_length(data.len() as i64)
            .body(counting_stream(data, progress));
        let builder = with_body_checksum!(builder, checksum, checksum_value);
        let output = with_headers(builder.customize(), &request.headers.upload_part)
            .send()
            .await
            .map_err(|e| TransferError::from_sdk("UploadPart", self.endpoint, e))?;
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
        with_headers(
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
        .send()
        .await
        .map_err(|e| TransferError::from_sdk("CompleteMultipartUpload", self.endpoint, e))?;
        Ok(())
    }
}

/// Reads one part with a positional read on the blocking pool, so concurrent parts never
/// share a file cursor and tokio workers never wait on the disk. The part's checksum (base64, as
/// S3 takes it) is computed there too, while the bytes are hot in the cache.
async fn read_part(
    file: &Arc<File>,
    path: &Path,
    part: Part,
    checksum: Option<&ChecksumAlgorithm>,
) -> Result<(Bytes, Option<String>), TransferError> {
    let file = file.clone();
    let len = usize::try_from(part.len)
        .map_err(|_| TransferError::InvalidInput(format!("part of {} bytes", part.len)))?;
    let checksum = checksum.map(checksum_impl).transpose()?;
    let read = tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0u8; len];
        file.read_exact_at(&mut buffer, part.offset)?;
        let value = checksum.map(|mut checksum| {
            checksum.update(&buffer);
            let value = checksum.header_value();
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        });
        Ok::<_, std::io::Error>((Bytes::from(buffer), value))
    })
    .await
    .map_err(|e| TransferError::Internal(format!("file reader failed: {e}")))?;
    read.map_err(|e| TransferError::io(path, e))
}

fn checksum_impl(
    algorithm: &ChecksumAlgorithm,
) -> Result<Box<dyn aws_smithy_checksums::http::HttpChecksum>, TransferError> {
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
/// the previous attempt reported.
fn counting_stream(data: Bytes, progress: &Arc<Progress>) -> ByteStream {
    let attempt = AttemptCounter::new(progress.clone());
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(CountingBody::new(data.clone(), attempt.clone()))
    }))
}
