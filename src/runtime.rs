//! The engine's one tokio runtime per process, and the per-process state that lives with it.
//!
//! After `fork()` the child has the parent's memory but none of its threads: the parent's
//! runtime and its pooled connections are unusable there. The engine notices the changed
//! process id and builds fresh ones; the old ones are leaked, because dropping them would try to
//! join threads that do not exist in the child.

use std::sync::{Arc, Mutex};

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
