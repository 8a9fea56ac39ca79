//! The engine's one error type. It knows nothing of Python: `python.rs` turns each variant into
//! the exception boto3 would raise for the same failure.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{BoxError, SdkError};
use aws_sdk_s3::operation::create_session::CreateSessionError;

use crate::error_body::{self, ErrorField};
use crate::http_client::BodyReadTimedOut;
use crate::own_http::{HandshakeBrokenOff, TcpConnectTimedOut};
use crate::proxy::{ProxyUnreachable, TunnelUnanswered};
use crate::retries;

pub type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

#[derive(Debug)]
pub enum TransferError {
    /// S3 answered with an error status: becomes botocore's `ClientError`. (Boxed: it is far
    /// larger than the other variants.)
    Service(Box<ServiceError>),
    /// The endpoint could not be reached (botocore's `EndpointConnectionError`).
    Connection { endpoint: String, detail: String },
    /// The proxy could not be reached or refused the request (botocore's
    /// `ProxyConnectionError`, which names the proxy).
    ProxyConnection { proxy_url: String, detail: String },
    /// The connection closed before a response came (botocore's `ConnectionClosedError`).
    ConnectionClosed { endpoint: String, detail: String },
    /// The connection broke while a response body was read (botocore's
    /// `ResponseStreamingError`): what s3transfer retries a ranged GET for.
    BodyInterrupted { endpoint: String, detail: String },
    /// A response body did not match its checksum (botocore's `FlexibleChecksumError`).
    ChecksumMismatch(String),
    /// The server's TLS certificate was not trusted (botocore's `SSLError`).
    Tls { endpoint: String, detail: String },
    /// A read timeout (botocore's `ReadTimeoutError`).
    Timeout { endpoint: String, detail: String },
    /// A TLS handshake (or a proxy's tunnel) that took longer than the connect timeout:
    /// botocore's `ReadTimeoutError` too, but the request never reached the server.
    HandshakeTimeout { endpoint: String, detail: String },
    /// No TCP connection within the connect timeout (botocore's `ConnectTimeoutError`, which
    /// s3transfer does not try again).
    ConnectTimeout { endpoint: String, detail: String },
    /// A local file could not be read or written. `paths` are the names Python's OSError
    /// gives: one, none for a failed write (as Python's own write raises it), both of a rename.
    Io {
        paths: Vec<PathBuf>,
        source: io::Error,
    },
    /// The caller asked to stop (Ctrl-C, or its callback raised).
    Cancelled,
    /// Arguments the engine cannot act on (e.g. more than 10,000 parts).
    InvalidInput(String),
    /// A ranged GET answered with another range than the one asked for (s3transfer's
    /// `S3ValidationError`).
    WrongRange(String),
    /// A ranged GET kept failing after `num_download_attempts` tries (boto3's
    /// RetriesExceededError); holds the last error.
    RetriesExceeded(Box<TransferError>),
    /// Something that should not happen: a response without a field S3 always sends, a worker
    /// task that died.
    Internal(String),
}

/// An error status and what botocore reports of it.
#[derive(Debug)]
pub struct ServiceError {
    pub operation: &'static str,
    pub status: u16,
    /// The error's code, "" if its body has none.
    pub code: String,
    /// botocore's `Error` dict: every field of the body (a missing `Message` stays missing,
    /// and botocore's exception text then says "Unknown"), or the status's code and reason.
    pub error: Vec<(String, ErrorField)>,
    /// Keys botocore puts beside `Error` in the response (from a body other than S3's).
    pub response_keys: Vec<(String, ErrorField)>,
    /// The response's headers, names in lower case (botocore's `HTTPHeaders`).
    pub headers: Vec<(String, String)>,
    /// Where botocore's `ResponseMetadata` takes `RequestId` and `HostId` from.
    pub ids: RequestIds,
    /// Requests sent for the operation, less one (botocore's `RetryAttempts`).
    pub retry_attempts: u32,
    /// No attempts were left (botocore's `MaxAttemptsReached`, "reached max retries" in
    /// its message).
    pub max_attempts_reached: bool,
    /// Attempts were left, but not the client's retry quota (botocore's `RetryQuotaReached`).
    pub retry_quota_reached: bool,
}

/// Where botocore's `ResponseMetadata` takes an error's `RequestId` and `HostId` from.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestIds {
    /// Told by the status alone (no body, every HEAD): the headers, "" when missing.
    FromHeadersOrEmpty,
    /// S3's `<Error>` body: the headers, if there.
    FromHeaders,
    /// A generic 5xx (no ids), or another service's body: its own `<RequestId>` alone.
    Only(Option<String>),
}

/// botocore's `Error` of a response told by its status alone: code "404", message "Not Found".
fn status_error(status: u16) -> Vec<(String, ErrorField)> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    vec![
        (
            "Code".to_owned(),
            ErrorField::Text(Some(status.to_string())),
        ),
        (
            "Message".to_owned(),
            ErrorField::Text(Some(reason.to_owned())),
        ),
    ]
}

impl ServiceError {
    /// The error as botocore reports the same status to a HeadObject, whose response has no
    /// body: told by its status.
    pub fn into_head_object(mut self) -> Self {
        self.operation = "HeadObject";
        self.error = status_error(self.status);
        self.code = self.status.to_string();
        self.response_keys.clear();
        // botocore's generic error for a 5xx: no ids.
        self.ids = match self.status {
            500.. => RequestIds::Only(None),
            _ => RequestIds::FromHeadersOrEmpty,
        };
        self
    }
}

impl TransferError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        TransferError::Io {
            paths: vec![path.into()],
            source,
        }
    }

    /// A failed write to an open file, which Python reports without a file name.
    pub fn io_write(source: io::Error) -> Self {
        TransferError::Io {
            paths: Vec::new(),
            source,
        }
    }

    /// A failed rename of `from` to `to`, which Python reports with both names.
    pub fn io_rename(from: impl Into<PathBuf>, to: impl Into<PathBuf>, source: io::Error) -> Self {
        TransferError::Io {
            paths: vec![from.into(), to.into()],
            source,
        }
    }

    /// Converts an SDK error of one operation, whose requests `trace` followed. Connection
    /// errors name the URL of its last request (or `endpoint`), as botocore's
    /// `EndpointConnectionError` does.
    fn from_sdk<E: std::error::Error + 'static>(
        operation: &'static str,
        endpoint: &str,
        trace: &RequestTrace,
        err: SdkError<E, HttpResponse>,
    ) -> Self {
        // S3 Express's session credentials come from a CreateSession call the SDK makes
        // itself: botocore reports a refusal of it as that operation's error.
        if let Some(SdkError::ServiceError(refusal)) =
            find_cause::<SdkError<CreateSessionError, HttpResponse>>(&err)
        {
            return Self::service_error("CreateSession", refusal.raw(), false, trace);
        }
        let endpoint = trace.url_or(endpoint);
        let body_timed_out = find_cause::<BodyReadTimedOut>(&err).is_some();
        match err {
            SdkError::ServiceError(context) => {
                Self::service_error(operation, context.raw(), false, trace)
            }
            SdkError::TimeoutError(_) => TransferError::Timeout {
                endpoint,
                detail: "operation timed out".to_owned(),
            },
            SdkError::DispatchFailure(failure) => {
                let connector_error = failure.as_connector_error();
                let detail = format!("{connector_error:?}");
                let tls_error = connector_error.and_then(|e| find_cause::<rustls::Error>(e));
                let connecting = connector_error.is_some_and(|e| {
                    find_cause::<hyper_util::client::legacy::Error>(e)
                        .is_some_and(|e| e.is_connect())
                });
                // Our client says when the TCP connect timed out; any other timeout while
                // connecting is a proxy's tunnel or the TLS handshake (see own_http::Connect).
                let tcp_timed_out =
                    connector_error.is_some_and(|e| find_cause::<TcpConnectTimedOut>(e).is_some());
                if let Some(proxy) = connector_error.and_then(|e| find_cause::<ProxyUnreachable>(e))
                {
                    TransferError::ProxyConnection {
                        proxy_url: proxy.url.clone(),
                        detail: proxy.to_string(),
                    }
                } else if connector_error
                    .is_some_and(|e| find_cause::<TunnelUnanswered>(e).is_some())
                {
                    TransferError::ConnectionClosed { endpoint, detail }
                } else if failure.is_timeout() && tcp_timed_out {
                    TransferError::ConnectTimeout { endpoint, detail }
                } else if failure.is_timeout() && connecting {
                    TransferError::HandshakeTimeout { endpoint, detail }
                } else if failure.is_timeout() {
                    TransferError::Timeout { endpoint, detail }
                } else if let Some(broken_off) =
                    connector_error.and_then(|e| find_cause::<HandshakeBrokenOff>(e))
                {
                    let detail = broken_off.to_string();
                    match broken_off {
                        HandshakeBrokenOff::Closed => TransferError::Tls { endpoint, detail },
                        HandshakeBrokenOff::Reset => {
                            TransferError::ConnectionClosed { endpoint, detail }
                        }
                    }
                } else if let Some(tls_error) = tls_error {
                    // In botocore's message ("SSL validation failed for <url> <error>"): what
                    // TLS said, not the layers of connectors around it.
                    let detail = tls_detail(tls_error);
                    TransferError::Tls { endpoint, detail }
                } else if connector_error.is_some_and(|e| {
                    find_cause::<hyper_util::client::legacy::Error>(e)
                        .is_some_and(|e| !e.is_connect())
                }) {
                    TransferError::ConnectionClosed { endpoint, detail }
                } else {
                    TransferError::Connection { endpoint, detail }
                }
            }
            SdkError::ResponseError(_) if body_timed_out => TransferError::read_timeout(&endpoint),
            // An answer whose body was cut short: botocore reads what came as the whole body
            // (urllib3 does not hold it to its Content-Length), and that as S3's answer.
            SdkError::ResponseError(context)
                if retries::is_answer_when_cut_short(context.raw().headers()) =>
            {
                Self::service_error(operation, context.raw(), true, trace)
            }
            SdkError::ResponseError(context) => TransferError::ConnectionClosed {
                endpoint,
                detail: format!("{context:?}"),
            },
            // The SDK could not build the request: retrying cannot help.
            other => TransferError::InvalidInput(format!("{other:?}")),
        }
    }

    /// S3's error answer to one operation, whose requests `trace` followed (botocore's
    /// `ClientError`). An answer `cut_short` has a body the SDK did not keep, which botocore
    /// could not have parsed either: an error of its status (a 200's is a 500, see
    /// `retries::botocore_status`).
    fn service_error(
        operation: &'static str,
        raw: &HttpResponse,
        cut_short: bool,
        trace: &RequestTrace,
    ) -> Self {
        let status = retries::botocore_status(raw.status().as_u16());
        let headers = raw
            .headers()
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect();
        let body = raw.body().bytes().unwrap_or_default();
        // botocore's reading of a 5xx with no body, or an HTML page, as a generic error.
        let trimmed = body.trim_ascii();
        let generic = status >= 500
            && !cut_short
            && (operation == "HeadObject" || trimmed.is_empty() || trimmed.starts_with(b"<html>"));
        // botocore reports an error without a body (every HEAD error) by its status:
        // code "404", message "Not Found". Callers match on exactly that.
        let read_body = match (operation, generic) {
            ("HeadObject", _) | (_, true) => None,
            _ => error_body::read(body),
        };
        let (error, mut response_keys, ids) = match read_body {
            Some(read) if read.is_s3_error => {
                (read.error, read.response_keys, RequestIds::FromHeaders)
            }
            Some(mut read) => {
                let request_id = match error_body::take(&mut read.response_keys, "RequestId") {
                    Some(ErrorField::Text(id)) => id,
                    _ => None,
                };
                (read.error, read.response_keys, RequestIds::Only(request_id))
            }
            None => {
                let ids = match generic {
                    true => RequestIds::Only(None),
                    false => RequestIds::FromHeadersOrEmpty,
                };
                (status_error(status), Vec::new(), ids)
            }
        };
        // botocore sets these itself, whatever the body says.
        response_keys.retain(|(name, _)| name != "Error" && name != "ResponseMetadata");
        let code = error_body::text(&error, "Code").unwrap_or("").to_owned();
        let attempts = trace.attempts.load(Ordering::Relaxed).max(1);
        let max_attempts_reached = attempts >= trace.max_attempts
            && retries::reports_max_attempts(trace.legacy_retries, status, &code);
        let retry_quota_reached = attempts < trace.max_attempts
            && retries::reports_quota_reached(trace.legacy_retries, status, &code);
        TransferError::Service(Box::new(ServiceError {
            operation,
            status,
            code,
            error,
            response_keys,
            headers,
            ids,
            retry_attempts: attempts - 1,
            max_attempts_reached,
            retry_quota_reached,
        }))
    }

    /// A body that does not match its checksum, in botocore's words (`FlexibleChecksumError`;
    /// the checksums in base64).
    pub fn checksum_mismatch(expected: &str, calculated: &str) -> Self {
        TransferError::ChecksumMismatch(format!(
            "Expected checksum {expected} did not match calculated checksum: {calculated}"
        ))
    }

    /// No bytes of a response body for the read timeout (botocore's `ReadTimeoutError`).
    pub fn read_timeout(endpoint: &str) -> Self {
        TransferError::Timeout {
            endpoint: endpoint.to_owned(),
            detail: "Read timed out.".to_owned(),
        }
    }

    /// Whether s3transfer would try a ranged GET again after this: a body that broke off or a
    /// read timeout (botocore's, which a stalled TLS handshake is too). Failures to send the
    /// request have had the SDK's retries already.
    pub fn is_retried_download_error(&self) -> bool {
        matches!(
            self,
            TransferError::BodyInterrupted { .. }
                | TransferError::Timeout { .. }
                | TransferError::HandshakeTimeout { .. }
        )
    }
}

/// What TLS said of a failed handshake. A server certificate that is refused is told in
/// OpenSSL's words first, as Python's ssl module puts them in botocore's SSLError (scripts look
/// for `CERTIFICATE_VERIFY_FAILED`), then in rustls's.
fn tls_detail(error: &rustls::Error) -> String {
    use rustls::CertificateError::*;
    let rustls::Error::InvalidCertificate(refusal) = error else {
        return error.to_string();
    };
    let reason = match refusal {
        Expired | ExpiredContext { .. } => "certificate has expired".to_owned(),
        NotValidYet | NotValidYetContext { .. } => "certificate is not yet valid".to_owned(),
        UnknownIssuer => "unable to get local issuer certificate".to_owned(),
        BadSignature => "certificate signature failure".to_owned(),
        Revoked => "certificate revoked".to_owned(),
        NotValidForNameContext { expected, .. } => {
            let host = expected.to_str();
            format!("Hostname mismatch, certificate is not valid for '{host}'.")
        }
        NotValidForName => "Hostname mismatch".to_owned(),
        _ => return error.to_string(),
    };
    format!("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {reason} ({error})")
}

/// The first error of type `T` down `error`'s chain of causes (io::Error hides its inner error
/// from `source()`, so it is opened explicitly).
pub fn find_cause<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        let inner = error
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(found) = inner.and_then(|inner| find_cause::<T>(inner)) {
            return Some(found);
        }
        cause = error.source();
    }
    None
}

/// An error while streaming a response body: a checksum that did not match, or the
/// connection breaking after the headers.
pub fn body_error(endpoint: &str, error: &(dyn std::error::Error + 'static)) -> TransferError {
    if find_cause::<BodyReadTimedOut>(error).is_some() {
        return TransferError::read_timeout(endpoint);
    }
    if let Some(aws_smithy_checksums::body::validate::Error::ChecksumMismatch {
        expected,
        actual,
    }) = find_cause::<aws_smithy_checksums::body::validate::Error>(error)
    {
        return TransferError::checksum_mismatch(
            &aws_smithy_types::base64::encode(expected),
            &aws_smithy_types::base64::encode(actual),
        );
    }
    body_cut_short(endpoint, error)
}

/// A response body that ended or went on other than its headers said.
pub fn body_cut_short(endpoint: &str, what: impl std::fmt::Display) -> TransferError {
    TransferError::BodyInterrupted {
        endpoint: endpoint.to_owned(),
        detail: format!("response body interrupted: {what}"),
    }
}

/// What botocore reports of an operation's requests and the SDK keeps to itself: the URL of
/// the last one, which botocore names in its connection errors (`Could not connect to the
/// endpoint URL: "http://host/bucket/key?uploads"`, without the `x-id` query parameter the SDK
/// adds), and how many were sent. An interceptor of the operation notes both as the SDK sends.
#[derive(Debug, Clone)]
pub struct RequestTrace {
    url: Arc<Mutex<Option<String>>>,
    attempts: Arc<AtomicU32>,
    /// The client's max attempts, which the operation's attempts are counted against.
    max_attempts: u32,
    /// Whether the client retries as botocore's legacy mode.
    legacy_retries: bool,
}

impl RequestTrace {
    pub fn new(client: &aws_sdk_s3::Client) -> Self {
        Self {
            url: Arc::default(),
            attempts: Arc::default(),
            max_attempts: retries::max_attempts(client.config()),
            legacy_retries: retries::is_legacy(client.config()),
        }
    }

    /// The attempts the client's max attempts leave the operation.
    pub fn attempts_left(&self) -> u32 {
        self.max_attempts
            .saturating_sub(self.attempts.load(Ordering::Relaxed))
    }

    /// The URL of the last request sent, or `endpoint` if none was.
    pub fn url_or(&self, endpoint: &str) -> String {
        let url = self.url.lock().unwrap_or_else(|p| p.into_inner());
        url.clone().unwrap_or_else(|| endpoint.to_owned())
    }

    /// The error of the traced operation (see `TransferError::from_sdk`).
    pub fn error<E: std::error::Error + 'static>(
        &self,
        operation: &'static str,
        endpoint: &str,
        err: SdkError<E, HttpResponse>,
    ) -> TransferError {
        TransferError::from_sdk(operation, endpoint, self, err)
    }
}

impl Intercept for RequestTrace {
    fn name(&self) -> &'static str {
        "s3turbo::RequestTrace"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let url = without_sdk_query(context.request().uri());
        *self.url.lock().unwrap_or_else(|p| p.into_inner()) = Some(url);
        self.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// `url` without its `x-id=...` query parameter, and its other parameters in the order
/// botocore writes them: the order s3transfer passes them in, which puts an UploadPart's
/// `uploadId` before its `partNumber` (the SDK writes them the other way round).
fn without_sdk_query(url: &str) -> String {
    let Some((path, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let mut kept: Vec<&str> = query
        .split('&')
        .filter(|parameter| !parameter.starts_with("x-id="))
        .collect();
    kept.sort_by_key(|parameter| !parameter.starts_with("uploadId="));
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_certificates_are_told_in_openssls_words_first() {
        let expected = rustls_pki_types::ServerName::try_from("s3.example.com").expect("a name");
        let refused = |refusal| tls_detail(&rustls::Error::InvalidCertificate(refusal));
        assert_eq!(
            refused(rustls::CertificateError::UnknownIssuer),
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local \
             issuer certificate (invalid peer certificate: UnknownIssuer)"
        );
        let mismatch = refused(rustls::CertificateError::NotValidForNameContext {
            expected,
            presented: vec!["other.example.com".to_owned()],
        });
        assert!(mismatch.starts_with(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, \
             certificate is not valid for 's3.example.com'. (invalid peer certificate: "
        ));
        // Not about the certificate: rustls's words alone.
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        assert_eq!(tls_detail(&alert), alert.to_string());
    }

    #[test]
    fn urls_are_named_as_botocore_names_them() {
        let cases = [
            ("http://h:1/b/k?x-id=PutObject", "http://h:1/b/k"),
            (
                "http://h:1/b/k?uploads&x-id=CreateMultipartUpload",
                "http://h:1/b/k?uploads",
            ),
            (
                "http://h:1/b/k?x-id=UploadPart&partNumber=2&uploadId=u",
                "http://h:1/b/k?uploadId=u&partNumber=2",
            ),
            (
                "https://b.s3.eu-west-1.amazonaws.com/a%20b",
                "https://b.s3.eu-west-1.amazonaws.com/a%20b",
            ),
        ];
        for (sent, named) in cases {
            assert_eq!(without_sdk_query(sent), named);
        }
    }
}
