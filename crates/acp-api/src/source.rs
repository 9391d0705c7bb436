//! The `SessionSource` resource: where git-sync finds AgenticSession manifests,
//! how it applies them, and where results are written back.
//!
//! Modelled on Flux's GitRepository and Kustomization folded into one object,
//! for sessions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, core::Duration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
pub use crate::inventory::{Inventory, InventoryEntry};
use crate::pull_requests::ThreadPath;
use crate::schema::{GIT_URL_PATTERN, NO_DOT_DOT_RULE};

/// Desired state of a SessionSource.
#[allow(clippy::duplicated_attributes, reason = "each printcolumn(...) repeats type_ by design")]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vteam.ambient-code",
    version = "v1alpha1",
    kind = "SessionSource",
    plural = "sessionsources",
    singular = "sessionsource",
    shortname = "ss",
    category = "acp",
    namespaced,
    status = "SessionSourceStatus",
    derive = "PartialEq",
    doc = "A SessionSource points git-sync at a git repository of AgenticSession manifests. git-sync fetches it on an interval (or on a webhook), validates every manifest against the schema and policies, and applies the valid ones with server-side apply.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url", priority = "1"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Revision", type_ = "string", json_path = ".status.lastAppliedRevision"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.targetNamespace) || has(self.serviceAccountName)",
    "message": "targetNamespace needs serviceAccountName: a source applies into another namespace only as a ServiceAccount whose RBAC allows it"
}, {
    "rule": "!has(self.pullRequests) || has(self.github)",
    "message": "pullRequests needs github: its token answers commands and its webhook secret verifies them"
}]))]
pub struct SessionSourceSpec {
    /// Repository URL: `https://…`, `ssh://…`, `git@host:path` or `file://…`.
    #[schemars(length(min = 1, max = 2048), pattern(GIT_URL_PATTERN))]
    pub url: String,
    /// Git reference to follow. When several are set, `commit` wins over `tag`,
    /// and `tag` over `branch`. Defaults to the `main` branch.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<GitRef>,
    /// Directory inside the repository holding the manifests, searched
    /// recursively for `*.yaml` and `*.yml`. Defaults to the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), extend("x-kubernetes-validations" = [{
        "rule": NO_DOT_DOT_RULE,
        "message": "path must stay inside the repository (no '..' segments)"
    }]))]
    pub path: Option<String>,
    /// How often to fetch, as a Go duration (`30s`, `5m`, `1h`). A small random
    /// jitter spreads sources that share an interval. Defaults to `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "1m"))]
    pub interval: Option<Duration>,
    /// Timeout for one fetch, as a Go duration. Defaults to `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "60s"))]
    pub timeout: Option<Duration>,
    /// Secret in this namespace holding the fetch credentials: `username` and
    /// `password` (or a token as the password) for https; `identity` (a private
    /// key) and `known_hosts` for ssh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Delete sessions this source applied earlier whose manifests left git.
    /// Only objects in this source's inventory are ever deleted.
    #[serde(default)]
    pub prune: bool,
    /// Stop syncing (fetching and applying) until set back to false.
    #[serde(default)]
    pub suspend: bool,
    /// Apply as this ServiceAccount (impersonation), so RBAC bounds what the
    /// repository may create. Without it git-sync applies as itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub service_account_name: Option<String>,
    /// Namespace to apply sessions into. Defaults to this source's namespace.
    /// Another namespace requires `serviceAccountName` (whose RBAC must allow
    /// it); a manifest naming another namespace is reported as an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub target_namespace: Option<String>,
    /// Extra gitignore-style patterns of files to skip, relative to `path`.
    /// The write-back path is always skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub ignore: Vec<String>,
    /// Where the status bot writes session results back into this repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back: Option<WriteBack>,
    /// GitHub integration: pull request comments and commit statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GitHubSettings>,
    /// Pull requests this source serves with `/acp` commands and `@acp`
    /// follow-ups in their comments (needs `github`, whose token and webhook
    /// secret it uses). Each request is committed to `requestsBranch` of this
    /// repository, which git-sync applies too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_requests: Option<crate::pull_requests::PullRequestBinding>,
}

/// A git reference.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRef {
    /// Branch to follow; force-pushes are followed and reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub branch: Option<String>,
    /// Tag to check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub tag: Option<String>,
    /// Full commit SHA to check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9a-f]{40}([0-9a-f]{24})?$"))]
    pub commit: Option<String>,
}

/// A reference to an object in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key in a Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret; each field that uses this names its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub key: Option<String>,
}

/// Write-back settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteBack {
    /// Whether to write results back at all. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,
    /// Branch receiving status commits; git-sync never applies from it.
    /// Defaults to `acp/status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), extend("default" = "acp/status"))]
    pub branch: Option<String>,
    /// Directory holding one YAML file per session. Defaults to `status`;
    /// git-sync ignores it on every branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), extend("default" = "status", "x-kubernetes-validations" = [{
        "rule": NO_DOT_DOT_RULE,
        "message": "path must stay inside the repository (no '..' segments)"
    }]))]
    pub path: Option<String>,
}

/// GitHub settings for pull request feedback.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitHubSettings {
    /// Repository as `owner/name`.
    #[schemars(length(min = 3, max = 200), pattern(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"))]
    pub repository: String,
    /// Secret holding a GitHub token (key defaults to `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// Secret holding the webhook secret used to verify `X-Hub-Signature-256`
    /// (key defaults to `webhook-secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_ref: Option<SecretKeyRef>,
    /// Post one progress comment per session on the pull request that brought
    /// it in. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub comments: Option<bool>,
    /// Post a commit status `acp/<session>` on the source revision. Defaults to
    /// true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub commit_statuses: Option<bool>,
}

/// Observed state of a SessionSource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSourceStatus {
    /// Generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions: Ready, Reconciling, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<Condition>,
    /// Revision last fetched, as `<ref>@sha1:<commit>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fetched_revision: Option<String>,
    /// Revision last applied without any error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// Revision of the last apply attempt, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// Last handled value of the `ambient-code.io/reconcile-requested-at`
    /// annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// Objects this source applied and owns; the basis of pruning. On the
    /// wire, `inventory` (a list) while it is short, `compactInventory`
    /// beyond that (see [`Inventory`]).
    #[serde(flatten)]
    pub inventory: Inventory,
    /// Per-file problems of the last attempt; the other files still applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub errors: Vec<FileError>,
    /// Recent syncs that changed something, newest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub history: Vec<SyncRecord>,
}

/// A problem with one file (or one document in it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileError {
    /// Repository-relative file path.
    pub path: String,
    /// 1-based line, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<i64>,
    /// 1-based column, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<i64>,
    /// What is wrong and what to change.
    #[schemars(length(max = 4096))]
    pub message: String,
}

/// A summary of one sync.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// Revision synced.
    pub revision: String,
    /// When the sync started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// How long the sync took, in milliseconds.
    #[serde(default)]
    pub duration_ms: i64,
    /// Objects created or changed.
    #[serde(default)]
    pub applied: i64,
    /// Objects already up to date.
    #[serde(default)]
    pub unchanged: i64,
    /// Objects deleted by pruning.
    #[serde(default)]
    pub pruned: i64,
    /// Files with errors.
    #[serde(default)]
    pub errors: i64,
}
/// Label selector of the objects SessionSource `namespace/name` applied
/// (git-sync's labels; a schedule's runs carry them too).
pub fn applied_by(namespace: &str, name: &str) -> String {
    use crate::constants::labels;
    format!("{}={namespace},{}={name}", labels::SOURCE_NAMESPACE, labels::SOURCE_NAME)
}

impl SessionSource {
    /// The namespace its sessions go to: `spec.targetNamespace`, else its own.
    pub fn target_namespace(&self) -> &str {
        self.spec
            .target_namespace
            .as_deref()
            .unwrap_or(self.metadata.namespace.as_deref().unwrap_or_default())
    }

    /// The thread (pull request of a code repository) that asked for session
    /// `namespace/name`: its file, as its inventory records it (git-sync's
    /// record, not a claim on the session), lies on its requests branch
    /// under `owner/repo/pr-<n>/`, for a repository its binding serves.
    pub fn pull_request_of(&self, namespace: &str, name: &str) -> Option<ThreadPath> {
        let binding = self.spec.pull_requests.as_ref()?;
        let entry = self
            .status
            .as_ref()?
            .inventory
            .iter()
            .find(|e| e.kind == "AgenticSession" && e.namespace == namespace && e.name == name)?;
        let rest = entry.path.strip_prefix(binding.requests_branch())?.strip_prefix(':')?;
        let (thread, _) = ThreadPath::parse(rest)?;
        binding.serves(&thread.repository).then_some(thread)
    }

    /// The sessions of `thread` that it applied into `namespace` (its
    /// inventory's files under `owner/repo/pr-N/` on the requests branch),
    /// oldest request first.
    pub fn thread_of(&self, namespace: &str, thread: &ThreadPath) -> Vec<String> {
        let Some(binding) = self.spec.pull_requests.as_ref() else { return Vec::new() };
        let branch = binding.requests_branch();
        let in_thread = |path: &str| {
            let on_branch = path.strip_prefix(branch).and_then(|p| p.strip_prefix(':'));
            on_branch.and_then(ThreadPath::parse).is_some_and(|(t, _)| t == *thread)
        };
        let mut names: Vec<String> = self
            .status
            .iter()
            .flat_map(|s| &s.inventory)
            .filter(|e| e.kind == "AgenticSession" && e.namespace == namespace && in_thread(&e.path))
            .map(|e| e.name.clone())
            .collect();
        // Names end in the comment id, which grows: shorter, then smaller, is older.
        names.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        names
    }
}
