//! What a comment delivery is worth, decided without I/O, in the order the
//! handler asks (cheapest first):
//! - [`claim`]: what the delivery claims, a hint only: a comment that
//!   claims no command costs nothing more (no GitHub call);
//! - [`verify`]: whether GitHub's record of the comment, read again by id,
//!   says what the signed delivery said (author, pull request, text, kind
//!   of account, and for a bot an App the binding allows);
//! - [`answer`]: what each command found gets, as data: nothing, a reply,
//!   or acting on it (waiting for approval, or not), by [`request::gate`].

use acp_api::pull_requests::{PullRequestBinding, Role};
use acp_github::CommentRecord;
use acp_github::events::CommentEvent;

use super::grammar::{self, Command, Found};
use super::request::{self, Comment, Commenter, Gate};

/// A comment as a delivery claims it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    /// `created` or `edited`.
    pub action: &'a str,
    /// The comment's id.
    pub id: u64,
    /// The pull request it is on.
    pub pull_number: u64,
    /// A review comment on the diff (else an issue comment).
    pub review: bool,
    /// Its author's login.
    pub author: &'a str,
    /// Written by a bot account.
    pub bot: bool,
    /// Its text.
    pub body: &'a str,
    /// Its text before an edit.
    pub before: &'a str,
}

/// What `event` claims, when it may be a command: a comment on a pull
/// request, created or edited by its own author, that claims at least one
/// command. `None` costs nothing more.
pub fn claim(event: &CommentEvent, review: bool) -> Option<Claim<'_>> {
    let claimed = &event.comment;
    // `None` for a comment on an issue, not a pull request.
    let (Some(pull_number), Some(id)) = (event.pull_number(review), claimed.id) else { return None };
    let author = claimed.user.login.as_str();
    // A comment names its author: one without is nobody's.
    if author.is_empty() {
        return None;
    }
    // An edit counts only as its author's own: the role that matters is
    // the editor's, and a collaborator editing someone else's comment
    // must not borrow their role or name.
    if event.action == "edited" && !event.sender.login.eq_ignore_ascii_case(author) {
        return None;
    }
    let claim = Claim {
        action: event.action.as_str(),
        id,
        pull_number,
        review,
        author,
        bot: claimed.user.kind == "Bot",
        body: claimed.body.as_str(),
        before: event.before(),
    };
    // What the delivery claims is only a hint: a comment that claims no
    // command costs nothing more.
    (!claim.commands(claim.body).is_empty()).then_some(claim)
}

impl Claim<'_> {
    /// The commands in `body`, as this delivery's action reads them: every
    /// one of a new comment, those an edit of an issue comment added.
    pub fn commands(&self, body: &str) -> Vec<Found> {
        // acp's own comments (the tracking comment quotes agent output)
        // are never commands.
        if body.contains("<!-- acp:thread ") || body.contains("<!-- acp:session ") {
            return Vec::new();
        }
        match self.action {
            "created" => grammar::parse(body),
            "edited" if !self.review => grammar::added(self.before, body),
            _ => Vec::new(),
        }
    }
}

/// Whether GitHub's record of a comment is the one a delivery claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It is: the comment as the handler acts on it, all of it GitHub's.
    Genuine(Comment),
    /// It is not (author, pull request, text, kind of account), or it is a
    /// bot the binding does not allow: ignored.
    Mismatch,
}

/// GitHub's comment, not the delivery's: its author, and its text
/// unchanged since the delivery was signed (someone with write access may
/// edit anyone's comment: a later edit is not the author's word).
pub fn verify(claim: &Claim<'_>, record: &CommentRecord, binding: &PullRequestBinding) -> Verdict {
    let allowed_bot = record.app_id.is_some_and(|a| binding.allowed_bot_app_ids.contains(&a));
    if !record.login.eq_ignore_ascii_case(claim.author)
        || record.pull != Some(claim.pull_number)
        || record.body != claim.body
        || record.bot != claim.bot
        || (claim.bot && !allowed_bot)
    {
        return Verdict::Mismatch;
    }
    Verdict::Genuine(Comment {
        id: claim.id,
        url: record.url.clone(),
        commenter: Commenter { login: record.login.clone(), bot: record.bot, app_id: record.app_id },
        review: claim.review,
        // An edit that adds a command asks when it is made: an old
        // comment edited now is not older than an approval before it.
        created_at: if claim.action == "edited" {
            record.updated_at.clone()
        } else {
            record.created_at.clone()
        },
        digest: request::digest(&record.body),
    })
}

/// What one command found in a comment gets, before any write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nothing, not even counted (a typo of someone who may not run commands).
    Unanswered,
    /// Nothing; counted as ignored.
    Ignored,
    /// This one line.
    Reply(String),
    /// Act on the command; a request waits for approval when `waits` says why.
    Act {
        /// The command.
        command: Command,
        /// Why a request must wait for a maintainer's approval.
        waits: Option<String>,
    },
}

/// What `found` in `comment` gets from its author with `role` on
/// `repository`: [`request::gate`]'s verdict, and for a line that is not a
/// valid command, a reply only to someone who may run commands.
pub fn answer(
    binding: &PullRequestBinding,
    repository: &str,
    comment: &Comment,
    role: Role,
    found: &Found,
) -> Answer {
    let command = match &found.command {
        Ok(command) => command,
        // Only people who may run commands hear about their typos.
        Err(error) if role >= Role::Triage && !comment.commenter.bot => {
            // The message quotes the comment: shown inertly.
            let message = acp_github::markdown::code_span(&error.message);
            return Answer::Reply(format!("@{}: {message}", comment.commenter.login));
        }
        Err(_) => return Answer::Unanswered,
    };
    match request::gate(binding, repository, comment, role, command) {
        Gate::Silent => Answer::Ignored,
        Gate::Refused(line) => Answer::Reply(line),
        Gate::Approval(why) => Answer::Act { command: command.clone(), waits: Some(why) },
        Gate::Allowed => Answer::Act { command: command.clone(), waits: None },
    }
}

#[cfg(test)]
mod tests;
