//! Hand-offs between tokio tasks and the Python thread that waits for a transfer: the result
//! (`Completion`), and the data of `download_fileobj`, which must be written in order from that
//! thread (`ChunkQueue`). Both can be waited on with the GIL released; a `Completion` also by
//! a green thread (gevent, eventlet), through a descriptor its hub watches (`WakeFd`).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

/// The result of a transfer task. The waiting thread also wakes when `poke`d: the task has
/// something for it to do (data to write, room for more data to read).
pub struct Completion<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    /// Signalled too when set or poked, for a waiter that watches a file descriptor.
    wake_fd: Option<WakeFd>,
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
    /// A completion; with `wake_fd`, one that also signals it (see `WakeFd`).
    pub fn new(wake_fd: Option<WakeFd>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                result: Slot::Pending,
                poked: false,
            }),
            ready: Condvar::new(),
            wake_fd,
        })
    }

    pub fn wake_fd(&self) -> Option<&WakeFd> {
        self.wake_fd.as_ref()
    }

    /// Sets the result; the first one set is the one delivered.
    pub fn set(&self, value: T) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(state.result, Slot::Pending) {
            state.result = Slot::Ready(value);
            self.ready.notify_all();
            self.signal();
        }
    }

    pub fn poke(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.poked = true;
        self.ready.notify_all();
        self.signal();
    }

    fn signal(&self) {
        if let Some(wake_fd) = &self.wake_fd {
            wake_fd.signal();
        }
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

/// A descriptor that says "look again" (a Linux eventfd, one descriptor per waiting
/// transfer): signalled by the engine's threads, watched by a green thread's hub (gevent's or
/// eventlet's `select`), which cannot wait on a condvar without stopping every other green
/// thread. Non-blocking: signals add up until `drain` takes them once the waiter has looked.
pub struct WakeFd(File);

impl WakeFd {
    #[cfg(target_os = "linux")]
    pub fn new() -> std::io::Result<Self> {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: eventfd returns a new descriptor, or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the descriptor is this function's own.
        Ok(Self(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn new() -> std::io::Result<Self> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn signal(&self) {
        // Fails only when the counter would overflow: the waiter has plenty to read then.
        let _ = (&self.0).write(&1u64.to_ne_bytes());
    }

    pub fn drain(&self) {
        let mut count = [0u8; 8];
        let _ = (&self.0).read(&mut count);
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

    /// Whether `fd` is readable now.
    fn readable(fd: RawFd) -> bool {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, for a descriptor the test owns.
        unsafe { libc::poll(&mut poll, 1, 0) == 1 }
    }

    #[test]
    fn a_completions_wake_fd_is_readable_once_set_or_poked_until_drained() {
        let wake_fd = WakeFd::new().expect("an eventfd");
        let fd = wake_fd.fd();
        let completion = Completion::new(Some(wake_fd));
        assert!(!readable(fd));
        for _ in 0..100_000 {
            completion.poke();
        }
        assert!(readable(fd));
        completion.wake_fd().expect("its descriptor").drain();
        assert!(!readable(fd));
        completion.set(7);
        assert!(readable(fd));
        assert_eq!(completion.wait_timeout(Duration::ZERO), Some(7));
    }

    #[test]
    fn completion_delivers_once_and_wakes_on_poke() {
        let completion = Completion::new(None);
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
