//! Noticing that this process was paused (SIGSTOP, a VM stall, swap): a heartbeat
//! every [`HEARTBEAT`], and any gap over [`PAUSE_SUSPECT`] between the last beat and now
//! makes the node *suspect*.
//!
//! A suspect node serves nothing and refuses its peers' data requests: its view may be
//! out of date (the others may have declared it down and moved on), and requests that
//! waited in its sockets during the pause are stale. It is trusted again when every
//! other member of its view answers the status poll on the same view (the pause went
//! unnoticed), or it rejoins under a new incarnation; a node that was paused and then
//! declared down discards its copy (the others kept serving without it) and pulls
//! everything again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How often the heartbeat beats.
pub(super) const HEARTBEAT: Duration = Duration::from_millis(100);
/// A gap this long between beats means the process did not run: shorter than the
/// failure detector's 1.1 s, so a pause that can get the node declared down is noticed.
pub(super) const PAUSE_SUSPECT: Duration = Duration::from_millis(700);

/// The heartbeat and what it noticed.
#[derive(Debug)]
pub(super) struct PauseWatch {
    start: Instant,
    /// Milliseconds from `start` to the last beat.
    last_beat: AtomicU64,
    /// Paused, and not trusted again yet.
    suspect: AtomicBool,
    /// Paused since the last rejoin.
    paused: AtomicBool,
}

impl Default for PauseWatch {
    fn default() -> Self {
        PauseWatch {
            start: Instant::now(),
            last_beat: AtomicU64::new(0),
            suspect: AtomicBool::new(false),
            paused: AtomicBool::new(false),
        }
    }
}

impl PauseWatch {
    fn now_ms(&self) -> u64 {
        Instant::now().duration_since(self.start).as_millis() as u64
    }

    /// Beats; called every [`HEARTBEAT`].
    pub(super) fn beat(&self) {
        self.check();
        self.last_beat.store(self.now_ms(), Ordering::Release);
    }

    /// Whether the node is suspect now (checking the gap since the last beat first).
    pub(super) fn check(&self) -> bool {
        let gap = self
            .now_ms()
            .saturating_sub(self.last_beat.load(Ordering::Acquire));
        if gap > PAUSE_SUSPECT.as_millis() as u64 && !self.suspect.swap(true, Ordering::AcqRel) {
            self.paused.store(true, Ordering::Release);
            tracing::warn!(
                gap_ms = gap,
                "this node did not run for a while: suspect until its view is confirmed"
            );
        }
        self.suspect.load(Ordering::Acquire)
    }

    /// The node's view was confirmed by every member, or it rejoined.
    pub(super) fn trust(&self) {
        if self.suspect.swap(false, Ordering::AcqRel) {
            tracing::info!("view confirmed after a pause");
        }
    }

    /// Whether the node was paused since the last call (which clears it).
    pub(super) fn take_paused(&self) -> bool {
        self.paused.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_gap_between_beats_makes_the_node_suspect_until_trusted() {
        let watch = PauseWatch::default();
        watch.beat();
        tokio::time::advance(HEARTBEAT).await;
        assert!(!watch.check());
        watch.beat();
        tokio::time::advance(PAUSE_SUSPECT + HEARTBEAT).await;
        assert!(
            watch.check(),
            "a request handled before the next beat sees the pause"
        );
        watch.beat();
        assert!(watch.check(), "still suspect after beating again");
        watch.trust();
        assert!(!watch.check());
        assert!(watch.take_paused());
        assert!(!watch.take_paused());
    }
}
