//! Lease-based leader election (coordination.k8s.io/v1 Lease), so that of
//! several replicas of a controller exactly one acts.
//!
//! It follows client-go's leader election, whose guarantees come from local
//! monotonic time only, never from comparing another machine's clock with
//! ours:
//! - a candidate considers a held lease expired once it has *observed* no
//!   change to it for a whole lease duration (the `renewTime` written by the
//!   holder's clock is informational);
//! - the leader renews every `retry`, and stops leading when it could not
//!   renew within `renew_deadline` (shorter than the lease duration) of its
//!   last successful renewal: it is gone before any candidate can take over;
//! - every write carries the resourceVersion it read, so two candidates never
//!   both win a round.
//!
//! Why hand-written: `kube-lease-manager` (0.13, kube 5) fits in API, but it
//! decides expiry by comparing the holder's `renewTime` with the local clock
//! (tolerating a configured skew), which is what this module must not do.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (pod name, or host and pid).
    pub identity: String,
    /// How long candidates wait, after the last change they saw, before they
    /// take the lease.
    pub duration: Duration,
    /// How long the leader keeps leading without a successful renewal.
    /// Shorter than `duration`.
    pub renew_deadline: Duration,
    /// How often the leader renews and candidates retry.
    pub retry: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: a 15 s lease, a 10 s renew deadline, a 2 s retry.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }

    /// The same timings, scaled (tests use short leases). The lease is
    /// published in whole seconds, rounded up; the renew deadline is kept
    /// below the duration and the retry below the renew deadline.
    pub fn with_timings(mut self, duration: Duration, renew_deadline: Duration, retry: Duration) -> Self {
        self.duration = Duration::from_secs(duration.as_secs() + u64::from(duration.subsec_nanos() > 0))
            .max(Duration::from_secs(1));
        self.renew_deadline = renew_deadline.min(self.duration * 2 / 3);
        self.retry = retry.min(self.renew_deadline / 2);
        self
    }
}

/// One replica's view of the lease: what it last saw and when (by its own
/// monotonic clock).
pub struct Candidate {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<(String, Instant)>,
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl Candidate {
    /// A candidate for `config`'s lease.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Self { api, config, observed: None }
    }

    /// Remembers `lease`'s version, and since when it has been unchanged.
    fn observe(&mut self, lease: &Lease) -> Instant {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        match &self.observed {
            Some((seen, since)) if *seen == version => *since,
            _ => {
                let now = Instant::now();
                self.observed = Some((version, now));
                now
            }
        }
    }

    /// One round: take or renew the lease. Returns whether we hold it.
    pub async fn try_acquire(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.config.name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(seconds(self.config.duration)),
                    acquire_time: Some(micro_now()),
                    renew_time: Some(micro_now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(true)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let unchanged_since = self.observe(&lease);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        let valid = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.duration, Duration::from_secs);
        let expired = holder.is_none() || unchanged_since.elapsed() >= valid;
        if !ours && !expired {
            return Ok(false);
        }
        if !ours {
            spec.acquire_time = Some(micro_now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.config.identity.clone());
        }
        spec.renew_time = Some(micro_now());
        spec.lease_duration_seconds = Some(seconds(self.config.duration));
        // The resourceVersion read above makes this a compare-and-swap.
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.observe(&written);
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Held leadership. Dropping it stops renewing; [`Leadership::release`]
/// also frees the lease for the next candidate at once.
pub struct Leadership {
    lost: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
    api: Api<Lease>,
    config: LeaseConfig,
}

impl Leadership {
    /// Completes when leadership is lost: the lease was taken, or could not
    /// be renewed within the renew deadline. Stop acting at once.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        // An error means the renewal task ended: leadership is gone.
        let _ = lost.wait_for(|l| *l).await;
    }

    /// Stops renewing and frees the lease for the next candidate.
    pub async fn release(self) {
        self.task.abort();
        if let Ok(mut lease) = self.api.get(&self.config.name).await
            && lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
                == Some(self.config.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
            }
            let _ = self.api.replace(&self.config.name, &PostParams::default(), &lease).await;
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until this candidate leads, then keeps renewing in the background.
pub async fn acquire(client: Client, config: LeaseConfig) -> Leadership {
    let mut candidate = Candidate::new(client, config.clone());
    let won = loop {
        // Leadership counts from when the winning request was sent: the
        // server may have written it any time after, and others count from
        // that write.
        let sent = Instant::now();
        match candidate.try_acquire().await {
            Ok(true) => break sent,
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "leader election round failed"),
        }
        tokio::time::sleep(config.retry).await;
    };
    tracing::info!(identity = %config.identity, lease = %config.name, "became leader");
    lead(candidate, won)
}

/// Renews `candidate`'s lease until a renewal is refused or the renew
/// deadline passes; then reports the loss.
fn lead(mut candidate: Candidate, won: Instant) -> Leadership {
    let (tx, lost) = watch::channel(false);
    let (api, config) = (candidate.api.clone(), candidate.config.clone());
    let task = tokio::spawn(async move {
        // A renewal counts from when its request was sent: the server may
        // have written it any time after.
        let mut renewed = won;
        loop {
            tokio::time::sleep(candidate.config.retry).await;
            let deadline = renewed + candidate.config.renew_deadline;
            let sent = Instant::now();
            match tokio::time::timeout_at(deadline, candidate.try_acquire()).await {
                Ok(Ok(true)) => renewed = sent,
                Ok(Ok(false)) => {
                    tracing::warn!("the lease was taken by another candidate");
                    break;
                }
                Ok(Err(err)) => tracing::warn!(error = %err, "failed to renew the lease"),
                Err(_) => {}
            }
            if Instant::now() >= renewed + candidate.config.renew_deadline {
                tracing::warn!(deadline = ?candidate.config.renew_deadline, "could not renew the lease in time");
                break;
            }
        }
        let _ = tx.send(true);
    });
    Leadership { lost, task, api, config }
}
