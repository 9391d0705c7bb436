//! The JSON API, pages, log and operations endpoints against the real
//! control plane (auth `none`; RBAC is tested in `rbac.rs`).

mod common;

use acp_api::SessionSource;
use acp_dashboard::auth::Mode;
use acp_dashboard::logs::LogSource;
use acp_testenv::eventually;
use common::*;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn create_source(client: &kube::Client, ns: &str) {
    let api: Api<SessionSource> = Api::namespaced(client.clone(), ns);
    let source: SessionSource = serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
        "metadata": {"name": "src", "namespace": ns},
        "spec": {"url": "https://github.com/acme/sessions", "ref": {"branch": "main"}, "path": "sessions"}
    }))
    .expect("a valid source");
    api.create(&PostParams::default(), &source).await.expect("source created");
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "False", "reason": "ValidationFailed",
                        "message": "1 file has errors", "lastTransitionTime": "2026-11-24T10:00:00Z"}],
        "lastAppliedRevision": "main@sha1:0123456789abcdef0123456789abcdef01234567",
        "inventory": [{"kind": "AgenticSession", "namespace": ns, "name": "s1", "path": "sessions/s1.yaml", "revision": "main@sha1:0123456789abcdef0123456789abcdef01234567"}],
        "errors": [{"path": "sessions/broken.yaml", "line": 6, "column": 3, "message": "unknown field `promt`"}],
        "history": [{"revision": "main@sha1:0123456789abcdef0123456789abcdef01234567", "startedAt": "2026-11-24T10:00:00Z",
                     "durationMs": 420, "applied": 5, "unchanged": 0, "pruned": 0, "errors": 1}]
    }});
    api.patch_status("src", &PatchParams::default(), &Patch::Merge(status)).await.expect("source status");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_pages_logs_and_watches_from_the_caches() {
    let (env, client) = env().await;
    let ns = env.namespace("dash-api").await.name;
    let runs = tempfile::tempdir().expect("tempdir");
    let dashboard =
        Dashboard::start(client.clone(), Mode::None, LogSource::Files(runs.path().to_owned())).await;
    let url = dashboard.url.clone();
    let source = format!("{ns}/src");
    create_source(&client, &ns).await;
    create_schedule(&client, &ns, "nightly", None, None).await;
    for name in ["s1", "s2", "s3", "s4", "s5"] {
        create_session(&client, &ns, name, &source).await;
    }
    set_status(&client, &ns, "s1", json!({
        "phase": "Completed", "startTime": "2026-11-24T10:00:00Z", "completionTime": "2026-11-24T10:02:00Z",
        "conditions": [
            {"type": "JobCreated", "status": "True", "reason": "Succeeded", "lastTransitionTime": "2026-11-24T10:00:00Z"},
            {"type": "Completed", "status": "True", "reason": "Succeeded", "message": "the agent finished", "lastTransitionTime": "2026-11-24T10:02:00Z"}],
        "result": {"outcome": "success", "summary": "Fixed the flaky test in ci.yml", "numTurns": 7, "totalCostUsd": 0.0421,
                   "durationMs": 120000, "usage": {"inputTokens": 1200, "outputTokens": 340, "cacheReadInputTokens": 0, "cacheCreationInputTokens": 0},
                   "pushedBranches": [{"repo": "https://github.com/acme/app", "branch": "ambient/s1", "commit": "fedcba9876543210fedcba9876543210fedcba98"}],
                   "pullRequests": ["https://github.com/acme/app/pull/9"]}
    })).await;
    set_status(&client, &ns, "s2", json!({"phase": "Running", "jobName": "s2-1", "run": 1})).await;
    set_status(&client, &ns, "s3", json!({"phase": "Failed", "message": "Timeout after 300 s"})).await;

    // Lists come from the cache once it caught up with the writes.
    let list = format!("{url}/api/v1/sessions?namespace={ns}");
    eventually("the cache to hold five sessions with statuses", TIMEOUT, || {
        let list = list.clone();
        async move {
            let page = get_json(&list, None).await;
            let failed = page["items"].as_array()?.iter().filter(|r| r["phase"] == "Failed").count();
            (page["total"] == 5 && failed == 1).then_some(())
        }
    })
    .await;
    let page = get_json(&format!("{list}&phase=Completed"), None).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["name"], "s1");
    assert_eq!(page["items"][0]["numTurns"], 7);
    assert_eq!(page["items"][0]["source"], source.as_str());
    let page = get_json(&format!("{list}&sort=name&order=asc&limit=2&page=3"), None).await;
    assert_eq!((page["total"].as_u64(), page["items"][0]["name"].as_str()), (Some(5), Some("s5")));
    let page = get_json(&format!("{list}&q=session%20S4"), None).await;
    assert_eq!(page["total"], 1, "search: {page}");
    let page = get_json(&format!("{url}/api/v1/sessions?source={ns}%2Fsrc&phase=Running"), None).await;
    assert_eq!(page["items"][0]["name"], "s2");
    let (status, body) = get(&format!("{list}&sort=size"), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"error\""), "{body}");

    let s1 = get_json(&format!("{url}/api/v1/sessions/{ns}/s1"), None).await;
    assert_eq!(s1["status"]["result"]["summary"], "Fixed the flaky test in ci.yml");
    assert!(s1["metadata"].get("managedFields").is_none(), "managedFields are not cached");
    let (status, body) = get(&format!("{url}/api/v1/sessions/{ns}/nope"), None).await;
    assert_eq!(status, 404, "{body}");

    let sources = get_json(&format!("{url}/api/v1/sources"), None).await;
    let ours =
        sources["items"].as_array().expect("items").iter().find(|s| s["namespace"] == ns.as_str()).cloned();
    let ours = ours.expect("our source is listed");
    assert_eq!((ours["sessions"].as_u64(), ours["errors"].as_u64()), (Some(1), Some(1)));
    assert_eq!(ours["ready"]["reason"], "ValidationFailed");
    let src = get_json(&format!("{url}/api/v1/sources/{ns}/src"), None).await;
    assert_eq!(src["spec"]["url"], "https://github.com/acme/sessions");
    let schedules = format!("{url}/api/v1/schedules?namespace={ns}");
    eventually("the cache to hold the schedule", TIMEOUT, || {
        let schedules = schedules.clone();
        async move { (get_json(&schedules, None).await["total"] == 1).then_some(()) }
    })
    .await;

    // The runner's output, from the process executor's run directory.
    let run_dir = runs.path().join(&ns).join("s2-1");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    std::fs::write(
        run_dir.join("runner.log"),
        "{\"event\":\"step\",\"step\":\"clone\",\"message\":\"cloning 1 repository\"}\n",
    )
    .expect("log");
    let (status, text) = get(&format!("{url}/api/v1/sessions/{ns}/s2/log?format=text"), None).await;
    assert_eq!((status, text.as_str()), (200, "[step] clone cloning 1 repository"));
    let (status, _) = get(&format!("{url}/api/v1/sessions/{ns}/s4/log"), None).await;
    assert_eq!(status, 404, "no run yet");
    let mut log =
        Sse::open(&format!("{url}/api/v1/sessions/{ns}/s2/log?follow=true"), None).await.expect("log stream");
    let first = log.until("the first line", |e| e.event == "line").await;
    assert!(first.data.contains("cloning"), "{first:?}");
    let mut file = std::fs::OpenOptions::new().append(true).open(run_dir.join("runner.log")).expect("open");
    std::io::Write::write_all(&mut file, b"{\"event\":\"text\",\"text\":\"all tests pass\"}\n")
        .expect("append");
    let next = log.until("the appended line", |e| e.event == "line").await;
    assert!(next.data.contains("all tests pass"), "{next:?}");
    std::fs::write(run_dir.join("exit"), "0").expect("exit");
    log.until("the end of the run", |e| e.event == "end").await;

    // Watches: the initial object, `synced`, then changes as they happen.
    let mut watch =
        Sse::open(&format!("{url}/api/v1/sessions/watch?namespace={ns}"), None).await.expect("watch");
    let mut initial = Vec::new();
    loop {
        let event = watch.until("an initial event", |_| true).await;
        if event.event == "synced" {
            break;
        }
        assert_eq!(event.event, "upsert");
        let object: serde_json::Value = serde_json::from_str(&event.data).expect("JSON");
        initial.push(object["metadata"]["name"].as_str().unwrap_or_default().to_owned());
    }
    initial.sort();
    assert_eq!(initial, ["s1", "s2", "s3", "s4", "s5"]);
    set_status(&client, &ns, "s2", json!({"phase": "Completed"})).await;
    watch
        .until("s2's phase change", |e| {
            e.event == "upsert"
                && e.data.contains("\"name\":\"s2\"")
                && e.data.contains("\"phase\":\"Completed\"")
        })
        .await;
    let sessions: Api<acp_api::AgenticSession> = Api::namespaced(client.clone(), &ns);
    sessions.delete("s3", &DeleteParams::default()).await.expect("delete");
    watch.until("s3's deletion", |e| e.event == "delete" && e.data.contains("\"name\":\"s3\"")).await;

    // Pages, rendered from the same caches.
    let (status, html) = get(&format!("{url}/sessions?namespace={ns}"), None).await;
    assert_eq!(status, 200, "{html}");
    for want in ["Session s1", "Session s5", "<main id=\"main\">", "Test banner", "id=\"total\">4<"] {
        assert!(html.contains(want), "list page lacks {want:?}");
    }
    assert!(!html.contains("Session s3"), "deleted sessions leave the list");
    let (status, html) = get(&format!("{url}/sessions/{ns}/s1"), None).await;
    assert_eq!(status, 200);
    for want in [
        "Fixed the flaky test in ci.yml",
        "$0.0421",
        "2 min 0 s",
        "https://github.com/acme/app/tree/ambient/s1",
        "https://github.com/acme/app/pull/9",
        "the agent finished",
        "initialPrompt: work on s1",
    ] {
        assert!(html.contains(want), "detail page lacks {want:?}");
    }
    let (status, _) = get(&format!("{url}/sessions/{ns}/nope"), None).await;
    assert_eq!(status, 404);
    let (status, html) = get(&format!("{url}/sources/{ns}/src"), None).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("sessions/broken.yaml:6:3") && html.contains("unknown field `promt`"),
        "source page shows file errors"
    );

    // Every path of the OpenAPI document is served.
    let doc = get_json(&format!("{url}/api/v1/openapi.json"), None).await;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 11, "sessions, sources and schedules: {}", paths.len());
    for path in paths.keys() {
        let concrete = path.replace("{namespace}", &ns).replace(
            "{name}",
            if path.contains("sources") {
                "src"
            } else if path.contains("schedules") {
                "nightly"
            } else {
                "s2"
            },
        );
        let concrete = format!("{url}{concrete}?initial=false&namespace={ns}");
        if path.ends_with("/watch") {
            assert!(Sse::open(&concrete, None).await.is_ok(), "{path}");
        } else {
            let (status, body) = get(&concrete, None).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
    }

    // Metrics are on the operations port only, never next to the pages.
    assert_eq!(get(&format!("{url}/metrics"), None).await.0, 404);
    let (status, metrics) = get(&format!("{}/metrics", dashboard.ops_url), None).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("acp_dashboard_requests_total{route=\"/api/v1/sessions\",code=\"2xx\"}"),
        "{metrics}"
    );
    assert_eq!(get(&format!("{url}/healthz"), None).await.0, 200);

    // Shutdown ends open watches instead of waiting for them.
    dashboard.stop().await;
    assert!(watch.next().await.is_none(), "the watch ended with the server");
}

/// A real pod on the node prints runner progress lines; the test makes it
/// print more (and end) with `kubectl exec`, so following the log goes
/// through the API server to the kubelet both ways, as on a cluster.
#[tokio::test(flavor = "multi_thread")]
async fn runner_output_streams_from_the_pod_log_through_the_api_server() {
    let (env, client) = env().await;
    let ns = env.namespace("dash-podlog").await.name;
    let script = r#"echo '{"event":"step","step":"clone","message":"cloning 1 repository"}'
until [ -e /tmp/next ]; do sleep 0.1; done
echo '{"event":"text","text":"tests pass"}'
until [ -e /tmp/end ]; do sleep 0.1; done"#;
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "run-1-x7k2p", "labels": {"batch.kubernetes.io/job-name": "run-1"}},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": false, "containers": [{
            "name": "runner", "image": env.node().runner_image, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script]
        }]}
    }))
    .expect("pod");
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod).await.expect("pod created");
    create_session(&client, &ns, "run", &format!("{ns}/src")).await;
    set_status(&client, &ns, "run", json!({"phase": "Running", "jobName": "run-1", "run": 1})).await;
    let dashboard = Dashboard::start(client.clone(), Mode::None, LogSource::Pods(client.clone())).await;
    let url = &dashboard.url;
    let log = format!("{url}/api/v1/sessions/{ns}/run/log");
    let text =
        eventually("the pod's first line through the dashboard", std::time::Duration::from_secs(120), || {
            let log = log.clone();
            async move {
                let (status, text) = get(&format!("{log}?format=text"), None).await;
                (status == 200 && !text.is_empty()).then_some(text)
            }
        })
        .await;
    assert_eq!(text, "[step] clone cloning 1 repository");
    let exec = |file: &str| {
        let out = env
            .kubectl()
            .args(["exec", "-n", &ns, "run-1-x7k2p", "-c", "runner", "--", "touch", file])
            .output()
            .expect("kubectl exec");
        assert!(out.status.success(), "kubectl exec: {}", String::from_utf8_lossy(&out.stderr));
    };
    let mut follow = Sse::open(&format!("{log}?follow=true"), None).await.expect("follow");
    follow.until("the first line", |e| e.event == "line" && e.data.contains("cloning")).await;
    exec("/tmp/next");
    follow.until("the new line", |e| e.event == "line" && e.data.contains("tests pass")).await;
    exec("/tmp/end");
    follow.until("the end of the log", |e| e.event == "end").await;
    dashboard.stop().await;
}
