//! The aws-sdk-s3 client, built from plain settings that the Python layer reads off the botocore
//! client boto3 would have used. Clients are cached per settings so that connections are reused
//! across calls.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::retry::RetryPartition;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, IdentityCache, Intercept, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, RuntimeComponents, StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::Client;
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

use crate::credentials::{CredentialSource, RefreshingProvider};
use crate::errors::TransferError;
use crate::global_endpoint::GlobalEndpoint;
use crate::http_client;
use crate::own_http::{self, ClientCertificate, Trust};
use crate::proxy::{Proxies, Proxy};
use crate::retries::RetryMode;

/// Everything that decides how requests are sent and signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionSettings {
    /// A custom endpoint (`endpoint_url`, `AWS_ENDPOINT_URL`); `None` lets the region decide.
    pub endpoint_url: Option<String>,
    pub region: String,
    pub credentials: CredentialSource,
    pub force_path_style: bool,
    /// Endpoint variants (`use_accelerate_endpoint`, `use_dualstack_endpoint`,
    /// `use_fips_endpoint` and their environment variables), resolved by the same endpoint
    /// rules as botocore's.
    pub accelerate: bool,
    pub dual_stack: bool,
    pub fips: bool,
    /// botocore's `AWS::S3::UseGlobalEndpoint`: S3's global endpoint for us-east-1.
    pub global_endpoint: bool,
    /// botocore's `use_arn_region`: an access point ARN of another region is sent there.
    pub use_arn_region: bool,
    /// botocore's `disable_s3_express_session_auth`: directory buckets are signed with the
    /// client's credentials, without CreateSession.
    pub disable_s3_express_session_auth: bool,
    /// The CA bundle botocore verifies https servers with: the one its `verify` names
    /// (AWS_CA_BUNDLE, `ca_bundle` in the config file), else its default one (certifi's).
    /// Only its certificates are trusted, as botocore trusts only them, never the system's
    /// roots. None over plain http, where no certificate is checked.
    pub ca_bundle: Option<PathBuf>,
    /// False for botocore's `verify=False`: any server certificate is taken (and proxies are
    /// left to boto3).
    pub verify_certificates: bool,
    /// botocore's `tcp_keepalive`: SO_KEEPALIVE on every connection (and proxies are left to
    /// boto3).
    pub tcp_keepalive: bool,
    /// botocore's `client_cert`: a PEM certificate (chain) file, and the file of its private
    /// key when not that one (and proxies are left to boto3).
    pub client_certificate: Option<(PathBuf, Option<PathBuf>)>,
    /// The proxies botocore's connections use for http:// and https:// URLs (its `proxies`,
    /// or those it took from the environment): none, without them.
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    /// botocore's `max_pool_connections`: the idle connections kept for later requests (as
    /// urllib3's pool keeps at most that many; requests beyond it still get a connection).
    pub max_idle_connections: usize,
    /// Total attempts per request, the first included.
    pub max_attempts: u32,
    pub retry_mode: RetryMode,
    /// botocore's `NEW_RETRIES_ENABLED` (see `RetryMode::retry_config`).
    pub retry_behavior_2_1: bool,
    /// botocore's `request_checksum_calculation == "when_supported"`.
    pub checksum_when_supported: bool,
    /// botocore's `response_checksum_validation == "when_supported"`.
    pub validate_when_supported: bool,
    pub user_agent: UserAgent,
}

/// What botocore's client config says of the User-Agent header: `user_agent` replaces the
/// SDK's whole header, and `app/<user_agent_appid>` and `user_agent_extra` go at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserAgent {
    pub replacement: Option<String>,
    pub suffix: Option<String>,
}

impl Intercept for UserAgent {
    fn name(&self) -> &'static str {
        "s3turbo::UserAgent"
    }

    /// After signing, as the header is not signed (by botocore either).
    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.request_mut().headers_mut();
        let base = match &self.replacement {
            Some(replacement) => replacement.clone(),
            None => headers.get("user-agent").unwrap_or_default().to_owned(),
        };
        let value = match &self.suffix {
            Some(suffix) => format!("{base} {suffix}"),
            None => base,
        };
        headers.insert("user-agent", value);
        Ok(())
    }
}

impl ConnectionSettings {
    /// How connection errors name the server, as botocore's do.
    pub fn endpoint_label(&self) -> String {
        self.endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region))
    }

    fn build_client(&self) -> Result<Client, TransferError> {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .read_timeout(Duration::from_millis(self.read_timeout_ms))
            .build();
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .force_path_style(self.force_path_style)
            .accelerate(self.accelerate)
            .use_dual_stack(self.dual_stack)
            .use_fips(self.fips)
            .use_arn_region(self.use_arn_region)
            .disable_s3_express_session_auth(self.disable_s3_express_session_auth)
            .timeout_config(timeouts)
            // Bodies are bounded by the read timeout instead, as botocore bounds them (the SDK's
            // own check gives up on a body after 5 s without bytes, whatever read_timeout says).
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .retry_config(
                self.retry_mode
                    .retry_config(self.max_attempts, self.retry_behavior_2_1),
            )
            // A botocore client's requests take its own quota (`RetryQuota`); this one serves
            // those of a forked child, whose clients are made anew.
            .retry_partition(self.retry_mode.retry_partition())
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
            // With no credentials provider SigV4 has no identity, so the SDK takes this scheme.
            CredentialSource::Anonymous => config.allow_no_auth(),
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
        if self.global_endpoint {
            config = config.endpoint_resolver(GlobalEndpoint::default());
        }
        config.push_retry_classifier(self.retry_mode.classifier());
        if self.user_agent != UserAgent::default() {
            config = config.interceptor(self.user_agent.clone());
        }
        let http_client = own_http::client(own_http::Settings {
            trust: if self.verify_certificates {
                Trust::Bundle(self.bundle_certificates()?)
            } else {
                Trust::AnyCertificate
            },
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            max_idle_connections: self.max_idle_connections,
            tcp_keepalive: self.tcp_keepalive,
            client_certificate: self.client_certificate(),
            proxies: self.proxies()?,
        })?;
        config = config.http_client(http_client::client(
            http_client,
            Duration::from_millis(self.read_timeout_ms),
        ));
        Ok(Client::from_conf(config.build()))
    }

    /// The certificates our own client trusts: the CA bundle's.
    fn bundle_certificates(&self) -> Result<Vec<CertificateDer<'static>>, TransferError> {
        Ok(match &self.ca_bundle {
            Some(path) => ca_bundle_blocks(path, self.endpoint_label())?
                .iter()
                .flat_map(|block| CertificateDer::pem_slice_iter(block).flatten())
                .collect(),
            None => Vec::new(),
        })
    }

    /// The client certificate, or why it cannot be used.
    fn client_certificate(&self) -> Option<Result<ClientCertificate, String>> {
        let (certificate_file, key_file) = self.client_certificate.as_ref()?;
        Some(read_client_certificate(
            certificate_file,
            key_file.as_ref().unwrap_or(certificate_file),
        ))
    }

    fn proxies(&self) -> Result<Proxies, TransferError> {
        let proxy = |url: &Option<String>| {
            url.as_deref()
                .map(Proxy::new)
                .transpose()
                .map_err(|e| TransferError::InvalidInput(format!("proxies: {e}")))
        };
        Ok(Proxies {
            http: proxy(&self.http_proxy)?,
            https: proxy(&self.https_proxy)?,
        })
    }
}

/// The PEM blocks of a CA bundle's certificates that rustls accepts as trust anchors. System
/// bundles may hold others: they are left out, as OpenSSL (botocore's TLS) skips them too. A bundle with none is
/// an SSLError (for `endpoint`), as botocore's TLS setup raises for it.
fn ca_bundle_blocks(path: &PathBuf, endpoint: String) -> Result<Vec<Vec<u8>>, TransferError> {
    let pem = std::fs::read(path).map_err(|source| TransferError::io(path, source))?;
    let usable: Vec<Vec<u8>> = pem_certificate_blocks(&pem)
        .filter(|block| {
            CertificateDer::pem_slice_iter(block)
                .all(|der| der.is_ok_and(|der| rustls::RootCertStore::empty().add(der).is_ok()))
        })
        .map(<[u8]>::to_vec)
        .collect();
    if usable.is_empty() {
        return Err(TransferError::Tls {
            endpoint,
            detail: format!("no usable certificate in the CA bundle {}", path.display()),
        });
    }
    Ok(usable)
}

/// A client certificate's chain and key, read from their PEM files as urllib3 reads them (both
/// may be one file), or why they cannot be.
fn read_client_certificate(
    certificate_file: &PathBuf,
    key_file: &PathBuf,
) -> Result<ClientCertificate, String> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("client_cert: {}: {e}", path.display()))
    };
    let unusable =
        |path: &PathBuf, what: &str| format!("client_cert: no {what} in {}", path.display());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(certificate_file)?)
            .collect::<Result<_, _>>()
            .map_err(|_| unusable(certificate_file, "readable certificate"))?;
    if chain.is_empty() {
        return Err(unusable(certificate_file, "certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key_file)?)
        .map_err(|_| unusable(key_file, "private key"))?;
    Ok(ClientCertificate { chain, key })
}

/// Each `-----BEGIN CERTIFICATE-----` ... `-----END CERTIFICATE-----` block of a PEM file.
fn pem_certificate_blocks(pem: &[u8]) -> impl Iterator<Item = &[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let find = |haystack: &[u8], needle: &[u8]| {
        haystack
            .windows(needle.len())
            .position(|window| window == needle)
    };
    let mut rest = pem;
    std::iter::from_fn(move || {
        let start = find(rest, BEGIN)?;
        let end = start + find(&rest[start..], END)? + END.len();
        let block = &rest[start..end];
        rest = &rest[end..];
        Some(block)
    })
}

/// A botocore client's retry quota, and adaptive mode's rate limiter: botocore keeps them per
/// client, where the engine shares one SDK client, and so its connection pool, between the
/// botocore clients of the same settings. A botocore client's requests go through an SDK client
/// of its own, made from the shared one: the same settings and connections, this quota.
#[derive(Default)]
pub struct RetryQuota {
    state: Mutex<QuotaState>,
}

#[derive(Default)]
struct QuotaState {
    /// Made at first use, for the client's retry mode (the legacy mode has no quota), and made
    /// again in a forked child, which has a runtime and clients of its own.
    partition: Option<(u32, RetryMode, RetryPartition)>,
    /// The last SDK client made with this quota, and the shared client it was made from: kept
    /// while a `Connection` holds it, as the shared clients are.
    client: Option<(Weak<Client>, Weak<Client>)>,
}

impl RetryQuota {
    /// The SDK client with this quota made from `shared`, the engine's client for settings
    /// whose retry mode is `mode`.
    pub fn client(&self, shared: &Arc<Client>, mode: RetryMode) -> Arc<Client> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((made_from, client)) = &state.client {
            if let Some(client) = client.upgrade() {
                if std::ptr::eq(made_from.as_ptr(), Arc::as_ptr(shared)) {
                    return client;
                }
            }
        }
        let process = std::process::id();
        let partition = match &state.partition {
            Some((pid, made_for, partition)) if (*pid, *made_for) == (process, mode) => {
                partition.clone()
            }
            _ => mode.retry_partition(),
        };
        state.partition = Some((process, mode, partition.clone()));
        let config = shared.config().to_builder().retry_partition(partition);
        let client = Arc::new(Client::from_conf(config.build()));
        state.client = Some((Arc::downgrade(shared), Arc::downgrade(&client)));
        client
    }
}

/// The engine's clients by settings, each kept while a `Connection` holds it (see
/// `python::Connection`): a client whose botocore clients are all gone is dropped, and its
/// pooled connections closed, as boto3's are.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<ConnectionSettings, Weak<Client>>>,
}

impl ClientCache {
    pub fn get(&self, settings: &ConnectionSettings) -> Result<Arc<Client>, TransferError> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(settings).and_then(Weak::upgrade) {
            return Ok(client);
        }
        clients.retain(|_, client| client.strong_count() > 0);
        let client = Arc::new(settings.build_client()?);
        clients.insert(settings.clone(), Arc::downgrade(&client));
        Ok(client)
    }
}
