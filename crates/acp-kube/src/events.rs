//! Kubernetes Events (`events.k8s.io/v1`) with bounded memory.
//!
//! kube-runtime's `Recorder` keeps every event it published for six minutes,
//! to turn repeats into a series, and scans that cache on every publish: an
//! operator reporting 100,000 session transitions held hundreds of MiB of
//! events. acp's components publish on transitions, so a repeat is rare and
//! can simply be dropped: [`Publisher`] creates each event once and remembers
//! only a digest of the last [`REMEMBERED`] ones, for [`REPEAT_WINDOW`].

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// Digests of recent events kept to drop repeats.
pub const REMEMBERED: usize = 4096;
/// A repeat of an event within this long is dropped.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(300);

/// Publishes events as one reporting controller.
pub struct Publisher {
    client: kube::Client,
    reporter: Reporter,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    at: HashMap<u64, Instant>,
    order: VecDeque<u64>,
}

impl Recent {
    /// Records `digest` at `now`; false when it was seen within the window.
    fn first(&mut self, digest: u64, now: Instant) -> bool {
        if self.at.get(&digest).is_some_and(|seen| now.duration_since(*seen) < REPEAT_WINDOW) {
            return false;
        }
        if self.at.insert(digest, now).is_none() {
            self.order.push_back(digest);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.at.remove(&old);
            }
        }
        true
    }
}

impl Publisher {
    /// A publisher reporting as `reporter`.
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self { client, reporter, recent: Mutex::default() }
    }

    /// Creates `event` about `regarding` (in its namespace), unless the same
    /// one was published within [`REPEAT_WINDOW`].
    pub async fn publish(&self, event: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let mut hasher = DefaultHasher::new();
        (&regarding.uid, &regarding.namespace, &regarding.name, &event.reason, &event.note, &event.action)
            .hash(&mut hasher);
        let fresh = self.recent.lock().map(|mut r| r.first(hasher.finish(), Instant::now())).unwrap_or(true);
        if !fresh {
            return Ok(());
        }
        let object = build(event, regarding, &self.reporter, Timestamp::now());
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        Api::<KubeEvent>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &object)
            .await?;
        Ok(())
    }

    /// Publishes `events` about `regarding`, in order and each best effort:
    /// a failure is logged and the others are still published.
    pub async fn publish_all(&self, events: &[Event], regarding: &ObjectReference) {
        for event in events {
            if let Err(error) = self.publish(event, regarding).await {
                tracing::warn!(reason = %event.reason, %error, "failed to publish an event");
            }
        }
    }
}

/// An event reporting on `action` (`"Reconcile"`): a Warning when `warning`,
/// else Normal.
pub fn event(warning: bool, reason: impl Into<String>, note: impl Into<String>, action: &str) -> Event {
    Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.into(),
        note: Some(note.into()),
        action: action.into(),
        secondary: None,
    }
}

/// The Event object (pure): named after what it regards and when, so names
/// never collide in practice.
pub fn build(event: &Event, regarding: &ObjectReference, reporter: &Reporter, now: Timestamp) -> KubeEvent {
    let name =
        format!("{}.{:x}", regarding.name.as_deref().unwrap_or("object"), now.as_nanosecond().unsigned_abs());
    let instance = reporter.instance.clone().unwrap_or_else(|| reporter.controller.clone());
    KubeEvent {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        note: event.note.clone(),
        type_: Some(match event.type_ {
            EventType::Normal => "Normal".into(),
            EventType::Warning => "Warning".into(),
        }),
        regarding: Some(regarding.clone()),
        related: event.secondary.clone(),
        event_time: Some(MicroTime(now)),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(instance),
        ..KubeEvent::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_regards_its_object_and_names_its_reporter() {
        let regarding = ObjectReference {
            name: Some("fix".into()),
            namespace: Some("team".into()),
            uid: Some("u-1".into()),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "Failed".into(),
            note: Some("the runner exited 2".into()),
            action: "Reconcile".into(),
            secondary: None,
        };
        let reporter = Reporter { controller: "acp-operator".into(), instance: None };
        let now: Timestamp = "2026-11-30T12:00:00Z".parse().expect("time");
        let built = build(&event, &regarding, &reporter, now);
        assert_eq!(built.metadata.namespace.as_deref(), Some("team"));
        assert!(built.metadata.name.as_deref().is_some_and(|n| n.starts_with("fix.")));
        assert_eq!(built.type_.as_deref(), Some("Warning"));
        assert_eq!(built.regarding.and_then(|r| r.uid).as_deref(), Some("u-1"));
        assert_eq!(built.reporting_instance.as_deref(), Some("acp-operator"));
    }

    #[test]
    fn an_event_is_a_warning_or_normal_about_its_action() {
        let warning = event(true, "Failed", "the runner exited 2", "Reconcile");
        assert!(matches!(warning.type_, EventType::Warning));
        assert_eq!(
            (warning.reason.as_str(), warning.note.as_deref(), warning.action.as_str()),
            ("Failed", Some("the runner exited 2"), "Reconcile")
        );
        assert!(warning.secondary.is_none());
        assert!(matches!(
            event(false, "Scheduled", String::from("run 1"), "Schedule").type_,
            EventType::Normal
        ));
    }

    #[test]
    fn repeats_within_the_window_are_dropped_and_memory_is_bounded() {
        let mut recent = Recent::default();
        let start = Instant::now();
        assert!(recent.first(1, start));
        assert!(!recent.first(1, start + Duration::from_secs(10)), "a repeat");
        assert!(recent.first(1, start + REPEAT_WINDOW), "after the window");
        for digest in 2..(REMEMBERED as u64 + 100) {
            recent.first(digest, start);
        }
        assert_eq!(recent.at.len(), REMEMBERED);
        assert_eq!(recent.order.len(), REMEMBERED);
    }
}
