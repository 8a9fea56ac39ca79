//! Part buffers reused across the parts of one upload. A 1 GiB upload in 8 MiB parts then
//! touches `max_concurrency` buffers' pages instead of faulting in 128 fresh ones, and malloc
//! never gets to scatter freed 8 MiB blocks over its arenas (which kept peak RSS well above
//! the bytes actually in flight).

use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A buffer of `len` bytes (contents unspecified), back in the pool when dropped.
    pub fn take(self: &Arc<Self>, len: usize) -> PooledBuffer {
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut data = reused.unwrap_or_default();
        if data.len() < len {
            data.resize(len, 0);
        }
        PooledBuffer {
            data,
            len,
            pool: self.clone(),
        }
    }
}

/// One buffer of a `BufferPool`; `bytes::Bytes::from_owner` shares it without copying.
pub struct PooledBuffer {
    data: Vec<u8>,
    len: usize,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for PooledBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl AsMut<[u8]> for PooledBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.data[..self.len]
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        self.pool
            .free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn buffers_come_back_when_the_last_bytes_go() {
        let pool = BufferPool::new();
        let mut first = pool.take(8);
        first.as_mut().copy_from_slice(b"abcdefgh");
        let address = first.as_ref().as_ptr();
        let bytes = Bytes::from_owner(first);
        let slice = bytes.slice(2..4);
        drop(bytes);
        assert_eq!(&slice[..], b"cd");
        assert!(pool.free.lock().expect("pool").is_empty(), "still shared");
        drop(slice);
        let again = pool.take(5);
        assert_eq!(again.as_ref().as_ptr(), address, "the same memory, reused");
        assert_eq!(again.as_ref().len(), 5);
        let bigger = pool.take(16);
        assert_eq!(bigger.as_ref().len(), 16);
    }
}
