//! The engine's one tokio runtime per process, and the per-process state that lives with it.
//!
//! After `fork()` the child has the parent's memory but none of its threads: the parent's
//! runtime and its pooled connections are unusable there. The engine notices the changed
//! process id and builds fresh ones; the old ones are leaked, because dropping them would try to
//! join threads that do not exist in the child.

use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;

use crate::client::ClientCache;
use crate::errors::TransferError;

/// Runs `work` on the blocking pool and waits for it: file system calls (which wait for the
/// server of a network file system) and long digests, kept off the runtime's few workers.
pub async fn off_workers<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, TransferError> + Send + 'static,
) -> Result<T, TransferError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| TransferError::Internal(format!("a blocking task failed: {e}")))?
}

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
        .worker_threads(worker_threads(
            std::env::var(WORKER_THREADS_VARIABLE).ok().as_deref(),
            std::thread::available_parallelism().map_or(1, |cores| cores.get()),
        ))
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

/// tokio's own setting for its worker count, honoured as tokio honours it.
const WORKER_THREADS_VARIABLE: &str = "TOKIO_WORKER_THREADS";

/// How many worker threads the runtime gets: `TOKIO_WORKER_THREADS` when set to a positive
/// number, else one fewer than the cores this process may use (at least one).
///
/// The engine's tasks do little computing between system calls, so each wake-up of another
/// worker (a cross-CPU wake, dear in a virtual machine) costs about as much as the task it
/// hands over. On 2 cores one worker measured better than tokio's default of two: 16 KiB
/// downloads 10% less CPU per call, a directory download 15% more files per second with 20%
/// less CPU, 1 GiB up and down no slower. The core left over runs what the workers hand off:
/// blocking file reads, credential refreshes, and the Python thread that waits for the
/// transfer and runs its callbacks.
fn worker_threads(variable: Option<&str>, cores: usize) -> usize {
    variable
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|&workers| workers > 0)
        .unwrap_or_else(|| cores.saturating_sub(1).max(1))
}

#[cfg(test)]
mod tests {
    use super::worker_threads;

    #[test]
    fn one_worker_fewer_than_cores_unless_the_variable_says() {
        assert_eq!(worker_threads(None, 1), 1);
        assert_eq!(worker_threads(None, 2), 1);
        assert_eq!(worker_threads(None, 16), 15);
        assert_eq!(worker_threads(Some("4"), 2), 4);
        assert_eq!(worker_threads(Some(" 3 "), 2), 3);
        assert_eq!(worker_threads(Some("0"), 8), 7);
        assert_eq!(worker_threads(Some("many"), 8), 7);
    }
}
