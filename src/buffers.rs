//! Buffers for files read whole or in parts. The parts of one upload reuse a pool of them: a
//! 1 GiB upload in 8 MiB parts then touches `max_concurrency` buffers' pages instead of
//! faulting in 128 fresh ones.
//!
//! Large buffers are anonymous mappings of their own rather than malloc'd blocks, so that their
//! memory goes back to the system when the upload ends: glibc raises its mmap threshold after
//! the first large block it frees, and keeps later ones in its per-thread arenas, where eight
//! concurrent multipart uploads left 300 MiB resident after they had all finished, and a
//! directory of 6 MiB files 350 MiB.

use std::io;
use std::sync::{Arc, Mutex};

use memmap2::{MmapMut, MmapOptions};

/// Below this, a buffer is malloc's: it hands out small blocks faster than the system maps
/// pages, and what its arenas keep of them stays small.
const MAPPED_FROM: usize = 1 << 20;

/// Fresh zeroed pages, faulted in by one system call rather than one fault per page.
fn map_anonymous(len: usize) -> io::Result<MmapMut> {
    MmapOptions::new().len(len).populate().map_anon()
}

/// Memory for `len` bytes of a file read whole, or of a part of a directory transfer (which
/// pools none: see `upload::PartMemory`); `bytes::Bytes::from_owner` shares it without copying.
pub enum FileBuffer {
    Heap(Vec<u8>),
    Mapped(MmapMut),
}

impl FileBuffer {
    pub fn new(len: usize) -> io::Result<Self> {
        match len < MAPPED_FROM {
            true => Ok(FileBuffer::Heap(vec![0; len])),
            false => map_anonymous(len).map(FileBuffer::Mapped),
        }
    }
}

impl AsRef<[u8]> for FileBuffer {
    fn as_ref(&self) -> &[u8] {
        match self {
            FileBuffer::Heap(data) => data,
            FileBuffer::Mapped(data) => data,
        }
    }
}

impl AsMut<[u8]> for FileBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            FileBuffer::Heap(data) => data,
            FileBuffer::Mapped(data) => data,
        }
    }
}

#[derive(Debug, Default)]
pub struct BufferPool {
    free: Mutex<Vec<MmapMut>>,
}

impl BufferPool {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A buffer of `len` bytes (contents unspecified), back in the pool when dropped.
    pub fn take(self: &Arc<Self>, len: usize) -> io::Result<PooledBuffer> {
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let data = match reused {
            Some(data) if data.len() >= len => data,
            _ => map_anonymous(len)?,
        };
        Ok(PooledBuffer {
            data: Some(data),
            len,
            pool: self.clone(),
        })
    }
}

/// One buffer of a `BufferPool`; `bytes::Bytes::from_owner` shares it without copying.
pub struct PooledBuffer {
    /// Always there until the buffer is dropped, which hands it back to the pool.
    data: Option<MmapMut>,
    len: usize,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for PooledBuffer {
    fn as_ref(&self) -> &[u8] {
        self.data.as_deref().map_or(&[], |data| &data[..self.len])
    }
}

impl AsMut<[u8]> for PooledBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        self.data
            .as_deref_mut()
            .map_or(&mut [], |data| &mut data[..self.len])
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn buffers_come_back_when_the_last_bytes_go() {
        let pool = BufferPool::new();
        let mut first = pool.take(8).expect("mapped");
        first.as_mut().copy_from_slice(b"abcdefgh");
        let address = first.as_ref().as_ptr();
        let bytes = Bytes::from_owner(first);
        let slice = bytes.slice(2..4);
        drop(bytes);
        assert_eq!(&slice[..], b"cd");
        assert!(pool.free.lock().expect("pool").is_empty(), "still shared");
        drop(slice);
        let again = pool.take(5).expect("mapped");
        assert_eq!(again.as_ref().as_ptr(), address, "the same memory, reused");
        assert_eq!(again.as_ref().len(), 5);
        let bigger = pool.take(16).expect("mapped");
        assert_eq!(bigger.as_ref().len(), 16);
    }
}
