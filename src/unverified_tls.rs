//! botocore's `verify=False`: an HTTPS client that does not check the server's certificate
//! (a local S3 server with a self-signed one, say). The SDK's HTTPS client always verifies and
//! takes no TLS configuration of ours, so this is hyper's client over rustls with a verifier
//! that accepts any certificate, given the same timeouts and error kinds as the SDK's.
//!
//! The handshake's signatures are still checked, as Python's `ssl.CERT_NONE` checks them: only
//! who signed the certificate, its names and its dates are not.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::http::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::errors::TransferError;

type HttpsConnector = hyper_rustls::HttpsConnector<TcpConnector>;

/// An HTTP(S) client that trusts any server certificate, with the SDK's connect and read
/// timeouts. One connection pool for all its requests.
pub fn client(
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<SharedHttpClient, TransferError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransferError::Internal(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(https);
    let connector = SharedHttpConnector::new(Unverified {
        client,
        read_timeout,
    });
    Ok(http_client_fn(move |_settings, _components| {
        connector.clone()
    }))
}

#[derive(Debug)]
struct Unverified {
    client: Client<HttpsConnector, SdkBody>,
    /// As the SDK's: until the response's head has come.
    read_timeout: Duration,
}

impl HttpConnector for Unverified {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sent = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = tokio::time::timeout(read_timeout, sent)
                .await
                .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?
                .map_err(connector_error)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK's kinds for hyper's errors: a timeout, or an I/O error (which it retries), as its
/// own client tells them.
fn connector_error(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let timed_out = std::error::Error::source(&error)
        .and_then(|cause| cause.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
    if timed_out {
        ConnectorError::timeout(error.into())
    } else {
        ConnectorError::io(error.into())
    }
}

/// Takes any server certificate; checks the handshake's signatures with `0`'s algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
