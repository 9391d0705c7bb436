//! SessionSchedules in the JSON API and the pages, against the real control
//! plane (auth `none`; who sees which schedule is tested in `rbac.rs`): the
//! list and the detail from the scheduler's status, the watch, runs linking
//! to their sessions and sessions back to their schedule, and escaping.

mod common;

use acp_api::{AgenticSession, SessionSchedule};
use acp_dashboard::auth::Mode;
use acp_dashboard::logs::LogSource;
use acp_testenv::eventually;
use common::*;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn schedules_and_their_runs_in_the_api_and_pages() {
    let (env, client) = env().await;
    let ns = env.namespace("dash-sched").await.name;
    let nightly = create_schedule(
        &client,
        &ns,
        "nightly",
        Some("Europe/Paris"),
        Some(json!({
            "observedGeneration": 1,
            "lastScheduleTime": "2026-11-24T08:00:00Z", "nextRunTime": "2099-11-25T08:00:00Z",
            "active": ["nightly-29400480"], "missedRuns": 1,
            "runs": [
                {"name": "nightly-29400480", "scheduledTime": "2026-11-24T08:00:00Z", "phase": "Running"},
                {"name": "nightly-manual-0a1b2c3d", "scheduledTime": "2026-11-23T12:00:00Z", "phase": "Completed", "triggered": true},
                {"name": "nightly-29397600", "scheduledTime": "2026-11-21T08:00:00Z", "phase": "Failed"}
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                            "message": "next run at 2099-11-25T08:00:00Z", "lastTransitionTime": "2026-11-20T08:00:00Z"}]
        })),
    )
    .await;
    create_run(&client, &nightly, "nightly-29400480").await;
    create_run(&client, &nightly, "nightly-manual-0a1b2c3d").await;
    set_status(&client, &ns, "nightly-29400480", json!({"phase": "Running"})).await;
    // nightly-29397600 is past the history limits: listed, its session gone.
    // A session carrying the label without the schedule's controller
    // reference is not taken for a run.
    create_session(&client, &ns, "lookalike", &format!("{ns}/src")).await;
    Api::<AgenticSession>::namespaced(client.clone(), &ns)
        .patch(
            "lookalike",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"ambient-code.io/schedule": "nightly"}}})),
        )
        .await
        .expect("label the lookalike");
    create_schedule(
        &client,
        &ns,
        "paused",
        None,
        Some(json!({"conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSchedule",
            "message": "<script>alert(1)</script>", "lastTransitionTime": "2026-11-20T08:00:00Z"}]})),
    )
    .await;
    let schedules: Api<SessionSchedule> = Api::namespaced(client.clone(), &ns);
    schedules
        .patch("paused", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}})))
        .await
        .expect("suspend");
    let dashboard = Dashboard::start(client.clone(), Mode::None, LogSource::Pods(client.clone())).await;
    let url = dashboard.url.clone();

    // The list, in this namespace, sorted by name.
    let list = format!("{url}/api/v1/schedules?namespace={ns}");
    let page = eventually("both schedules with their status and the suspension", TIMEOUT, || {
        let list = list.clone();
        async move {
            let page = get_json(&list, None).await;
            let ok = page["total"] == 2
                && page["items"][0]["runs"][2].is_object()
                && page["items"][1]["suspend"] == true;
            ok.then_some(page)
        }
    })
    .await;
    let nightly_json = &page["items"][0];
    assert_eq!(
        *nightly_json,
        json!({
            "namespace": ns, "name": "nightly", "schedule": "0 9 * * MON-FRI", "timeZone": "Europe/Paris",
            "suspend": false, "concurrencyPolicy": "Forbid",
            "lastScheduleTime": "2026-11-24T08:00:00Z", "nextRunTime": "2099-11-25T08:00:00Z",
            "active": ["nightly-29400480"], "missedRuns": 1,
            "runs": [
                {"name": "nightly-29400480", "scheduledTime": "2026-11-24T08:00:00Z", "phase": "Running", "triggered": false},
                {"name": "nightly-manual-0a1b2c3d", "scheduledTime": "2026-11-23T12:00:00Z", "phase": "Completed", "triggered": true},
                {"name": "nightly-29397600", "scheduledTime": "2026-11-21T08:00:00Z", "phase": "Failed", "triggered": false}
            ],
            "ready": {"status": "True", "reason": "Succeeded", "message": "next run at 2099-11-25T08:00:00Z"}
        })
    );
    let paused = &page["items"][1];
    assert_eq!((paused["name"].as_str(), paused["timeZone"].as_str()), (Some("paused"), Some("UTC")));
    assert!(paused.get("nextRunTime").is_none() && paused["runs"] == json!([]), "{paused}");
    let all = get_json(&format!("{url}/api/v1/schedules"), None).await;
    assert!(all["total"].as_u64() >= Some(2), "without a filter, every namespace: {all}");
    let other = get_json(&format!("{url}/api/v1/schedules?namespace={ns}-other"), None).await;
    assert_eq!(other["total"], 0);

    // One schedule: the same view as in the list; another name is not found.
    let one = get_json(&format!("{url}/api/v1/schedules/{ns}/nightly"), None).await;
    assert_eq!(one, *nightly_json);
    let (status, body) = get(&format!("{url}/api/v1/schedules/{ns}/nope"), None).await;
    assert_eq!(status, 404, "{body}");

    // The watch: the objects, `synced`, then a status the scheduler writes.
    let mut watch =
        Sse::open(&format!("{url}/api/v1/schedules/watch?namespace={ns}"), None).await.expect("watch");
    let mut initial = Vec::new();
    loop {
        let event = watch.until("an initial event", |_| true).await;
        if event.event == "synced" {
            break;
        }
        let object: serde_json::Value = serde_json::from_str(&event.data).expect("JSON");
        assert_eq!(object["kind"], "SessionSchedule");
        initial.push(object["metadata"]["name"].as_str().unwrap_or_default().to_owned());
    }
    initial.sort();
    assert_eq!(initial, ["nightly", "paused"]);
    // Playing the scheduler again: one more missed run.
    schedules
        .patch_status("nightly", &PatchParams::default(), &Patch::Merge(json!({"status": {"missedRuns": 2}})))
        .await
        .expect("scheduler status");
    watch
        .until("the new status", |e| {
            e.event == "upsert"
                && e.data.contains("\"name\":\"nightly\"")
                && e.data.contains("\"missedRuns\":2")
        })
        .await;

    // The list page.
    let (status, html) = get(&format!("{url}/schedules?namespace={ns}"), None).await;
    assert_eq!(status, 200, "{html}");
    for want in [
        &format!("href=\"/schedules/{ns}/nightly\""),
        "<code>0 9 * * MON-FRI</code><br><small>Europe/Paris</small>",
        "<small>UTC</small>",
        "Suspended",
        "data-phase=\"Running\"",
        "aria-current=\"page\">Schedules</a>",
    ] {
        assert!(html.contains(want), "list page lacks {want:?}");
    }
    assert!(html.contains("<td>suspended</td>"), "a suspended schedule has no next run");

    // The detail page: runs link to their sessions while these exist.
    let (status, html) = get(&format!("{url}/schedules/{ns}/nightly"), None).await;
    assert_eq!(status, 200, "{html}");
    for want in [
        &format!("<a href=\"/sessions/{ns}/nightly-29400480\">nightly-29400480</a>"),
        &format!("<a href=\"/sessions/{ns}/nightly-manual-0a1b2c3d\">nightly-manual-0a1b2c3d</a>"),
        "nightly-29397600 <small>(deleted)</small>",
        "<td>trigger</td>",
        "data-phase=\"Failed\"",
        "Europe/Paris",
        "initialPrompt: triage for nightly",
    ] {
        assert!(html.contains(want), "detail page lacks {want:?}");
    }
    assert!(html.contains("<dd id=\"missed\">2</dd>"), "the watch's change is in the cache");
    let (status, html) = get(&format!("{url}/schedules/{ns}/paused"), None).await;
    assert_eq!(status, 200);
    assert!(!html.contains("<script>alert(1)"), "the scheduler's message is escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(get(&format!("{url}/schedules/{ns}/nope"), None).await.0, 404);

    // A run's page names its schedule; a session only labelled does not.
    let (status, html) = get(&format!("{url}/sessions/{ns}/nightly-29400480"), None).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("Run of schedule <a href=\"/schedules/{ns}/nightly\">nightly</a>")),
        "the run links to its schedule"
    );
    let (status, html) = get(&format!("{url}/sessions/{ns}/lookalike"), None).await;
    assert_eq!(status, 200);
    assert!(!html.contains("Run of schedule"), "a label alone does not make a run");
    dashboard.stop().await;
}
