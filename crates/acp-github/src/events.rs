//! The webhook deliveries acp acts on, typed as GitHub documents them
//! (<https://docs.github.com/en/webhooks/webhook-events-and-payloads>):
//! pushes, pull requests (closed, synchronize), issue comments and pull
//! request review comments. Only the fields acp reads are kept; a field
//! GitHub leaves out reads as empty, as the untyped reading did, so that a
//! delivery is never refused for a field acp does not need.
//!
//! What a delivery says is a claim: git-sync re-reads from GitHub
//! whatever it acts on (the comment by id, the pull request's head).

use serde::Deserialize;

/// A delivery, by its `X-GitHub-Event` header.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    /// `ping`: sent when a webhook is created.
    Ping,
    /// `push`.
    Push(Push),
    /// `pull_request`.
    PullRequest(PullRequestEvent),
    /// `issue_comment`: on an issue or a pull request's conversation.
    IssueComment(CommentEvent),
    /// `pull_request_review_comment`: on a pull request's diff.
    ReviewComment(CommentEvent),
    /// Any other event: its name, and the repository it names.
    Other {
        /// The event's name.
        name: String,
        /// Its repository (empty when it names none).
        repository: Repository,
    },
}

/// Any delivery's repository.
#[derive(Deserialize)]
struct Anything {
    #[serde(default)]
    repository: Repository,
}

impl Delivery {
    /// Reads the body of delivery `event`. A repository or login that
    /// GitHub could not have written (a path, an escape, a space) is
    /// refused: the names are used in API paths and matched against
    /// per-repository secrets.
    pub fn parse(event: &str, body: &[u8]) -> Result<Self, serde_json::Error> {
        let delivery = Self::read(event, body)?;
        delivery.check().map_err(<serde_json::Error as serde::de::Error>::custom)?;
        Ok(delivery)
    }

    fn read(event: &str, body: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(match event {
            "ping" => Delivery::Ping,
            "push" => Delivery::Push(serde_json::from_slice(body)?),
            "pull_request" => Delivery::PullRequest(serde_json::from_slice(body)?),
            "issue_comment" => Delivery::IssueComment(serde_json::from_slice(body)?),
            "pull_request_review_comment" => Delivery::ReviewComment(serde_json::from_slice(body)?),
            other => Delivery::Other {
                name: other.to_owned(),
                repository: serde_json::from_slice::<Anything>(body)?.repository,
            },
        })
    }

    /// The names it carries are names GitHub could have written.
    fn check(&self) -> Result<(), String> {
        let repository = self.repository();
        let named = matches!(self, Delivery::Ping | Delivery::Other { .. });
        if !(acp_api::pull_requests::valid_repository(repository) || named && repository.is_empty()) {
            return Err(format!("repository.full_name {repository:?} is not a GitHub repository name"));
        }
        if let Delivery::IssueComment(e) | Delivery::ReviewComment(e) = self {
            for login in [&e.comment.user.login, &e.sender.login] {
                if !login.is_empty() && !acp_api::pull_requests::valid_login(login) {
                    return Err(format!("login {login:?} is not a GitHub login"));
                }
            }
        }
        Ok(())
    }

    /// The event's name, as its header gives it.
    pub fn name(&self) -> &str {
        match self {
            Delivery::Ping => "ping",
            Delivery::Push(_) => "push",
            Delivery::PullRequest(_) => "pull_request",
            Delivery::IssueComment(_) => "issue_comment",
            Delivery::ReviewComment(_) => "pull_request_review_comment",
            Delivery::Other { name, .. } => name,
        }
    }

    /// The repository it is about (`owner/name`); empty when it names none.
    pub fn repository(&self) -> &str {
        match self {
            Delivery::Push(e) => &e.repository.full_name,
            Delivery::PullRequest(e) => &e.repository.full_name,
            Delivery::IssueComment(e) | Delivery::ReviewComment(e) => &e.repository.full_name,
            Delivery::Other { repository, .. } => &repository.full_name,
            Delivery::Ping => "",
        }
    }
}

/// The repository of a delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Repository {
    /// `owner/name`.
    pub full_name: String,
    /// `https://github.com/owner/name.git`.
    pub clone_url: Option<String>,
    /// `git@github.com:owner/name.git`.
    pub ssh_url: Option<String>,
    /// `https://github.com/owner/name`.
    pub html_url: Option<String>,
    /// `git://github.com/owner/name.git`.
    pub git_url: Option<String>,
}

impl Repository {
    /// Every URL the delivery gives for it.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        [&self.clone_url, &self.ssh_url, &self.html_url, &self.git_url]
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

/// A `push` delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Push {
    /// The full ref pushed (`refs/heads/main`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit it points at now.
    pub after: String,
    /// Where.
    pub repository: Repository,
}

/// A pull request as a delivery names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PullRef {
    /// Its number.
    pub number: u64,
}

/// A `pull_request` delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PullRequestEvent {
    /// `opened`, `synchronize`, `closed`, …
    pub action: String,
    /// The pull request.
    pub pull_request: PullRef,
    /// Where.
    pub repository: Repository,
}

/// Who did something.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct User {
    /// Login.
    pub login: String,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A comment as a delivery claims it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CommentPayload {
    /// Its id (issue and review comments are numbered apart).
    pub id: Option<u64>,
    /// Its text.
    pub body: String,
    /// Its author.
    pub user: User,
}

/// The issue an `issue_comment` is on; `pull_request` is set when the
/// issue is a pull request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Issue {
    /// Its number.
    pub number: Option<u64>,
    /// Present (an object of links) on pull requests.
    pub pull_request: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What an edit changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Changes {
    /// The text before the edit.
    pub body: Option<Previous>,
}

/// A value before an edit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Previous {
    /// The old value.
    pub from: String,
}

/// An `issue_comment` or `pull_request_review_comment` delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CommentEvent {
    /// `created`, `edited` or `deleted`.
    pub action: String,
    /// The comment.
    pub comment: CommentPayload,
    /// The issue (issue comments).
    pub issue: Option<Issue>,
    /// The pull request (review comments).
    pub pull_request: Option<PullRef>,
    /// Who caused the delivery (an edit's editor).
    pub sender: User,
    /// What an edit changed.
    pub changes: Option<Changes>,
    /// Where.
    pub repository: Repository,
}

impl CommentEvent {
    /// The pull request it is on: a review comment's, or an issue
    /// comment's when the issue is a pull request; `None` for a comment on
    /// a plain issue.
    pub fn pull_number(&self, review: bool) -> Option<u64> {
        let number = if review {
            self.pull_request.as_ref().map(|p| p.number)
        } else {
            self.issue.as_ref().filter(|i| i.pull_request.is_some()).and_then(|i| i.number)
        };
        // Pull requests are numbered from 1: 0 is a number left out.
        number.filter(|n| *n > 0)
    }

    /// The text before an edit (empty when none is given).
    pub fn before(&self) -> &str {
        self.changes.as_ref().and_then(|c| c.body.as_ref()).map_or("", |b| b.from.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(event: &str, body: serde_json::Value) -> Delivery {
        Delivery::parse(event, body.to_string().as_bytes()).expect("parses")
    }

    #[test]
    fn comments_on_pull_requests_and_on_issues_are_told_apart() {
        let on_pull = json!({
            "action": "edited", "repository": {"full_name": "acme/webapp"},
            "issue": {"number": 7, "pull_request": {"url": "https://api.github.com/repos/acme/webapp/pulls/7"}},
            "comment": {"id": 11, "body": "/acp run", "user": {"login": "alice", "type": "User"}},
            "sender": {"login": "alice"}, "changes": {"body": {"from": "hello"}}
        });
        let Delivery::IssueComment(event) = parse("issue_comment", on_pull.clone()) else {
            panic!("a comment")
        };
        assert_eq!((event.pull_number(false), event.before()), (Some(7), "hello"));
        assert_eq!((event.comment.id, event.comment.user.kind.as_str()), (Some(11), "User"));
        let mut on_issue = on_pull;
        on_issue["issue"] = json!({"number": 8});
        let Delivery::IssueComment(event) = parse("issue_comment", on_issue) else { panic!("a comment") };
        assert_eq!(event.pull_number(false), None, "a plain issue");
        let review = json!({"action": "created", "pull_request": {"number": 9}, "comment": {"id": 12, "body": "@acp more"}, "repository": {"full_name": "acme/webapp"}});
        let Delivery::ReviewComment(event) = parse("pull_request_review_comment", review) else {
            panic!("a review comment")
        };
        assert_eq!((event.pull_number(true), event.before()), (Some(9), ""));
        let unnumbered = json!({"action": "created", "pull_request": {}, "comment": {"id": 12}, "repository": {"full_name": "acme/webapp"}});
        let Delivery::ReviewComment(event) = parse("pull_request_review_comment", unnumbered) else {
            panic!("a review comment")
        };
        assert_eq!(event.pull_number(true), None, "a number left out is no pull request");
    }

    #[test]
    fn pushes_pull_requests_and_the_rest() {
        let push = json!({"ref": "refs/heads/main", "after": "abc", "repository": {"full_name": "acme/sessions", "ssh_url": "git@github.com:acme/sessions.git"}});
        let Delivery::Push(push) = parse("push", push) else { panic!("a push") };
        assert_eq!((push.git_ref.as_str(), push.after.as_str()), ("refs/heads/main", "abc"));
        assert_eq!(push.repository.urls().collect::<Vec<_>>(), ["git@github.com:acme/sessions.git"]);
        let closed = parse(
            "pull_request",
            json!({"action": "closed", "pull_request": {"number": 3}, "repository": {"full_name": "a/b"}}),
        );
        assert_eq!(closed.repository(), "a/b");
        assert!(
            matches!(closed, Delivery::PullRequest(PullRequestEvent { ref action, pull_request: PullRef { number: 3 }, .. }) if action == "closed")
        );
        assert_eq!(parse("ping", json!({"zen": "Keep it simple."})), Delivery::Ping);
        assert_eq!(parse("star", json!({})).name(), "star");
        assert_eq!(
            parse("issues", json!({"repository": {"full_name": "acme/secret"}})).repository(),
            "acme/secret"
        );
        assert!(Delivery::parse("star", b"not json").is_err(), "a body that is not JSON is refused");
        assert!(Delivery::parse("push", br#"{"ref": 7}"#).is_err(), "a field of the wrong type is refused");
    }

    #[test]
    fn names_github_could_not_have_written_are_refused() {
        let comment = |repository: &str, login: &str| {
            json!({"action": "created", "repository": {"full_name": repository},
                   "issue": {"number": 7, "pull_request": {}},
                   "comment": {"id": 1, "body": "/acp run", "user": {"login": login}}, "sender": {"login": login}})
        };
        for (repository, login) in [
            ("acme/secret%72epo", "alice"),
            ("acme/x/../secretrepo", "alice"),
            ("acme/..", "alice"),
            ("", "alice"),
            ("acme/webapp", "alice/../admin"),
            ("acme/webapp", "al ice"),
        ] {
            let body = comment(repository, login).to_string();
            assert!(Delivery::parse("issue_comment", body.as_bytes()).is_err(), "{repository} {login}");
        }
        assert!(Delivery::parse("issues", br#"{"repository": {"full_name": "a/b/c"}}"#).is_err());
        assert!(
            Delivery::parse("push", br#"{"ref": "refs/heads/main"}"#).is_err(),
            "a push names its repository"
        );
        let fine = comment("acme/.github", "acp-app[bot]").to_string();
        assert!(Delivery::parse("issue_comment", fine.as_bytes()).is_ok());
    }
}
