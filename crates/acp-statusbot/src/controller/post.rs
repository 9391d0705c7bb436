//! A plan's GitHub effects, with the source's account: the commit status
//! (unless GitHub's latest for its context already is it), then the pull
//! request comment: its pull request found (and recorded), its body
//! rendered, posted when [`comment_now`] says so, by editing the comment the
//! bot wrote (by the recorded id if the bot wrote it, else found by marker
//! and author) or creating it. Each effect is recorded in the next state as
//! soon as it happened.

use std::time::{SystemTime, UNIX_EPOCH};

use acp_api::status_bot::BotState;
use acp_github::{Account, GitHub};
use kube::runtime::controller::Action;

use super::{Config, Error};
use crate::plan::{CommentStep, Plan, Post, Pull, Revision, Status, comment_now, digest};

/// Posts `github`'s effects of `plan` (`thread`: the tracking comment's
/// body, for a session asked for on a pull request), recording each in
/// `next`; returns when to look again (debounce).
pub(super) async fn post(
    account: &Account,
    config: &Config,
    plan: &Plan<'_>,
    github: &Post,
    thread: Option<String>,
    next: &mut BotState,
) -> Result<Action, Error> {
    let gh = &account.github;
    if let Some(status) = &github.status {
        set_status(gh, status).await?;
        next.status = Some(status.state.to_owned());
    }
    let Some(comment) = &github.comment else { return Ok(Action::await_change()) };
    let pull = match &comment.pull {
        Pull::Known(pull) => *pull,
        Pull::OfCommit(commit) => gh.pull_for_commit(commit).await?.unwrap_or(0),
    };
    next.pull = Some(pull);
    if pull == 0 {
        return Ok(Action::await_change());
    }
    let body = match thread {
        Some(body) => body,
        None => config.renderer.comment(&plan.report)?,
    };
    let digest = digest(&body);
    match comment_now(&plan.state, &digest, plan.report.terminal, epoch(), config.debounce) {
        CommentStep::Unchanged => return Ok(Action::await_change()),
        CommentStep::Later(after) => return Ok(Action::requeue(after)),
        CommentStep::Post => {}
    }
    let id = keep_comment(gh, &account.login, pull, &comment.marker, &body, plan.state.comment).await?;
    next.comment = Some(id);
    next.posted = Some(digest);
    next.posted_at = Some(epoch());
    Ok(Action::await_change())
}

/// Sets `status`, unless GitHub already has it.
async fn set_status(gh: &GitHub, status: &Status) -> Result<(), Error> {
    let revision = match &status.on {
        Revision::Commit(commit) => commit.clone(),
        Revision::Head(pull) => gh.pull(*pull).await?.head_sha,
    };
    // A crash between posting and saving leaves the state behind GitHub:
    // GitHub's latest status for the context says whether this one is
    // already there.
    if gh.latest_status(&revision, &status.context).await?.as_deref() != Some(status.state) {
        let url = status.target_url.as_deref();
        gh.set_status(&revision, &status.context, status.state, &status.description, url).await?;
        acp_kube::failpoint::hit("statusbot.status-set");
    }
    Ok(())
}

/// Edits the bot's comment marked `marker` on `pull` to `body`, or creates
/// it; returns its id.
async fn keep_comment(
    gh: &GitHub,
    author: &str,
    pull: u64,
    marker: &str,
    body: &str,
    recorded: Option<u64>,
) -> Result<u64, Error> {
    // The recorded id is trusted only for a comment the bot wrote; otherwise
    // (or after a restart before the id was recorded) find it again by
    // marker and author.
    let recorded = match recorded {
        Some(id) if gh.comment_author(id).await?.is_some_and(|a| a.eq_ignore_ascii_case(author)) => Some(id),
        _ => None,
    };
    let existing = match recorded {
        Some(id) => Some(id),
        None => gh.find_comment(pull, marker, author).await?,
    };
    match existing {
        Some(id) => {
            gh.update_comment(id, body).await?;
            Ok(id)
        }
        None => {
            let id = gh.create_comment(pull, body).await?;
            acp_kube::failpoint::hit("statusbot.comment-created");
            Ok(id)
        }
    }
}

/// Seconds since the epoch.
fn epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}
