//! What the operator's reconcile steps share: its settings ([`Config`]),
//! its one error type ([`Error`]) and the state of the reconcilers
//! ([`Context`]: client, caches, metrics, event publisher, backoff).

use std::sync::Arc;

use acp_api::AgenticSession;
use acp_kube::events::Publisher;
use acp_kube::reconcile::{Categorized, ErrorPolicy, Invalid, KubeError};
use kube::Client;
use kube::runtime::reflector::Store;

use crate::cache::Caches;
use crate::children::ChildConfig;
use crate::threads::Vouchers;

/// Operator settings.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// How children are shaped.
    pub children: ChildConfig,
    /// Run sessions as local `acp runner` processes instead of Jobs.
    pub process: Option<crate::process::ProcessConfig>,
    /// The sessions (and children) this replica set handles.
    pub shard: acp_api::shard::Shard,
    /// Sessions reconciled at once (0: the default, 32).
    pub concurrency: u16,
}

/// A reconcile failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The runner's credentials are missing (retried with backoff).
    #[error("failed to assemble runner credentials: {0}")]
    SecretMissing(String),
    /// The object is unusable.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A local runner process could not be started.
    #[error("{0}")]
    Process(String),
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::Kube(e) => e.category(),
            Self::SecretMissing(_) => "secret_missing",
            Self::Invalid(e) => e.category(),
            Self::Process(_) => "process",
        }
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    pub(crate) client: Client,
    pub(crate) config: Config,
    pub(crate) recorder: Publisher,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Per-session backoff and the count of reconcile failures.
    pub(crate) errors: Arc<ErrorPolicy<AgenticSession>>,
    pub(crate) caches: Arc<Caches>,
    pub(crate) sessions: Store<AgenticSession>,
    pub(crate) vouchers: Arc<Vouchers>,
}
