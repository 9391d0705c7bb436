use std::sync::Arc;

use acp_api::AgenticSession;
use serde_json::json;

use super::*;

fn session(ns: &str, name: &str, created: &str, phase: &str, extra: serde_json::Value) -> AgenticSession {
    let mut value = json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
        "metadata": {"namespace": ns, "name": name, "creationTimestamp": created,
            "annotations": {"ambient-code.io/source": "acp/src", "ambient-code.io/source-path": format!("sessions/{name}.yaml")},
            "labels": {"ambient-code.io/source-commit": "0123456789abcdef0123456789abcdef01234567"}},
        "spec": {"initialPrompt": "x", "displayName": format!("Title of {name}")},
        "status": {"phase": phase}
    });
    merge(&mut value, extra);
    serde_json::from_value(value).expect("a valid session")
}

pub(crate) fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn rows() -> Vec<Arc<SessionRow>> {
    let mut rows: Vec<Arc<SessionRow>> = (0..30)
        .map(|i| {
            let ns = if i % 3 == 0 { "team-a" } else { "team-b" };
            let phase = ["Pending", "Running", "Completed", "Failed"][i % 4];
            let created = format!("2026-11-01T00:{i:02}:00Z");
            let extra = json!({"status": {"result": {"totalCostUsd": (i as f64) / 100.0, "durationMs": 1000 * (30 - i)}}});
            Arc::new(SessionRow::new(&session(ns, &format!("s{i:02}"), &created, phase, extra)))
        })
        .collect();
    sort_default(&mut rows);
    rows
}

fn names(page: &Page<Arc<SessionRow>>) -> Vec<&str> {
    page.items.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn row_reads_git_sync_stamps_and_result() {
    let s = session(
        "team-a",
        "fix",
        "2026-11-01T00:00:00Z",
        "Completed",
        json!({"status": {"startTime": "2026-11-01T00:01:00Z", "completionTime": "2026-11-01T00:03:30Z", "result": {"numTurns": 4}}}),
    );
    let row = SessionRow::new(&s);
    assert_eq!(row.source.as_deref(), Some("acp/src"));
    assert_eq!(row.path.as_deref(), Some("sessions/fix.yaml"));
    assert_eq!(row.phase, SessionPhase::Completed);
    assert_eq!(row.duration_ms, Some(150_000), "from the timestamps when the result has none");
    assert_eq!(row.num_turns, Some(4));
    let mut bare = s.clone();
    bare.status = None;
    assert_eq!(SessionRow::new(&bare).phase, SessionPhase::Pending);
}

#[test]
fn default_order_is_newest_first_and_pages() {
    let index = Index::new(rows());
    let query = SessionQuery { limit: Some(10), ..Default::default() };
    let page = select(&index, &query, |_| true);
    assert_eq!(page.total, 30);
    assert_eq!(page.pages(), 3);
    assert_eq!(names(&page)[..3], ["s29", "s28", "s27"]);
    let third = select(&index, &SessionQuery { page: Some(3), ..query.clone() }, |_| true);
    assert_eq!(names(&third).last(), Some(&"s00"));
    let beyond = select(&index, &SessionQuery { page: Some(9), ..query }, |_| true);
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 30);
}

#[test]
fn filters_combine_and_respect_visibility() {
    let index = Index::new(rows());
    let query = SessionQuery {
        namespace: Some("team-a".into()),
        phase: Some("completed".into()),
        ..Default::default()
    };
    let page = select(&index, &query, |_| true);
    assert!(page.items.iter().all(|r| r.namespace == "team-a" && r.phase == SessionPhase::Completed));
    assert_eq!(names(&page), ["s18", "s06"]);
    let hidden = select(&index, &SessionQuery::default(), |ns| ns != "team-a");
    assert_eq!(hidden.total, 20);
    let search = select(&index, &SessionQuery { q: Some("TITLE s1".into()), ..Default::default() }, |_| true);
    assert_eq!(search.total, 10, "every word must match, case-insensitively");
    let commit = SessionQuery { commit: Some("0123456".into()), ..Default::default() };
    assert_eq!(select(&index, &commit, |_| true).total, 30);
    let short = SessionQuery { commit: Some("0123".into()), ..Default::default() };
    assert_eq!(select(&index, &short, |_| true).total, 0, "a prefix shorter than 7 matches nothing");
    let source = SessionQuery { source: Some("other/src".into()), ..Default::default() };
    assert_eq!(select(&index, &source, |_| true).total, 0);
}

#[test]
fn sorts_by_any_key_both_ways() {
    let index = Index::new(rows());
    let cost = SessionQuery { sort: Some(SortKey::Cost), limit: Some(2), ..Default::default() };
    assert_eq!(names(&select(&index, &cost, |_| true)), ["s29", "s28"]);
    let cheap = SessionQuery { order: Some(Order::Asc), ..cost };
    assert_eq!(names(&select(&index, &cheap, |_| true)), ["s00", "s01"]);
    let name = SessionQuery { sort: Some(SortKey::Name), limit: Some(1), ..Default::default() };
    assert_eq!(names(&select(&index, &name, |_| true)), ["s00"]);
    let phase = SessionQuery { sort: Some(SortKey::Phase), ..Default::default() };
    let page = select(&index, &phase, |_| true);
    assert_eq!(page.items.first().map(|r| r.phase), Some(SessionPhase::Pending));
    assert_eq!(page.items.last().map(|r| r.phase), Some(SessionPhase::Failed));
    let duration = SessionQuery { sort: Some(SortKey::Duration), limit: Some(1), ..Default::default() };
    assert_eq!(names(&select(&index, &duration, |_| true)), ["s00"], "longest first");
}

#[test]
fn query_strings_round_trip_and_empty_means_any() {
    let query: SessionQuery =
        serde_json::from_value(json!({"phase": "", "namespace": "team-a", "page": "2", "sort": "cost"}))
            .expect("parses");
    assert_eq!(query.phase, None);
    assert_eq!(query.page, Some(2));
    assert_eq!(query.sort, Some(SortKey::Cost));
    assert_eq!(query.with_page(3), "namespace=team-a&page=3&sort=cost");
    let q = SessionQuery { q: Some("a b/c".into()), ..Default::default() };
    assert_eq!(q.with_page(1), "page=1&q=a%20b%2Fc");
    assert!(serde_json::from_value::<SessionQuery>(json!({"sort": "size"})).is_err());
    assert_eq!(SessionQuery { limit: Some(100_000), ..Default::default() }.limit(), MAX_LIMIT);
}

#[test]
fn web_links_for_known_forges_only() {
    for remote in
        ["https://github.com/acme/app.git", "git@github.com:acme/app.git", "ssh://git@github.com:22/acme/app"]
    {
        assert_eq!(web_url(remote).as_deref(), Some("https://github.com/acme/app"), "{remote}");
    }
    assert_eq!(
        web_url("https://gitlab.example.com/g/sub/app").as_deref(),
        Some("https://gitlab.example.com/g/sub/app")
    );
    assert_eq!(web_url("http://127.0.0.1:8080/git/app.git"), None);
    assert_eq!(web_url("file:///srv/git/app.git"), None);
    assert_eq!(web_url("/srv/git/app.git"), None);
    assert_eq!(
        file_url("https://github.com/a/b", "abc", "/s/x.yaml"),
        "https://github.com/a/b/blob/abc/s/x.yaml"
    );
    assert_eq!(commit_url("https://gitlab.com/a/b", "abc"), "https://gitlab.com/a/b/-/commit/abc");
    assert_eq!(branch_url("https://github.com/a/b", "ambient/x"), "https://github.com/a/b/tree/ambient/x");
}

#[test]
fn links_of_a_session() {
    let mut s = session("team-a", "fix", "2026-11-01T00:00:00Z", "Running", json!({}));
    let source: acp_api::SessionSource = serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
        "metadata": {"namespace": "acp", "name": "src"},
        "spec": {"url": "https://github.com/acme/sessions"}
    }))
    .expect("a valid source");
    s.metadata.annotations.get_or_insert_default().insert(
        acp_api::constants::annotations::STATUS_BOT_STATE.into(),
        r#"{"pull": 42, "comment": 7}"#.into(),
    );
    let links = links(&s, Some(&source));
    let sha = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(links.file, Some(format!("https://github.com/acme/sessions/blob/{sha}/sessions/fix.yaml")));
    assert_eq!(links.commit, Some(format!("https://github.com/acme/sessions/commit/{sha}")));
    assert_eq!(links.pull_request.as_deref(), Some("https://github.com/acme/sessions/pull/42"));
    assert_eq!(super::links(&s, None), Links::default());
    // A source fetching through a mirror links to the GitHub repository it
    // reports to; with neither, there are no links.
    let mirrored: acp_api::SessionSource = serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
        "metadata": {"namespace": "acp", "name": "src"},
        "spec": {"url": "http://10.0.0.5:8080/mirror/sessions.git", "github": {"repository": "acme/sessions"}}
    }))
    .expect("a valid source");
    assert_eq!(
        super::links(&s, Some(&mirrored)).commit,
        Some(format!("https://github.com/acme/sessions/commit/{sha}"))
    );
    let plain: acp_api::SessionSource = serde_json::from_value(json!({
        "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
        "metadata": {"namespace": "acp", "name": "src"},
        "spec": {"url": "http://10.0.0.5:8080/mirror/sessions.git"}
    }))
    .expect("a valid source");
    assert_eq!(super::links(&s, Some(&plain)), Links::default());
}

#[test]
fn people_formats() {
    assert_eq!(human_duration(850), "850 ms");
    assert_eq!(human_duration(42_000), "42 s");
    assert_eq!(human_duration(185_000), "3 min 5 s");
    assert_eq!(human_duration(7_440_000), "2 h 4 min");
    let now: Timestamp = "2026-11-24T12:00:00Z".parse().expect("time");
    let at = |s: &str| s.parse::<Timestamp>().expect("time");
    assert_eq!(ago(at("2026-11-24T11:59:58Z"), now), "just now");
    assert_eq!(ago(at("2026-11-24T11:55:00Z"), now), "5 min ago");
    assert_eq!(ago(at("2026-11-22T12:00:00Z"), now), "2 d ago");
    assert_eq!(short_revision("main@sha1:0123456789abcdef0123"), "main@0123456789ab");
}

#[test]
fn an_unfiltered_page_counts_per_namespace_and_agrees_with_a_full_scan() {
    let index = Index::new(rows());
    let everyone: fn(&str) -> bool = |_| true;
    let not_a: fn(&str) -> bool = |ns| ns != "team-a";
    for visible in [everyone, not_a] {
        for namespace in [None, Some("team-a"), Some("team-b"), Some("nobody")] {
            for page in [1, 2, 4] {
                let query = SessionQuery {
                    namespace: namespace.map(str::to_owned),
                    limit: Some(7),
                    page: Some(page),
                    ..Default::default()
                };
                let fast = select(&index, &query, visible);
                let all: Vec<&Arc<SessionRow>> = index
                    .rows
                    .iter()
                    .filter(|r| visible(&r.namespace) && namespace.is_none_or(|ns| r.namespace == ns))
                    .collect();
                let expected: Vec<&str> =
                    all.iter().skip((page - 1) * 7).take(7).map(|r| r.name.as_str()).collect();
                assert_eq!((fast.total, names(&fast)), (all.len(), expected), "{namespace:?} page {page}");
            }
        }
    }
}
