//! Where the engine's requests get their credentials: fixed values, or a botocore credentials
//! object that botocore refreshes (assume-role, SSO, IMDS, ...). For the latter the engine asks
//! botocore again whenever botocore would refresh, so a transfer that outlives the credentials
//! it started with keeps working, and botocore stays the one that decides how to refresh.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;

/// What the requests of a client are signed with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// None: requests go unsigned, as botocore sends them with `signature_version=UNSIGNED`.
    Anonymous,
    Fixed {
        access_key: String,
        secret_key: String,
        session_token: Option<String>,
    },
    Refreshable(RefreshableSource),
}

/// Credentials as botocore hands them out, and how long until botocore would refresh them
/// (`None`: never).
pub struct FetchedCredentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub refresh_in: Option<Duration>,
}

pub type Fetch = dyn Fn() -> Result<FetchedCredentials, String> + Send + Sync;

/// A refreshable botocore credentials object, reached through `fetch` (which blocks: it takes
/// the GIL and may make botocore call STS). Two sources are the same when they stand for the
/// same botocore object (`id`), whatever the values it holds right now: that keeps one client,
/// and its connection pool, across refreshes.
#[derive(Clone)]
pub struct RefreshableSource {
    pub id: usize,
    pub fetch: Arc<Fetch>,
}

impl PartialEq for RefreshableSource {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for RefreshableSource {}

impl Hash for RefreshableSource {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl fmt::Debug for RefreshableSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshableSource")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// When botocore keeps credentials past their refresh time (a refresh that failed but is not
/// yet mandatory), it is asked again after this long rather than before every request.
const RECHECK_AT_LEAST_AFTER: Duration = Duration::from_secs(1);

/// The SDK's credentials provider for a `RefreshableSource`. It keeps the last credentials
/// until botocore's refresh time, so that most requests do not touch Python.
#[derive(Debug)]
pub struct RefreshingProvider {
    source: RefreshableSource,
    current: Mutex<Option<(Credentials, Option<Instant>)>>,
}

impl RefreshingProvider {
    pub fn new(source: RefreshableSource) -> Self {
        Self {
            source,
            current: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Credentials> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match current.as_ref() {
            Some((credentials, refresh_at)) if refresh_at.is_none_or(|at| Instant::now() < at) => {
                Some(credentials.clone())
            }
            _ => None,
        }
    }

    async fn load(&self) -> Result<Credentials, CredentialsError> {
        if let Some(credentials) = self.cached() {
            return Ok(credentials);
        }
        let fetch = self.source.fetch.clone();
        let fetched = tokio::task::spawn_blocking(move || fetch())
            .await
            .map_err(CredentialsError::provider_error)?
            .map_err(CredentialsError::provider_error)?;
        let credentials = Credentials::new(
            fetched.access_key,
            fetched.secret_key,
            fetched.session_token,
            None,
            "s3turbo-botocore-refreshable",
        );
        let refresh_at = fetched
            .refresh_in
            .map(|wait| Instant::now() + wait.max(RECHECK_AT_LEAST_AFTER));
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((credentials.clone(), refresh_at));
        Ok(credentials)
    }
}

impl ProvideCredentials for RefreshingProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn counting_source(refresh_in: Option<Duration>) -> (RefreshableSource, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let fetch = move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Ok(FetchedCredentials {
                access_key: format!("AK{n}"),
                secret_key: "secret".into(),
                session_token: None,
                refresh_in,
            })
        };
        let source = RefreshableSource {
            id: 1,
            fetch: Arc::new(fetch),
        };
        (source, calls)
    }

    #[tokio::test]
    async fn credentials_are_fetched_again_only_when_botocore_would_refresh() {
        let (source, calls) = counting_source(Some(Duration::ZERO));
        let provider = RefreshingProvider::new(source);
        let first = provider.provide_credentials().await.expect("fetched");
        let second = provider.provide_credentials().await.expect("cached");
        assert_eq!(
            (first.access_key_id(), second.access_key_id()),
            ("AK0", "AK0")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(RECHECK_AT_LEAST_AFTER + Duration::from_millis(50)).await;
        let third = provider.provide_credentials().await.expect("refetched");
        assert_eq!(third.access_key_id(), "AK1");
    }

    #[tokio::test]
    async fn credentials_without_expiry_are_fetched_once() {
        let (source, calls) = counting_source(None);
        let provider = RefreshingProvider::new(source);
        for _ in 0..3 {
            provider.provide_credentials().await.expect("credentials");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_refresh_is_a_credentials_error() {
        let source = RefreshableSource {
            id: 2,
            fetch: Arc::new(|| Err("sts said no".to_owned())),
        };
        let provider = RefreshingProvider::new(source);
        let error = provider.provide_credentials().await.expect_err("fails");
        assert!(format!("{error:?}").contains("sts said no"));
    }
}
