//! The dashboard over what the other components really wrote: git-sync's
//! provenance (source, path, the commit that last changed each file), the
//! operator's status and run log (process executor, real runner and CLI
//! against a scripted model), the status bot's pull request (fake GitHub,
//! playing GitHub). No fixture writes any of it. The agent's output is
//! hostile, and stays text in the page.

mod common;

use std::sync::Arc;
use std::time::Duration;

use acp_api::session::SessionPhase;
use acp_testenv::eventually;
use acp_testenv::model::{Responder, Step};
use common::{Component, REPO, Stack, session};

const HOSTILE: &str = "<img src=x onerror=alert(1)><script>alert(2)</script> done";

fn get(url: &str) -> Option<String> {
    acp_testenv::proc::curl(url, &[])
}

fn json(url: &str) -> serde_json::Value {
    serde_json::from_str(&get(url).unwrap_or_else(|| panic!("GET {url}"))).expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_what_git_sync_the_operator_and_the_status_bot_wrote() {
    let responder: Responder = Arc::new(|body: &serde_json::Value| {
        if body.to_string().contains("task hostile") { Step::text(HOSTILE) } else { Step::text("plain done") }
    });
    let mut stack = Stack::new("dash-chain", responder).await;
    let ns = stack.ns.name.clone();
    let older = stack.commit(&[("sessions/older.yaml", Some(&session("older", "task older")))], "older");
    let head = stack.commit(
        &[
            ("sessions/hostile.yaml", Some(&session("hostile", "task hostile"))),
            ("sessions/plain.yaml", Some(&session("plain", "task plain"))),
        ],
        "hostile and plain",
    );
    stack.github.link(REPO, &head, 7);
    stack.start_all();
    stack.create_source().await;
    for name in ["older", "hostile", "plain"] {
        stack
            .wait_session(name, "Completed", Duration::from_secs(120), |s| {
                s.status.as_ref().and_then(|st| st.phase) == Some(SessionPhase::Completed)
            })
            .await;
    }
    let url = stack.start_dashboard().await;

    // The commit filter selects on git-sync's label: a prefix of the commit.
    let list = |commit: &str| json(&format!("{url}/api/v1/sessions?namespace={ns}&commit={}", &commit[..12]));
    let page = list(&head);
    let mut names: Vec<&str> =
        page["items"].as_array().expect("items").iter().filter_map(|r| r["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["hostile", "plain"], "{page}");
    assert_eq!(page["items"][0]["commit"], head.as_str());
    assert_eq!(list(&older)["total"], 1);

    // The agent's words round-trip as data…
    let detail = json(&format!("{url}/api/v1/sessions/{ns}/hostile"));
    assert_eq!(detail["status"]["result"]["summary"], HOSTILE);
    // …and stay text in the page, next to links built from git-sync's
    // provenance and the status bot's pull request.
    let html = eventually("the page with the bot's pull request link", Duration::from_secs(60), || async {
        get(&format!("{url}/sessions/{ns}/hostile")).filter(|h| h.contains("/pull/7"))
    })
    .await;
    assert!(!html.contains("<img src=x"), "the agent's markup is escaped");
    assert!(!html.contains("<script>alert(2)"), "the agent's script is escaped");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;") || html.contains("&lt;img"), "{html}");
    assert!(html.contains(&format!("/commit/{head}")), "commit link from git-sync's label");
    assert!(html.contains("sessions/hostile.yaml"), "file link from git-sync's path");

    // The run log, as the runner wrote it.
    let log = get(&format!("{url}/api/v1/sessions/{ns}/plain/log?format=text")).expect("log");
    assert!(log.contains("plain done"), "{log}");
    stack.kill(Component::Dashboard, "dashboard");
}
