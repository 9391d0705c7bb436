//! What reviewers said since a thread's last request: the review comments
//! on the pull request's diff, frozen into a follow-up's manifest so that
//! the agent is told them. Only comments of people who may give a
//! follow-up themselves are kept (the role `followUp` needs; write by
//! default): a stranger's text in the agent's prompt would be a way to
//! instruct it, and a read user's would skip the approval their own
//! request needs.

use std::collections::HashMap;

use acp_api::SessionSource;
use acp_api::pull_requests::{PullRequestBinding, Role};
use acp_github::GitHub;

use super::super::request::Comment;
use super::{Commands, Error};

/// Most review comments a request carries (the newest are kept).
const MAX_REVIEWS: usize = 20;
/// Longest review comment kept, in bytes.
const MAX_REVIEW_BYTES: usize = 500;

impl Commands {
    /// The review comments on `pull` since the thread's latest request, as
    /// lines, oldest first; none for a thread's first request.
    pub(super) async fn reviews(
        &self,
        github: &GitHub,
        source: &SessionSource,
        binding: &PullRequestBinding,
        repository: &str,
        pull: u64,
        asking: &Comment,
    ) -> Result<Vec<String>, Error> {
        let thread = self.thread(source, repository, pull).await?;
        let Some(since) = thread.iter().filter_map(|s| s.metadata.creation_timestamp.clone()).max() else {
            return Ok(Vec::new());
        };
        let comments = github.review_comments(pull, &since.0.to_string()).await?;
        let needed = binding.roles.needed("follow-up").max(Role::Read);
        let mut roles: HashMap<String, Role> = HashMap::new();
        let mut lines = Vec::new();
        // Who GitHub itself says is no collaborator is skipped before any
        // lookup (this only ever drops a comment): strangers' review
        // comments cost nothing.
        let outsider = |c: &&acp_github::ReviewComment| {
            matches!(
                c.association.as_str(),
                "NONE" | "FIRST_TIMER" | "FIRST_TIME_CONTRIBUTOR" | "CONTRIBUTOR" | "MANNEQUIN"
            )
        };
        for review in comments
            .iter()
            .rev()
            .filter(|c| c.id != asking.id && !c.bot && !c.body.contains("<!-- acp:"))
            .filter(|c| !outsider(c))
        {
            if lines.len() == MAX_REVIEWS {
                break;
            }
            let role = match roles.get(&review.login) {
                Some(role) => *role,
                None => {
                    let role = self.role(source, github, repository, &review.login).await?;
                    roles.insert(review.login.clone(), role);
                    role
                }
            };
            if role < needed {
                continue;
            }
            let place = match review.line {
                Some(line) => format!("{} line {line}", review.path),
                None => review.path.clone(),
            };
            let text = review.body.split_whitespace().collect::<Vec<_>>().join(" ");
            lines.push(format!("- @{} on {place}: {}", review.login, cut(&text, MAX_REVIEW_BYTES)));
        }
        lines.reverse();
        Ok(lines)
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
