//! Transfer options, shared by uploads and downloads; and the extra headers of uploads.

use std::sync::Arc;

use aws_sdk_s3::client::customize::CustomizableOperation;

use crate::errors::TransferError;

/// The TransferConfig values the engine acts on, already resolved by the Python layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferOptions {
    pub multipart_threshold: u64,
    pub multipart_chunksize: u64,
    pub max_concurrency: usize,
    pub num_download_attempts: u32,
    /// `TransferConfig.max_bandwidth`, in bytes per second.
    pub max_bandwidth: Option<u64>,
}

/// Extra request headers, checked once when built so that adding them to a request cannot
/// fail.
#[derive(Debug, Clone, Default)]
pub struct Headers(Arc<[(String, String)]>);

impl Headers {
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, TransferError> {
        for (name, value) in &pairs {
            http::HeaderName::try_from(name.as_str()).map_err(|_| {
                TransferError::InvalidInput(format!("invalid header name {name:?}"))
            })?;
            http::HeaderValue::try_from(value.as_str()).map_err(|_| {
                TransferError::InvalidInput(format!("invalid value for header {name}: {value:?}"))
            })?;
        }
        Ok(Self(pairs.into()))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// These headers and `name: value`, unless a header of that name is already here.
    pub fn with_default(&self, name: &str, value: &str) -> Result<Self, TransferError> {
        if self.contains(name) {
            return Ok(self.clone());
        }
        let mut pairs = self.0.to_vec();
        pairs.push((name.to_owned(), value.to_owned()));
        Self::new(pairs)
    }
}

/// Adds `headers` to the request before it is signed.
pub fn with_headers<T, E, B>(
    operation: CustomizableOperation<T, E, B>,
    headers: &Headers,
) -> CustomizableOperation<T, E, B> {
    if headers.0.is_empty() {
        return operation;
    }
    let headers = headers.clone();
    operation.mutate_request(move |request| {
        for (name, value) in headers.0.iter() {
            let value = match request.headers().get("content-encoding") {
                // The SDK's aws-chunked encoding of the body (a checksum in a trailer) goes
                // after the user's, as botocore writes it: "gzip,aws-chunked".
                Some(sdk) if name.eq_ignore_ascii_case("content-encoding") => {
                    format!("{value},{sdk}")
                }
                _ => value.clone(),
            };
            // Validated in `Headers::new`.
            let _ = request.headers_mut().try_insert(name.clone(), value);
        }
    })
}
