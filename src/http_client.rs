//! The HTTP client every request of the engine goes through, around the one that sends it
//! (`own_http`, which bounds the wait for a response's head by the read timeout):
//!
//! - The read timeout on every wait for a response body's next bytes, for every request, as
//!   botocore's socket timeout bounds each read (see `PacedBody`): an answer whose body stopped
//!   after its head (a CreateMultipartUpload's, an error's) was waited for for ever.
//! - `Expect: 100-continue` on large upload bodies (`expect_continue`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use aws_sdk_s3::config::http::HttpRequest;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

use crate::expect_continue;

/// `client` as the engine sends through it; `read_timeout` is the client's.
pub fn client(client: SharedHttpClient, read_timeout: Duration) -> SharedHttpClient {
    EngineHttpClient {
        client,
        continue_wait: expect_continue::continue_wait(read_timeout),
        body_read_timeout: read_timeout,
    }
    .into_shared()
}

#[derive(Debug)]
struct EngineHttpClient {
    client: SharedHttpClient,
    /// How long a large upload body waits for "100 Continue".
    continue_wait: Duration,
    /// The longest wait for a response body's next bytes: the client's read timeout.
    body_read_timeout: Duration,
}

impl HttpClient for EngineHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        EngineConnector {
            connector: self.client.http_connector(settings, components),
            continue_wait: self.continue_wait,
            body_read_timeout: self.body_read_timeout,
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
    continue_wait: Duration,
    body_read_timeout: Duration,
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
        let body_read_timeout = self.body_read_timeout;
        HttpConnectorFuture::new(async move {
            let response = sent.await?;
            Ok(response.map(|body| PacedBody::wrap(body, body_read_timeout)))
        })
    }
}

/// A response body that fails with `BodyReadTimedOut` when its next bytes have been waited for
/// for `limit`, as botocore's socket timeout fails a read (its ReadTimeoutError, retried). Only
/// the time it is waited for counts: a reader that takes its time between frames is not timed.
struct PacedBody {
    inner: SdkBody,
    limit: Duration,
    /// The end of the wait for the next frame, reset as each wait begins (one timer for all).
    deadline: Pin<Box<Sleep>>,
    waiting: bool,
}

impl PacedBody {
    fn wrap(body: SdkBody, limit: Duration) -> SdkBody {
        SdkBody::from_body_1_x(PacedBody {
            inner: body,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            waiting: false,
        })
    }
}

impl Body for PacedBody {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame);
        }
        if !this.waiting {
            this.waiting = true;
            let deadline = tokio::time::Instant::now() + this.limit;
            this.deadline.as_mut().reset(deadline);
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.waiting = false;
                Poll::Ready(Some(Err(BodyReadTimedOut.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// No bytes of a response body within the read timeout (botocore's `ReadTimeoutError`).
#[derive(Debug)]
pub struct BodyReadTimedOut;

impl std::fmt::Display for BodyReadTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Read timed out")
    }
}

impl std::error::Error for BodyReadTimedOut {}
