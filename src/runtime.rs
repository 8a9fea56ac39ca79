//! The engine's one tokio runtime per process, and the per-process state that lives with it.
//!
//! After `fork()` the child has the parent's memory but none of its threads: the parent's
//! runtime and its pooled connections are unusable there. The engine notices the changed
//! process id and builds fresh ones; the old ones are leaked, because dropping them would try to
//! join threads that do not exist in the child.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::client::ClientCache;

pub struct Engine {
    pub runtime: Runtime,
    pub clients: ClientCache,
}

struct ProcessEngine {
    pid: u32,
    engine: Arc<Engine>,
}

static ENGINE: Mutex<Option<ProcessEngine>> = Mutex::new(None);

/// The engine of this process, created on first use (and again in a forked child).
pub fn engine() -> std::io::Result<Arc<Engine>> {
    let pid = std::process::id();
    let mut slot = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(current) = slot.as_ref() {
        if current.pid == pid {
            return Ok(current.engine.clone());
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("s3turbo-worker")
        .build()?;
    let engine = Arc::new(Engine {
        runtime,
        clients: ClientCache::default(),
    });
    if let Some(stale) = slot.replace(ProcessEngine {
        pid,
        engine: engine.clone(),
    }) {
        std::mem::forget(stale);
    }
    Ok(engine)
}

/// A result handed from a tokio task to the thread that waits for it. Unlike a channel
/// receiver it can be shared with the closure that runs with the GIL released. The first value
/// set is the one delivered; later ones are ignored.
pub struct Completion<T> {
    state: Mutex<CompletionState<T>>,
    ready: Condvar,
}

enum CompletionState<T> {
    Pending,
    Ready(T),
    Delivered,
}

impl<T> Completion<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(CompletionState::Pending),
            ready: Condvar::new(),
        })
    }

    pub fn set(&self, value: T) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, CompletionState::Pending) {
            *state = CompletionState::Ready(value);
            self.ready.notify_all();
        }
    }

    /// The value, once set; `None` if `timeout` passed first (or it was already taken).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<T> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (mut state, _) = self
            .ready
            .wait_timeout_while(state, timeout, |state| {
                matches!(state, CompletionState::Pending)
            })
            .unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *state, CompletionState::Delivered) {
            CompletionState::Ready(value) => Some(value),
            CompletionState::Pending => {
                *state = CompletionState::Pending;
                None
            }
            CompletionState::Delivered => None,
        }
    }
}
