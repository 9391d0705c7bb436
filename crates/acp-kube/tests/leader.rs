//! Leader election against the real API server: one leader at a time, and a
//! released lease passes to the next candidate.

use std::time::Duration;

use acp_kube::leader::{LeaseConfig, acquire, try_acquire};
use acp_testenv::{DEFAULT_TIMEOUT, TestEnv, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

fn config(ns: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: ns.into(),
        name: "acp-operator".into(),
        identity: identity.into(),
        duration: Duration::from_secs(5),
        renew: Duration::from_millis(300),
    }
}

fn renewed(lease: &Lease) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime> {
    lease.spec.as_ref().and_then(|s| s.renew_time.clone())
}

/// Waits until the holder renews the lease, asserting on every poll that
/// candidate "b" cannot take it.
async fn wait_for_renewal_while_b_loses(api: &Api<Lease>, ns: &str) {
    let before = renewed(&api.get("acp-operator").await.expect("lease"));
    eventually("the leader to renew while b keeps losing", DEFAULT_TIMEOUT, || {
        let (api, b, before) = (api.clone(), config(ns, "b"), before.clone());
        async move {
            assert!(!try_acquire(&api, &b).await.expect("round"), "b must not lead while a holds the lease");
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
    for _ in 0..2 {
        wait_for_renewal_while_b_loses(&api, &ns.name).await;
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
    let api: Api<Lease> = ns.api();
    for round in 0..5 {
        let candidates: Vec<_> = (0..4)
            .map(|i| {
                let api = api.clone();
                let config = config(&ns.name, &format!("c{round}-{i}"));
                tokio::spawn(async move { try_acquire(&api, &config).await.expect("round") })
            })
            .collect();
        let mut winners = 0;
        for candidate in candidates {
            winners += usize::from(candidate.await.expect("join"));
        }
        if round == 0 {
            assert_eq!(winners, 1, "exactly one creates the lease");
        } else {
            assert_eq!(winners, 0, "a held, unexpired lease is never taken");
        }
    }
}
