//! The shell every controller's reconcile runs in (git-sync, the status bot,
//! the operator, the scheduler), in the style of kube-rs's controller-rs: the
//! failures they all share ([`KubeError`], [`Invalid`], and [`Error`] for a
//! controller that has no others), the bounded categories failures are
//! counted by ([`Categorized`]), and the one error policy ([`ErrorPolicy`]):
//! each failing object waits longer and longer, independently of the others
//! ([`PerObject`]), the failure is logged with its category and counted in
//! the component's reconcile-error metric, and a success starts the object's
//! backoff over.
//!
//! A component keeps its own failures (GitHub, git, templates …) in its own
//! `Error` enum, next to [`KubeError`] and [`Invalid`], and implements
//! [`Categorized`] for it, delegating the shared ones.

use std::hash::Hash;
use std::time::Duration;

use kube::Resource;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::backoff::PerObject;

/// Category of a failed Kubernetes API call.
pub const KUBE: &str = "kube";
/// Category of an object that cannot be reconciled as it is.
pub const INVALID: &str = "invalid";

/// The first retry of a failing object comes after about this long…
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// … and doubles each time up to this (jitter adds up to as much again).
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// A failure with a bounded category: a metric label and a log field.
pub trait Categorized: std::error::Error {
    /// [`KUBE`], [`INVALID`], or one of the component's own (a small fixed
    /// set, never built from the error's text).
    fn category(&self) -> &'static str;
}

/// A Kubernetes API call failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action}: {source}")]
pub struct KubeError {
    /// What was being done (`"write the session status"`).
    pub action: &'static str,
    /// The client error.
    pub source: kube::Error,
}

impl KubeError {
    /// True when the API server refused a write because the object changed
    /// since it was read (409): not a failure, the newer object is coming.
    pub fn is_conflict(&self) -> bool {
        matches!(&self.source, kube::Error::Api(status) if status.code == 409)
    }
}

impl Categorized for KubeError {
    fn category(&self) -> &'static str {
        KUBE
    }
}

/// `map_err(kube_err("write the status"))`: a client error as a [`KubeError`].
pub fn kube_err(action: &'static str) -> impl FnOnce(kube::Error) -> KubeError {
    move |source| KubeError { action, source }
}

/// The object cannot be reconciled as it is (no namespace, no uid yet).
#[derive(Debug, thiserror::Error)]
#[error("failed to read {kind}: {why}")]
pub struct Invalid {
    /// What the object is (`"session"`).
    pub kind: &'static str,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Categorized for Invalid {
    fn category(&self) -> &'static str {
        INVALID
    }
}

/// The failures of a controller that has none of its own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The object is unusable.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::Kube(e) => e.category(),
            Self::Invalid(e) => e.category(),
        }
    }
}

/// Label of reconcile-error counters (`…_reconcile_errors_total{category}`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// [`Categorized::category`].
    pub category: &'static str,
}

/// One controller's error policy: per-object backoff, a log line and a
/// count per failure. Shared by its `error_policy` (through the context) and
/// the loop over its results ([`ErrorPolicy::observe`]).
pub struct ErrorPolicy<K: Resource>
where
    K::DynamicType: Eq + Hash + Clone,
{
    backoff: PerObject<ObjectRef<K>>,
    errors: Option<Family<ErrorLabels, Counter>>,
}

impl<K: Resource> ErrorPolicy<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// Backoff from [`MIN_DELAY`] to [`MAX_DELAY`], failures counted in
    /// `errors` (none: a component without metrics).
    pub fn new(errors: Option<Family<ErrorLabels, Counter>>) -> Self {
        Self::with_delays(MIN_DELAY, MAX_DELAY, errors)
    }

    /// Backoff from `min` doubling up to `max`.
    pub fn with_delays(min: Duration, max: Duration, errors: Option<Family<ErrorLabels, Counter>>) -> Self {
        Self { backoff: PerObject::new(min, max), errors }
    }

    /// What a controller's `error_policy` returns: `error` is counted by
    /// category and logged, and `object` is retried after its next delay.
    pub fn failed(&self, object: &K, error: &(impl Categorized + ?Sized)) -> Action
    where
        K::DynamicType: Default,
    {
        Action::requeue(self.delay(&ObjectRef::from_obj(object), error))
    }

    fn delay(&self, object: &ObjectRef<K>, error: &(impl Categorized + ?Sized)) -> Duration {
        let category = error.category();
        if let Some(errors) = &self.errors {
            errors.get_or_create(&ErrorLabels { category }).inc();
        }
        let delay = self.backoff.failed(object);
        tracing::warn!(
            kind = %K::kind(&object.dyntype),
            object = %object.name,
            namespace = object.namespace.as_deref().unwrap_or_default(),
            category,
            %error,
            retry_in = ?delay,
            "reconcile failed"
        );
        delay
    }

    /// `object` reconciled: its next failure waits the least again.
    pub fn succeeded(&self, object: &ObjectRef<K>) {
        self.backoff.succeeded(object);
    }

    /// Looks at one of the controller's results (`Controller::run`'s
    /// stream): a success starts its object's backoff over.
    pub fn observe<E, Q>(&self, result: &Result<(ObjectRef<K>, Action), controller::Error<E, Q>>) {
        if let Ok((object, _)) = result {
            self.succeeded(object);
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use prometheus_client::registry::Registry;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to render: it broke")]
    struct Render;

    impl Categorized for Render {
        fn category(&self) -> &'static str {
            "render"
        }
    }

    fn object(name: &str) -> ObjectRef<ConfigMap> {
        ObjectRef::new(name).within("team")
    }

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("refused", "Refused").with_code(code).boxed())
    }

    #[test]
    fn backoff_grows_per_object_independently_and_resets_on_success() {
        let policy = ErrorPolicy::<ConfigMap>::new(None);
        let error = Error::from(Invalid { kind: "source", why: "a SessionSource must be namespaced" });
        let a: Vec<Duration> = (0..6).map(|_| policy.delay(&object("a"), &error)).collect();
        // 1 s, 2 s, 4 s, 8 s … each with up to one more delay's worth of jitter.
        assert!(a[0] >= MIN_DELAY && a[0] < 3 * MIN_DELAY, "{a:?}");
        assert!(a[3] >= Duration::from_secs(8), "a fixed delay would not grow: {a:?}");
        assert!(a[5] >= Duration::from_secs(32), "{a:?}");
        assert!(a.iter().all(|d| *d <= 2 * MAX_DELAY), "{a:?}");
        // Another object has its own backoff, in the same namespace or not.
        assert!(policy.delay(&object("b"), &error) < Duration::from_secs(3));
        let elsewhere = ObjectRef::<ConfigMap>::new("a").within("other");
        assert!(policy.delay(&elsewhere, &error) < Duration::from_secs(3));
        assert!(policy.delay(&object("a"), &error) >= Duration::from_secs(64), "a keeps growing");

        // A success seen in the controller's results starts `a` over, not `b`.
        let ok: Result<_, controller::Error<Error, std::io::Error>> =
            Ok((object("a"), Action::await_change()));
        policy.observe(&ok);
        assert!(policy.delay(&object("a"), &error) < Duration::from_secs(3), "success resets");
        assert!(policy.delay(&object("b"), &error) >= Duration::from_secs(2), "b still backs off");
        // A failure in the results resets nothing.
        let failed: Result<(ObjectRef<ConfigMap>, Action), _> =
            Err(controller::Error::<Error, std::io::Error>::QueueError(std::io::Error::other("watch")));
        policy.observe(&failed);
        assert!(policy.delay(&object("a"), &error) >= Duration::from_secs(2));
    }

    #[test]
    fn the_error_policy_requeues_and_advances_the_objects_backoff() {
        let policy = ErrorPolicy::<ConfigMap>::new(None);
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some("a".into()),
                namespace: Some("team".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        for _ in 0..5 {
            assert_ne!(policy.failed(&map, &Render), Action::await_change(), "a failure is retried");
        }
        // Five failures through `failed`: the sixth waits at least 32 s.
        assert!(policy.delay(&object("a"), &Render) >= Duration::from_secs(32));
    }

    #[test]
    fn the_metric_counts_failures_by_their_category() {
        let errors = Family::<ErrorLabels, Counter>::default();
        let mut registry = Registry::with_prefix("acp_test");
        registry.register("reconcile_errors", "Reconcile failures by category", errors.clone());
        let policy = ErrorPolicy::<ConfigMap>::new(Some(errors));
        let kube_error = Error::from(kube_err("write the session status")(api_error(500)));
        policy.delay(&object("a"), &kube_error);
        policy.delay(&object("b"), &kube_error);
        policy.delay(&object("a"), &Render);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains(r#"acp_test_reconcile_errors_total{category="kube"} 2"#), "{text}");
        assert!(text.contains(r#"acp_test_reconcile_errors_total{category="render"} 1"#), "{text}");
    }

    #[test]
    fn shared_failures_have_their_messages_and_categories() {
        let error = Error::from(kube_err("write the session status")(api_error(409)));
        assert_eq!(error.category(), KUBE);
        assert!(error.to_string().starts_with("failed to write the session status: "), "{error}");
        assert!(std::error::Error::source(&error).is_some(), "the client error is the source");
        assert!(matches!(&error, Error::Kube(e) if e.is_conflict()));
        assert!(!kube_err("write")(api_error(500)).is_conflict());
        let invalid = Error::from(Invalid { kind: "schedule", why: "a schedule has no uid yet" });
        assert_eq!(invalid.category(), INVALID);
        assert_eq!(invalid.to_string(), "failed to read schedule: a schedule has no uid yet");
    }
}
