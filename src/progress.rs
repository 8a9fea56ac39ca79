//! Progress counting. Tokio workers only add to an atomic counter; the thread that waits for
//! the transfer reads it and hands the increments to the Python callback (see `python.rs`), so
//! no worker ever needs the GIL.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::bandwidth::BandwidthLimit;
use crate::body::BodyReader;
use crate::errors::TransferError;

/// How often a transfer waiting for its observer's report asks again (see `until_reported`).
const ASK_AGAIN: Duration = Duration::from_secs(1);

/// Bytes moved so far. It goes down when an attempt that had counted bytes is retried, so that
/// the increments reported to the callback always add up to the bytes finally transferred.
///
/// With an observer (a Python callback), a transfer waits at its commit point (completing the
/// multipart upload, renaming the downloaded file into place) until the observer has reported
/// everything counted so far: a callback that raises on the last bytes still stops the
/// transfer before anything becomes visible, as in boto3. A report says how far it went (what
/// `transferred` said when it began), so that one that began before the last bytes and ended
/// after the commit point (a slow callback) does not count as theirs.
#[derive(Default)]
pub struct Progress {
    transferred: AtomicI64,
    observer: Option<Observer>,
}

struct Observer {
    /// The bytes the observer last said it had reported; a commit waits until they are all
    /// there is.
    reported_bytes: AtomicI64,
    reported: Notify,
    /// Asks the observer to report now.
    wake: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("transferred", &self.transferred())
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl Progress {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Progress that an observer reports: `wake` asks it to, `reported` says it did.
    pub fn observed(wake: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            transferred: AtomicI64::new(0),
            observer: Some(Observer {
                reported_bytes: AtomicI64::new(0),
                reported: Notify::new(),
                wake: Box::new(wake),
            }),
        })
    }

    pub fn add(&self, bytes: i64) {
        self.transferred.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn transferred(&self) -> i64 {
        self.transferred.load(Ordering::Relaxed)
    }

    /// The observer has reported `bytes`, what it read from `transferred`.
    pub fn reported(&self, bytes: i64) {
        if let Some(observer) = &self.observer {
            observer.reported_bytes.store(bytes, Ordering::Release);
            observer.reported.notify_waiters();
        }
    }

    /// Waits until the observer has reported the bytes counted so far (at once without one),
    /// or the transfer is cancelled (the observer's callback raised, or Ctrl-C). The observer
    /// is asked again every `ASK_AGAIN`: an asyncio loop stopped after it took the ask, and
    /// closed, never answers it, and only a new ask finds it closed (and cancels the transfer,
    /// which then cleans up rather than wait for ever).
    pub async fn until_reported(&self, cancel: &CancellationToken) -> Result<(), TransferError> {
        let Some(observer) = &self.observer else {
            return Ok(());
        };
        loop {
            let reported = observer.reported.notified();
            tokio::pin!(reported);
            // Registered before the check, so a report between the check and the wait wakes it.
            reported.as_mut().enable();
            if cancel.is_cancelled() {
                return Err(TransferError::Cancelled);
            }
            if observer.reported_bytes.load(Ordering::Acquire) == self.transferred() {
                return Ok(());
            }
            (observer.wake)();
            tokio::select! {
                _ = reported => {}
                _ = cancel.cancelled() => return Err(TransferError::Cancelled),
                _ = tokio::time::sleep(ASK_AGAIN) => {}
            }
        }
    }
}

/// What the current attempt at sending or receiving one part has counted, so that a retry can
/// take it back before starting again. Each attempt gets a generation: bytes that a superseded
/// attempt still moves (an old request body the HTTP client is still draining) are ignored, so
/// the total can never exceed what was finally transferred.
#[derive(Debug)]
pub struct AttemptCounter {
    progress: Arc<Progress>,
    current: Mutex<Attempt>,
}

#[derive(Debug, Default)]
struct Attempt {
    generation: u64,
    counted: i64,
}

impl AttemptCounter {
    pub fn new(progress: Arc<Progress>) -> Arc<Self> {
        Arc::new(Self {
            progress,
            current: Mutex::new(Attempt::default()),
        })
    }

    /// Starts a new attempt and returns its generation; whatever the previous attempt counted
    /// is reported back as negative.
    pub fn restart(&self) -> u64 {
        let mut attempt = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if attempt.counted != 0 {
            self.progress.add(-attempt.counted);
        }
        attempt.generation += 1;
        attempt.counted = 0;
        attempt.generation
    }

    /// Counts `bytes` moved by attempt `generation`, unless a newer attempt has started.
    pub fn add(&self, generation: u64, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let mut attempt = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if attempt.generation == generation {
            attempt.counted += bytes;
            self.progress.add(bytes);
        }
    }
}

/// Frames handed to the HTTP client: small enough for smooth progress, large enough to cost
/// nothing (slices of one `Bytes`, no copies).
const FRAME_SIZE: usize = 256 * 1024;

/// Frames under a bandwidth limit: smaller, so that the bytes go out smoothly even at low rates.
const PACED_FRAME_SIZE: usize = 64 * 1024;

/// When an upload body last handed bytes over (or, while it waits for its bandwidth slot, when
/// it will), and where its request is: connecting, sending (or awaiting the response), or
/// between two of the SDK's attempts, waiting out the retry backoff on purpose. The request is
/// stalled once that time is `read_timeout` in the past while sending, `connect_timeout` more
/// while connecting, and never in a backoff (see `upload::unless_stalled`).
#[derive(Debug)]
pub struct BodyActivity {
    state: Mutex<Activity>,
    connect_timeout: Duration,
}

#[derive(Debug)]
struct Activity {
    last: Instant,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// An attempt has begun and its body is not yet taken: the connection is being made, which
    /// the connect timeout bounds (botocore's read timeout does not count it).
    Connecting,
    Sending,
    BetweenAttempts,
    /// The body holds its last bytes until the Callback has seen them (see `CommitPoint`): as
    /// long as the Callback takes, as boto3's Callback runs between two of its socket writes,
    /// which no timeout bounds.
    AwaitingCallback,
}

impl BodyActivity {
    pub fn new(connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Activity {
                last: Instant::now(),
                phase: Phase::Connecting,
            }),
            connect_timeout,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The body handed bytes over at `at` (or will, at its bandwidth slot).
    pub fn touch(&self, at: Instant) {
        let mut activity = self.lock();
        activity.last = activity.last.max(at);
        activity.phase = Phase::Sending;
    }

    /// The SDK starts an attempt: its time counts from now.
    pub fn attempt_started(&self) {
        let mut activity = self.lock();
        activity.last = activity.last.max(Instant::now());
        activity.phase = Phase::Connecting;
    }

    /// The SDK ended an attempt; until it starts the next, nothing moves on purpose.
    pub fn attempt_ended(&self) {
        self.lock().phase = Phase::BetweenAttempts;
    }

    /// The body waits for the Callback; `touch` ends the wait.
    pub fn awaiting_callback(&self) {
        self.lock().phase = Phase::AwaitingCallback;
    }

    /// When the request will count as stalled if nothing moves before; None in a backoff or
    /// while the Callback is waited for.
    pub fn stalled_at(&self, read_timeout: Duration) -> Option<Instant> {
        let activity = self.lock();
        match activity.phase {
            Phase::Connecting => Some(activity.last + self.connect_timeout + read_timeout),
            Phase::Sending => Some(activity.last + read_timeout),
            Phase::BetweenAttempts | Phase::AwaitingCallback => None,
        }
    }

    /// When to look again: at the stall time while sending, otherwise within `read_timeout`
    /// (once the body moves, the stall time comes earlier than while connecting).
    pub fn next_check(&self, read_timeout: Duration) -> Instant {
        let activity = self.lock();
        let soon = Instant::now() + read_timeout;
        match activity.phase {
            Phase::Sending => activity.last + read_timeout,
            Phase::Connecting => (activity.last + self.connect_timeout + read_timeout).min(soon),
            Phase::BetweenAttempts | Phase::AwaitingCallback => soon,
        }
    }
}

/// The wait of a body for its observer's report (see `CountingBody::commit`).
type ReportWait = Pin<Box<dyn Future<Output = Result<(), TransferError>> + Send + Sync>>;

/// Where a PutObject commits its object: its last bytes going to the HTTP client. Before it,
/// cancelling the transfer stops the request and nothing is stored; once past it, the request
/// stands (the server may have the whole body) and its answer is waited for, as for a
/// multipart upload's CompleteMultipartUpload. The body and the canceller decide it between
/// them: the body marks the point passed, then sends its last bytes only if the transfer was
/// not cancelled; the canceller cancels, then stops the request only if the point is not
/// passed. (SeqCst: one of the two sees the other.)
#[derive(Debug)]
pub struct CommitPoint {
    progress: Arc<Progress>,
    cancel: CancellationToken,
    passed: AtomicBool,
}

impl CommitPoint {
    /// The commit point of an upload that `cancel` stops and whose Callback, if it has one,
    /// must have seen every byte of `progress` before the last ones go.
    pub fn new(progress: Arc<Progress>, cancel: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            progress,
            cancel,
            passed: AtomicBool::new(false),
        })
    }

    /// Whether the last bytes may have gone: then the request stands.
    pub fn passed(&self) -> bool {
        self.passed.load(Ordering::SeqCst)
    }

    /// The way past the point (of the body, as its last bytes are to go): whether they may.
    pub fn pass(&self) -> bool {
        self.passed.store(true, Ordering::SeqCst);
        !self.cancel.is_cancelled()
    }
}

/// An upload body that counts bytes as the HTTP client takes them, notes its activity, and hands
/// the bytes over no faster than its bandwidth limit, if it has one.
pub struct CountingBody {
    remaining: BodyReader,
    counter: Arc<AttemptCounter>,
    generation: u64,
    activity: Arc<BodyActivity>,
    bandwidth: Option<Arc<BandwidthLimit>>,
    /// The wait for the slot the next frame has reserved.
    paced: Option<Pin<Box<Sleep>>>,
    /// For a body whose last byte commits the object (PutObject): its commit point, whose
    /// progress's observer must have reported every byte, the last frame's included, before
    /// that frame goes.
    commit: Option<Arc<CommitPoint>>,
    /// The wait for that report; the last frame is counted and held meanwhile.
    until_reported: Option<ReportWait>,
}

impl CountingBody {
    /// A body for a new attempt: what earlier bodies of this part counted is taken back.
    /// `commit`: see the field.
    pub fn new(
        data: BodyReader,
        counter: Arc<AttemptCounter>,
        activity: Arc<BodyActivity>,
        bandwidth: Option<Arc<BandwidthLimit>>,
        commit: Option<Arc<CommitPoint>>,
    ) -> Self {
        let generation = counter.restart();
        Self {
            remaining: data,
            counter,
            generation,
            activity,
            bandwidth,
            paced: None,
            commit,
            until_reported: None,
        }
    }

    fn frame_size(&self) -> usize {
        let size = if self.bandwidth.is_some() {
            PACED_FRAME_SIZE
        } else {
            FRAME_SIZE
        };
        self.remaining.available().min(size)
    }
}

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining.len() == 0 {
            return Poll::Ready(None);
        }
        if let Some(wait) = self.until_reported.as_mut() {
            // The last frame, counted already: it goes once the Callback has seen it, past the
            // commit point. Held back, it stops the object's creation if the Callback raises, as
            // in boto3, whose Callback sees the bytes as they are read for sending.
            if ready!(wait.as_mut().poll(cx)).is_err() {
                return Poll::Ready(Some(Err(std::io::Error::other("the transfer was stopped"))));
            }
            self.until_reported = None;
            let frame = self.remaining.take(usize::MAX);
            self.activity.touch(Instant::now());
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        // The bytes first (a file's are read now), then their bandwidth slot.
        if let Err(error) = ready!(self.remaining.poll_fill(cx)) {
            return Poll::Ready(Some(Err(error)));
        }
        match self.paced.as_mut() {
            Some(wait) => {
                ready!(wait.as_mut().poll(cx));
                self.paced = None;
            }
            None => {
                if let Some(bandwidth) = &self.bandwidth {
                    let slot = bandwidth.reserve(self.frame_size() as u64);
                    self.activity.touch(slot);
                    if slot > Instant::now() {
                        let mut wait = Box::pin(tokio::time::sleep_until(slot));
                        if wait.as_mut().poll(cx).is_pending() {
                            self.paced = Some(wait);
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
        let take = self.frame_size();
        if take as u64 == self.remaining.len() {
            if let Some(point) = self.commit.clone() {
                self.counter.add(self.generation, take as u64);
                self.activity.awaiting_callback();
                self.until_reported = Some(Box::pin(async move {
                    point.progress.until_reported(&point.cancel).await?;
                    match point.pass() {
                        true => Ok(()),
                        false => Err(TransferError::Cancelled),
                    }
                }));
                return self.poll_frame(cx);
            }
        }
        let frame = self.remaining.take(take);
        self.counter.add(self.generation, frame.len() as u64);
        self.activity.touch(Instant::now());
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_observer_is_asked_again_until_it_cannot_be() {
        let cancel = CancellationToken::new();
        let asked = Arc::new(AtomicU64::new(0));
        let (counter, closed) = (asked.clone(), cancel.clone());
        // As an asyncio loop that took the first ask and was then closed: the third ask finds
        // it closed, and cancels the transfer.
        let progress = Progress::observed(move || {
            if counter.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                closed.cancel();
            }
        });
        progress.add(10);
        let started = tokio::time::Instant::now();
        let waited = progress.until_reported(&cancel).await;
        assert!(matches!(waited, Err(TransferError::Cancelled)));
        assert_eq!(asked.load(Ordering::SeqCst), 3);
        assert_eq!(started.elapsed(), 2 * ASK_AGAIN);
    }

    #[tokio::test]
    async fn a_commit_waits_for_the_observer_to_report() {
        let asked = Arc::new(AtomicU64::new(0));
        let counter = asked.clone();
        let progress = Progress::observed(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        progress.add(10);
        let cancel = CancellationToken::new();
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            progress.until_reported(&cancel),
        );
        assert!(waiting.await.is_err(), "no report yet: still waiting");
        assert!(
            asked.load(Ordering::SeqCst) >= 1,
            "the observer was asked to report"
        );

        // A report that read the count before the last bytes does not let the commit go.
        progress.reported(4);
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            progress.until_reported(&cancel),
        );
        assert!(waiting.await.is_err(), "a stale report: still waiting");

        let observer = progress.clone();
        let report = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            observer.reported(10);
        });
        progress.until_reported(&cancel).await.expect("reported");
        report.await.expect("reporter");

        cancel.cancel();
        let stopped = progress.until_reported(&cancel).await;
        assert!(matches!(stopped, Err(TransferError::Cancelled)));
        let unobserved = Progress::new();
        unobserved
            .until_reported(&cancel)
            .await
            .expect("nothing to wait for");
    }

    #[test]
    fn a_retried_attempt_is_taken_back() {
        let progress = Progress::new();
        let attempt = AttemptCounter::new(progress.clone());
        let first = attempt.restart();
        attempt.add(first, 100);
        let second = attempt.restart();
        assert_eq!(progress.transferred(), 0);
        attempt.add(second, 40);
        // The superseded attempt is still sending: not counted.
        attempt.add(first, 30);
        attempt.add(second, 60);
        assert_eq!(progress.transferred(), 100);
    }

    #[tokio::test]
    async fn counting_body_counts_every_byte_once() {
        let progress = Progress::new();
        let data = Bytes::from(vec![7u8; 3 * FRAME_SIZE + 5]);
        let body = CountingBody::new(
            BodyReader::Memory(data.clone()),
            AttemptCounter::new(progress.clone()),
            BodyActivity::new(Duration::ZERO),
            None,
            None,
        );
        assert_eq!(
            http_body::Body::size_hint(&body).exact(),
            Some(data.len() as u64)
        );
        let collected = collect(body).await;
        assert_eq!(collected, data);
        assert_eq!(progress.transferred(), data.len() as i64);
    }

    #[tokio::test(start_paused = true)]
    async fn a_limited_body_goes_at_its_bandwidth() {
        let progress = Progress::new();
        let data = Bytes::from(vec![7u8; 4 * PACED_FRAME_SIZE]);
        let limit = Arc::new(BandwidthLimit::new(PACED_FRAME_SIZE as u64));
        let counter = AttemptCounter::new(progress);
        let body = CountingBody::new(
            BodyReader::Memory(data.clone()),
            counter,
            BodyActivity::new(Duration::ZERO),
            Some(limit),
            None,
        );
        let start = Instant::now();
        assert_eq!(collect(body).await, data);
        // One frame a second, the first at once.
        assert_eq!(start.elapsed(), std::time::Duration::from_secs(3));
    }

    /// A body whose last frame commits, and the number of times it asked the observer.
    fn committing_body(
        len: usize,
    ) -> (
        CountingBody,
        Arc<Progress>,
        CancellationToken,
        Arc<AtomicU64>,
    ) {
        let asked = Arc::new(AtomicU64::new(0));
        let asks = asked.clone();
        let progress = Progress::observed(move || {
            asks.fetch_add(1, Ordering::Relaxed);
        });
        let cancel = CancellationToken::new();
        let body = CountingBody::new(
            BodyReader::Memory(Bytes::from(vec![7u8; len])),
            AttemptCounter::new(progress.clone()),
            BodyActivity::new(Duration::ZERO),
            None,
            Some(CommitPoint::new(progress.clone(), cancel.clone())),
        );
        (body, progress, cancel, asked)
    }

    #[tokio::test]
    async fn a_committing_body_holds_its_last_frame_until_the_observer_has_reported() {
        let (mut body, progress, _cancel, asked) = committing_body(FRAME_SIZE + 5);
        let first = next_frame(&mut body).await.expect("a frame").expect("data");
        assert_eq!(first.into_data().map(|d| d.len()).ok(), Some(FRAME_SIZE));
        let mut last = Box::pin(next_frame(&mut body));
        assert!(poll_once(last.as_mut()).await.is_none());
        // Counted before it goes, and the observer asked to report.
        assert_eq!(progress.transferred(), (FRAME_SIZE + 5) as i64);
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        progress.reported(progress.transferred());
        let last = last.await.expect("a frame").expect("data");
        assert_eq!(last.into_data().map(|d| d.len()).ok(), Some(5));
    }

    #[tokio::test]
    async fn a_committing_body_fails_when_its_transfer_is_cancelled() {
        let (mut body, _progress, cancel, _asked) = committing_body(5);
        let mut last = Box::pin(next_frame(&mut body));
        assert!(poll_once(last.as_mut()).await.is_none());
        cancel.cancel();
        assert!(last.await.expect("an outcome").is_err());
    }

    /// A body of `len` bytes without a Callback, whose last frame commits, and its commit point.
    fn unobserved_committing_body(
        len: usize,
    ) -> (CountingBody, Arc<CommitPoint>, CancellationToken) {
        let progress = Progress::new();
        let cancel = CancellationToken::new();
        let commit = CommitPoint::new(progress.clone(), cancel.clone());
        let body = CountingBody::new(
            BodyReader::Memory(Bytes::from(vec![7u8; len])),
            AttemptCounter::new(progress),
            BodyActivity::new(Duration::ZERO),
            None,
            Some(commit.clone()),
        );
        (body, commit, cancel)
    }

    #[tokio::test]
    async fn a_commit_point_is_passed_when_the_last_frame_goes() {
        let (mut body, commit, _cancel) = unobserved_committing_body(FRAME_SIZE + 5);
        next_frame(&mut body).await.expect("a frame").expect("data");
        assert!(!commit.passed(), "the last bytes have not gone");
        let last = next_frame(&mut body).await.expect("a frame").expect("data");
        assert_eq!(last.into_data().map(|d| d.len()).ok(), Some(5));
        assert!(commit.passed());
    }

    #[tokio::test]
    async fn a_body_cancelled_before_its_commit_point_keeps_its_last_frame() {
        let (mut body, _commit, cancel) = unobserved_committing_body(FRAME_SIZE + 5);
        next_frame(&mut body).await.expect("a frame").expect("data");
        cancel.cancel();
        assert!(next_frame(&mut body).await.expect("an outcome").is_err());
    }

    async fn next_frame(body: &mut CountingBody) -> Option<Result<Frame<Bytes>, std::io::Error>> {
        std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut *body), cx)).await
    }

    /// Polls `future` once: its output if it is ready.
    async fn poll_once<T>(mut future: Pin<&mut impl Future<Output = T>>) -> Option<T> {
        std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }

    /// Drains a body the way the HTTP client does, frame by frame.
    async fn collect(mut body: CountingBody) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(frame) = next_frame(&mut body).await {
            if let Ok(data) = frame.expect("the body's bytes").into_data() {
                out.extend_from_slice(&data);
            }
        }
        out
    }
}
