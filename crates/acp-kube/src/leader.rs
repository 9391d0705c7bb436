//! Lease-based leader election (coordination.k8s.io/v1 Lease), so that of
//! several replicas of a controller exactly one acts.
//!
//! A candidate takes the lease when it is free or expired, and the leader
//! renews it every `renew` interval. Every write carries the resourceVersion
//! it read, so two candidates can never both win the same round. A leader that
//! cannot renew before its lease expires must stop acting ([`Leadership::lost`]).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (pod name, or host and pid).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How often the leader renews (and candidates retry).
    pub renew: Duration,
}

/// Held leadership. Dropping it releases the lease.
pub struct Leadership {
    lost: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
    api: Api<Lease>,
    config: LeaseConfig,
}

impl Leadership {
    /// Completes when leadership is lost (the lease could not be renewed in time).
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

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// One round: take or renew the lease. Returns whether we hold it.
pub async fn try_acquire(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let seconds = i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(config.name.clone()), ..ObjectMeta::default() },
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(micro_now()),
                renew_time: Some(micro_now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let ours = holder.as_deref() == Some(config.identity.as_str());
    let expired = spec.renew_time.as_ref().is_none_or(|renewed| {
        let valid = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(seconds)));
        renewed.0.saturating_add(valid).is_ok_and(|until| until < Timestamp::now())
    });
    if !ours && holder.is_some() && !expired {
        return Ok(false);
    }
    if !ours {
        spec.acquire_time = Some(micro_now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.holder_identity = Some(config.identity.clone());
    }
    spec.renew_time = Some(micro_now());
    spec.lease_duration_seconds = Some(seconds);
    // The resourceVersion read above makes this a compare-and-swap.
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until this candidate leads, then keeps renewing in the background.
pub async fn acquire(client: Client, config: LeaseConfig) -> Leadership {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    loop {
        match try_acquire(&api, &config).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "leader election round failed"),
        }
        tokio::time::sleep(config.renew).await;
    }
    tracing::info!(identity = %config.identity, lease = %config.name, "became leader");
    let (tx, lost) = watch::channel(false);
    let (renew_api, renew_config) = (api.clone(), config.clone());
    let task = tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(renew_config.renew).await;
            match try_acquire(&renew_api, &renew_config).await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => break,
                Err(err) => tracing::warn!(error = %err, "failed to renew the lease"),
            }
            if last.elapsed() >= renew_config.duration {
                break;
            }
        }
        tracing::warn!("lost leadership");
        let _ = tx.send(true);
    });
    Leadership { lost, task, api, config }
}
