//! The HTTP client every request of the engine goes through, around the one that sends it (the
//! SDK's, or our own in `own_http`):
//!
//! - One connection pool per engine client. The SDK's client keeps a pool for each distinct
//!   per-request timeout setting, and uploads turn the read timeout off (see `upload.rs`), so
//!   uploads and downloads used to hold a pool each: the client below is asked for one
//!   connector, with the connect timeout alone.
//! - The read timeout, applied here as the SDK's client applies it (until the response's head
//!   has come), for the requests that have one: uploads have none.
//! - `Expect: 100-continue` on large upload bodies (`expect_continue`).

use std::time::Duration;

use aws_sdk_s3::config::http::HttpRequest;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::config_bag::ConfigBag;

use crate::expect_continue;

/// `client` as the engine sends through it; `read_timeout` is the client's.
pub fn client(client: SharedHttpClient, read_timeout: Duration) -> SharedHttpClient {
    EngineHttpClient {
        client,
        continue_wait: expect_continue::continue_wait(read_timeout),
    }
    .into_shared()
}

#[derive(Debug)]
struct EngineHttpClient {
    client: SharedHttpClient,
    /// How long a large upload body waits for "100 Continue".
    continue_wait: Duration,
}

impl HttpClient for EngineHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let mut one_pool = HttpConnectorSettings::builder();
        one_pool.set_connect_timeout(settings.connect_timeout());
        EngineConnector {
            connector: self.client.http_connector(&one_pool.build(), components),
            read_timeout: settings.read_timeout(),
            continue_wait: self.continue_wait,
        }
        .into_shared()
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.client.validate_base_client_config(components, cfg)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.client.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.client.connector_metadata()
    }
}

#[derive(Debug)]
struct EngineConnector {
    connector: SharedHttpConnector,
    /// Until the response's head has come; None for uploads.
    read_timeout: Option<Duration>,
    continue_wait: Duration,
}

impl HttpConnector for EngineConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let sent = if expect_continue::waits_for_continue(&request) {
            expect_continue::send_after_continue(request, self.continue_wait, |request| {
                self.connector.call(request)
            })
        } else {
            self.connector.call(request)
        };
        match self.read_timeout {
            None => sent,
            Some(limit) => HttpConnectorFuture::new(async move {
                tokio::time::timeout(limit, sent)
                    .await
                    .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?
            }),
        }
    }
}
