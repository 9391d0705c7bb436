//! `/acp approve <commit>`: a maintainer lets the requests that wait for
//! approval (from a fork, or below the role a command needs) run, pinned to
//! the commit they reviewed. What an approval covers is exactly what its
//! approver could have seen:
//! - the commit they name, whole (a prefix could be matched by a commit made
//!   to collide with it), which must be the pull request's head (a push
//!   since is refused, not silently approved); a bare `/acp approve` only
//!   quotes what would run and asks for the commit;
//! - the requests asked before the approving comment (GitHub's times), never
//!   one posted after it;
//! - each request's comment as it was recorded: one edited or deleted since
//!   is dropped, not run (GitHub shows the new text; the old would run);
//! - once per approving comment: the approval leaves a record, so a replayed
//!   delivery approves nothing more.
//!
//! The reply quotes, inertly, the prompt each approved request will run.

use std::collections::BTreeMap;

use acp_api::SessionSource;
use acp_api::pull_requests::ThreadPath;
use acp_git::push::Written;
use acp_github::markdown::code_block;
use tracing::info;

use super::super::grammar::Command;
use super::super::request::{self, Waiting};
use super::writes::{files_in, latest, read};
use super::{Asked, Commands, Error, Outcome};

/// Longest quote of a request's prompt in the approval's reply.
const MAX_QUOTE: usize = 1500;

/// A waiting request, as read from the requests branch.
struct Pending {
    name: String,
    asked: Waiting,
}

/// What the check of a request's comment found: `None` when it still says
/// what was recorded, else why it is dropped.
type Verdicts = BTreeMap<String, Option<&'static str>>;

impl Commands {
    /// Acts on `/acp approve [at]`; returns the sessions approved.
    pub(super) async fn approve_command(
        &self,
        source: &SessionSource,
        asked: &Asked<'_>,
        at: Option<&str>,
        outcome: &mut Outcome,
    ) -> Result<Vec<String>, Error> {
        let Asked { github, pull_number, comment, .. } = *asked;
        let pull = github.pull(pull_number).await?;
        let head = pull.head_sha.clone();
        let mut say = async |line: String| -> Result<(), Error> {
            github.create_comment(pull_number, &line).await?;
            outcome.replied += 1;
            Ok(())
        };
        let Some(waiting) = self.waiting(source, asked).await? else {
            // This comment's approval was done before (a replay).
            return Ok(Vec::new());
        };
        let covered: Vec<Pending> = waiting
            .into_iter()
            .filter(|p| p.asked.dropped.is_none() && p.asked.created_at < comment.created_at)
            .collect();
        if !pull.open || covered.is_empty() {
            say("Nothing to approve: no request of this open pull request asked before this comment waits for approval.".into()).await?;
            return Ok(Vec::new());
        }
        let Some(at) = at else {
            say(format!(
                "@{}: say which commit you reviewed: `/acp approve {head}` (the head now) runs these at that commit:\n\n{}",
                comment.commenter.login,
                quotes(&covered)
            ))
            .await?;
            return Ok(Vec::new());
        };
        if !pull.head_sha.eq_ignore_ascii_case(at) {
            say(format!(
                "@{}: nothing approved: the pull request's head is `{head}`, not `{at}`. Review the commits since and approve `{head}`.",
                comment.commenter.login
            ))
            .await?;
            return Ok(Vec::new());
        }
        // Each request's comment, as GitHub holds it now.
        let mut verdicts = Verdicts::new();
        for pending in &covered {
            let (kind, id) = pending.asked.comment.split_once('/').unwrap_or_default();
            let now = match id.parse() {
                Ok(id) => github.comment(id, kind == "pulls").await?,
                Err(_) => None,
            };
            let verdict = match now {
                None => Some("its comment was deleted"),
                Some(c) if request::digest(&c.body) != pending.asked.digest => {
                    Some("its comment was edited after it was asked")
                }
                Some(_) => None,
            };
            verdicts.insert(pending.name.clone(), verdict);
        }
        let approved = self.pin(source, asked, &pull, &verdicts).await?;
        let mut reply = format!("Approved at `{head}` by @{}:\n", comment.commenter.login);
        for pending in covered.iter().filter(|p| approved.contains(&p.name)) {
            reply.push_str(&format!("\n`{}` runs:\n\n{}\n", pending.name, quote(&pending.asked.prompt)));
        }
        for (name, why) in verdicts.iter().filter_map(|(n, w)| w.map(|w| (n, w))) {
            reply.push_str(&format!("\n`{name}` is dropped, not run: {why}. Ask again.\n"));
        }
        if approved.is_empty() && verdicts.values().all(Option::is_none) {
            // Another approval got there first.
            return Ok(Vec::new());
        }
        say(reply).await?;
        Ok(approved)
    }

    /// The thread's waiting requests, oldest comment first; `None` when
    /// `asked`'s comment already has a record (a replay).
    async fn waiting(
        &self,
        source: &SessionSource,
        asked: &Asked<'_>,
    ) -> Result<Option<Vec<Pending>>, Error> {
        let writer = self.writer(source, asked.binding).await?;
        let dir = ThreadPath::new(asked.repository, asked.pull_number).to_string();
        let done = request::done_path(asked.repository, asked.pull_number, asked.comment);
        let lock = self.lock(&writer.dir);
        let found = tokio::task::spawn_blocking(move || {
            let _serial = lock.lock();
            let mut found = None;
            // A read: the change writes nothing.
            let read_only = writer.edit(|repo, tree| {
                if read(repo, tree, &done).is_some() {
                    return None;
                }
                let recorded = files_in(repo, tree, &dir);
                let mut pending: Vec<Pending> = files_in(repo, tree, &format!("{dir}/pending"))
                    .into_iter()
                    .filter_map(|file| file.strip_suffix(".yaml").map(str::to_owned))
                    .filter(|name| !recorded.contains(&format!("{name}.yaml")))
                    .filter_map(|name| {
                        let text = read(repo, tree, &format!("{dir}/pending/{name}.yaml"))?;
                        Some(Pending { asked: request::waiting_of(&text)?, name })
                    })
                    .collect();
                pending.sort_by(|a, b| a.asked.created_at.cmp(&b.asked.created_at));
                found = Some(pending);
                None
            });
            read_only.map(|_| found)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        Ok(found?)
    }

    /// Commits the approval: the requests whose comment is unchanged,
    /// pinned to the head and linked into the thread in comment order; the
    /// others marked dropped; the approving comment's record. Returns the
    /// sessions approved.
    async fn pin(
        &self,
        source: &SessionSource,
        asked: &Asked<'_>,
        pull: &acp_github::PullRequest,
        verdicts: &Verdicts,
    ) -> Result<Vec<String>, Error> {
        let Asked { binding, repository, comment, role, .. } = *asked;
        let writer = self.writer(source, binding).await?;
        let dir = ThreadPath::new(repository, pull.number).to_string();
        let done = request::done_path(repository, pull.number, comment);
        let head = pull.head_sha.clone();
        let command = Command::Approve(Some(head.clone()));
        let message = format!(
            "acp: approve requests on {repository}#{} at {head}\n\n{}",
            pull.number,
            request::trailers(&command, comment, role, pull)
        );
        let verdicts = verdicts.clone();
        let lock = self.lock(&writer.dir);
        let (written, approved) = tokio::task::spawn_blocking(move || {
            let _serial = lock.lock();
            let mut approved = Vec::new();
            let written = writer.edit(|repo, tree| {
                approved.clear();
                if read(repo, tree, &done).is_some() {
                    return None;
                }
                let recorded = files_in(repo, tree, &dir);
                let mut parent = latest(repo, tree, &dir, &recorded);
                let mut files = Vec::new();
                let mut waiting: Vec<(String, String, Waiting)> = verdicts
                    .keys()
                    .filter(|name| !recorded.contains(&format!("{name}.yaml")))
                    .filter_map(|name| {
                        let text = read(repo, tree, &format!("{dir}/pending/{name}.yaml"))?;
                        let asked = request::waiting_of(&text).filter(|a| a.dropped.is_none())?;
                        Some((name.clone(), text, asked))
                    })
                    .collect();
                waiting.sort_by(|a, b| a.2.created_at.cmp(&b.2.created_at));
                for (name, text, _) in waiting {
                    let path = format!("{dir}/pending/{name}.yaml");
                    match verdicts.get(&name).copied().flatten() {
                        Some(why) => files.push((path, request::dropped(&text, why)?.into_bytes())),
                        None => {
                            let pinned = request::approved(&text, parent.as_deref(), &head)?;
                            files.push((format!("{dir}/{name}.yaml"), pinned.into_bytes()));
                            approved.push(name.clone());
                            parent = Some(name);
                        }
                    }
                }
                let record = format!("approve at {head}: {}\n", approved.join(", "));
                files.push((done.clone(), record.into_bytes()));
                Some((files, format!("{message}\nAcp-Approved: {}", approved.join(", "))))
            });
            (written, approved)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        match written? {
            Written::Committed { commit, .. } => {
                info!(sessions = ?approved, %commit, "requests approved");
                self.sync(source).await?;
                Ok(approved)
            }
            Written::Unchanged => Ok(Vec::new()),
        }
    }
}

/// A request's prompt, quoted so that nothing in it renders.
fn quote(prompt: &str) -> String {
    let mut end = prompt.len().min(MAX_QUOTE);
    while !prompt.is_char_boundary(end) {
        end -= 1;
    }
    let cut = if end < prompt.len() { "\n…" } else { "" };
    code_block(&format!("{}{cut}", &prompt[..end]), "text")
}

/// Every waiting request's prompt, quoted.
fn quotes(pending: &[Pending]) -> String {
    pending
        .iter()
        .map(|p| format!("`{}`:\n\n{}\n", p.name, quote(&p.asked.prompt)))
        .collect::<Vec<_>>()
        .join("\n")
}
