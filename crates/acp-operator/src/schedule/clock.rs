//! The scheduler's time source. Production reads the system clock and wakes
//! on requeue timers; tests inject a [`ManualClock`] and wake the scheduler
//! when they move it, so no test waits for a due minute.

use std::sync::{Arc, Mutex};

use futures_util::stream::{self, BoxStream, StreamExt as _};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
    /// Fires whenever the time jumps (never for the system clock): every
    /// schedule is then looked at again.
    fn jumps(&self) -> BoxStream<'static, ()>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn jumps(&self) -> BoxStream<'static, ()> {
        stream::pending().boxed()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
    jumped: watch::Sender<u64>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Arc<Self> {
        Arc::new(Self { now: Mutex::new(start), jumped: watch::Sender::new(0) })
    }

    /// Sets the time and wakes the scheduler.
    pub fn set(&self, t: Timestamp) {
        if let Ok(mut now) = self.now.lock() {
            *now = t;
        }
        self.jumped.send_modify(|n| *n += 1);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: SignedDuration) {
        let now = self.now();
        self.set(now.checked_add(by).unwrap_or(now));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.now.lock().map_or(Timestamp::UNIX_EPOCH, |t| *t)
    }

    fn jumps(&self) -> BoxStream<'static, ()> {
        let mut rx = self.jumped.subscribe();
        rx.mark_unchanged();
        stream::unfold(rx, |mut rx| async move { rx.changed().await.ok().map(|()| ((), rx)) }).boxed()
    }
}
