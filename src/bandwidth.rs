//! `TransferConfig.max_bandwidth`: one limit shared by every part (and, in the directory API,
//! every object) of a call, as s3transfer shares one per transfer manager. Bytes are paced
//! against a virtual clock: each chunk reserves the time it takes at the limit, and whoever
//! moves it waits until its slot comes. Idle time is not saved up, so a burst after a pause
//! goes no faster than the limit. A body dropped while it waits (a retry, a cancel) keeps its
//! slot: the others lose at most one frame's time.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct BandwidthLimit {
    bytes_per_second: f64,
    /// When the bytes reserved so far will have gone at the limit.
    free_at: Mutex<Instant>,
}

impl BandwidthLimit {
    pub fn new(bytes_per_second: u64) -> Self {
        Self {
            bytes_per_second: bytes_per_second.max(1) as f64,
            free_at: Mutex::new(Instant::now()),
        }
    }

    /// Reserves the time `bytes` take at the limit and returns when they may go.
    pub fn reserve(&self, bytes: u64) -> Instant {
        let mut free_at = self.free_at.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*free_at).max(Instant::now());
        *free_at = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second);
        start
    }

    /// Waits for the slot of `bytes`.
    pub async fn pace(&self, bytes: u64) {
        tokio::time::sleep_until(self.reserve(bytes)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bytes_go_at_the_limit_and_idle_time_is_not_saved_up() {
        let limit = BandwidthLimit::new(1000);
        let start = Instant::now();
        for _ in 0..4 {
            limit.pace(500).await;
        }
        // The first 500 go at once, the next three wait half a second each.
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let resumed = Instant::now();
        limit.pace(1000).await;
        limit.pace(1000).await;
        assert_eq!(resumed.elapsed(), Duration::from_secs(1));
    }
}
