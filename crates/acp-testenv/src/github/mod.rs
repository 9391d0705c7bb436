//! A fake GitHub REST API (GitHub is unreachable from here), stateful and
//! request-recording, for the parts acp uses: `GET /user`, a commit's pull
//! requests and message, issue comments (list with pagination, create, read,
//! edit), commit statuses (create, list newest first), pull requests, the
//! collaborator permission endpoint and comment reactions.
//!
//! It keeps GitHub's rules that matter to acp's promises, unkind answers
//! included, so that a test plays the attacker against what GitHub really
//! says:
//! - a token acts as its login; unknown tokens get 401;
//! - a comment belongs to the login that wrote it; it and anyone with
//!   write access to the repository may edit it (403 otherwise), so a
//!   comment's text is not surely its author's; comments are read by id
//!   with their author, text and GitHub's own times (this fake keeps
//!   comments a second apart, where GitHub may give two the same second);
//! - the collaborator permission endpoint answers `read` for ANY user on a
//!   public repository (a stranger is not told apart there) and 404 on a
//!   private one; only `GET collaborators/{user}` (204 or 404) says who is
//!   a collaborator;
//! - GitHub Apps ([`apps`]): tokens only for a JWT signed by the App's own
//!   key, for its own installations, acting only on their repositories
//!   (403 "Resource not accessible by integration" for a write elsewhere,
//!   404 for a private repository elsewhere).
//!
//! Every request is recorded, with the login it acted as, for assertions.

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
    /// When it was written (RFC 3339).
    pub created_at: String,
    /// When it was last written or edited (RFC 3339).
    pub updated_at: String,
}

/// Who a token acts as.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    /// The login.
    pub(crate) login: String,
    /// An installation token's repositories (`None`: a user's token).
    pub(crate) repositories: Option<Vec<String>>,
}

impl World {
    /// The time a new comment is written at: now, to the second, and
    /// always after the comment before (comments written within one second
    /// here are seconds apart on GitHub's clock, so their order is kept).
    pub(crate) fn tick(&mut self) -> String {
        let now =
            k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second).unwrap_or_default();
        let next =
            self.clock.map_or(now, |last| now.max(last + k8s_openapi::jiff::SignedDuration::from_secs(1)));
        self.clock = Some(next);
        next.to_string()
    }
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
    /// The login its token acts as (`None`: no known token, e.g. an App's JWT).
    pub login: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// JSON body (`Null` when none).
    pub body: Value,
}

#[derive(Default)]
pub(crate) struct World {
    logins: BTreeMap<String, Identity>,
    private: std::collections::BTreeSet<String>,
    apps: BTreeMap<u64, apps::App>,
    installations: BTreeMap<u64, apps::Installation>,
    /// Installation tokens minted: (installation, token).
    minted: Vec<(u64, String)>,
    /// The time of the newest comment.
    clock: Option<k8s_openapi::jiff::Timestamp>,
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

pub mod apps;
mod comments;
pub use apps::app_key;
use comments::Page;

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

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "Bad credentials")
}

/// Who the request's token acts as, if it is known.
fn identity(world: &World, headers: &HeaderMap) -> Option<Identity> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")))
        .unwrap_or_default();
    world.logins.get(token).cloned()
}

/// The login of the request's token, if it is known.
fn login(world: &World, headers: &HeaderMap) -> Option<String> {
    identity(world, headers).map(|i| i.login)
}

impl FakeGitHub {
    /// Serves on loopback.
    pub async fn start() -> Self {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// Serves on `ip` (an address pods reach, for runners).
    pub async fn start_on(ip: std::net::IpAddr) -> Self {
        let world: Shared = Arc::default();
        // Ids GitHub assigns start far above those a test picks for the
        // comments its deliveries point to, so the two never collide.
        lock(&world).next_id = 10_000_000;
        let app = Router::new()
            .route("/user", get(user))
            .route("/repos/{owner}/{repo}/commits/{sha}/pulls", get(commit_pulls))
            .route("/repos/{owner}/{repo}/commits/{sha}", get(commit))
            .route(
                "/repos/{owner}/{repo}/issues/comments/{id}",
                get(comments::read_comment).patch(comments::edit_comment),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                get(comments::list_comments).post(comments::create_comment),
            )
            .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
            .route("/repos/{owner}/{repo}/commits/{sha}/statuses", get(list_statuses))
            .route("/repos/{owner}/{repo}/collaborators/{user}/permission", get(permission))
            .route("/repos/{owner}/{repo}/collaborators/{user}", get(collaborator))
            .route("/repos/{owner}/{repo}/pulls/comments/{id}", get(comments::read_review_comment))
            .route("/app", get(apps::app))
            .route("/repos/{owner}/{repo}/installation", get(apps::repository_installation))
            .route("/app/installations/{id}/access_tokens", post(apps::access_token))
            .route("/repos/{owner}/{repo}/pulls/{number}", get(read_pull))
            .route("/repos/{owner}/{repo}/pulls/{number}/comments", get(comments::list_review_comments))
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
        let identity = Identity { login: login.to_owned(), repositories: None };
        lock(&self.world).logins.insert(token.to_owned(), identity);
    }

    /// Makes `repo` private (repositories are public unless made private).
    pub fn private_repo(&self, repo: &str) {
        lock(&self.world).private.insert(repo.to_ascii_lowercase());
    }

    /// Registers GitHub App `id` (its bot is `<slug>[bot]`) with its public
    /// key (PKCS#1 DER, see [`app_key`]).
    pub fn register_app(&self, id: u64, slug: &str, public: &[u8]) {
        let app = apps::App { slug: slug.to_owned(), public: public.to_vec() };
        lock(&self.world).apps.insert(id, app);
    }

    /// Installs App `app` as installation `installation` on `repositories`.
    pub fn install(&self, app: u64, installation: u64, repositories: &[&str]) {
        let repositories = repositories.iter().map(|r| (*r).to_owned()).collect();
        lock(&self.world).installations.insert(installation, apps::Installation { app, repositories });
    }

    /// The installation tokens minted, as (installation, token).
    pub fn minted(&self) -> Vec<(u64, String)> {
        lock(&self.world).minted.clone()
    }

    /// Comment `id`'s author edits it to `body` (as on GitHub's page).
    pub fn edit_comment(&self, id: u64, body: &str) {
        let mut world = lock(&self.world);
        let at = world.tick();
        if let Some(c) = world.comments.iter_mut().find(|c| c.id == id) {
            c.body = body.to_owned();
            c.edits += 1;
            c.updated_at = at;
        }
    }

    /// Deletes comment `id` (as its author may).
    pub fn delete_comment(&self, id: u64) {
        lock(&self.world).comments.retain(|c| c.id != id);
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
        let now = world.tick();
        // As GitHub says it: a collaborator, or NONE for anyone else.
        let association = if world.roles.contains_key(&(repo.to_owned(), user.to_owned())) {
            "COLLABORATOR"
        } else {
            "NONE"
        };
        let comment = json!({"id": id, "user": {"login": user, "type": "User"}, "path": path, "line": line,
                             "author_association": association,
                             "body": body, "created_at": now, "updated_at": now,
                             "pull_request_url": format!("https://api.github.example/repos/{repo}/pulls/{pull}"),
                             "html_url": format!("https://github.example/{repo}/pull/{pull}#discussion_r{id}")});
        world.review_comments.push((repo.to_owned(), pull, comment));
        id
    }

    /// A comment written by `user` (a person, say); returns its id.
    pub fn add_comment(&self, repo: &str, pull: u64, user: &str, body: &str) -> u64 {
        let id = {
            let mut world = lock(&self.world);
            world.next_id += 1;
            world.next_id
        };
        self.add_comment_with_id(id, repo, pull, user, body);
        id
    }

    /// A comment with id `id` written now by `user`, as a test's webhook
    /// delivery will then point to it (an id below those GitHub assigns
    /// here; it must not be another comment's).
    pub fn add_comment_with_id(&self, id: u64, repo: &str, pull: u64, user: &str, body: &str) {
        let mut world = lock(&self.world);
        assert!(
            !world.comments.iter().any(|c| c.id == id && c.user != user),
            "comment {id} is someone else's already"
        );
        let now = world.tick();
        let comment = Comment {
            id,
            repo: repo.to_owned(),
            pull,
            user: user.to_owned(),
            body: body.to_owned(),
            edits: 0,
            created_at: now.clone(),
            updated_at: now,
        };
        world.comments.retain(|c| c.id != id);
        world.comments.push(comment);
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

    /// Pull request `number` of `repo` now has head `sha` (a push to it).
    pub fn set_head(&self, repo: &str, number: u64, sha: &str) {
        if let Some(pull) = lock(&self.world).pull_requests.get_mut(&(repo.to_owned(), number)) {
            pull["head"]["sha"] = json!(sha);
        }
    }

    /// Closes pull request `number` of `repo`.
    pub fn close_pull(&self, repo: &str, number: u64) {
        if let Some(pull) = lock(&self.world).pull_requests.get_mut(&(repo.to_owned(), number)) {
            pull["state"] = json!("closed");
        }
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
    let path = parts.uri.path().to_owned();
    let who = {
        let mut world = lock(&world);
        let who = identity(&world, &parts.headers);
        world.requests.push(Request {
            login: who.as_ref().map(|i| i.login.clone()),
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        });
        who
    };
    // An App's own routes take its JWT (checked there); every other route
    // needs a token GitHub knows.
    let app_route = path == "/app" || path.starts_with("/app/") || path.ends_with("/installation");
    let request =
        |parts, bytes: Bytes| axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    if app_route {
        return next.run(request(parts, bytes)).await;
    }
    let Some(who) = who else { return unauthorized() };
    // An installation token acts only on its installation's repositories.
    if let (Some(allowed), Some(repo)) = (&who.repositories, repository_of(&path))
        && !allowed.iter().any(|r| r.eq_ignore_ascii_case(&repo))
    {
        if lock(&world).private.contains(&repo.to_ascii_lowercase()) {
            return error(StatusCode::NOT_FOUND, "Not Found");
        }
        if parts.method != axum::http::Method::GET {
            return error(StatusCode::FORBIDDEN, "Resource not accessible by integration");
        }
    }

    next.run(request(parts, bytes)).await
}

/// `owner/name` of a `/repos/{owner}/{name}/…` path.
fn repository_of(path: &str) -> Option<String> {
    let mut parts = path.strip_prefix("/repos/")?.split('/');
    Some(format!("{}/{}", parts.next()?, parts.next()?))
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

/// `GET collaborators/{user}`: 204 for a collaborator, 404 for anyone else.
async fn collaborator(
    State(world): State<Shared>,
    Path((owner, repo, user)): Path<(String, String, String)>,
) -> Response {
    let world = lock(&world);
    match world.roles.get(&(format!("{owner}/{repo}"), user)) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn permission(
    State(world): State<Shared>,
    Path((owner, repo, user)): Path<(String, String, String)>,
) -> Response {
    let world = lock(&world);
    let full = format!("{owner}/{repo}");
    match world.roles.get(&(full.clone(), user.clone())) {
        Some(role) => {
            let permission = match role.as_str() {
                "maintain" => "write",
                "triage" => "read",
                other => other,
            };
            axum::Json(json!({"permission": permission, "role_name": role, "user": {"login": user}}))
                .into_response()
        }
        // On a public repository GitHub answers `read` for anyone: a
        // stranger looks like a read collaborator here. On a private one, 404.
        None if world.private.contains(&full.to_ascii_lowercase()) => {
            error(StatusCode::NOT_FOUND, &format!("{user} is not a user"))
        }
        None => axum::Json(json!({"permission": "read", "role_name": "read", "user": {"login": user}}))
            .into_response(),
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
