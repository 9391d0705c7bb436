//! The credentials sidecar and the runner, both real, on this machine (the
//! pod's loopback is this machine's): the runner's configuration holds no
//! credential; the sidecar clones, pushes and forwards model calls with its
//! own; and its API, which the agent can reach too, does nothing the
//! session's spec does not ask for, whatever the workspace says. The
//! separation of the two containers themselves is tested on the real node
//! (`acp-operator/tests/operator.rs`, the agent hunting for credentials).

mod common;

use acp_api::constants::runner_pod::PROXIED_API_KEY;
use acp_api::session::RunOutcome;
use acp_runner::broker::Target;
use acp_runner::broker::client::Client;
use acp_runner::config::RunnerConfig;
use acp_runner::ops::OpError;
use acp_testenv::githttp::git;
use acp_testenv::model::Step;
use common::{API_KEY, Collect, Fixture, GIT_TOKEN};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{oneshot, watch};

/// A sidecar serving `fixture`'s session with the fixture's credentials.
struct Sidecar {
    url: String,
    addr: std::net::SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Sidecar {
    async fn start(config: RunnerConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            acp_runner::broker::server::serve(config, listener, shutdown).await.expect("sidecar");
        });
        Self { url: format!("http://{addr}"), addr, _stop: tx }
    }

    fn client(&self) -> Client {
        Client::new(&self.url)
    }

    /// Sends `request` as is and returns the status line and body.
    async fn raw(&self, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    }

    async fn post(&self, path: &str, body: &str) -> String {
        self.raw(&format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await
    }
}

/// The runner's configuration in a pod: no credential, the sidecar instead.
fn runner_config(fixture: &Fixture, sidecar: &Sidecar) -> RunnerConfig {
    let mut vars = fixture.vars.clone();
    vars.remove("GIT_TOKEN");
    vars.insert("ANTHROPIC_API_KEY".into(), PROXIED_API_KEY.into());
    vars.insert("ANTHROPIC_BASE_URL".into(), sidecar.url.clone());
    vars.insert("ACP_CREDENTIALS_URL".into(), sidecar.url.clone());
    RunnerConfig::from_env(&move |k| vars.get(k).cloned()).expect("valid config")
}

#[tokio::test]
async fn a_runner_without_credentials_clones_pushes_and_reaches_the_model_through_the_sidecar() {
    let mut fixture = Fixture::new(Vec::new()).await;
    let notes = fixture.repo_file("NOTES.md");
    fixture.model = acp_testenv::model::ScriptedModel::start(
        common::MODEL,
        vec![
            Step::tool("Bash", json!({"command": "env; cat /proc/$PPID/environ | tr '\\0' '\\n'"})),
            Step::tool("Write", json!({"file_path": notes, "content": "notes\n"})),
            Step::text("Done."),
        ],
    )
    .await;
    let model_url = fixture.model.url();
    fixture.set("ANTHROPIC_BASE_URL", &model_url);
    let sidecar = Sidecar::start(fixture.config()).await;
    let config = runner_config(&fixture, &sidecar);
    assert!(config.credentials.secrets().iter().all(|s| s != API_KEY && s != GIT_TOKEN));

    let (_tx, stop) = watch::channel(false);
    let result = acp_runner::run(&config, &mut Collect::default(), stop).await;
    assert_eq!(result.outcome, Some(RunOutcome::Success), "{result:?}");

    // The model got the real key on every request; the agent saw a placeholder.
    let requests = fixture.model.requests();
    assert!(requests.len() >= 3 && requests.iter().all(|r| r.api_key.as_deref() == Some(API_KEY)));
    let (_, seen) = requests[1].tool_results().into_iter().next().expect("the Bash result");
    assert!(seen.contains(&format!("ANTHROPIC_API_KEY={PROXIED_API_KEY}")), "{seen}");
    assert!(!seen.contains(API_KEY) && !seen.contains(GIT_TOKEN), "the agent saw a credential: {seen}");

    // The sidecar cloned and pushed with the token the runner never had.
    let [pushed] = result.pushed_branches.as_slice() else { panic!("one push: {result:?}") };
    let bare = fixture.bare("app");
    assert_eq!(git(&bare, &["rev-parse", "ambient/fix-readme"]).trim(), pushed.commit);
    assert_eq!(git(&bare, &["show", "ambient/fix-readme:NOTES.md"]), "notes\n");
}

#[tokio::test]
async fn a_push_goes_to_the_sessions_url_whatever_the_workspace_configuration_says() {
    let fixture = Fixture::new(Vec::new()).await;
    let sidecar = Sidecar::start(fixture.config()).await;
    let client = sidecar.client();
    client.clone_target(Target::Repo(0)).await.expect("clone");
    let repo = fixture.workspace().join("repos/app");
    let real = fixture.git.url("app");
    let (trap, offered) = common::credential_trap().await;
    let trap = format!("{trap}/stolen.git");

    // The agent commits on the session branch and points origin at its server.
    std::fs::write(repo.join("NOTES.md"), "mine\n").expect("write");
    for args in [
        &["checkout", "-q", "-b", "ambient/fix-readme"][..],
        &["add", "-A"],
        &["-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qm", "agent"],
        &["remote", "set-url", "origin", &trap],
    ] {
        git(&repo, args);
    }
    let pushed = client.push(0).await.expect("the push ignores origin");
    assert_eq!(git(&fixture.bare("app"), &["rev-parse", "ambient/fix-readme"]).trim(), pushed.commit);

    // Then rewrites the session's URL to its server: no push, no token offered.
    for key in ["insteadOf", "pushInsteadOf"] {
        git(&repo, &["config", &format!("url.{trap}.{key}"), &real]);
        let err = client.push(0).await.expect_err("a rewritten URL gets no credentials");
        assert!(matches!(err, OpError::Sidecar(_)), "{err}");
        assert!(err.to_string().contains("rewrites remote URLs"), "{err}");
        git(&repo, &["config", "--unset", &format!("url.{trap}.{key}")]);
    }
    assert_eq!(offered.lock().expect("lock").as_slice(), &[] as &[String], "credentials reached the trap");
}

#[tokio::test]
async fn the_sidecar_api_does_only_what_the_spec_asks_for() {
    let mut fixture = Fixture::new(Vec::new()).await;
    fixture.git.create_repo("docs", "main", &[("index.md", "docs\n")]);
    let repos = json!([
        {"url": fixture.git.url("app"), "branch": "main", "autoPush": true},
        {"url": fixture.git.url("docs"), "branch": "main"},
    ]);
    fixture.set("REPOS_JSON", &repos.to_string());
    let sidecar = Sidecar::start(fixture.config()).await;
    let client = sidecar.client();

    // Each repository is cloned once: a second request writes nothing.
    let first = client.clone_target(Target::Repo(0)).await.expect("clone");
    let readme = fixture.workspace().join("repos/app/README.md");
    std::fs::remove_file(&readme).expect("remove");
    let again = client.clone_target(Target::Repo(0)).await.expect("clone again");
    assert_eq!((again.branch.as_str(), again.base), (first.branch.as_str(), first.base));
    assert!(!readme.exists(), "the second clone wrote into the workspace");

    // Nothing outside the spec: no such repository, no workflow, no push or
    // pull request the spec does not ask for.
    let refused = |result: Result<_, OpError>, words: &str| match result {
        Err(OpError::Sidecar(message)) => assert!(message.contains(words), "{message}"),
        other => panic!("expected a refusal with {words:?}: {other:?}"),
    };
    refused(client.clone_target(Target::Repo(7)).await.map(|_| ()), "no repository 7");
    refused(client.clone_target(Target::Workflow).await.map(|_| ()), "no workflow");
    client.clone_target(Target::Repo(1)).await.expect("clone docs");
    refused(client.push(1).await.map(|_| ()), "does not have autoPush");
    let proposal = acp_runner::ops::Proposal { base: "main", head: "x", title: "t", body: "b" };
    refused(client.pull_request(0, proposal).await.map(|_| ()), "does not ask for a pull request");

    // A request cannot name a destination: unknown fields are refused.
    let answer = sidecar.post("/acp/v1/push", r#"{"repo":0,"url":"http://evil.example/x.git"}"#).await;
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
}

#[tokio::test]
async fn model_requests_keep_their_path_and_get_the_real_key_instead_of_the_agents() {
    let upstream = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("{\"data\":[]}"))
        .mount(&upstream)
        .await;
    let mut fixture = Fixture::new(Vec::new()).await;
    fixture.set("ANTHROPIC_BASE_URL", &upstream.uri());
    let sidecar = Sidecar::start(fixture.config()).await;

    // An absolute-form request line naming another host still goes upstream;
    // the agent's key and Authorization are replaced by the sidecar's key.
    let answer = sidecar
        .raw(&format!(
            "POST http://evil.example/v1/messages?beta=true HTTP/1.1\r\nHost: evil.example\r\nx-api-key: {PROXIED_API_KEY}\r\nAuthorization: Bearer agent\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ))
        .await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("{\"data\":[]}"), "{answer}");
    let received = upstream.received_requests().await.expect("recorded");
    let [request] = received.as_slice() else { panic!("one request upstream: {received:?}") };
    assert_eq!(request.url.path(), "/v1/messages");
    assert_eq!(request.url.query(), Some("beta=true"));
    assert_eq!(request.headers.get("x-api-key").and_then(|v| v.to_str().ok()), Some(API_KEY));
    assert!(request.headers.get("authorization").is_none());
    assert_ne!(request.headers.get("host").and_then(|v| v.to_str().ok()), Some("evil.example"));
}

/// A model API gateway that records every request it gets: method, path
/// and query, and the key it came with.
async fn recording_gateway()
-> (String, std::sync::Arc<std::sync::Mutex<Vec<(String, String, Option<String>)>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let record = record.clone();
        async move {
            let key = request.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let target = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
            record.lock().expect("lock").push((request.method().to_string(), target, key));
            axum::Json(json!({"type": "message", "content": []}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn only_the_messages_endpoints_reach_the_model_api_with_the_key() {
    let (gateway, seen) = recording_gateway().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let vars = std::collections::BTreeMap::from([
        ("AGENTIC_SESSION_NAME", "fix-readme".to_owned()),
        ("INITIAL_PROMPT", "Improve the README.".to_owned()),
        ("WORKSPACE_PATH", tmp.path().join("ws").to_string_lossy().into_owned()),
        ("ANTHROPIC_API_KEY", API_KEY.to_owned()),
        ("ANTHROPIC_BASE_URL", gateway),
    ]);
    let config = RunnerConfig::from_env(&move |k| vars.get(k).cloned()).expect("valid config");
    let sidecar = Sidecar::start(config).await;
    let request = |method: &str, target: &str| {
        format!(
            "{method} {target} HTTP/1.1\r\nHost: x\r\nx-api-key: {PROXIED_API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        )
    };

    // Other routes of the gateway, however spelt, and other methods: refused
    // in the Messages API's shape, never sent upstream.
    for (method, target) in [
        ("POST", "/../admin/x"),
        ("POST", "/v1/messages/../../admin"),
        ("POST", "/v1/%2e%2e/admin"),
        ("POST", "/v1/messages%2F..%2F..%2Fadmin"),
        ("POST", "//v1/messages"),
        ("POST", "/v1/anything"),
        ("POST", "/v1/messages/batches"),
        ("POST", "http://evil.example/admin/x"),
        ("GET", "/v1/models"),
        ("GET", "/v1/messages"),
        ("DELETE", "/v1/messages"),
    ] {
        let answer = sidecar.raw(&request(method, target)).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{method} {target}: {answer}");
        assert!(answer.contains(r#""type":"error""#) && answer.contains("permission_error"), "{answer}");
        assert!(!answer.contains(API_KEY), "{answer}");
    }
    assert_eq!(seen.lock().expect("lock").as_slice(), &[], "a refused request reached the gateway");

    // The Messages API, with its query: forwarded, with the real key.
    for target in ["/v1/messages?beta=true", "/v1/messages/count_tokens?beta=true", "/v1/messages"] {
        let answer = sidecar.raw(&request("POST", target)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{target}: {answer}");
    }
    let key = Some(API_KEY.to_owned());
    assert_eq!(
        seen.lock().expect("lock").as_slice(),
        &[
            ("POST".to_owned(), "/v1/messages?beta=true".to_owned(), key.clone()),
            ("POST".to_owned(), "/v1/messages/count_tokens?beta=true".to_owned(), key.clone()),
            ("POST".to_owned(), "/v1/messages".to_owned(), key),
        ]
    );
}
