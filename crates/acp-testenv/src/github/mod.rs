//! A fake GitHub REST API (GitHub is unreachable from here), stateful and
//! request-recording, for the parts acp uses: `GET /user`, a commit's pull
//! requests and message, issue comments (list with pagination, create, read,
//! edit), commit statuses (create, list newest first), pull requests, the
//! collaborator permission endpoint and comment reactions.
//!
//! It keeps GitHub's rules that matter to acp's promises: a token acts as
//! its login, a comment belongs to the login that wrote it, and only that
//! login may edit it (403 otherwise), so a test catches a bot that would
//! overwrite a person's comment. Unknown tokens get 401. Every request is
//! recorded for assertions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// A comment on an issue or pull request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// Comment id.
    pub id: u64,
    /// `owner/name`.
    pub repo: String,
    /// Issue or pull request number.
    pub pull: u64,
    /// Login of its author.
    pub user: String,
    /// Body.
    pub body: String,
    /// How many times it was edited.
    pub edits: u32,
}

/// A commit status as posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// `owner/name`.
    pub repo: String,
    /// Commit.
    pub sha: String,
    /// `pending`, `success`, `failure` or `error`.
    pub state: String,
    /// Status context.
    pub context: String,
    /// Description.
    pub description: String,
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// JSON body (`Null` when none).
    pub body: Value,
}

#[derive(Default)]
struct World {
    logins: BTreeMap<String, String>,
    pulls: BTreeMap<(String, String), Vec<u64>>,
    messages: BTreeMap<(String, String), String>,
    comments: Vec<Comment>,
    statuses: Vec<Status>,
    requests: Vec<Request>,
    next_id: u64,
    roles: BTreeMap<(String, String), String>,
    pull_requests: BTreeMap<(String, u64), Value>,
    reactions: Vec<Reaction>,
    /// Review comments: (repository, pull request, the comment as GitHub shows it).
    review_comments: Vec<(String, u64, Value)>,
}

/// A reaction added to a comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaction {
    /// `owner/name`.
    pub repo: String,
    /// The comment.
    pub comment: u64,
    /// `issues` or `pulls` (a review comment).
    pub kind: String,
    /// `eyes`, `+1`…
    pub content: String,
    /// Who reacted.
    pub user: String,
}

type Shared = Arc<Mutex<World>>;

fn lock(world: &Shared) -> MutexGuard<'_, World> {
    // A panicking handler must not hide the state from the test's assertions.
    world.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fake, serving until dropped.
pub struct FakeGitHub {
    addr: SocketAddr,
    world: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
}

fn comment_json(c: &Comment) -> Value {
    json!({"id": c.id, "body": c.body, "user": {"login": c.user, "type": "User"},
           "html_url": format!("https://github.example/{}/pull/{}#issuecomment-{}", c.repo, c.pull, c.id)})
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "Bad credentials")
}

/// The login of the request's token, if it is known.
fn login(world: &World, headers: &HeaderMap) -> Option<String> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")))
        .unwrap_or_default();
    world.logins.get(token).cloned()
}

impl FakeGitHub {
    /// Serves on loopback.
    pub async fn start() -> Self {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// Serves on `ip` (an address pods reach, for runners).
    pub async fn start_on(ip: std::net::IpAddr) -> Self {
        let world: Shared = Arc::default();
        lock(&world).next_id = 1000;
        let app = Router::new()
            .route("/user", get(user))
            .route("/repos/{owner}/{repo}/commits/{sha}/pulls", get(commit_pulls))
            .route("/repos/{owner}/{repo}/commits/{sha}", get(commit))
            .route("/repos/{owner}/{repo}/issues/comments/{id}", get(read_comment).patch(edit_comment))
            .route("/repos/{owner}/{repo}/issues/{number}/comments", get(list_comments).post(create_comment))
            .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
            .route("/repos/{owner}/{repo}/commits/{sha}/statuses", get(list_statuses))
            .route("/repos/{owner}/{repo}/collaborators/{user}/permission", get(permission))
            .route("/repos/{owner}/{repo}/pulls/{number}", get(read_pull))
            .route("/repos/{owner}/{repo}/pulls/{number}/comments", get(list_review_comments))
            .route("/repos/{owner}/{repo}/{kind}/comments/{id}/reactions", post(react))
            .layer(axum::middleware::from_fn_with_state(world.clone(), recorder))
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind the fake GitHub");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake GitHub server");
        });
        Self { addr, world, task }
    }

    /// Base URL (the statusbot's `--github-api-url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets `token` act as `login`.
    pub fn token(&self, token: &str, login: &str) {
        lock(&self.world).logins.insert(token.to_owned(), login.to_owned());
    }

    /// Makes commit `sha` of `repo` part of pull request `number`.
    pub fn link(&self, repo: &str, sha: &str, number: u64) {
        lock(&self.world).pulls.entry((repo.to_owned(), sha.to_owned())).or_default().push(number);
    }

    /// Sets the message `GET commits/{sha}` answers.
    pub fn commit_message(&self, repo: &str, sha: &str, message: &str) {
        lock(&self.world).messages.insert((repo.to_owned(), sha.to_owned()), message.to_owned());
    }

    /// A review comment by `user` on `path` line `line` of pull request
    /// `pull`, written now; returns its id.
    pub fn add_review_comment(
        &self,
        repo: &str,
        pull: u64,
        user: &str,
        path: &str,
        line: u64,
        body: &str,
    ) -> u64 {
        let mut world = lock(&self.world);
        world.next_id += 1;
        let id = world.next_id;
        let now =
            k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second).unwrap_or_default();
        let comment = json!({"id": id, "user": {"login": user, "type": "User"}, "path": path, "line": line,
                             "body": body, "created_at": now.to_string(), "updated_at": now.to_string()});
        world.review_comments.push((repo.to_owned(), pull, comment));
        id
    }

    /// A comment written by `user` (a person, say); returns its id.
    pub fn add_comment(&self, repo: &str, pull: u64, user: &str, body: &str) -> u64 {
        let mut world = lock(&self.world);
        world.next_id += 1;
        let id = world.next_id;
        let comment = Comment {
            id,
            repo: repo.to_owned(),
            pull,
            user: user.to_owned(),
            body: body.to_owned(),
            edits: 0,
        };
        world.comments.push(comment);
        id
    }

    /// The comments on `repo`'s pull request `pull`, oldest first.
    pub fn comments(&self, repo: &str, pull: u64) -> Vec<Comment> {
        lock(&self.world).comments.iter().filter(|c| c.repo == repo && c.pull == pull).cloned().collect()
    }

    /// Every comment, oldest first.
    pub fn all_comments(&self) -> Vec<Comment> {
        lock(&self.world).comments.clone()
    }

    /// Every commit status posted, in order.
    pub fn statuses(&self) -> Vec<Status> {
        lock(&self.world).statuses.clone()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.world).requests.clone()
    }

    /// Gives `login` role `role` (`read`, `write`, `maintain`…) on `repo`.
    pub fn role(&self, repo: &str, login: &str, role: &str) {
        lock(&self.world).roles.insert((repo.to_owned(), login.to_owned()), role.to_owned());
    }

    /// Opens pull request `pull.number` on `repo`.
    pub fn open_pull(&self, repo: &str, pull: NewPull<'_>) {
        let json = json!({
            "number": pull.number, "state": "open",
            "head": {"ref": pull.head_ref, "sha": pull.head_sha,
                     "repo": {"full_name": pull.head_repo, "clone_url": pull.head_clone_url}},
            "base": {"ref": "main", "repo": {"full_name": repo, "clone_url": pull.base_clone_url, "default_branch": "main"}},
        });
        lock(&self.world).pull_requests.insert((repo.to_owned(), pull.number), json);
    }

    /// Every reaction added, in order.
    pub fn reactions(&self) -> Vec<Reaction> {
        lock(&self.world).reactions.clone()
    }

    /// The requests that changed something (not GETs).
    pub fn writes(&self) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.method != "GET").collect()
    }
}

async fn recorder(
    State(world): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let recorded = Request {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    let known = {
        let mut world = lock(&world);
        world.requests.push(recorded);
        login(&world, &parts.headers).is_some()
    };
    // Every route needs a token GitHub knows.
    if !known {
        return unauthorized();
    }
    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

async fn user(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let world = lock(&world);
    match login(&world, &headers) {
        Some(login) => axum::Json(json!({"login": login, "type": "User"})).into_response(),
        None => unauthorized(),
    }
}

async fn commit_pulls(
    State(world): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
) -> Response {
    let world = lock(&world);
    let numbers = world.pulls.get(&(format!("{owner}/{repo}"), sha)).cloned().unwrap_or_default();
    axum::Json(numbers.iter().map(|n| json!({"number": n, "state": "open"})).collect::<Vec<_>>())
        .into_response()
}

async fn commit(
    State(world): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
) -> Response {
    let world = lock(&world);
    let message = world.messages.get(&(format!("{owner}/{repo}"), sha.clone())).cloned().unwrap_or_default();
    axum::Json(json!({"sha": sha, "commit": {"message": message}})).into_response()
}

async fn read_comment(
    State(world): State<Shared>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    let world = lock(&world);
    let repo = format!("{owner}/{repo}");
    match world.comments.iter().find(|c| c.id == id && c.repo == repo) {
        Some(c) => axum::Json(comment_json(c)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn edit_comment(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let mut world = lock(&world);
    let Some(who) = login(&world, &headers) else { return unauthorized() };
    let text =
        serde_json::from_slice::<Value>(&body).ok().and_then(|b| b["body"].as_str().map(str::to_owned));
    let repo = format!("{owner}/{repo}");
    let Some(comment) = world.comments.iter_mut().find(|c| c.id == id && c.repo == repo) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if comment.user != who {
        return error(StatusCode::FORBIDDEN, "Must have admin rights to Repository.");
    }
    let Some(text) = text else { return error(StatusCode::UNPROCESSABLE_ENTITY, "body is missing") };
    comment.body = text;
    comment.edits += 1;
    axum::Json(comment_json(comment)).into_response()
}

#[derive(serde::Deserialize)]
struct Page {
    per_page: Option<usize>,
    page: Option<usize>,
}

impl Page {
    /// The requested page of `items`, as GitHub pages (30 by default, at most 100).
    fn of<T>(&self, items: impl Iterator<Item = T>) -> axum::Json<Vec<T>> {
        let per_page = self.per_page.unwrap_or(30).clamp(1, 100);
        let skip = self.page.unwrap_or(1).saturating_sub(1) * per_page;
        axum::Json(items.skip(skip).take(per_page).collect())
    }
}

async fn list_comments(
    State(world): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(page): Query<Page>,
) -> Response {
    let world = lock(&world);
    let repo = format!("{owner}/{repo}");
    page.of(world.comments.iter().filter(|c| c.repo == repo && c.pull == number).map(comment_json))
        .into_response()
}

/// Review comments of a pull request, updated at or after `since`.
async fn list_review_comments(
    State(world): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(page): Query<Page>,
    Query(since): Query<Since>,
) -> Response {
    let world = lock(&world);
    let repo = format!("{owner}/{repo}");
    let since = since.since.unwrap_or_default();
    page.of(world
        .review_comments
        .iter()
        .filter(|(r, n, c)| *r == repo && *n == number && c["updated_at"].as_str() >= Some(since.as_str()))
        .map(|(_, _, c)| c.clone()))
        .into_response()
}

#[derive(serde::Deserialize)]
struct Since {
    since: Option<String>,
}

async fn create_comment(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let mut world = lock(&world);
    let Some(who) = login(&world, &headers) else { return unauthorized() };
    let Some(text) =
        serde_json::from_slice::<Value>(&body).ok().and_then(|b| b["body"].as_str().map(str::to_owned))
    else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "body is missing");
    };
    world.next_id += 1;
    let comment = Comment {
        id: world.next_id,
        repo: format!("{owner}/{repo}"),
        pull: number,
        user: who,
        body: text,
        edits: 0,
    };
    let json = comment_json(&comment);
    world.comments.push(comment);
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

async fn create_status(
    State(world): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let mut world = lock(&world);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(state) =
        body["state"].as_str().filter(|s| ["pending", "success", "failure", "error"].contains(s))
    else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "state is invalid");
    };
    let status = Status {
        repo: format!("{owner}/{repo}"),
        sha,
        state: state.to_owned(),
        context: body["context"].as_str().unwrap_or("default").to_owned(),
        description: body["description"].as_str().unwrap_or_default().to_owned(),
    };
    world.statuses.push(status);
    (StatusCode::CREATED, axum::Json(json!({"id": world.statuses.len(), "state": state}))).into_response()
}

async fn list_statuses(
    State(world): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(page): Query<Page>,
) -> Response {
    let world = lock(&world);
    let repo = format!("{owner}/{repo}");
    let newest_first = world.statuses.iter().rev().filter(|s| s.repo == repo && s.sha == sha);
    page.of(
        newest_first.map(|s| json!({"state": s.state, "context": s.context, "description": s.description}))
    )
    .into_response()
}

async fn permission(
    State(world): State<Shared>,
    Path((owner, repo, user)): Path<(String, String, String)>,
) -> Response {
    let world = lock(&world);
    match world.roles.get(&(format!("{owner}/{repo}"), user.clone())) {
        Some(role) => {
            let permission = match role.as_str() {
                "maintain" => "write",
                "triage" => "read",
                other => other,
            };
            axum::Json(json!({"permission": permission, "role_name": role, "user": {"login": user}}))
                .into_response()
        }
        // GitHub answers 404 for someone who is not a collaborator.
        None => error(StatusCode::NOT_FOUND, &format!("{user} is not a user")),
    }
}

async fn read_pull(
    State(world): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let world = lock(&world);
    match world.pull_requests.get(&(format!("{owner}/{repo}"), number)) {
        Some(pull) => axum::Json(pull.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn react(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((owner, repo, kind, id)): Path<(String, String, String, u64)>,
    body: Bytes,
) -> Response {
    let mut world = lock(&world);
    let Some(who) = login(&world, &headers) else { return unauthorized() };
    let content =
        serde_json::from_slice::<Value>(&body).ok().and_then(|b| b["content"].as_str().map(str::to_owned));
    let Some(content) = content.filter(|c| {
        ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"].contains(&c.as_str())
    }) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "content is invalid");
    };
    if kind != "issues" && kind != "pulls" {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    world.reactions.push(Reaction {
        repo: format!("{owner}/{repo}"),
        comment: id,
        kind,
        content: content.clone(),
        user: who,
    });
    (StatusCode::CREATED, axum::Json(json!({"content": content}))).into_response()
}

/// A pull request for [`FakeGitHub::open_pull`]: from branch `head_ref` at
/// `head_sha` of `head_repo` (the base repository itself, or a fork),
/// cloned from `head_clone_url`, into the base cloned from `base_clone_url`.
pub struct NewPull<'a> {
    /// Its number.
    pub number: u64,
    /// The head repository (`owner/name`).
    pub head_repo: &'a str,
    /// The head branch.
    pub head_ref: &'a str,
    /// The head commit.
    pub head_sha: &'a str,
    /// The head repository's clone URL.
    pub head_clone_url: &'a str,
    /// The base repository's clone URL.
    pub base_clone_url: &'a str,
}
