//! botocore's S3 region redirect. A request signed for another region than its bucket's gets
//! S3's `PermanentRedirect` (301) or `AuthorizationHeaderMalformed` (400, naming the region);
//! botocore then learns the bucket's region (from the error's `x-amz-bucket-region` header,
//! the `Region` of its body, or else a HeadBucket), sends the request again once in that
//! region, and sends the bucket's later requests there at once. So does the engine, with a
//! per-operation region override: the SDK resolves the endpoint and signs for that region.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{LazyLock, Mutex};

use aws_sdk_s3::client::customize::CustomizableOperation;
use aws_sdk_s3::config::{Builder, Region};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::Client;

use crate::error_body;
use crate::errors::{RequestTrace, ServiceError, TransferError};
use crate::retries;

/// The regions learned, by endpoint (as `ConnectionSettings::endpoint_label` names it) and
/// bucket.
static REGIONS: LazyLock<Mutex<HashMap<(String, String), Region>>> = LazyLock::new(Mutex::default);

/// How many learned regions are kept before all are forgotten (and learned again as needed):
/// the map grows only with the buckets a program uses, but a long-lived process may use many.
const MAX_REGIONS: usize = 4096;

/// The requests of one operation to one bucket.
pub struct BucketRegion<'a> {
    client: &'a Client,
    endpoint: &'a str,
    bucket: &'a str,
}

impl<'a> BucketRegion<'a> {
    pub fn new(client: &'a Client, endpoint: &'a str, bucket: &'a str) -> Self {
        Self {
            client,
            endpoint,
            bucket,
        }
    }

    /// The bucket's region if a redirect taught it (else the client's region holds).
    pub fn known(&self) -> Option<Region> {
        let regions = REGIONS.lock().unwrap_or_else(|p| p.into_inner());
        if regions.is_empty() {
            return None; // the usual case: no key to make
        }
        regions.get(&self.key()).cloned()
    }

    /// The settings that send a request to the bucket's region, if a redirect taught it.
    pub fn settings(&self) -> Option<Builder> {
        self.known().map(|region| Builder::default().region(region))
    }

    /// `send(settings)` with the bucket's `settings()`, and once more in the bucket's region
    /// if S3 answers that the bucket is in another one. As in botocore, the redirected request
    /// is one of the operation's attempts (`trace` counts them), and always goes out.
    pub async fn send<T, F, Fut>(&self, trace: &RequestTrace, send: F) -> Result<T, TransferError>
    where
        F: Fn(Option<Builder>) -> Fut,
        Fut: Future<Output = Result<T, TransferError>>,
    {
        let signed_for = self.known();
        let result = send(
            signed_for
                .clone()
                .map(|region| Builder::default().region(region)),
        )
        .await;
        let Err(error) = &result else {
            return result;
        };
        let Some(region) = self.redirect(error, signed_for).await else {
            return result;
        };
        let retries = retries::with_attempts(self.client.config(), trace.attempts_left().max(1));
        send(Some(
            Builder::default().region(region).retry_config(retries),
        ))
        .await
    }

    /// The region to send again in, if `error` is S3 saying the bucket is in another region
    /// than `signed_for` (the client's when `None`); it is remembered for the bucket.
    pub async fn redirect(
        &self,
        error: &TransferError,
        signed_for: Option<Region>,
    ) -> Option<Region> {
        let TransferError::Service(refused) = error else {
            return None;
        };
        let ServiceError {
            operation,
            status,
            code,
            headers,
            error: fields,
            ..
        } = refused.as_ref();
        let body_region = error_body::text(fields, "Region");
        // botocore does not redirect an access point's requests.
        if self.bucket.starts_with("arn:") {
            return None;
        }
        let redirected = matches!(status, 301 | 302 | 307)
            || matches!(
                code.as_str(),
                "PermanentRedirect" | "IllegalLocationConstraintException"
            )
            || (code == "AuthorizationHeaderMalformed" && body_region.is_some())
            // A HEAD signed for the wrong region gets a bare 400.
            || (*status == 400 && *operation == "HeadObject");
        if !redirected {
            return None;
        }
        let header = headers
            .iter()
            .find(|(name, _)| name == "x-amz-bucket-region")
            .map(|(_, value)| value.clone());
        let region = match header.or_else(|| body_region.map(str::to_owned)) {
            Some(region) => Some(region),
            None => self.head_bucket_region().await,
        }
        .filter(|region| is_region_name(region))
        .map(Region::new)?;
        let current = signed_for.or_else(|| self.client.config().region().cloned());
        if current.as_ref() == Some(&region) {
            return None;
        }
        let mut regions = REGIONS.lock().unwrap_or_else(|p| p.into_inner());
        if regions.len() >= MAX_REGIONS {
            regions.clear();
        }
        regions.insert(self.key(), region.clone());
        Some(region)
    }

    /// The bucket's region as S3 tells it in answer to a HeadBucket, even a refused one.
    async fn head_bucket_region(&self) -> Option<String> {
        match self.client.head_bucket().bucket(self.bucket).send().await {
            Ok(output) => output.bucket_region,
            Err(SdkError::ServiceError(context)) => context
                .raw()
                .headers()
                .get("x-amz-bucket-region")
                .map(str::to_owned),
            Err(_) => None,
        }
    }

    fn key(&self) -> (String, String) {
        (self.endpoint.to_owned(), self.bucket.to_owned())
    }
}

/// `operation` with `settings` (from `BucketRegion`), if any.
pub fn with_settings<T, E, B>(
    operation: CustomizableOperation<T, E, B>,
    settings: Option<Builder>,
) -> CustomizableOperation<T, E, B> {
    match settings {
        Some(settings) => operation.config_override(settings),
        None => operation,
    }
}

/// botocore's check of a region name before it redirects (letters, digits and dashes).
fn is_region_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_as_botocore_checks_them() {
        assert!(is_region_name("eu-west-2"));
        assert!(!is_region_name("eu-west-2.evil.com"));
        assert!(!is_region_name(""));
    }
}
