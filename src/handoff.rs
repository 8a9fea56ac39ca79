//! Hand-offs between tokio tasks and the Python thread that waits for a transfer: the result
//! (`Completion`), and the data of `download_fileobj`, which must be written in order from that
//! thread (`ChunkQueue`). Both can be waited on with the GIL released.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

/// The result of a transfer task. The waiting thread also wakes when `poke`d: the task has
/// something for it to do (data to write, room for more data to read).
pub struct Completion<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

struct State<T> {
    result: Slot<T>,
    poked: bool,
}

enum Slot<T> {
    Pending,
    Ready(T),
    Delivered,
}

impl<T> Completion<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                result: Slot::Pending,
                poked: false,
            }),
            ready: Condvar::new(),
        })
    }

    /// Sets the result; the first one set is the one delivered.
    pub fn set(&self, value: T) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(state.result, Slot::Pending) {
            state.result = Slot::Ready(value);
            self.ready.notify_all();
        }
    }

    pub fn poke(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.poked = true;
        self.ready.notify_all();
    }

    /// Waits until the result is set, the completion is poked, or `timeout` passes. Returns the
    /// result once (`None` otherwise).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<T> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (mut state, _) = self
            .ready
            .wait_timeout_while(state, timeout, |state| {
                matches!(state.result, Slot::Pending) && !state.poked
            })
            .unwrap_or_else(|p| p.into_inner());
        state.poked = false;
        match std::mem::replace(&mut state.result, Slot::Delivered) {
            Slot::Ready(value) => Some(value),
            Slot::Pending => {
                state.result = Slot::Pending;
                None
            }
            Slot::Delivered => None,
        }
    }
}

/// Chunks on their way from the engine to the waiting thread, in order, at most `capacity`
/// at a time so that memory stays bounded when the writer is slow.
pub struct ChunkQueue {
    chunks: Mutex<VecDeque<Bytes>>,
    room: Semaphore,
}

impl ChunkQueue {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            chunks: Mutex::new(VecDeque::new()),
            room: Semaphore::new(capacity.max(1)),
        })
    }

    /// Waits for room, then queues `chunk`.
    pub async fn push(&self, chunk: Bytes) {
        if let Ok(permit) = self.room.acquire().await {
            permit.forget();
        }
        self.chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(chunk);
    }

    pub fn pop(&self) -> Option<Bytes> {
        let chunk = self
            .chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        if chunk.is_some() {
            self.room.add_permits(1);
        }
        chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_delivers_once_and_wakes_on_poke() {
        let completion = Completion::new();
        assert_eq!(completion.wait_timeout(Duration::from_millis(1)), None);
        completion.poke();
        let start = std::time::Instant::now();
        assert_eq!(completion.wait_timeout(Duration::from_secs(5)), None);
        assert!(start.elapsed() < Duration::from_secs(1));
        completion.set(7);
        completion.set(8);
        assert_eq!(completion.wait_timeout(Duration::from_secs(5)), Some(7));
        assert_eq!(completion.wait_timeout(Duration::from_millis(1)), None);
    }

    #[tokio::test]
    async fn queue_keeps_order_and_bounds_memory() {
        let queue = ChunkQueue::new(2);
        queue.push(Bytes::from_static(b"a")).await;
        queue.push(Bytes::from_static(b"b")).await;
        let full = tokio::time::timeout(Duration::from_millis(20), queue.push(Bytes::new())).await;
        assert!(full.is_err(), "a third chunk must wait for room");
        assert_eq!(queue.pop(), Some(Bytes::from_static(b"a")));
        queue.push(Bytes::from_static(b"c")).await;
        assert_eq!(queue.pop(), Some(Bytes::from_static(b"b")));
        assert_eq!(queue.pop(), Some(Bytes::from_static(b"c")));
        assert_eq!(queue.pop(), None);
    }
}
