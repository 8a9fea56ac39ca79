//! The pyo3 glue: turns Python arguments into owned Rust values, runs the transfer on the
//! engine's runtime with the GIL released, feeds progress to the Python callback from the
//! waiting thread, and converts `TransferError` into the exceptions boto3 raises.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::types::ChecksumAlgorithm;
use bytes::Bytes;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCFunction, PyDict, PyList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bandwidth::BandwidthLimit;
use crate::batch::{self, Batch, FileDownload, FileUpload};
use crate::client::{self, ConnectionSettings, UserAgent};
use crate::credentials::{CredentialSource, FetchedCredentials, RefreshableSource};
use crate::download::{self, DownloadArgs, DownloadRequest};
use crate::error_body::ErrorField;
use crate::errors::{RequestIds, ServiceError, TransferError};
use crate::handoff::{ChunkQueue, Completion, WakeFd};
use crate::interpreter_exit;
use crate::plan;
use crate::presign::{self, PresignRequest, PresignV2Request};
use crate::progress::Progress;
use crate::request::{Headers, TransferOptions};
use crate::retries::RetryMode;
use crate::runtime::{engine, Engine};
use crate::upload::{self, StreamBlock, UploadHeaders, UploadRequest};

/// How often the waiting thread wakes to report progress and look for Ctrl-C.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Connection and signing settings read from a botocore client, and the engine's client for
/// them. The engine keeps a client, and so its pooled connections, only while a `Connection`
/// holds it: the Python layer keeps a botocore client's latest one on it, so that the pool
/// lives as long as the botocore client, as boto3's does.
#[pyclass(frozen, module = "s3turbo._core")]
pub struct Connection {
    pub(crate) settings: ConnectionSettings,
    /// The engine's client for these settings, shared with other botocore clients of the same
    /// settings: held so that its connection pool lives.
    shared: Option<Arc<aws_sdk_s3::Client>>,
    /// The botocore client's own: the shared client with the botocore client's retry quota.
    client: Option<Arc<aws_sdk_s3::Client>>,
    /// The process that made it: a forked child does not drop its parent's clients, whose
    /// connections belong to the parent's runtime (see `runtime.rs`).
    pid: u32,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            std::mem::forget(self.shared.take());
            std::mem::forget(self.client.take());
        }
    }
}

/// A botocore client's retry quota (see `client::RetryQuota`): the Python layer keeps one on
/// each botocore client and gives it to each of that client's `Connection`s.
#[pyclass(frozen, module = "s3turbo._core")]
#[derive(Default)]
pub struct RetryQuota(client::RetryQuota);

#[pymethods]
impl RetryQuota {
    #[new]
    fn new() -> Self {
        Self::default()
    }
}

#[pymethods]
impl Connection {
    /// `refresh`, for refreshable botocore credentials, returns `(access_key, secret_key,
    /// session_token, seconds until botocore refreshes them or None)` through botocore, which
    /// refreshes them when due; `credentials_id` names the botocore object it reads. Neither
    /// keys nor `refresh`: anonymous requests, unsigned.
    #[new]
    #[pyo3(signature = (*, retry_quota, endpoint_url, region, access_key, secret_key, session_token,
                        refresh, credentials_id, force_path_style, accelerate, dual_stack,
                        fips, global_endpoint, use_arn_region,
                        disable_s3_express_session_auth, ca_bundle, verify_certificates, tcp_keepalive, client_cert,
                        client_key, http_proxy,
                        https_proxy, connect_timeout, read_timeout, max_pool_connections,
                        max_attempts, retry_mode,
                        retry_behavior_2_1,
                        request_checksum_calculation, response_checksum_validation,
                        user_agent, user_agent_suffix))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        retry_quota: &RetryQuota,
        endpoint_url: Option<String>,
        region: String,
        access_key: Option<String>,
        secret_key: Option<String>,
        session_token: Option<String>,
        refresh: Option<Py<PyAny>>,
        credentials_id: usize,
        force_path_style: bool,
        accelerate: bool,
        dual_stack: bool,
        fips: bool,
        global_endpoint: bool,
        use_arn_region: bool,
        disable_s3_express_session_auth: bool,
        ca_bundle: Option<PathBuf>,
        verify_certificates: bool,
        tcp_keepalive: bool,
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
        http_proxy: Option<String>,
        https_proxy: Option<String>,
        connect_timeout: f64,
        read_timeout: f64,
        max_pool_connections: usize,
        max_attempts: u32,
        retry_mode: &str,
        retry_behavior_2_1: bool,
        request_checksum_calculation: &str,
        response_checksum_validation: &str,
        user_agent: Option<String>,
        user_agent_suffix: Option<String>,
    ) -> PyResult<Self> {
        let millis = |seconds: f64| (seconds.max(0.0) * 1000.0) as u64;
        let credentials = match (refresh, access_key, secret_key) {
            (Some(refresh), _, _) => CredentialSource::Refreshable(RefreshableSource {
                id: credentials_id,
                fetch: Arc::new(move || fetch_credentials(&refresh)),
            }),
            (None, Some(access_key), Some(secret_key)) => CredentialSource::Fixed {
                access_key,
                secret_key,
                session_token,
            },
            (None, None, None) => CredentialSource::Anonymous,
            _ => {
                return Err(PyValueError::new_err(
                    "s3turbo: an access key and a secret key go together",
                ))
            }
        };
        let settings = ConnectionSettings {
            endpoint_url,
            region,
            credentials,
            force_path_style,
            accelerate,
            dual_stack,
            fips,
            global_endpoint,
            use_arn_region,
            disable_s3_express_session_auth,
            ca_bundle,
            verify_certificates,
            tcp_keepalive,
            client_certificate: client_cert.map(|certificate| (certificate, client_key)),
            http_proxy,
            https_proxy,
            connect_timeout_ms: millis(connect_timeout),
            read_timeout_ms: millis(read_timeout),
            max_idle_connections: max_pool_connections,
            max_attempts,
            retry_mode: RetryMode::from_botocore(retry_mode),
            retry_behavior_2_1,
            checksum_when_supported: request_checksum_calculation == "when_supported",
            validate_when_supported: response_checksum_validation == "when_supported",
            user_agent: UserAgent {
                replacement: user_agent,
                suffix: user_agent_suffix,
            },
        };
        // Taken now, before the botocore client lets go of its previous Connection, which
        // holds the same client while the settings are the same.
        let shared = engine_of_this_process()?
            .clients
            .get(&settings)
            .map_err(to_py_err)?;
        let client = retry_quota.0.client(&shared, settings.retry_mode);
        Ok(Self {
            settings,
            shared: Some(shared),
            client: Some(client),
            pid: std::process::id(),
        })
    }
}

/// Calls the Python `refresh` of a `Connection` (from an engine thread: it takes the GIL).
fn fetch_credentials(refresh: &Py<PyAny>) -> Result<FetchedCredentials, String> {
    let Some(_call) = interpreter_exit::call_into_python() else {
        return Err("the interpreter is exiting: botocore cannot refresh the credentials".into());
    };
    Python::attach(|py| {
        let (access_key, secret_key, session_token, refresh_in): (
            String,
            String,
            Option<String>,
            Option<f64>,
        ) = refresh.bind(py).call0()?.extract()?;
        Ok(FetchedCredentials {
            access_key,
            secret_key,
            session_token,
            refresh_in: refresh_in.map(|seconds| Duration::from_secs_f64(seconds.max(0.0))),
        })
    })
    .map_err(|error: PyErr| format!("refreshing the botocore credentials failed: {error}"))
}

/// The TransferConfig values the engine uses.
#[pyclass(frozen, module = "s3turbo._core")]
pub struct Options {
    pub(crate) options: TransferOptions,
}

#[pymethods]
impl Options {
    #[new]
    #[pyo3(signature = (*, multipart_threshold, multipart_chunksize, max_concurrency,
                        num_download_attempts, max_bandwidth=None))]
    fn new(
        multipart_threshold: u64,
        multipart_chunksize: u64,
        max_concurrency: usize,
        num_download_attempts: u32,
        max_bandwidth: Option<u64>,
    ) -> Self {
        Self {
            options: TransferOptions {
                multipart_threshold,
                multipart_chunksize,
                max_concurrency,
                num_download_attempts,
                max_bandwidth,
            },
        }
    }
}

impl Options {
    /// A new limit for one call, shared by all its parts and objects.
    fn bandwidth_limit(&self) -> Option<Arc<BandwidthLimit>> {
        self.options
            .max_bandwidth
            .map(|rate| Arc::new(BandwidthLimit::new(rate)))
    }
}

type HeaderPairs = Vec<(String, String)>;

/// What to upload where, with the user's ExtraArgs already split per operation and encoded.
/// `headers` maps an operation name ("PutObject", "CreateMultipartUpload", "UploadPart",
/// "CompleteMultipartUpload") to its extra headers; the checksum arguments name the
/// algorithms the engine computes for those bodies, and a full-object checksum the user gave
/// (its algorithm and value); the `sign_*_payload` flags, whether those bodies' SHA-256 is
/// signed.
#[pyclass(frozen, module = "s3turbo._core")]
pub struct Upload {
    bucket: String,
    key: String,
    headers: UploadHeaders,
    put_object_checksum: Option<ChecksumAlgorithm>,
    put_object_checksum_value: Option<(ChecksumAlgorithm, String)>,
    upload_part_checksum: Option<ChecksumAlgorithm>,
    sign_put_object_payload: bool,
    sign_upload_part_payload: bool,
}

#[pymethods]
impl Upload {
    #[new]
    // Keyword-only in Python, where the plan passes them by name.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, bucket, key, headers, put_object_checksum, put_object_checksum_value,
                        upload_part_checksum, sign_put_object_payload,
                        sign_upload_part_payload))]
    fn new(
        bucket: String,
        key: String,
        mut headers: HashMap<String, HeaderPairs>,
        put_object_checksum: Option<String>,
        put_object_checksum_value: Option<(String, String)>,
        upload_part_checksum: Option<String>,
        sign_put_object_payload: bool,
        sign_upload_part_payload: bool,
    ) -> PyResult<Self> {
        let mut take = |operation: &str| {
            Headers::new(headers.remove(operation).unwrap_or_default()).map_err(to_py_err)
        };
        Ok(Self {
            bucket,
            key,
            headers: UploadHeaders {
                put_object: take("PutObject")?,
                create_multipart_upload: take("CreateMultipartUpload")?,
                upload_part: take("UploadPart")?,
                complete_multipart_upload: take("CompleteMultipartUpload")?,
            },
            put_object_checksum: put_object_checksum.as_deref().map(ChecksumAlgorithm::from),
            put_object_checksum_value: put_object_checksum_value
                .map(|(algorithm, value)| (ChecksumAlgorithm::from(algorithm.as_str()), value)),
            upload_part_checksum: upload_part_checksum.as_deref().map(ChecksumAlgorithm::from),
            sign_put_object_payload,
            sign_upload_part_payload,
        })
    }
}

impl Upload {
    pub(crate) fn request(&self, options: &Options) -> UploadRequest {
        UploadRequest {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            headers: self.headers.clone(),
            put_object_checksum: self.put_object_checksum.clone(),
            put_object_checksum_value: self.put_object_checksum_value.clone(),
            upload_part_checksum: self.upload_part_checksum.clone(),
            sign_put_object_payload: self.sign_put_object_payload,
            sign_upload_part_payload: self.sign_upload_part_payload,
            options: options.options,
            bandwidth: options.bandwidth_limit(),
            part_budget: None,
        }
    }
}

/// Uploads a local file.
#[pyfunction]
#[pyo3(signature = (connection, options, upload, filename, *, callback))]
fn upload_file(
    py: Python<'_>,
    connection: &Connection,
    options: &Options,
    upload: &Upload,
    filename: PathBuf,
    callback: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let request = upload.request(options);
    run_transfer(py, connection, callback, no_pump, move |task| async move {
        upload::upload_file(
            &task.client,
            &task.endpoint,
            request,
            filename,
            task.progress,
            task.cancel,
        )
        .await
    })
}

/// Uploads a stream: `read(n)` (from the Python layer) returns the next block of `n` bytes,
/// shorter only at the end, and `b""` after it. It is called on this thread whenever the
/// engine has room for another block, so memory stays bounded whatever the stream's length.
#[pyfunction]
#[pyo3(signature = (connection, options, upload, read, *, callback))]
fn upload_fileobj(
    py: Python<'_>,
    connection: &Connection,
    options: &Options,
    upload: &Upload,
    read: Bound<'_, PyAny>,
    callback: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let request = upload.request(options);
    let block_size = plan::stream_part_size(options.options.multipart_chunksize);
    // One block waits for the engine while it uploads others: reading stays just ahead.
    let (sender, blocks) = mpsc::channel::<StreamBlock>(1);
    let mut sender = Some(sender);
    let read_ahead = |_: Python<'_>, finished: bool, _: Report<'_>| -> PyResult<()> {
        while let (false, Some(open)) = (finished, &sender) {
            // Full: the engine wakes us when it takes a block. Closed: it stopped reading.
            let Ok(room) = open.clone().try_reserve_owned() else {
                break;
            };
            let block = read.call1((block_size,))?;
            let block = block.cast::<PyBytes>()?.as_bytes();
            if block.is_empty() {
                room.send(StreamBlock::End);
                sender = None;
            } else {
                room.send(StreamBlock::Data(Bytes::copy_from_slice(block)));
            }
        }
        Ok(())
    };
    run_transfer(
        py,
        connection,
        callback,
        read_ahead,
        move |task| async move {
            let wake = task.wake;
            upload::upload_stream(
                &task.client,
                &task.endpoint,
                request,
                blocks,
                move || wake(),
                task.progress,
                task.cancel,
            )
            .await
        },
    )
}

/// Downloads an object to a local path.
#[pyfunction]
#[pyo3(signature = (connection, options, bucket, key, filename, *, extra_args, callback))]
#[allow(clippy::too_many_arguments)]
fn download_file(
    py: Python<'_>,
    connection: &Connection,
    options: &Options,
    bucket: String,
    key: String,
    filename: PathBuf,
    extra_args: HashMap<String, String>,
    callback: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let request = download_request(bucket, key, filename, &extra_args, options);
    run_transfer(py, connection, callback, no_pump, move |task| async move {
        download::download_file(
            &task.client,
            &task.endpoint,
            request,
            task.progress,
            task.cancel,
        )
        .await
    })
}

/// Downloads an object into a file object: `write` (the object's bound method) is called with
/// the object's bytes in order, from this thread.
#[pyfunction]
#[pyo3(signature = (connection, options, bucket, key, write, *, extra_args, callback))]
#[allow(clippy::too_many_arguments)]
fn download_fileobj(
    py: Python<'_>,
    connection: &Connection,
    options: &Options,
    bucket: String,
    key: String,
    write: Bound<'_, PyAny>,
    extra_args: HashMap<String, String>,
    callback: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let request = download_request(bucket, key, PathBuf::new(), &extra_args, options);
    // Two parts may wait for the writer: enough to keep the downloads going without holding
    // much more than `max_concurrency` parts in memory.
    let queue = ChunkQueue::new(2);
    let ready = queue.clone();
    // A chunk's bytes are counted before it is queued: reported first, the Callback has seen
    // them before the sink gets them.
    let write_ready = |py: Python<'_>, _finished: bool, report: Report<'_>| -> PyResult<()> {
        while let Some(chunk) = ready.pop() {
            report()?;
            write.call1((PyBytes::new(py, &chunk),))?;
        }
        Ok(())
    };
    run_transfer(
        py,
        connection,
        callback,
        write_ready,
        move |task| async move {
            let wake = task.wake;
            download::download_to_queue(
                &task.client,
                &task.endpoint,
                request,
                queue,
                move || wake(),
                task.progress,
                task.cancel,
            )
            .await
        },
    )
}

/// The directory API's files to upload, as Python gives them: `(path, key, content type or
/// None)`.
pub(crate) type FilesToUpload = Vec<(PathBuf, String, Option<String>)>;

pub(crate) fn upload_batch(options: &Options, upload: &Upload, files: FilesToUpload) -> Batch {
    let files = files
        .into_iter()
        .map(|(path, key, content_type)| FileUpload {
            path,
            key,
            content_type,
        })
        .collect();
    Batch::Upload(upload.request(options), files)
}

/// Uploads many files with the same arguments (the directory API). Returns, for each file in
/// order, None or the exception its upload failed with. The callback gets the bytes of all of
/// them.
#[pyfunction]
#[pyo3(signature = (connection, options, upload, files, objects_in_flight, *, callback))]
fn upload_files(
    py: Python<'_>,
    connection: &Connection,
    options: &Options,
    upload: &Upload,
    files: FilesToUpload,
    objects_in_flight: usize,
    callback: Option<Bound<'_, PyAny>>,
) -> PyResult<Outcomes> {
    let batch = upload_batch(options, upload, files);
    run_batch(py, connection, batch, objects_in_flight, callback)
}

fn run_batch(
    py: Python<'_>,
    connection: &Connection,
    batch: Batch,
    objects_in_flight: usize,
    callback: Option<Bound<'_, PyAny>>,
) -> PyResult<Outcomes> {
    run_transfer(py, connection, callback, no_pump, move |task| async move {
        let results = batch
            .run(
                &task.client,
                &task.endpoint,
                objects_in_flight,
                task.progress,
                task.cancel,
            )
            .await;
        Ok(Outcomes(results))
    })
}

/// The keys and sizes of the objects under `prefix` (the directory API's listing):
/// ListObjectsV2 on the engine, whose XML parsing costs a fraction of botocore's. It sends the
/// RequestPayer and ExpectedBucketOwner of the downloads' `extra_args` (encoded, as
/// `download_args` takes them).
#[pyfunction]
fn list_objects(
    py: Python<'_>,
    connection: &Connection,
    bucket: String,
    prefix: String,
    extra_args: HashMap<String, String>,
) -> PyResult<Vec<(String, u64)>> {
    let args = download_args(&extra_args);
    run_transfer(py, connection, None, no_pump, move |task| async move {
        let listing = batch::Listing::new(&bucket, &prefix, &args);
        batch::list_objects(&task.client, &task.endpoint, &listing, &task.cancel).await
    })
}

/// The directory API's downloads: `files` holds each object's key and local path; they
/// share the bucket and ExtraArgs.
pub(crate) fn download_batch(
    options: &Options,
    bucket: String,
    files: Vec<(String, PathBuf)>,
    extra_args: &HashMap<String, String>,
) -> Batch {
    let shared = download_request(bucket, String::new(), PathBuf::new(), extra_args, options);
    let files = files
        .into_iter()
        .map(|(key, path)| FileDownload { key, path })
        .collect();
    Batch::Download(shared, files)
}

/// Downloads many objects of one bucket (the directory API). Returns, for each in order, None
/// or the exception its download failed with.
#[pyfunction]
#[pyo3(signature = (connection, options, bucket, files, objects_in_flight, *, extra_args,
                    callback))]
#[allow(clippy::too_many_arguments)]
fn download_files(
    py: Python<'_>,
    connection: &Connection,
    options: &Options,
    bucket: String,
    files: Vec<(String, PathBuf)>,
    objects_in_flight: usize,
    extra_args: HashMap<String, String>,
    callback: Option<Bound<'_, PyAny>>,
) -> PyResult<Outcomes> {
    let batch = download_batch(options, bucket, files, &extra_args);
    run_batch(py, connection, batch, objects_in_flight, callback)
}

/// The outcome of each object of a directory transfer, as Python gets it: a list holding, in
/// order, None or the exception boto3 would raise for that object.
pub(crate) struct Outcomes(pub(crate) batch::Results);

impl<'py> IntoPyObject<'py> for Outcomes {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let outcomes = self
            .0
            .into_iter()
            .map(|result| result.err().map(|error| py_err(py, error).into_value(py)));
        PyList::new(py, outcomes)
    }
}

/// boto3's download ExtraArgs, already encoded (SSE-C key in base64 with its MD5).
pub(crate) fn download_args(extra_args: &HashMap<String, String>) -> DownloadArgs {
    let arg = |name: &str| extra_args.get(name).cloned();
    DownloadArgs {
        version_id: arg("VersionId"),
        sse_customer_algorithm: arg("SSECustomerAlgorithm"),
        sse_customer_key: arg("SSECustomerKey"),
        sse_customer_key_md5: arg("SSECustomerKeyMD5"),
        request_payer: arg("RequestPayer"),
        expected_bucket_owner: arg("ExpectedBucketOwner"),
        checksum_mode: arg("ChecksumMode"),
    }
}

/// The engine's request for a download of `bucket`/`key` (to `path`; empty for a sink), with
/// boto3's download ExtraArgs (`extra_args`, as `download_args` takes them) and the options.
pub(crate) fn download_request(
    bucket: String,
    key: String,
    path: PathBuf,
    extra_args: &HashMap<String, String>,
    options: &Options,
) -> DownloadRequest {
    DownloadRequest {
        bucket,
        key,
        path,
        args: download_args(extra_args),
        options: options.options,
        bandwidth: options.bandwidth_limit(),
        part_budget: None,
    }
}

/// Hands the Callback the progress it has not seen yet: a pump calls it before it writes
/// bytes into a sink.
type Report<'a> = &'a mut dyn FnMut() -> PyResult<()>;

/// What a transfer task gets from `run_transfer`.
struct TaskContext {
    client: aws_sdk_s3::Client,
    endpoint: String,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    /// Wakes the waiting thread early, to run its pump (data to write, room to read into).
    wake: Arc<dyn Fn() + Send + Sync>,
}

/// Runs one transfer on the engine and waits for it with the GIL released (or, in a green
/// thread, in its hub), waking every `POLL_INTERVAL` (or when the task wakes it) to run `pump`
/// (the file-object I/O that must happen on this thread; `true` once the task has finished;
/// with a `Report` to call before it writes), to hand progress to `callback` and to run
/// Python's signal handlers. An exception from the pump or the callback, or Ctrl-C, cancels
/// the transfer; the engine cleans up (aborts the multipart upload, removes the temporary
/// file) before the exception reaches the caller.
fn run_transfer<F, Fut, T>(
    py: Python<'_>,
    connection: &Connection,
    callback: Option<Bound<'_, PyAny>>,
    mut pump: impl FnMut(Python<'_>, bool, Report<'_>) -> PyResult<()>,
    transfer: F,
) -> PyResult<T>
where
    F: FnOnce(TaskContext) -> Fut,
    Fut: Future<Output = Result<T, TransferError>> + Send + 'static,
    T: Send + 'static,
{
    let (engine, client) = engine_and_client(connection)?;
    // The exit waits for this thread to be out of the engine's frames, as well as for the
    // task's clean-up (see `interpreter_exit`).
    let _exit_waits_for_caller = interpreter_exit::transfer_begins();
    let cancel = CancellationToken::new();
    let green_select = green_select(py)?;
    let wake_fd = match green_select {
        Some(_) => Some(WakeFd::new()?),
        None => None,
    };
    let done = Completion::new(wake_fd);
    // Waits for the task to finish or poke, or POLL_INTERVAL to pass. A green thread waits in
    // its hub, so that the other green threads run meanwhile.
    let wait = || -> PyResult<Option<Option<Result<T, TransferError>>>> {
        let (Some(select), Some(wake_fd)) = (&green_select, done.wake_fd()) else {
            return Ok(py.detach(|| done.wait_timeout(POLL_INTERVAL)));
        };
        if let Some(outcome) = done.wait_timeout(Duration::ZERO) {
            return Ok(Some(outcome));
        }
        let watched = PyList::new(py, [wake_fd.fd()])?;
        let none = PyList::empty(py);
        select.call1((watched, &none, &none, POLL_INTERVAL.as_secs_f64()))?;
        wake_fd.drain();
        Ok(done.wait_timeout(Duration::ZERO))
    };
    let poke = done.clone();
    let progress = match &callback {
        // The engine waits for the callback to see the last bytes before it commits.
        Some(_) => {
            let ask = done.clone();
            Progress::observed(move || ask.poke())
        }
        None => Progress::new(),
    };
    let future = transfer(TaskContext {
        client,
        endpoint: connection.settings.endpoint_label(),
        progress: progress.clone(),
        cancel: cancel.clone(),
        wake: Arc::new(move || poke.poke()),
    });
    let task_done = done.clone();
    let exit_waits = interpreter_exit::transfer_begins();
    engine.runtime.spawn(async move {
        let _exit_waits = exit_waits;
        // A guard, so that a panic in the transfer still wakes the waiting thread.
        let guard = PanicGuard(task_done);
        guard.0.set(Some(future.await));
    });

    let mut reported: i64 = 0;
    let mut deliver = || -> PyResult<()> {
        let Some(callback) = &callback else {
            return Ok(());
        };
        let transferred = progress.transferred();
        if transferred != reported {
            let increment = transferred - reported;
            reported = transferred;
            callback.call1((increment,))?;
        }
        progress.reported(transferred);
        Ok(())
    };
    let stop = |error: PyErr| -> PyResult<T> {
        cancel.cancel();
        // Wait for the engine's clean-up (abort the multipart upload, remove the temporary
        // file). A second Ctrl-C stops waiting; the clean-up then goes on in the background.
        while wait()?.is_none() {
            py.check_signals()?;
        }
        Err(error)
    };
    // The pump may have work before the task can ask for it (the first blocks of a stream).
    if let Err(error) = pump(py, false, &mut deliver) {
        return stop(error);
    }
    loop {
        let outcome = match wait() {
            Ok(outcome) => outcome,
            Err(error) => return stop(error),
        };
        match outcome {
            Some(Some(Ok(value))) => {
                deliver()?;
                pump(py, true, &mut deliver)?;
                return Ok(value);
            }
            Some(Some(Err(error))) => {
                // What was sent before the failure, as boto3's Callback has seen it.
                deliver()?;
                return Err(to_py_err(error));
            }
            Some(None) => {
                return Err(PyRuntimeError::new_err(
                    "s3turbo: the transfer task panicked (a bug: please report it)",
                ))
            }
            None => {}
        }
        // The callback sees bytes before the sink gets them, as s3transfer's sees them as they
        // are read: a callback that raises stops what it has not seen from being written.
        let step = deliver()
            .and_then(|()| pump(py, false, &mut deliver))
            .and_then(|()| py.check_signals());
        if let Err(error) = step {
            return stop(error);
        }
    }
}

/// `select.select` if a green-thread library (gevent, eventlet) has replaced it with its own,
/// which waits in the hub, and this is the main thread, whose hub runs the green threads:
/// they must run while it waits. (Another thread, such as one of gevent's thread pool, is
/// there to block; a green wait would make it a hub of its own.)
#[cfg(target_os = "linux")]
pub(crate) fn green_select(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    // SAFETY: gettid has no preconditions.
    let main_thread = i64::from(unsafe { libc::gettid() }) == i64::from(std::process::id());
    if !main_thread {
        return Ok(None);
    }
    let select = py.import("select")?.getattr("select")?;
    Ok((!select.is_instance_of::<PyCFunction>()).then_some(select))
}

/// Green waits take an eventfd, which only Linux has: elsewhere a transfer blocks its thread.
#[cfg(not(target_os = "linux"))]
pub(crate) fn green_select(_py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    Ok(None)
}

/// This process's engine, as a Python exception if it cannot start.
fn engine_of_this_process() -> PyResult<Arc<Engine>> {
    engine().map_err(|e| PyRuntimeError::new_err(format!("s3turbo engine: {e}")))
}

/// This process's engine and the client `connection` holds.
pub(crate) fn engine_and_client(
    connection: &Connection,
) -> PyResult<(Arc<Engine>, aws_sdk_s3::Client)> {
    let engine = engine_of_this_process()?;
    let client = match &connection.client {
        Some(client) if connection.pid == std::process::id() => client.as_ref().clone(),
        // Made before a fork: this process's own client for the same settings.
        _ => engine
            .clients
            .get(&connection.settings)
            .map_err(to_py_err)?
            .as_ref()
            .clone(),
    };
    Ok((engine, client))
}

/// For transfers with no file object: nothing to do on the waiting thread.
fn no_pump(_: Python<'_>, _: bool, _: Report<'_>) -> PyResult<()> {
    Ok(())
}

/// Wakes the waiting thread with `None` if the transfer task unwinds before setting a result.
struct PanicGuard<T>(Arc<Completion<Option<Result<T, TransferError>>>>);

impl<T> Drop for PanicGuard<T> {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

/// The exception boto3 raises for the same failure.
pub(crate) fn to_py_err(error: TransferError) -> PyErr {
    Python::attach(|py| py_err(py, error))
}

/// `to_py_err` where the GIL is held.
pub(crate) fn py_err(py: Python<'_>, error: TransferError) -> PyErr {
    build_py_err(py, error).unwrap_or_else(|failed_to_build| failed_to_build)
}

/// botocore's `Error` dict (of `ClientError.response`) of an error's fields.
fn error_dict<'py>(
    py: Python<'py>,
    fields: &[(String, ErrorField)],
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in fields {
        match value {
            ErrorField::Text(text) => dict.set_item(name, text)?,
            ErrorField::Nested(inner) => dict.set_item(name, error_dict(py, inner)?)?,
        }
    }
    Ok(dict)
}

fn build_py_err(py: Python<'_>, error: TransferError) -> PyResult<PyErr> {
    let botocore = py.import("botocore.exceptions")?;
    let with_endpoint = |class: &str, endpoint: String, detail: String| -> PyResult<PyErr> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("endpoint_url", endpoint)?;
        kwargs.set_item("error", detail)?;
        Ok(PyErr::from_value(
            botocore.getattr(class)?.call((), Some(&kwargs))?,
        ))
    };
    Ok(match error {
        TransferError::Service(refused) => {
            let ServiceError {
                operation,
                status,
                error,
                response_keys,
                headers,
                ids,
                retry_attempts,
                max_attempts_reached,
                retry_quota_reached,
                ..
            } = *refused;
            let response = error_dict(py, &response_keys)?;
            response.set_item("Error", error_dict(py, &error)?)?;
            // botocore's ResponseMetadata, in its order.
            let http_headers = PyDict::new(py);
            for (name, value) in &headers {
                // Repeated headers are one entry, their values joined as urllib3 joins them.
                let joined = match http_headers.get_item(name)? {
                    Some(earlier) => format!("{}, {value}", earlier.extract::<String>()?),
                    None => value.clone(),
                };
                http_headers.set_item(name, joined)?;
            }
            let header = |name: &str| -> PyResult<Option<String>> {
                http_headers
                    .get_item(name)?
                    .map(|v| v.extract())
                    .transpose()
            };
            let metadata = PyDict::new(py);
            let request_id = header("x-amz-request-id")?;
            let host_id = header("x-amz-id-2")?;
            match ids {
                RequestIds::FromHeadersOrEmpty => {
                    metadata.set_item("RequestId", request_id.unwrap_or_default())?;
                    metadata.set_item("HostId", host_id.unwrap_or_default())?;
                }
                RequestIds::FromHeaders => {
                    if let Some(id) = header("x-amzn-requestid")? {
                        metadata.set_item("RequestId", id)?;
                    } else if let Some(id) = request_id {
                        metadata.set_item("RequestId", id)?;
                        metadata.set_item("HostId", host_id.unwrap_or_default())?;
                    }
                }
                RequestIds::Only(id) => {
                    if let Some(id) = id {
                        metadata.set_item("RequestId", id)?;
                    }
                }
            }
            metadata.set_item("HTTPStatusCode", status)?;
            metadata.set_item("HTTPHeaders", http_headers)?;
            metadata.set_item("RetryAttempts", retry_attempts)?;
            if max_attempts_reached {
                metadata.set_item("MaxAttemptsReached", true)?;
            }
            if retry_quota_reached {
                metadata.set_item("RetryQuotaReached", true)?;
            }
            response.set_item("ResponseMetadata", metadata)?;
            let error = botocore
                .getattr("ClientError")?
                .call1((response, operation))?;
            // S3's answer, which the Python side raises as the client's modeled class; a
            // ClientError the user's Callback or file object raised goes on as it is.
            error.setattr("_s3turbo_service_error", true)?;
            PyErr::from_value(error)
        }
        TransferError::Connection { endpoint, detail } => {
            with_endpoint("EndpointConnectionError", endpoint, detail)?
        }
        TransferError::ProxyConnection { proxy_url, detail } => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("proxy_url", proxy_url)?;
            kwargs.set_item("error", detail)?;
            PyErr::from_value(
                botocore
                    .getattr("ProxyConnectionError")?
                    .call((), Some(&kwargs))?,
            )
        }
        TransferError::Tls { endpoint, detail } => with_endpoint("SSLError", endpoint, detail)?,
        TransferError::ConnectionClosed { endpoint, detail } => {
            with_endpoint("ConnectionClosedError", endpoint, detail)?
        }
        TransferError::BodyInterrupted { endpoint, detail } => {
            with_endpoint("ResponseStreamingError", endpoint, detail)?
        }
        TransferError::ChecksumMismatch(detail) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("error_msg", detail)?;
            PyErr::from_value(
                botocore
                    .getattr("FlexibleChecksumError")?
                    .call((), Some(&kwargs))?,
            )
        }
        TransferError::Timeout { endpoint, detail }
        | TransferError::HandshakeTimeout { endpoint, detail } => {
            with_endpoint("ReadTimeoutError", endpoint, detail)?
        }
        TransferError::ConnectTimeout { endpoint, detail } => {
            with_endpoint("ConnectTimeoutError", endpoint, detail)?
        }
        TransferError::WrongRange(message) => PyErr::from_value(
            py.import("s3transfer.exceptions")?
                .getattr("S3ValidationError")?
                .call1((message,))?,
        ),
        TransferError::RetriesExceeded(last) => {
            let last = build_py_err(py, *last)?.into_value(py);
            PyErr::from_value(
                py.import("boto3.exceptions")?
                    .getattr("RetriesExceededError")?
                    .call1((last,))?,
            )
        }
        // A seek on a pipe: what Python's buffered file raises for it, as boto3 does.
        TransferError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotSeekable => {
            PyErr::from_value(
                py.import("io")?
                    .getattr("UnsupportedOperation")?
                    .call1(("File or stream is not seekable.",))?,
            )
        }
        TransferError::Io { paths, source } => {
            let mut paths = paths.iter().map(|path| path.to_string_lossy().into_owned());
            let (path, path2) = (paths.next(), paths.next());
            match source.raw_os_error() {
                // OSError(errno, strerror, filename, winerror, filename2) picks the subclass
                // (FileNotFoundError, ...) and words the message as Python's own.
                Some(errno) => {
                    PyOSError::new_err((errno, os_strerror(&source), path, None::<i32>, path2))
                }
                None => PyOSError::new_err(match path {
                    Some(path) => format!("{path}: {source}"),
                    None => source.to_string(),
                }),
            }
        }
        TransferError::Cancelled => PyRuntimeError::new_err("s3turbo: the transfer was cancelled"),
        TransferError::InvalidInput(message) => PyValueError::new_err(message),
        TransferError::Internal(message) => PyRuntimeError::new_err(format!("s3turbo: {message}")),
    })
}

/// `std::io::Error`'s message without the " (os error N)" suffix, as Python words it.
fn os_strerror(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

/// A SigV4 presigned URL, computed locally (see `presign.rs` for the arguments).
#[pyfunction]
#[pyo3(signature = (method, endpoint, host, path_prefix, key, query, headers, region,
                    access_key, secret_key, session_token, expires_in, now))]
#[allow(clippy::too_many_arguments)]
fn presign_url(
    method: &str,
    endpoint: &str,
    host: &str,
    path_prefix: &str,
    key: &str,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    region: &str,
    access_key: &str,
    secret_key: &str,
    session_token: Option<&str>,
    expires_in: &str,
    now: f64,
) -> String {
    presign::presign_url(&PresignRequest {
        method,
        endpoint,
        host,
        path_prefix,
        key,
        query: &query,
        headers: &headers,
        region,
        access_key,
        secret_key,
        session_token,
        expires_in,
        now: now.floor() as i64,
    })
}

/// A SigV2 presigned URL, computed locally (see `presign.rs` for the arguments).
#[pyfunction]
#[pyo3(signature = (method, endpoint, path_prefix, bucket, key, query, headers, access_key,
                    secret_key, session_token, expires))]
#[allow(clippy::too_many_arguments)]
fn presign_url_v2(
    method: &str,
    endpoint: &str,
    path_prefix: &str,
    bucket: &str,
    key: &str,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    access_key: &str,
    secret_key: &str,
    session_token: Option<&str>,
    expires: &str,
) -> String {
    presign::presign_url_v2(&PresignV2Request {
        method,
        endpoint,
        path_prefix,
        bucket,
        key,
        query: &query,
        headers: &headers,
        access_key,
        secret_key,
        session_token,
        expires,
    })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Connection>()?;
    module.add_class::<RetryQuota>()?;
    module.add_class::<Options>()?;
    module.add_class::<Upload>()?;
    module.add_function(wrap_pyfunction!(upload_file, module)?)?;
    module.add_function(wrap_pyfunction!(upload_fileobj, module)?)?;
    module.add_function(wrap_pyfunction!(download_file, module)?)?;
    module.add_function(wrap_pyfunction!(download_fileobj, module)?)?;
    module.add_function(wrap_pyfunction!(upload_files, module)?)?;
    module.add_function(wrap_pyfunction!(download_files, module)?)?;
    module.add_function(wrap_pyfunction!(list_objects, module)?)?;
    module.add_function(wrap_pyfunction!(presign_url, module)?)?;
    module.add_function(wrap_pyfunction!(presign_url_v2, module)?)?;
    Ok(())
}
