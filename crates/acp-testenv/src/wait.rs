//! Waiting on conditions with a deadline: the only synchronisation tests use.

use std::future::Future;
use std::time::Duration;

/// Deadline used by the harness's own waits.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `check` until it returns `Some`, and returns that value. Panics with
/// `what` when `timeout` passes first. Polls every 50 ms: a condition check,
/// not a sleep standing in for synchronisation.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
