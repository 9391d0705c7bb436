//! One kind's part of a sync (AgenticSessions, then SessionSchedules):
//! observe what the target namespace holds (sessions from the watch cache
//! of `live`, when it may; otherwise a list), decide
//! ([`diff`](crate::plan::diff), pure), act (apply, prune), and settle the
//! counts, errors and the kind's inventory entries from what the API server
//! answered (pure).
//!
//! A kind with nothing in git and nothing in the inventory is not even
//! listed, so a source without schedules needs no RBAC on them.

use std::collections::{HashMap, HashSet};

use acp_api::source::{FileError, InventoryEntry};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, DynamicObject};
use serde_json::Value;
use tracing::{info, warn};

use crate::apply::{self, api_message};
use crate::plan::{self, Desired, Kind, Plan, SourceRef};
use crate::status::Synced;

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

    /// What the sync of `revision` did, started at `started_at` and taking
    /// `duration_ms`: the manifests' `errors` first, then these, and the
    /// inventory in order (kind, then name).
    pub fn finish(
        self,
        revision: String,
        mut errors: Vec<FileError>,
        started_at: Time,
        duration_ms: i64,
    ) -> Synced {
        errors.extend(self.errors);
        let mut inventory = self.inventory;
        inventory.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        Synced {
            revision,
            started_at: Some(started_at),
            duration_ms,
            applied: self.applied,
            unchanged: self.unchanged,
            pruned: self.pruned,
            apply_failed: self.apply_failed,
            errors,
            inventory,
        }
    }
}

/// What the sync of every kind of one revision shares.
pub struct Sync<'a> {
    /// Client to apply with (impersonating the source's ServiceAccount, if any).
    pub client: Client,
    /// Namespace applied into.
    pub target: &'a str,
    /// The source.
    pub source: &'a SourceRef,
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

/// Syncs every kind in apply order (sessions, then schedules): each kind's
/// part of the valid manifests `desired` and of the current `inventory`.
/// `Err` is a message for a failed listing (the sync stops there).
pub async fn all(
    job: &Sync<'_>,
    desired: &[Desired],
    inventory: &[InventoryEntry],
) -> Result<KindSynced, String> {
    let mut synced = KindSynced::default();
    for kind in Kind::ALL {
        let desired = desired.iter().filter(|d| d.kind == kind).cloned().collect();
        let inventory = inventory.iter().filter(|e| e.kind == kind.as_str()).cloned().collect();
        synced.merge(sync(job, kind, desired, inventory).await?);
    }
    Ok(synced)
}

/// Syncs one kind: observe (the live objects), decide ([`plan::diff`], pure),
/// act (apply, prune), then what that did ([`settle`], pure). `Err` is a
/// message for a failed listing (the sync stops).
pub async fn sync(
    job: &Sync<'_>,
    kind: Kind,
    desired: Vec<Desired>,
    inventory: Vec<InventoryEntry>,
) -> Result<KindSynced, String> {
    if desired.is_empty() && inventory.is_empty() {
        return Ok(KindSynced::default());
    }
    let api = apply::objects(job.client.clone(), job.target, kind);
    let (live, reads) = observe(job, kind, &api, &desired).await?;
    // By name: syncs of tens of thousands of objects look names up often.
    let live_by_name = by_name(&live);
    let plan = plan::diff(desired, &live, &inventory, job.source, job.broken);
    let done = act(job, kind, &api, &plan, &live_by_name).await;
    let scope = Scope {
        kind,
        target: job.target,
        source: job.source,
        inventory: &inventory,
        broken: job.broken,
        revision: job.revision,
        prune: job.prune,
    };
    Ok(KindSynced { reads, ..settle(&scope, &plan, &live_by_name, &done) })
}

/// What the target namespace holds of `kind`: sessions from the watch cache
/// when `job` may read it, otherwise (or when the cache cannot answer) a
/// list; with the count of reads from the cache and by listing.
async fn observe(
    job: &Sync<'_>,
    kind: Kind,
    api: &Api<DynamicObject>,
    desired: &[Desired],
) -> Result<(Vec<Value>, (u64, u64)), String> {
    let failed = |e: kube::Error| format!("failed to list {kind}s in {}: {}", job.target, api_message(&e));
    let cached = match job.live.filter(|live| kind == Kind::Session && live.ready()) {
        Some(live) => {
            let names: Vec<&str> = desired.iter().map(|d| d.name.as_str()).collect();
            live.sessions(api, job.target, &names).await
        }
        None => None,
    };
    match cached {
        Some(read) => Ok((read.map_err(failed)?, (1, 0))),
        None => Ok((apply::list(api).await.map_err(failed)?, (0, 1))),
    }
}

/// The live objects by name.
fn by_name(live: &[Value]) -> HashMap<&str, &Value> {
    live.iter().filter_map(|o| o["metadata"]["name"].as_str().map(|n| (n, o))).collect()
}

/// What the API server refused of a kind's apply and prune.
#[derive(Debug, Default)]
struct Done {
    /// Objects it did not apply, with its message.
    applied: Vec<(Desired, String)>,
    /// Objects (names) it did not delete, with its message.
    pruned: Vec<(String, String)>,
}

/// Applies `plan`'s creates and updates, then prunes (when `job` says so),
/// each deletion preconditioned on the UID listed; returns the failures.
async fn act(
    job: &Sync<'_>,
    kind: Kind,
    api: &Api<DynamicObject>,
    plan: &Plan,
    live_by_name: &HashMap<&str, &Value>,
) -> Done {
    let to_apply: Vec<_> = plan.create.iter().chain(&plan.update).cloned().collect();
    let commits = last_changes(job.mirror, job.revision, &to_apply).await;
    let applied = apply::apply(api, to_apply, job.revision, &commits).await;
    let mut done = Done {
        applied: applied.into_iter().map(|(d, e)| (d, api_message(&e))).collect(),
        pruned: Vec::new(),
    };
    if job.prune && !plan.prune.is_empty() {
        let uid_of =
            |name: &str| live_by_name.get(name).and_then(|o| o["metadata"]["uid"].as_str().map(String::from));
        let victims: Vec<_> = plan.prune.iter().map(|n| (n.clone(), uid_of(n))).collect();
        let count = victims.len();
        let failures = apply::prune(api, victims).await;
        done.pruned = failures.into_iter().map(|(name, e)| (name, api_message(&e))).collect();
        info!(pruned = (count - done.pruned.len()) as i64, %kind, "pruned objects that left git");
    }
    done
}

/// What a kind's sync decides from: the source's side of it.
struct Scope<'a> {
    kind: Kind,
    target: &'a str,
    source: &'a SourceRef,
    /// The kind's entries of the current inventory.
    inventory: &'a [InventoryEntry],
    broken: &'a HashSet<&'a str>,
    revision: &'a str,
    prune: bool,
}

/// What a kind's sync did, from its `plan`, the live objects and what the
/// API server refused (`done`): counts, errors, and the kind's inventory.
fn settle(scope: &Scope<'_>, plan: &Plan, live_by_name: &HashMap<&str, &Value>, done: &Done) -> KindSynced {
    let failed_names: HashSet<&str> = done.applied.iter().map(|(d, _)| d.name.as_str()).collect();
    let kept_by_failure: HashSet<&str> = done.pruned.iter().map(|(name, _)| name.as_str()).collect();
    let pruned = if scope.prune { (plan.prune.len() - done.pruned.len()) as i64 } else { 0 };
    KindSynced {
        create: plan.create.len(),
        update: plan.update.len(),
        applied: (plan.create.len() + plan.update.len() - failed_names.len()) as i64,
        unchanged: plan.unchanged.len() as i64,
        pruned,
        apply_failed: !done.applied.is_empty() || !kept_by_failure.is_empty(),
        errors: errors(scope, plan, done),
        inventory: inventory(scope, plan, live_by_name, &failed_names, &kept_by_failure),
        reads: (0, 0),
    }
}

/// Conflicts, then failed applies, then failed prunes, as file errors.
fn errors(scope: &Scope<'_>, plan: &Plan, done: &Done) -> Vec<FileError> {
    let kind = scope.kind;
    let mut errors = plan.conflicts.clone();
    errors.extend(done.applied.iter().map(|(d, message)| FileError {
        path: d.path.clone(),
        line: Some(d.line.into()),
        column: Some(1),
        message: format!("failed to apply {kind} {:?}: {message}", d.name),
    }));
    let path_of: HashMap<&str, &str> =
        scope.inventory.iter().map(|i| (i.name.as_str(), i.path.as_str())).collect();
    errors.extend(done.pruned.iter().map(|(victim, message)| FileError {
        path: path_of.get(victim.as_str()).map(|p| (*p).to_owned()).unwrap_or_default(),
        line: None,
        column: None,
        message: format!("failed to prune {kind} {victim:?}: {message}"),
    }));
    errors
}

/// The kind's inventory after the sync: what was applied (not what failed),
/// what is unchanged (at the revision recorded on it), and what stays ours.
fn inventory(
    scope: &Scope<'_>,
    plan: &Plan,
    live_by_name: &HashMap<&str, &Value>,
    failed_names: &HashSet<&str>,
    kept_by_failure: &HashSet<&str>,
) -> Vec<InventoryEntry> {
    let entry = |d: &Desired, revision: &str| InventoryEntry {
        kind: scope.kind.as_str().into(),
        namespace: scope.target.to_string(),
        name: d.name.clone(),
        path: d.path.clone(),
        revision: revision.to_string(),
    };
    let mut out = Vec::new();
    for d in plan.create.iter().chain(&plan.update).filter(|d| !failed_names.contains(d.name.as_str())) {
        out.push(entry(d, scope.revision));
    }
    for (d, recorded) in &plan.unchanged {
        out.push(entry(d, if recorded.is_empty() { scope.revision } else { recorded }));
    }
    // Still ours and still live: kept for a broken file, a failed update or prune, or prune off.
    let listed: HashSet<String> = out.iter().map(|i| i.name.clone()).collect();
    let to_prune: HashSet<&str> = plan.prune.iter().map(String::as_str).collect();
    for old in scope.inventory {
        let live_and_ours = live_by_name.get(old.name.as_str()).is_some_and(|o| scope.source.owns(o));
        let kept = failed_names.contains(old.name.as_str())
            || scope.broken.contains(old.path.as_str())
            || kept_by_failure.contains(old.name.as_str())
            || (!scope.prune && to_prune.contains(old.name.as_str()));
        if live_and_ours && kept && !listed.contains(&old.name) {
            out.push(old.clone());
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use acp_api::constants::labels;
    use serde_json::json;

    use super::*;

    fn desired(name: &str) -> Desired {
        Desired {
            kind: Kind::Session,
            name: name.into(),
            path: format!("{name}.yaml"),
            line: 3,
            object: json!({}),
            digest: String::new(),
            name_at: (4, 9),
        }
    }

    fn live(name: &str, ours: bool) -> Value {
        let labels = if ours {
            json!({labels::SOURCE_NAMESPACE: "team", labels::SOURCE_NAME: "repo"})
        } else {
            json!({})
        };
        json!({"metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels}})
    }

    fn entry(name: &str, revision: &str) -> InventoryEntry {
        InventoryEntry {
            kind: "AgenticSession".into(),
            namespace: "team".into(),
            name: name.into(),
            path: format!("{name}.yaml"),
            revision: revision.into(),
        }
    }

    fn error(path: &str, line: Option<i64>, message: &str) -> FileError {
        let column = line.map(|_| 1);
        FileError { path: path.into(), line, column, message: message.into() }
    }

    #[test]
    fn a_failed_apply_or_prune_keeps_what_is_live_and_says_why() {
        let source = SourceRef::new("team", "repo");
        let conflict = error("taken.yaml", Some(1), "taken");
        let plan = Plan {
            create: vec![desired("new")],
            update: vec![desired("changed")],
            unchanged: vec![(desired("same"), "rev0".into()), (desired("unstamped"), String::new())],
            prune: vec!["gone".into(), "stuck".into()],
            conflicts: vec![conflict.clone()],
        };
        let live: Vec<Value> =
            ["changed", "same", "unstamped", "gone", "stuck"].into_iter().map(|n| live(n, true)).collect();
        let inventory = ["changed", "same", "gone", "stuck"].map(|n| entry(n, "rev0"));
        let broken = HashSet::new();
        let scope = Scope {
            kind: Kind::Session,
            target: "team",
            source: &source,
            inventory: &inventory,
            broken: &broken,
            revision: "rev1",
            prune: true,
        };
        let done = Done {
            applied: vec![(desired("changed"), "denied".into())],
            pruned: vec![("stuck".into(), "busy".into())],
        };
        let out = settle(&scope, &plan, &by_name(&live), &done);
        assert_eq!((out.create, out.update, out.applied, out.unchanged, out.pruned), (1, 1, 1, 2, 1));
        assert!(out.apply_failed);
        let apply = error("changed.yaml", Some(3), "failed to apply AgenticSession \"changed\": denied");
        let prune = error("stuck.yaml", None, "failed to prune AgenticSession \"stuck\": busy");
        assert_eq!(out.errors, [conflict, apply, prune]);
        let kept: Vec<(&str, &str)> =
            out.inventory.iter().map(|e| (e.name.as_str(), e.revision.as_str())).collect();
        assert_eq!(
            kept,
            [
                ("new", "rev1"),
                ("same", "rev0"),
                ("unstamped", "rev1"),
                ("changed", "rev0"),
                ("stuck", "rev0")
            ],
            "applied at this revision, unchanged at theirs, kept at the old one; the pruned one gone"
        );
    }

    #[test]
    fn prune_off_and_broken_files_keep_only_what_is_still_ours_and_live() {
        let source = SourceRef::new("team", "repo");
        let plan = Plan { prune: vec!["left".into()], ..Plan::default() };
        let live = vec![live("left", true), live("broken", true), live("taken", false)];
        let inventory = ["left", "broken", "taken", "vanished"].map(|n| entry(n, "rev0"));
        let broken = HashSet::from(["broken.yaml", "taken.yaml", "vanished.yaml"]);
        let scope = Scope {
            kind: Kind::Session,
            target: "team",
            source: &source,
            inventory: &inventory,
            broken: &broken,
            revision: "rev1",
            prune: false,
        };
        let out = settle(&scope, &plan, &by_name(&live), &Done::default());
        assert_eq!(out.pruned, 0);
        assert!(!out.apply_failed);
        assert!(out.errors.is_empty());
        let kept: Vec<&str> = out.inventory.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(kept, ["left", "broken"]);
    }

    #[test]
    fn a_finished_sync_lists_the_manifests_errors_first_and_its_inventory_in_order() {
        let mut schedule = entry("a", "rev1");
        schedule.kind = "SessionSchedule".into();
        let synced = KindSynced {
            applied: 2,
            errors: vec![error("b.yaml", None, "apply")],
            inventory: vec![schedule.clone(), entry("b", "rev1"), entry("a", "rev1")],
            ..KindSynced::default()
        };
        let at = Time(k8s_openapi::jiff::Timestamp::from_second(100).expect("time"));
        let out = synced.finish("rev1".into(), vec![error("c.yaml", None, "parse")], at.clone(), 7);
        assert_eq!(out.errors, [error("c.yaml", None, "parse"), error("b.yaml", None, "apply")]);
        assert_eq!(out.inventory, [entry("a", "rev1"), entry("b", "rev1"), schedule]);
        assert_eq!(
            (out.revision.as_str(), out.started_at, out.duration_ms, out.applied),
            ("rev1", Some(at), 7, 2)
        );
    }
}
