//! Which failed requests are sent again, and how the last failure is reported, as botocore's
//! retry modes have it. The SDK's standard retry strategy does the waiting and counting; a
//! classifier of ours decides every S3 answer by the mode's rules, where the SDK's would
//! decide otherwise (failures without an answer, timeouts and broken connections, the SDK's
//! classifiers keep: botocore retries them in every mode).

use aws_sdk_s3::config::interceptors::InterceptorContext;
use std::time::SystemTime;

use aws_sdk_s3::config::retry::{
    ClassifyRetry, ClientRateLimiter, RetryAction, RetryConfig, RetryPartition, TokenBucket,
};
use aws_smithy_runtime_api::client::retries::classifiers::{
    RetryClassifierPriority, SharedRetryClassifier,
};
use aws_smithy_types::retry::RetrySpec;

use crate::error_body;
use crate::errors::find_cause;
use crate::http_client::BodyReadTimedOut;

/// botocore's `retries["mode"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryMode {
    /// The retries of botocore's `_retry.json`: botocore's default before 1.44.
    Legacy,
    Standard,
    /// Standard, with client-side rate limiting.
    Adaptive,
}

impl RetryMode {
    pub fn from_botocore(mode: &str) -> Self {
        match mode {
            "legacy" => RetryMode::Legacy,
            "adaptive" => RetryMode::Adaptive,
            _ => RetryMode::Standard,
        }
    }

    /// The SDK's retry settings for this mode. `retry_behavior_2_1` is botocore's
    /// `NEW_RETRIES_ENABLED` for the standard and adaptive modes: a transient error is retried
    /// after up to 50 ms × 2^i, where a throttling error waits up to 1 s × 2^i (legacy mode
    /// waits up to 1 s × 2^i for both, as the SDK's standard mode does by default).
    pub fn retry_config(self, max_attempts: u32, retry_behavior_2_1: bool) -> RetryConfig {
        let config = match self {
            RetryMode::Adaptive => RetryConfig::adaptive(),
            RetryMode::Standard | RetryMode::Legacy => RetryConfig::standard(),
        }
        .with_max_attempts(max_attempts.max(1));
        // The SDK's own switch to Retry Behavior 2.1 (aws-config sets it the same way, when
        // AWS_NEW_RETRIES_2026 says so).
        match retry_behavior_2_1 && self != RetryMode::Legacy {
            true => config.with_retry_spec(RetrySpec::v2_1()),
            false => config,
        }
    }

    /// The retry quota of a client. botocore keeps one per client, of 500, that a retry takes 14
    /// of (a throttling error's 5) and a success gives back; its legacy mode has none. The SDK
    /// would share one quota among all clients of a region.
    pub fn retry_partition(self) -> RetryPartition {
        let quota = match self {
            RetryMode::Legacy => TokenBucket::unlimited(),
            RetryMode::Standard | RetryMode::Adaptive => TokenBucket::builder()
                .retry_cost(14)
                .timeout_retry_cost(14)
                .throttling_retry_cost(5)
                .build(),
        };
        // Adaptive mode's rate limiter, as the SDK starts its own: from now, at the lowest rate.
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        RetryPartition::custom("s3turbo")
            .token_bucket(quota)
            .client_rate_limiter(ClientRateLimiter::new(now))
            .build()
    }

    /// The classifier the SDK's client takes for this mode, besides its own.
    pub fn classifier(self) -> SharedRetryClassifier {
        SharedRetryClassifier::new(BotocoreRetries { mode: self })
    }
}

/// The attempts the SDK client `config` makes of a request (at least one).
pub fn max_attempts(config: &aws_sdk_s3::Config) -> u32 {
    config.retry_config().map_or(1, |r| r.max_attempts()).max(1)
}

/// The client `config`'s retries for a request that may make `attempts` attempts in all (set
/// on the request's config override).
pub fn with_attempts(config: &aws_sdk_s3::Config, attempts: u32) -> RetryConfig {
    config
        .retry_config()
        .cloned()
        .unwrap_or_else(RetryConfig::standard)
        .with_max_attempts(attempts)
}

/// Whether the SDK client `config` retries as botocore's legacy mode.
pub fn is_legacy(config: &aws_sdk_s3::Config) -> bool {
    config
        .retry_classifiers()
        .any(|classifier| classifier.name() == LEGACY_CLASSIFIER)
}

const LEGACY_CLASSIFIER: &str = "s3turbo::LegacyRetries";

/// Decides every S3 answer to an attempt by botocore's rules for `mode`.
#[derive(Debug)]
struct BotocoreRetries {
    mode: RetryMode,
}

impl ClassifyRetry for BotocoreRetries {
    fn classify_retry(&self, context: &InterceptorContext) -> RetryAction {
        let Some((status, code)) = s3_answer(context) else {
            return RetryAction::NoActionIndicated;
        };
        botocore_retry(self.mode, status, &code).unwrap_or(RetryAction::RetryForbidden)
    }

    fn name(&self) -> &'static str {
        match self.mode {
            RetryMode::Legacy => LEGACY_CLASSIFIER,
            RetryMode::Standard | RetryMode::Adaptive => "s3turbo::StandardRetries",
        }
    }

    /// After the SDK's classifiers, so that its decision is the one that holds.
    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// The status and error code botocore reads off S3's answer to an attempt, if S3 answered
/// with an error: an error in a 200 answer (CompleteMultipartUpload's, say) is a 500. An answer
/// whose body was cut short is S3's answer too, with no code (see `is_answer_when_cut_short`).
fn s3_answer(context: &InterceptorContext) -> Option<(u16, String)> {
    let response = context.response()?;
    let error = match context.output_or_error()? {
        Ok(_) => return None,
        Err(error) => error,
    };
    // A body that stopped coming is botocore's read timeout, which the SDK retries as any
    // failed read of a response.
    if find_cause::<BodyReadTimedOut>(error).is_some() {
        return None;
    }
    let status = botocore_status(response.status().as_u16());
    if error.is_response_error() && is_answer_when_cut_short(response.headers()) {
        return Some((status, String::new()));
    }
    if !error.is_operation_error() {
        return None;
    }
    let body = error_body::read(response.body().bytes().unwrap_or_default());
    let code = body
        .as_ref()
        .and_then(|body| error_body::text(&body.error, "Code"))
        .unwrap_or("");
    Some((status, code.to_owned()))
}

/// Whether botocore takes an answer whose body was cut short for S3's answer: it does when the
/// body has a Content-Length, which urllib3 does not hold it to; a chunked body that ends early
/// is a broken connection to urllib3 (botocore's ConnectionClosedError, retried).
pub fn is_answer_when_cut_short(headers: &aws_smithy_runtime_api::http::Headers) -> bool {
    !headers
        .get("transfer-encoding")
        .is_some_and(|coding| coding.to_ascii_lowercase().contains("chunked"))
}

/// How botocore retries an error answer of `status` with error `code` in `mode`, if it does.
fn botocore_retry(mode: RetryMode, status: u16, code: &str) -> Option<RetryAction> {
    match mode {
        RetryMode::Legacy => legacy_retry(status, code),
        RetryMode::Standard | RetryMode::Adaptive => standard_retry(status, code),
    }
}

/// botocore's standard mode (retries/standard.py): the throttling codes at any status, a 429
/// (which no S3 operation models), and the transient statuses and codes. The SDK would also
/// retry an `InternalError` at any status, and knew a 429 only by its code.
fn standard_retry(status: u16, code: &str) -> Option<RetryAction> {
    const THROTTLING_CODES: [&str; 14] = [
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    ];
    match (status, code) {
        (_, code) if THROTTLING_CODES.contains(&code) => Some(RetryAction::throttling_error()),
        (429, _) => Some(RetryAction::throttling_error()),
        (500 | 502 | 503 | 504, _) => Some(RetryAction::server_error()),
        (_, "RequestTimeout" | "RequestTimeoutException") => Some(RetryAction::transient_error()),
        _ => None,
    }
}

/// botocore's legacy mode: the policies of its `_retry.json` for S3, which retry S3's
/// `400 BadDigest` and any 509, and not a code the standard mode knows as throttling or
/// transient under another status (`400 SlowDown`).
fn legacy_retry(status: u16, code: &str) -> Option<RetryAction> {
    const THROTTLING_CODES: [&str; 5] = [
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
    ];
    match (status, code) {
        (500 | 502 | 503 | 504 | 509, _) => Some(RetryAction::server_error()),
        (429, _) => Some(RetryAction::throttling_error()),
        (400, code) if THROTTLING_CODES.contains(&code) => Some(RetryAction::throttling_error()),
        (400, "RequestTimeout" | "BadDigest") => Some(RetryAction::transient_error()),
        _ => None,
    }
}

/// Whether botocore says `MaxAttemptsReached` of an error answer of `status` (as botocore
/// gives it, see `botocore_status`) on the last attempt: its standard mode says so of any
/// error, its legacy mode only of one it would have retried.
pub fn reports_max_attempts(legacy: bool, status: u16, code: &str) -> bool {
    !legacy || legacy_retry(status, code).is_some()
}

/// Whether botocore says `RetryQuotaReached` of an error answer of `status` with attempts left:
/// the SDK declines to retry an error the standard rules retry only when the client's retry
/// quota is spent (the legacy mode has none).
pub fn reports_quota_reached(legacy: bool, status: u16, code: &str) -> bool {
    !legacy && standard_retry(status, code).is_some()
}

/// The status botocore reports of an error answer: an error in a 200 answer is a 500.
pub fn botocore_status(status: u16) -> u16 {
    match status {
        200..=299 => 500,
        status => status,
    }
}
