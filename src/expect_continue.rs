//! `Expect: 100-continue` on large uploads, as botocore sends it: the request's head goes first,
//! and its body only once the server answers "100 Continue", or has said nothing for a second
//! (an older server or a proxy may never answer it).
//!
//! A server that refuses an upload (a bad signature, an expired token, a wrong region) answers
//! before the body is sent, so no body is sent in vain. Above all, none arrives unread: a server
//! that answers and closes while body bytes it never read are still coming resets the
//! connection, and the client can lose the answer it was sent and see only the reset.
//!
//! hyper's client sends a body as soon as the head has gone. It tells 1xx responses to a
//! callback set on the request (`hyper::ext::on_informational`), which the engine's HTTP client
//! (`http_client`) sets, and the body is held until the callback or the timer releases it.
//!
//! When the final answer comes first, the body is never sent: once the answer is done with, the
//! held body fails, and hyper closes the connection (the server may still expect the body).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use aws_sdk_s3::config::http::HttpRequest;
use aws_smithy_runtime_api::client::http::HttpConnectorFuture;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// Bodies from this size on wait for "100 Continue". botocore waits for every upload body; a
/// smaller one goes with its head here, because the wait costs a round trip, which at S3's
/// latency is about as long as sending a small object, while what a refused small upload sends
/// in vain is little and mostly fits in the server's buffers. Larger ones do not: refused over
/// https (through the tests' Python TLS relay), a 300 KB body lost the server's answer to a
/// reset about once in ten, and 1 MB a third of the time, when this was 1 MiB; one of 60 KB
/// still did about once in a hundred (retried, or an error without its code), 64 KiB and more
/// never. Waiting for every body, as botocore does, cost 16 KiB uploads a fifth of their rate
/// here (2.78x boto3's files/s against 2.30x).
const EXPECT_CONTINUE_FROM: u64 = 64 << 10;

/// How long a body waits for "100 Continue" before it goes anyway: botocore's second. With a
/// read timeout below two seconds, half of it: an upload whose body has not moved for the read
/// timeout counts as stalled (botocore's wait is outside its socket timeouts).
pub fn continue_wait(read_timeout: Duration) -> Duration {
    CONTINUE_WAIT.min(read_timeout / 2)
}

const CONTINUE_WAIT: Duration = Duration::from_secs(1);

/// Whether `request` is an upload whose body waits for "100 Continue".
pub fn waits_for_continue(request: &HttpRequest) -> bool {
    request.method() == Method::PUT.as_str()
        && request
            .body()
            .content_length()
            .is_some_and(|length| length >= EXPECT_CONTINUE_FROM)
}

/// `request` sent by `send` with `Expect: 100-continue`, its body held until "100 Continue"
/// or for `wait` at most.
pub fn send_after_continue(
    request: HttpRequest,
    wait: Duration,
    send: impl FnOnce(HttpRequest) -> HttpConnectorFuture,
) -> HttpConnectorFuture {
    let (request, gate) = match held_until_continue(request, wait) {
        Ok(held) => held,
        Err(error) => return HttpConnectorFuture::ready(Err(error)),
    };
    let sent = send(request);
    let answered = AnswerGuard(gate);
    HttpConnectorFuture::new(async move {
        let mut response = sent.await?;
        answered.0.answered();
        // The held body is refused when the response is dropped, not before: until then hyper
        // may still be reading the answer's body on that connection.
        let body = response.take_body();
        *response.body_mut() = SdkBody::from_body_1_x(Answer {
            body,
            _answered: answered,
        });
        Ok(response)
    })
}

/// `request` with `Expect: 100-continue` and its body held by the returned gate, for `wait`
/// at most.
fn held_until_continue(
    request: HttpRequest,
    wait: Duration,
) -> Result<(HttpRequest, Arc<Gate>), ConnectorError> {
    let user_error = |e: aws_smithy_runtime_api::http::HttpError| ConnectorError::user(e.into());
    let gate = Arc::new(Gate::default());
    let mut request = request.try_into_http1x().map_err(user_error)?;
    request.headers_mut().insert(
        http::header::EXPECT,
        HeaderValue::from_static("100-continue"),
    );
    let on_continue = gate.clone();
    hyper::ext::on_informational(&mut request, move |response| {
        if response.status() == StatusCode::CONTINUE {
            on_continue.open();
        }
    });
    let request = request.map(|body| {
        SdkBody::from_body_1_x(HeldBody {
            body,
            gate: gate.clone(),
            wait,
            timer: None,
        })
    });
    let request = HttpRequest::try_from(request).map_err(user_error)?;
    Ok((request, gate))
}

/// Where a held body stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Waiting,
    /// "100 Continue" came, or the wait ran out: the body goes.
    Open,
    /// The final response came first: the body stays held while the response is read.
    Answered,
    /// The response was done with before the body could go, or no response will come: the body
    /// fails, unsent.
    Refused,
}

/// The body's phase, and its waker, to be woken when the phase changes.
#[derive(Debug, Default)]
struct Gate(Mutex<(Phase, Option<Waker>)>);

impl Gate {
    fn open(&self) {
        self.settle(|phase| (phase == Phase::Waiting).then_some(Phase::Open));
    }

    fn answered(&self) {
        self.settle(|phase| (phase == Phase::Waiting).then_some(Phase::Answered));
    }

    /// The response is done with, or none will come.
    fn done(&self) {
        self.settle(|phase| {
            matches!(phase, Phase::Waiting | Phase::Answered).then_some(Phase::Refused)
        });
    }

    fn settle(&self, next: impl FnOnce(Phase) -> Option<Phase>) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(phase) = next(state.0) {
            state.0 = phase;
            if let Some(waker) = state.1.take() {
                waker.wake();
            }
        }
    }

    /// The phase, with `waker` kept to be woken if the body has to wait.
    fn phase(&self, waker: &Waker) -> Phase {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(state.0, Phase::Waiting | Phase::Answered) {
            state.1 = Some(waker.clone());
        }
        state.0
    }
}

/// Tells the gate, when dropped, that the response is done with (dropped with the response's
/// body), or that none will come (dropped with the request's future). A body already open goes
/// on.
struct AnswerGuard(Arc<Gate>);

impl Drop for AnswerGuard {
    fn drop(&mut self) {
        self.0.done();
    }
}

/// A request body that waits for its gate.
struct HeldBody {
    body: SdkBody,
    gate: Arc<Gate>,
    wait: Duration,
    /// Started when hyper first asks for the body, which is when the head has gone.
    timer: Option<Pin<Box<Sleep>>>,
}

#[derive(Debug)]
struct NotSent;

impl fmt::Display for NotSent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server answered before the request body was sent")
    }
}

impl std::error::Error for NotSent {}

impl Body for HeldBody {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            match self.gate.phase(cx.waker()) {
                Phase::Open => return Pin::new(&mut self.body).poll_frame(cx),
                Phase::Refused => return Poll::Ready(Some(Err(NotSent.into()))),
                // Until the response is done with: the gate wakes the body then.
                Phase::Answered => return Poll::Pending,
                Phase::Waiting => {}
            }
            let wait = self.wait;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
            ready!(timer.as_mut().poll(cx));
            self.gate.open();
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response's body, holding the guard that refuses the held request body once dropped.
struct Answer {
    body: SdkBody,
    _answered: AnswerGuard,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::box_error::BoxError;
    use tokio::time::{sleep, Instant};

    fn held(gate: &Arc<Gate>) -> HeldBody {
        HeldBody {
            body: SdkBody::from("data"),
            gate: gate.clone(),
            wait: CONTINUE_WAIT,
            timer: None,
        }
    }

    async fn next_frame(body: &mut HeldBody) -> Option<Result<Frame<Bytes>, BoxError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    fn data(frame: Option<Result<Frame<Bytes>, BoxError>>) -> Bytes {
        match frame {
            Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_goes_on_100_continue_or_after_a_second_without() {
        let gate = Arc::new(Gate::default());
        let mut body = held(&gate);
        let started = Instant::now();
        let continued = gate.clone();
        tokio::spawn(async move {
            sleep(Duration::from_millis(100)).await;
            continued.open();
        });
        assert_eq!(data(next_frame(&mut body).await), "data");
        assert_eq!(started.elapsed(), Duration::from_millis(100));

        let mut body = held(&Arc::new(Gate::default()));
        let started = Instant::now();
        assert_eq!(data(next_frame(&mut body).await), "data");
        assert_eq!(started.elapsed(), CONTINUE_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_answered_first_is_held_until_the_answer_is_done_with_then_fails() {
        let gate = Arc::new(Gate::default());
        let mut body = held(&gate);
        let answer = AnswerGuard(gate.clone());
        gate.answered();
        tokio::spawn(async move {
            sleep(5 * CONTINUE_WAIT).await; // longer than the wait for "100 Continue"
            drop(answer);
        });
        let started = Instant::now();
        assert!(matches!(next_frame(&mut body).await, Some(Err(_))));
        assert_eq!(started.elapsed(), 5 * CONTINUE_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_whose_request_is_given_up_fails_at_once_and_an_open_one_goes_on() {
        let gate = Arc::new(Gate::default());
        let mut body = held(&gate);
        drop(AnswerGuard(gate.clone()));
        assert!(matches!(next_frame(&mut body).await, Some(Err(_))));

        let gate = Arc::new(Gate::default());
        let mut body = held(&gate);
        gate.open();
        drop(AnswerGuard(gate.clone()));
        assert_eq!(data(next_frame(&mut body).await), "data");
    }
}
