//! The server-wide query limits both endpoints share: a bounded number of queries at
//! once, and one timeout for waiting for a slot plus running and sending the rows.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots for queries running at once and the per-query timeout.
#[derive(Clone)]
pub(crate) struct Limits {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    timeout: Duration,
}

/// Why a query got no slot.
pub(crate) enum Refused {
    /// Every slot stayed taken for the whole timeout.
    Busy(String),
    /// The server is closing.
    ShuttingDown,
}

impl Limits {
    /// `max_concurrent` slots (at least one) and `timeout` per query.
    pub(crate) fn new(max_concurrent: usize, timeout: Duration) -> Limits {
        let max_concurrent = max_concurrent.max(1);
        Limits {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            timeout,
        }
    }

    /// Waits (up to the timeout) for a slot; returns it and the time the query has left.
    pub(crate) async fn slot(&self) -> Result<(OwnedSemaphorePermit, Duration), Refused> {
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(self.timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok((permit, self.timeout.saturating_sub(started.elapsed()))),
            Ok(Err(_)) => Err(Refused::ShuttingDown),
            Err(_) => Err(Refused::Busy(format!(
                "server busy: {} queries running for {} s; try again later",
                self.max_concurrent,
                self.timeout.as_secs()
            ))),
        }
    }

    /// What a client whose query ran past the timeout is told.
    pub(crate) fn stopped(&self) -> String {
        format!(
            "query stopped after {} s (the server's --query-timeout)",
            self.timeout.as_secs()
        )
    }
}
