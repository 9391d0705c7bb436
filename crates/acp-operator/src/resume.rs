//! What a follow-up's run continues (pure): the parent session's Claude Code
//! conversation id, the commits its turn ended at, and the thread's earlier
//! turns, read from the session cache when the run is started. Where the
//! parent's transcript is (its workspace) depends on the executor and is
//! filled in by the caller.
//!
//! A link is followed only when a source vouches for both its ends. The
//! labels naming a session's SessionSource are only a claim (whoever may
//! create a session may write them), so a session claiming a source is that
//! source's only if the source's inventory (in its status, which git-sync
//! alone writes) lists it; or, for a schedule's run, if the inventory lists
//! the schedule and the schedule's status (which the scheduler alone
//! writes) lists the run. Sessions claiming no source (made by hand) form
//! threads among themselves only. Everything is read through a [`Lookup`]
//! of the operator's watch caches.

use std::collections::BTreeMap;
use std::sync::Arc;

use acp_api::constants::{annotations, labels};
use acp_api::resume::{MAX_TURNS, Resume, Turn};
use acp_api::{AgenticSession, SessionSchedule, SessionSource};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt as _;

/// How long a new session may wait for its source to record it before its
/// claim is refused. git-sync writes a source's inventory after applying
/// the sync's objects, and the scheduler lists a run in its schedule's
/// status after creating it, so a follow-up is seen before anything vouches
/// for it; one that nothing vouches for by then starts without its thread.
pub const RECORD_GRACE: SignedDuration = SignedDuration::from_secs(60);

/// Finds an object by name (a session or schedule of the namespace being
/// reconciled).
pub type ByName<'a, K> = Box<dyn Fn(&str) -> Option<Arc<K>> + 'a>;

/// Finds a SessionSource by namespace and name.
pub type BySource<'a> = Box<dyn Fn(&str, &str) -> Option<Arc<SessionSource>> + 'a>;

/// Where the proof of a thread is read (the operator's watch caches).
pub struct Lookup<'a> {
    /// Session `name` of the namespace being reconciled.
    pub session: ByName<'a, AgenticSession>,
    /// SessionSource `(namespace, name)`.
    pub source: BySource<'a>,
    /// SessionSchedule `name` of the namespace being reconciled.
    pub schedule: ByName<'a, SessionSchedule>,
}

/// Whether a session is what its source labels claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// Its source lists it (or the schedule's run it is), or it claims no
    /// source.
    Proven,
    /// Not listed yet, and new enough that the record may be on its way.
    Pending,
    /// The source does not back the claim.
    Refused,
}

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

/// Whether `a` and `b` claim the same SessionSource (or both none): a
/// thread never crosses sources, so a manifest in one source's repository
/// cannot name another source's session as its parent to read that
/// session's conversation or workspace.
fn same_source(a: &AgenticSession, b: &AgenticSession) -> bool {
    [labels::SOURCE_NAMESPACE, labels::SOURCE_NAME]
        .iter()
        .all(|key| a.labels().get(*key) == b.labels().get(*key))
}

/// Whether `session` is what its source labels claim, at `now` (`None`:
/// nothing counts as new, so a claim not recorded yet is refused).
pub fn proof(session: &AgenticSession, lookup: &Lookup<'_>, now: Option<Timestamp>) -> Proof {
    let (source_ns, source_name) =
        match (session.labels().get(labels::SOURCE_NAMESPACE), session.labels().get(labels::SOURCE_NAME)) {
            (None, None) => return Proof::Proven,
            (Some(ns), Some(name)) => (ns, name),
            _ => return Proof::Refused,
        };
    if vouched(session, (lookup.source)(source_ns, source_name).as_deref(), lookup) {
        return Proof::Proven;
    }
    let created = session.metadata.creation_timestamp.as_ref().map(|t| t.0);
    match (now, created) {
        (Some(now), Some(created)) if now.duration_since(created) < RECORD_GRACE => Proof::Pending,
        _ => Proof::Refused,
    }
}

/// Whether `source` lists `session`, or the schedule whose run it is.
fn vouched(session: &AgenticSession, source: Option<&SessionSource>, lookup: &Lookup<'_>) -> bool {
    let Some(status) = source.and_then(|s| s.status.as_ref()) else { return false };
    let ns = session.namespace().unwrap_or_default();
    let listed = |kind: &str, name: &str| {
        status.inventory.iter().any(|e| e.kind == kind && e.namespace == ns && e.name == name)
    };
    let name = session.name_any();
    // A schedule's run: the source applied the schedule, whose status lists the run.
    listed("AgenticSession", &name)
        || session
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "SessionSchedule")
            .and_then(|owner| {
                (lookup.schedule)(&owner.name).filter(|s| s.uid().as_deref() == Some(&owner.uid))
            })
            .filter(|schedule| listed("SessionSchedule", &schedule.name_any()))
            .is_some_and(|schedule| {
                schedule
                    .status
                    .as_ref()
                    .is_some_and(|s| s.active.contains(&name) || s.runs.iter().any(|r| r.name == name))
            })
}

/// Whether `session`'s link to `parent` may be followed at `now` (see
/// [`proof`]): both claim the same source, which vouches for both.
pub fn link(
    session: &AgenticSession,
    parent: &AgenticSession,
    lookup: &Lookup<'_>,
    now: Option<Timestamp>,
) -> Proof {
    if !same_source(session, parent) {
        return Proof::Refused;
    }
    match (proof(session, lookup, now), proof(parent, lookup, now)) {
        (Proof::Proven, Proof::Proven) => Proof::Proven,
        (Proof::Refused, _) | (_, Proof::Refused) => Proof::Refused,
        _ => Proof::Pending,
    }
}

/// What `session` continues, looking sessions of its namespace and their
/// sources up with `lookup`, and the earlier turns found, nearest first;
/// `None` for a session that starts a thread. A parent (or earlier turn)
/// that is not proven to be of `session`'s thread (see [`link`]) is not
/// continued: the run starts fresh, as when the parent is gone.
pub fn of(session: &AgenticSession, lookup: &Lookup<'_>) -> Option<(Resume, Vec<Arc<AgenticSession>>)> {
    let parent_name = parent_of(session)?;
    let mut resume = Resume { parent: parent_name.to_owned(), ..Resume::default() };
    let follows = |turn: &AgenticSession| link(session, turn, lookup, None) == Proof::Proven;
    let Some(parent) = (lookup.session)(parent_name).filter(|p| follows(p)) else {
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
        at = parent_of(&turn).and_then(|p| (lookup.session)(p)).filter(|p| follows(p));
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

    fn by_name(all: &[Arc<AgenticSession>]) -> impl Fn(&str) -> Option<Arc<AgenticSession>> + '_ {
        move |name| all.iter().find(|s| s.name_any() == name).cloned()
    }

    /// `all`'s sessions, with `sources` and `schedules` (of namespace `ns`).
    fn caches<'a>(
        all: &'a [Arc<AgenticSession>],
        sources: &'a [Arc<SessionSource>],
        schedules: &'a [Arc<SessionSchedule>],
    ) -> Lookup<'a> {
        Lookup {
            session: Box::new(by_name(all)),
            source: Box::new(move |ns, name| {
                sources.iter().find(|s| s.namespace().as_deref() == Some(ns) && s.name_any() == name).cloned()
            }),
            schedule: Box::new(move |name| schedules.iter().find(|s| s.name_any() == name).cloned()),
        }
    }

    fn lookup(all: &[Arc<AgenticSession>]) -> Lookup<'_> {
        caches(all, &[], &[])
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
        let first: Vec<bool> = three.iter().map(|s| first_in_cycle(s, &by_name(&three))).collect();
        assert_eq!(first, [true, false, false]);
        let two = [session("x", Some("y"), None, None), session("y", Some("x"), None, None)];
        assert!(first_in_cycle(&two[0], &by_name(&two)) && !first_in_cycle(&two[1], &by_name(&two)));
        // A chain, or a cycle above it, is not this session's to break.
        let chain = [session("p", None, None, None), session("q", Some("p"), None, None)];
        assert!(!first_in_cycle(&chain[1], &by_name(&chain)));
        let above = [
            session("m", Some("n"), None, None),
            session("n", Some("m"), None, None),
            session("k", Some("m"), None, None),
        ];
        assert!(!first_in_cycle(&above[2], &by_name(&above)));
    }

    /// `s`, labelled as applied by source `team/<source>`, created at `created`.
    fn claiming(s: &Arc<AgenticSession>, source: &str, created: Option<&str>) -> Arc<AgenticSession> {
        let mut s = (**s).clone();
        s.metadata.labels = Some(
            [
                (labels::SOURCE_NAMESPACE.to_owned(), "team".to_owned()),
                (labels::SOURCE_NAME.to_owned(), source.to_owned()),
            ]
            .into(),
        );
        s.metadata.creation_timestamp =
            created.map(|t| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.parse().expect("time")));
        Arc::new(s)
    }

    /// SessionSource `team/<name>` whose inventory lists `(kind, name)` of namespace `ns`.
    fn source(name: &str, inventory: &[(&str, &str)]) -> Arc<SessionSource> {
        let entries: Vec<serde_json::Value> = inventory
            .iter()
            .map(|(kind, n)| json!({"kind": kind, "namespace": "ns", "name": n, "path": "s.yaml", "revision": "r"}))
            .collect();
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSource",
                "metadata": {"name": name, "namespace": "team"},
                "spec": {"url": "https://github.com/acme/sessions", "targetNamespace": "ns"},
                "status": {"inventory": entries}}))
            .expect("source"),
        )
    }

    const S: &str = "AgenticSession";

    #[test]
    fn a_thread_never_crosses_sources() {
        let theirs = claiming(&session("t1", None, Some("Their secret plan."), Some("c1")), "other", None);
        let child = claiming(&session("t2", Some("t1"), None, None), "mine", None);
        let sources = [source("other", &[(S, "t1")]), source("mine", &[(S, "t2")])];
        let all = [theirs.clone(), child.clone()];
        let (resume, chain) = of(&child, &caches(&all, &sources, &[])).expect("a follow-up");
        assert_eq!((resume.session_id, resume.turns.len(), chain.len()), (None, 0, 0), "nothing of theirs");
        // Same source: the thread.
        let ours = claiming(&session("t1", None, Some("Our plan."), Some("c1")), "mine", None);
        let all = [ours, child.clone()];
        let sources = [source("mine", &[(S, "t1"), (S, "t2")])];
        assert_eq!(of(&child, &caches(&all, &sources, &[])).expect("a follow-up").1.len(), 1);
    }

    /// A session made with the API, labelled as a source's and naming one of
    /// that source's sessions as its parent, reads nothing of the parent's.
    #[test]
    fn a_link_is_followed_only_when_the_source_lists_both_ends() {
        let at = |t: &str| Some(t.parse::<Timestamp>().expect("time"));
        let parent = claiming(&session("pr7-1", None, Some("The plan."), Some("c1")), "repo", None);
        let forged =
            claiming(&session("forged", Some("pr7-1"), None, None), "repo", Some("2026-01-01T10:00:00Z"));
        let all = [parent.clone(), forged.clone()];
        let listed_parent = [source("repo", &[(S, "pr7-1")])];
        let thread = caches(&all, &listed_parent, &[]);
        let (resume, chain) = of(&forged, &thread).expect("a follow-up");
        assert_eq!((resume.session_id, resume.since.len(), resume.turns.len(), chain.len()), (None, 0, 0, 0));
        // New: the source may not have recorded it yet; old: refused.
        assert_eq!(link(&forged, &parent, &thread, at("2026-01-01T10:00:30Z")), Proof::Pending);
        assert_eq!(link(&forged, &parent, &thread, at("2026-01-01T10:01:00Z")), Proof::Refused);
        assert_eq!(link(&forged, &parent, &thread, None), Proof::Refused);
        // Once the source lists it, it is the source's follow-up.
        let both = [source("repo", &[(S, "pr7-1"), (S, "forged")])];
        let thread = caches(&all, &both, &[]);
        assert_eq!(link(&forged, &parent, &thread, at("2026-01-01T10:00:30Z")), Proof::Proven);
        assert_eq!(of(&forged, &thread).expect("a follow-up").0.session_id.as_deref(), Some("conv-1"));
        // Nor does a listed session continue an unlisted parent.
        let child_only = [source("repo", &[(S, "forged")])];
        assert_eq!(of(&forged, &caches(&all, &child_only, &[])).expect("a follow-up").0.session_id, None);
        // An entry of another kind, a missing source (pending only while new), a half claim.
        let elsewhere = source("repo", &[(S, "pr7-1"), ("SessionSchedule", "forged")]);
        assert_eq!(proof(&forged, &caches(&all, &[elsewhere], &[]), None), Proof::Refused);
        assert_eq!(proof(&forged, &lookup(&all), at("2026-01-01T10:00:30Z")), Proof::Pending);
        assert_eq!(proof(&forged, &lookup(&all), None), Proof::Refused);
        let mut half = (*forged).clone();
        half.labels_mut().remove(labels::SOURCE_NAMESPACE);
        assert_eq!(proof(&half, &caches(&all, &both, &[]), None), Proof::Refused);
        // Sessions claiming no source vouch for each other, and only for each other.
        let by_hand = session("by-hand", Some("pr7-1"), None, None);
        assert_eq!(proof(&by_hand, &lookup(&all), None), Proof::Proven);
        assert_eq!(link(&by_hand, &parent, &caches(&all, &both, &[]), None), Proof::Refused);
    }

    #[test]
    fn a_schedules_run_is_vouched_for_by_the_schedule_its_source_applied() {
        let schedule: Arc<SessionSchedule> = Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSchedule",
                "metadata": {"name": "nightly", "namespace": "ns", "uid": "u-1"},
                "spec": {"schedule": "@daily", "template": {"spec": {}}},
                "status": {"active": ["nightly-2"], "runs": [{"name": "nightly-1", "scheduledTime": "2026-01-01T00:00:00Z"}]}}))
            .expect("schedule"),
        );
        let run = |name: &str, parent: Option<&str>, uid: &str| {
            let mut s = (*claiming(&session(name, parent, Some(name), None), "repo", None)).clone();
            s.metadata.owner_references = Some(vec![
                serde_json::from_value(json!({
                "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "SessionSchedule",
                "name": "nightly", "uid": uid, "controller": true}))
                .expect("owner"),
            ]);
            Arc::new(s)
        };
        let all = [
            run("nightly-1", None, "u-1"),
            run("nightly-2", Some("nightly-1"), "u-1"),
            run("forged", Some("nightly-1"), "u-1"),
            run("stale", Some("nightly-1"), "u-0"),
        ];
        let sources = [source("repo", &[("SessionSchedule", "nightly")])];
        let schedules = [schedule];
        let thread = caches(&all, &sources, &schedules);
        let (resume, _) = of(&all[1], &thread).expect("a follow-up");
        assert_eq!(resume.session_id.as_deref(), Some("conv-1"), "the schedule's runs are one thread");
        for unlisted in [&all[2], &all[3]] {
            assert_eq!(
                of(unlisted, &thread).expect("a follow-up").0.session_id,
                None,
                "{}",
                unlisted.name_any()
            );
        }
        // The schedule must be the source's.
        let unlisted_schedule = [source("repo", &[])];
        assert_eq!(proof(&all[1], &caches(&all, &unlisted_schedule, &schedules), None), Proof::Refused);
    }

    #[test]
    fn a_gone_parent_or_a_cycle_still_gives_a_bounded_answer() {
        let orphan = session("t9", Some("gone"), None, None);
        let (resume, _) = of(&orphan, &lookup(&[])).expect("a follow-up");
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
