//! What a follow-up's run continues (pure): the parent session's Claude Code
//! conversation id, the commits its turn ended at, and the thread's earlier
//! turns, read from the session cache when the run is started. Where the
//! parent's transcript is (its workspace) depends on the executor and is
//! filled in by the caller.

use std::collections::BTreeMap;
use std::sync::Arc;

use acp_api::AgenticSession;
use acp_api::constants::{annotations, labels};
use acp_api::resume::{MAX_TURNS, Resume, Turn};
use kube::ResourceExt as _;

/// The session `session` continues, when it names one (not itself).
pub fn parent_of(session: &AgenticSession) -> Option<&str> {
    let name = session.metadata.name.as_deref().unwrap_or_default();
    session.annotations().get(annotations::PARENT_SESSION).map(String::as_str).filter(|p| *p != name)
}

/// Whether `session` is in a cycle of parent links (hand-made ones; acp's
/// own links always form a chain) and goes first in it: the cycle's
/// smallest name runs, the others wait for their parents as usual, so a
/// cycle never waits forever and never runs all at once.
pub fn first_in_cycle(
    session: &AgenticSession,
    lookup: &dyn Fn(&str) -> Option<Arc<AgenticSession>>,
) -> bool {
    let me = session.name_any();
    let mut seen: Vec<String> = vec![me.clone()];
    let mut at = parent_of(session).map(str::to_owned);
    while let Some(name) = at {
        if name == me {
            return seen.iter().min() == Some(&me);
        }
        if seen.contains(&name) || seen.len() > 100 {
            // A cycle further up, without this session: not its to break.
            return false;
        }
        at = lookup(&name).and_then(|s| parent_of(&s).map(str::to_owned));
        seen.push(name);
    }
    false
}

/// Whether `a` and `b` were applied by the same SessionSource (or both by
/// none): a thread never crosses sources, so a manifest in one source's
/// repository cannot name another source's session as its parent to read
/// that session's conversation or workspace.
fn same_source(a: &AgenticSession, b: &AgenticSession) -> bool {
    [labels::SOURCE_NAMESPACE, labels::SOURCE_NAME]
        .iter()
        .all(|key| a.labels().get(*key) == b.labels().get(*key))
}

/// What `session` continues, looking sessions of its namespace up with
/// `lookup`, and the earlier turns found, nearest first; `None` for a
/// session that starts a thread. Turns applied by another source than
/// `session`'s are not part of its thread.
pub fn of(
    session: &AgenticSession,
    lookup: &dyn Fn(&str) -> Option<Arc<AgenticSession>>,
) -> Option<(Resume, Vec<Arc<AgenticSession>>)> {
    let parent_name = parent_of(session)?;
    let mut resume = Resume { parent: parent_name.to_owned(), ..Resume::default() };
    let Some(parent) = lookup(parent_name).filter(|p| same_source(session, p)) else {
        return Some((resume, Vec::new()));
    };
    let result = parent.status.as_ref().and_then(|s| s.result.as_ref());
    resume.session_id = conversation(&parent);
    let head = parent.annotations().get(annotations::PULL_REQUEST_HEAD);
    resume.since = parent
        .spec
        .repos
        .iter()
        .filter_map(|repo| {
            let pushed = result
                .and_then(|r| r.pushed_branches.iter().rev().find(|p| p.repo == repo.url))
                .map(|p| p.commit.clone());
            pushed.or_else(|| head.cloned()).map(|commit| (repo.url.clone(), commit))
        })
        .collect::<BTreeMap<_, _>>();

    // The thread's earlier turns, nearest first, each visited once.
    let mut chain: Vec<Arc<AgenticSession>> = Vec::new();
    let mut seen = vec![session.name_any()];
    let mut at = Some(parent);
    while let Some(turn) = at.take().filter(|_| chain.len() < MAX_TURNS) {
        let name = turn.name_any();
        if seen.contains(&name) {
            break;
        }
        at = parent_of(&turn).and_then(lookup).filter(|p| same_source(session, p));
        seen.push(name);
        chain.push(turn);
    }
    resume.turns = chain.iter().rev().map(|t| Turn { session: t.name_any(), summary: summary(t) }).collect();
    Some((resume, chain))
}

/// The conversation id `session` recorded, if it is a valid one.
fn conversation(session: &AgenticSession) -> Option<String> {
    let status = session.status.as_ref();
    status
        .and_then(|s| s.sdk_session_id.clone())
        .or_else(|| status.and_then(|s| s.result.as_ref()).and_then(|r| r.sdk_session_id.clone()))
        .filter(|id| acp_api::resume::valid_session_id(id))
}

/// Points `resume` at the workspace of the nearest earlier turn in `chain`
/// that has one (`home` says where its agent home is, as the run will see
/// it), with the conversation that turn recorded: a parent stopped while
/// queued never ran, and its own parent's conversation is the thread's.
pub fn locate(
    resume: &mut Resume,
    chain: &[Arc<AgenticSession>],
    home: &dyn Fn(&AgenticSession) -> Option<String>,
) {
    for turn in chain {
        if let Some(from) = home(turn) {
            resume.from = Some(from);
            resume.workspace = Some(turn.name_any());
            resume.session_id = conversation(turn);
            return;
        }
    }
}

/// A turn's result summary, or what became of it.
fn summary(session: &AgenticSession) -> String {
    let status = session.status.as_ref();
    match status.and_then(|s| s.result.as_ref()).and_then(|r| r.summary.clone()) {
        Some(summary) => summary,
        None => match status.and_then(|s| s.phase) {
            Some(phase) => format!("(no result; it ended {phase})"),
            None => "(no result)".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use acp_api::session::{PushedBranch, SessionPhase, SessionResult, SessionStatus};
    use serde_json::json;

    use super::*;

    fn session(
        name: &str,
        parent: Option<&str>,
        summary: Option<&str>,
        pushed: Option<&str>,
    ) -> Arc<AgenticSession> {
        let mut notes = serde_json::Map::new();
        if let Some(parent) = parent {
            notes.insert(annotations::PARENT_SESSION.into(), json!(parent));
        }
        notes.insert(annotations::PULL_REQUEST_HEAD.into(), json!(format!("head-of-{name}")));
        let mut s: AgenticSession = serde_json::from_value(json!({
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
            "metadata": {"name": name, "namespace": "ns", "annotations": notes},
            "spec": {"repos": [{"url": "http://git/app.git", "branch": "fix"}]}}))
        .expect("session");
        s.status = Some(SessionStatus {
            phase: Some(SessionPhase::Completed),
            sdk_session_id: Some("conv-1".into()),
            result: Some(SessionResult {
                summary: summary.map(str::to_owned),
                pushed_branches: pushed
                    .map(|c| PushedBranch {
                        repo: "http://git/app.git".into(),
                        branch: "fix".into(),
                        commit: c.into(),
                    })
                    .into_iter()
                    .collect(),
                ..SessionResult::default()
            }),
            ..SessionStatus::default()
        });
        Arc::new(s)
    }

    fn lookup(all: &[Arc<AgenticSession>]) -> impl Fn(&str) -> Option<Arc<AgenticSession>> + '_ {
        move |name| all.iter().find(|s| s.name_any() == name).cloned()
    }

    #[test]
    fn a_follow_up_continues_its_parents_conversation_and_knows_every_earlier_turn() {
        let all = [
            session("t1", None, Some("Added the entry."), Some("c1")),
            session("t2", Some("t1"), None, None),
            session("t3", Some("t2"), Some("ignored"), None),
        ];
        assert_eq!(of(&all[0], &lookup(&all)), None, "a thread's first turn continues nothing");
        let (mut resume, chain) = of(&all[2], &lookup(&all)).expect("a follow-up");
        assert_eq!(resume.parent, "t2");
        assert_eq!(resume.session_id.as_deref(), Some("conv-1"));
        // t2 pushed nothing: the commits since the head it was asked at.
        assert_eq!(resume.since, [("http://git/app.git".to_owned(), "head-of-t2".to_owned())].into());
        let turns: Vec<(&str, &str)> =
            resume.turns.iter().map(|t| (t.session.as_str(), t.summary.as_str())).collect();
        assert_eq!(turns, [("t1", "Added the entry."), ("t2", "(no result; it ended Completed)")]);
        // The nearest turn with a workspace left gives the conversation.
        let mut t1 = (*all[0]).clone();
        if let Some(status) = t1.status.as_mut() {
            status.sdk_session_id = Some("conv-t1".into());
        }
        let chain = [chain[0].clone(), Arc::new(t1)];
        locate(&mut resume, &chain, &|s| (s.name_any() == "t1").then(|| "/runs/t1/home".to_owned()));
        assert_eq!(
            (resume.from.as_deref(), resume.workspace.as_deref(), resume.session_id.as_deref()),
            (Some("/runs/t1/home"), Some("t1"), Some("conv-t1"))
        );
        let before = resume.clone();
        locate(&mut resume, &chain, &|_| None);
        assert_eq!(resume, before, "no workspace left: nothing to point at");
        // After a push, the pushed commit.
        let (resume, _) = of(&all[1], &lookup(&all)).expect("a follow-up");
        assert_eq!(resume.since["http://git/app.git"], "c1");
    }

    #[test]
    fn in_a_cycle_of_parents_only_the_smallest_name_goes_first() {
        let three = [
            session("a", Some("c"), None, None),
            session("b", Some("a"), None, None),
            session("c", Some("b"), None, None),
        ];
        let first: Vec<bool> = three.iter().map(|s| first_in_cycle(s, &lookup(&three))).collect();
        assert_eq!(first, [true, false, false]);
        let two = [session("x", Some("y"), None, None), session("y", Some("x"), None, None)];
        assert!(first_in_cycle(&two[0], &lookup(&two)) && !first_in_cycle(&two[1], &lookup(&two)));
        // A chain, or a cycle above it, is not this session's to break.
        let chain = [session("p", None, None, None), session("q", Some("p"), None, None)];
        assert!(!first_in_cycle(&chain[1], &lookup(&chain)));
        let above = [
            session("m", Some("n"), None, None),
            session("n", Some("m"), None, None),
            session("k", Some("m"), None, None),
        ];
        assert!(!first_in_cycle(&above[2], &lookup(&above)));
    }

    #[test]
    fn a_thread_never_crosses_sources() {
        let mine = |s: &Arc<AgenticSession>, source: &str| {
            let mut s = (**s).clone();
            s.metadata.labels = Some(
                [
                    (labels::SOURCE_NAMESPACE.to_owned(), "team".to_owned()),
                    (labels::SOURCE_NAME.to_owned(), source.to_owned()),
                ]
                .into(),
            );
            Arc::new(s)
        };
        let theirs = mine(&session("t1", None, Some("Their secret plan."), Some("c1")), "other");
        let child = mine(&session("t2", Some("t1"), None, None), "mine");
        let all = [theirs.clone(), child.clone()];
        let (resume, chain) = of(&child, &lookup(&all)).expect("a follow-up");
        assert_eq!((resume.session_id, resume.turns.len(), chain.len()), (None, 0, 0), "nothing of theirs");
        // Same source: the thread.
        let ours = mine(&session("t1", None, Some("Our plan."), Some("c1")), "mine");
        let all = [ours, child.clone()];
        assert_eq!(of(&child, &lookup(&all)).expect("a follow-up").1.len(), 1);
    }

    #[test]
    fn a_gone_parent_or_a_cycle_still_gives_a_bounded_answer() {
        let orphan = session("t9", Some("gone"), None, None);
        let (resume, _) = of(&orphan, &|_| None).expect("a follow-up");
        assert_eq!((resume.parent.as_str(), resume.session_id, resume.turns.len()), ("gone", None, 0));
        let cycle = [session("a", Some("b"), Some("A"), None), session("b", Some("a"), Some("B"), None)];
        let (resume, _) = of(&cycle[0], &lookup(&cycle)).expect("a follow-up");
        assert_eq!(resume.turns.len(), 1, "{resume:?}");
        let long: Vec<Arc<AgenticSession>> = (0..50)
            .map(|i| {
                session(&format!("s{i}"), (i > 0).then(|| format!("s{}", i - 1)).as_deref(), Some("ok"), None)
            })
            .collect();
        let (resume, _) = of(&long[49], &lookup(&long)).expect("a follow-up");
        assert_eq!(resume.turns.len(), MAX_TURNS);
        assert_eq!(resume.turns.last().map(|t| t.session.as_str()), Some("s48"));
        let mut bad = (*long[1]).clone();
        if let Some(status) = bad.status.as_mut() {
            status.sdk_session_id = Some("../../etc".into());
        }
        let child = session("c", Some("s1"), None, None);
        let swapped = [Arc::new(bad), child.clone()];
        assert_eq!(of(&child, &lookup(&swapped)).expect("resume").0.session_id, None, "not a file name");
    }
}
