//! The engine's one error type. It knows nothing of Python: `python.rs` turns each variant into
//! the exception boto3 would raise for the same failure.

use std::io;
use std::path::PathBuf;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

pub type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

#[derive(Debug)]
pub enum TransferError {
    /// S3 answered with an error status: becomes botocore's `ClientError`.
    Service {
        operation: &'static str,
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// The endpoint could not be reached, or the connection broke mid-response.
    Connection { endpoint: String, detail: String },
    /// The server's TLS certificate was not trusted (botocore's `SSLError`).
    Tls { endpoint: String, detail: String },
    /// A connect or read timeout.
    Timeout { endpoint: String, detail: String },
    /// A local file could not be read or written.
    Io { path: PathBuf, source: io::Error },
    /// The caller asked to stop (Ctrl-C, or its callback raised).
    Cancelled,
    /// Arguments the engine cannot act on (e.g. more than 10,000 parts).
    InvalidInput(String),
    /// A ranged GET kept failing after `num_download_attempts` tries (boto3's
    /// RetriesExceededError); holds the last error.
    RetriesExceeded(Box<TransferError>),
    /// Something that should not happen: a response without a field S3 always sends, a worker
    /// task that died.
    Internal(String),
}

impl TransferError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        TransferError::Io {
            path: path.into(),
            source,
        }
    }

    /// Converts an SDK error of one operation. `endpoint` names the server in connection errors,
    /// as botocore's `EndpointConnectionError` does.
    pub fn from_sdk<E: ProvideErrorMetadata + std::fmt::Debug>(
        operation: &'static str,
        endpoint: &str,
        err: SdkError<E, HttpResponse>,
    ) -> Self {
        let endpoint = endpoint.to_owned();
        match err {
            SdkError::ServiceError(context) => {
                let status = context.raw().status().as_u16();
                let request_id = context
                    .raw()
                    .headers()
                    .get("x-amz-request-id")
                    .map(str::to_owned);
                let service_error = context.err();
                // botocore reports an error without a body (every HEAD error) by its status:
                // code "404", message "Not Found". Callers match on exactly that.
                let (code, message) = match (operation, service_error.code()) {
                    ("HeadObject", _) | (_, None) => (
                        status.to_string(),
                        http::StatusCode::from_u16(status)
                            .ok()
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("")
                            .to_owned(),
                    ),
                    (_, Some(code)) => (
                        code.to_owned(),
                        service_error.message().unwrap_or("").to_owned(),
                    ),
                };
                TransferError::Service {
                    operation,
                    status,
                    code,
                    message,
                    request_id,
                }
            }
            SdkError::TimeoutError(_) => TransferError::Timeout {
                endpoint,
                detail: "operation timed out".to_owned(),
            },
            SdkError::DispatchFailure(failure) => {
                let connector_error = failure.as_connector_error();
                let detail = format!("{connector_error:?}");
                if failure.is_timeout() {
                    TransferError::Timeout { endpoint, detail }
                } else if connector_error.is_some_and(|e| caused_by_tls(e)) {
                    TransferError::Tls { endpoint, detail }
                } else {
                    TransferError::Connection { endpoint, detail }
                }
            }
            SdkError::ResponseError(context) => TransferError::Connection {
                endpoint,
                detail: format!("{context:?}"),
            },
            // The SDK could not build the request: retrying cannot help.
            other => TransferError::InvalidInput(format!("{other:?}")),
        }
    }

    /// Whether a fresh attempt of the same request may succeed: broken connections and
    /// timeouts, not answers from the server.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TransferError::Connection { .. } | TransferError::Timeout { .. }
        )
    }
}

/// Whether rustls refused the connection somewhere down `error`'s chain of causes (io::Error
/// hides its inner error from `source()`, so it is opened explicitly).
fn caused_by_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        let inner = error
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref());
        if error.is::<rustls::Error>() || inner.is_some_and(|inner| caused_by_tls(inner)) {
            return true;
        }
        cause = error.source();
    }
    false
}

/// An error while streaming a response body: the connection broke after the headers.
pub fn body_error(endpoint: &str, err: impl std::fmt::Display) -> TransferError {
    TransferError::Connection {
        endpoint: endpoint.to_owned(),
        detail: format!("response body interrupted: {err}"),
    }
}
