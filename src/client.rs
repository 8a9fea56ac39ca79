//! The aws-sdk-s3 client, built from plain settings that the Python layer reads off the botocore
//! client boto3 would have used. Clients are cached per settings so that connections are reused
//! across calls.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, IdentityCache, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::Client;

use crate::credentials::{CredentialSource, RefreshingProvider};

/// Everything that decides how requests are sent and signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionSettings {
    /// A custom endpoint (`endpoint_url`, `AWS_ENDPOINT_URL`); `None` lets the region decide.
    pub endpoint_url: Option<String>,
    pub region: String,
    pub credentials: CredentialSource,
    pub force_path_style: bool,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    /// Total attempts per request, the first included.
    pub max_attempts: u32,
    /// botocore's `request_checksum_calculation == "when_supported"`.
    pub checksum_when_supported: bool,
    /// botocore's `response_checksum_validation == "when_supported"`.
    pub validate_when_supported: bool,
}

impl ConnectionSettings {
    /// How connection errors name the server, as botocore's do.
    pub fn endpoint_label(&self) -> String {
        self.endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region))
    }

    fn build_client(&self) -> Client {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .read_timeout(Duration::from_millis(self.read_timeout_ms))
            .build();
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .force_path_style(self.force_path_style)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts.max(1)))
            .request_checksum_calculation(if self.checksum_when_supported {
                RequestChecksumCalculation::WhenSupported
            } else {
                RequestChecksumCalculation::WhenRequired
            })
            .response_checksum_validation(if self.validate_when_supported {
                ResponseChecksumValidation::WhenSupported
            } else {
                ResponseChecksumValidation::WhenRequired
            });
        config = match &self.credentials {
            CredentialSource::Fixed {
                access_key,
                secret_key,
                session_token,
            } => config.credentials_provider(Credentials::new(
                access_key,
                secret_key,
                session_token.clone(),
                None,
                "s3turbo-botocore",
            )),
            // The provider keeps the credentials until botocore's refresh time: a second cache
            // in front of it would only hold them longer.
            CredentialSource::Refreshable(source) => config
                .credentials_provider(RefreshingProvider::new(source.clone()))
                .identity_cache(IdentityCache::no_cache()),
        };
        if let Some(endpoint) = &self.endpoint_url {
            config = config.endpoint_url(endpoint);
        }
        Client::from_conf(config.build())
    }
}

/// Clients by settings. Rotating credentials make new entries, so the cache is emptied when it
/// grows past a bound rather than kept forever.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<ConnectionSettings, Client>>,
}

const MAX_CACHED_CLIENTS: usize = 32;

impl ClientCache {
    pub fn get(&self, settings: &ConnectionSettings) -> Client {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(settings) {
            return client.clone();
        }
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        let client = settings.build_client();
        clients.insert(settings.clone(), client.clone());
        client
    }
}
