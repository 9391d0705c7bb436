//! Remotes: draft pull requests against a request-asserting GitHub fake,
//! cloning over file://, and git over a real sshd with key and known_hosts.

mod common;

use acp_api::session::RunOutcome;
use acp_testenv::githttp::git;
use acp_testenv::model::Step;
use common::Fixture;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const GH_TOKEN: &str = "ghp_fake_token_0123456789";

fn pull(number: u64, head: &str) -> Value {
    json!({
        "id": 1000 + number, "number": number, "locked": false, "state": "open", "draft": true,
        "url": format!("https://api.example/repos/acme/app/pulls/{number}"),
        "html_url": format!("https://github.example/acme/app/pull/{number}"),
        "head": {"ref": head, "sha": "0123456789abcdef0123456789abcdef01234567"},
        "base": {"ref": "main", "sha": "89abcdef0123456789abcdef0123456789abcdef"}
    })
}

/// A fixture whose repo `acme/app` counts as a GitHub repository.
async fn github_fixture(github: &MockServer) -> Fixture {
    let mut fixture = Fixture::new(Vec::new()).await;
    fixture.git.create_repo("acme/app", "main", &[("README.md", "hello\n")]);
    let readme = fixture.workspace().join("repos/app/README.md");
    fixture.model = acp_testenv::model::ScriptedModel::start(
        common::MODEL,
        vec![
            Step::tool("Edit", json!({"file_path": readme, "old_string": "hello", "new_string": "hello PR"})),
            Step::text("Changed the greeting."),
        ],
    )
    .await;
    let url = fixture.git.url("acme/app");
    let host = url.trim_start_matches("http://").split('/').next().expect("host").to_owned();
    let model_url = fixture.model.url();
    fixture
        .set("ANTHROPIC_BASE_URL", &model_url)
        .set("REPOS_JSON", &format!(r#"[{{"url":"{url}","autoPush":true,"pullRequest":true}}]"#))
        .set("GITHUB_HOST", &host)
        .set("GITHUB_API_URL", &github.uri())
        .set("GITHUB_TOKEN", GH_TOKEN);
    fixture
}

#[tokio::test]
async fn opens_a_draft_pull_request_for_the_pushed_branch() {
    let github = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/app/pulls"))
        .and(body_partial_json(json!({"head": "ambient/fix-readme", "base": "main", "draft": true})))
        .respond_with(ResponseTemplate::new(201).set_body_json(pull(7, "ambient/fix-readme")))
        .expect(1)
        .mount(&github)
        .await;
    let fixture = github_fixture(&github).await;
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    assert_eq!(result.pull_requests, ["https://github.example/acme/app/pull/7"]);
    assert_eq!(git(&fixture.bare("acme/app"), &["show", "ambient/fix-readme:README.md"]), "hello PR\n");

    let requests = github.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1, "one API call per pull request");
    let auth = requests[0].headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(auth.ends_with(GH_TOKEN), "token sent: {auth}");
    let body: Value = serde_json::from_slice(&requests[0].body).expect("json body");
    assert_eq!(body["title"], "Improve the README.");
    assert!(
        body["body"]
            .as_str()
            .is_some_and(|b| b.contains("team-a/fix-readme") && b.contains("Changed the greeting."))
    );
}

#[tokio::test]
async fn a_rerun_finds_the_pull_request_it_opened_before() {
    let github = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/app/pulls"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for acme:ambient/fix-readme."}]
        })))
        .expect(1)
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/pulls"))
        .and(query_param("head", "acme:ambient/fix-readme"))
        .and(query_param("state", "open"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([pull(3, "ambient/fix-readme")])))
        .expect(1)
        .mount(&github)
        .await;
    let fixture = github_fixture(&github).await;
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    assert_eq!(result.pull_requests, ["https://github.example/acme/app/pull/3"]);
}

#[tokio::test]
async fn clones_over_file_urls() {
    let mut fixture = Fixture::new(vec![Step::text("Looked around.")]).await;
    let url = format!("file://{}", fixture.bare("app").display());
    fixture.set("REPOS_JSON", &format!(r#"[{{"url":"{url}"}}]"#));
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    let readme = std::fs::read_to_string(fixture.workspace().join("repos/app/README.md")).expect("cloned");
    assert_eq!(readme, "hello\n");
}

#[tokio::test]
async fn clones_and_pushes_over_ssh_with_a_key_and_known_hosts() {
    let readme_step = |fixture: &Fixture| {
        Step::tool(
            "Write",
            json!({"file_path": fixture.workspace().join("repos/app/SSH.md"), "content": "via ssh\n"}),
        )
    };
    let mut fixture = Fixture::new(Vec::new()).await;
    let sshd = acp_testenv::sshd::SshServer::start(&fixture.tmp.path().join("sshd"));
    fixture.model = acp_testenv::model::ScriptedModel::start(
        common::MODEL,
        vec![readme_step(&fixture), Step::text("Done.")],
    )
    .await;
    let (model_url, url) = (fixture.model.url(), sshd.url(&fixture.bare("app")));
    fixture
        .set("ANTHROPIC_BASE_URL", &model_url)
        .set("REPOS_JSON", &format!(r#"[{{"url":"{url}","autoPush":true}}]"#))
        .set("GIT_SSH_KEY_FILE", &sshd.client_key().to_string_lossy())
        .set("GIT_KNOWN_HOSTS_FILE", &sshd.known_hosts().to_string_lossy());
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");
    assert_eq!(git(&fixture.bare("app"), &["show", "ambient/fix-readme:SSH.md"]), "via ssh\n");
}

#[tokio::test]
async fn unknown_ssh_host_key_exits_2() {
    let mut fixture = Fixture::new(vec![Step::text("unused")]).await;
    let sshd = acp_testenv::sshd::SshServer::start(&fixture.tmp.path().join("sshd"));
    let other = fixture.tmp.path().join("other_known_hosts");
    std::fs::write(
        &other,
        "[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n",
    )
    .expect("write");
    let url = sshd.url(&fixture.bare("app"));
    fixture
        .set("REPOS_JSON", &format!(r#"[{{"url":"{url}"}}]"#))
        .set("GIT_SSH_KEY_FILE", &sshd.client_key().to_string_lossy())
        .set("GIT_KNOWN_HOSTS_FILE", &other.to_string_lossy());
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::PrerequisiteFailed), "{result:?}");
    assert!(
        result
            .error
            .as_deref()
            .is_some_and(|e| e.contains("ssh host key of 127.0.0.1 is not in known_hosts")),
        "{result:?}"
    );
}

/// A git server that redirects every request to an attacker's server, which
/// records the credentials it is offered (what a compromised or renamed
/// remote can do).
#[tokio::test]
async fn a_redirect_to_another_host_is_offered_no_credentials() {
    let (trap, offered) = common::credential_trap().await;
    let redirect = axum::Router::new().fallback(move |uri: axum::http::Uri| async move {
        let to = format!("{trap}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
        (axum::http::StatusCode::FOUND, [("location", to)], "")
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/acme/app.git", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, redirect).await });

    let mut fixture = Fixture::new(vec![Step::text("unused")]).await;
    fixture.set("REPOS_JSON", &format!(r#"[{{"url":"{url}"}}]"#));
    let (result, _) = fixture.run().await;
    assert_eq!(result.outcome, Some(RunOutcome::PrerequisiteFailed), "{result:?}");
    let offered = offered.lock().expect("lock").clone();
    assert_eq!(offered, [] as [String; 0], "credentials followed the redirect");
}
