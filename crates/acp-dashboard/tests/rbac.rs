//! Token auth against the real API server: two users (ServiceAccounts with
//! real tokens) in two namespaces each see only what RBAC lets them list, in
//! the API, the watches and the pages.

mod common;

use acp_dashboard::auth::Mode;
use acp_dashboard::logs::LogSource;
use acp_testenv::eventually;
use common::*;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use serde_json::json;

/// A ServiceAccount in `ns`, allowed to list sessions, sources and schedules there when
/// `can_list`, and a token for it.
async fn user(client: &kube::Client, ns: &str, name: &str, can_list: bool) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("account");
    accounts.create(&PostParams::default(), &account).await.expect("account created");
    if can_list {
        let role: Role = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-reader")},
            "rules": [{"apiGroups": ["vteam.ambient-code"], "resources": ["agenticsessions", "sessionsources", "sessionschedules"],
                       "verbs": ["get", "list", "watch"]}]
        }))
        .expect("role");
        Api::<Role>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &role)
            .await
            .expect("role");
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-reader")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{name}-reader")},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
        }))
        .expect("binding");
        Api::<RoleBinding>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &binding)
            .await
            .expect("binding");
    }
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).expect("token request");
    let token = accounts.create_token_request(name, &PostParams::default(), &request).await.expect("token");
    token.status.and_then(|s| s.token).expect("a token")
}

fn names(page: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| format!("{}/{}", r["namespace"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or("")))
        .collect();
    names.sort();
    names
}

/// Object names of the watch's initial events, up to `synced`.
async fn watched(url: &str, token: &str) -> Vec<String> {
    let mut watch = Sse::open(url, Some(token)).await.expect("watch opens");
    let mut seen = Vec::new();
    loop {
        let event = watch.until("an initial event", |_| true).await;
        if event.event == "synced" {
            seen.sort();
            return seen;
        }
        let object: serde_json::Value = serde_json::from_str(&event.data).expect("JSON");
        seen.push(format!(
            "{}/{}",
            object["metadata"]["namespace"].as_str().unwrap_or(""),
            object["metadata"]["name"].as_str().unwrap_or("")
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_user_sees_only_what_rbac_allows() {
    let (env, client) = env().await;
    let (a, b) = (env.namespace("dash-rbac-a").await.name, env.namespace("dash-rbac-b").await.name);
    for (ns, name) in [(&a, "a1"), (&a, "a2"), (&b, "b1")] {
        create_session(&client, ns, name, &format!("{ns}/src")).await;
    }
    let alice = user(&client, &a, "alice", true).await;
    let bob = user(&client, &b, "bob", true).await;
    let nobody = user(&client, &a, "nobody", false).await;
    let dashboard = Dashboard::start(client.clone(), Mode::Token, LogSource::Pods(client.clone())).await;
    let url = &dashboard.url;
    let (a1, a2, b1) = (format!("{a}/a1"), format!("{a}/a2"), format!("{b}/b1"));

    // No token, or one the API server rejects: 401, for the API and the pages.
    for path in ["/api/v1/sessions", "/sessions", "/sources", "/api/v1/sessions/watch"] {
        assert_eq!(get(&format!("{url}{path}"), None).await.0, 401, "{path} without a token");
        assert_eq!(get(&format!("{url}{path}"), Some("not-a-token")).await.0, 401, "{path} with a bad token");
    }

    // Each user lists exactly the sessions of their namespace, whatever else
    // the cache holds (other tests' namespaces included).
    assert_eq!(
        names(&get_json(&format!("{url}/api/v1/sessions"), Some(&alice)).await),
        [a1.clone(), a2.clone()]
    );
    assert_eq!(names(&get_json(&format!("{url}/api/v1/sessions"), Some(&bob)).await), [b1.as_str()]);
    assert_eq!(get_json(&format!("{url}/api/v1/sessions"), Some(&nobody)).await["total"], 0);
    let filtered = get_json(&format!("{url}/api/v1/sessions?namespace={b}"), Some(&alice)).await;
    assert_eq!(filtered["total"], 0, "a namespace filter does not widen access");
    // The proxy header works like the bearer token.
    let (status, body) =
        get_with(&format!("{url}/api/v1/sessions"), &[("x-forwarded-access-token", bob.clone())]).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"b1\"") && !body.contains("\"a1\""), "{body}");

    // Objects elsewhere are not found, so their existence does not leak.
    assert_eq!(get(&format!("{url}/api/v1/sessions/{a}/a1"), Some(&alice)).await.0, 200);
    assert_eq!(get(&format!("{url}/api/v1/sessions/{b}/b1"), Some(&alice)).await.0, 404);
    assert_eq!(get(&format!("{url}/api/v1/sessions/{a}/a1"), Some(&bob)).await.0, 404);
    assert_eq!(get(&format!("{url}/api/v1/sessions/{a}/a1"), Some(&nobody)).await.0, 404);
    assert_eq!(get(&format!("{url}/api/v1/sessions/{b}/b1/log"), Some(&alice)).await.0, 404);

    // Watches: only visible objects, and no watch of a hidden namespace.
    assert_eq!(watched(&format!("{url}/api/v1/sessions/watch"), &alice).await, [a1.clone(), a2.clone()]);
    assert_eq!(watched(&format!("{url}/api/v1/sessions/watch"), &bob).await, [b1.as_str()]);
    assert_eq!(
        Sse::open(&format!("{url}/api/v1/sessions/watch?namespace={b}"), Some(&alice)).await.err(),
        Some(404)
    );

    // Pages.
    let (status, html) = get(&format!("{url}/sessions"), Some(&alice)).await;
    assert_eq!(status, 200);
    assert!(html.contains("Session a1") && html.contains("Session a2") && !html.contains("Session b1"));
    assert!(html.contains("system:serviceaccount:") && html.contains(":alice"), "the page names the caller");
    assert!(!html.contains(&format!(">{b}<")), "bob's namespace is not offered as a filter to alice");
    let (status, html) = get(&format!("{url}/sessions"), Some(&bob)).await;
    assert_eq!(status, 200);
    assert!(html.contains("Session b1") && !html.contains("Session a1"));
    assert_eq!(get(&format!("{url}/sessions/{b}/b1"), Some(&alice)).await.0, 404);
    assert_eq!(get(&format!("{url}/sessions/{b}/b1"), Some(&bob)).await.0, 200);
    let (status, html) = get(&format!("{url}/sessions"), Some(&nobody)).await;
    assert_eq!(status, 200);
    assert!(html.contains("No sessions match."));
    dashboard.stop().await;
}

/// A user allowed in namespace A sees none of namespace B's schedules: not
/// in the list (filtered or not), not one by name, not on the pages, not in
/// the watch.
#[tokio::test(flavor = "multi_thread")]
async fn schedules_of_other_namespaces_stay_hidden() {
    let (env, client) = env().await;
    let (a, b) = (env.namespace("dash-sched-a").await.name, env.namespace("dash-sched-b").await.name);
    create_schedule(&client, &a, "nightly-a", None, None).await;
    create_schedule(
        &client,
        &b,
        "nightly-b",
        None,
        Some(json!({"nextRunTime": "2099-01-01T09:00:00Z", "active": ["nightly-b-1"],
                    "runs": [{"name": "nightly-b-1", "scheduledTime": "2026-11-24T09:00:00Z", "phase": "Running"}]})),
    )
    .await;
    let alice = user(&client, &a, "alice", true).await;
    let bob = user(&client, &b, "bob", true).await;
    let nobody = user(&client, &a, "nobody", false).await;
    let dashboard = Dashboard::start(client.clone(), Mode::Token, LogSource::Pods(client.clone())).await;
    let url = &dashboard.url;
    let (mine, theirs) = (format!("{a}/nightly-a"), format!("{b}/nightly-b"));

    for path in ["/api/v1/schedules", "/schedules", "/api/v1/schedules/watch"] {
        assert_eq!(get(&format!("{url}{path}"), None).await.0, 401, "{path} without a token");
    }
    let list = format!("{url}/api/v1/schedules");
    assert_eq!(names(&get_json(&list, Some(&alice)).await), [mine.as_str()]);
    assert_eq!(names(&get_json(&list, Some(&bob)).await), [theirs.as_str()]);
    assert_eq!(get_json(&list, Some(&nobody)).await["total"], 0);
    let filtered = get_json(&format!("{list}?namespace={b}"), Some(&alice)).await;
    assert_eq!(filtered["total"], 0, "a namespace filter does not widen access");
    let one = |ns: &str, name: &str| format!("{url}/api/v1/schedules/{ns}/{name}");
    assert_eq!(get(&one(&a, "nightly-a"), Some(&alice)).await.0, 200);
    let (status, body) = get(&one(&b, "nightly-b"), Some(&alice)).await;
    assert_eq!(status, 404, "not found, so its existence does not leak: {body}");
    assert!(!body.contains("nightly-b-1"), "{body}");
    assert_eq!(get(&one(&b, "nightly-b"), Some(&bob)).await.0, 200);
    assert_eq!(get(&one(&a, "nightly-a"), Some(&nobody)).await.0, 404);

    assert_eq!(watched(&format!("{url}/api/v1/schedules/watch"), &alice).await, [mine.as_str()]);
    assert_eq!(
        Sse::open(&format!("{url}/api/v1/schedules/watch?namespace={b}"), Some(&alice)).await.err(),
        Some(404)
    );

    let (status, html) = get(&format!("{url}/schedules"), Some(&alice)).await;
    assert_eq!(status, 200);
    assert!(html.contains("nightly-a") && !html.contains("nightly-b"), "alice's list shows only hers");
    assert_eq!(get(&format!("{url}/schedules/{b}/nightly-b"), Some(&alice)).await.0, 404);
    assert_eq!(get(&format!("{url}/schedules/{b}/nightly-b"), Some(&bob)).await.0, 200);
    let (status, html) = get(&format!("{url}/schedules"), Some(&nobody)).await;
    assert_eq!(status, 200);
    assert!(html.contains("No schedules."), "nobody sees none");
    dashboard.stop().await;
}

/// What the agent wrote is shown, never obeyed: a `javascript:` URL among the
/// result's pull requests is text, not a link; every response carries the
/// content security policy.
#[tokio::test(flavor = "multi_thread")]
async fn agent_output_never_becomes_script() {
    let (env, client) = env().await;
    let ns = env.namespace("dash-xss").await.name;
    create_session(&client, &ns, "xss", &format!("{ns}/src")).await;
    set_status(
        &client,
        &ns,
        "xss",
        json!({"phase": "Completed", "result": {"outcome": "success", "summary": "<script>alert(1)</script>",
            "pullRequests": ["javascript:alert(document.cookie)", "https://github.com/acme/app/pull/7",
                             "data:text/html,<b>x</b>"]}}),
    )
    .await;
    let dashboard = Dashboard::start(client.clone(), Mode::None, LogSource::Pods(client.clone())).await;
    let page = format!("{}/sessions/{ns}/xss", dashboard.url);
    let html = eventually("the session page", TIMEOUT, || {
        let page = page.clone();
        async move {
            let (status, body) = get(&page, None).await;
            (status == 200 && body.contains("pull/7")).then_some(body)
        }
    })
    .await;
    assert!(!html.contains("href=\"javascript:"), "a javascript: URL became a link");
    assert!(!html.contains("href=\"data:"), "a data: URL became a link");
    assert!(html.contains("<code>javascript:alert(document.cookie)</code>"), "shown as text");
    assert!(html.contains("href=\"https://github.com/acme/app/pull/7\""), "https links stay links");
    assert!(!html.contains("<script>alert(1)</script>"), "the summary is escaped");
    let response = reqwest_like_headers(&page).await;
    assert!(response.iter().any(|(k, v)| k == "content-security-policy" && v.contains("script-src 'self'")));
    assert!(response.iter().any(|(k, v)| k == "x-content-type-options" && v == "nosniff"));
    dashboard.stop().await;
}

/// The response headers of GET `url`.
async fn reqwest_like_headers(url: &str) -> Vec<(String, String)> {
    let out =
        tokio::process::Command::new("curl").args(["-sS", "-o", "/dev/null", "-D", "-", url]).output().await;
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// A follower whose access is revoked mid-stream loses the stream once the
/// cached decision expires.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_follow_ends_when_access_is_revoked() {
    let (env, client) = env().await;
    let ns = env.namespace("dash-revoke").await.name;
    let token = user(&client, &ns, "watcher", true).await;
    create_session(&client, &ns, "run", &format!("{ns}/src")).await;
    set_status(&client, &ns, "run", json!({"phase": "Running", "jobName": "run-1", "run": 1})).await;
    let runs = tempfile::tempdir().expect("runs");
    let dir = runs.path().join(&ns).join("run-1");
    std::fs::create_dir_all(&dir).expect("run dir");
    std::fs::write(dir.join("runner.log"), "{\"event\":\"text\",\"text\":\"working\"}\n").expect("log");
    let dashboard =
        Dashboard::start(client.clone(), Mode::Token, LogSource::Files(runs.path().to_owned())).await;
    let log = format!("{}/api/v1/sessions/{ns}/run/log?follow=true", dashboard.url);
    let mut follow = Sse::open(&log, Some(&token)).await.expect("follow");
    follow.until("the first line", |e| e.event == "line" && e.data.contains("working")).await;
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .delete("watcher-reader", &Default::default())
        .await
        .expect("revoke");
    let started = std::time::Instant::now();
    // The run never ends (no exit file): only the revocation can end it.
    follow.until("the stream to end", |e| e.event == "end").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(40), "{:?}", started.elapsed());
    dashboard.stop().await;
}

/// A revoked permission stops showing within a bounded time: a caller's
/// access is decided again in the background once older than the cache's
/// TTL, and never served older than three times that.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_permission_hides_the_namespace_within_the_cache_bound() {
    let (env, client) = env().await;
    let ns = env.namespace("dash-rbac-revoke").await.name;
    create_session(&client, &ns, "r1", &format!("{ns}/src")).await;
    let carol = user(&client, &ns, "carol", true).await;
    let dashboard = Dashboard::start(client.clone(), Mode::Token, LogSource::Pods(client.clone())).await;
    let url = dashboard.url.clone();
    assert_eq!(names(&get_json(&format!("{url}/api/v1/sessions"), Some(&carol)).await), [format!("{ns}/r1")]);
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .delete("carol-reader", &Default::default())
        .await
        .expect("revoke");
    let bound = acp_dashboard::auth::CACHE_TTL * 3 + std::time::Duration::from_secs(10);
    eventually("the revoked namespace hidden", bound, || async {
        (get_json(&format!("{url}/api/v1/sessions"), Some(&carol)).await["total"] == 0).then_some(())
    })
    .await;
    dashboard.stop().await;
}
