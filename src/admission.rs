//! Transfers wait their turn rather than fail for want of file descriptors.
//!
//! A running transfer holds a connection per request in flight, and a file. Hundreds started
//! at once (an `asyncio.gather`, green threads, a pool of threads) would pass the process's
//! open-file limit (1024 by default on Linux, 256 on macOS): those past it failed with EMFILE
//! ("Too many open files"), where aiobotocore's wait for a pooled connection. The engine starts
//! transfers while the descriptors they may hold fit in three quarters of the limit (the rest
//! is the application's own); the others wait, in the order they came.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::errors::TransferError;

/// What a directory transfer counts for each object in flight: its file, its connection, and
/// one more the connection pool may keep. (`_directory.objects_in_flight` fits the objects in
/// flight to the open-file limit by it.)
pub const DESCRIPTORS_PER_OBJECT: usize = 3;

/// The file descriptors a directory transfer with `objects_in_flight` may hold.
pub fn batch_descriptors(objects_in_flight: usize) -> usize {
    objects_in_flight.saturating_mul(DESCRIPTORS_PER_OBJECT)
}

pub struct Admission {
    descriptors: Arc<Semaphore>,
    budget: usize,
}

impl Admission {
    /// Admission within this process's open-file limit, as it is now.
    pub fn within_open_file_limit() -> Self {
        Self::with_budget(descriptor_budget(open_file_limit()))
    }

    fn with_budget(budget: usize) -> Self {
        let budget = budget.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            descriptors: Arc::new(Semaphore::new(budget)),
            budget,
        }
    }

    /// Waits until a transfer that may hold `descriptors` can start, and holds them for it
    /// until the permit is dropped. One that may hold more than the whole budget runs alone.
    pub async fn admit(
        &self,
        descriptors: usize,
        cancel: &CancellationToken,
    ) -> Result<OwnedSemaphorePermit, TransferError> {
        let wanted = u32::try_from(descriptors.clamp(1, self.budget)).unwrap_or(u32::MAX);
        tokio::select! {
            permit = self.descriptors.clone().acquire_many_owned(wanted) => permit
                .map_err(|_| TransferError::Internal("the admission semaphore closed".into())),
            _ = cancel.cancelled() => Err(TransferError::Cancelled),
        }
    }
}

/// The soft limit on this process's open files; `usize::MAX` when there is none.
fn open_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return usize::MAX;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Three quarters of the open-file limit: the transfers' share.
fn descriptor_budget(open_file_limit: usize) -> usize {
    open_file_limit / 4 * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transfers_wait_while_the_budget_is_taken_and_start_in_turn() {
        let admission = Admission::with_budget(10);
        let cancel = CancellationToken::new();
        let first = admission.admit(6, &cancel).await;
        assert!(first.is_ok());
        let second = admission.admit(6, &cancel);
        tokio::pin!(second);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), &mut second);
        assert!(waited.await.is_err(), "admitted beyond the budget");
        drop(first);
        assert!(second.await.is_ok());
    }

    #[tokio::test]
    async fn a_transfer_larger_than_the_budget_runs_alone() {
        let admission = Admission::with_budget(10);
        let cancel = CancellationToken::new();
        let alone = admission.admit(1_000, &cancel).await;
        assert!(alone.is_ok());
        assert_eq!(admission.descriptors.available_permits(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_transfer_stops_waiting() {
        let admission = Admission::with_budget(1);
        let cancel = CancellationToken::new();
        let _held = admission.admit(1, &cancel).await;
        let waiting = CancellationToken::new();
        waiting.cancel();
        let outcome = admission.admit(1, &waiting).await;
        assert!(matches!(outcome, Err(TransferError::Cancelled)));
    }

    #[test]
    fn the_budget_is_three_quarters_of_the_limit() {
        assert_eq!(descriptor_budget(1024), 768);
        assert_eq!(descriptor_budget(256), 192);
        assert!(Admission::with_budget(descriptor_budget(usize::MAX)).budget <= u32::MAX as usize);
        assert!(open_file_limit() > 0);
    }
}
