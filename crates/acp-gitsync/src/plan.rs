//! What a sync does, decided without I/O: which manifests are valid sessions
//! and schedules (with every file error), the stamped objects to apply, and
//! the diff against what the cluster holds: create, update, unchanged, prune
//! (one [`diff`] per [`Kind`]).
//!
//! "Unchanged" is decided by two checks, so that a no-op sync sends no write:
//! the live object carries the digest of the desired manifest (a field removed
//! from git changes the digest), and every field the manifest sets still has
//! its value in the live object (drift made by hand is corrected).

use std::collections::HashMap;

use acp_api::constants::{annotations, labels};
use acp_api::source::{FileError, InventoryEntry};
use acp_policy::Checker;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::files::{Entry, MAX_FILE_BYTES};
use crate::manifest;

/// Annotation holding the digest of the manifest an object was applied from.
pub const DIGEST_ANNOTATION: &str = "ambient-code.io/source-digest";

/// The kinds of object a source syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `AgenticSession`.
    Session,
    /// `SessionSchedule`.
    Schedule,
}

impl Kind {
    /// Every kind, in apply order.
    pub const ALL: [Self; 2] = [Self::Session, Self::Schedule];

    /// The kind named `kind`, if a source syncs it.
    pub fn of(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "AgenticSession",
            Self::Schedule => "SessionSchedule",
        }
    }

    /// The kind's resource (plural).
    pub fn plural(self) -> &'static str {
        match self {
            Self::Session => "agenticsessions",
            Self::Schedule => "sessionschedules",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SessionSource a sync runs for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRef {
    /// Source namespace.
    pub namespace: String,
    /// Source name.
    pub name: String,
    /// The source's shard label, stamped on everything it applies (so that
    /// the operator shard of the same key runs its sessions).
    pub shard: Option<String>,
}

impl SourceRef {
    /// The source `namespace/name`, unsharded.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into(), shard: None }
    }

    /// Label selector of the objects this source applied.
    pub fn selector(&self) -> String {
        acp_api::source::applied_by(&self.namespace, &self.name)
    }

    /// Whether `object` carries this source's labels (and is not a run of a
    /// schedule, which carries them too but was created by the scheduler).
    pub fn owns(&self, object: &Value) -> bool {
        let labels_of = &object["metadata"]["labels"];
        labels_of[labels::SOURCE_NAMESPACE] == self.namespace.as_str()
            && labels_of[labels::SOURCE_NAME] == self.name.as_str()
            && labels_of[labels::SCHEDULE].is_null()
    }
}

/// A valid session or schedule to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// Its kind.
    pub kind: Kind,
    /// Object name (in the target namespace).
    pub name: String,
    /// File it came from.
    pub path: String,
    /// Line of its document.
    pub line: u32,
    /// The object as applied, stamped, without the revision annotation.
    pub object: Value,
    /// Digest of the manifest (before stamping).
    pub digest: String,
    /// Line and column of its `metadata.name`.
    pub name_at: (u32, u32),
}

impl Desired {
    /// The object with the revision stamp.
    pub fn at_revision(&self, revision: &str) -> Value {
        let mut object = self.object.clone();
        object["metadata"]["annotations"][annotations::SOURCE_REVISION] = json!(revision);
        object
    }

    /// The object as sent to the API server: the synced `revision`, and the
    /// `commit` that last changed its file as a label (selectable: "the
    /// sessions of commit X"). Neither takes part in the comparison with the
    /// live object, so a sync that changes no file writes nothing.
    pub fn stamped(&self, revision: &str, commit: &str) -> Value {
        let mut object = self.at_revision(revision);
        object["metadata"]["labels"][labels::SOURCE_COMMIT] = json!(commit);
        object
    }
}

/// Valid sessions and per-file errors of one revision.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Sessions to apply, sorted by name.
    pub desired: Vec<Desired>,
    /// One entry per problem.
    pub errors: Vec<FileError>,
}

fn file_error(path: &str, message: String) -> FileError {
    FileError { path: path.to_string(), line: None, column: None, message }
}

/// The outcome of checking one file: its valid sessions and its errors.
#[derive(Clone, Debug, Default)]
pub struct FileChecked {
    desired: Vec<Desired>,
    errors: Vec<FileError>,
}

/// Check results by `(path, target namespace, content digest)`, so that a
/// re-sync checks only the files that changed.
pub type CheckCache = HashMap<(String, String, [u8; 32]), FileChecked>;

/// Turns the files of a revision into sessions for `target_namespace`,
/// checking each with `checker`; every bad document becomes a [`FileError`]
/// and never stops the others. Without a target namespace (offline
/// validation), each manifest keeps its own namespace (or `default`).
pub fn manifests(
    entries: &[Entry],
    source: &SourceRef,
    target_namespace: Option<&str>,
    checker: &Checker,
) -> Manifests {
    manifests_cached(entries, source, target_namespace, checker, &CheckCache::new()).0
}

/// [`manifests`], reusing the results of unchanged files from `previous`;
/// returns the cache for the next sync (this revision's files only).
pub fn manifests_cached(
    entries: &[Entry],
    source: &SourceRef,
    target_namespace: Option<&str>,
    checker: &Checker,
    previous: &CheckCache,
) -> (Manifests, CheckCache) {
    let mut out = Manifests::default();
    let mut cache = CheckCache::new();
    let mut seen: HashMap<(Kind, String), (String, u32)> = HashMap::new();
    for entry in entries {
        let checked = match entry {
            Entry::File { path, bytes } => {
                // The stamp depends on the namespace and the shard as well as the bytes.
                let scope = format!(
                    "{}|{}",
                    target_namespace.unwrap_or_default(),
                    source.shard.as_deref().unwrap_or("")
                );
                let key = (path.clone(), scope, Sha256::digest(bytes).into());
                let checked = match previous.get(&key) {
                    Some(hit) => hit.clone(),
                    None => check_file(path, bytes, source, target_namespace, checker),
                };
                cache.insert(key, checked.clone());
                checked
            }
            Entry::Symlink { path, target } => not_read(
                path,
                format!("symlink to {target:?} is not followed; commit the manifest itself at this path"),
            ),
            Entry::TooLarge { path, size } => not_read(
                path,
                format!(
                    "file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit for manifests; split it or remove it"
                ),
            ),
        };
        out.errors.extend(checked.errors);
        for desired in checked.desired {
            add_unique(&mut out, &mut seen, desired);
        }
    }
    out.desired.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    (out, cache)
}

/// A file that is not read, for `why`.
fn not_read(path: &str, why: String) -> FileChecked {
    FileChecked { desired: Vec::new(), errors: vec![file_error(path, why)] }
}

/// Adds `desired` to `out`, unless an object of its kind and name came
/// first (`seen`, with where): then it is an error at its name.
fn add_unique(out: &mut Manifests, seen: &mut HashMap<(Kind, String), (String, u32)>, desired: Desired) {
    if let Some((first_path, first_line)) = seen.get(&(desired.kind, desired.name.clone())) {
        out.errors.push(FileError {
            path: desired.path.clone(),
            line: Some(desired.name_at.0.into()),
            column: Some(desired.name_at.1.into()),
            message: format!(
                "{} {:?} is also defined at {first_path}:{first_line}; names must be unique, rename one",
                desired.kind, desired.name
            ),
        });
        return;
    }
    seen.insert((desired.kind, desired.name.clone()), (desired.path.clone(), desired.line));
    out.desired.push(desired);
}

/// The namespace `spec` applies into, for a source in `own_namespace`: its
/// own, unless it names another *and* a ServiceAccount to apply as (whose
/// RBAC then decides). The CRD refuses the combination at admission too; this
/// check keeps a source admitted before that rule (or by a lax API server)
/// from using git-sync's own rights in another namespace.
pub fn target_namespace(
    spec: &acp_api::source::SessionSourceSpec,
    own_namespace: &str,
) -> Result<String, String> {
    match (&spec.target_namespace, &spec.service_account_name) {
        (Some(target), None) if target != own_namespace => Err(format!(
            "spec.targetNamespace {target:?} needs spec.serviceAccountName: a source applies into another \
             namespace only as a ServiceAccount whose RBAC allows it"
        )),
        (Some(target), _) => Ok(target.clone()),
        (None, _) => Ok(own_namespace.to_owned()),
    }
}

fn check_file(
    path: &str,
    bytes: &[u8],
    source: &SourceRef,
    target_namespace: Option<&str>,
    checker: &Checker,
) -> FileChecked {
    let mut out = FileChecked::default();
    let Ok(text) = std::str::from_utf8(bytes) else {
        out.errors.push(file_error(path, "file is not UTF-8 text".into()));
        return out;
    };
    let documents = match manifest::parse(path, text) {
        Ok(documents) => documents,
        Err(error) => {
            out.errors.push(error);
            return out;
        }
    };
    for doc in documents {
        match check_document(&doc, source, target_namespace, checker) {
            Ok(desired) => out.desired.push(desired),
            Err(errors) => out.errors.extend(errors),
        }
    }
    out
}

/// One document: a synced kind, without reserved labels or annotations, in
/// the namespace the source applies into, and passing `checker`; stamped.
fn check_document(
    doc: &manifest::Document,
    source: &SourceRef,
    target_namespace: Option<&str>,
    checker: &Checker,
) -> Result<Desired, Vec<FileError>> {
    let root = acp_policy::FieldPath::root();
    let api_version = doc.object["apiVersion"].as_str().unwrap_or_default();
    let kind = doc.object["kind"].as_str().unwrap_or_default();
    let Some(kind) = Kind::of(kind).filter(|_| api_version == acp_api::constants::API_VERSION) else {
        return Err(vec![doc.error_at(
            &root.key("kind"),
            format!(
                "{kind:?} ({api_version:?}) is not synced: a session source holds only {} AgenticSession and SessionSchedule manifests",
                acp_api::constants::API_VERSION
            ),
        )]);
    };
    let reserved = reserved(doc);
    if !reserved.is_empty() {
        return Err(reserved);
    }
    let own_namespace = doc.object["metadata"]["namespace"].as_str();
    let target_namespace = target_namespace.or(own_namespace).unwrap_or("default");
    if let Some(ns) = own_namespace
        && ns != target_namespace
    {
        return Err(vec![doc.error_at(
            &root.key("metadata").key("namespace"),
            format!("metadata.namespace is {ns:?} but this source applies into {target_namespace:?}; remove metadata.namespace"),
        )]);
    }
    let findings = checker.check(&doc.object, target_namespace);
    if !findings.is_empty() {
        return Err(findings.iter().map(|f| doc.error_at(&f.field, f.to_string())).collect());
    }
    let name = doc.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    Ok(stamp(doc, kind, name, source, target_namespace))
}

/// An error per label or annotation of `doc` reserved for acp's components.
fn reserved(doc: &manifest::Document) -> Vec<FileError> {
    let root = acp_policy::FieldPath::root();
    ["labels", "annotations"]
        .into_iter()
        .flat_map(|kind| {
            doc.object["metadata"][kind]
                .as_object()
                .into_iter()
                .flat_map(move |m| m.keys().map(move |k| (kind, k)))
        })
        .filter(|(_, key)| acp_api::constants::is_reserved(key))
        .map(|(kind, key)| {
            doc.error_at(
                &root.key("metadata").key(kind).key(key),
                format!(
                    "{} {key} is reserved for acp's components and cannot come from git; remove it",
                    &kind[..kind.len() - 1]
                ),
            )
        })
        .collect()
}

fn stamp(
    doc: &manifest::Document,
    kind: Kind,
    name: String,
    source: &SourceRef,
    target_namespace: &str,
) -> Desired {
    let digest = digest(&doc.object);
    let mut object = doc.object.clone();
    object.as_object_mut().map(|o| o.remove("status"));
    let meta = &mut object["metadata"];
    meta["namespace"] = json!(target_namespace);
    meta["labels"][labels::SOURCE_NAMESPACE] = json!(source.namespace);
    meta["labels"][labels::SOURCE_NAME] = json!(source.name);
    meta["labels"][labels::MANAGED_BY] = json!(labels::MANAGED_BY_VALUE);
    // A manifest cannot carry the (reserved) shard label: the source's decides.
    if let Some(shard) = &source.shard {
        meta["labels"][labels::SHARD] = json!(shard);
    }
    meta["annotations"][annotations::SOURCE] = json!(format!("{}/{}", source.namespace, source.name));
    meta["annotations"][annotations::SOURCE_PATH] = json!(doc.path);
    meta["annotations"][DIGEST_ANNOTATION] = json!(digest);
    let name_at = doc.locate(&acp_policy::FieldPath::root().key("metadata").key("name"));
    Desired { kind, name, path: doc.path.clone(), line: doc.line, object, digest, name_at }
}

/// A short, stable digest of a manifest. serde_json's map keeps keys sorted
/// (the `preserve_order` feature is off), so the JSON text is canonical.
pub fn digest(object: &Value) -> String {
    let hash = Sha256::digest(serde_json::to_vec(object).unwrap_or_default());
    hex::encode(&hash[..8])
}

/// Whether every field of `want` has the same value in `live` (lists must
/// match element by element; the API server's defaults may add fields).
pub fn contains(live: &Value, want: &Value) -> bool {
    match (live, want) {
        (Value::Object(live), Value::Object(want)) => {
            want.iter().all(|(k, v)| live.get(k).is_some_and(|l| contains(l, v)))
        }
        (Value::Array(live), Value::Array(want)) => {
            live.len() == want.len() && live.iter().zip(want).all(|(l, w)| contains(l, w))
        }
        (Value::Number(l), Value::Number(w)) => l.as_f64() == w.as_f64(),
        _ => live == want,
    }
}

/// What a sync changes.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Sessions that do not exist yet.
    pub create: Vec<Desired>,
    /// Sessions that differ from git.
    pub update: Vec<Desired>,
    /// Sessions already as git says: `(desired, revision recorded on them)`.
    pub unchanged: Vec<(Desired, String)>,
    /// Sessions this source applied that left git (names).
    pub prune: Vec<String>,
    /// Names taken by objects this source does not own.
    pub conflicts: Vec<FileError>,
}

/// Diffs `desired` against the `live` sessions of the target namespace.
/// Pruning considers only objects in `inventory` that still carry this
/// source's labels; objects it does not own are never touched, and neither
/// are sessions whose file has errors in this revision (`broken_paths`): a
/// typo must not delete a running session.
pub fn diff(
    desired: Vec<Desired>,
    live: &[Value],
    inventory: &[InventoryEntry],
    source: &SourceRef,
    broken_paths: &std::collections::HashSet<&str>,
) -> Plan {
    let by_name: HashMap<&str, &Value> =
        live.iter().filter_map(|o| o["metadata"]["name"].as_str().map(|n| (n, o))).collect();
    let mut plan = Plan::default();
    for want in desired {
        match by_name.get(want.name.as_str()) {
            None => plan.create.push(want),
            Some(live) if !source.owns(live) => plan.conflicts.push(FileError {
                path: want.path.clone(),
                line: Some(want.line.into()),
                column: Some(1),
                message: format!(
                    "{} {:?} already exists and was not created by this source; rename the manifest or delete the existing one",
                    want.kind, want.name
                ),
            }),
            Some(live) => {
                let same_digest = live["metadata"]["annotations"][DIGEST_ANNOTATION] == want.digest.as_str();
                // `contains` ignores extra live labels: a shard label the
                // source no longer has must go too.
                let shard = |o: &Value| o["metadata"]["labels"][labels::SHARD].clone();
                if same_digest && contains(live, &want.object) && shard(live) == shard(&want.object) {
                    let revision = live["metadata"]["annotations"][annotations::SOURCE_REVISION]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    plan.unchanged.push((want, revision));
                } else {
                    plan.update.push(want);
                }
            }
        }
    }
    let wanted: std::collections::HashSet<&str> = plan
        .create
        .iter()
        .chain(&plan.update)
        .chain(plan.unchanged.iter().map(|(d, _)| d))
        .map(|d| d.name.as_str())
        .collect();
    for entry in inventory {
        if wanted.contains(entry.name.as_str()) || broken_paths.contains(entry.path.as_str()) {
            continue;
        }
        if by_name.get(entry.name.as_str()).is_some_and(|live| source.owns(live)) {
            plan.prune.push(entry.name.clone());
        }
    }
    plan
}

#[cfg(test)]
mod tests;
