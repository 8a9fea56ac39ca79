//! The pyo3 glue of the asyncio API (`s3turbo.aio`): the same transfers as `python.rs`, returned
//! as asyncio awaitables through pyo3-async-runtimes, on the engine's one runtime.
//!
//! The Python layer drives each transfer through a `Transfer`: it reads the progress counter on
//! the event loop (callbacks run there), and cancels the engine when its task is cancelled or a
//! callback raises, then awaits the engine's clean-up (abort the multipart upload, remove the
//! temporary file) before the exception goes on. File-object I/O goes through `BlockSender`
//! and `ChunkReceiver`, whose awaitables wait for the engine without blocking the loop.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::IntoPyObjectExt;
use pyo3_async_runtimes::generic::{self, ContextExt};
use pyo3_async_runtimes::TaskLocals;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::batch::{self, Batch};
use crate::download;
use crate::errors::TransferError;
use crate::handoff::ChunkQueue;
use crate::interpreter_exit;
use crate::plan;
use crate::progress::Progress;
use crate::python::{
    download_args, download_batch, download_request, engine_and_client, py_err, upload_batch,
    Connection, FilesToUpload, Options, Outcomes, Upload,
};
use crate::runtime::{engine, Engine};
use crate::upload::{self, StreamBlock};

/// pyo3-async-runtimes on the engine's runtime (rather than a second one of its own): the same
/// threads and connection pools as the sync API, and a fresh runtime after fork.
struct EngineRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

/// The engine of this process. Every function below has called `engine()` successfully before
/// anything is spawned, so it exists here.
fn current_engine() -> Arc<Engine> {
    engine().expect("the engine was created by the call that spawns on it")
}

impl generic::Runtime for EngineRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        current_engine().runtime.spawn(fut)
    }

    /// pyo3-async-runtimes settles asyncio futures here, taking the GIL: not once the
    /// interpreter is exiting (see `interpreter_exit`).
    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        current_engine().runtime.spawn_blocking(move || {
            if let Some(_call) = interpreter_exit::call_into_python() {
                f();
            }
        })
    }
}

impl ContextExt for EngineRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|cell| cell.get().cloned())
            .unwrap_or_default()
    }
}

/// One asyncio transfer's progress counter and cancellation.
#[pyclass(frozen, module = "s3turbo._core")]
pub struct Transfer {
    progress: Arc<Progress>,
    cancel: CancellationToken,
}

impl Transfer {
    /// For work that commits nothing and counts no bytes (a listing).
    fn unobserved() -> Self {
        Self {
            progress: Progress::new(),
            cancel: CancellationToken::new(),
        }
    }
}

#[pymethods]
impl Transfer {
    /// `ask_for_report` is called (from an engine thread) when the engine is about to commit
    /// (complete the multipart upload, send a PutObject's last bytes, rename the download into
    /// place), which then waits for `reported()`: the Callback sees every byte first, and a
    /// cancel of the task reaches the engine before the commit. It returns whether it could ask:
    /// if not (its event loop is closed), no report can come, and the transfer is stopped, and
    /// cleans up, rather than wait for ever.
    #[new]
    fn new(ask_for_report: Py<PyAny>) -> Self {
        let cancel = CancellationToken::new();
        let ask = Arc::new(ask_for_report);
        let cancel_unasked = cancel.clone();
        let progress = Progress::observed(move || {
            let (ask, cancel) = (ask.clone(), cancel_unasked.clone());
            // Off the async workers: taking the GIL may wait for the event loop.
            tokio::task::spawn_blocking(move || {
                let Some(_call) = interpreter_exit::call_into_python() else {
                    cancel.cancel(); // no loop is left to report to
                    return;
                };
                Python::attach(
                    |py| match ask.call0(py).and_then(|asked| asked.is_truthy(py)) {
                        Ok(true) => {}
                        Ok(false) => cancel.cancel(),
                        Err(error) => {
                            cancel.cancel();
                            error.write_unraisable(py, None);
                        }
                    },
                )
            });
        });
        Self { progress, cancel }
    }

    /// Bytes transferred so far (less those of attempts that were retried).
    fn transferred(&self) -> i64 {
        self.progress.transferred()
    }

    /// The Callback has been given `transferred`, what `transferred()` said.
    fn reported(&self, transferred: i64) {
        self.progress.reported(transferred);
    }

    /// Stops the transfer; the engine still cleans up, and then its awaitable raises.
    fn cancel(&self) {
        self.cancel.cancel();
    }
}

/// A transfer's result as its awaitable gives it: the value, or the exception boto3 raises.
/// Made into Python where pyo3-async-runtimes sets the asyncio future's result, on a blocking
/// thread that takes the GIL: on an engine worker, waiting for the GIL (held by the event loop)
/// would stall every transfer on that worker.
struct Settled<T>(Result<T, TransferError>);

impl<'py, T: IntoPyObject<'py>> IntoPyObject<'py> for Settled<T> {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        match self.0 {
            Ok(value) => value.into_bound_py_any(py),
            Err(error) => Err(py_err(py, error)),
        }
    }
}

/// Runs `transfer` as a task of its own on the engine and returns an awaitable of its result.
/// If the awaitable is dropped (its asyncio future cancelled), the transfer is cancelled and
/// still cleans up in its task.
fn spawn_transfer<'py, T, F, Fut>(
    py: Python<'py>,
    connection: &Connection,
    handle: &Transfer,
    transfer: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: FnOnce(aws_sdk_s3::Client, String, Arc<Progress>, CancellationToken) -> Fut,
    Fut: Future<Output = Result<T, TransferError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    interpreter_exit::refuse_async_if_exiting()?;
    let (engine, client) = engine_and_client(connection)?;
    let endpoint = connection.settings.endpoint_label();
    // Not waited for at the interpreter's exit, unlike the sync API's: asyncio.run cancels its
    // tasks and awaits their clean-up first, and a task whose loop was closed under it may never
    // end (its file object's reads or writes wait for that loop).
    let task = engine.runtime.spawn(transfer(
        client,
        endpoint,
        handle.progress.clone(),
        handle.cancel.clone(),
    ));
    let cancel_if_dropped = handle.cancel.clone().drop_guard();
    generic::future_into_py::<EngineRuntime, _, Settled<T>>(py, async move {
        let outcome = task.await;
        cancel_if_dropped.disarm();
        match outcome {
            Ok(result) => Ok(Settled(result)),
            Err(_) => Err(PyRuntimeError::new_err(
                "s3turbo: the transfer task panicked (a bug: please report it)",
            )),
        }
    })
}

#[pyfunction]
#[pyo3(signature = (connection, options, upload, filename, transfer))]
fn upload_file_async<'py>(
    py: Python<'py>,
    connection: &Connection,
    options: &Options,
    upload: &Upload,
    filename: PathBuf,
    transfer: &Transfer,
) -> PyResult<Bound<'py, PyAny>> {
    let request = upload.request(options);
    spawn_transfer(
        py,
        connection,
        transfer,
        |client, endpoint, progress, cancel| async move {
            upload::upload_file(&client, &endpoint, request, filename, progress, cancel).await
        },
    )
}

#[pyfunction]
#[pyo3(signature = (connection, options, bucket, key, filename, extra_args, transfer))]
#[allow(clippy::too_many_arguments)]
fn download_file_async<'py>(
    py: Python<'py>,
    connection: &Connection,
    options: &Options,
    bucket: String,
    key: String,
    filename: PathBuf,
    extra_args: HashMap<String, String>,
    transfer: &Transfer,
) -> PyResult<Bound<'py, PyAny>> {
    let request = download_request(bucket, key, filename, &extra_args, options);
    spawn_transfer(
        py,
        connection,
        transfer,
        |client, endpoint, progress, cancel| async move {
            download::download_file(&client, &endpoint, request, progress, cancel).await
        },
    )
}

/// `upload_files` of the directory API, as an awaitable of each file's outcome.
#[pyfunction]
#[pyo3(signature = (connection, options, upload, files, objects_in_flight, transfer))]
fn upload_files_async<'py>(
    py: Python<'py>,
    connection: &Connection,
    options: &Options,
    upload: &Upload,
    files: FilesToUpload,
    objects_in_flight: usize,
    transfer: &Transfer,
) -> PyResult<Bound<'py, PyAny>> {
    let batch = upload_batch(options, upload, files);
    spawn_batch(py, connection, batch, objects_in_flight, transfer)
}

/// `download_files` of the directory API, as an awaitable of each object's outcome.
#[pyfunction]
#[pyo3(signature = (connection, options, bucket, files, objects_in_flight, extra_args,
                    transfer))]
#[allow(clippy::too_many_arguments)]
fn download_files_async<'py>(
    py: Python<'py>,
    connection: &Connection,
    options: &Options,
    bucket: String,
    files: Vec<(String, PathBuf)>,
    objects_in_flight: usize,
    extra_args: HashMap<String, String>,
    transfer: &Transfer,
) -> PyResult<Bound<'py, PyAny>> {
    let batch = download_batch(options, bucket, files, &extra_args);
    spawn_batch(py, connection, batch, objects_in_flight, transfer)
}

fn spawn_batch<'py>(
    py: Python<'py>,
    connection: &Connection,
    batch: Batch,
    objects_in_flight: usize,
    transfer: &Transfer,
) -> PyResult<Bound<'py, PyAny>> {
    spawn_transfer(
        py,
        connection,
        transfer,
        move |client, endpoint, progress, cancel| async move {
            let results = batch
                .run(&client, &endpoint, objects_in_flight, progress, cancel)
                .await;
            Ok(Outcomes(results))
        },
    )
}

/// `list_objects` of the directory API, as an awaitable.
#[pyfunction]
fn list_objects_async<'py>(
    py: Python<'py>,
    connection: &Connection,
    bucket: String,
    prefix: String,
    extra_args: HashMap<String, String>,
) -> PyResult<Bound<'py, PyAny>> {
    let args = download_args(&extra_args);
    spawn_transfer(
        py,
        connection,
        &Transfer::unobserved(),
        move |client, endpoint, _, cancel| async move {
            let listing = batch::Listing::new(&bucket, &prefix, &args);
            batch::list_objects(&client, &endpoint, &listing, &cancel).await
        },
    )
}

/// The blocks of a stream on their way to `upload_stream_async`'s engine.
#[pyclass(frozen, module = "s3turbo._core")]
pub struct BlockSender {
    sender: Mutex<Option<mpsc::Sender<StreamBlock>>>,
    block_size: usize,
}

#[pymethods]
impl BlockSender {
    /// The size of the blocks the engine takes (all of them but the last).
    #[getter]
    fn block_size(&self) -> usize {
        self.block_size
    }

    /// An awaitable that hands `block` to the engine once it has room for it: True, or False
    /// if the engine stopped taking blocks (the transfer failed; its awaitable says why).
    fn send<'py>(&self, py: Python<'py>, block: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        self.hand_over(py, StreamBlock::Data(Bytes::copy_from_slice(block)))
    }

    /// An awaitable that tells the engine the stream has ended, as `send` hands a block.
    fn end<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.hand_over(py, StreamBlock::End)
    }

    /// No more blocks. Without `end` before, the stream was given up: the engine stores none
    /// of it.
    fn close(&self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl BlockSender {
    fn hand_over<'py>(&self, py: Python<'py>, block: StreamBlock) -> PyResult<Bound<'py, PyAny>> {
        interpreter_exit::refuse_async_if_exiting()?;
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        generic::future_into_py::<EngineRuntime, _, bool>(py, async move {
            Ok(match sender {
                Some(sender) => sender.send(block).await.is_ok(),
                None => false,
            })
        })
    }
}

/// Uploads a stream whose blocks the caller sends through the returned `BlockSender`; returns
/// `(awaitable, sender)`.
#[pyfunction]
#[pyo3(signature = (connection, options, upload, transfer))]
fn upload_stream_async<'py>(
    py: Python<'py>,
    connection: &Connection,
    options: &Options,
    upload: &Upload,
    transfer: &Transfer,
) -> PyResult<(Bound<'py, PyAny>, BlockSender)> {
    let request = upload.request(options);
    // One block waits while the engine uploads others: reading stays just ahead, as in the
    // sync API.
    let (sender, blocks) = mpsc::channel::<StreamBlock>(1);
    let awaitable = spawn_transfer(
        py,
        connection,
        transfer,
        |client, endpoint, progress, cancel| async move {
            upload::upload_stream(&client, &endpoint, request, blocks, || {}, progress, cancel)
                .await
        },
    )?;
    let sender = BlockSender {
        sender: Mutex::new(Some(sender)),
        block_size: plan::stream_part_size(options.options.multipart_chunksize) as usize,
    };
    Ok((awaitable, sender))
}

/// The object's bytes, in order, from `download_stream_async`'s engine.
#[pyclass(frozen, module = "s3turbo._core")]
pub struct ChunkReceiver {
    queue: Arc<ChunkQueue>,
    ready: Arc<Notify>,
    finished: Arc<AtomicBool>,
}

#[pymethods]
impl ChunkReceiver {
    /// An awaitable of the next chunk, or None after the last one (or when the transfer
    /// stopped; its awaitable says why).
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        interpreter_exit::refuse_async_if_exiting()?;
        let (queue, ready, finished) = (
            self.queue.clone(),
            self.ready.clone(),
            self.finished.clone(),
        );
        generic::future_into_py::<EngineRuntime, _, Option<Chunk>>(py, async move {
            loop {
                // `finished` is read before popping: a chunk queued before the end is never
                // missed. notify_one keeps a wake-up that comes between the checks and the wait.
                let done = finished.load(Ordering::Acquire);
                if let Some(chunk) = queue.pop() {
                    return Ok(Some(Chunk(chunk)));
                }
                if done {
                    return Ok(None);
                }
                ready.notified().await;
            }
        })
    }
}

/// A chunk of the object, made a Python `bytes` where its awaitable's result is set (as
/// `Settled`, off the engine's workers).
struct Chunk(Bytes);

impl<'py> IntoPyObject<'py> for Chunk {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

/// Downloads an object whose bytes the caller takes, in order, from the returned
/// `ChunkReceiver`; returns `(awaitable, receiver)`.
#[pyfunction]
#[pyo3(signature = (connection, options, bucket, key, extra_args, transfer))]
#[allow(clippy::too_many_arguments)]
fn download_stream_async<'py>(
    py: Python<'py>,
    connection: &Connection,
    options: &Options,
    bucket: String,
    key: String,
    extra_args: HashMap<String, String>,
    transfer: &Transfer,
) -> PyResult<(Bound<'py, PyAny>, ChunkReceiver)> {
    let request = download_request(bucket, key, PathBuf::new(), &extra_args, options);
    // Two parts may wait for the writer, as in the sync API.
    let queue = ChunkQueue::new(2);
    let ready = Arc::new(Notify::new());
    let finished = Arc::new(AtomicBool::new(false));
    let receiver = ChunkReceiver {
        queue: queue.clone(),
        ready: ready.clone(),
        finished: finished.clone(),
    };
    let awaitable = spawn_transfer(
        py,
        connection,
        transfer,
        |client, endpoint, progress, cancel| async move {
            let wake = ready.clone();
            let result = download::download_to_queue(
                &client,
                &endpoint,
                request,
                queue,
                move || wake.notify_one(),
                progress,
                cancel,
            )
            .await;
            finished.store(true, Ordering::Release);
            ready.notify_one();
            result
        },
    )?;
    Ok((awaitable, receiver))
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Transfer>()?;
    module.add_class::<BlockSender>()?;
    module.add_class::<ChunkReceiver>()?;
    module.add_function(wrap_pyfunction!(upload_file_async, module)?)?;
    module.add_function(wrap_pyfunction!(download_file_async, module)?)?;
    module.add_function(wrap_pyfunction!(upload_stream_async, module)?)?;
    module.add_function(wrap_pyfunction!(download_stream_async, module)?)?;
    module.add_function(wrap_pyfunction!(upload_files_async, module)?)?;
    module.add_function(wrap_pyfunction!(list_objects_async, module)?)?;
    module.add_function(wrap_pyfunction!(download_files_async, module)?)?;
    Ok(())
}
