//! The buffers a file upload's bodies are read into as they are sent (see `body`): a pool of
//! them per upload, reused across its parts, so that a 1 GiB upload touches the pages of the
//! buffers in flight at once rather than faulting in fresh ones for every chunk.
//!
//! They are anonymous mappings of their own rather than malloc'd blocks, so that their memory
//! goes back to the system when the upload ends: glibc raises its mmap threshold after the
//! first large block it frees, and keeps later ones in its per-thread arenas, where eight
//! concurrent multipart uploads left 300 MiB resident after they had all finished.

use std::io;
use std::sync::{Arc, Mutex, Weak};

use memmap2::{MmapMut, MmapOptions};

#[derive(Debug)]
pub struct BufferPool {
    /// The size of every buffer.
    size: usize,
    free: Mutex<Vec<MmapMut>>,
}

impl BufferPool {
    pub fn new(size: usize) -> Arc<Self> {
        Arc::new(Self {
            size,
            free: Mutex::default(),
        })
    }

    /// A buffer of `len` bytes, at most the pool's size (contents unspecified), back in the
    /// pool when dropped.
    pub fn take(self: &Arc<Self>, len: usize) -> io::Result<PooledBuffer> {
        assert!(
            len <= self.size,
            "a buffer of {len} bytes from a pool of {}",
            self.size
        );
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let data = match reused {
            Some(data) => data,
            // Fresh zeroed pages, faulted in by one system call rather than one fault per page.
            None => MmapOptions::new().len(self.size).populate().map_anon()?,
        };
        Ok(PooledBuffer {
            data: Some(data),
            len,
            pool: Arc::downgrade(self),
        })
    }
}

/// One buffer of a `BufferPool`; `bytes::Bytes::from_owner` shares it without copying.
pub struct PooledBuffer {
    /// Always there until the buffer is dropped, which hands it back to the pool, or unmaps it
    /// once the pool is gone (a buffer kept by a connection that outlives its upload must not
    /// keep the pool's other buffers too).
    data: Option<MmapMut>,
    len: usize,
    pool: Weak<BufferPool>,
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
        if let (Some(data), Some(pool)) = (self.data.take(), self.pool.upgrade()) {
            pool.free
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
        let pool = BufferPool::new(16);
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
        let full = pool.take(16).expect("mapped");
        assert_eq!(full.as_ref().len(), 16);
    }
}
