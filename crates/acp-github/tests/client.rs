//! The GitHub client against a request-asserting fake (wiremock) of exactly
//! the endpoints used: method, path, body and count are checked.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use acp_github::GitHub;
use serde_json::json;
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn a_rate_limited_403_is_retried_after_the_reset() {
    let server = MockServer::start().await;
    let reset = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 2;
    let body = json!({"state": "pending", "context": "acp/fix-login", "description": "fix-login is running", "target_url": "https://acp.example/s"});
    Mock::given(method("POST"))
        .and(path("/repos/acme/sessions/statuses/abc123"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/sessions/statuses/abc123"))
        .and(body_json(&body))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(1)
        .mount(&server)
        .await;
    let github = GitHub::new(&server.uri(), "t0ken", "acme/sessions").expect("client");
    let started = Instant::now();
    github
        .set_status(
            "abc123",
            "acp/fix-login",
            "pending",
            "fix-login is running",
            Some("https://acp.example/s"),
        )
        .await
        .expect("retried after the reset");
    assert!(started.elapsed() >= Duration::from_millis(900), "waited for the reset: {:?}", started.elapsed());
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer t0ken"));
}

#[tokio::test]
async fn comments_are_found_by_marker_then_edited() {
    let server = MockServer::start().await;
    // The first page: unrelated comments, and one by a person who pasted the marker.
    let mut page1: Vec<_> =
        (0..99).map(|i| json!({"id": i, "user": {"login": "dev"}, "body": "unrelated"})).collect();
    page1.push(json!({"id": 99, "user": {"login": "mallory"}, "body": "<!-- acp:session team/s -->\nfake"}));
    Mock::given(method("GET"))
        .and(path("/repos/acme/sessions/issues/7/comments"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(page1)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/sessions/issues/7/comments"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!([{"id": 555, "user": {"login": "acp-bot"}, "body": "<!-- acp:session team/s -->\nold"}]),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/sessions/issues/comments/555"))
        .and(body_json(json!({"body": "<!-- acp:session team/s -->\nnew"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 555})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/sessions/issues/8/comments"))
        .and(body_json(json!({"body": "first"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 900})))
        .expect(1)
        .mount(&server)
        .await;
    let github = GitHub::new(&server.uri(), "t", "acme/sessions").expect("client");
    let id = github
        .find_comment(7, "<!-- acp:session team/s -->", "acp-bot")
        .await
        .expect("listed")
        .expect("found");
    assert_eq!(id, 555);
    github.update_comment(id, "<!-- acp:session team/s -->\nnew").await.expect("edited");
    assert_eq!(github.create_comment(8, "first").await.expect("created"), 900);
}

#[tokio::test]
async fn the_pull_request_comes_from_the_commit_or_its_merge_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/sessions/commits/aaa/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"number": 12}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/sessions/commits/bbb/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/sessions/commits/bbb"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"commit": {"message": "Merge pull request #34 from acme/x"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let github = GitHub::new(&server.uri(), "t", "acme/sessions").expect("client");
    assert_eq!(github.pull_for_commit("aaa").await.expect("lookup"), Some(12));
    assert_eq!(github.pull_for_commit("bbb").await.expect("fallback"), Some(34));
}

/// Roles as GitHub answers them: on a public repository the permission
/// endpoint says `read` for anyone, so only the collaborator check tells a
/// stranger from a read collaborator (the fake plays GitHub, unkind
/// answers included).
#[tokio::test]
async fn a_stranger_on_a_public_repository_is_no_collaborator() {
    let github = acp_testenv::github::FakeGitHub::start().await;
    github.token("t", "acp-bot");
    github.role("acme/public", "rita", "read");
    github.role("acme/public", "wes", "write");
    github.private_repo("acme/private");
    let public = acp_github::GitHub::new(&github.url(), "t", "acme/public").expect("client");
    assert_eq!(public.role("stranger").await.expect("role"), "none");
    assert_eq!(public.role("rita").await.expect("role"), "read");
    assert_eq!(public.role("wes").await.expect("role"), "write");
    let private = acp_github::GitHub::new(&github.url(), "t", "acme/private").expect("client");
    assert_eq!(private.role("stranger").await.expect("role"), "none");
    // A stranger costs one request: the collaborator check.
    let asked: Vec<String> =
        github.requests().iter().filter(|r| r.uri.contains("stranger")).map(|r| r.uri.clone()).collect();
    assert_eq!(
        asked,
        ["/repos/acme/public/collaborators/stranger", "/repos/acme/private/collaborators/stranger"]
    );
}

/// A comment is read by id with GitHub's author, text and time; a comment
/// that is gone is `None`.
#[tokio::test]
async fn comments_are_read_by_id() {
    let github = acp_testenv::github::FakeGitHub::start().await;
    github.token("t", "acp-bot");
    let id = github.add_comment("acme/webapp", 7, "maria", "/acp approve 1a2b3c4");
    let client = acp_github::GitHub::new(&github.url(), "t", "acme/webapp").expect("client");
    let read = client.comment(id, false).await.expect("read").expect("a comment");
    assert_eq!(
        (read.login.as_str(), read.body.as_str(), read.pull),
        ("maria", "/acp approve 1a2b3c4", Some(7))
    );
    assert!(!read.created_at.is_empty());
    github.delete_comment(id);
    assert_eq!(client.comment(id, false).await.expect("read"), None);
}
