//! Where an upload body's bytes come from: memory (a small file read whole, a block of a
//! stream), or a range of a file, read as the body goes out.
//!
//! A file's body (a part, or a whole file from 1 MiB) is read once, a chunk at a time as the
//! HTTP client takes it, when nothing must be known of it before it goes: over https, where its
//! checksum goes in a trailer (see `upload::Target::checksum_in_trailer`). Otherwise it is read
//! twice, as boto3 reads it: first for its digests (the checksum S3 verifies, sent in a header
//! over plain http, and the SHA-256 SigV4 signs, when it is signed), then as it goes. A
//! part in flight holds a chunk or two rather than all its bytes: ten concurrent 64 MiB uploads
//! peaked at 705 MiB more when parts were read whole, and 5 MiB more now (boto3: none). Reading
//! twice so costs about as much CPU as reading a part whole once: both reads land in a buffer
//! the CPU's cache holds, where a part-sized one went to memory, to be read back for the
//! checksum and again for the socket. (A 1 GiB upload from ext4 took 0.28 s/GiB against 0.30;
//! from tmpfs, whose bookkeeping of pages read twice costs more, 0.39 against 0.38.)

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::buffers::BufferPool;
use crate::errors::TransferError;

/// How much of a file body one read brings in, in both passes: the frame the HTTP client is
/// handed (see `progress`), which a core's L2 cache holds.
pub const CHUNK: usize = 256 * 1024;

/// An upload body, which each attempt of its request sends from the start (`reader`).
#[derive(Clone)]
pub enum UploadBody {
    Memory(Bytes),
    File(FileRange),
}

impl UploadBody {
    pub fn len(&self) -> u64 {
        match self {
            UploadBody::Memory(data) => data.len() as u64,
            UploadBody::File(range) => range.len,
        }
    }

    /// The body's bytes from the start, for one attempt.
    pub fn reader(&self) -> BodyReader {
        match self {
            UploadBody::Memory(data) => BodyReader::Memory(data.clone()),
            UploadBody::File(range) => BodyReader::File(FileChunks {
                range: range.clone(),
                ready: Bytes::new(),
                handed_out: range.offset,
                reading: None,
            }),
        }
    }

    /// The error of the first read of the body's file that failed (the file changed since the
    /// upload began), if one has. Never, for a body in memory.
    pub fn read_failure(&self) -> Option<TransferError> {
        let UploadBody::File(range) = self else {
            return None;
        };
        let error = match range.failure.error.get()? {
            Ok(code) => io::Error::from_raw_os_error(*code),
            Err((kind, message)) => io::Error::new(*kind, message.clone()),
        };
        Some(TransferError::io(range.path(), error))
    }

    /// Resolves with `read_failure` once there is one: the request is then given up, not
    /// retried (its retries would read the same).
    pub async fn failed(&self) -> TransferError {
        if let UploadBody::File(range) = self {
            range.failure.told.cancelled().await;
        }
        match self.read_failure() {
            Some(error) => error,
            None => std::future::pending().await,
        }
    }
}

/// A file open for upload bodies, and whether its filesystem keeps it in memory (tmpfs), where
/// no read waits for a disk: tmpfs cannot say that a read would wait (RWF_NOWAIT), and need
/// not.
pub struct BodyFile {
    file: File,
    in_memory: bool,
}

impl BodyFile {
    /// Blocking: `fstatfs` asks a network filesystem's server.
    pub fn new(file: File) -> Self {
        // SAFETY: fstatfs fills the zeroed struct it is given, on an open descriptor.
        let in_memory = unsafe {
            let mut filesystem: libc::statfs = std::mem::zeroed();
            libc::fstatfs(file.as_raw_fd(), &mut filesystem) == 0
                && filesystem.f_type == libc::TMPFS_MAGIC
        };
        Self { file, in_memory }
    }

    /// Fills `buffer` from `offset` if that waits for no disk and no server (the bytes are in
    /// the page cache, or the file in memory): whether it did.
    fn read_without_waiting(&self, buffer: &mut [u8], offset: u64) -> bool {
        if self.in_memory {
            return self.file.read_exact_at(buffer, offset).is_ok();
        }
        let mut done = 0;
        while done < buffer.len() {
            let rest = &mut buffer[done..];
            let slice = libc::iovec {
                iov_base: rest.as_mut_ptr().cast(),
                iov_len: rest.len(),
            };
            let Ok(at) = libc::off_t::try_from(offset + done as u64) else {
                return false;
            };
            // SAFETY: one iovec over `rest`, which outlives the call.
            let read =
                unsafe { libc::preadv2(self.file.as_raw_fd(), &slice, 1, at, libc::RWF_NOWAIT) };
            // EAGAIN (not all in the page cache), EOPNOTSUPP, the end of the file, or an
            // error: the blocking read says which.
            if read <= 0 {
                return false;
            }
            done += read as usize;
        }
        true
    }
}

/// `len` bytes at `offset` of an open file, read into buffers of `CHUNK` bytes from `buffers`.
///
/// It holds the file and the buffers weakly: the upload holds them until it ends. An attempt
/// given up on may live on in a connection that stays open (a stalled one, until the server
/// closes it), and its body with it; it must not keep the file open, nor the buffers mapped,
/// after the upload has returned. Once they are gone, such a body fails its next read.
#[derive(Clone)]
pub struct FileRange {
    file: Weak<BodyFile>,
    path: Arc<PathBuf>,
    offset: u64,
    len: u64,
    buffers: Weak<BufferPool>,
    failure: Arc<ReadFailure>,
}

impl FileRange {
    pub fn new(
        file: &Arc<BodyFile>,
        path: Arc<PathBuf>,
        offset: u64,
        len: u64,
        buffers: &Arc<BufferPool>,
    ) -> Self {
        Self {
            file: Arc::downgrade(file),
            path,
            offset,
            len,
            buffers: Arc::downgrade(buffers),
            failure: Arc::default(),
        }
    }

    /// The file and the buffers, while the upload holds them.
    fn source(&self) -> io::Result<(Arc<BodyFile>, Arc<BufferPool>)> {
        match (self.file.upgrade(), self.buffers.upgrade()) {
            (Some(file), Some(buffers)) => Ok((file, buffers)),
            _ => Err(io::Error::other(
                "the upload this body was part of has ended",
            )),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the range a slice at a time, handing each to `update`: the digest pass. Blocking.
    pub fn read_through(&self, mut update: impl FnMut(&[u8])) -> io::Result<()> {
        let end = self.offset + self.len;
        let (file, buffers) = self.source()?;
        let mut buffer = buffers.take(CHUNK)?;
        let slice = buffer.as_mut();
        let mut offset = self.offset;
        while offset < end {
            let len = slice.len().min((end - offset) as usize);
            read_exact_at(&file.file, &mut slice[..len], offset)?;
            update(&slice[..len]);
            offset += len as u64;
        }
        Ok(())
    }
}

/// The first failed read of a body's file, told to the request sending it.
#[derive(Debug, Default)]
struct ReadFailure {
    /// The error's OS code if it has one (Python's OSError then has its errno and strerror),
    /// else its kind and message.
    error: OnceLock<Result<i32, (io::ErrorKind, String)>>,
    told: CancellationToken,
}

/// Fills `buffer` from `offset` of `file`; a file that ends first has changed since the upload
/// began (its size was taken then), and the error says so.
pub fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buffer, offset)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                e.kind(),
                format!(
                    "the file ended before byte {}, short of the size it had when the upload \
                 began: it changed during the upload",
                    offset + buffer.len() as u64
                ),
            ),
            _ => e,
        })
}

/// One attempt's reading of an `UploadBody`.
pub enum BodyReader {
    Memory(Bytes),
    File(FileChunks),
}

impl BodyReader {
    /// Bytes not yet taken.
    pub fn len(&self) -> u64 {
        match self {
            BodyReader::Memory(data) => data.len() as u64,
            BodyReader::File(chunks) => chunks.range.offset + chunks.range.len - chunks.handed_out,
        }
    }

    /// Ready once some bytes are available to `take`, or none are left, or with the error of
    /// a failed read.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            BodyReader::Memory(_) => Poll::Ready(Ok(())),
            BodyReader::File(chunks) => chunks.poll_fill(cx),
        }
    }

    /// How many bytes `take` can give without waiting.
    pub fn available(&self) -> usize {
        match self {
            BodyReader::Memory(data) => data.len(),
            BodyReader::File(chunks) => chunks.ready.len(),
        }
    }

    /// Up to `max` of the available bytes.
    pub fn take(&mut self, max: usize) -> Bytes {
        let available = self.available();
        match self {
            BodyReader::Memory(data) => data.split_to(max.min(available)),
            BodyReader::File(chunks) => {
                let taken = chunks.ready.split_to(max.min(available));
                chunks.handed_out += taken.len() as u64;
                taken
            }
        }
    }
}

/// A `FileRange` read a chunk at a time, as the HTTP client takes it.
pub struct FileChunks {
    range: FileRange,
    /// Read, not yet taken.
    ready: Bytes,
    /// The file offset of the next byte to take.
    handed_out: u64,
    /// The read of the next chunk on the blocking pool, when it could not be read at once.
    reading: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileChunks {
    /// Reads the next chunk once the last is taken. On the caller's thread (a tokio worker)
    /// when that waits for nothing: the digest pass has just brought these bytes into the
    /// page cache, so this is a copy of some tens of microseconds, made on the core that then
    /// copies the chunk into the socket while its bytes are in that core's cache. (Read ahead
    /// on the blocking pool, the same upload took a third more CPU: the bytes crossed cores,
    /// and so did every hand-off.) Otherwise (a page evicted, a network or FUSE filesystem
    /// that cannot say) on the blocking pool, so that no worker waits on a disk or a server.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let end = self.range.offset + self.range.len;
        if !self.ready.is_empty() || (self.reading.is_none() && self.handed_out == end) {
            return Poll::Ready(Ok(()));
        }
        let reading = match &mut self.reading {
            Some(reading) => reading,
            None => {
                // An attempt outliving its upload reads nothing more: no failure of the file's.
                let (file, buffers) = self.range.source()?;
                let (offset, len) = (self.handed_out, (end - self.handed_out).min(CHUNK as u64));
                let mut chunk = match buffers.take(len as usize) {
                    Ok(chunk) => chunk,
                    Err(error) => return Poll::Ready(Err(self.failed(error))),
                };
                if file.read_without_waiting(chunk.as_mut(), offset) {
                    self.ready = Bytes::from_owner(chunk);
                    return Poll::Ready(Ok(()));
                }
                self.reading.insert(tokio::task::spawn_blocking(move || {
                    read_exact_at(&file.file, chunk.as_mut(), offset)?;
                    Ok(Bytes::from_owner(chunk))
                }))
            }
        };
        let read = ready!(Pin::new(reading).poll(cx));
        self.reading = None;
        match read.map_err(io::Error::other).and_then(|read| read) {
            Ok(chunk) => {
                self.ready = chunk;
                Poll::Ready(Ok(()))
            }
            Err(error) => Poll::Ready(Err(self.failed(error))),
        }
    }

    /// Records a failed read for the request (see `UploadBody::failed`), and returns it.
    fn failed(&self, error: io::Error) -> io::Error {
        let failure = &self.range.failure;
        let _ = failure.error.set(
            error
                .raw_os_error()
                .ok_or_else(|| (error.kind(), error.to_string())),
        );
        failure.told.cancel(); // after the error is set: `UploadBody::failed` reads it then
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary file holding `data`, opened as upload bodies open it; or, with
    /// `waiting_reads`, as if its filesystem's reads could wait. It is then on tmpfs where
    /// there is one, which cannot read without waiting (RWF_NOWAIT): each chunk is read on the
    /// blocking pool.
    fn file_of(data: &[u8], waiting_reads: bool) -> (tempfile::NamedTempFile, Arc<BodyFile>) {
        let shm = std::path::Path::new("/dev/shm");
        let mut named = match waiting_reads && shm.is_dir() {
            true => tempfile::NamedTempFile::new_in(shm),
            false => tempfile::NamedTempFile::new(),
        }
        .expect("a temporary file");
        std::io::Write::write_all(&mut named, data).expect("written");
        let mut file = BodyFile::new(File::open(named.path()).expect("opened"));
        if waiting_reads {
            file.in_memory = false;
        }
        (named, Arc::new(file))
    }

    /// A range of `file`, and the buffers it is read into (held as the upload holds them).
    fn range_of(
        named: &tempfile::NamedTempFile,
        file: &Arc<BodyFile>,
        offset: usize,
        len: usize,
    ) -> (FileRange, Arc<BufferPool>) {
        let path = Arc::new(named.path().to_owned());
        let buffers = BufferPool::new(CHUNK);
        let range = FileRange::new(file, path, offset as u64, len as u64, &buffers);
        (range, buffers)
    }

    async fn drain(mut reader: BodyReader, frame: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while reader.len() > 0 {
            std::future::poll_fn(|cx| reader.poll_fill(cx)).await?;
            out.extend_from_slice(&reader.take(frame));
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_file_range_reads_its_bytes_in_chunks_each_attempt_from_its_start() {
        let data: Vec<u8> = (0..3 * CHUNK + 1000).map(|i| (i % 251) as u8).collect();
        for waiting_reads in [false, true] {
            let (named, file) = file_of(&data, waiting_reads);
            let (offset, len) = (500, 2 * CHUNK + 300);
            let (range, _buffers) = range_of(&named, &file, offset, len);
            let body = UploadBody::File(range.clone());
            assert_eq!(body.len(), len as u64);
            let wanted = &data[offset..offset + len];
            assert_eq!(drain(body.reader(), CHUNK).await.expect("read"), wanted);
            assert_eq!(drain(body.reader(), 7).await.expect("read again"), wanted);
            let mut digested = Vec::new();
            range
                .read_through(|slice| digested.extend_from_slice(slice))
                .expect("read through");
            assert_eq!(digested, wanted);
        }
    }

    #[tokio::test]
    async fn a_failed_read_tells_the_request_its_os_error() {
        // Opened for writing only: every read fails with EBADF, an error with an OS code.
        let named = tempfile::NamedTempFile::new().expect("a temporary file");
        std::fs::write(named.path(), vec![1u8; CHUNK]).expect("written");
        let write_only = std::fs::OpenOptions::new().write(true).open(named.path());
        let file = Arc::new(BodyFile::new(write_only.expect("opened")));
        let (range, _buffers) = range_of(&named, &file, 0, CHUNK);
        let body = UploadBody::File(range);
        drain(body.reader(), CHUNK).await.expect_err("EBADF");
        match body.read_failure() {
            // Python's OSError gets its errno from the OS code.
            Some(TransferError::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(9)),
            other => panic!("not the file's error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_file_cut_short_fails_the_read_and_tells_the_request() {
        let data = vec![1u8; 2 * CHUNK];
        for waiting_reads in [false, true] {
            let (named, file) = file_of(&data, waiting_reads);
            let (range, _buffers) = range_of(&named, &file, 0, data.len());
            let body = UploadBody::File(range);
            std::fs::OpenOptions::new()
                .write(true)
                .open(named.path())
                .and_then(|f| f.set_len(CHUNK as u64 + 10))
                .expect("cut short");
            let error = drain(body.reader(), CHUNK).await.expect_err("cut short");
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            let told = tokio::time::timeout(std::time::Duration::from_secs(5), body.failed())
                .await
                .expect("told");
            match told {
                TransferError::Io { paths, source } => {
                    assert_eq!(paths, [named.path()]);
                    assert!(source.to_string().contains("changed during the upload"));
                }
                other => panic!("not the file's error: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_outlives_its_upload_holds_neither_file_nor_buffers() {
        let data = vec![1u8; 2 * CHUNK];
        let (named, file) = file_of(&data, false);
        let (range, buffers) = range_of(&named, &file, 0, data.len());
        let body = UploadBody::File(range);
        let mut reader = body.reader();
        std::future::poll_fn(|cx| reader.poll_fill(cx))
            .await
            .expect("read while the upload holds the file");
        let chunk = reader.take(CHUNK);
        // The upload ends: it lets go of the file and the buffers.
        let (held_file, held_buffers) = (Arc::downgrade(&file), Arc::downgrade(&buffers));
        drop((file, buffers));
        assert!(held_file.upgrade().is_none(), "the file is closed");
        assert!(held_buffers.upgrade().is_none(), "the buffers are unmapped");
        let error = std::future::poll_fn(|cx| reader.poll_fill(cx))
            .await
            .expect_err("the upload has ended");
        assert_eq!(error.kind(), io::ErrorKind::Other);
        assert!(body.read_failure().is_none(), "not the file's failure");
        assert_eq!(chunk.len(), CHUNK, "what was read stays readable");
    }
}
