//! `--leader-elect` for every controller: the flags, and a Lease held while
//! the controller runs. A replica that loses its lease exits at once (to be
//! restarted as a candidate): in-flight work is dropped, as a crash would
//! drop it, which every controller survives by design.

use std::process::ExitCode;

use acp_kube::leader::{Leadership, LeaseConfig};

/// Leader election flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaderArgs {
    /// Elect a leader through a Lease, so that of several replicas (two
    /// during a rollout) only one acts; the others wait as candidates. A
    /// replica that cannot renew its lease exits, to restart as a candidate.
    #[arg(long, env = "ACP_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader election Lease (default: POD_NAMESPACE, or
    /// `acp-system`).
    #[arg(long, env = "ACP_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Lease duration in seconds: how long candidates wait after the last
    /// renewal they saw. The leader renews every duration/7 and gives up
    /// after 2/3 of it.
    #[arg(long, env = "ACP_LEASE_DURATION_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..))]
    pub lease_duration_seconds: u64,
}

/// This replica's identity: the pod name, or host and pid.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

impl LeaderArgs {
    /// The lease for component `lease` under these flags.
    pub fn config(&self, lease: &str) -> LeaseConfig {
        let namespace = self
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "acp-system".into());
        let duration = std::time::Duration::from_secs(self.lease_duration_seconds);
        LeaseConfig::new(namespace, lease, identity()).with_timings(duration, duration * 2 / 3, duration / 7)
    }

    /// With `--leader-elect`, waits until this replica leads `lease`, and
    /// exits the process (code 1) as soon as leadership is lost.
    pub async fn lead(&self, client: &kube::Client, lease: &str) -> Option<Leadership> {
        if !self.leader_elect {
            return None;
        }
        let config = self.config(lease);
        tracing::info!(identity = %config.identity, lease, namespace = %config.namespace, "waiting for leadership");
        let leadership = acp_kube::leader::acquire(client.clone(), config).await;
        Some(leadership)
    }
}

/// Runs `work` while `leadership` (if any) holds; leadership lost ends the
/// process with code 1 without waiting for `work`. Releases the lease when
/// `work` ends by itself (a clean shutdown hands over at once).
pub async fn while_leading(leadership: Option<Leadership>, work: impl Future<Output = ()>) -> ExitCode {
    let Some(leadership) = leadership else {
        work.await;
        return ExitCode::SUCCESS;
    };
    tokio::select! {
        () = work => {
            leadership.release().await;
            ExitCode::SUCCESS
        }
        () = leadership.lost() => {
            tracing::error!("lost the leader lease; exiting to restart as a candidate");
            // At once: returning would wait for blocking work in flight (a
            // write-back push) that the next leader may be doing too.
            std::process::exit(1)
        }
    }
}
