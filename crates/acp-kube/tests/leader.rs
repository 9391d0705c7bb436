//! Leader election against the real API server: one leader at a time, a
//! released lease passes to the next candidate, expiry is judged by local
//! observation (never by the holder's clock), and a leader whose lease is
//! taken stops leading.

use std::time::Duration;

use acp_kube::leader::{Candidate, LeaseConfig, acquire};
use acp_testenv::{DEFAULT_TIMEOUT, TestEnv, eventually};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};

fn config(ns: &str, identity: &str) -> LeaseConfig {
    LeaseConfig::new(ns, "acp-operator", identity).with_timings(
        Duration::from_secs(5),
        Duration::from_secs(3),
        Duration::from_millis(300),
    )
}

fn renewed(lease: &Lease) -> Option<MicroTime> {
    lease.spec.as_ref().and_then(|s| s.renew_time.clone())
}

/// A candidate shared with `eventually`'s polls.
type Shared = std::sync::Arc<tokio::sync::Mutex<Candidate>>;

/// Waits until the holder renews the lease, asserting on every poll that
/// candidate `b` cannot take it.
async fn wait_for_renewal_while_b_loses(api: &Api<Lease>, b: &Shared) {
    let before = renewed(&api.get("acp-operator").await.expect("lease"));
    eventually("the leader to renew while b keeps losing", DEFAULT_TIMEOUT, || {
        let (api, b, before) = (api.clone(), b.clone(), before.clone());
        async move {
            assert!(
                !b.lock().await.try_acquire().await.expect("round"),
                "b must not lead while a holds the lease"
            );
            (renewed(&api.get("acp-operator").await.expect("lease")) != before).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn only_one_candidate_leads_and_a_release_hands_over() {
    let env = TestEnv::get();
    let ns = env.namespace("lease").await;
    let api: Api<Lease> = ns.api();

    let a = tokio::time::timeout(DEFAULT_TIMEOUT, acquire(ns.client.clone(), config(&ns.name, "a")))
        .await
        .expect("a leads");
    // B keeps losing every round while A renews its lease twice.
    let b: Shared = std::sync::Arc::new(Candidate::new(ns.client.clone(), config(&ns.name, "b")).into());
    for _ in 0..2 {
        wait_for_renewal_while_b_loses(&api, &b).await;
    }
    let b = tokio::spawn(acquire(ns.client.clone(), config(&ns.name, "b")));
    a.release().await;
    let b = tokio::time::timeout(DEFAULT_TIMEOUT, b).await.expect("b leads after the release").expect("join");
    let lease = api.get("acp-operator").await.expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    b.release().await;
}

#[tokio::test]
async fn concurrent_candidates_never_both_win_a_round() {
    let env = TestEnv::get();
    let ns = env.namespace("lease-race").await;
    for round in 0..5 {
        let candidates: Vec<_> = (0..4)
            .map(|i| {
                let mut candidate =
                    Candidate::new(ns.client.clone(), config(&ns.name, &format!("c{round}-{i}")));
                tokio::spawn(async move { candidate.try_acquire().await.expect("round") })
            })
            .collect();
        let mut winners = 0;
        for candidate in candidates {
            winners += usize::from(candidate.await.expect("join"));
        }
        if round == 0 {
            assert_eq!(winners, 1, "exactly one creates the lease");
        } else {
            assert_eq!(winners, 0, "a held lease, not seen unchanged for its duration, is never taken");
        }
    }
}

/// A holder whose clock is years behind writes a renewTime that, compared
/// with our clock, looks long expired. A candidate must not trust that: it
/// takes the lease only once it has itself seen no change for the lease
/// duration.
#[tokio::test]
async fn expiry_is_judged_by_what_the_candidate_saw_not_by_the_holders_clock() {
    let env = TestEnv::get();
    let ns = env.namespace("lease-skew").await;
    let api: Api<Lease> = ns.api();
    let long_ago = MicroTime(Timestamp::from_second(946_684_800).expect("2000-01-01"));
    let lease = Lease {
        metadata: ObjectMeta { name: Some("acp-operator".into()), ..ObjectMeta::default() },
        spec: Some(LeaseSpec {
            holder_identity: Some("skewed".into()),
            lease_duration_seconds: Some(2),
            renew_time: Some(long_ago.clone()),
            acquire_time: Some(long_ago),
            ..LeaseSpec::default()
        }),
    };
    api.create(&PostParams::default(), &lease).await.expect("lease");
    let b: Shared = std::sync::Arc::new(Candidate::new(ns.client.clone(), config(&ns.name, "b")).into());
    let first_seen = tokio::time::Instant::now();
    assert!(
        !b.lock().await.try_acquire().await.expect("round"),
        "a lease just seen is held, whatever its renewTime"
    );
    let won = eventually("b to take the abandoned lease", DEFAULT_TIMEOUT, || {
        let b = b.clone();
        async move { b.lock().await.try_acquire().await.expect("round").then(tokio::time::Instant::now) }
    })
    .await;
    assert!(won - first_seen >= Duration::from_secs(2), "taken after {:?}", won - first_seen);
    let spec = api.get("acp-operator").await.expect("lease").spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
}

/// Two replicas can believe they lead only until the old one's next renewal:
/// a leader that finds its lease taken reports the loss (and the binaries
/// exit on it).
#[tokio::test]
async fn a_leader_whose_lease_is_taken_stops_leading() {
    let env = TestEnv::get();
    let ns = env.namespace("lease-taken").await;
    let api: Api<Lease> = ns.api();
    let a = tokio::time::timeout(DEFAULT_TIMEOUT, acquire(ns.client.clone(), config(&ns.name, "a")))
        .await
        .expect("a leads");
    let mut lease = api.get("acp-operator").await.expect("lease");
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some("intruder".into());
    }
    api.replace("acp-operator", &PostParams::default(), &lease).await.expect("take the lease");
    tokio::time::timeout(Duration::from_secs(3), a.lost())
        .await
        .expect("a sees the loss within the renew deadline");
    let spec = api.get("acp-operator").await.expect("lease").spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("intruder"), "a did not take it back");
}
