//! One kind's part of a sync (AgenticSessions, then SessionSchedules): read
//! what the target namespace holds (sessions from the watch cache of
//! `live`, when it may; otherwise a list), [`diff`](crate::plan::diff),
//! apply, prune, and the kind's inventory entries.
//!
//! A kind with nothing in git and nothing in the inventory is not even
//! listed, so a source without schedules needs no RBAC on them.

use std::collections::{HashMap, HashSet};

use acp_api::source::{FileError, InventoryEntry};
use kube::Client;
use serde_json::Value;
use tracing::{info, warn};

use crate::apply::{self, api_message};
use crate::plan::{self, Desired, Kind, SourceRef};

/// What one kind's sync did.
#[derive(Debug, Default)]
pub struct KindSynced {
    /// Objects created.
    pub create: usize,
    /// Objects updated.
    pub update: usize,
    /// Objects created or updated without error.
    pub applied: i64,
    /// Objects already as in git.
    pub unchanged: i64,
    /// Objects deleted.
    pub pruned: i64,
    /// Whether the API server refused an apply or a prune.
    pub apply_failed: bool,
    /// Conflicts and API failures, as file errors.
    pub errors: Vec<FileError>,
    /// The kind's inventory after this sync.
    pub inventory: Vec<InventoryEntry>,
    /// Reads of the live objects from the watch cache, and by listing.
    pub reads: (u64, u64),
}

impl KindSynced {
    /// Adds `other`'s counts, errors and inventory to these.
    pub fn merge(&mut self, other: KindSynced) {
        self.create += other.create;
        self.update += other.update;
        self.applied += other.applied;
        self.unchanged += other.unchanged;
        self.pruned += other.pruned;
        self.apply_failed |= other.apply_failed;
        self.errors.extend(other.errors);
        self.inventory.extend(other.inventory);
        self.reads = (self.reads.0 + other.reads.0, self.reads.1 + other.reads.1);
    }
}

/// Everything one kind's sync reads.
pub struct Sync<'a> {
    /// The kind.
    pub kind: Kind,
    /// Client to apply with (impersonating the source's ServiceAccount, if any).
    pub client: Client,
    /// Namespace applied into.
    pub target: &'a str,
    /// The source.
    pub source: &'a SourceRef,
    /// The kind's valid manifests.
    pub desired: Vec<Desired>,
    /// The kind's entries of the current inventory.
    pub inventory: Vec<InventoryEntry>,
    /// Paths of files with errors in this revision (their objects are kept).
    pub broken: &'a HashSet<&'a str>,
    /// Revision synced.
    pub revision: &'a str,
    /// The source's mirror (for the commit that last changed each file).
    pub mirror: &'a std::path::Path,
    /// `spec.prune`.
    pub prune: bool,
    /// The cache of labelled sessions, when this sync may read from it
    /// (it applies as git-sync itself).
    pub live: Option<&'a crate::live::Live>,
}

/// Syncs one kind. `Err` is a message for a failed listing (the sync stops).
pub async fn sync(job: Sync<'_>) -> Result<KindSynced, String> {
    let mut out = KindSynced::default();
    if job.desired.is_empty() && job.inventory.is_empty() {
        return Ok(out);
    }
    let kind = job.kind;
    let api = apply::objects(job.client, job.target, kind);
    let failed = |e: kube::Error| format!("failed to list {kind}s in {}: {}", job.target, api_message(&e));
    let cached = match job.live.filter(|live| kind == Kind::Session && live.ready()) {
        Some(live) => {
            let names: Vec<&str> = job.desired.iter().map(|d| d.name.as_str()).collect();
            live.sessions(&api, job.target, &names).await
        }
        None => None,
    };
    let live: Vec<Value> = match cached {
        Some(read) => {
            out.reads.0 += 1;
            read.map_err(failed)?
        }
        None => {
            out.reads.1 += 1;
            apply::list(&api).await.map_err(failed)?
        }
    };
    let plan = plan::diff(job.desired, &live, &job.inventory, job.source, job.broken);
    let to_apply: Vec<_> = plan.create.iter().chain(&plan.update).cloned().collect();
    let commits = last_changes(job.mirror, job.revision, &to_apply).await;
    let apply_failures = apply::apply(&api, to_apply, job.revision, &commits).await;
    out.create = plan.create.len();
    out.update = plan.update.len();
    let failed_names: HashSet<&str> = apply_failures.iter().map(|(d, _)| d.name.as_str()).collect();
    out.errors.extend(plan.conflicts.iter().cloned());
    out.errors.extend(apply_failures.iter().map(|(d, e)| FileError {
        path: d.path.clone(),
        line: Some(d.line.into()),
        column: Some(1),
        message: format!("failed to apply {kind} {:?}: {}", d.name, api_message(e)),
    }));

    // By name: syncs of tens of thousands of objects look names up often.
    let live_by_name: HashMap<&str, &Value> =
        live.iter().filter_map(|o| o["metadata"]["name"].as_str().map(|n| (n, o))).collect();
    let uid_of =
        |name: &str| live_by_name.get(name).and_then(|o| o["metadata"]["uid"].as_str().map(String::from));
    let mut kept_by_failure = HashSet::new();
    if job.prune && !plan.prune.is_empty() {
        let victims: Vec<_> = plan.prune.iter().map(|n| (n.clone(), uid_of(n))).collect();
        let count = victims.len();
        let failures = apply::prune(&api, victims).await;
        let path_of: HashMap<&str, &str> =
            job.inventory.iter().map(|i| (i.name.as_str(), i.path.as_str())).collect();
        for (victim, error) in &failures {
            kept_by_failure.insert(victim.clone());
            out.errors.push(FileError {
                path: path_of.get(victim.as_str()).map(|p| (*p).to_owned()).unwrap_or_default(),
                line: None,
                column: None,
                message: format!("failed to prune {kind} {victim:?}: {}", api_message(error)),
            });
        }
        out.pruned = (count - failures.len()) as i64;
        info!(pruned = out.pruned, %kind, "pruned objects that left git");
    }

    let entry = |d: &Desired, revision: &str| InventoryEntry {
        kind: kind.as_str().into(),
        namespace: job.target.to_string(),
        name: d.name.clone(),
        path: d.path.clone(),
        revision: revision.to_string(),
    };
    for d in plan.create.iter().chain(&plan.update).filter(|d| !failed_names.contains(d.name.as_str())) {
        out.inventory.push(entry(d, job.revision));
    }
    for (d, recorded) in &plan.unchanged {
        out.inventory.push(entry(d, if recorded.is_empty() { job.revision } else { recorded }));
    }
    // Still ours and still live: kept for a broken file, a failed update or prune, or prune off.
    let listed: HashSet<String> = out.inventory.iter().map(|i| i.name.clone()).collect();
    let to_prune: HashSet<&str> = plan.prune.iter().map(String::as_str).collect();
    for old in &job.inventory {
        let live_and_ours = live_by_name.get(old.name.as_str()).is_some_and(|o| job.source.owns(o));
        let kept = failed_names.contains(old.name.as_str())
            || job.broken.contains(old.path.as_str())
            || kept_by_failure.contains(&old.name)
            || (!job.prune && to_prune.contains(old.name.as_str()));
        if live_and_ours && kept && !listed.contains(&old.name) {
            out.inventory.push(old.clone());
        }
    }
    out.applied = (plan.create.len() + plan.update.len() - failed_names.len()) as i64;
    out.unchanged = plan.unchanged.len() as i64;
    out.apply_failed = !apply_failures.is_empty() || !kept_by_failure.is_empty();
    Ok(out)
}

/// The commit that last changed each file of `desired`, from the mirror's
/// history (the first sync of a remote has only its tip: the caller stamps
/// the synced revision for files it cannot place).
async fn last_changes(
    dir: &std::path::Path,
    revision: &str,
    desired: &[plan::Desired],
) -> HashMap<String, String> {
    let Ok(head) = git2::Oid::from_str(revision) else { return HashMap::new() };
    if desired.is_empty() {
        return HashMap::new();
    }
    let dir = dir.to_owned();
    let paths: Vec<String> = desired.iter().map(|d| d.path.clone()).collect();
    let walked = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        acp_git::history::last_changes(&dir, head, &refs, acp_git::history::DEFAULT_LIMIT)
    })
    .await;
    match walked {
        Ok(Ok(found)) => found.into_iter().map(|(path, commit)| (path, commit.to_string())).collect(),
        Ok(Err(err)) => {
            warn!(error = %err, "failed to read the history; labelling changed sessions with the synced revision");
            HashMap::new()
        }
        Err(err) => {
            warn!(error = %err, "history task failed");
            HashMap::new()
        }
    }
}
