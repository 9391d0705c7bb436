//! What a command becomes, without I/O: whether the commenter may give it,
//! and the commit that records it on the requests branch (a session
//! manifest, or a stop annotation on the thread's latest session) with
//! trailers naming the command, the commenter, their role, the comment and
//! the pull request's head.

use acp_api::constants::{API_VERSION, annotations};
use acp_api::pull_requests::{PullRequestBinding, Role, ThreadPath};
use acp_github::PullRequest;
use serde_json::{Value, json};

use super::grammar::{Command, RunFlags};

/// The annotation linking a session to its parent: the sessions of one pull
/// request form a thread through it.
pub use acp_api::constants::annotations::PARENT_SESSION;
pub use acp_api::pull_requests::chain;

/// Who wrote a comment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Commenter {
    /// GitHub login.
    pub login: String,
    /// A bot account.
    pub bot: bool,
    /// For a bot: its GitHub App's id, when the delivery names one.
    pub app_id: Option<i64>,
}

/// The comment a command came in, as GitHub holds it (read by id, never
/// taken from the delivery).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comment {
    /// Comment id.
    pub id: u64,
    /// Its URL.
    pub url: String,
    /// Who wrote it.
    pub commenter: Commenter,
    /// A review comment on the diff (else an issue comment).
    pub review: bool,
    /// When it was written (RFC 3339, GitHub's clock).
    pub created_at: String,
    /// SHA-256 of its text when it was read: an approval runs a waiting
    /// request only if its comment still says this.
    pub digest: String,
}

impl Comment {
    /// Where the API serves it: `issues/<id>` or `pulls/<id>` (review).
    pub fn api_ref(&self) -> String {
        format!("{}/{}", if self.review { "pulls" } else { "issues" }, self.id)
    }
}

/// SHA-256 of a comment's text, hex.
pub fn digest(body: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(body.as_bytes()))
}

/// What to do about a command, before any write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Go on.
    Allowed,
    /// Say nothing (a bot, or a stranger on a public repository: no reply
    /// that could be used to make acp spam).
    Silent,
    /// Refuse with this one line.
    Refused(String),
    /// Record the request, but it waits for a maintainer's `/acp approve`
    /// (the commenter's role is below the one needed), for this reason.
    Approval(String),
}

/// Whether `comment`'s author, with `role` on `repository`, may give
/// `command`. Someone who is not a collaborator (`Role::None`: GitHub's
/// collaborator check said 404) gets nothing at all, whatever the command
/// and the binding: no reply, no reaction, no commit.
pub fn gate(
    binding: &PullRequestBinding,
    repository: &str,
    comment: &Comment,
    role: Role,
    command: &Command,
) -> Gate {
    let who = &comment.commenter;
    if who.bot && !who.app_id.is_some_and(|id| binding.allowed_bot_app_ids.contains(&id)) {
        return Gate::Silent;
    }
    if role == Role::None {
        return Gate::Silent;
    }
    let needed = binding.roles.needed(command.verb());
    if role >= needed {
        return Gate::Allowed;
    }
    if role >= Role::Read && matches!(command, Command::Run(_) | Command::FollowUp(_) | Command::Retry) {
        return Gate::Approval(format!(
            "`{}` needs {} access to {repository} and @{} has {}",
            display(command),
            needed.as_str(),
            who.login,
            role.as_str()
        ));
    }
    Gate::Refused(format!(
        "@{}: `{}` needs {} access to {repository}; you have {}.",
        who.login,
        display(command),
        needed.as_str(),
        role.as_str()
    ))
}

fn display(command: &Command) -> String {
    match command {
        Command::FollowUp(_) => "@acp".into(),
        other => format!("/acp {}", other.verb()),
    }
}

/// A commit to make on the requests branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// File path on the branch.
    pub path: String,
    /// File content.
    pub content: String,
    /// Commit message, with trailers.
    pub message: String,
    /// The session it creates or changes.
    pub session: String,
}

/// What a follow-up continues: the thread's latest session, and what
/// reviewers said since the latest request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Thread {
    /// The latest session.
    pub parent: Option<String>,
    /// Review comments since the latest request, one line each.
    pub reviews: Vec<String>,
}

/// The session a `/acp run` or `@acp` request creates, with its commit. A
/// follow-up links to the thread's latest session; the operator resumes
/// that session's conversation when it runs (or, when its transcript is
/// gone, starts with the earlier turns' summaries).
pub fn run(
    binding: &PullRequestBinding,
    repository: &str,
    pull: &PullRequest,
    comment: &Comment,
    role: Role,
    command: &Command,
    thread: &Thread,
) -> Result<Record, String> {
    // What GitHub shows no reader (zero-width and tag characters) never runs.
    let (flags, text) = match command {
        Command::Run(flags) => {
            (flags.clone(), acp_github::markdown::visible(flags.prompt.as_deref().unwrap_or_default()))
        }
        Command::FollowUp(text) => (RunFlags::default(), acp_github::markdown::visible(text)),
        other => return Err(format!("/acp {} does not start a session", other.verb())),
    };
    let model = model(binding, &flags)?;
    within_limits(binding, &flags)?;
    if !pull.fork && pull.default_branch.as_deref() == Some(pull.head_ref.as_str()) {
        return Err(format!(
            "this pull request's head is {repository}'s default branch ({}); acp does not push to it",
            pull.head_ref
        ));
    }
    let name = ThreadPath::new(repository, pull.number).session_name(comment.id, comment.review);
    let prompt = prompt(repository, pull, comment, &text, &thread.reviews);
    let spec = spec(binding, pull, comment, &flags, model, prompt)?;
    let metadata = metadata(binding, &name, thread.parent.as_deref(), pull);
    let manifest =
        json!({"apiVersion": API_VERSION, "kind": "AgenticSession", "metadata": metadata, "spec": spec});
    let content =
        serde_saphyr::to_string(&manifest).map_err(|e| format!("failed to write the manifest: {e}"))?;
    let subject = format!(
        "acp: {} request from @{} on {repository}#{}",
        command.verb(),
        comment.commenter.login,
        pull.number
    );
    Ok(Record {
        path: format!("{}/{name}.yaml", ThreadPath::new(repository, pull.number)),
        content,
        message: format!("{subject}\n\n{}\n\n{}", quoted(&text), trailers(command, comment, role, pull)),
        session: name,
    })
}

/// The model a request runs: the one `--model` names, if the template has
/// it or the binding allows it; else the template's.
fn model(binding: &PullRequestBinding, flags: &RunFlags) -> Result<Option<String>, String> {
    let template_model = binding.template.spec.llm_settings.as_ref().and_then(|l| l.model.clone());
    match &flags.model {
        Some(model)
            if binding.allowed_models.contains(model)
                || template_model.as_deref() == Some(model.as_str()) =>
        {
            Ok(Some(model.clone()))
        }
        Some(model) => {
            let allowed: Vec<&str> = template_model
                .iter()
                .map(String::as_str)
                .chain(binding.allowed_models.iter().map(String::as_str))
                .collect();
            Err(format!(
                "--model {} is not allowed here (allowed: {})",
                acp_github::markdown::code_span(model),
                allowed.join(", ")
            ))
        }
        None => Ok(template_model),
    }
}

/// Whether `--max-turns` and `--timeout` are within the binding's limits.
fn within_limits(binding: &PullRequestBinding, flags: &RunFlags) -> Result<(), String> {
    let max_turns = binding.max_turns.unwrap_or(acp_api::pull_requests::DEFAULT_MAX_TURNS);
    if let Some(n) = flags.max_turns.filter(|n| *n > max_turns) {
        return Err(format!("--max-turns {n} is over this repository's limit of {max_turns}"));
    }
    let max_timeout =
        binding.max_timeout_seconds.unwrap_or(acp_api::pull_requests::DEFAULT_MAX_TIMEOUT_SECONDS);
    if let Some(t) = flags.timeout_seconds.filter(|t| *t > max_timeout) {
        return Err(format!("--timeout {t}s is over this repository's limit of {max_timeout}s"));
    }
    Ok(())
}

/// The session's prompt: where it works, what reviewers said since the
/// last request, and the request (`text`) with who asked it.
fn prompt(repository: &str, pull: &PullRequest, comment: &Comment, text: &str, reviews: &[String]) -> String {
    let request =
        if text.trim().is_empty() { "(no further instructions)".to_owned() } else { text.to_owned() };
    let reviews = if reviews.is_empty() {
        String::new()
    } else {
        format!("Review comments since the last request:\n{}\n\n", reviews.join("\n"))
    };
    format!(
        "You are working on pull request #{} of {repository}, branch {} at commit {}.\n\n{reviews}Request from @{} ({}):\n\n{request}",
        pull.number, pull.head_ref, pull.head_sha, comment.commenter.login, comment.url
    )
}

/// The session's spec: the binding's template, on the pull request's
/// branch, with the prompt and the flags.
fn spec(
    binding: &PullRequestBinding,
    pull: &PullRequest,
    comment: &Comment,
    flags: &RunFlags,
    model: Option<String>,
    prompt: String,
) -> Result<Value, String> {
    let mut spec = serde_json::to_value(&binding.template.spec)
        .map_err(|e| format!("failed to read the template: {e}"))?;
    spec["repos"] = if pull.fork {
        // A fork's branch is not acp's to push to, and fork-derived commits
        // never go to a branch of the base repository (where `on: push` CI
        // would run them with the base's secrets): the session pushes its
        // commit to a ref outside refs/heads and refs/tags of the base
        // repository (its commit is pinned when the request is approved,
        // and only that branch of the fork is fetched).
        json!([{"url": pull.head_clone_url, "branch": pull.head_ref, "autoPush": true,
                "pushUrl": pull.base_clone_url, "pushRef": fork_ref(pull.number, comment.id)}])
    } else {
        // The session works on the pull request's branch and pushes back to
        // it (fast-forward only: commits pushed meanwhile are never overwritten).
        json!([{"url": pull.head_clone_url, "branch": pull.head_ref, "autoPush": true, "pushBranch": pull.head_ref}])
    };
    spec["initialPrompt"] = json!(prompt);
    if let Some(model) = model {
        spec["llmSettings"]["model"] = json!(model);
    }
    if let Some(n) = flags.max_turns {
        spec["maxTurns"] = json!(n);
    }
    if let Some(t) = flags.timeout_seconds {
        spec["timeout"] = json!(t);
    }
    Ok(spec)
}

/// The session's metadata: its name, the template's labels and
/// annotations, its parent in the thread and the head it was asked at.
fn metadata(binding: &PullRequestBinding, name: &str, parent: Option<&str>, pull: &PullRequest) -> Value {
    let mut metadata = json!({"name": name});
    if !binding.template.metadata.labels.is_empty() {
        metadata["labels"] = json!(binding.template.metadata.labels);
    }
    let mut notes: serde_json::Map<String, Value> =
        binding.template.metadata.annotations.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    if let Some(parent) = parent {
        notes.insert(PARENT_SESSION.into(), json!(parent));
    }
    notes.insert(annotations::PULL_REQUEST_HEAD.into(), json!(pull.head_sha));
    if !notes.is_empty() {
        metadata["annotations"] = Value::Object(notes);
    }
    metadata
}

/// The ref of the base repository a fork's request pushes to:
/// `refs/acp/pr-<N>/<comment>`, no branch.
pub fn fork_ref(pull: u64, comment: u64) -> String {
    format!("refs/acp/pr-{pull}/{comment}")
}

/// A comment's text for a commit message: every line quoted (`> `), so
/// that nothing in it reads as a trailer or as the `---` that ends a
/// message for `git interpret-trailers`; the trailers after it are acp's
/// own.
fn quoted(text: &str) -> String {
    let text = if text.trim().is_empty() { "(no text)" } else { text };
    text.lines()
        .map(|l| if l.is_empty() { ">".to_owned() } else { format!("> {l}") })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `record` made a request that waits for approval: under `pending/`,
/// with the comment it came from (where, when, a digest of its text) so
/// that an approval covers only what its approver saw.
pub fn waiting(mut record: Record, repository: &str, pull: u64, comment: &Comment) -> Option<Record> {
    let mut object: Value = serde_saphyr::from_str(&record.content).ok()?;
    let notes = &mut object["metadata"]["annotations"];
    if !notes.is_object() {
        *notes = json!({});
    }
    notes[annotations::REQUEST_COMMENT] = json!(comment.api_ref());
    notes[annotations::REQUEST_CREATED] = json!(comment.created_at);
    notes[annotations::REQUEST_DIGEST] = json!(comment.digest);
    record.content = serde_saphyr::to_string(&object).ok()?;
    record.path = pending_path(repository, pull, &record.session);
    record.message = record.message.replacen('\n', " (waits for approval)\n", 1);
    Some(record)
}

/// What a waiting request says about the comment it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Waiting {
    /// `issues/<id>` or `pulls/<id>`.
    pub comment: String,
    /// When the comment was written.
    pub created_at: String,
    /// SHA-256 of its text then.
    pub digest: String,
    /// Dropped by an earlier approval (edited or deleted since): why.
    pub dropped: Option<String>,
    /// The request's prompt.
    pub prompt: String,
}

/// Reads a waiting request's manifest.
pub fn waiting_of(manifest: &str) -> Option<Waiting> {
    let object: Value = serde_saphyr::from_str(manifest).ok()?;
    let notes = &object["metadata"]["annotations"];
    let text = |key: &str| notes[key].as_str().map(str::to_owned);
    Some(Waiting {
        comment: text(annotations::REQUEST_COMMENT)?,
        created_at: text(annotations::REQUEST_CREATED)?,
        digest: text(annotations::REQUEST_DIGEST)?,
        dropped: text(annotations::REQUEST_DROPPED),
        prompt: object["spec"]["initialPrompt"].as_str().unwrap_or_default().to_owned(),
    })
}

/// A waiting request's manifest marked dropped for `why` (`None` when it
/// does not parse).
pub fn dropped(manifest: &str, why: &str) -> Option<String> {
    let mut object: Value = serde_saphyr::from_str(manifest).ok()?;
    object["metadata"]["annotations"][annotations::REQUEST_DROPPED] = json!(why);
    serde_saphyr::to_string(&object).ok()
}

/// Where requests waiting for approval lie on the requests branch, as a
/// gitignore-style pattern (git-sync does not read them).
pub const PENDING_PATTERN: &str = "/*/*/pr-*/pending/";

/// The path of a request waiting for approval: `pending/` beside the
/// thread's requests (git-sync never applies it).
pub fn pending_path(repository: &str, pull: u64, session: &str) -> String {
    format!("{}/pending/{session}.yaml", ThreadPath::new(repository, pull))
}

/// A waiting request's manifest, approved at `head`: pinned to that commit
/// (a push after the approval voids it), recorded at that head, and linked
/// to the thread's latest session `parent`; what it said about its comment
/// stays behind under `pending/`. `None` when it does not parse.
pub fn approved(manifest: &str, parent: Option<&str>, head: &str) -> Option<String> {
    let mut object: Value = serde_saphyr::from_str(manifest).ok()?;
    for repo in object["spec"]["repos"].as_array_mut()? {
        repo["commit"] = json!(head);
    }
    let notes = &mut object["metadata"]["annotations"];
    if !notes.is_object() {
        *notes = json!({});
    }
    if let Some(notes) = notes.as_object_mut() {
        for key in [
            annotations::REQUEST_COMMENT,
            annotations::REQUEST_CREATED,
            annotations::REQUEST_DIGEST,
            annotations::REQUEST_DROPPED,
        ] {
            notes.remove(key);
        }
    }
    notes[annotations::PULL_REQUEST_HEAD] = json!(head);
    match parent {
        Some(parent) => notes[PARENT_SESSION] = json!(parent),
        None => {
            notes.as_object_mut()?.remove(PARENT_SESSION);
        }
    }
    serde_saphyr::to_string(&object).ok()
}

/// Where the record of an approve or stop comment lies: one file per
/// comment id under `pending/` (never applied), so a replayed delivery of
/// the same comment does nothing again.
pub fn done_path(repository: &str, pull: u64, comment: &Comment) -> String {
    format!("{}/pending/done/{}", ThreadPath::new(repository, pull), comment.api_ref().replace('/', "-"))
}

/// The trailers of a request commit.
pub fn trailers(command: &Command, comment: &Comment, role: Role, pull: &PullRequest) -> String {
    format!(
        "Acp-Command: {}\nAcp-Commenter: {}\nAcp-Role: {}\nAcp-Comment: {}\nAcp-Head: {}",
        command.verb(),
        comment.commenter.login,
        role.as_str(),
        comment.url,
        pull.head_sha
    )
}

/// `manifest` (YAML) with the stop request annotation, or `None` when it
/// already has it or does not parse.
pub fn stopped(manifest: &str) -> Option<String> {
    let mut object: Value = serde_saphyr::from_str(manifest).ok()?;
    let phase = acp_api::SessionPhase::Stopped.as_str();
    if object["metadata"]["annotations"][annotations::DESIRED_PHASE] == phase {
        return None;
    }
    if !object["metadata"]["annotations"].is_object() {
        object["metadata"]["annotations"] = json!({});
    }
    object["metadata"]["annotations"][annotations::DESIRED_PHASE] = json!(phase);
    serde_saphyr::to_string(&object).ok()
}

#[cfg(test)]
mod tests;
