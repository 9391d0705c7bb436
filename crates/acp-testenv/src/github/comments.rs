//! Comments in the fake GitHub: issue comments (read by id, listed with
//! GitHub's paging, created, edited by their author or anyone with write
//! access) and review comments on a pull request's diff (listed since a
//! time, read by id), with GitHub's own times.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Comment, Shared, error, lock, login, unauthorized};

pub(super) fn comment_json(c: &Comment) -> Value {
    let kind = if c.user.ends_with("[bot]") { "Bot" } else { "User" };
    json!({"id": c.id, "body": c.body, "user": {"login": c.user, "type": kind},
           "html_url": format!("https://github.example/{}/pull/{}#issuecomment-{}", c.repo, c.pull, c.id),
           "issue_url": format!("https://api.github.example/repos/{}/issues/{}", c.repo, c.pull),
           "created_at": c.created_at, "updated_at": c.updated_at, "performed_via_github_app": null})
}

pub(super) async fn read_comment(
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

pub(super) async fn edit_comment(
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
    // As on GitHub: the author, or anyone with write access to the
    // repository, may edit a comment.
    let writer = world
        .roles
        .get(&(repo.clone(), who.clone()))
        .is_some_and(|r| matches!(r.as_str(), "write" | "maintain" | "admin"));
    if !world.comments.iter().any(|c| c.id == id && c.repo == repo) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let at = world.tick();
    let Some(comment) = world.comments.iter_mut().find(|c| c.id == id && c.repo == repo) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if comment.user != who && !writer {
        return error(StatusCode::FORBIDDEN, "Must have admin rights to Repository.");
    }
    let Some(text) = text else { return error(StatusCode::UNPROCESSABLE_ENTITY, "body is missing") };
    comment.body = text;
    comment.edits += 1;
    comment.updated_at = at;
    axum::Json(comment_json(comment)).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct Page {
    per_page: Option<usize>,
    page: Option<usize>,
}

impl Page {
    /// The requested page of `items`, as GitHub pages (30 by default, at most 100).
    pub(super) fn of<T>(&self, items: impl Iterator<Item = T>) -> axum::Json<Vec<T>> {
        let per_page = self.per_page.unwrap_or(30).clamp(1, 100);
        let skip = self.page.unwrap_or(1).saturating_sub(1) * per_page;
        axum::Json(items.skip(skip).take(per_page).collect())
    }
}

pub(super) async fn list_comments(
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
pub(super) async fn list_review_comments(
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
pub(super) struct Since {
    since: Option<String>,
}

pub(super) async fn create_comment(
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
    let now = world.tick();
    let comment = Comment {
        id: world.next_id,
        repo: format!("{owner}/{repo}"),
        pull: number,
        user: who,
        body: text,
        edits: 0,
        created_at: now.clone(),
        updated_at: now,
    };
    let json = comment_json(&comment);
    world.comments.push(comment);
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

/// `GET pulls/comments/{id}`: a review comment by id.
pub(super) async fn read_review_comment(
    State(world): State<Shared>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    let world = lock(&world);
    let repo = format!("{owner}/{repo}");
    match world.review_comments.iter().find(|(r, _, c)| *r == repo && c["id"] == id) {
        Some((_, _, c)) => axum::Json(c.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}
