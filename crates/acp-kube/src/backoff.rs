//! Per-object exponential backoff for reconcile errors (`backon`'s
//! exponential builder with jitter): each failing object waits 1 s, 2 s, 4 s …
//! up to a cap, independently of the others, and starts over once it succeeds.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};

/// Objects idle this long (no failure) are forgotten, so deleted objects do
/// not accumulate.
const IDLE: Duration = Duration::from_secs(3600);

/// Backoff state per key.
pub struct PerObject<K> {
    builder: ExponentialBuilder,
    state: Mutex<HashMap<K, (ExponentialBackoff, Instant)>>,
}

impl<K: Eq + Hash + Clone> PerObject<K> {
    /// Delays from `min` doubling up to `max`, jittered.
    pub fn new(min: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times();
        Self { builder, state: Mutex::default() }
    }

    /// The delay before retrying `key` after one more failure.
    pub fn failed(&self, key: &K) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        state.retain(|_, (_, last)| now.duration_since(*last) < IDLE);
        let (backoff, last) = state.entry(key.clone()).or_insert_with(|| (self.builder.build(), now));
        *last = now;
        // Without a maximum number of times the iterator never ends.
        backoff.next().unwrap_or(Duration::from_secs(1))
    }

    /// `key` succeeded: its next failure starts from the minimum again.
    pub fn succeeded(&self, key: &K) {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_per_object_up_to_the_cap_and_resets_on_success() {
        let backoff = PerObject::new(Duration::from_secs(1), Duration::from_secs(300));
        let delays: Vec<Duration> = (0..12).map(|_| backoff.failed(&"a")).collect();
        // Jitter adds up to one more delay's worth; the base doubles.
        assert!(delays[0] >= Duration::from_secs(1) && delays[0] < Duration::from_secs(3), "{delays:?}");
        assert!(delays[3] >= Duration::from_secs(8), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(600)), "{delays:?}");
        assert!(delays[11] >= Duration::from_secs(300), "the cap is reached: {delays:?}");
        assert!(backoff.failed(&"b") < Duration::from_secs(3), "another object starts low");
        backoff.succeeded(&"a");
        assert!(backoff.failed(&"a") < Duration::from_secs(3), "success resets");
    }
}
