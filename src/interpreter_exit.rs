//! The interpreter's exit, and the engine's threads, which the exit does not stop.
//!
//! Two things must be over before the interpreter finalizes:
//!
//! - The sync API's transfers begun before the exit. boto3's transfer managers run on Python
//!   threads that the exit joins, so an upload in a daemon thread still completes (or aborts
//!   its multipart upload) before the process ends. The engine's tasks would be cut off with
//!   the process, leaving multipart uploads open (billed on S3 until a lifecycle rule aborts
//!   them). (The asyncio API's are not waited for: see `python_async::spawn_transfer`.)
//! - The calls into Python from engine threads: settling an asyncio future (pyo3-async-runtimes,
//!   through `EngineRuntime::spawn_blocking`), asking an event loop for a report, refreshing
//!   credentials. CPython ends a thread that takes the GIL once finalization has begun with
//!   `pthread_exit`, whose forced unwind through Rust frames aborts the process (SIGABRT at the
//!   end of a script whose transfers all succeeded: a call that released the GIL inside
//!   `loop.call_soon_threadsafe` took it back too late). So each such call passes a gate, which
//!   the exit closes once the calls inside have left.
//!
//! `at_exit` is the atexit handler that does both, registered when the module is imported.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// How long the exit waits for the calls into Python in flight (each is short: settling a
/// future, a credential refresh).
const CALLS_DRAIN: Duration = Duration::from_secs(5);
/// How often the exit, waiting for transfers, runs Python's signal handlers (Ctrl-C stops
/// the wait, as it stops Python's join of boto3's threads).
const SIGNAL_CHECKS: Duration = Duration::from_millis(100);

#[derive(Default)]
struct State {
    /// The process the counts are of: a forked child starts with none of its parent's.
    pid: u32,
    /// Transfers running that began before the exit did.
    transfers: usize,
    exiting: bool,
    calls_inside: usize,
    gate_closed: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    pid: 0,
    transfers: 0,
    exiting: false,
    calls_inside: 0,
    gate_closed: false,
});
static CHANGED: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if state.pid != pid {
        *state = State {
            pid,
            ..State::default()
        };
    }
    state
}

/// A transfer the exit waits for, while it is held (none if it began once the exit had).
pub struct Transfer(bool);

pub fn transfer_begins() -> Transfer {
    let mut state = state();
    let waited_for = !state.exiting;
    state.transfers += usize::from(waited_for);
    Transfer(waited_for)
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if self.0 {
            let mut state = state();
            state.transfers = state.transfers.saturating_sub(1);
            CHANGED.notify_all();
        }
    }
}

/// A call into Python from an engine thread, while it is held.
pub struct CallIntoPython(());

/// RuntimeError once the engine threads may no longer call into Python: an asyncio transfer
/// (whose future they settle) begun then, from an atexit handler run after `at_exit`, would
/// never end. (boto3's transfer managers refuse to start then too.)
pub fn refuse_async_if_exiting() -> PyResult<()> {
    match state().gate_closed {
        true => Err(PyRuntimeError::new_err(
            "s3turbo: the interpreter is exiting: no asyncio transfer can start",
        )),
        false => Ok(()),
    }
}

/// Permission to call into Python from an engine thread: None once the interpreter is exiting
/// (the call is not made; what it would have settled has no one left to see it).
pub fn call_into_python() -> Option<CallIntoPython> {
    let mut state = state();
    if state.gate_closed {
        return None;
    }
    state.calls_inside += 1;
    Some(CallIntoPython(()))
}

impl Drop for CallIntoPython {
    fn drop(&mut self) {
        let mut state = state();
        state.calls_inside = state.calls_inside.saturating_sub(1);
        CHANGED.notify_all();
    }
}

/// The atexit handler: waits (without the GIL, which the transfers' threads need) for the
/// transfers begun before, then closes the gate once the calls into Python have left (also
/// when Ctrl-C stopped the wait).
#[pyfunction]
fn at_exit(py: Python<'_>) -> PyResult<()> {
    state().exiting = true;
    // Where gevent or eventlet has replaced `select`, this thread is their hub: waiting here
    // would stop the green threads whose transfers are waited for.
    let waited = match crate::python::green_select(py) {
        Ok(None) => wait_for_transfers(py),
        Ok(Some(_)) => Ok(()),
        Err(error) => Err(error),
    };
    py.detach(|| {
        let mut state = state();
        state.gate_closed = true;
        let _ = CHANGED
            .wait_timeout_while(state, CALLS_DRAIN, |state| state.calls_inside > 0)
            .unwrap_or_else(|p| p.into_inner());
    });
    waited
}

fn wait_for_transfers(py: Python<'_>) -> PyResult<()> {
    loop {
        let transfers_over = py.detach(|| {
            let state = state();
            let (state, _) = CHANGED
                .wait_timeout_while(state, SIGNAL_CHECKS, |state| state.transfers > 0)
                .unwrap_or_else(|p| p.into_inner());
            state.transfers == 0
        });
        if transfers_over {
            return Ok(());
        }
        py.check_signals()?;
    }
}

/// Registers `at_exit` with Python's atexit.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let handler = wrap_pyfunction!(at_exit, module)?;
    module
        .py()
        .import("atexit")?
        .call_method1("register", (handler,))?;
    Ok(())
}
