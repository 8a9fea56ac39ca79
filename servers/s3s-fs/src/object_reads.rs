//! s3s-fs's S3 implementation, with the body of a GetObject read from its file in large pieces.
//!
//! s3s-fs 0.14.1 (and 0.17) streams a GET's body out of a tokio file 4 KiB at a time, and each
//! of those reads is a round trip to tokio's blocking pool: 262,144 per GiB, which cost the
//! server about 5.8 CPU seconds per GiB (DESIGN.md: "its GET path is slower than its PUT
//! path"). On our 2-core machines that CPU is taken from the client under test, so download
//! figures showed the server more than the client, and real S3 takes none of the client's CPU.
//!
//! s3s-fs still answers every request, GETs included: signature checks, errors, headers,
//! ranges, ETag, checksums. Only the bytes of a successful GET's body are read here instead,
//! from the same file at the same range, `READ_PIECE` bytes per blocking read.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use path_absolutize::Absolutize;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use s3s_fs::FileSystem;
use tokio::sync::mpsc;

/// How much of a GET's body one blocking read takes.
const READ_PIECE: usize = 256 * 1024;
/// Pieces read ahead of the connection: enough to keep it busy, bounded so that a slow client
/// does not make the server hold the whole object.
const PIECES_AHEAD: usize = 4;

pub struct LargeReads {
    inner: FileSystem,
    /// The root as s3s-fs resolves objects under it (it canonicalizes the one it is given).
    root: PathBuf,
}

impl LargeReads {
    pub fn new(root: &Path) -> io::Result<Self> {
        let inner = FileSystem::new(root)
            .map_err(|e| io::Error::other(format!("{}: {e:?}", root.display())))?;
        Ok(Self {
            inner,
            root: std::env::current_dir()?.join(root).canonicalize()?,
        })
    }

    /// The file of an object, resolved as s3s-fs resolves it (`FileSystem::get_object_path`,
    /// which is private to that crate).
    fn object_path(&self, bucket: &str, key: &str) -> S3Result<PathBuf> {
        Path::new(bucket)
            .join(key)
            .absolutize_virtually(&self.root)
            .map(|path| path.into_owned())
            .map_err(|e| s3_error!(e, InternalError))
    }
}

/// Every operation s3s-fs implements goes to it unchanged, but for `get_object`.
macro_rules! s3_with_large_reads {
    ($($method:ident($input:ident) -> $output:ident;)*) => {
        #[async_trait::async_trait]
        impl S3 for LargeReads {
            $(
                async fn $method(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.inner.$method(req).await
                }
            )*

            async fn get_object(
                &self,
                req: S3Request<GetObjectInput>,
            ) -> S3Result<S3Response<GetObjectOutput>> {
                // Opened before s3s-fs answers, and checked against its answer below: an object
                // replaced in between fails the GET instead of mixing two versions.
                let opened = self
                    .object_path(&req.input.bucket, &req.input.key)
                    .ok()
                    .and_then(|path| File::open(path).ok());
                let mut response = self.inner.get_object(req).await?;
                let output = &mut response.output;
                let len = output
                    .content_length
                    .and_then(|len| u64::try_from(len).ok())
                    .ok_or_else(|| s3_error!(InternalError, "GetObject without a length"))?;
                let (start, total) = match &output.content_range {
                    Some(range) => parse_content_range(range)?,
                    None => (0, len),
                };
                let file = opened
                    .filter(|file| file.metadata().is_ok_and(|m| m.len() == total))
                    .ok_or_else(|| s3_error!(InternalError, "the object changed while read"))?;
                output.body = Some(StreamingBlob::wrap(FileRange::read(file, start, len)));
                Ok(response)
            }
        }
    };
}

s3_with_large_reads! {
    abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
    complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
    copy_object(CopyObjectInput) -> CopyObjectOutput;
    create_bucket(CreateBucketInput) -> CreateBucketOutput;
    create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
    delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
    delete_object(DeleteObjectInput) -> DeleteObjectOutput;
    delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
    get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
    head_bucket(HeadBucketInput) -> HeadBucketOutput;
    head_object(HeadObjectInput) -> HeadObjectOutput;
    list_buckets(ListBucketsInput) -> ListBucketsOutput;
    list_objects(ListObjectsInput) -> ListObjectsOutput;
    list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output;
    list_parts(ListPartsInput) -> ListPartsOutput;
    put_object(PutObjectInput) -> PutObjectOutput;
    upload_part(UploadPartInput) -> UploadPartOutput;
    upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
}

/// The first byte and the total of `bytes first-last/total`, as s3s-fs writes a Content-Range.
fn parse_content_range(range: &str) -> S3Result<(u64, u64)> {
    let parsed = range.strip_prefix("bytes ").and_then(|range| {
        let (span, total) = range.split_once('/')?;
        let (first, _) = span.split_once('-')?;
        Some((first.parse().ok()?, total.parse().ok()?))
    });
    parsed.ok_or_else(|| s3_error!(InternalError, "unexpected Content-Range {range:?}"))
}

/// `len` bytes of a file from `start`, each piece read on the blocking pool, and the next read
/// only once the connection has taken all but `PIECES_AHEAD` pieces: no thread waits on a slow
/// client.
struct FileRange {
    pieces: mpsc::Receiver<io::Result<Bytes>>,
}

impl FileRange {
    fn read(file: File, start: u64, len: u64) -> Self {
        let (sender, pieces) = mpsc::channel(PIECES_AHEAD);
        let file = Arc::new(file);
        tokio::spawn(async move {
            let end = start + len;
            let mut offset = start;
            while offset < end {
                let size = READ_PIECE.min(usize::try_from(end - offset).unwrap_or(READ_PIECE));
                let file = file.clone();
                let read = tokio::task::spawn_blocking(move || {
                    let mut piece = BytesMut::zeroed(size);
                    file.read_exact_at(&mut piece, offset)
                        .map(|()| piece.freeze())
                })
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e)));
                let failed = read.is_err();
                // A send fails once the connection has gone: then there is no one to read for.
                if sender.send(read).await.is_err() || failed {
                    return;
                }
                offset += size as u64;
            }
        });
        Self { pieces }
    }
}

impl Stream for FileRange {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.pieces.poll_recv(cx)
    }
}
