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
use acp_github::{CommentRecord, PullRequest};
use tracing::info;

use super::super::grammar::Command;
use super::super::request::{self, Comment, Waiting};
use super::writes::{files_in, latest, read};
use super::{Asked, Commands, Error, Outcome, say};

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
        let Some(waiting) = self.waiting(source, asked).await? else {
            // This comment's approval was done before (a replay).
            return Ok(Vec::new());
        };
        let covered = covered(waiting, comment);
        if let Some(line) = refusal(&pull, &covered, at, &comment.commenter.login) {
            say(github, pull_number, &line, outcome).await?;
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
            verdicts.insert(pending.name.clone(), dropped_because(now.as_ref(), &pending.asked));
        }
        let approved = self.pin(source, asked, &pull, &verdicts).await?;
        let Some(reply) = reply(&pull.head_sha, &comment.commenter.login, &covered, &approved, &verdicts)
        else {
            // Another approval got there first.
            return Ok(Vec::new());
        };
        say(github, pull_number, &reply, outcome).await?;
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
        let head = pull.head_sha.clone();
        let command = Command::Approve(Some(head.clone()));
        let message = format!(
            "acp: approve requests on {repository}#{} at {head}\n\n{}",
            pull.number,
            request::trailers(&command, comment, role, pull)
        );
        let pinning = Pinning {
            dir: ThreadPath::new(repository, pull.number).to_string(),
            done: request::done_path(repository, pull.number, comment),
            head,
            verdicts: verdicts.clone(),
        };
        let lock = self.lock(&writer.dir);
        let (written, approved) = tokio::task::spawn_blocking(move || {
            let _serial = lock.lock();
            let mut approved = Vec::new();
            let written = writer.edit(|repo, tree| {
                approved.clear();
                let files = pinning.edit(repo, tree, &mut approved)?;
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

/// An approval's commit, as the edit of the branch needs it.
struct Pinning {
    /// The thread's directory.
    dir: String,
    /// The approving comment's record.
    done: String,
    /// The commit approved.
    head: String,
    /// What the check of each covered request's comment found.
    verdicts: Verdicts,
}

impl Pinning {
    /// The files the approval writes on `tree` (the requests it runs are
    /// `approved`); `None` when the approving comment has a record (a
    /// replay) or a request does not parse.
    fn edit(
        &self,
        repo: &git2::Repository,
        tree: &git2::Tree<'_>,
        approved: &mut Vec<String>,
    ) -> Option<Vec<(String, Vec<u8>)>> {
        let Self { dir, done, head, verdicts } = self;
        if read(repo, tree, done).is_some() {
            return None;
        }
        let recorded = files_in(repo, tree, dir);
        let mut parent = latest(repo, tree, dir, &recorded);
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
                    let pinned = request::approved(&text, parent.as_deref(), head)?;
                    files.push((format!("{dir}/{name}.yaml"), pinned.into_bytes()));
                    approved.push(name.clone());
                    parent = Some(name);
                }
            }
        }
        let record = format!("approve at {head}: {}\n", approved.join(", "));
        files.push((done.clone(), record.into_bytes()));
        Some(files)
    }
}

/// The waiting requests an approving `comment` covers: those not dropped
/// before, asked before it (GitHub's times).
fn covered(waiting: Vec<Pending>, comment: &Comment) -> Vec<Pending> {
    waiting
        .into_iter()
        .filter(|p| p.asked.dropped.is_none() && p.asked.created_at < comment.created_at)
        .collect()
}

/// Why `/acp approve [at]` by `login` approves nothing, when it does not
/// go on to check the `covered` requests at `pull`'s head: nothing to
/// approve, no commit named (what would run is quoted), or not the head.
fn refusal(pull: &PullRequest, covered: &[Pending], at: Option<&str>, login: &str) -> Option<String> {
    let head = &pull.head_sha;
    if !pull.open || covered.is_empty() {
        return Some("Nothing to approve: no request of this open pull request asked before this comment waits for approval.".into());
    }
    let Some(at) = at else {
        return Some(format!(
            "@{login}: say which commit you reviewed: `/acp approve {head}` (the head now) runs these at that commit:\n\n{}",
            quotes(covered)
        ));
    };
    (!head.eq_ignore_ascii_case(at)).then(|| {
        format!(
            "@{login}: nothing approved: the pull request's head is `{head}`, not `{at}`. Review the commits since and approve `{head}`."
        )
    })
}

/// Why a waiting request is dropped, given its comment as GitHub holds it
/// `now`: deleted, or edited since it was asked; `None` when unchanged.
fn dropped_because(now: Option<&CommentRecord>, asked: &Waiting) -> Option<&'static str> {
    match now {
        None => Some("its comment was deleted"),
        Some(c) if request::digest(&c.body) != asked.digest => {
            Some("its comment was edited after it was asked")
        }
        Some(_) => None,
    }
}

/// The approval's reply: what each approved request runs, quoted, and why
/// the others are dropped; `None` when it approved and dropped nothing
/// (another approval got there first).
fn reply(
    head: &str,
    login: &str,
    covered: &[Pending],
    approved: &[String],
    verdicts: &Verdicts,
) -> Option<String> {
    let mut reply = format!("Approved at `{head}` by @{login}:\n");
    for pending in covered.iter().filter(|p| approved.contains(&p.name)) {
        reply.push_str(&format!("\n`{}` runs:\n\n{}\n", pending.name, quote(&pending.asked.prompt)));
    }
    for (name, why) in verdicts.iter().filter_map(|(n, w)| w.map(|w| (n, w))) {
        reply.push_str(&format!("\n`{name}` is dropped, not run: {why}. Ask again.\n"));
    }
    (!approved.is_empty() || verdicts.values().any(Option::is_some)).then_some(reply)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(name: &str, created_at: &str, dropped: Option<&str>) -> Pending {
        let asked = Waiting {
            comment: format!("issues/{name}"),
            created_at: created_at.into(),
            digest: request::digest(&format!("/acp run -- {name}")),
            dropped: dropped.map(str::to_owned),
            prompt: format!("do {name}"),
        };
        Pending { name: name.into(), asked }
    }

    fn pull(open: bool) -> PullRequest {
        PullRequest {
            number: 7,
            open,
            head_sha: "a".repeat(40),
            head_ref: "fix".into(),
            head_repository: "acme/webapp".into(),
            head_clone_url: String::new(),
            base_repository: "acme/webapp".into(),
            base_clone_url: String::new(),
            default_branch: None,
            fork: false,
        }
    }

    fn record(body: &str) -> CommentRecord {
        CommentRecord {
            id: 1,
            pull: Some(7),
            login: "bob".into(),
            bot: false,
            app_id: None,
            body: body.into(),
            url: String::new(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn an_approval_covers_what_was_asked_before_it_and_not_dropped() {
        let waiting = vec![
            pending("early", "2026-12-07T09:00:00Z", None),
            pending("gone", "2026-12-07T09:30:00Z", Some("its comment was deleted")),
            pending("late", "2026-12-07T11:00:00Z", None),
        ];
        let approving = Comment { created_at: "2026-12-07T10:00:00Z".into(), ..Comment::default() };
        let names: Vec<String> = covered(waiting, &approving).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["early"]);
    }

    #[test]
    fn an_approval_names_the_head_it_reviewed() {
        let head = "a".repeat(40);
        let covered = [pending("r1", "t", None)];
        let nothing = refusal(&pull(false), &covered, Some(&head), "carol").expect("closed");
        assert!(nothing.starts_with("Nothing to approve"), "{nothing}");
        assert_eq!(refusal(&pull(true), &[], Some(&head), "carol"), Some(nothing));
        let ask = refusal(&pull(true), &covered, None, "carol").expect("which commit");
        assert!(
            ask.starts_with(&format!("@carol: say which commit you reviewed: `/acp approve {head}`")),
            "{ask}"
        );
        assert!(ask.contains("`r1`:\n\n") && ask.contains("do r1"), "quotes what would run: {ask}");
        let stale = refusal(&pull(true), &covered, Some("b"), "carol").expect("not the head");
        assert!(
            stale.starts_with(&format!(
                "@carol: nothing approved: the pull request's head is `{head}`, not `b`"
            ))
        );
        assert_eq!(
            refusal(&pull(true), &covered, Some(&head.to_uppercase()), "carol"),
            None,
            "the whole head"
        );
    }

    #[test]
    fn a_request_whose_comment_changed_is_dropped_and_the_reply_says_so() {
        let asked = pending("r1", "t", None).asked;
        assert_eq!(dropped_because(None, &asked), Some("its comment was deleted"));
        let edited = record("/acp run -- something else");
        assert_eq!(dropped_because(Some(&edited), &asked), Some("its comment was edited after it was asked"));
        assert_eq!(dropped_because(Some(&record("/acp run -- r1")), &asked), None);
        let covered = [pending("r1", "t", None), pending("r2", "t", None)];
        let verdicts =
            Verdicts::from([("r1".to_owned(), None), ("r2".to_owned(), Some("its comment was deleted"))]);
        let reply = reply("abc", "carol", &covered, &["r1".to_owned()], &verdicts).expect("a reply");
        assert!(reply.starts_with("Approved at `abc` by @carol:\n\n`r1` runs:\n\n"), "{reply}");
        assert!(
            reply.ends_with("\n`r2` is dropped, not run: its comment was deleted. Ask again.\n"),
            "{reply}"
        );
        let none = Verdicts::from([("r1".to_owned(), None)]);
        assert_eq!(
            super::reply("abc", "carol", &covered, &[], &none),
            None,
            "another approval got there first"
        );
    }
}
