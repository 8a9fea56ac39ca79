//! Which failed requests are sent again, and how the last failure is reported, as botocore's
//! retry modes have it. The SDK's standard retry strategy does the waiting and counting; these
//! classifiers tell it which answers botocore retries where the SDK's own would decide otherwise.

use aws_sdk_s3::config::interceptors::InterceptorContext;
use aws_sdk_s3::config::retry::{
    ClassifyRetry, RetryAction, RetryConfig, RetryPartition, TokenBucket,
};
use aws_smithy_runtime_api::client::retries::classifiers::{
    RetryClassifierPriority, SharedRetryClassifier,
};
use aws_smithy_types::retry::RetrySpec;

use crate::error_body;

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
        RetryPartition::custom("s3turbo")
            .token_bucket(quota)
            .build()
    }

    /// The classifiers the SDK's client takes for this mode, besides its own.
    pub fn classifiers(self) -> Vec<SharedRetryClassifier> {
        let mut classifiers = vec![
            SharedRetryClassifier::new(TooManyRequests),
            SharedRetryClassifier::new(ErrorIn200),
            SharedRetryClassifier::new(CutShort { mode: self }),
        ];
        if self == RetryMode::Legacy {
            classifiers.push(SharedRetryClassifier::new(LegacyRetries));
        }
        classifiers
    }
}

/// Whether the SDK client `config` retries as botocore's legacy mode.
pub fn is_legacy(config: &aws_sdk_s3::Config) -> bool {
    config
        .retry_classifiers()
        .any(|classifier| classifier.name() == LegacyRetries.name())
}

/// botocore retries a 429 as throttling, whatever its error code (unless the operation models
/// it, which no S3 operation does); the SDK knows only the throttling codes, and some S3
/// services answer 429 with another.
#[derive(Debug)]
struct TooManyRequests;

impl ClassifyRetry for TooManyRequests {
    fn classify_retry(&self, context: &InterceptorContext) -> RetryAction {
        match context.response() {
            Some(response) if response.status().as_u16() == 429 => RetryAction::throttling_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "s3turbo::TooManyRequests"
    }
}

/// The status botocore gives an attempt that S3 answered with an error, if it did: an error
/// in a 200 answer (CompleteMultipartUpload's, say) is a 500 to botocore, in every mode.
/// Answers that broke off, and failures to send, are not S3's errors.
fn error_status(context: &InterceptorContext) -> Option<u16> {
    let answered_error =
        matches!(context.output_or_error(), Some(Err(e)) if e.is_operation_error());
    let status = context.response()?.status().as_u16();
    answered_error.then_some(botocore_status(status))
}

/// An error in a 200 answer is retried as a 500, whatever its code (the SDK retries only
/// codes it knows as transient or throttling).
#[derive(Debug)]
struct ErrorIn200;

impl ClassifyRetry for ErrorIn200 {
    fn classify_retry(&self, context: &InterceptorContext) -> RetryAction {
        let in_200 = context
            .response()
            .is_some_and(|response| response.status().is_success());
        match error_status(context) {
            Some(_) if in_200 => RetryAction::server_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "s3turbo::ErrorIn200"
    }

    /// After the SDK's classifiers, so that its decision is the one that holds.
    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// An answer whose body was cut short is, to botocore, S3's answer with what came as its body
/// (see `TransferError::from_sdk`): retried by its status alone, as botocore can read no code
/// from it, where the SDK retries every answer it could not read.
#[derive(Debug)]
struct CutShort {
    mode: RetryMode,
}

impl ClassifyRetry for CutShort {
    fn classify_retry(&self, context: &InterceptorContext) -> RetryAction {
        let cut_short = matches!(context.output_or_error(), Some(Err(e)) if e.is_response_error());
        let answer = context
            .response()
            .filter(|response| cut_short && is_answer_when_cut_short(response.headers()));
        let Some(response) = answer else {
            return RetryAction::NoActionIndicated;
        };
        let status = botocore_status(response.status().as_u16());
        let retry = match self.mode {
            RetryMode::Legacy => legacy_retry(status, ""),
            RetryMode::Standard | RetryMode::Adaptive => match status {
                500 | 502 | 503 | 504 => Some(RetryAction::server_error()),
                429 => Some(RetryAction::throttling_error()),
                _ => None,
            },
        };
        retry.unwrap_or(RetryAction::RetryForbidden)
    }

    fn name(&self) -> &'static str {
        "s3turbo::CutShort"
    }

    /// After the SDK's classifiers, so that its decision is the one that holds.
    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// Whether botocore takes an answer whose body was cut short for S3's answer: it does when the
/// body has a Content-Length, which urllib3 does not hold it to; a chunked body that ends early
/// is a broken connection to urllib3 (botocore's ConnectionClosedError, retried).
pub fn is_answer_when_cut_short(headers: &aws_smithy_runtime_api::http::Headers) -> bool {
    !headers
        .get("transfer-encoding")
        .is_some_and(|coding| coding.to_ascii_lowercase().contains("chunked"))
}

/// botocore's legacy mode decides on every error answer by its `_retry.json`, which differs
/// from the standard mode's rules: it retries S3's `400 BadDigest` and any 509, and not a code
/// the standard mode knows as throttling or transient under another status (`400 SlowDown`).
/// Failures without an error answer (connections refused or broken, timeouts, a body that
/// broke off) are retried in both modes, so the SDK's own classifiers keep those.
#[derive(Debug)]
struct LegacyRetries;

impl ClassifyRetry for LegacyRetries {
    fn classify_retry(&self, context: &InterceptorContext) -> RetryAction {
        let Some(status) = error_status(context) else {
            return RetryAction::NoActionIndicated;
        };
        let body = context
            .response()
            .and_then(|response| error_body::read(response.body().bytes().unwrap_or_default()));
        let code = body
            .as_ref()
            .and_then(|body| error_body::text(&body.error, "Code"))
            .unwrap_or("");
        legacy_retry(status, code).unwrap_or(RetryAction::RetryForbidden)
    }

    fn name(&self) -> &'static str {
        "s3turbo::LegacyRetries"
    }

    /// After the SDK's classifiers, so that its decision is the one that holds.
    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// How botocore's legacy mode retries an error answer of `status` with error `code`, if it does
/// (the policies of botocore's `_retry.json` for S3).
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

/// The status botocore reports of an error answer: an error in a 200 answer is a 500.
pub fn botocore_status(status: u16) -> u16 {
    match status {
        200..=299 => 500,
        status => status,
    }
}
